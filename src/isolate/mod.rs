//! Isolation (Linux only): the kernel mechanisms that keep a command tree away from what it
//! must not reach. This is the one switch file: `linux.rs` on Linux, `unsupported.rs`
//! elsewhere, where every isolation feature reports itself unavailable — keyfence never runs
//! unprotected silently.
//!
//! - `linux.rs`: the probes behind `keyfence doctor` and every protection's "is it there"
//!   (Landlock's ABI, seccomp, Yama, user and network namespaces).
//! - `sandbox.rs`: `run --sandbox`, the install sandbox's Landlock domain, and the computed
//!   cover of `/` minus the credential paths that guard's descendant fence reuses.
//! - `mounts.rs`: the private mount namespace that does what Landlock cannot (a project's
//!   `.git` kept read-only, the session's sockets and `deny_read`'s paths hidden), for the
//!   sandbox, for guard, and for `deny_read` alone with its Landlock seal.
//! - `net.rs`: `run --net`, a network namespace or Landlock's TCP rules.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub mod mounts;
#[cfg(target_os = "linux")]
pub mod net;
#[cfg(target_os = "linux")]
pub mod sandbox;
#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(not(target_os = "linux"))]
mod unsupported;
#[cfg(not(target_os = "linux"))]
pub use unsupported::*;

use serde::Serialize;

/// What the running kernel and this process can use.
#[derive(Debug, Clone, Serialize)]
pub struct Capabilities {
    /// Landlock ABI version (0: not available).
    pub landlock_abi: u32,
    /// Why Landlock is unavailable, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub landlock_note: Option<String>,
    /// seccomp filter mode is available.
    pub seccomp_filter: bool,
    /// Yama's ptrace_scope (None: Yama absent, classic ptrace rules).
    pub ptrace_scope: Option<u32>,
    /// A process can trace its own children.
    pub ptrace_children: bool,
    /// This user can create a user namespace (and with it a network namespace).
    pub user_namespaces: bool,
    pub network_namespaces: bool,
    /// Running as root: some kernel checks keyfence relies on do not apply (DESIGN.md §5).
    pub root: bool,
}

/// One protection mode and whether it will work here.
#[derive(Debug, Clone, Serialize)]
pub struct Mode {
    pub name: &'static str,
    pub works: bool,
    pub why: String,
}

impl Capabilities {
    pub fn modes(&self) -> Vec<Mode> {
        let x86_64 = cfg!(target_arch = "x86_64");
        let guard = self.seccomp_filter && self.ptrace_children && x86_64;
        let mut modes = vec![
            Mode {
                name: "scrub / inject",
                works: true,
                why: "needs nothing from the kernel".into(),
            },
            Mode {
                name: "guard",
                works: guard,
                why: match (self.seccomp_filter, self.ptrace_children) {
                    _ if !x86_64 => format!(
                        "guard and trace are written for x86-64; this is {}",
                        std::env::consts::ARCH
                    ),
                    (true, true) => "seccomp filters and ptrace of children are available".into(),
                    (false, _) => "seccomp filter mode is not available".into(),
                    (_, false) => "ptrace of children is forbidden (Yama ptrace_scope 3)".into(),
                },
            },
            Mode {
                name: "sandbox (files)",
                works: self.landlock_abi >= 1,
                why: if self.landlock_abi >= 1 {
                    format!("Landlock ABI {}", self.landlock_abi)
                } else {
                    self.landlock_note
                        .clone()
                        .unwrap_or_else(|| "Landlock is not available".into())
                },
            },
            Mode {
                name: "sandbox (signal and abstract socket scoping)",
                works: self.landlock_abi >= 6,
                why: format!("needs Landlock ABI 6, have {}", self.landlock_abi),
            },
            Mode {
                name: "sandbox --net none",
                works: self.network_namespaces,
                why: if self.network_namespaces {
                    "a new network namespace can be created".into()
                } else {
                    "this user cannot create user and network namespaces".into()
                },
            },
            Mode {
                name: "deny-read (the install profile's .env files)",
                works: self.user_namespaces && self.landlock_abi >= 1,
                why: match (self.user_namespaces, self.landlock_abi >= 1) {
                    (true, true) => {
                        "a mount namespace hides them, a Landlock domain seals it".into()
                    }
                    (false, _) => "this user cannot create user and mount namespaces, so an \
                                   install's .env files stay readable (with a warning) and \
                                   --deny-read refuses"
                        .into(),
                    (_, false) => "Landlock is not available to seal what hides them".into(),
                },
            },
            Mode {
                name: "phantom",
                works: true,
                why: "a loopback proxy needs nothing from the kernel".into(),
            },
        ];
        if self.root {
            modes.push(Mode {
                name: "note",
                works: false,
                why: "running as root: root can read any process's environment and memory, so \
                      guard cannot protect against code running as root"
                    .into(),
            });
        }
        modes
    }
}
