//! `shell`: keys assigned in shell start-up files — the user's (bash, zsh, fish, sh/ksh,
//! csh/tcsh), the system's (`/etc/environment`, `/etc/profile.d/*`), systemd's
//! `environment.d`, and files those `source` (one level deep). An exported key reaches every
//! process the shell starts (P1); an unexported one is still plaintext at rest (P4).

use super::{Context, Output, display_path};
use crate::detect::Match;
use crate::finding::{Location, Severity, Source};
use crate::syntax;
use crate::syntax::shell::Dialect;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Start-up files relative to the home directory, with their dialect. The install sandbox
/// denies them (`isolate::sandbox`), so a file added here is kept from sandboxed code too.
pub const HOME_FILES: &[(&str, Dialect)] = &[
    (".profile", Dialect::Posix),
    (".bashrc", Dialect::Posix),
    (".bash_profile", Dialect::Posix),
    (".bash_login", Dialect::Posix),
    (".bash_aliases", Dialect::Posix),
    (".zshenv", Dialect::Posix),
    (".zprofile", Dialect::Posix),
    (".zshrc", Dialect::Posix),
    (".zlogin", Dialect::Posix),
    (".kshrc", Dialect::Posix),
    (".mkshrc", Dialect::Posix),
    (".config/fish/config.fish", Dialect::Fish),
    (".cshrc", Dialect::Csh),
    (".tcshrc", Dialect::Csh),
    (".login", Dialect::Csh),
];

/// Directories whose files are all start-up files (denied whole by the install sandbox).
pub const HOME_DIRS: &[(&str, Dialect, &str)] = &[
    (".config/fish/conf.d", Dialect::Fish, ".fish"),
    (".config/environment.d", Dialect::Posix, ".conf"),
];

const ETC_FILES: &[(&str, Dialect)] = &[
    ("environment", Dialect::Posix),
    ("profile", Dialect::Posix),
    ("bash.bashrc", Dialect::Posix),
    ("zsh/zshenv", Dialect::Posix),
    ("zsh/zshrc", Dialect::Posix),
    ("zshenv", Dialect::Posix),
    ("csh.cshrc", Dialect::Csh),
];

const ETC_DIRS: &[(&str, Dialect, &str)] = &[("profile.d", Dialect::Posix, ".sh")];

/// Files whose every assignment is exported: they are environment lists, not scripts.
fn always_exported(path: &Path) -> bool {
    path.ends_with("environment") || path.parent().is_some_and(|p| p.ends_with("environment.d"))
}

pub fn start_up_files(ctx: &Context) -> Vec<(PathBuf, Dialect)> {
    let home = ctx.home();
    let etc = &ctx.settings.etc;
    let mut files: Vec<(PathBuf, Dialect)> = HOME_FILES
        .iter()
        .map(|(rel, d)| (home.join(rel), *d))
        .collect();
    files.extend(ETC_FILES.iter().map(|(rel, d)| (etc.join(rel), *d)));
    for (base, dirs) in [(home, HOME_DIRS), (etc.as_path(), ETC_DIRS)] {
        for (rel, dialect, ext) in dirs {
            let Ok(rd) = std::fs::read_dir(base.join(rel)) else {
                continue;
            };
            let mut found: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_str().is_some_and(|s| s.ends_with(ext)))
                .collect();
            found.sort();
            files.extend(found.into_iter().map(|p| (p, *dialect)));
        }
    }
    files
}

/// Visits the start-up files, then the files they `source`, breadth-first, at most
/// `max_depth` levels below the start-up files (deeper chains are rare and risk loops through
/// odd paths), each file once. `visit` reads and handles one file and returns its `source`
/// lines (`None`: not read, nothing to follow).
pub(crate) fn walk_start_up_files(
    ctx: &Context,
    max_depth: u32,
    mut visit: impl FnMut(PathBuf, Dialect) -> Option<Vec<syntax::shell::Sourced>>,
) {
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut queue: Vec<(PathBuf, Dialect, u32)> = start_up_files(ctx)
        .into_iter()
        .map(|(p, d)| (p, d, 0))
        .collect();
    let mut i = 0;
    while i < queue.len() {
        let (path, dialect, depth) = queue[i].clone();
        i += 1;
        let key = path.canonicalize().unwrap_or_else(|_| path.clone());
        if !seen.insert(key) {
            continue;
        }
        let Some(sources) = visit(path.clone(), dialect) else {
            continue;
        };
        if depth < max_depth {
            for s in &sources {
                if let Some(p) = resolve(ctx, &path, &s.path) {
                    queue.push((p, dialect, depth + 1));
                }
            }
        }
    }
}

pub fn audit(ctx: &Context, out: &mut Output) {
    for key in start_up_keys(ctx, out) {
        report(ctx, out, key);
    }
}

/// A key assigned in a start-up file.
pub(crate) struct StartUpKey {
    pub path: PathBuf,
    pub assignment: syntax::shell::Assignment,
    pub found: Match,
    /// Whether the shells export it: written with `export` (or the dialect's like), or in a
    /// file that is an environment list.
    pub exported: bool,
}

/// The keys assigned in the start-up files and in the files they `source`: the one answer to
/// "which keys do the user's shells export", for this source's findings and for the secrets
/// `package` says an install script would inherit. Files that cannot be read are errors in
/// `out`.
pub(crate) fn start_up_keys(ctx: &Context, out: &mut Output) -> Vec<StartUpKey> {
    let mut keys = Vec::new();
    walk_start_up_files(ctx, 2, |path, dialect| {
        let text = super::read_optional(ctx, out, Source::Shell, &path)?;
        let parsed = syntax::shell::parse(&text, dialect);
        let all_exported = always_exported(&path);
        for a in parsed.assignments {
            if let Some(m) = ctx.detector.classify_var(&a.name, &a.value) {
                keys.push(StartUpKey {
                    exported: a.exported || all_exported,
                    path: path.clone(),
                    assignment: a,
                    found: m,
                });
            }
        }
        Some(parsed.sources)
    });
    keys
}

/// The finding for a key in a start-up file.
fn report(ctx: &Context, out: &mut Output, key: StartUpKey) {
    let StartUpKey {
        path,
        assignment: a,
        found: m,
        exported,
    } = key;
    let path = path.as_path();
    let shown = display_path(ctx.home(), path);
    let severity = match (exported, m.rule.password) {
        (true, false) => Severity::High,
        (true, true) | (false, false) => Severity::Medium,
        (false, true) => Severity::Low,
    };
    let message = if exported {
        format!(
            "{} exported as {} in {shown}: every process your shell starts inherits it, \
             including agents and install scripts",
            m.rule.kind, a.name
        )
    } else {
        format!(
            "{} assigned to {} in {shown}: not exported, but plaintext at rest that any \
             process of yours can read",
            m.rule.kind, a.name
        )
    };
    out.secret(
        Source::Shell,
        &m,
        severity,
        Location::File {
            path: path.to_path_buf(),
            line: a.line,
            column: Some(a.column),
        },
        message,
        // `fix` edits the user's own start-up files, not the administrator's in /etc.
        if path.starts_with(ctx.home()) {
            format!(
                "run `keyfence fix`: it moves the key into keyfence's store and deletes the \
                 line from {shown}; then run what needs it with `keyfence run --inject {0} \
                 -- COMMAND`",
                a.name
            )
        } else {
            format!(
                "move it into keyfence's store (`keyfence secret set {0} --from-env {0}`), \
                 delete the line from {shown}, and run what needs it with \
                 `keyfence run --inject {0} -- COMMAND`",
                a.name
            )
        },
    );
}

/// Resolves a `source` argument: `~`, `$HOME`/`${HOME}`, and paths relative to the home
/// (shells resolve them against the working directory, which at login is the home). Paths with
/// other variables or command substitutions cannot be known statically and are skipped.
pub(crate) fn resolve(ctx: &Context, from: &Path, raw: &str) -> Option<PathBuf> {
    let home = ctx.home().to_string_lossy().into_owned();
    let mut p = raw.to_string();
    if let Some(rest) = p.strip_prefix("~/") {
        p = format!("{home}/{rest}");
    }
    p = p.replace("${HOME}", &home).replace("$HOME", &home);
    if p.contains('$') || p.contains('`') || p.contains('*') {
        return None;
    }
    let path = PathBuf::from(&p);
    if path.is_absolute() {
        Some(path)
    } else if from.starts_with(&ctx.settings.etc) {
        None
    } else {
        Some(ctx.home().join(path))
    }
}
