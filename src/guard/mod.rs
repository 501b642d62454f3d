//! `run --guard`: the command gets its secrets; nothing it starts can get them (DESIGN.md §1,
//! level guard).
//!
//! keyfence starts itself as a small helper (`keyfence __guard-exec -- COMMAND...`), which
//! installs the seccomp filter (`filter.rs`), waits until keyfence is its tracer, and execs the
//! command with the secrets. From then on keyfence is the ptrace tracer of the whole tree
//! (`tracer.rs`): at every exec below the command it removes the protected variables (by name
//! and by value) from the new program's environment, and it puts every descendant in a nested
//! Landlock domain, so the kernel refuses them the command's `/proc/PID/environ` and memory.
//!
//! Re-executing keyfence (about 2 ms) instead of a `pre_exec` hook keeps this free of `unsafe`
//! and of the deadlock a traced exec inside `Command::spawn` would cause (spawn waits for the
//! exec, the exec waits for the tracer).
//!
//! What breaks under guard, said at run time when it happens: setuid programs run without
//! their privileges (no_new_privs), debuggers and tracers inside the tree, 32-bit programs
//! starting programs, bubblewrap below the command (a process in a Landlock domain may not
//! mount), except Codex CLI's own sandbox, which is let through (`agent_sandbox.rs`).

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod agent_sandbox;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub(crate) mod contain;
pub mod fence;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod filter;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod linux;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub(crate) mod memory;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod tracer;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub use linux::*;

use crate::secret::SecretValue;
use std::ffi::OsString;

/// What must not cross an exec boundary below the command. Zeroed when dropped.
pub struct Protected {
    names: Vec<Vec<u8>>,
    values: Vec<SecretValue>,
    /// When the command is a launcher (`policy::Launch`): the file name of its executable
    /// while it is one (any, if `None`), and of the program it starts as the agent itself.
    /// That one child keeps what the command holds (tracer.rs, `Tracer::launches_agent`).
    launches: Option<(Option<Vec<u8>>, Vec<u8>)>,
}

impl Protected {
    pub fn new(secrets: &[(String, SecretValue)]) -> Protected {
        Protected {
            names: secrets.iter().map(|(n, _)| n.as_bytes().to_vec()).collect(),
            values: secrets.iter().map(|(_, v)| v.clone()).collect(),
            launches: None,
        }
    }

    /// The command is a launcher: the child it starts as `launch.program` is the agent.
    pub fn launching(mut self, launch: Option<&crate::policy::Launch>) -> Protected {
        self.launches = launch.filter(|l| !l.program.is_empty()).map(|l| {
            (
                l.launcher.as_ref().map(|x| x.as_bytes().to_vec()),
                l.program.as_bytes().to_vec(),
            )
        });
        self
    }

    /// Whether the `NAME=value` entry must be removed.
    pub fn drops(&self, entry: &[u8]) -> bool {
        let (name, value) = match memchr::memchr(b'=', entry) {
            Some(eq) => (&entry[..eq], &entry[eq + 1..]),
            None => (entry, &entry[..0]),
        };
        self.names.iter().any(|n| n == name)
            || self.values.iter().any(|v| {
                !v.expose().is_empty() && memchr::memmem::find(value, v.expose()).is_some()
            })
    }
}

/// Whether this process is traced by a keyfence, as every process of a guarded tree is: to
/// explain a refusal of the descendant fence (fence.rs) instead of showing a bare "permission
/// denied". Only for messages: the fence itself does not depend on it.
pub fn supervised() -> bool {
    tracer_pid().is_some_and(|t| {
        std::fs::read_to_string(format!("/proc/{t}/comm")).is_ok_and(|c| c.trim() == "keyfence")
    })
}

/// This process's tracer (`TracerPid` in /proc/self/status), if it has one.
pub fn tracer_pid() -> Option<u32> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))?
        .trim()
        .parse()
        .ok()
        .filter(|&t| t != 0)
}

/// The hidden subcommand the helper runs as.
pub const HELPER: &str = "__guard-exec";

/// Why guard (or the trace) cannot work here. Guard never runs a command unprotected.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error(
        "{what} needs Linux on x86-64, and this keyfence runs on {arch}: guard and trace are not \
         ported to it yet; refusing to run the command unprotected\nhint: the agent profile \
         (and `claude` after `keyfence setup claude`) turns --guard on; without it, \
         `keyfence run -- COMMAND` still keeps keys out of the command's environment and \
         `--sandbox` keeps it from credential files"
    )]
    Platform { what: String, arch: &'static str },
    #[error("--guard needs seccomp filters, which this kernel lacks")]
    NoSeccomp,
    #[error(
        "--guard needs ptrace of child processes (Yama ptrace_scope is 3); refusing to run \
         unprotected"
    )]
    NoPtrace,
    #[error(
        "--guard needs Landlock to keep descendants out of the command's memory ({0}); \
         refusing to run unprotected"
    )]
    NoLandlock(String),
}

/// Whether guard (or the trace, which shares its supervisor) can work here: the Landlock ABI
/// version, or why not, naming `what` the user asked for (`--guard`, `--trace`).
pub fn available(what: &str) -> Result<u32, Unavailable> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        // The seccomp filter and the tracer read x86-64 system-call numbers and registers; the
        // release also ships an aarch64 build, whose users reach this through the agent profile.
        return Err(Unavailable::Platform {
            what: what.to_string(),
            arch: std::env::consts::ARCH,
        });
    }
    let caps = crate::isolate::probe_without_namespaces();
    if !caps.seccomp_filter {
        return Err(Unavailable::NoSeccomp);
    }
    if !caps.ptrace_children {
        return Err(Unavailable::NoPtrace);
    }
    if caps.landlock_abi < 1 {
        return Err(Unavailable::NoLandlock(
            caps.landlock_note
                .unwrap_or_else(|| "not available on this kernel".into()),
        ));
    }
    Ok(caps.landlock_abi)
}

/// The command line that starts `argv` through the helper.
pub fn wrap(argv: &[OsString], trace: bool) -> std::io::Result<Vec<OsString>> {
    let exe = std::env::current_exe()?;
    let mut out = vec![exe.into_os_string(), HELPER.into()];
    if trace {
        out.push("--trace".into());
    }
    out.push("--".into());
    out.extend(argv.iter().cloned());
    Ok(out)
}

/// What the user should know after a guarded run, one line each (for `command/run.rs` to
/// print after `keyfence: guard: `).
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub fn report(summary: &Summary, verbose: bool) -> Vec<String> {
    let mut lines: Vec<String> = summary
        .notices
        .iter()
        .chain(&summary.denied)
        .cloned()
        .collect();
    if summary.left_running > 0 {
        lines.push(format!(
            "stopped {} process(es) the command left running (a guarded tree ends with its \
             command)",
            summary.left_running
        ));
    }
    if verbose {
        lines.push(format!(
            "{} exec(s) checked, {} environment(s) rewritten",
            summary.execs, summary.rewritten
        ));
    }
    lines
}

#[cfg(all(test, target_os = "linux", target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// The summary's lines, in the order and words users saw when guard printed them itself.
    #[test]
    fn the_report_says_notices_refusals_and_leftovers() {
        let summary = Summary {
            execs: 3,
            rewritten: 1,
            denied: vec!["refused x".into()],
            notices: vec!["noticed y".into()],
            left_running: 2,
        };
        let quiet = report(&summary, false);
        assert_eq!(
            quiet,
            [
                "noticed y",
                "refused x",
                "stopped 2 process(es) the command left running (a guarded tree ends with its \
                 command)"
            ]
        );
        let verbose = report(&summary, true);
        assert_eq!(
            verbose.last().map(String::as_str),
            Some("3 exec(s) checked, 1 environment(s) rewritten")
        );
        assert!(report(&Summary::default(), false).is_empty());
    }
}
