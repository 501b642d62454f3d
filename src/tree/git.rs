//! Whether a file is tracked by git, or ignored by it, asked of git itself (one `git ls-files`
//! per repository, one `git check-ignore` per question batch) so the answer matches what
//! `git add` would do, including global excludes.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitState {
    Tracked,
    Ignored,
    Untracked,
    /// Not inside a git work tree (or git is not installed).
    NoRepo,
}

#[derive(Default)]
pub struct Repos {
    /// Work-tree top → tracked files (absolute paths).
    tracked: Mutex<HashMap<PathBuf, Option<HashSet<PathBuf>>>>,
}

fn git(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C")
        .arg(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn toplevel(dir: &Path) -> Option<PathBuf> {
    // Walk up looking for `.git` first: most directories are not in a repository, and this
    // avoids starting git for them.
    let mut cur = Some(dir);
    let mut found = false;
    while let Some(d) = cur {
        if d.join(".git").exists() {
            found = true;
            break;
        }
        cur = d.parent();
    }
    if !found {
        return None;
    }
    let out = git(dir)
        .args(["rev-parse", "--show-toplevel"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    Some(PathBuf::from(s.trim_end_matches('\n')))
}

impl Repos {
    pub fn state(&self, path: &Path) -> GitState {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let abs = abs.canonicalize().unwrap_or(abs);
        let Some(dir) = abs.parent() else {
            return GitState::NoRepo;
        };
        let Some(top) = toplevel(dir) else {
            return GitState::NoRepo;
        };
        let tracked = {
            let mut map = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(top.clone())
                .or_insert_with(|| ls_files(&top))
                .as_ref()
                .map(|set| set.contains(&abs))
        };
        match tracked {
            None => GitState::NoRepo,
            Some(true) => GitState::Tracked,
            Some(false) => {
                let ignored = git(&top)
                    .args(["check-ignore", "-q", "--"])
                    .arg(&abs)
                    .stdout(Stdio::null())
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                if ignored {
                    GitState::Ignored
                } else {
                    GitState::Untracked
                }
            }
        }
    }
}

fn ls_files(top: &Path) -> Option<HashSet<PathBuf>> {
    let out = git(top).args(["ls-files", "-z"]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        out.stdout
            .split(|&b| b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| top.join(String::from_utf8_lossy(p).as_ref()))
            .collect(),
    )
}
