//! `history`: keys typed on the command line and kept by the shell's history — the
//! "`KEY=value cmd`" habit, `export KEY=...`, and `curl -H 'x-api-key: ...'` (P4).

use super::{Context, Output, display_path};
use crate::detect::{self, Mode, names};
use crate::finding::{Location, Severity, Source};
use crate::secret::SecretValue;
use crate::syntax;
use crate::syntax::history::{CandidateKind, HistoryKind};
use std::collections::HashSet;
use std::path::PathBuf;

/// History files relative to the home directory. The install sandbox denies them (and
/// `$HISTFILE`), so a file added here is kept from sandboxed code too.
pub const HOME_FILES: &[(&str, HistoryKind)] = &[
    (".bash_history", HistoryKind::Bash),
    (".zsh_history", HistoryKind::Zsh),
    (".zhistory", HistoryKind::Zsh),
    (".histfile", HistoryKind::Zsh),
    (".local/share/fish/fish_history", HistoryKind::Fish),
    (".sh_history", HistoryKind::Bash),
];

fn history_files(ctx: &Context) -> Vec<(PathBuf, HistoryKind)> {
    let home = ctx.home();
    let mut files: Vec<(PathBuf, HistoryKind)> = HOME_FILES
        .iter()
        .map(|(rel, kind)| (home.join(rel), *kind))
        .collect();
    // $HISTFILE when it points elsewhere; the format follows the shell that set it, guessed from
    // the name.
    if let Some((_, v)) = ctx.settings.env.iter().find(|(k, _)| k == "HISTFILE") {
        let p = PathBuf::from(v);
        let kind = if p.to_string_lossy().contains("zsh") {
            HistoryKind::Zsh
        } else {
            HistoryKind::Bash
        };
        files.push((p, kind));
    }
    files
}

pub fn audit(ctx: &Context, out: &mut Output) {
    let mut seen = HashSet::new();
    for (path, kind) in history_files(ctx) {
        if !seen.insert(path.canonicalize().unwrap_or_else(|_| path.clone())) {
            continue;
        }
        let Some(text) = super::read_optional(ctx, out, Source::History, &path) else {
            continue;
        };
        let shown = display_path(ctx.home(), &path);
        for entry in syntax::history::entries(&text, kind) {
            for c in syntax::history::command_candidates(&entry.command) {
                let found = match (&c.kind, &c.name) {
                    (CandidateKind::Assignment { .. }, Some(name)) => {
                        ctx.detector.classify_var(name, &c.value)
                    }
                    (CandidateKind::Header { header }, _) => header_secret(ctx, header, &c.value),
                    _ => None,
                };
                let Some(m) = found else { continue };
                let how = match &c.kind {
                    CandidateKind::Header { header } => format!("in a `{header}` header"),
                    CandidateKind::Assignment { .. } => {
                        format!("as {}", c.name.as_deref().unwrap_or("a variable"))
                    }
                };
                out.secret(
                    Source::History,
                    &m,
                    Severity::Medium,
                    Location::file(path.clone(), entry.line),
                    format!(
                        "{} typed on the command line {how}: {shown} keeps it in plaintext",
                        m.rule.kind
                    ),
                    format!(
                        "rotate the key if this history was ever shared, delete line {} of {shown}, \
                         and next time use `keyfence run --inject NAME -- COMMAND`",
                        entry.line
                    ),
                );
            }
        }
    }
}

/// A header value: a known key format, or a random-looking value in an auth header.
fn header_secret(ctx: &Context, header: &str, value: &[u8]) -> Option<detect::Match> {
    if let Some(m) = ctx.detector.scan(value, Mode::Text).into_iter().next() {
        return Some(m);
    }
    let kind = if header == "userinfo" {
        names::NameKind::Password
    } else {
        names::NameKind::Token
    };
    if !names::value_is_secret(kind, value, Mode::Assignment) {
        return None;
    }
    let rule = ctx.detector.rule(if kind == names::NameKind::Password {
        "generic-password"
    } else {
        "generic-secret"
    })?;
    Some(detect::Match {
        rule,
        start: 0,
        end: value.len(),
        value: SecretValue::new(value),
        name: Some(header.to_string()),
    })
}
