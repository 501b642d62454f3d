//! Starting the command: in place (`exec`, nothing to supervise) or as a supervised child whose
//! output goes through the masker, with signals forwarded and its exit status returned.

use super::mask::Masker;
pub use crate::exit::Outcome;
use crate::exit::{CANNOT_RUN, StartError};
use crate::secret::SecretValue;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH};
use signal_hook::iterator::SignalsInfo;
use signal_hook::iterator::exfiltrator::WithOrigin;
use std::ffi::OsString;
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

fn command(argv: &[OsString], env: &[(OsString, OsString)]) -> Command {
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)));
    c
}

/// Replaces keyfence with the command: same pid, signals and exit status as running it
/// directly. Returns only on failure.
pub fn exec_in_place(argv: &[OsString], env: &[(OsString, OsString)]) -> StartError {
    let err = command(argv, env).exec();
    StartError::starting(&argv[0], err)
}

/// Runs the command as a child, masking its stdout and stderr, forwarding signals, and returns
/// its exit status (128+N for death by signal N).
pub fn supervise(
    argv: &[OsString],
    env: Vec<(OsString, OsString)>,
    secrets: &[(String, SecretValue)],
    guard: Option<&Guard>,
) -> Result<Supervised, StartError> {
    let wrapped = wrap_for_guard(argv, guard)?;
    // Subscribe before the child exists, so no signal between spawn and subscription is lost.
    let mut signals =
        SignalsInfo::<WithOrigin>::new([SIGTERM, SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2])
            .map_err(|e| StartError::supervisor("cannot install signal handlers", e))?;
    let handle = signals.handle();
    let mut child = command(&wrapped, &env)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| StartError::starting(&argv[0], e))?;
    // The command has its environment; keyfence's copies of it go now (zeroed: zero_alloc).
    drop(env);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    attach_guard(pid, guard)?;
    let out = child.stdout.take();
    let err = child.stderr.take();
    // A 1 MiB pipe instead of 64 KiB: fewer hand-offs between the command and the masker,
    // which is most of the cost of a fast writer. Best effort (capped by pipe-max-size).
    #[cfg(target_os = "linux")]
    for fd in [
        out.as_ref().map(|o| o.as_fd()),
        err.as_ref().map(|e| e.as_fd()),
    ]
    .into_iter()
    .flatten()
    {
        let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
    }
    let ended = &AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(move || forward_signals(&mut signals, pid, None, ended, None));
        let pumps = [
            out.map(|o| s.spawn(move || pump(o, io::stdout(), secrets, OnFailure::Close))),
            err.map(|e| s.spawn(move || pump(e, io::stderr(), secrets, OnFailure::Close))),
        ];
        let status = wait(&mut child, pid, guard, None, ended);
        ended.store(true, Ordering::SeqCst);
        // Signals are still heard while the output drains (something outside the tree may
        // hold the pipes open): each now ends keyfence.
        for p in pumps.into_iter().flatten() {
            let _ = p.join();
        }
        handle.close();
        status
    })
}

/// Passes signals on to the child until the handle is closed; with a pty, SIGWINCH resizes it.
/// Once the command has ended (`ended`), there is nobody to pass a signal on to, and keyfence
/// takes it as a process without a handler would: it ends (a guarded tree with it, by
/// PTRACE_O_EXITKILL), its terminal's mode given back first.
fn forward_signals(
    signals: &mut SignalsInfo<WithOrigin>,
    pid: nix::unistd::Pid,
    pty: Option<&pty_process::blocking::Pty>,
    ended: &AtomicBool,
    raw: Option<&RawMode>,
) {
    for info in signals.forever() {
        if info.signal != SIGWINCH && ended.load(Ordering::SeqCst) {
            if let Some(r) = raw {
                r.leave();
            }
            let _ = signal_hook::low_level::emulate_default_handler(info.signal);
            continue;
        }
        if info.signal == SIGWINCH {
            if let (Some(pty), Some(size)) = (pty, terminal_size()) {
                let _ = pty.resize(size);
            }
            continue;
        }
        // Ctrl-C and Ctrl-\ from a terminal reach the whole foreground process group, the child
        // included: forwarding them would deliver them twice. Signals sent by a process (kill)
        // reach only keyfence, so those are passed on.
        let from_terminal = info.process.is_none();
        if (info.signal == SIGINT || info.signal == SIGQUIT) && from_terminal {
            continue;
        }
        if let Ok(sig) = nix::sys::signal::Signal::try_from(info.signal) {
            let _ = nix::sys::signal::kill(pid, sig);
        }
    }
}

/// Puts a terminal in raw mode and restores its previous mode when dropped, on every exit path
/// that unwinds or returns.
struct RawMode {
    saved: rustix::termios::Termios,
}

impl RawMode {
    fn enter() -> Option<RawMode> {
        let fd = rustix::stdio::stdin();
        let saved = rustix::termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(fd, rustix::termios::OptionalActions::Flush, &raw).ok()?;
        Some(RawMode { saved })
    }

    /// The terminal's own mode back, while keyfence is suspended.
    fn leave(&self) {
        let _ = rustix::termios::tcsetattr(
            rustix::stdio::stdin(),
            rustix::termios::OptionalActions::Flush,
            &self.saved,
        );
    }

    /// Raw again, after a suspension (the shell may have changed the mode meanwhile).
    fn reenter(&self) {
        let mut raw = self.saved.clone();
        raw.make_raw();
        let _ = rustix::termios::tcsetattr(
            rustix::stdio::stdin(),
            rustix::termios::OptionalActions::Flush,
            &raw,
        );
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        self.leave();
    }
}

/// Our terminal's size, to give the child's terminal the same.
fn terminal_size() -> Option<pty_process::Size> {
    let ws = rustix::termios::tcgetwinsize(rustix::stdio::stdout()).ok()?;
    Some(pty_process::Size::new(ws.ws_row, ws.ws_col))
}

/// Like `supervise`, but the command runs on a pseudo-terminal, so it still sees a terminal
/// (colours, line editing, window size) while its output goes through the masker. Used when
/// keyfence's stdout is a terminal.
pub fn supervise_pty(
    argv: &[OsString],
    env: Vec<(OsString, OsString)>,
    secrets: &[(String, SecretValue)],
    guard: Option<&Guard>,
) -> Result<Supervised, StartError> {
    let wrapped = wrap_for_guard(argv, guard)?;
    let argv_shown = argv;
    let argv = &wrapped[..];
    let (pty, pts) = pty_process::blocking::open()
        .map_err(|e| StartError::supervisor("cannot open a pty", e))?;
    if let Some(size) = terminal_size() {
        let _ = pty.resize(size);
    }
    let mut signals = SignalsInfo::<WithOrigin>::new([
        SIGTERM, SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH,
    ])
    .map_err(|e| StartError::supervisor("cannot install signal handlers", e))?;
    let handle = signals.handle();
    let stdin_is_tty = io::stdin().is_terminal();
    let mut cmd = pty_process::blocking::Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)));
    if !stdin_is_tty {
        // Piped input goes straight to the command; only the output needs the terminal.
        cmd = cmd.stdin(Stdio::inherit());
    }
    // With keystrokes from a terminal, a monitor process makes Ctrl-Z work (monitor.rs).
    let job_control = stdin_is_tty;
    if job_control {
        // SAFETY: `split` makes only async-signal-safe calls (see monitor.rs).
        #[expect(unsafe_code, reason = "a pre_exec hook is unsafe to install")]
        {
            cmd = unsafe { cmd.pre_exec(super::monitor::split) };
        }
    }
    let mut child = cmd.spawn(pts).map_err(|e| match e {
        pty_process::Error::Io(io) => StartError::starting(&argv_shown[0], io),
        other => StartError::supervisor("cannot start the command on a pty", other),
    })?;
    // The command has its environment; keyfence's copies of it (`cmd` went with the spawn)
    // go now (zeroed: zero_alloc).
    drop(env);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    // With a monitor, `pid` is the monitor and the command is its child, in the pty's
    // foreground group: both of them set that before the command's exec, which spawn waited
    // for. The guard traces the command; signals go to the monitor, which passes them on.
    let command_pid = if job_control && guard.is_some() {
        let foreground = rustix::termios::tcgetpgrp(pty.as_fd())
            .map(|p| nix::unistd::Pid::from_raw(p.as_raw_nonzero().get()));
        match foreground {
            Ok(p) if p != pid => p,
            other => {
                let why = other.map_or_else(|e| e.to_string(), |_| "it is not in front".into());
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                return Err(StartError::supervisor(
                    "cannot find the command on its terminal",
                    why,
                ));
            }
        }
    } else {
        pid
    };
    attach_guard(command_pid, guard)?;
    // From here until the guard drops, keystrokes go to the command untranslated: its own
    // terminal does the line editing and turns Ctrl-C into its SIGINT, exactly once.
    let raw = if stdin_is_tty { RawMode::enter() } else { None };
    let pty = &pty;
    let ended = &AtomicBool::new(false);
    let status = std::thread::scope(|s| {
        let raw = raw.as_ref();
        s.spawn(move || forward_signals(&mut signals, pid, Some(pty), ended, raw));
        let output = s.spawn(move || pump(pty, io::stdout(), secrets, OnFailure::Drain));
        if stdin_is_tty {
            // Not joined: a read of the terminal cannot be interrupted, and the process exits
            // right after the command does.
            let input = pty_clone_fd(pty);
            std::thread::Builder::new()
                .spawn(move || copy_input(input))
                .ok();
        }
        let status = match (job_control, guard) {
            (true, None) => wait_for_monitor(pid, raw, pty).map(Supervised::from),
            (true, Some(_)) => {
                let on_stop = Box::new(move || suspend_with_command(pid, raw, pty));
                wait(&mut child, command_pid, guard, Some((pid, on_stop)), ended)
            }
            (false, _) => wait(&mut child, pid, guard, None, ended),
        };
        ended.store(true, Ordering::SeqCst);
        let _ = output.join();
        handle.close();
        status
    });
    drop(raw);
    status
}

/// Waits for the monitor (the command's parent on the pty, monitor.rs), mirroring its stops:
/// when the command stops, keyfence gives the terminal its mode back and stops too, so the
/// shell shows the job stopped; when continued (`fg`), it takes the terminal again and
/// continues the monitor, which continues the command.
fn wait_for_monitor(
    monitor: nix::unistd::Pid,
    raw: Option<&RawMode>,
    pty: &pty_process::blocking::Pty,
) -> Result<Outcome, StartError> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    loop {
        match waitpid(monitor, Some(WaitPidFlag::WUNTRACED)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(Outcome::Exited(code as u8)),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(Outcome::Signaled(sig as i32)),
            Ok(WaitStatus::Stopped(..)) => suspend_with_command(monitor, raw, pty),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                return Err(StartError::supervisor("waiting for the command", e));
            }
        }
    }
}

/// The command was stopped from the terminal and its monitor stopped with it: keyfence gives
/// the terminal its mode back and stops too; once continued, it takes the terminal again and
/// continues the monitor, which continues the command.
fn suspend_with_command(
    monitor: nix::unistd::Pid,
    raw: Option<&RawMode>,
    pty: &pty_process::blocking::Pty,
) {
    use nix::sys::signal::{Signal, kill, raise};
    if let Some(r) = raw {
        r.leave();
    }
    // Returns once keyfence is continued; at once if its group is orphaned (no shell with job
    // control above it), which then just goes on.
    let _ = raise(Signal::SIGTSTP);
    if let Some(r) = raw {
        r.reenter();
    }
    if let Some(size) = terminal_size() {
        let _ = pty.resize(size);
    }
    let _ = kill(monitor, Signal::SIGCONT);
}

/// What `--guard` protects, and whether to report on it in detail.
pub struct Guard {
    pub protected: crate::guard::Protected,
    /// What the descendants are denied, and the descriptor of its shared ruleset
    /// (`--guard`); `None` with `--trace` alone, which only observes.
    pub fence: Option<(crate::guard::fence::Fence, i32)>,
    /// `--trace`: the recorder, taken by the supervisor.
    pub trace: std::sync::Mutex<Option<crate::trace::Recorder>>,
    pub verbose: bool,
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn trace_on(g: &Guard) -> bool {
    g.trace.lock().map(|t| t.is_some()).unwrap_or(false)
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn wrap_for_guard(argv: &[OsString], guard: Option<&Guard>) -> Result<Vec<OsString>, StartError> {
    match guard {
        None => Ok(argv.to_vec()),
        Some(g) => crate::guard::wrap(argv, trace_on(g))
            .map_err(|e| StartError::supervisor("guard: cannot find keyfence itself", e)),
    }
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn attach_guard(pid: nix::unistd::Pid, guard: Option<&Guard>) -> Result<(), StartError> {
    if guard.is_none() {
        return Ok(());
    }
    crate::guard::attach(pid, trace_on(guard.expect("checked above"))).map_err(|e| {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        StartError::Attach(e.to_string())
    })
}

/// Waits for the command: plainly, or as the tracer of its whole tree under guard.
/// `monitor`: under guard on keyfence's terminal, the command's parent and what to do when it
/// stops.
fn wait<'a>(
    child: &mut std::process::Child,
    pid: nix::unistd::Pid,
    guard: Option<&'a Guard>,
    monitor: Option<(nix::unistd::Pid, Box<dyn FnMut() + 'a>)>,
    ended: &'a AtomicBool,
) -> Result<Supervised, StartError> {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    if let Some(g) = guard {
        let trace = g.trace.lock().ok().and_then(|mut t| t.take());
        let (code, summary, trace) = crate::guard::supervise(
            pid,
            &g.protected,
            g.fence.as_ref().map(|(f, fd)| (f, *fd)),
            trace,
            monitor,
            ended,
        )
        .map_err(|e| StartError::supervisor("guard: supervising the command", e))?;
        return Ok(Supervised {
            outcome: code,
            guard: crate::guard::report(&summary, g.verbose),
            trace: trace.map(|rec| rec.finish()).unwrap_or_default(),
        });
    }
    let _ = (pid, guard, monitor, ended);
    child
        .wait()
        .map(|st| outcome(st).into())
        .map_err(|e| StartError::supervisor("waiting for the command", e))
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn wrap_for_guard(argv: &[OsString], guard: Option<&Guard>) -> Result<Vec<OsString>, StartError> {
    match guard {
        None => Ok(argv.to_vec()),
        Some(_) => Err(StartError::Unsupported),
    }
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn attach_guard(_pid: nix::unistd::Pid, _guard: Option<&Guard>) -> Result<(), StartError> {
    Ok(())
}

/// A second handle on the pty's controller side, for the input thread that outlives the scope.
fn pty_clone_fd(pty: &pty_process::blocking::Pty) -> Option<std::fs::File> {
    use std::os::fd::AsFd;
    pty.as_fd()
        .try_clone_to_owned()
        .ok()
        .map(std::fs::File::from)
}

fn copy_input(to: Option<std::fs::File>) {
    let Some(mut to) = to else { return };
    let mut stdin = io::stdin().lock();
    let mut buf = [0u8; 4096];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
}

fn outcome(st: std::process::ExitStatus) -> Outcome {
    match (st.code(), st.signal()) {
        (Some(code), _) => Outcome::Exited(code as u8),
        (None, Some(sig)) => Outcome::Signaled(sig),
        _ => Outcome::Exited(CANNOT_RUN),
    }
}

/// How the supervised command ended, and what the supervisor has to say about it, one line
/// each, for `command/run.rs` to print once the command's output is through.
#[derive(Debug)]
pub struct Supervised {
    pub outcome: Outcome,
    /// Guard's notices and refusals, and its counts under `-v`.
    pub guard: Vec<String>,
    /// The trace's summary.
    pub trace: Vec<String>,
}

impl From<Outcome> for Supervised {
    fn from(outcome: Outcome) -> Supervised {
        Supervised {
            outcome,
            guard: Vec::new(),
            trace: Vec::new(),
        }
    }
}

/// Copies `from` to `to` through a masker until end of file.
/// What the copy does once keyfence's own output fails.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnFailure {
    /// Stop reading: `from` is the read end of the command's pipe, which closes when the copy
    /// drops it, so the command's next write fails as it would have without keyfence.
    Close,
    /// Keep reading and discard: `from` is keyfence's pseudo-terminal, which stays open while
    /// keyfence runs, so a command that stopped being read would block on it for ever.
    Drain,
}

fn pump(
    mut from: impl Read,
    to: impl Write,
    secrets: &[(String, SecretValue)],
    on_failure: OnFailure,
) {
    let mut to = to;
    let mut masker = Masker::new(secrets);
    let mut buf = vec![0u8; 256 * 1024];
    let mut masked = Vec::with_capacity(256 * 1024);
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
        // The reader went away (`| head`) or the output failed (`> /dev/full`).
        if to.write_all(&masked).and_then(|()| to.flush()).is_err() {
            match on_failure {
                OnFailure::Close => return,
                OnFailure::Drain => continue,
            }
        }
    }
    masked.clear();
    if let Some(m) = &mut masker {
        m.finish(&mut masked);
    }
    let _ = to.write_all(&masked).and_then(|()| to.flush());
}
