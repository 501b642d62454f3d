//! What `fix` looks at, and the keys in it: the home's shell start-up files (and those they
//! `source`), the Claude Code settings files (the user's and the project's) and the project's
//! `.env` files, each read once (a symlinked start-up file is edited at its target), plus the
//! credential files others can read.

use super::{FixError, Places, Scan, dotenv, settings, shell};
use crate::audit::{self, Context, Settings};
use crate::syntax;
use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Start-up files larger than this are not shell configuration anyone edits by hand.
const MAX_FILE: u64 = 4 * 1024 * 1024;

/// The credential files (those `audit`'s credfile source reads) that others can read: what
/// audit's `credential-file-permissions` asks to `chmod 600`, with their modes.
pub fn loose_credential_files(home: &Path) -> Vec<(PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    crate::audit::credfile::HOME_FILES
        .iter()
        .map(|rel| home.join(rel))
        .filter_map(|p| {
            let meta = std::fs::metadata(&p).ok()?;
            let mode = meta.permissions().mode() & 0o7777;
            (meta.is_file() && mode & 0o077 != 0).then_some((p, mode))
        })
        .collect()
}

/// Reads the home's shell start-up files, the Claude Code settings files (the user's and the
/// project's) and the project's `.env` files. Settings that are not valid JSON stop everything:
/// such a file may hold a key that cannot be seen, and Claude Code would not read it either.
pub fn scan(places: &Places) -> Result<Scan, FixError> {
    let mut out = Scan::default();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let settings = Settings {
        home: places.home.clone(),
        etc: PathBuf::from("/etc"),
        projects: vec![places.project.clone()],
        sources: Vec::new(),
        env: Vec::new(),
        max_filesize: MAX_FILE,
        threads: 1,
    };
    let ctx = Context::new(&settings);
    // Start-up files, then the files they `source` (one level).
    audit::shell::walk_start_up_files(&ctx, 1, |path, dialect| {
        // System files are the administrator's; fix edits only the user's.
        if !path.starts_with(&places.home) || path.starts_with(&settings.etc) {
            return None;
        }
        let (real, text) = read(&path, &mut seen, &mut out.warnings)?;
        let sources = syntax::shell::parse(&text, dialect).sources;
        let shown = shown_path(places, &path, &real, false);
        if let Some(f) = shell::scan_shell(path, real, shown, text, dialect) {
            out.files.push(f);
        }
        Some(sources)
    });
    let claude = places.home.join(".claude");
    let project = places.project.join(".claude");
    for (path, in_project) in [
        (claude.join("settings.json"), false),
        (claude.join("settings.local.json"), false),
        (project.join("settings.json"), true),
        (project.join("settings.local.json"), true),
    ] {
        let Some((real, text)) = read(&path, &mut seen, &mut out.warnings) else {
            continue;
        };
        let shown = shown_path(places, &path, &real, in_project);
        if let Some(f) = settings::scan_settings(path, real, shown, text)? {
            out.files.push(f);
        }
    }
    for path in project_dotenv_files(&places.project) {
        let Some((real, text)) = read(&path, &mut seen, &mut out.warnings) else {
            continue;
        };
        let shown = shown_path(places, &path, &real, true);
        if let Some(f) = dotenv::scan_dotenv(path, real, shown, text) {
            out.files.push(f);
        }
    }
    Ok(out)
}

/// The `.env` and `.env.*` files at the top of the project, as the dotenv libraries load them
/// from the working directory. `.envrc` is direnv's shell script (the shell fix applies to it
/// by hand), and keyfence's own backups are not the project's.
fn project_dotenv_files(project: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(project) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                audit::dotenv::is_dotenv_name(n) && n != ".envrc" && !n.contains(".keyfence-bak")
            })
        })
        .collect();
    files.sort();
    files
}

/// The file's real path and bytes; `None` (with a warning when it exists) if it cannot be read,
/// is not a regular file, or was already read under another name.
fn read(
    path: &Path,
    seen: &mut HashSet<PathBuf>,
    warnings: &mut Vec<String>,
) -> Option<(PathBuf, Zeroizing<Vec<u8>>)> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            warnings.push(format!("cannot read {}: {e}", path.display()));
            return None;
        }
    };
    if !meta.is_file() {
        return None;
    }
    if meta.len() > MAX_FILE {
        warnings.push(format!(
            "skipped {}: {} bytes is too large for a start-up or settings file",
            path.display(),
            meta.len()
        ));
        return None;
    }
    let real = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if !seen.insert(real.clone()) {
        return None;
    }
    match fs::read(path) {
        Ok(b) => Some((real, Zeroizing::new(b))),
        Err(e) => {
            warnings.push(format!("cannot read {}: {e}", path.display()));
            None
        }
    }
}

/// `~/.bashrc` for files in the home, `.claude/settings.json` for the project's; a symlink
/// also shows where it points.
fn shown_path(places: &Places, path: &Path, real: &Path, in_project: bool) -> String {
    let shown = match path.strip_prefix(&places.project) {
        Ok(rel) if in_project => rel.display().to_string(),
        _ => audit::display_path(&places.home, path),
    };
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if is_link {
        format!("{shown} (-> {})", audit::display_path(&places.home, real))
    } else {
        shown
    }
}
