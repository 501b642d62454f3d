//! Audit sources, each against fixture trees, and the reports they make.

mod agent;
mod ci;
mod package;
mod sources;
