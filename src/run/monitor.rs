//! The monitor process that lets Ctrl-Z suspend a command running on keyfence's
//! pseudo-terminal, as sudo's monitor does for `use_pty`.
//!
//! The command must lead a new session to have the pty as its controlling terminal. Alone in
//! that session, its process group is orphaned (no member has a parent in the same session and
//! another group), and the kernel discards the terminal's SIGTSTP, SIGTTIN and SIGTTOU for an
//! orphaned group: Ctrl-Z did nothing. So the process std forks for the command becomes the
//! session leader and forks once more: the grandchild puts itself in a group of its own, in the
//! pty's foreground, and returns to std, which execs the command in it; the session leader
//! stays behind as the monitor, in another group of the same session, which makes the
//! command's group an ordinary one. When the command stops, the monitor stops itself; keyfence,
//! its parent, sees that, gives the terminal back and stops too, and the shell shows the job
//! as stopped. `fg` continues keyfence, which continues the monitor, which continues the
//! command's group. Under guard keyfence traces the command (a grandchild, found as the pty's
//! foreground group) and holds its group stops, so that the monitor sees them.
//!
//! Everything here runs between fork and exec in a copy of keyfence, so it makes only
//! async-signal-safe system calls: no allocation, no locks.
#![expect(
    unsafe_code,
    reason = "fork, waitpid, sigaction and signal masks between fork and exec have no safe wrapper that is async-signal-safe"
)]

use nix::libc;
use std::sync::atomic::{AtomicI32, Ordering};

/// The command's pid, for the monitor's signal handlers.
static COMMAND: AtomicI32 = AtomicI32::new(0);

/// Signals the monitor passes on to the command: keyfence forwards these to its child, which
/// is the monitor.
const FORWARDED: [libc::c_int; 6] = [
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// A `pre_exec` hook, run after the child has become the pty's session leader. Returns in the
/// process that is to exec the command; the monitor never returns from it.
pub fn split() -> std::io::Result<()> {
    // SAFETY: fork in a child std has just forked; each side then makes only async-signal-safe
    // calls until the command's exec or the monitor's _exit.
    let command = unsafe { libc::fork() };
    if command < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if command == 0 {
        become_foreground();
        return Ok(());
    }
    // SAFETY: as above; `monitor` only makes system calls.
    unsafe { monitor(command) }
}

/// In the command: a process group of its own, and the terminal's foreground. The monitor does
/// the same from its side (whichever runs first wins; shells do both for the same reason).
fn become_foreground() {
    // SAFETY: plain system calls on this process; the signal sets are local.
    unsafe {
        libc::setpgid(0, 0);
        // A process outside the foreground group that sets the foreground gets SIGTTOU, which
        // would stop it: blocked for the call, then the mask put back for the command.
        let mut ttou: libc::sigset_t = std::mem::zeroed();
        let mut saved: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut ttou);
        libc::sigaddset(&mut ttou, libc::SIGTTOU);
        libc::sigprocmask(libc::SIG_BLOCK, &ttou, &mut saved);
        // Descriptor 1 is the pty: std has set up the child's standard streams by now.
        libc::tcsetpgrp(1, libc::getpid());
        libc::sigprocmask(libc::SIG_SETMASK, &saved, std::ptr::null_mut());
    }
}

extern "C" fn forward(sig: libc::c_int) {
    let command = COMMAND.load(Ordering::Relaxed);
    if command > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(command, sig) };
    }
}

/// The monitor: waits for the command, mirrors its stops, and ends as it ended.
unsafe fn monitor(command: libc::pid_t) -> ! {
    COMMAND.store(command, Ordering::Relaxed);
    // SAFETY: system calls on this process and its child; the sigaction structure is local.
    unsafe {
        libc::setpgid(command, command);
        libc::tcsetpgrp(1, command);
        // Nothing of keyfence's stays open here: std's pipe that reports a failed exec must
        // reach end-of-file when the command's exec closes it, and the pty must hang up when
        // the command and its children are done with it.
        #[cfg(target_os = "linux")]
        let closed = libc::syscall(libc::SYS_close_range, 0, u32::MAX, 0) == 0;
        #[cfg(not(target_os = "linux"))]
        let closed = false;
        if !closed {
            // Before Linux 5.9: one at a time, as far as descriptors usually go.
            for fd in 0..4096 {
                libc::close(fd);
            }
        }
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = forward as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        for sig in FORWARDED {
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        loop {
            let mut status = 0;
            if libc::waitpid(command, &mut status, libc::WUNTRACED) < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                libc::_exit(crate::exit::CANNOT_RUN as i32);
            }
            if libc::WIFSTOPPED(status) {
                // keyfence sees this stop, suspends itself, and continues us when it is
                // continued: then the command's group goes on too.
                libc::kill(libc::getpid(), libc::SIGSTOP);
                libc::kill(-command, libc::SIGCONT);
            } else if libc::WIFEXITED(status) {
                libc::_exit(libc::WEXITSTATUS(status));
            } else if libc::WIFSIGNALED(status) {
                die_by(libc::WTERMSIG(status));
            }
        }
    }
}

/// Ends the monitor by the signal that ended the command, so keyfence reports 128+N as for a
/// command it started directly; without a core file.
unsafe fn die_by(sig: libc::c_int) -> ! {
    // SAFETY: system calls on this process; the structures are local.
    unsafe {
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::signal(sig, libc::SIG_DFL);
        let mut only: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut only);
        libc::sigaddset(&mut only, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &only, std::ptr::null_mut());
        libc::kill(libc::getpid(), sig);
        libc::_exit(128 + sig)
    }
}
