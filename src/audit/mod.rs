//! Where secrets are exposed: one module per audit source, each shaped the same way (settings
//! in, findings and errors out), and nothing else: a file name here is a source id. What they
//! share lives beside them: the tree walk and git's answers in `crate::tree`, the parsers in
//! `crate::syntax`; `agent/codex.rs` is the `agent` source's model of Codex's
//! `shell_environment_policy`, which `setup codex` uses too. Nothing here prints.
//!
//! Adding a source is adding `src/audit/<id>.rs` (or `src/audit/<id>/mod.rs` with a file per
//! part, as `ci/` has one per platform and `package/` one per ecosystem) and one line to the
//! `sources!` list below. The parsers the sources read with are in `crate::syntax`.

/// Declares the audit sources from one list, `Variant => module`: each module's `pub mod`,
/// the `Source` enum (its id is the module's name: `--only`, JSON, SARIF), `Source::ALL` in
/// the list's order, and the dispatch in `run_source`. Adding a source is one line here and
/// its file.
macro_rules! sources {
    ($($variant:ident => $module:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Where a finding came from. The id is the audit source's module name in `src/audit/`
        /// (`<id>.rs` or `<id>/`).
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize,
            clap::ValueEnum,
        )]
        #[serde(rename_all = "lowercase")]
        pub enum Source {
            $($variant,)*
        }

        impl Source {
            pub const ALL: &'static [Source] = &[$(Source::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Source::$variant => stringify!($module),)*
                }
            }
        }

        fn run_source(ctx: &Context, source: Source) -> Output {
            let mut out = Output::default();
            match source {
                $(Source::$variant => $module::audit(ctx, &mut out),)*
            }
            out
        }
    };
}

sources! {
    Env => env,
    Shell => shell,
    Dotenv => dotenv,
    History => history,
    Credfile => credfile,
    Gitconfig => gitconfig,
    Agent => agent,
    Proc => proc,
    File => file,
    Store => store,
    Ci => ci,
    Package => package,
}

use crate::detect::{self, Detector, Match};
use crate::finding::{AuditError, Finding, Location, Report, Severity, Skipped};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

/// Everything an audit needs, decided before any work starts.
#[derive(Debug, Clone)]
pub struct Settings {
    pub home: PathBuf,
    /// Directory holding system-wide start-up files (`/etc`).
    pub etc: PathBuf,
    pub projects: Vec<PathBuf>,
    pub sources: Vec<Source>,
    /// The environment the `env` source audits (the process's own, captured once).
    pub env: Vec<(OsString, OsString)>,
    pub max_filesize: u64,
    pub threads: usize,
}

/// Shared state for one audit run.
pub struct Context<'a> {
    pub settings: &'a Settings,
    pub detector: &'static Detector,
    pub git: crate::tree::git::Repos,
    /// Files looked at so far by tree walks, for a progress display.
    pub files_seen: AtomicU64,
}

/// What one source produced.
#[derive(Debug, Default)]
pub struct Output {
    pub findings: Vec<Finding>,
    pub errors: Vec<AuditError>,
    pub skipped: Skipped,
}

impl Output {
    pub fn error(&mut self, source: Source, path: Option<&Path>, message: impl Into<String>) {
        self.errors.push(AuditError {
            source,
            path: path.map(Path::to_path_buf),
            pid: None,
            message: message.into(),
        });
    }

    /// A finding for a detected secret.
    pub fn secret(
        &mut self,
        source: Source,
        m: &Match,
        severity: Severity,
        location: Location,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.findings.push(Finding {
            rule: m.rule.id.to_string(),
            severity,
            source,
            location,
            secret: Some(m.info()),
            message: message.into(),
            fix: fix.into(),
        });
    }

    pub fn merge(&mut self, other: Output) {
        self.findings.extend(other.findings);
        self.errors.extend(other.errors);
        self.skipped.add(&other.skipped);
    }
}

impl<'a> Context<'a> {
    pub fn new(settings: &'a Settings) -> Self {
        Context {
            settings,
            detector: detect::detector(),
            git: crate::tree::git::Repos::default(),
            files_seen: AtomicU64::new(0),
        }
    }

    pub fn home(&self) -> &Path {
        &self.settings.home
    }

    /// Whether `source` is selected for this run.
    pub fn enabled(&self, source: Source) -> bool {
        self.settings.sources.contains(&source)
    }
}

/// Runs every selected source, in parallel (they are independent), and merges their output.
pub fn run(ctx: &Context) -> Report {
    let outputs: Vec<Output> = std::thread::scope(|s| {
        let handles: Vec<_> = ctx
            .settings
            .sources
            .iter()
            .map(|&src| (src, s.spawn(move || run_source(ctx, src))))
            .collect();
        handles
            .into_iter()
            .map(|(src, h)| output_of(src, h.join()))
            .collect()
    });
    let mut all = Output::default();
    for o in outputs {
        all.merge(o);
    }
    let mut report = Report {
        findings: all.findings,
        errors: all.errors,
        skipped: all.skipped,
        home: Some(ctx.settings.home.clone()),
    };
    mark_canaries(&mut report);
    if ctx.settings.sources.contains(&Source::Store) {
        mark_stored(&mut report, &store::fingerprints(ctx));
    }
    report.sort();
    report
}

/// A source's output, or, when its thread panicked (a bug in keyfence), an error saying that
/// its findings are missing: a report that looks clean because a source died would be a lie.
/// The panic's message is not repeated: it could quote what the source was reading.
fn output_of(source: Source, joined: std::thread::Result<Output>) -> Output {
    joined.unwrap_or_else(|_| {
        let mut out = Output::default();
        out.error(
            source,
            None,
            format!(
                "the {} audit stopped on an internal error (a bug in keyfence; please report \
                 it): its findings are missing from this report",
                source.as_str()
            ),
        );
        out
    })
}

/// A key found somewhere that keyfence's store already holds: the advice is to delete it there
/// and use the stored entry, not to store it again.
fn mark_stored(report: &mut Report, stored: &[(String, String)]) {
    for f in &mut report.findings {
        let Some((_, name)) = f
            .secret
            .as_ref()
            .and_then(|s| s.fingerprint.as_deref())
            .and_then(|fp| stored.iter().find(|(s, _)| s == fp))
        else {
            continue;
        };
        let in_backup = matches!(&f.location, crate::finding::Location::File { path, .. }
            if path.file_name().is_some_and(|n| n.to_string_lossy().contains(".keyfence-bak")));
        if in_backup {
            f.fix = format!(
                "the key is in keyfence's store as {name}: once you have checked the change, \
                 delete this backup (`keyfence fix` offers to)"
            );
            continue;
        }
        f.fix = format!(
            "it is already in keyfence's store as {name}: delete it from here (`keyfence fix` \
             does, for start-up files, agent settings and a project's .env) and give it by name where it is needed \
             (`keyfence run --inject {name} -- COMMAND`)"
        );
    }
}

/// Findings of registered canaries are canaries, not leaks.
fn mark_canaries(report: &mut Report) {
    let Some(path) = crate::canary::registry_path() else {
        return;
    };
    let Ok(canaries) = crate::canary::load(&path) else {
        return;
    };
    for f in &mut report.findings {
        let Some(c) = f
            .secret
            .as_ref()
            .and_then(|s| s.fingerprint.as_deref())
            .and_then(|fp| canaries.iter().find(|c| c.fingerprint == fp))
        else {
            continue;
        };
        let out_of_place = match &f.location {
            // Project files are reported relative to the directory audit runs in.
            Location::File { path, .. } => {
                c.out_of_place(&std::path::absolute(path).unwrap_or_else(|_| path.clone()))
            }
            _ => false,
        };
        if out_of_place {
            f.rule = "canary-out-of-place".into();
            f.severity = Severity::Critical;
            f.message = format!(
                "a registered keyfence canary ({}{}) found where it was not planted: something \
                 copied it here, a sign that a key harvester ran: {}",
                c.kind,
                if c.label.is_empty() {
                    String::new()
                } else {
                    format!(", planted: {}", c.label)
                },
                f.message
            );
            f.fix = "find what read it (`keyfence run --trace` on the installs and tools you ran \
                     since it was planted), and rotate the real key it stood in for"
                .into();
            continue;
        }
        f.rule = "canary".into();
        f.severity = Severity::Info;
        f.message = format!(
            "a registered keyfence canary ({}{}), not a real key: {}",
            c.kind,
            if c.label.is_empty() {
                String::new()
            } else {
                format!(", planted: {}", c.label)
            },
            f.message
        );
        f.fix = "nothing to do if it was planted here; if not, something copied it here — \
                 look for what read it (keyfence run --trace)"
            .into();
    }
}

/// Reads a file that may legitimately be missing: `Ok(None)` when it does not exist, an error
/// entry (and `None`) when it exists but cannot be read or is too large.
pub fn read_optional(
    ctx: &Context,
    out: &mut Output,
    source: Source,
    path: &Path,
) -> Option<Vec<u8>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            out.error(source, Some(path), format!("cannot read: {e}"));
            return None;
        }
    };
    if !meta.is_file() {
        return None;
    }
    if meta.len() > ctx.settings.max_filesize {
        out.skipped.large_files += 1;
        out.error(
            source,
            Some(path),
            format!(
                "skipped: {} bytes is over the size limit (--max-filesize)",
                meta.len()
            ),
        );
        return None;
    }
    match std::fs::read(path) {
        Ok(b) => Some(b),
        Err(e) => {
            out.error(source, Some(path), format!("cannot read: {e}"));
            None
        }
    }
}

/// `~/x` for paths under the home directory, for messages.
pub fn display_path(home: &Path, path: &Path) -> String {
    match path.strip_prefix(home) {
        Ok(rest) if !home.as_os_str().is_empty() => format!("~/{}", rest.display()),
        _ => path.display().to_string(),
    }
}

/// The variable name a fix should talk about.
pub fn var_name(m: &Match) -> String {
    m.name.clone().unwrap_or_else(|| "the key".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_that_panics_is_an_error_not_a_clean_report() {
        let joined = std::thread::spawn(|| -> Output { panic!("boom") }).join();
        let out = output_of(Source::Shell, joined);
        assert!(out.findings.is_empty());
        assert_eq!(out.errors.len(), 1);
        assert_eq!(out.errors[0].source, Source::Shell);
        assert!(out.errors[0].message.contains("the shell audit stopped"));
        let fine = output_of(Source::Env, Ok(Output::default()));
        assert!(fine.errors.is_empty());
    }
}
