//! `keyfence audit [PATH...]`

use super::{Exit, emit, home_dir, selected_sources, threads, with_progress};
use crate::audit::{self, Context, Settings};
use crate::cli::{AuditArgs, GlobalArgs};
use crate::finding::Source;
use anyhow::{Result, bail};

pub fn run(g: &GlobalArgs, args: &AuditArgs) -> Result<Exit> {
    let projects = if args.paths.is_empty() {
        vec![std::path::PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    for p in &projects {
        if !p.is_dir() {
            bail!(
                "{}: not a directory\nhint: `keyfence audit` takes project directories; use \
                 `keyfence scan` for single files",
                p.display()
            );
        }
    }
    let home = home_dir(&args.home)?;
    let mut sources = selected_sources(&args.only, &args.skip);
    // Run from the home directory with no path given, "the project" would be every file the
    // user owns (caches, toolchains, other projects): look at the home's known places only.
    let canon = |p: &std::path::Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    if args.paths.is_empty() && canon(std::path::Path::new(".")) == canon(&home) {
        sources.retain(|s| {
            !matches!(
                s,
                Source::File | Source::Dotenv | Source::Ci | Source::Package
            )
        });
        if !g.quiet {
            eprintln!(
                "keyfence: note: the current directory is your home, so project files are not \
                 scanned; pass a project directory to include them"
            );
        }
    }
    let settings = Settings {
        home,
        etc: g.etc.clone(),
        projects,
        sources,
        env: std::env::vars_os().collect(),
        max_filesize: args.walk.max_filesize,
        threads: threads(args.walk.threads),
    };
    let ctx = Context::new(&settings);
    let report = with_progress(g, &ctx.files_seen, || audit::run(&ctx));
    emit(g, args.fail_on.fail_on, &report, "audit")
}
