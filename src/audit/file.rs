//! `file`: secrets written into the project's own files, found with the `scan` engine. Files
//! other sources read with more context (`.env`, agent settings, `.npmrc`) are left to them.

use crate::tree::git::GitState;
use crate::tree::walk::{self, WalkOptions};
use super::{Context, Output, dotenv};
use crate::finding::{Location, Severity, Source};
use std::path::Path;

/// Project files that another audit source owns, so one secret is not reported twice.
fn owned_by_other_source(ctx: &Context, path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    (ctx.enabled(Source::Dotenv) && dotenv::is_dotenv_name(name))
        || (ctx.enabled(Source::Agent) && super::agent::is_project_agent_file(path))
        || (ctx.enabled(Source::Credfile) && name == ".npmrc")
        || (ctx.enabled(Source::Ci) && super::ci::is_ci_file(path))
}

pub fn audit(ctx: &Context, out: &mut Output) {
    let opts = WalkOptions {
        skip_dirs: walk::AUDIT_SKIP_DIRS,
        respect_gitignore: true,
        max_filesize: ctx.settings.max_filesize,
        threads: ctx.settings.threads,
    };
    let result = walk::scan(
        &ctx.settings.projects,
        &opts,
        Source::File,
        ctx.detector,
        &ctx.files_seen,
        &|p: &Path| !owned_by_other_source(ctx, p),
    );
    out.errors.extend(result.errors);
    out.skipped.add(&result.skipped);
    for fm in result.matches {
        let tracked = ctx.git.state(&fm.path) == GitState::Tracked;
        let generic = fm.m.rule.priority < 0 && fm.m.rule.id.starts_with("generic");
        let severity = match (tracked, generic) {
            (true, false) => Severity::Critical,
            (true, true) | (false, false) => Severity::High,
            (false, true) => Severity::Medium,
        };
        let why = if tracked {
            "the file is tracked by git"
        } else {
            "plaintext in a project file that agents and tools read"
        };
        out.secret(
            Source::File,
            &fm.m,
            severity,
            Location::File {
                path: fm.path.clone(),
                line: fm.line,
                column: Some(fm.column),
            },
            format!("{} in {}: {why}", fm.m.rule.kind, fm.path.display()),
            if tracked {
                "rotate the key (it is in git history), then read it from the environment at run \
                 time and store it with `keyfence secret set NAME`"
                    .to_string()
            } else {
                "remove it from the file; store it with `keyfence secret set NAME` and inject it \
                 with `keyfence run --inject NAME -- COMMAND`"
                    .to_string()
            },
        );
    }
}
