//! `run --sandbox`: a Landlock domain that keeps a command away from credential stores and lets
//! it write only where the profile says (DESIGN.md §1, P3).
//!
//! Landlock only allows; it cannot say "everything except ~/.aws". So the read rules are
//! computed: walking from `/` towards each denied path, every sibling off that path is allowed
//! whole, and the directories on the path get only `ReadDir` (their listings stay visible, their
//! files do not). Limits, said plainly: a file created later directly inside such a directory
//! (say a new file in `~`) is not readable inside the sandbox, and names under a denied
//! directory can still be listed. Keyfence applies the domain to itself just before it starts
//! the command, so the command and everything it starts inherit it and no `unsafe` `pre_exec`
//! is needed; the supervisor needs no file access afterwards.

use landlock::{
    ABI, Access, AccessFs, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The newest ABI this code asks for; older kernels get the best they offer.
const ABI_WANTED: ABI = ABI::V6;

#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Paths the command may not read (files or whole directories).
    pub deny_read: Vec<PathBuf>,
    /// Paths the command may write beneath.
    pub writable: Vec<PathBuf>,
}

/// Credential stores under a home directory denied by default beyond the `credfile` audit's
/// list (`audit::credfile::HOME_FILES`): whole directories of keys and cloud CLIs, and
/// keyfence's own store and key file.
pub const DENIED_IN_HOME: &[&str] = &[
    ".aws",
    ".ssh",
    ".gnupg",
    ".kube",
    ".azure",
    ".config/gcloud",
    ".config/gh",
    ".config/hub",
    ".cargo/credentials",
    ".vault-token",
    ".local/share/keyfence",
    ".local/state/keyfence",
];

/// Where installs and builds may write besides the project: temp and cache directories.
pub const WRITABLE_IN_HOME: &[&str] = &[
    ".cache",
    ".npm",
    ".cargo/registry",
    ".cargo/git",
    ".pnpm-store",
    ".bun",
];

impl Policy {
    /// The default policy for a command run in `project` by a user whose home is `home`.
    pub fn default_for(home: &Path, project: &Path, store_dirs: &[PathBuf]) -> Policy {
        let mut deny_read: Vec<PathBuf> = crate::audit::credfile::HOME_FILES
            .iter()
            .chain(DENIED_IN_HOME)
            .map(|r| home.join(r))
            .collect();
        deny_read.extend(store_dirs.iter().cloned());
        let mut writable = vec![
            project.to_path_buf(),
            PathBuf::from("/tmp"),
            PathBuf::from("/var/tmp"),
            PathBuf::from("/dev"),
        ];
        writable.extend(WRITABLE_IN_HOME.iter().map(|r| home.join(r)));
        if let Some(t) = std::env::var_os("TMPDIR") {
            writable.push(PathBuf::from(t));
        }
        Policy {
            deny_read,
            writable,
        }
    }
}

/// Normalises a path for comparison: absolute, symlinks resolved where it exists.
fn normal(p: &Path) -> PathBuf {
    p.canonicalize()
        .unwrap_or_else(|_| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
}

/// A cover of a directory tree minus some denied paths: `whole` are roots granted entirely,
/// `partial` the directories on the way to a denied path, which cannot be granted without
/// granting what is beneath them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cover {
    pub whole: Vec<PathBuf>,
    pub partial: Vec<PathBuf>,
}

fn denied_set(deny: &[PathBuf]) -> BTreeSet<PathBuf> {
    // A symlink's target is denied too: ~/.aws may point into a dotfiles checkout.
    deny.iter()
        .flat_map(|p| {
            [
                std::path::absolute(p).unwrap_or_else(|_| p.clone()),
                normal(p),
            ]
        })
        .collect()
}

/// Covers `root` except `deny` (see module doc): every sibling off the way to a denied path is
/// granted whole.
pub fn cover(root: &Path, deny: &[PathBuf]) -> Cover {
    let denied = denied_set(deny);
    let mut c = Cover::default();
    let root = normal(root);
    if denied.iter().any(|d| root.starts_with(d)) {
        return c;
    }
    if denied.iter().any(|d| d.starts_with(&root)) {
        walk(&root, &denied, &mut c);
    } else {
        c.whole.push(root);
    }
    c
}

fn walk(dir: &Path, denied: &BTreeSet<PathBuf>, c: &mut Cover) {
    c.partial.push(dir.to_path_buf());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    for child in children {
        if denied.contains(&child) {
            continue;
        }
        let leads_to_denied = denied.iter().any(|d| d.starts_with(&child));
        // Follow a directory only if a denied path lies beneath it; never through a symlink
        // (its target is handled through the resolved denied paths).
        let is_dir = std::fs::symlink_metadata(&child).is_ok_and(|m| m.is_dir());
        if leads_to_denied && is_dir {
            walk(&child, denied, c);
        } else {
            c.whole.push(child);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("Landlock: {0}")]
    Landlock(#[from] landlock::RulesetError),
    #[error(
        "the kernel does not enforce Landlock, so --sandbox cannot protect anything; refusing to \
         run unprotected\nhint: `keyfence doctor` shows what the kernel offers"
    )]
    NotEnforced,
}

/// What was enforced.
#[derive(Debug)]
pub struct Applied {
    pub fully_enforced: bool,
    pub rules: usize,
}

/// Restricts the current process (and so everything it starts) with `policy`.
pub fn apply(policy: &Policy) -> Result<Applied, SandboxError> {
    let read = cover(Path::new("/"), &policy.deny_read);
    let all = AccessFs::from_all(ABI_WANTED);
    let read_access = AccessFs::from_read(ABI_WANTED);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)?
        .scope(Scope::from_all(ABI_WANTED))?
        .create()?;
    let mut n = 0;
    let mut add = |ruleset: landlock::RulesetCreated, path: &Path, access: BitFlags<AccessFs>| {
        // Files get file rights only: directory rights on a file rule are an error. A path
        // that vanished since the walk gets no rule, and is then denied: fails closed.
        let access = if path.is_dir() {
            access
        } else {
            access & AccessFs::from_file(ABI_WANTED)
        };
        match PathFd::new(path) {
            Ok(fd) => {
                n += 1;
                ruleset.add_rule(PathBeneath::new(fd, access))
            }
            Err(_) => Ok(ruleset),
        }
    };
    // Directories on the way to a denied path: their listings stay visible.
    for p in &read.partial {
        ruleset = add(ruleset, p, AccessFs::ReadDir.into())?;
    }
    for p in &read.whole {
        ruleset = add(ruleset, p, read_access)?;
    }
    // Writable roots are covered the same way, so a denied path beneath one (a home under
    // /tmp, a credential file inside the project) stays denied.
    for root in policy.writable.iter().filter(|p| p.exists()) {
        for p in cover(root, &policy.deny_read).whole {
            ruleset = add(ruleset, &p, all)?;
        }
    }
    let status = ruleset.restrict_self()?;
    match status.ruleset {
        RulesetStatus::NotEnforced => Err(SandboxError::NotEnforced),
        s => Ok(Applied {
            fully_enforced: s == RulesetStatus::FullyEnforced,
            rules: n,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cover_leaves_everything_but_the_denied_paths() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().canonicalize().unwrap();
        for d in [".aws", ".config/gh", ".config/other", "src"] {
            std::fs::create_dir_all(home.join(d)).unwrap();
        }
        std::fs::write(home.join(".bashrc"), "").unwrap();
        std::fs::write(home.join(".aws/credentials"), "").unwrap();
        let deny = [home.join(".aws"), home.join(".config/gh")];
        for root in [Path::new("/"), home.as_path()] {
            let c = cover(root, &deny);
            for allowed in [".bashrc", "src", ".config/other"] {
                assert!(
                    c.whole.contains(&home.join(allowed)),
                    "{allowed} not covered"
                );
            }
            for denied in [".aws", ".aws/credentials", ".config/gh"] {
                let p = home.join(denied);
                assert!(
                    !c.whole.iter().any(|w| p.starts_with(w)),
                    "{denied} reachable"
                );
            }
            assert!(c.partial.contains(&home.join(".config")));
        }
        assert_eq!(cover(&home.join("src"), &deny).whole, [home.join("src")]);
        assert!(cover(&home.join(".aws"), &deny).whole.is_empty());
    }
}
