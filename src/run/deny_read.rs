//! `--deny-read` and a profile's `deny_read`: files and directories the command's tree may not
//! read, such as the project's `.env` during an install. This file turns the entries into the
//! paths to hide; `isolate/mounts.rs` hides them in the command's mount namespace (a file
//! behind an unreadable `/dev/null`, a directory behind an empty read-only tmpfs), because
//! Landlock cannot deny one file inside a tree the command may write (see `hide` there).
//!
//! An entry is a path: absolute, `~/...`, or relative to the current directory (the project).
//! Its last component may hold `*`, `?` and `[...]` (`.env.*`), matched against that
//! directory's names, hidden ones included. `!ENTRY` takes what it matches out again; only the
//! user's own words may do that (`policy` refuses it in a project's keyfence.toml).

use std::path::{Path, PathBuf};

/// What the built-in `install` profile hides: the project's dotenv files, whose keys are the
/// project's and no install script's business, but not the committed templates that hold
/// none and that some setup scripts copy (`cp .env.example .env`).
pub const INSTALL_DEFAULT: &[&str] = &[
    ".env",
    ".envrc",
    ".env.*",
    "!.env.example",
    "!.env.sample",
    "!.env.template",
    "!.env.dist",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DenyReadError {
    #[error("deny_read `{0}`: `~/` needs HOME")]
    NoHome(String),
    #[error("deny_read `{entry}`: bad pattern: {message}")]
    Pattern { entry: String, message: String },
    #[error(
        "--deny-read {0}: no such file or directory, so there is nothing to hide\nhint: check the path (relative paths start at the current directory)"
    )]
    Missing(String),
}

/// The paths `entries` name that exist, less those a `!` entry names and those beneath another
/// hidden directory (hiding that directory hides them); sorted. `must_exist`: entries without a
/// pattern that name nothing are an error (a typo on the command line must not protect
/// nothing silently; a profile's entries apply in every project, and most have no `.env`).
pub fn resolve(
    entries: &[String],
    must_exist: &[String],
    cwd: &Path,
    home: Option<&Path>,
) -> Result<Vec<PathBuf>, DenyReadError> {
    let mut hide = Vec::new();
    let mut keep = Vec::new();
    for entry in entries {
        let (out, spec) = match entry.strip_prefix('!') {
            Some(rest) => (&mut keep, rest),
            None => (&mut hide, entry.as_str()),
        };
        let found = expand(entry, spec, cwd, home)?;
        if found.is_empty() && must_exist.contains(entry) && !has_pattern(spec) {
            return Err(DenyReadError::Missing(entry.clone()));
        }
        out.extend(found);
    }
    let keep: Vec<PathBuf> = keep.iter().map(|p| canonical(p)).collect();
    let mut paths: Vec<PathBuf> = hide
        .into_iter()
        .filter(|p| !keep.contains(&canonical(p)))
        .collect();
    paths.sort();
    paths.dedup();
    let dirs: Vec<PathBuf> = paths
        .iter()
        .filter(|p| p.is_dir())
        .map(|p| canonical(p))
        .collect();
    paths.retain(|p| {
        let c = canonical(p);
        !dirs.iter().any(|d| c != *d && c.starts_with(d))
    });
    Ok(paths)
}

/// The existing paths one entry names (`spec` is the entry less a leading `!`).
fn expand(
    entry: &str,
    spec: &str,
    cwd: &Path,
    home: Option<&Path>,
) -> Result<Vec<PathBuf>, DenyReadError> {
    let path = match spec.strip_prefix("~/") {
        Some(rest) => home
            .ok_or_else(|| DenyReadError::NoHome(entry.to_string()))?
            .join(rest),
        None => cwd.join(spec),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !has_pattern(&name) {
        return Ok(match std::fs::symlink_metadata(&path) {
            Ok(_) => vec![path],
            Err(_) => Vec::new(),
        });
    }
    let glob = globset::Glob::new(&name)
        .map_err(|e| DenyReadError::Pattern {
            entry: entry.to_string(),
            message: e.kind().to_string(),
        })?
        .compile_matcher();
    let dir = path.parent().unwrap_or(cwd);
    let Ok(names) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    Ok(names
        .filter_map(|e| e.ok())
        .filter(|e| glob.is_match(e.file_name()))
        .map(|e| e.path())
        .collect())
}

fn has_pattern(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Where a path leads, for comparing: a link and its target are the same thing to hide (the
/// mount lands on the target).
fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

/// The paths for a message: relative to the current directory where beneath it.
pub fn shown(paths: &[PathBuf], cwd: &Path) -> String {
    paths
        .iter()
        .map(|p| match p.strip_prefix(cwd) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
            _ => p.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_install_default_hides_dotenv_files_but_not_their_templates() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        for f in [
            ".env",
            ".env.local",
            ".env.production",
            ".env.example",
            ".env.sample",
            ".envrc",
            "env.js",
            ".environment",
        ] {
            std::fs::write(p.join(f), "").unwrap();
        }
        let got = resolve(&strings(INSTALL_DEFAULT), &[], p, None).unwrap();
        assert_eq!(
            got,
            [".env", ".env.local", ".env.production", ".envrc"].map(|f| p.join(f))
        );
    }

    #[test]
    fn paths_are_relative_to_the_project_or_home_and_missing_ones_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (proj, home) = (dir.path().join("proj"), dir.path().join("home"));
        std::fs::create_dir_all(proj.join("secrets")).unwrap();
        std::fs::create_dir_all(home.join("clients")).unwrap();
        std::fs::write(proj.join("secrets/a.json"), "").unwrap();
        let entries = strings(&["secrets", "secrets/a.json", "~/clients", "nothing-here"]);
        let got = resolve(&entries, &[], &proj, Some(&home)).unwrap();
        // secrets/a.json goes with its directory.
        assert_eq!(got, [home.join("clients"), proj.join("secrets")]);
        assert_eq!(
            resolve(&strings(&["~/x"]), &[], &proj, None),
            Err(DenyReadError::NoHome("~/x".into()))
        );
    }

    #[test]
    fn a_missing_path_the_user_typed_is_an_error_but_a_pattern_matching_nothing_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let typed = strings(&["secrets.json"]);
        assert_eq!(
            resolve(&typed, &typed, dir.path(), None),
            Err(DenyReadError::Missing("secrets.json".into()))
        );
        let pattern = strings(&["*.pem"]);
        assert_eq!(resolve(&pattern, &pattern, dir.path(), None), Ok(vec![]));
    }

    #[test]
    fn a_bang_entry_keeps_a_path_and_its_links() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join(".env"), "").unwrap();
        std::fs::write(p.join(".env.local"), "").unwrap();
        std::os::unix::fs::symlink(p.join(".env.local"), p.join(".env.dev")).unwrap();
        let got = resolve(&strings(&[".env*", "!.env.local"]), &[], p, None).unwrap();
        assert_eq!(got, [p.join(".env")]);
    }

    #[test]
    fn a_bad_pattern_names_its_entry() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve(&strings(&["[.env"]), &[], dir.path(), None).unwrap_err();
        assert!(matches!(err, DenyReadError::Pattern { ref entry, .. } if entry == "[.env"));
    }
}
