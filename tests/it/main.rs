//! keyfence's integration tests: one binary (one link instead of one per file), its modules
//! mirroring src/ (`audit/`, `guard/`, `setup/`, ...), sharing `common`. Each test runs the real
//! binary on fixture trees with a temporary HOME and a cleared environment; the tests that need
//! an unprivileged user, a real CLI or a server say so (`common::skip`), and fail under CI.

mod common;

mod attacks;
mod audit;
mod canary;
mod cli;
mod distribution;
mod doctor;
mod fix;
mod guard;
mod isolate;
mod phantom;
mod policy;
mod provider;
mod report;
mod run;
mod setup;
mod store;
mod trace;
