//! `credfile`: well-known credential files. A token in one is where it belongs, but any process
//! of the same user can read it (P3): reported with its fingerprint so the same key elsewhere
//! correlates. A file that other users can read is a problem in itself.

use crate::tree::git::GitState;
use super::{Context, Output, display_path};
use crate::detect::{self, Mode};
use crate::finding::{Finding, Location, Severity, Source};
use crate::secret::SecretValue;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Credential files relative to the home directory. The install sandbox denies them, so a
/// file added here is kept from sandboxed code too.
pub const HOME_FILES: &[&str] = &[
    ".aws/credentials",
    ".aws/config",
    ".npmrc",
    ".yarnrc.yml",
    ".pypirc",
    ".netrc",
    ".git-credentials",
    ".config/git/credentials",
    ".docker/config.json",
    ".config/gh/hosts.yml",
    ".kube/config",
    ".claude/.credentials.json",
    ".codex/auth.json",
    // Codex and Gemini CLI load these into their own environment.
    ".codex/.env",
    ".gemini/.env",
    ".gemini/oauth_creds.json",
    // Gemini CLI's stored API key where no keychain answers, encrypted with a key derived from
    // the host and user names: any process of the user can decrypt it.
    ".gemini/gemini-credentials.json",
    // MCP servers' keys, which Cursor keeps in plaintext.
    ".cursor/mcp.json",
    ".config/gcloud/application_default_credentials.json",
    ".terraform.d/credentials.tfrc.json",
    ".cargo/credentials.toml",
];

pub fn audit(ctx: &Context, out: &mut Output) {
    for rel in HOME_FILES {
        let path = ctx.home().join(rel);
        check_file(ctx, out, &path, false);
    }
    for project in &ctx.settings.projects {
        let path = project.join(".npmrc");
        if path != ctx.home().join(".npmrc") {
            check_file(ctx, out, &path, true);
        }
    }
    check_backups(ctx, out);
}

/// Where `keyfence fix` and `setup` leave `FILE.keyfence-bak` beside a file they changed:
/// start-up files, the agents' settings, and the same in each project.
pub fn backup_dirs(home: &Path, projects: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs = vec![
        home.to_path_buf(),
        home.join(".claude"),
        home.join(".config/fish"),
        // `setup codex|gemini|cursor`; Cursor's holds the MCP keys it moved.
        home.join(".codex"),
        home.join(".gemini"),
        home.join(".cursor"),
    ];
    for project in projects {
        dirs.push(project.clone());
        dirs.push(project.join(".claude"));
    }
    dirs.sort();
    dirs.dedup();
    dirs
}

/// A backup keyfence made before it took a key out of a file still holds the key in clear.
fn check_backups(ctx: &Context, out: &mut Output) {
    for dir in backup_dirs(ctx.home(), &ctx.settings.projects) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut backups: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains(".keyfence-bak"))
            })
            .collect();
        backups.sort();
        for path in backups {
            let Some(text) = super::read_optional(ctx, out, Source::Credfile, &path) else {
                continue;
            };
            let shown = display_path(ctx.home(), &path);
            for m in ctx.detector.scan(&text, Mode::Assignment) {
                let (line, column) = detect::line_col(&text, m.start);
                out.secret(
                    Source::Credfile,
                    &m,
                    Severity::Medium,
                    Location::File {
                        path: path.clone(),
                        line,
                        column: Some(column),
                    },
                    format!(
                        "{} in {shown}, the backup keyfence made before it changed the file: it \
                         still holds the key in clear",
                        m.rule.kind
                    ),
                    format!(
                        "check the changed file, then delete the backup: rm {}",
                        crate::syntax::shell::sh_quote(&path.to_string_lossy())
                    ),
                );
            }
        }
    }
}

fn check_file(ctx: &Context, out: &mut Output, path: &Path, in_project: bool) {
    let Some(text) = super::read_optional(ctx, out, Source::Credfile, path) else {
        return;
    };
    let (shown, located) = if in_project {
        (crate::tree::walk::clean(path), crate::tree::walk::clean(path))
    } else {
        (
            PathBuf::from(display_path(ctx.home(), path)),
            path.to_path_buf(),
        )
    };
    let mut secrets = ctx.detector.scan(&text, Mode::Assignment);
    secrets.extend(netrc_passwords(ctx, path, &text));
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o044 != 0 && !secrets.is_empty() {
            out.findings.push(Finding {
                rule: "credential-file-permissions".into(),
                severity: Severity::High,
                source: Source::Credfile,
                location: Location::file(located.clone(), 1),
                secret: None,
                message: format!(
                    "{} holds credentials and is readable by {} (mode {:04o})",
                    shown.display(),
                    if mode & 0o004 != 0 {
                        "every user"
                    } else {
                        "its group"
                    },
                    mode & 0o7777
                ),
                fix: format!("chmod 600 {}", path.display()),
            });
        }
    }
    let tracked = in_project && ctx.git.state(path) == GitState::Tracked;
    for m in secrets {
        let (line, column) = detect::line_col(&text, m.start);
        let (severity, message, fix) = if in_project {
            (
                if tracked {
                    Severity::Critical
                } else {
                    Severity::High
                },
                format!(
                    "{} in the project's {}{}: every package script run in this project can read it",
                    m.rule.kind,
                    shown.display(),
                    if tracked { ", tracked by git" } else { "" }
                ),
                "use `${NPM_TOKEN}` in .npmrc and inject the token only into publish commands \
                 with `keyfence run --inject NPM_TOKEN -- npm publish`"
                    .to_string(),
            )
        } else {
            (
                Severity::Low,
                format!(
                    "{} stored in {}: any process running as you can read it",
                    m.rule.kind,
                    shown.display()
                ),
                "keep credential files mode 600, and run untrusted installs under \
                 `keyfence run --profile install` so they cannot read them"
                    .to_string(),
            )
        };
        out.secret(
            Source::Credfile,
            &m,
            severity,
            Location::File {
                path: located.clone(),
                line,
                column: Some(column),
            },
            message,
            fix,
        );
    }
}

/// `.netrc` says `password VALUE` with no `=`: the generic name rule cannot see it.
fn netrc_passwords(ctx: &Context, path: &Path, text: &[u8]) -> Vec<detect::Match> {
    if path.file_name().is_none_or(|n| n != ".netrc") {
        return Vec::new();
    }
    let Some(rule) = ctx.detector.rule("generic-password") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let words: Vec<(usize, &[u8])> = split_words(text);
    for pair in words.windows(2) {
        let (_, key) = pair[0];
        let (pos, value) = pair[1];
        if key == b"password" && !detect::names::is_placeholder(value) {
            out.push(detect::Match {
                rule,
                start: pos,
                end: pos + value.len(),
                value: SecretValue::new(value),
                name: Some("password".into()),
            });
        }
    }
    out
}

fn split_words(text: &[u8]) -> Vec<(usize, &[u8])> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < text.len() && !text[i].is_ascii_whitespace() {
            i += 1;
        }
        out.push((start, &text[start..i]));
    }
    out
}
