//! `package`: dependencies that run code at install or build time, whether the package manager
//! lets them, and whether secrets would be in their environment (P1 at install time).
//!
//! One file per ecosystem: `npm/` (npm, pnpm, Yarn and Bun projects, and global installs; the
//! package managers' rules for which scripts run are `npm/policy.rs`), `cargo.rs` and
//! `python.rs` (an inventory, info: their code runs at build time by design). This file runs
//! them over each project, with the secrets an install started there would inherit.
//!
//! Lockfiles are parsed with serde_json / toml for their meaning; positions come from locating
//! the key in the text, so findings land on the lockfile line of the package.

mod cargo;
mod npm;
mod python;

use super::{Context, Output};

pub fn audit(ctx: &Context, out: &mut Output) {
    let exposed = exposed_secrets(ctx);
    for root in &ctx.settings.projects {
        npm::node(ctx, out, root, &exposed);
        cargo::cargo(ctx, out, root);
        python::python(ctx, out, root);
    }
    npm::global_npm(ctx, out, &exposed);
}

/// Secrets an install started from here would inherit: the environment's, and those the
/// shells export from their start-up files (every new terminal has them), as the `shell` source
/// finds them.
fn exposed_secrets(ctx: &Context) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (k, v) in &ctx.settings.env {
        use std::os::unix::ffi::OsStrExt;
        let k = k.to_string_lossy();
        if ctx.detector.classify_var(&k, v.as_bytes()).is_some() {
            names.push(format!("${k}"));
        }
    }
    // A start-up file that cannot be read is the `shell` source's to report.
    let mut unread = Output::default();
    for key in super::shell::start_up_keys(ctx, &mut unread) {
        if key.exported {
            names.push(format!(
                "{} ({}:{})",
                key.assignment.name,
                super::display_path(ctx.home(), &key.path),
                key.assignment.line
            ));
        }
    }
    names.sort();
    names.dedup();
    names
}
