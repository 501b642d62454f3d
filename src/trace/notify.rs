//! Seccomp user notification for the trace's opens: the kernel parks a process at each
//! `open`/`openat` and tells keyfence through a listener descriptor, instead of stopping it for
//! the tracer. The tree's `open` calls are most of what a traced install stops on (1,900 of an
//! `npm install`'s 2,800 stops), and a notification costs two wake-ups where a ptrace stop also
//! costs a `waitpid` round, register reads and the scheduler's wait for the stopped task to
//! leave its CPU.
//!
//! The trace only observes opens, so each notification is answered with "continue" as soon as
//! the path is read: the call then runs as if no filter were there (seccomp_unotify(2)). The
//! path is read while the process is parked; another thread of the same process could change
//! it afterwards, which a ptrace stop does not prevent either.
//!
//! Written by hand with `unsafe` (the `seccomp` call with a flag, three `ioctl`s and
//! `pidfd_getfd`): seccompiler installs filters without flags, and the crate that wraps these
//! calls (libseccomp) would replace the hand-written filter and link the C library.
#![allow(unsafe_code)]

use crate::guard::filter;
use crate::trace::SensitivePaths;
use nix::libc;
use nix::unistd::Pid;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

/// Where the helper keeps the listener (close-on-exec) until the tracer takes a copy at the
/// command's first exec stop; the exec then closes it, so the tree never holds it.
pub const LISTENER_FD: i32 = 1001;

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (linux/seccomp.h; not in the libc crate).
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: libc::c_ulong = 1;

/// Sets no_new_privs and installs `program` with a listener, left at `LISTENER_FD`. Fails where
/// the kernel has no user notification (before 5.0) or the process already has a filter with a
/// listener (keyfence traced inside another trace): the caller then traces opens by ptrace.
pub fn install_with_listener(program: &[seccompiler::sock_filter]) -> io::Result<()> {
    nix::sys::prctl::set_no_new_privs().map_err(io::Error::from)?;
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `program`, which outlives the call; the kernel copies it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &prog as *const libc::sock_fprog,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor, and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: LISTENER_FD is reserved for this copy (nothing in the helper uses that number);
    // the copy is left open on purpose, for the tracer to take, until the exec closes it.
    let placed = unsafe { libc::dup3(fd.as_raw_fd(), LISTENER_FD, libc::O_CLOEXEC) };
    if placed < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A copy of the listener the helper `pid` left at `LISTENER_FD` (the helper is stopped at its
/// exec, so the descriptor is still there).
pub fn take_listener(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: plain system calls with integer arguments.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if pidfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    // SAFETY: as above.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), LISTENER_FD, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// One open seen through the listener.
pub struct OpenSeen {
    pub pid: Pid,
    /// Absolute when it could be resolved (relative paths against the process's working
    /// directory or its `dirfd`, read while the process was parked).
    pub path: PathBuf,
    pub flags: i32,
}

/// The thread answering notifications, and what it saw.
pub struct Opens {
    pub seen: Receiver<OpenSeen>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Opens {
    /// Only opens for writing and opens of `sensitive` paths are passed on: the tracer reads
    /// them at its next stop, and a program that opens many files between stops must not
    /// fill keyfence's memory.
    pub fn start(listener: OwnedFd, sensitive: SensitivePaths) -> io::Result<Opens> {
        // Why: without it a parked process waits for the scheduler to wake this thread on
        // another CPU and to wake the process again once answered. With this flag (Linux 6.6)
        // the kernel switches to the thread on the opener's own CPU and back: 20,000 opens under
        // the trace went from 54 to 8 µs each here. Older kernels refuse the flag, and the trace
        // works as before, only slower.
        // SAFETY: an integer argument (the kernel takes the flags by value, not by pointer).
        unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS as _,
                SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
            )
        };
        let (tx, seen) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("keyfence-opens".into())
            .spawn(move || serve(listener, tx, stop2, sensitive))?;
        Ok(Opens {
            seen,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread once the tree is gone; what it saw stays in `seen`.
    pub fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    listener: OwnedFd,
    tx: Sender<OpenSeen>,
    stop: Arc<AtomicBool>,
    sensitive: SensitivePaths,
) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    loop {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(50u16)) {
            Ok(0) => {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                continue;
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
        let revents = fds[0].revents().unwrap_or(PollFlags::empty());
        if !revents.contains(PollFlags::POLLIN) {
            // POLLHUP: every process that carried the filter is gone.
            return;
        }
        // SAFETY: an all-zero `seccomp_notif` is valid (plain integers), and the kernel
        // requires the buffer zeroed.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: `req` is a valid, writable `seccomp_notif` for the duration of the call.
        let r = unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV as _,
                &mut req,
            )
        };
        if r < 0 {
            // ENOENT: the process died or its call was interrupted before it was received.
            continue;
        }
        let seen = read_open(&req);
        // The path is only trusted if the process is still the one that made the call (its
        // pid was not reused while it was read).
        let mut id = req.id;
        // SAFETY: `id` is a valid u64 for the duration of the call.
        let valid = unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_ID_VALID as _,
                &mut id,
            )
        } == 0;
        // Passed on before the answer lets the open go on: the tracer handles a process's end
        // after the opens it has heard, so it must have heard them by the time the process can
        // end, or the open is recorded without the group of a process it no longer knows.
        if valid
            && let Some(seen) = seen
            && (seen.flags & (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT) != 0
                || sensitive.why(&seen.path, seen.pid.as_raw()).is_some())
        {
            let _ = tx.send(seen);
        }
        let mut resp = libc::seccomp_notif_resp {
            id: req.id,
            val: 0,
            error: 0,
            flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        };
        // Always answered: an unanswered notification would park the process for good.
        // SAFETY: `resp` is a valid `seccomp_notif_resp` for the duration of the call.
        unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND as _,
                &mut resp,
            )
        };
    }
}

fn read_open(req: &libc::seccomp_notif) -> Option<OpenSeen> {
    let pid = Pid::from_raw(req.pid as i32);
    let args = req.data.args;
    let (dirfd, path_at, flags) = match req.data.nr as u32 {
        filter::nr::OPEN => (libc::AT_FDCWD, args[0], args[1]),
        filter::nr::OPENAT => (args[0] as i32, args[1], args[2]),
        _ => return None,
    };
    let raw = crate::guard::memory::read_cstring(pid, path_at as usize).ok()?;
    let path =
        PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(raw));
    let path = if path.is_absolute() {
        path
    } else {
        let base = if dirfd == libc::AT_FDCWD {
            format!("/proc/{pid}/cwd")
        } else {
            format!("/proc/{pid}/fd/{dirfd}")
        };
        match std::fs::read_link(base) {
            Ok(dir) => dir.join(path),
            Err(_) => path,
        }
    };
    Some(OpenSeen {
        pid,
        path,
        flags: flags as i32,
    })
}
