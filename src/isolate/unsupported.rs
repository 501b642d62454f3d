//! Non-Linux systems: no isolation feature is available, and every probe says so.

use super::Capabilities;

pub fn probe() -> Capabilities {
    Capabilities {
        landlock_abi: 0,
        landlock_note: Some("Landlock is Linux-only".into()),
        seccomp_filter: false,
        ptrace_scope: None,
        ptrace_children: false,
        user_namespaces: false,
        network_namespaces: false,
        root: false,
    }
}

/// The user-namespace probe run in a child process: unsupported here.
pub fn namespace_probe_child() -> i32 {
    1
}

pub fn probe_without_namespaces() -> Capabilities {
    probe()
}
