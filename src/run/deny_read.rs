//! `--deny-read` and a profile's `deny_read`: files and directories the command's tree may not
//! read, such as the project's `.env` files during an install. This file turns the entries into
//! the paths to hide; `isolate/mounts.rs` hides them in the command's mount namespace (a file
//! behind an unreadable `/dev/null`, a directory behind an empty read-only tmpfs), because
//! Landlock cannot deny one file inside a tree the command may write (see `hide` there).
//!
//! An entry is a path: absolute, `~/...`, or relative. A profile's relative entries start at the
//! project's root (the repository holding the current directory, not above the home directory;
//! else the current directory), so `npm install` in `packages/web` hides the repository's `.env`
//! too; `--deny-read`'s start at the current directory, as every command line path does. The
//! last component may hold `*`, `?` and `[...]` (`.env.*`), matched against that directory's
//! names, hidden ones included. `**/NAME` is NAME at any depth below the start (dependencies,
//! build output and git's store left out: `SKIPPED_DIRS`). `!ENTRY` takes what it matches out
//! again; only the user's own words may do that (`policy` refuses it in a project's
//! keyfence.toml).

use std::path::{Path, PathBuf};

/// What the built-in `install` profile hides: the project's dotenv files, wherever they are in
/// it (a monorepo keeps one per package), whose keys are the project's and no install script's
/// business; not the committed templates that hold none and that setup scripts copy (`cp
/// .env.example .env`).
pub const INSTALL_DEFAULT: &[&str] = &[
    "**/.env",
    "**/.envrc",
    "**/.env.*",
    "!**/.env.example",
    "!**/.env.sample",
    "!**/.env.template",
    "!**/.env.dist",
];

/// Directories a `**/` entry does not look into: git's store, and the dependencies and build
/// output whose files are other people's (an `.env` shipped in a package is not the user's).
pub const SKIPPED_DIRS: &[&str] = &[
    ".git",
    "node_modules",
    "target",
    ".venv",
    "venv",
    "__pycache__",
    "vendor",
];

/// How many entries a `**/` walk reads before it stops and says so: a walk that never ends
/// would hold every install up.
pub const WALK_LIMIT: usize = 200_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DenyReadError {
    #[error("deny_read `{0}`: `~/` needs HOME")]
    NoHome(String),
    #[error("deny_read `{entry}`: bad pattern: {message}")]
    Pattern { entry: String, message: String },
    #[error(
        "--deny-read {0}: no such file or directory, so there is nothing to hide\nhint: check \
         the path (relative paths start at the current directory)"
    )]
    Missing(String),
}

/// Where relative entries start.
pub struct Bases<'a> {
    /// The project's root (`project_root`): a profile's entries.
    pub project: &'a Path,
    /// The current directory: `--deny-read`'s.
    pub cwd: &'a Path,
    pub home: Option<&'a Path>,
}

/// The paths to hide, sorted, and a note when a `**/` walk stopped at `WALK_LIMIT`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    pub paths: Vec<PathBuf>,
    pub incomplete: Option<String>,
}

/// The paths the profile's entries and the command line's name that exist, less those a `!`
/// entry names and those beneath another hidden directory (hiding that directory hides them).
/// A command line entry without a pattern that names nothing is an error (a typo must not
/// protect nothing silently); a profile's entries apply in every project, and most have no
/// `.env`.
pub fn resolve(
    profile: &[String],
    cli: &[String],
    bases: &Bases,
) -> Result<Resolved, DenyReadError> {
    let mut hide = Vec::new();
    let mut keep = Vec::new();
    let mut keep_names = Vec::new();
    let mut anywhere: Vec<(&Path, globset::GlobSetBuilder, &str)> = Vec::new();
    let mut incomplete = None;
    let entries = profile
        .iter()
        .map(|e| (e, bases.project, false))
        .chain(cli.iter().map(|e| (e, bases.cwd, true)));
    for (entry, base, typed) in entries {
        let (kept, spec) = match entry.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, entry.as_str()),
        };
        if let Some(name) = spec.strip_prefix("**/") {
            let glob = globset::Glob::new(name).map_err(|e| bad(entry, e))?;
            match kept {
                true => keep_names.push(glob.compile_matcher()),
                false => match anywhere.iter_mut().find(|(b, _, _)| *b == base) {
                    Some((_, set, _)) => {
                        set.add(glob);
                    }
                    None => {
                        let mut set = globset::GlobSetBuilder::new();
                        set.add(glob);
                        anywhere.push((base, set, entry.as_str()));
                    }
                },
            }
            continue;
        }
        let found = expand(entry, spec, base, bases.home)?;
        if found.is_empty() && typed && !kept && !has_pattern(spec) {
            return Err(DenyReadError::Missing(entry.clone()));
        }
        match kept {
            true => keep.extend(found),
            false => hide.extend(found),
        }
    }
    // One walk per starting point for all its `**/` entries (the install default has three).
    for (base, set, entry) in anywhere {
        let set = set.build().map_err(|e| bad(entry, e))?;
        // A home directory, or a directory holding homes, is no project to search whole: a
        // global install run from `~` would walk every file the user has.
        let depth = match base.parent().is_none() || bases.home.is_some_and(|h| h.starts_with(base))
        {
            true => Some(1),
            false => None,
        };
        let (found, stopped) = walk(base, depth, &set);
        hide.extend(found);
        if stopped {
            incomplete = Some(format!(
                "deny_read `{entry}`: stopped looking after {WALK_LIMIT} entries below {}; a \
                 match deeper in is not hidden",
                base.display()
            ));
        }
    }
    let keep: Vec<PathBuf> = keep.iter().map(|p| canonical(p)).collect();
    let mut paths: Vec<PathBuf> = hide
        .into_iter()
        .filter(|p| !keep.contains(&canonical(p)))
        .filter(|p| {
            // By its own name or, for a link, its target's: as a kept path keeps its links.
            let target = canonical(p);
            let names = [p.file_name(), target.file_name()];
            !keep_names
                .iter()
                .any(|g| names.iter().flatten().any(|n| g.is_match(n)))
        })
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
    Ok(Resolved { paths, incomplete })
}

/// The project's root for `cwd`: the nearest directory holding `.git`, up to but not including
/// the home directory (a home kept in git for its dotfiles is not a project), else `cwd`.
pub fn project_root(cwd: &Path, home: Option<&Path>) -> PathBuf {
    for d in cwd.ancestors() {
        if home == Some(d) {
            break;
        }
        if d.join(".git").symlink_metadata().is_ok() {
            return d.to_path_buf();
        }
    }
    cwd.to_path_buf()
}

fn bad(entry: &str, e: globset::Error) -> DenyReadError {
    DenyReadError::Pattern {
        entry: entry.to_string(),
        message: e.kind().to_string(),
    }
}

/// Every entry below `base` (to `max_depth`) whose name `glob` matches, outside `SKIPPED_DIRS`;
/// and whether the
/// walk stopped at `WALK_LIMIT`. A link is found by its name, and not followed: hiding it hides
/// its target (`.env -> ~/secrets/app.env`), where the mount lands.
///
/// One thread: this runs before keyfence enters its mount namespace, and `unshare` refuses a
/// process whose joined threads the kernel has not yet taken out of its thread group (a race
/// after `join`). Two threads saved 2 of 12 ms on a 20,000-file repository.
fn walk(base: &Path, max_depth: Option<usize>, glob: &globset::GlobSet) -> (Vec<PathBuf>, bool) {
    let mut found = Vec::new();
    let entries = ignore::WalkBuilder::new(base)
        .max_depth(max_depth)
        .standard_filters(false)
        .follow_links(false)
        .filter_entry(|e| {
            !(e.file_type().is_some_and(|t| t.is_dir())
                && e.depth() > 0
                && e.file_name()
                    .to_str()
                    .is_some_and(|n| SKIPPED_DIRS.contains(&n)))
        })
        .build();
    for (n, entry) in entries.filter_map(|e| e.ok()).enumerate() {
        if n >= WALK_LIMIT {
            return (found, true);
        }
        if entry.depth() > 0 && glob.is_match(entry.file_name()) {
            found.push(entry.into_path());
        }
    }
    (found, false)
}

/// The existing paths one entry names (`spec` is the entry less a leading `!`).
fn expand(
    entry: &str,
    spec: &str,
    base: &Path,
    home: Option<&Path>,
) -> Result<Vec<PathBuf>, DenyReadError> {
    let path = match spec.strip_prefix("~/") {
        Some(rest) => home
            .ok_or_else(|| DenyReadError::NoHome(entry.to_string()))?
            .join(rest),
        None => base.join(spec),
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
        .map_err(|e| bad(entry, e))?
        .compile_matcher();
    let dir = path.parent().unwrap_or(base);
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

/// How many paths a message names before it counts the rest: a monorepo can hold hundreds of
/// `.env` files, and one line on stderr should stay one line.
const SHOWN_AT_MOST: usize = 8;

/// The paths for a message: relative to the current directory where beneath it, the first
/// `SHOWN_AT_MOST` by name and the rest counted.
pub fn shown(paths: &[PathBuf], cwd: &Path) -> String {
    let mut out: Vec<String> = paths
        .iter()
        .take(SHOWN_AT_MOST)
        .map(|p| match p.strip_prefix(cwd) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
            _ => p.display().to_string(),
        })
        .collect();
    if paths.len() > SHOWN_AT_MOST {
        out.push(format!("and {} more", paths.len() - SHOWN_AT_MOST));
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn at(dir: &Path) -> Bases<'_> {
        Bases {
            project: dir,
            cwd: dir,
            home: None,
        }
    }

    #[test]
    fn the_install_default_hides_dotenv_files_at_any_depth_but_not_templates_or_dependencies() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        for f in [
            ".env",
            ".env.local",
            ".env.example",
            ".envrc",
            "env.js",
            ".environment",
            "apps/web/.env.production",
            "apps/web/.env.sample",
            "node_modules/dep/.env",
            ".venv/lib/.env",
            ".git/.env",
        ] {
            std::fs::create_dir_all(p.join(f).parent().unwrap()).unwrap();
            std::fs::write(p.join(f), "").unwrap();
        }
        let got = resolve(&strings(INSTALL_DEFAULT), &[], &at(p)).unwrap();
        assert_eq!(
            got.paths,
            [".env", ".env.local", ".envrc", "apps/web/.env.production"].map(|f| p.join(f))
        );
        assert_eq!(got.incomplete, None);
    }

    #[test]
    fn a_profiles_entries_start_at_the_project_root_and_the_command_lines_at_the_current_directory()
    {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let sub = root.join("packages/web");
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(root.join("secrets.json"), "").unwrap();
        std::fs::write(sub.join("secrets.json"), "").unwrap();
        let project = project_root(&sub, None);
        assert_eq!(project, root);
        let bases = Bases {
            project: &project,
            cwd: &sub,
            home: None,
        };
        let got = resolve(&strings(&["secrets.json"]), &[], &bases).unwrap();
        assert_eq!(got.paths, [root.join("secrets.json")]);
        let typed = strings(&["secrets.json"]);
        let got = resolve(&[], &typed, &bases).unwrap();
        assert_eq!(got.paths, [sub.join("secrets.json")]);
        // A home kept in git is not the project of everything under it.
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".git")).unwrap();
        std::fs::create_dir_all(home.join("code")).unwrap();
        assert_eq!(
            project_root(&home.join("code"), Some(&home)),
            home.join("code")
        );
    }

    #[test]
    fn paths_may_start_at_home_and_missing_ones_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (proj, home) = (dir.path().join("proj"), dir.path().join("home"));
        std::fs::create_dir_all(proj.join("secrets")).unwrap();
        std::fs::create_dir_all(home.join("clients")).unwrap();
        std::fs::write(proj.join("secrets/a.json"), "").unwrap();
        let entries = strings(&["secrets", "secrets/a.json", "~/clients", "nothing-here"]);
        let bases = Bases {
            project: &proj,
            cwd: &proj,
            home: Some(&home),
        };
        let got = resolve(&entries, &[], &bases).unwrap();
        // secrets/a.json goes with its directory.
        assert_eq!(got.paths, [home.join("clients"), proj.join("secrets")]);
        assert_eq!(
            resolve(&strings(&["~/x"]), &[], &at(&proj)),
            Err(DenyReadError::NoHome("~/x".into()))
        );
    }

    #[test]
    fn a_missing_path_the_user_typed_is_an_error_but_a_pattern_matching_nothing_is_not() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            resolve(&[], &strings(&["secrets.json"]), &at(dir.path())),
            Err(DenyReadError::Missing("secrets.json".into()))
        );
        let got = resolve(&[], &strings(&["*.pem", "**/*.pem", "!x"]), &at(dir.path()));
        assert_eq!(got, Ok(Resolved::default()));
    }

    #[test]
    fn a_bang_entry_keeps_a_path_or_a_name_and_its_links() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("api")).unwrap();
        for f in [".env", ".env.local", "api/.env", "api/.env.local"] {
            std::fs::write(p.join(f), "").unwrap();
        }
        std::os::unix::fs::symlink(p.join(".env.local"), p.join(".env.dev")).unwrap();
        let got = resolve(&strings(&[".env*", "!.env.local"]), &[], &at(p)).unwrap();
        assert_eq!(got.paths, [p.join(".env")]);
        let got = resolve(
            &strings(&["**/.env*"]),
            &strings(&["!**/.env.local"]),
            &at(p),
        );
        // `.env.dev` is a link to `.env.local`: kept with it.
        assert_eq!(got.unwrap().paths, [p.join(".env"), p.join("api/.env")]);
    }

    #[test]
    fn from_the_home_directory_or_the_root_a_double_star_looks_in_that_directory_only() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        for f in [".env", "code/app/.env"] {
            std::fs::create_dir_all(home.join(f).parent().unwrap()).unwrap();
            std::fs::write(home.join(f), "").unwrap();
        }
        let bases = Bases {
            project: &home,
            cwd: &home,
            home: Some(&home),
        };
        let got = resolve(&strings(&["**/.env"]), &[], &bases).unwrap();
        assert_eq!(got.paths, [home.join(".env")]);
        let code = home.join("code");
        let bases = Bases {
            project: &code,
            cwd: &code,
            home: Some(&home),
        };
        let got = resolve(&strings(&["**/.env"]), &[], &bases).unwrap();
        assert_eq!(got.paths, [code.join("app/.env")]);
    }

    #[test]
    fn a_long_list_is_named_in_part_and_counted() {
        let cwd = Path::new("/p");
        let few: Vec<PathBuf> = ["a/.env", "/elsewhere/.env"].map(|f| cwd.join(f)).to_vec();
        assert_eq!(shown(&few, cwd), "a/.env, /elsewhere/.env");
        let many: Vec<PathBuf> = (0..20)
            .map(|i| cwd.join(format!("app{i:02}/.env")))
            .collect();
        let said = shown(&many, cwd);
        assert!(said.starts_with("app00/.env, app01/.env"), "{said}");
        assert!(said.ends_with("app07/.env, and 12 more"), "{said}");
    }

    #[test]
    fn a_bad_pattern_names_its_entry() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve(&strings(&["[.env"]), &[], &at(dir.path())).unwrap_err();
        assert!(matches!(err, DenyReadError::Pattern { ref entry, .. } if entry == "[.env"));
    }
}
