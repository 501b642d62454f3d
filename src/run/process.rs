//! Starting the command: in place (`exec`, nothing to supervise) or as a supervised child whose
//! output goes through the masker, with signals forwarded and its exit status returned.

use super::mask::Masker;
use crate::secret::SecretValue;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::SignalsInfo;
use signal_hook::iterator::exfiltrator::WithOrigin;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};

/// keyfence's own failure before the command started (DESIGN.md §3).
pub const EXIT_CANNOT_RUN: u8 = 125;
pub const EXIT_NOT_EXECUTABLE: u8 = 126;
pub const EXIT_NOT_FOUND: u8 = 127;

/// How a failure to start maps to a shell-like exit status, with a message.
pub fn start_error(program: &OsString, err: &io::Error) -> (u8, String) {
    let prog = program.to_string_lossy();
    match err.kind() {
        io::ErrorKind::NotFound => (EXIT_NOT_FOUND, format!("{prog}: command not found")),
        io::ErrorKind::PermissionDenied => {
            (EXIT_NOT_EXECUTABLE, format!("{prog}: permission denied"))
        }
        _ if err.raw_os_error() == Some(nix::libc::ENOEXEC) => (
            EXIT_NOT_EXECUTABLE,
            format!("{prog}: cannot execute: exec format error"),
        ),
        _ => (EXIT_CANNOT_RUN, format!("{prog}: cannot start: {err}")),
    }
}

fn command(argv: &[OsString], env: &[(OsString, OsString)]) -> Command {
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)));
    c
}

/// Replaces keyfence with the command: same pid, signals and exit status as running it
/// directly. Returns only on failure.
pub fn exec_in_place(argv: &[OsString], env: &[(OsString, OsString)]) -> (u8, String) {
    let err = command(argv, env).exec();
    start_error(&argv[0], &err)
}

/// Runs the command as a child, masking its stdout and stderr, forwarding signals, and returns
/// its exit status (128+N for death by signal N).
pub fn supervise(
    argv: &[OsString],
    env: &[(OsString, OsString)],
    secrets: &[(String, SecretValue)],
) -> Result<u8, (u8, String)> {
    // Subscribe before the child exists, so no signal between spawn and subscription is lost.
    let mut signals =
        SignalsInfo::<WithOrigin>::new([SIGTERM, SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2])
            .map_err(|e| {
                (
                    EXIT_CANNOT_RUN,
                    format!("cannot install signal handlers: {e}"),
                )
            })?;
    let handle = signals.handle();
    let mut child = command(argv, env)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| start_error(&argv[0], &e))?;
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let out = child.stdout.take();
    let err = child.stderr.take();
    let status = std::thread::scope(|s| {
        s.spawn(move || {
            for info in signals.forever() {
                // Ctrl-C and Ctrl-\ from a terminal reach the whole foreground process group,
                // the child included: forwarding them would deliver them twice. Signals sent by
                // a process (kill) reach only keyfence, so those are passed on.
                let from_terminal = info.process.is_none();
                if (info.signal == SIGINT || info.signal == SIGQUIT) && from_terminal {
                    continue;
                }
                if let Ok(sig) = nix::sys::signal::Signal::try_from(info.signal) {
                    let _ = nix::sys::signal::kill(pid, sig);
                }
            }
        });
        if let Some(o) = out {
            s.spawn(move || pump(o, io::stdout(), secrets));
        }
        if let Some(e) = err {
            s.spawn(move || pump(e, io::stderr(), secrets));
        }
        let status = child.wait();
        handle.close();
        status
    });
    match status {
        Ok(st) => Ok(match (st.code(), st.signal()) {
            (Some(code), _) => code as u8,
            (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
            _ => EXIT_CANNOT_RUN,
        }),
        Err(e) => Err((EXIT_CANNOT_RUN, format!("waiting for the command: {e}"))),
    }
}

/// Copies `from` to `to` through a masker until end of file.
fn pump(mut from: impl Read, to: impl Write, secrets: &[(String, SecretValue)]) {
    let mut to = to;
    let mut masker = Masker::new(secrets);
    let mut buf = vec![0u8; 64 * 1024];
    let mut masked = Vec::with_capacity(64 * 1024);
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        masked.clear();
        match &mut masker {
            Some(m) => m.push(&buf[..n], &mut masked),
            None => masked.extend_from_slice(&buf[..n]),
        }
        if to.write_all(&masked).and_then(|()| to.flush()).is_err() {
            // The reader went away (`| head`): keep draining so the command is not blocked.
            continue;
        }
    }
    masked.clear();
    if let Some(m) = &mut masker {
        m.finish(&mut masked);
    }
    let _ = to.write_all(&masked).and_then(|()| to.flush());
}
