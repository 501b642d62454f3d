//! `dotenv`: `.env`, `.env.*` and `.envrc` files in the project tree, including the ones
//! `.gitignore` ignores (those are the usual ones). Bun-based agents (Claude Code) and the dotenv
//! libraries load `.env*` from the working directory into the process environment (P4).
//!
//! The `.env` parser is hand-written: it must keep line numbers and never fail, and the crates
//! that parse `.env` (dotenvy) stop at the first bad line and report no positions.

use crate::tree::git::GitState;
use crate::tree::walk::{self, WalkOptions};
use super::{Context, Output};
use crate::finding::{Location, Severity, Source};
use crate::syntax;
use crate::syntax::shell::Dialect;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// `.env`, `.envrc`, `.env.*`; not keyfence's own backups of them (`.env.keyfence-bak`), which
/// the credfile source reports as backups.
pub fn is_dotenv_name(name: &str) -> bool {
    (name == ".env" || name == ".envrc" || name.starts_with(".env."))
        && !name.contains(".keyfence-bak")
}

/// One `NAME=value` of a `.env` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub value: Vec<u8>,
    pub line: u32,
}

/// Parses dotenv syntax: `[export ]NAME=value`, `#` comments, single quotes (literal), double
/// quotes (escapes, may span lines), unquoted values ending at ` #`.
pub fn parse(text: &[u8]) -> Vec<Entry> {
    parse_reporting(text).0
}

/// `parse`, and the numbers of the lines that are neither blank, a comment nor an assignment
/// (`secret import` names them rather than skipping them silently).
pub fn parse_reporting(text: &[u8]) -> (Vec<Entry>, Vec<u32>) {
    let mut out = Vec::new();
    let mut unparsed = Vec::new();
    let mut i = 0;
    let mut line: u32 = 1;
    while i < text.len() {
        let line_start = i;
        let line_end = memchr::memchr(b'\n', &text[i..]).map_or(text.len(), |p| i + p);
        let start_line = line;
        let mut s = &text[line_start..line_end];
        s = trim_start(s);
        if let Some(rest) = s.strip_prefix(b"export ") {
            s = trim_start(rest);
        }
        let name_len = s
            .iter()
            .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
            .count();
        let after_name = trim_start(&s[name_len..]);
        let next = |i: usize| line_end.min(text.len()).max(i) + 1;
        if name_len == 0
            || s[0] == b'#'
            || !(after_name.starts_with(b"=") || after_name.starts_with(b":"))
        {
            if !s.is_empty() && s[0] != b'#' {
                unparsed.push(start_line);
            }
            i = next(i);
            line += 1;
            continue;
        }
        let name = String::from_utf8_lossy(&s[..name_len]).into_owned();
        let value_start = line_start + (line_end - line_start - after_name.len()) + 1;
        let rest = &text[value_start..];
        let lead = rest
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        let rest = &rest[lead..];
        let (value, consumed) = match rest.first() {
            Some(b'"') => double_quoted(&rest[1..]),
            Some(b'\'') => single_quoted(&rest[1..]),
            _ => {
                let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
                let mut v = &rest[..end];
                if let Some(p) = v.windows(2).position(|w| w == b" #" || w == b"\t#") {
                    v = &v[..p];
                }
                (trim_end(v).to_vec(), end)
            }
        };
        let consumed_end = value_start + lead + consumed;
        line += text[line_start..consumed_end.min(text.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u32;
        out.push(Entry {
            name,
            value,
            line: start_line,
        });
        // Continue after the end of the line the value ended on.
        let end = memchr::memchr(b'\n', &text[consumed_end.min(text.len())..])
            .map_or(text.len(), |p| consumed_end + p);
        i = end + 1;
        line += 1;
    }
    (out, unparsed)
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &s[n..]
}

fn trim_end(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_whitespace())
        .count();
    &s[..s.len() - n]
}

/// Returns the value and how many bytes (including the opening quote) it used.
fn double_quoted(s: &[u8]) -> (Vec<u8>, usize) {
    let mut v = Vec::new();
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'"' => return (v, i + 2),
            b'\\' if i + 1 < s.len() => {
                v.push(match s[i + 1] {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'r' => b'\r',
                    other => other,
                });
                i += 2;
            }
            b => {
                v.push(b);
                i += 1;
            }
        }
    }
    // Unterminated: take the rest of the line, as dotenv implementations do.
    let end = memchr::memchr(b'\n', s).unwrap_or(s.len());
    (s[..end].to_vec(), end + 1)
}

fn single_quoted(s: &[u8]) -> (Vec<u8>, usize) {
    match memchr::memchr(b'\'', s) {
        Some(p) => (s[..p].to_vec(), p + 2),
        None => {
            let end = memchr::memchr(b'\n', s).unwrap_or(s.len());
            (s[..end].to_vec(), end + 1)
        }
    }
}

pub fn audit(ctx: &Context, out: &mut Output) {
    let found = Mutex::new(Vec::<PathBuf>::new());
    let opts = WalkOptions {
        skip_dirs: walk::AUDIT_SKIP_DIRS,
        respect_gitignore: false,
        max_filesize: ctx.settings.max_filesize,
        threads: ctx.settings.threads,
    };
    let errors = walk::each_file(
        &ctx.settings.projects,
        &opts,
        Source::Dotenv,
        &|p: &Path| {
            if p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_dotenv_name)
            {
                found
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(p.to_path_buf());
            }
        },
    );
    out.errors.extend(errors);
    let mut files = found.into_inner().unwrap_or_default();
    files.sort();
    for path in files {
        check_file(ctx, out, &path);
    }
}

fn check_file(ctx: &Context, out: &mut Output, path: &Path) {
    let Some(text) = super::read_optional(ctx, out, Source::Dotenv, path) else {
        return;
    };
    let is_envrc = path.file_name().is_some_and(|n| n == ".envrc");
    let entries: Vec<Entry> = if is_envrc {
        // direnv runs .envrc as a bash script.
        syntax::shell::parse(&text, Dialect::Posix)
            .assignments
            .into_iter()
            .map(|a| Entry {
                name: a.name,
                value: a.value,
                line: a.line,
            })
            .collect()
    } else {
        parse(&text)
    };
    let mut state = None;
    let shown = walk::clean(path);
    for e in entries {
        let Some(m) = ctx.detector.classify_var(&e.name, &e.value) else {
            continue;
        };
        let state = *state.get_or_insert_with(|| ctx.git.state(path));
        let (severity, why) = match state {
            GitState::Tracked => (
                Severity::Critical,
                "the file is tracked by git: the key is in the repository's history",
            ),
            GitState::Untracked | GitState::NoRepo => (
                Severity::High,
                "the file is not ignored by git: one `git add .` commits it",
            ),
            GitState::Ignored => (
                Severity::Medium,
                "ignored by git, but Bun-based agents (Claude Code) and dotenv load .env files \
                 from the working directory into their environment",
            ),
        };
        let fix = if state == GitState::Tracked {
            format!(
                "rotate the key now (it is in git history), then store it with `keyfence secret \
                 set {}` and `git rm --cached {}`",
                e.name,
                shown.display()
            )
        } else if shown
            .parent()
            .is_some_and(|d| d.as_os_str().is_empty() || d == Path::new("."))
        {
            // `fix` takes the .env files at the top of the project, as dotenv loads them.
            format!(
                "run `keyfence fix`: it moves the key into keyfence's store and leaves \
                 {}=store:{} in {} as a reference; then run the app with `keyfence run --inject \
                 {} -- COMMAND` (a variable already set wins over the .env file)",
                e.name,
                e.name,
                shown.display(),
                e.name
            )
        } else {
            format!(
                "move it into keyfence's store (`keyfence secret import {}`), put {}=store:{} in \
                 its place, and run the app with `keyfence run --inject {} -- COMMAND`",
                shown.display(),
                e.name,
                e.name,
                e.name
            )
        };
        out.secret(
            Source::Dotenv,
            &m,
            severity,
            Location::file(shown.clone(), e.line),
            format!("{} in {} ({}): {why}", m.rule.kind, e.name, shown.display()),
            fix,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_dotenv_forms() {
        let text = b"# comment\nA=1\nexport B='two words'\nC=\"multi\nline\"\nD=val # note\n\nE = spaced\nbad line\nF=\"esc\\\"aped\"\n";
        let got: Vec<(String, String, u32)> = parse(text)
            .into_iter()
            .map(|e| {
                (
                    e.name,
                    String::from_utf8_lossy(&e.value).into_owned(),
                    e.line,
                )
            })
            .collect();
        let want = [
            ("A", "1", 2),
            ("B", "two words", 3),
            ("C", "multi\nline", 4),
            ("D", "val", 6),
            ("E", "spaced", 8),
            ("F", "esc\"aped", 10),
        ];
        assert_eq!(got.len(), want.len(), "{got:?}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!((g.0.as_str(), g.1.as_str(), g.2), w);
        }
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u32 + 1;
            for e in parse(&bytes) {
                prop_assert!(e.line >= 1 && e.line <= lines);
            }
        }

        #[test]
        fn never_panics_on_dotenv_like_text(s in "([A-Z_]{1,8}=(\"[^\"]{0,10}\"?|'[^']{0,10}'?|[^\n]{0,10})\n?){0,20}") {
            let _ = parse(s.as_bytes());
        }
    }
}
