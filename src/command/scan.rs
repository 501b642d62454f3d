//! `keyfence scan PATH...`: the plain tree scanner (what `audit` uses for project files), with
//! no home, environment or git context.

use super::{Exit, emit, threads, with_progress};
use crate::cli::{GlobalArgs, ScanArgs};
use crate::detect;
use crate::finding::{Finding, Location, Report, Severity, Source};
use crate::tree::walk::{self, WalkOptions};
use anyhow::{Result, bail};
use std::sync::atomic::AtomicU64;

pub fn run(g: &GlobalArgs, args: &ScanArgs) -> Result<Exit> {
    for p in &args.paths {
        if std::fs::symlink_metadata(p).is_err() {
            bail!("{}: no such file or directory", p.display());
        }
    }
    let opts = WalkOptions {
        skip_dirs: walk::SCAN_SKIP_DIRS,
        respect_gitignore: false,
        max_filesize: args.walk.max_filesize,
        threads: threads(args.walk.threads),
    };
    let seen = AtomicU64::new(0);
    let result = with_progress(g, &seen, || {
        walk::scan(
            &args.paths,
            &opts,
            Source::File,
            detect::detector(),
            &seen,
            &|_| true,
        )
    });
    let mut report = Report {
        errors: result.errors,
        skipped: result.skipped,
        home: std::env::var_os("HOME").map(Into::into),
        ..Report::default()
    };
    for fm in result.matches {
        let generic = fm.m.rule.id.starts_with("generic");
        report.findings.push(Finding {
            rule: fm.m.rule.id.to_string(),
            severity: if generic {
                Severity::Medium
            } else {
                Severity::High
            },
            source: Source::File,
            location: Location::File {
                path: fm.path.clone(),
                line: fm.line,
                column: Some(fm.column),
            },
            secret: Some(fm.m.info()),
            message: format!("{} in {}", fm.m.rule.kind, fm.path.display()),
            fix: "remove it from the file and rotate it if the file was ever shared; store it \
                  with `keyfence secret set NAME`"
                .into(),
        });
    }
    report.sort();
    emit(g, args.fail_on.fail_on, &report, "scan")
}
