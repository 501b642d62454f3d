//! Linux probes: Landlock's ABI version (landlock_create_ruleset with the VERSION flag, the
//! kernel's documented way to ask), seccomp from /proc/self/status, Yama's ptrace_scope, and
//! user/network namespaces by trying to create them in a child process.
#![expect(
    unsafe_code,
    reason = "the Landlock ABI probe is a raw syscall; nix and landlock do not expose it"
)]

use super::Capabilities;
use std::process::{Command, Stdio};

/// `LANDLOCK_CREATE_RULESET_VERSION` (include/uapi/linux/landlock.h).
const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1 << 0;

/// The Landlock ABI version, or the reason there is none.
fn landlock_abi() -> Result<u32, String> {
    // SAFETY: with the VERSION flag the kernel reads neither the (null) attribute pointer nor
    // the size (both must be 0), and returns the ABI version or -1 with errno set; no memory is
    // shared with the kernel. landlock(7).
    let r = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if r >= 0 {
        return Ok(r as u32);
    }
    Err(match nix::errno::Errno::last() {
        nix::errno::Errno::ENOSYS => "the kernel was built without Landlock".into(),
        nix::errno::Errno::EOPNOTSUPP => {
            "Landlock is built in but not enabled (add landlock to the lsm= boot parameter)".into()
        }
        e => format!("Landlock probe failed: {e}"),
    })
}

fn status_field(name: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

/// Hidden subcommand name: the child that tries to unshare namespaces.
pub const NAMESPACE_PROBE: &str = "__probe-namespaces";

/// In the probe child: exit 0 when a user and a network namespace could be created.
pub fn namespace_probe_child() -> i32 {
    use nix::sched::{CloneFlags, unshare};
    let flags = if nix::unistd::geteuid().is_root() {
        CloneFlags::CLONE_NEWNET
    } else {
        CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET
    };
    match unshare(flags) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

fn namespaces() -> bool {
    // A child process, because unsharing changes the caller for good.
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            Command::new(exe)
                .arg(NAMESPACE_PROBE)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .ok()
        })
        .is_some_and(|s| s.success())
}

pub fn probe() -> Capabilities {
    let ns = namespaces();
    Capabilities {
        user_namespaces: ns,
        network_namespaces: ns,
        ..probe_without_namespaces()
    }
}

/// Everything but the namespace probe, which starts a process: what guard checks on each run.
pub fn probe_without_namespaces() -> Capabilities {
    let (landlock_abi, landlock_note) = match landlock_abi() {
        Ok(v) => (v, None),
        Err(why) => (0, Some(why)),
    };
    // "Seccomp_filters" appears only in kernels built with CONFIG_SECCOMP_FILTER.
    let seccomp_filter = status_field("Seccomp_filters").is_some();
    let ptrace_scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    Capabilities {
        landlock_abi,
        landlock_note,
        seccomp_filter,
        ptrace_scope,
        // Scope 3 forbids ptrace attach entirely; 1 and 2 still let a parent (or a process with
        // CAP_SYS_PTRACE) trace, which is what a supervisor does.
        ptrace_children: ptrace_scope != Some(3),
        user_namespaces: false,
        network_namespaces: false,
        root: nix::unistd::geteuid().is_root(),
    }
}
