//! The parsers keyfence reads other programs' files and command lines with, each keeping
//! positions (line, column) for the reports and never failing on bad input: the shell lexer
//! (`shell`, per dialect: POSIX sh, bash, zsh, fish, csh), what a command line runs
//! (`shell_command`, for the Claude Code hook and `run`'s profile choice), shell history files
//! (`history`), and YAML with positions (`yaml`, for CI workflows). The audit sources, `fix`
//! and the hook use them; none of them reads a file or knows a source.

pub mod history;
pub mod shell;
pub mod shell_command;
pub mod yaml;
