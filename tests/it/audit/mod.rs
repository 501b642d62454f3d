//! Audit sources, each against fixture trees, and the reports they make.

mod agent;
mod ci;
mod gitconfig;
mod package;
mod sources;
