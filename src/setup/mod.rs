//! Integrations: Claude Code set-up, the shell start-up file that loads `shell-init`, and `fix`,
//! which migrates exposed keys into the store.

pub mod claude;
pub mod fix;
pub mod rc;
