//! The descendant fence: what guard's nested Landlock domain denies the processes the command
//! starts, while the command itself (outside that domain) keeps it all.
//!
//! - Reading credential files and keyfence's store: every file an audit source reads for keys,
//!   the credential directories of `isolate::sandbox::DENIED_IN_HOME`, the vault and its key
//!   file (so `keyfence secret get` run below an agent fails, and says why). Landlock only
//!   allows, so the rules are the sandbox's computed cover of `/` minus those paths
//!   (`isolate::sandbox::cover`): each sibling off the way to a denied path is readable whole,
//!   the directories on the way only listable. Rules bind to inodes, so renaming a denied file
//!   keeps it denied, and a hard link or rename into a readable directory is refused by the
//!   kernel (a reparented file may not gain rights; Landlock's "refer" rule). What this costs: a
//!   file created later directly in one of those directories (a new `~/.foo`) is not readable
//!   by the descendants either.
//! - From Landlock ABI 6: sending signals to, and connecting to abstract unix sockets of,
//!   processes outside the domain: no `kill -SEGV $PPID` to make the command dump core, no
//!   abstract D-Bus or X11 socket of the session. Each process the command starts directly is
//!   its own domain, so one command the agent runs cannot signal another's processes either.
//!
//! The ruleset is built once, by the supervising keyfence before the helper starts, and left
//! open at `tracer::RULESET_FD` for the tree to restrict itself with (one injected call per
//! process). Where a process closed that descriptor, the tracer rebuilds the same ruleset in it
//! from `rules`, one injected call per rule.

use std::ffi::CString;
#[cfg(target_os = "linux")]
use std::path::Path;
use std::path::PathBuf;

// Landlock's access and scope bits (include/uapi/linux/landlock.h).
pub const ACCESS_READ_FILE: u64 = 1 << 2;
pub const ACCESS_READ_DIR: u64 = 1 << 3;
pub const ACCESS_MAKE_BLOCK: u64 = 1 << 11;
pub const ACCESS_REFER: u64 = 1 << 13;
pub const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
pub const SCOPE_SIGNAL: u64 = 1 << 1;

/// The descendants' ruleset, as data: the same for the shared descriptor and for a rebuild.
#[derive(Debug, Clone)]
pub struct Fence {
    /// The Landlock ABI the rights were chosen for.
    pub abi: u32,
    /// Handled file-system rights.
    pub handled: u64,
    /// Scopes (ABI 6): signals and abstract unix sockets.
    pub scoped: u64,
    /// Path-beneath rules: each path and the rights granted beneath it.
    pub rules: Vec<(CString, u64)>,
    /// What is denied.
    pub denied: Vec<PathBuf>,
    /// The directories on the way to a denied path, which the rules list entry by entry, and
    /// their modification times then: an entry added since has no rule (`is_stale`).
    pub listed: Vec<(PathBuf, Option<std::time::SystemTime>)>,
}

impl Fence {
    /// The fence denying `deny` (files or directories) on a kernel with Landlock ABI `abi`.
    #[cfg(target_os = "linux")]
    pub fn new(deny: &[PathBuf], abi: u32) -> Fence {
        // "Make block device" is granted everywhere: alone it makes a domain that restricts
        // nothing. "Refer" (linking or renaming across directories; every domain forbids it
        // unless handled and granted) goes with the directories granted whole, and not to the
        // directories on the way to a denied path nor to the denied ones: granted there, a
        // descendant could `ln ~/.aws/credentials ~/x/c` into a directory it just made, which
        // the next fence (made again for the new directory, or the next run's) grants whole.
        let refer = if abi >= 2 { ACCESS_REFER } else { 0 };
        let always = ACCESS_MAKE_BLOCK;
        let read = ACCESS_READ_FILE | ACCESS_READ_DIR;
        let scoped = if abi >= 6 {
            SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        } else {
            0
        };
        let cover = crate::isolate::sandbox::cover(Path::new("/"), deny);
        let mut rules = Vec::with_capacity(cover.whole.len() + cover.partial.len() + 1);
        let mut push = |path: &Path, access: u64| {
            if let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) {
                rules.push((c, access));
            }
        };
        push(Path::new("/"), always);
        for p in &cover.partial {
            push(p, ACCESS_READ_DIR);
        }
        for p in &cover.whole {
            // A rule on a file may grant only file rights: "read dir" there is EINVAL.
            let is_dir = std::fs::metadata(p).is_ok_and(|m| m.is_dir());
            push(
                p,
                if is_dir {
                    read | refer
                } else {
                    ACCESS_READ_FILE
                },
            );
        }
        let listed = cover
            .partial
            .iter()
            .map(|p| (p.clone(), modified(p)))
            .collect();
        Fence {
            abi,
            handled: always | refer | read,
            scoped,
            rules,
            denied: deny.to_vec(),
            listed,
        }
    }

    /// Whether an entry was added to (or removed from) a directory the rules list entry by
    /// entry since the fence was made: a new project directory in the home, say, which the
    /// descendants could then not read. The tracer then builds a fresh fence for the next
    /// process the command starts (a few stats per process the command starts).
    #[cfg(target_os = "linux")]
    pub fn is_stale(&self) -> bool {
        self.listed.iter().any(|(p, t)| modified(p) != *t)
    }

    /// The size of `struct landlock_ruleset_attr` this ABI reads: `handled_access_fs`, then
    /// `handled_access_net` (ABI 4), then `scoped` (ABI 6).
    pub fn attr_size(&self) -> usize {
        match self.abi {
            0..=3 => 8,
            4 | 5 => 16,
            _ => 24,
        }
    }

    /// `struct landlock_ruleset_attr`, `attr_size` bytes of it.
    pub fn attr(&self) -> Vec<u8> {
        let mut a = Vec::with_capacity(24);
        a.extend_from_slice(&self.handled.to_ne_bytes());
        a.extend_from_slice(&0u64.to_ne_bytes());
        a.extend_from_slice(&self.scoped.to_ne_bytes());
        a.truncate(self.attr_size());
        a
    }
}

/// Makes room for `tracer::RULESET_FD` in this process's descriptor table while it has a single
/// thread: growing the table of a process with two threads waits for an RCU grace period
/// (`expand_fdtable`), 10-15 ms once the phantom proxy's thread runs (bench/README.md).
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub fn reserve_descriptor() {
    use nix::fcntl::{FcntlArg, fcntl};
    if let Ok(fd) = fcntl(
        std::io::stdin(),
        FcntlArg::F_DUPFD_CLOEXEC(super::tracer::RULESET_FD),
    ) {
        // The duplicate is ours; the table keeps its size after the close.
        let _ = nix::unistd::close(fd);
    }
}

#[cfg(target_os = "linux")]
fn modified(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The descendants' ruleset could not be built: guard does not start the command.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the descendants' ruleset: {0}")]
pub struct RulesetError(String);

/// Builds the fence's ruleset and leaves it open, not close-on-exec, in this process for the
/// helper (and through it the tree) to inherit: at `tracer::RULESET_FD` or the first free
/// number above, which it returns. A path that vanished since the cover was computed gets no
/// rule, so it is denied: fails closed.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub fn share(fence: &Fence) -> Result<i32, RulesetError> {
    use landlock::{
        AccessFs, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
        RulesetCreatedAttr, Scope,
    };
    use std::os::fd::OwnedFd;
    use std::os::unix::ffi::OsStrExt;
    let fail = |e: &dyn std::fmt::Display| RulesetError(e.to_string());
    let handled = BitFlags::<AccessFs>::from_bits_truncate(fence.handled);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(handled)
        .map_err(|e| fail(&e))?;
    if fence.scoped != 0 {
        ruleset = ruleset
            .scope(Scope::AbstractUnixSocket | Scope::Signal)
            .map_err(|e| fail(&e))?;
    }
    let mut created = ruleset.create().map_err(|e| fail(&e))?;
    for (path, access) in &fence.rules {
        let path = Path::new(std::ffi::OsStr::from_bytes(path.to_bytes()));
        let Ok(fd) = PathFd::new(path) else { continue };
        let access = BitFlags::<AccessFs>::from_bits_truncate(*access);
        created = created
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| fail(&e))?;
    }
    let fd = Option::<OwnedFd>::from(created).ok_or_else(|| fail(&"no descriptor"))?;
    // F_DUPFD leaves the copy without close-on-exec; the copy is deliberately never closed:
    // the helper inherits it and leaves it to the tree. The original closes when `fd` drops.
    use nix::fcntl::{FcntlArg, fcntl};
    fcntl(&fd, FcntlArg::F_DUPFD(super::tracer::RULESET_FD)).map_err(|e| fail(&e))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_rules_grant_everything_but_the_denied_paths() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(home.join(".aws")).unwrap();
        std::fs::create_dir_all(home.join("proj")).unwrap();
        std::fs::write(home.join(".aws/credentials"), "x").unwrap();
        let f = Fence::new(&[home.join(".aws")], 7);
        let granted = |p: &Path| {
            f.rules
                .iter()
                .filter(|(r, _)| p.starts_with(std::ffi::OsStr::from_bytes(r.to_bytes())))
                .fold(0, |acc, (_, a)| acc | a)
        };
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(
            granted(&home.join(".aws/credentials")) & ACCESS_READ_FILE,
            0
        );
        assert_ne!(granted(&home.join("proj/a")) & ACCESS_READ_FILE, 0);
        assert_eq!(f.scoped, SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL);
    }
}
