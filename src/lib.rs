//! keyfence: keep API keys and other secrets out of the processes that should not have them.
//!
//! Layout (the map is docs/architecture.md): `detect` knows what a secret looks like, `audit`
//! where secrets are exposed, `report` renders findings, `fix` moves exposed keys into the
//! store, `setup` the agent integrations, `run` and its protections (`guard`, `isolate`,
//! `trace`, `phantom`) keep keys out of what runs, and `command` glues the CLI to them. Only
//! `command` and `main` print.

pub mod audit;
pub mod canary;
pub mod cli;
pub mod command;
pub mod detect;
pub mod exit;
pub mod finding;
pub mod fix;
pub mod fsio;
pub mod guard;
pub mod isolate;
pub mod phantom;
pub mod policy;
pub mod provider;
pub mod report;
pub mod run;
pub mod secret;
pub mod setup;
pub mod store;
pub mod syntax;
pub mod trace;
pub mod tree;
pub mod zero_alloc;
