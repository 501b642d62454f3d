//! Tree walks for project files (`file`, `dotenv`) and `keyfence scan`: parallel, byte-oriented,
//! with binary and oversized files counted rather than read.

use crate::detect::{self, Detector, Match, Mode};
use crate::finding::{AuditError, Skipped, Source};
use ignore::{WalkBuilder, WalkState};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Directories an audit of a project does not descend into: history, dependencies, build output.
pub const AUDIT_SKIP_DIRS: &[&str] = &[".git", "node_modules", "target"];
/// A plain scan looks everywhere but in git's own object store.
pub const SCAN_SKIP_DIRS: &[&str] = &[".git"];

pub struct WalkOptions {
    pub skip_dirs: &'static [&'static str],
    pub respect_gitignore: bool,
    pub max_filesize: u64,
    pub threads: usize,
}

/// One secret found in a file, with its position.
pub struct FileMatch {
    pub path: PathBuf,
    pub line: u32,
    pub column: u32,
    pub m: Match,
}

#[derive(Default)]
pub struct ScanResult {
    pub matches: Vec<FileMatch>,
    pub errors: Vec<AuditError>,
    pub skipped: Skipped,
}

fn builder(roots: &[PathBuf], opts: &WalkOptions) -> WalkBuilder {
    let mut b = WalkBuilder::new(&roots[0]);
    for r in &roots[1..] {
        b.add(r);
    }
    let skip = opts.skip_dirs;
    b.hidden(false)
        .parents(opts.respect_gitignore)
        .ignore(false)
        .git_ignore(opts.respect_gitignore)
        .git_global(opts.respect_gitignore)
        .git_exclude(opts.respect_gitignore)
        .follow_links(false)
        // Paths the project has accepted (fixtures of fake keys), in gitignore syntax.
        .add_custom_ignore_filename(".keyfenceignore")
        .threads(opts.threads)
        .filter_entry(move |e| {
            !(e.file_type().is_some_and(|t| t.is_dir())
                && e.file_name().to_str().is_some_and(|n| skip.contains(&n)))
        });
    b
}

/// Calls `visit` for every regular file under `roots` (no reading).
pub fn each_file(
    roots: &[PathBuf],
    opts: &WalkOptions,
    source: Source,
    visit: &(dyn Fn(&Path) + Sync),
) -> Vec<AuditError> {
    let errors = Mutex::new(Vec::new());
    builder(roots, opts).build_parallel().run(|| {
        Box::new(|entry| {
            match entry {
                Ok(e) if e.file_type().is_some_and(|t| t.is_file()) => visit(e.path()),
                Ok(_) => {}
                Err(err) => errors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(walk_error(source, err)),
            }
            WalkState::Continue
        })
    });
    errors.into_inner().unwrap_or_default()
}

fn walk_error(source: Source, err: ignore::Error) -> AuditError {
    let path = match &err {
        ignore::Error::WithPath { path, .. } => Some(path.clone()),
        ignore::Error::WithDepth { err, .. } => match err.as_ref() {
            ignore::Error::WithPath { path, .. } => Some(path.clone()),
            _ => None,
        },
        ignore::Error::Loop { child, .. } => Some(child.clone()),
        _ => None,
    };
    AuditError {
        source,
        path,
        pid: None,
        message: format!("cannot walk: {}", strip_path_prefix(&err.to_string())),
    }
}

/// ignore's messages start with the path, which the error entry already carries.
fn strip_path_prefix(msg: &str) -> String {
    match msg.split_once(": ") {
        Some((head, rest)) if head.starts_with('/') || head.starts_with('.') => rest.to_string(),
        _ => msg.to_string(),
    }
}

/// Scans every file under `roots` (a root may itself be a file) with the detector.
/// `wanted` filters files by path before they are read.
pub fn scan(
    roots: &[PathBuf],
    opts: &WalkOptions,
    source: Source,
    detector: &'static Detector,
    files_seen: &AtomicU64,
    wanted: &(dyn Fn(&Path) -> bool + Sync),
) -> ScanResult {
    let result = Mutex::new(ScanResult::default());
    let walk_errors = Mutex::new(Vec::new());
    builder(roots, opts).build_parallel().run(|| {
        // One read buffer per thread, reused for every file.
        let mut buf = Vec::with_capacity(64 * 1024);
        let result = &result;
        let walk_errors = &walk_errors;
        Box::new(move |entry| {
            let e = match entry {
                Ok(e) => e,
                Err(err) => {
                    walk_errors
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(walk_error(source, err));
                    return WalkState::Continue;
                }
            };
            if !e.file_type().is_some_and(|t| t.is_file()) || !wanted(e.path()) {
                return WalkState::Continue;
            }
            files_seen.fetch_add(1, Ordering::Relaxed);
            let mut local = ScanResult::default();
            scan_file(
                e.path(),
                opts.max_filesize,
                source,
                detector,
                &mut buf,
                &mut local,
            );
            if !local.matches.is_empty()
                || !local.errors.is_empty()
                || local.skipped != Skipped::default()
            {
                let mut r = result.lock().unwrap_or_else(|e| e.into_inner());
                r.matches.extend(local.matches);
                r.errors.extend(local.errors);
                r.skipped.add(&local.skipped);
            }
            WalkState::Continue
        })
    });
    let mut r = result.into_inner().unwrap_or_default();
    r.errors
        .extend(walk_errors.into_inner().unwrap_or_default());
    r.matches
        .sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
    r
}

/// Reads and scans one file into `out`.
pub fn scan_file(
    path: &Path,
    max_filesize: u64,
    source: Source,
    detector: &'static Detector,
    buf: &mut Vec<u8>,
    out: &mut ScanResult,
) {
    let err = |out: &mut ScanResult, msg: String| {
        out.errors.push(AuditError {
            source,
            path: Some(path.to_path_buf()),
            pid: None,
            message: msg,
        })
    };
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return err(out, format!("cannot read: {e}")),
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > max_filesize {
        out.skipped.large_files += 1;
        return;
    }
    buf.clear();
    if let Err(e) = f.by_ref().take(max_filesize + 1).read_to_end(buf) {
        return err(out, format!("cannot read: {e}"));
    }
    // Like git and ripgrep: a NUL byte near the start means binary content.
    if memchr::memchr(0, &buf[..buf.len().min(8192)]).is_some() {
        out.skipped.binary_files += 1;
        return;
    }
    let path = clean(path);
    for m in detector.scan(buf, Mode::Text) {
        let (line, column) = detect::line_col(buf, m.start);
        out.matches.push(FileMatch {
            path: path.clone(),
            line,
            column,
            m,
        });
    }
}

/// `./a/b` → `a/b`, so locations read the same however the root was written.
pub fn clean(path: &Path) -> PathBuf {
    path.strip_prefix("./").unwrap_or(path).to_path_buf()
}
