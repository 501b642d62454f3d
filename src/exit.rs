//! keyfence's exit statuses (DESIGN.md §3), in one type: `audit`, `scan`, `ps` and the rest
//! exit 0, 1 or 2; `run` exits with its command's status, or 125/126/127 when the command could
//! not be started (as `env`, `sudo` and `op run` do, so the command's own 1 and 2 keep their
//! meaning). Also how the command ended ([`Outcome`]) and why it could not be started or
//! supervised ([`StartError`]), which `run/` and `guard/` both return (so guard, which `run`
//! uses, needs nothing from `run`) and `command/run.rs` prints.

use std::ffi::OsStr;
use std::io;
use std::process::ExitCode;

/// keyfence's own failure before the command started, or while supervising it.
pub const CANNOT_RUN: u8 = 125;
/// The command exists but cannot be executed (permissions, not a program).
pub const NOT_EXECUTABLE: u8 = 126;
/// No such command.
pub const NOT_FOUND: u8 = 127;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Nothing at or above `--fail-on`.
    Clean,
    /// Findings at or above `--fail-on`.
    Findings,
    /// Usage or runtime error.
    Error,
    /// `run`: keyfence failed before the command started, or while supervising it (125).
    CannotRun,
    /// `run`: the command cannot be executed (126).
    NotExecutable,
    /// `run`: the command was not found (127).
    NotFound,
    /// `run`: the command's own status.
    Code(u8),
    /// `run`: the command died of this signal; keyfence dies of it too
    /// (`command::die_by`), and exits 128+N where it cannot.
    Signal(i32),
}

impl Exit {
    /// The status a shell sees: 128+N for death by signal N.
    pub fn code(self) -> u8 {
        match self {
            Exit::Clean => 0,
            Exit::Findings => 1,
            Exit::Error => 2,
            Exit::CannotRun => CANNOT_RUN,
            Exit::NotExecutable => NOT_EXECUTABLE,
            Exit::NotFound => NOT_FOUND,
            Exit::Code(c) => c,
            Exit::Signal(sig) => 128u8.wrapping_add(sig as u8),
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

/// Why the command did not start, or could not be seen through to its end. Each says which
/// exit status it is ([`StartError::exit`]); the messages read as a shell's do.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{program}: command not found")]
    NotFound { program: String },
    #[error("{program}: permission denied")]
    PermissionDenied { program: String },
    #[error("{program}: cannot execute: exec format error")]
    ExecFormat { program: String },
    #[error("{program}: cannot start: {error}")]
    Start { program: String, error: io::Error },
    /// keyfence's own machinery (signal handlers, the pty, waiting, the guard's helper).
    #[error("{what}: {error}")]
    Supervisor { what: &'static str, error: String },
    #[error("guard: cannot trace the command ({0}); it was not started")]
    Attach(String),
    #[error("guard: the supervisor did not attach")]
    NotAttached,
    #[error("--guard needs Linux on x86-64")]
    Unsupported,
}

impl StartError {
    /// How starting `program` failed, as a shell says it.
    pub fn starting(program: &OsStr, error: io::Error) -> StartError {
        let program = program.to_string_lossy().into_owned();
        match error.kind() {
            io::ErrorKind::NotFound => StartError::NotFound { program },
            io::ErrorKind::PermissionDenied => StartError::PermissionDenied { program },
            _ if error.raw_os_error() == Some(nix::libc::ENOEXEC) => {
                StartError::ExecFormat { program }
            }
            _ => StartError::Start { program, error },
        }
    }

    /// keyfence's own machinery failed: `what` it was doing, and why.
    pub fn supervisor(what: &'static str, error: impl std::fmt::Display) -> StartError {
        StartError::Supervisor {
            what,
            error: error.to_string(),
        }
    }

    pub fn exit(&self) -> Exit {
        match self {
            StartError::NotFound { .. } => Exit::NotFound,
            StartError::PermissionDenied { .. } | StartError::ExecFormat { .. } => {
                Exit::NotExecutable
            }
            _ => Exit::CannotRun,
        }
    }
}

/// How the command ended: keyfence ends the same way (a shell running `keyfence run -- CMD`
/// in a loop stops at Ctrl-C only if it sees its child die of SIGINT, not exit 130).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Exited(u8),
    Signaled(i32),
}

impl Outcome {
    /// The status a shell shows for it: the code, or 128+N.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Exited(c) => c,
            Outcome::Signaled(sig) => 128u8.wrapping_add(sig as u8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_failures_exit_as_a_shell_would() {
        let start = |kind: io::ErrorKind| StartError::starting("x".as_ref(), kind.into());
        for (e, code, msg) in [
            (start(io::ErrorKind::NotFound), 127, "x: command not found"),
            (
                start(io::ErrorKind::PermissionDenied),
                126,
                "x: permission denied",
            ),
            (
                StartError::starting(
                    "x".as_ref(),
                    io::Error::from_raw_os_error(nix::libc::ENOEXEC),
                ),
                126,
                "x: cannot execute: exec format error",
            ),
            (
                StartError::NotAttached,
                125,
                "guard: the supervisor did not attach",
            ),
        ] {
            assert_eq!(e.exit().code(), code, "{e}");
            assert_eq!(e.to_string(), msg);
        }
        assert_eq!(Exit::Signal(2).code(), 130);
    }
}
