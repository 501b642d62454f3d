//! The integrations: `setup claude/codex/gemini/cursor`, shell-init, the Claude Code hook, and the real Claude Code CLI.

mod agents;
mod claude;
mod claude_code;
mod hook;
mod shell_init;
