//! What `run` settled before acting, as ripgrep turns its arguments into high-level settings
//! once. `command/run.rs` builds one [`Settings`] from the arguments and the resolved profile
//! (`settle`); the code that acts — the network restriction, the sandbox's Landlock domain,
//! the trace recorder, starting and supervising the command — reads only this, never the raw
//! arguments. It holds values (the plan's secrets, the leases) but does nothing with them.

use super::env::Plan;
use super::sandbox::Sandbox;
use crate::policy::{Launch, NetPolicy};
use crate::provider::Leases;
use std::ffi::OsString;
use std::path::PathBuf;

pub struct Settings {
    /// The command as the user gave it.
    pub command: Vec<OsString>,
    /// `-v`: say what was dropped, injected and enforced (names only).
    pub verbose: bool,
    /// The command's environment (scrubbed, injected, canaries planted) and every value it
    /// must not show: dropped, injected, and the real keys behind stand-ins.
    pub plan: Plan,
    pub protections: Protections,
    /// `--net` made stricter by the profile's.
    pub net: NetPolicy,
    /// `--trace`.
    pub trace: Option<Trace>,
    /// `--sandbox`: its mount namespace is already entered, its Landlock domain not yet.
    pub sandbox: Option<Sandbox>,
    /// `--deny-read` and the profile's `deny_read`.
    pub deny_read: DenyRead,
    /// Leases and child tokens, revoked when the command ends (or when this is dropped).
    pub leases: Leases,
    /// Whether keyfence stays as the command's supervisor instead of exec'ing it: to mask,
    /// to trace or guard, to revoke leases, or to report on the sandbox when it ends.
    pub supervise: bool,
    /// `HOME`, if set and not empty: the credential stores the sandbox, the fence and the
    /// trace know are beneath it.
    pub home: Option<PathBuf>,
}

/// What protects the values beyond the scrub and the injections of the plan.
pub struct Protections {
    /// Mask the values in the command's output (on unless `--no-mask`; always with a phantom).
    pub mask: bool,
    /// `--canary`: dropped secrets came back as registered canaries.
    pub canary: bool,
    /// The variables that hold a stand-in for a key the phantom proxy swaps in: `--phantom`,
    /// the profile's `[[profile.phantom]]` entries and the agent profile's own.
    pub phantoms: Vec<String>,
    /// The tracer of the whole tree that guard and trace share.
    pub tracer: Option<Tracer>,
}

pub struct Tracer {
    /// The kernel's Landlock ABI (`guard::available`).
    pub landlock_abi: u32,
    /// `--guard`: the descendants are fenced, and the agent a launcher command starts, if the
    /// command is one (`policy::launched_agent`). `None` with `--trace` alone, which observes.
    pub guard: Option<Option<Launch>>,
}

/// `--trace`: where the events go and what counts as sensitive in them.
pub struct Trace {
    /// The trace file; `None` with a bare `--trace`: the summary on stderr only.
    pub file: Option<PathBuf>,
    /// The paths the trace calls sensitive: the sandbox's credential stores (under the sandbox,
    /// the ones it denied).
    pub sensitive: Vec<PathBuf>,
    /// Under the sandbox, where it lets the tree write: what it refused is reported as blocked.
    pub sandbox_writable: Option<Vec<PathBuf>>,
}

/// What the command's tree may not read (`run/deny_read.rs`).
pub struct DenyRead {
    /// The paths hidden in the command's mount namespace, already entered (by the sandbox, by
    /// guard, or for these alone).
    pub hidden: Vec<PathBuf>,
    /// Neither the sandbox nor guard's fence puts the command in a Landlock domain, which is
    /// what keeps it from unmounting them: `enter` gives it one of its own.
    pub seal: bool,
}
