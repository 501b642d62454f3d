//! Integrations: Claude Code set-up, and `fix`, which migrates exposed keys into the store.

pub mod claude;
pub mod fix;
