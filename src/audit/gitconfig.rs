//! `gitconfig`: credentials written into git's own configuration, where nothing else looks: a
//! token in a remote's URL (`https://x-access-token:TOKEN@github.com/o/r.git`, as a clone with a
//! token in its URL leaves it; `git remote -v` prints it), and an `Authorization` header in
//! `http.<url>.extraheader` (as actions/checkout leaves its token in a CI checkout's
//! `.git/config` unless `persist-credentials: false`). Every process run in the project reads
//! `.git/config`, and git never tracks it, so the `file` source does not walk it.
//!
//! Read: each project's `.git/config`, and the user's `~/.gitconfig` and
//! `$XDG_CONFIG_HOME/git/config`. The values are scanned as text (a `signingkey` is a key id,
//! not a secret); a Basic credential is decoded, so the token inside it is named by its kind
//! and fingerprinted like the same token elsewhere.

use super::{Context, Output, display_path};
use crate::detect::{self, Match, Mode};
use crate::finding::{Location, Severity, Source};
use crate::secret::SecretValue;
use base64::Engine;
use std::path::{Path, PathBuf};

pub fn audit(ctx: &Context, out: &mut Output) {
    for project in &ctx.settings.projects {
        let git = project.join(".git");
        // A worktree's or submodule's `.git` is a file naming the real directory.
        if git.is_dir() {
            check(ctx, out, &git.join("config"), true);
        }
    }
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| ctx.home().join(".config"));
    for path in [ctx.home().join(".gitconfig"), xdg.join("git/config")] {
        check(ctx, out, &path, false);
    }
}

fn check(ctx: &Context, out: &mut Output, path: &Path, in_project: bool) {
    let Some(text) = super::read_optional(ctx, out, Source::Gitconfig, path) else {
        return;
    };
    let (shown, located) = if in_project {
        let clean = crate::tree::walk::clean(path);
        (clean.display().to_string(), clean)
    } else {
        (display_path(ctx.home(), path), path.to_path_buf())
    };
    let mut found = ctx.detector.scan(&text, Mode::Text);
    found.extend(authorization_headers(ctx, &text));
    // One finding per value: the rule that names its kind before the generic ones.
    found.sort_by_key(|m| (m.start, m.rule.id.starts_with("generic") || m.rule.id == "url-password"));
    found.dedup_by_key(|m| m.start);
    for m in found {
        let (line, column) = detect::line_col(&text, m.start);
        let header = m.name.as_deref() == Some(HEADER);
        let (severity, whose) = if in_project {
            (
                Severity::High,
                "every command run in the project (a package script, an agent's tool) can read \
                 it, and git shows it",
            )
        } else {
            (
                Severity::Medium,
                "every process running as you can read it, and git sends it wherever the \
                 setting applies",
            )
        };
        let (what, fix) = if header {
            (
                "an Authorization header (http.extraheader)",
                "rotate the token, then remove the header: `git config --unset-all \
                 http.<url>.extraheader` (in GitHub Actions, `persist-credentials: false` on \
                 actions/checkout keeps it out)",
            )
        } else {
            (
                "a URL",
                "rotate the token, then take it out of the URL (a remote's with `git remote \
                 set-url NAME URL`, without `user:token@`; an insteadOf's by editing its `url` \
                 section) and let a credential helper hold it (`gh auth setup-git`, or the \
                 system keychain)",
            )
        };
        out.secret(
            Source::Gitconfig,
            &m,
            severity,
            Location::File {
                path: located.clone(),
                line,
                column: Some(column),
            },
            format!("{} in {what} in {shown}: {whose}", m.rule.kind),
            fix,
        );
    }
}

/// The name given to a credential found in an `extraheader`.
const HEADER: &str = "http.extraheader";

/// `extraheader = AUTHORIZATION: basic BASE64` or `: bearer TOKEN`: the credential, as the
/// token inside it when a rule knows its kind, else as a secret of its own.
fn authorization_headers(ctx: &Context, text: &[u8]) -> Vec<Match> {
    let Some(generic) = ctx.detector.rule("generic-secret") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive(|&b| b == b'\n') {
        let at = offset;
        offset += line.len();
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            continue;
        };
        let key = String::from_utf8_lossy(&line[..eq]).trim().to_ascii_lowercase();
        if key != "extraheader" {
            continue;
        }
        let value = String::from_utf8_lossy(&line[eq + 1..]);
        let value = value.trim().trim_matches('"');
        let mut words = value.split_whitespace();
        let (Some(name), Some(scheme), Some(credential)) =
            (words.next(), words.next(), words.next())
        else {
            continue;
        };
        if !name.eq_ignore_ascii_case("authorization:") || detect::names::is_placeholder(credential.as_bytes()) {
            continue;
        }
        let Some(start) = memchr::memmem::find(line, credential.as_bytes()).map(|i| at + i) else {
            continue;
        };
        let decoded = scheme
            .eq_ignore_ascii_case("basic")
            .then(|| base64::engine::general_purpose::STANDARD.decode(credential).ok())
            .flatten();
        // The token inside a Basic credential (`x-access-token:TOKEN`), by its kind.
        let inner = decoded.as_deref().and_then(|d| {
            ctx.detector
                .scan(d, Mode::Text)
                .into_iter()
                .next()
                .map(|m| (m.rule, m.value))
        });
        let (rule, value) =
            inner.unwrap_or_else(|| (generic, SecretValue::new(credential.as_bytes())));
        out.push(Match {
            rule,
            start,
            end: start + credential.len(),
            value,
            name: Some(HEADER.into()),
        });
    }
    out
}
