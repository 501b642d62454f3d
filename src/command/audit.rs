//! `keyfence audit [PATH...]`

use super::{Exit, emit, home_dir, selected_sources, threads, with_progress};
use crate::audit::{self, Context, Settings};
use crate::cli::{AuditArgs, GlobalArgs};
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
    let settings = Settings {
        home: home_dir(g)?,
        etc: g.etc.clone(),
        projects,
        sources: selected_sources(g),
        env: std::env::vars_os().collect(),
        max_filesize: args.walk.max_filesize,
        threads: threads(args.walk.threads),
    };
    let ctx = Context::new(&settings);
    let report = with_progress(g, &ctx.files_seen, || audit::run(&ctx));
    emit(g, &report, "audit")
}
