//! Integrations: Claude Code, Codex CLI, Gemini CLI and Cursor set-up, and the shell start-up
//! file that loads `shell-init`. Moving exposed keys into the store is `crate::fix`'s.

pub mod claude;
pub mod codex;
pub mod cursor;
pub mod gemini;
pub mod rc;
