//! The Linux x86-64 side of guard: the helper, attaching, and serving the tree.

use super::{Protected, filter, tracer};
use crate::guard::fence::Fence;
use crate::trace::notify;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use std::ffi::OsString;
use std::time::{Duration, Instant};
pub use tracer::Summary;

/// The helper's side: filter, wait for the tracer, exec. Returns only on failure.
pub fn helper_exec(argv: &[OsString], trace: bool) -> crate::exit::StartError {
    use crate::exit::StartError;
    use std::os::unix::process::CommandExt;
    let extra = if trace { filter::nr::TRACED } else { &[] };
    // Without a tracer the exec would fail with ENOSYS; wait for keyfence to attach. Before the
    // filter goes in: from then on an open here would wait for a listener nobody holds yet.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !traced() {
        if Instant::now() > deadline {
            return StartError::NotAttached;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    // With --trace, opens go to a seccomp listener the tracer takes at the exec; where there
    // can be none, the tracer stops on them like the rest. Nothing here opens a file after
    // this: the exec is next.
    let notified = trace
        && notify::install_with_listener(&filter::program(
            filter::nr::TRACED_WITHOUT_OPENS,
            filter::nr::OPENS,
        ))
        .is_ok();
    if !notified && let Err(e) = filter::install(extra) {
        return StartError::supervisor("guard: cannot install the seccomp filter", e);
    }
    let err = std::process::Command::new(&argv[0]).args(&argv[1..]).exec();
    StartError::starting(&argv[0], err)
}

fn traced() -> bool {
    super::tracer_pid().is_some()
}

/// Becomes the tracer of the freshly spawned helper. Must run on the thread that then calls
/// `supervise`: ptrace requests come from the tracing thread.
pub fn attach(pid: Pid, trace: bool) -> nix::Result<()> {
    nix::sys::ptrace::seize(pid, tracer::options(trace))
}

/// Serves the tree until the command ends and what it left is gone; how the command ended. `monitor`: the command's parent on keyfence's terminal (run/monitor.rs), and what
/// to do when it stops. `ended` is set as soon as the command has ended. `fence`: what the
/// descendants are denied and the descriptor of its shared ruleset; `None` only observes.
pub fn supervise<'a>(
    pid: Pid,
    protected: &'a Protected,
    fence: Option<(&'a Fence, i32)>,
    trace: Option<crate::trace::Recorder>,
    monitor: Option<(Pid, Box<dyn FnMut() + 'a>)>,
    ended: &'a std::sync::atomic::AtomicBool,
) -> nix::Result<(
    crate::exit::Outcome,
    Summary,
    Option<crate::trace::Recorder>,
)> {
    let mut t = tracer::Tracer::new(pid, protected, fence, trace).with_ended(ended);
    if let Some((monitor, on_stop)) = monitor {
        t = t.with_monitor(monitor, on_stop);
    }
    let status = t.run()?;
    use crate::exit::Outcome;
    let code = match status {
        WaitStatus::Exited(_, c) => Outcome::Exited(c as u8),
        WaitStatus::Signaled(_, sig, _) => Outcome::Signaled(sig as i32),
        _ => Outcome::Exited(crate::exit::CANNOT_RUN),
    };
    let trace = t.trace.take();
    Ok((code, t.summary, trace))
}
