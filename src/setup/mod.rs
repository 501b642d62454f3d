//! Integrations: Claude Code, Codex CLI, Gemini CLI and Cursor set-up, the shell start-up file
//! that loads `shell-init`, and `fix`, which migrates exposed keys into the store.

pub mod claude;
pub mod codex;
pub mod cursor;
pub mod fix;
pub mod gemini;
pub mod rc;
