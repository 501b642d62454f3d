//! `env`: secrets in the current process environment. Whatever is here, every process started
//! from this shell inherits (P1), and any same-user process can read it (P2).

use super::{Context, Output};
use crate::finding::{Location, Severity, Source};
use std::os::unix::ffi::OsStrExt;

pub fn audit(ctx: &Context, out: &mut Output) {
    for (name, value) in &ctx.settings.env {
        let name = name.to_string_lossy();
        let Some(m) = ctx.detector.classify_var(&name, value.as_bytes()) else {
            continue;
        };
        let severity = if m.rule.password {
            Severity::Medium
        } else {
            Severity::High
        };
        out.secret(
            Source::Env,
            &m,
            severity,
            Location::Env {
                env: name.to_string(),
            },
            format!(
                "{} in environment variable {name}: every process started from here inherits it, \
                 including agents, install scripts and MCP servers",
                m.rule.kind
            ),
            format!(
                "store it (`keyfence secret set {name}`), stop exporting it, and give it only to the \
                 command that needs it: `keyfence run --inject {name} -- COMMAND`"
            ),
        );
    }
}
