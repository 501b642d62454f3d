//! `agent`: AI coding agents' own configuration. Claude Code applies a settings file's `env`
//! block to its process, so every Bash command, hook and MCP server inherits it; MCP server
//! definitions carry their own `env`; Codex passes the whole environment to commands by default
//! (`shell_environment_policy`, see research/injection.md §3–4).
//!
//! And whether typing an agent's name starts it under keyfence at all
//! ([`AGENT_STARTS_OUTSIDE_KEYFENCE`]); a running agent outside keyfence is the `proc` source's.

use super::git::GitState;
use super::{Context, Output, display_path};
use crate::detect;
use crate::finding::{Finding, Location, Severity, Source};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Rule `agent-starts-outside-keyfence` (medium): an AI agent (`claude`) is installed on `PATH`
/// and the start-up file of the user's shell (`$SHELL`) does not load `keyfence shell-init`, so
/// typing `claude` starts it without keyfence's agent profile, and every command it runs can read
/// the user's credential files and keyfence's store; or the file loads it and then defines
/// `claude` again (an alias or function), which wins. A configuration finding (no secret); a
/// running agent outside keyfence is `proc`'s `agent-outside-keyfence`. Fix: `keyfence setup
/// claude`.
pub const AGENT_STARTS_OUTSIDE_KEYFENCE: &str = "agent-starts-outside-keyfence";

/// Project files this source reads, so `file` leaves them alone.
pub fn is_project_agent_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let parent = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    name == ".mcp.json"
        || (parent == ".claude" && (name == "settings.json" || name == "settings.local.json"))
}

struct Place<'a> {
    path: &'a Path,
    shown: PathBuf,
    /// What locations carry: project-relative for project files, absolute for home files.
    located: PathBuf,
    text: &'a [u8],
    tracked: bool,
}

pub fn audit(ctx: &Context, out: &mut Output) {
    let home = ctx.home();
    let claude_dir = home.join(".claude");
    let mut helper_set = false;
    let mut scrub_in_settings = None;
    let mut files: Vec<(PathBuf, bool)> = vec![
        (claude_dir.join("settings.json"), false),
        (claude_dir.join("settings.local.json"), false),
    ];
    for p in &ctx.settings.projects {
        files.push((p.join(".claude/settings.json"), true));
        files.push((p.join(".claude/settings.local.json"), true));
    }
    for (path, in_project) in &files {
        let Some((text, json)) = read_json(ctx, out, path) else {
            continue;
        };
        let place = place(ctx, path, &text, *in_project);
        helper_set |= json.get("apiKeyHelper").and_then(Value::as_str).is_some();
        if let Some(env) = json.get("env").and_then(Value::as_object) {
            if let Some(v) = env
                .get("CLAUDE_CODE_SUBPROCESS_ENV_SCRUB")
                .and_then(Value::as_str)
            {
                scrub_in_settings = Some(v == "1");
            }
            env_block(ctx, out, &place, env, EnvKind::ClaudeSettings);
        }
    }

    // MCP servers: ~/.claude.json (user and per-project entries) and the project's .mcp.json.
    let user_mcp = home.join(".claude.json");
    if let Some((text, json)) = read_json(ctx, out, &user_mcp) {
        let place = place(ctx, &user_mcp, &text, false);
        let mut servers: Vec<&Value> = json.get("mcpServers").into_iter().collect();
        if let Some(projects) = json.get("projects").and_then(Value::as_object) {
            servers.extend(projects.values().filter_map(|p| p.get("mcpServers")));
        }
        for s in servers {
            mcp_servers(ctx, out, &place, s);
        }
    }
    for p in &ctx.settings.projects {
        let path = p.join(".mcp.json");
        if let Some((text, json)) = read_json(ctx, out, &path) {
            let place = place(ctx, &path, &text, true);
            if let Some(s) = json.get("mcpServers") {
                mcp_servers(ctx, out, &place, s);
            }
        }
    }

    claude_env_checks(ctx, out, helper_set, scrub_in_settings, claude_dir.is_dir());
    codex(ctx, out);
    typed_agents(ctx, out);
}

/// Agents on `PATH` that the user's shell would start outside keyfence.
fn typed_agents(ctx: &Context, out: &mut Output) {
    use crate::setup::rc::{Shell, loads_shell_init, redefined_after};
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = env_value(ctx, "PATH") else {
        return;
    };
    for program in crate::policy::AGENT_PROGRAMS {
        let Some(found) = path
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| Path::new(d).join(program))
            .find(|p| {
                std::fs::metadata(p)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
        else {
            continue;
        };
        let shell_var = env_value(ctx, "SHELL").unwrap_or_default();
        let (location, why, fix) = match Shell::from_path(shell_var) {
            Some(shell) => {
                let rc = shell.rc_file(ctx.home(), |v| env_value(ctx, v).map(str::to_string));
                let text = super::read_optional(ctx, out, Source::Agent, &rc).unwrap_or_default();
                let text = String::from_utf8_lossy(&text);
                let shown = display_path(ctx.home(), &rc);
                if loads_shell_init(&text) {
                    let Some(line) = redefined_after(&text, program) else {
                        continue;
                    };
                    (
                        Location::file(rc, line),
                        format!(
                            "{shown}:{line} defines `{program}` again after it loads \
                             `keyfence shell-init`"
                        ),
                        format!(
                            "delete the definition at {shown}:{line}, or move it above the line \
                             that loads shell-init (an alias defined before it is taken into \
                             keyfence's function)"
                        ),
                    )
                } else {
                    (
                        Location::file(rc, 1),
                        format!(
                            "{shown} does not load `keyfence shell-init {}`",
                            shell.name()
                        ),
                        format!(
                            "run `keyfence setup claude`: {shown} then loads `keyfence shell-init {}`, \
                         whose `{program}` function starts it as `keyfence run --profile agent -- \
                         {program}`",
                            shell.name()
                        ),
                    )
                }
            }
            None => (
                Location::Env {
                    env: "SHELL".into(),
                },
                format!(
                    "keyfence has no shell-init for your shell ({})",
                    if shell_var.is_empty() {
                        "SHELL is not set"
                    } else {
                        shell_var
                    }
                ),
                format!("start it as `keyfence run --profile agent -- {program}`"),
            ),
        };
        out.findings.push(Finding {
            rule: AGENT_STARTS_OUTSIDE_KEYFENCE.into(),
            severity: Severity::Medium,
            source: Source::Agent,
            location,
            secret: None,
            message: format!(
                "{program} is installed ({}) and {why}: typing `{program}` starts it outside \
                 keyfence's agent profile, where every command it runs can read your credential \
                 files (~/.claude/.credentials.json, ~/.aws, ...) and keyfence's store",
                found.display()
            ),
            fix,
        });
    }
}

/// Whether the user's interactive shell starts `program` through keyfence: its start-up file
/// loads shell-init and nothing defines the name again after it.
fn starts_under_keyfence(ctx: &Context, program: &str) -> bool {
    use crate::setup::rc::{Shell, loads_shell_init, redefined_after};
    let Some(shell) = env_value(ctx, "SHELL").and_then(Shell::from_path) else {
        return false;
    };
    let rc = shell.rc_file(ctx.home(), |v| env_value(ctx, v).map(str::to_string));
    let Ok(text) = std::fs::read(&rc) else {
        return false;
    };
    let text = String::from_utf8_lossy(&text);
    loads_shell_init(&text) && redefined_after(&text, program).is_none()
}

fn place<'a>(ctx: &Context, path: &'a Path, text: &'a [u8], in_project: bool) -> Place<'a> {
    let (shown, located) = if in_project {
        (super::walk::clean(path), super::walk::clean(path))
    } else {
        (
            PathBuf::from(display_path(ctx.home(), path)),
            path.to_path_buf(),
        )
    };
    let tracked = in_project && ctx.git.state(path) == GitState::Tracked;
    Place {
        path,
        shown,
        located,
        text,
        tracked,
    }
}

fn read_json(ctx: &Context, out: &mut Output, path: &Path) -> Option<(Vec<u8>, Value)> {
    let text = super::read_optional(ctx, out, Source::Agent, path)?;
    match serde_json::from_slice::<Value>(&text) {
        Ok(v) => Some((text, v)),
        Err(e) => {
            out.error(
                Source::Agent,
                Some(path),
                format!(
                    "malformed JSON at line {} column {}: {}; fix the file, Claude Code will not \
                     read it either",
                    e.line(),
                    e.column(),
                    e.to_string().split(" at line").next().unwrap_or("")
                ),
            );
            None
        }
    }
}

#[derive(Clone, Copy)]
enum EnvKind {
    ClaudeSettings,
    Mcp,
}

fn env_block(
    ctx: &Context,
    out: &mut Output,
    place: &Place,
    env: &serde_json::Map<String, Value>,
    kind: EnvKind,
) {
    for (name, value) in env {
        let Some(value) = value.as_str() else {
            continue;
        };
        let Some(m) = ctx.detector.classify_var(name, value.as_bytes()) else {
            continue;
        };
        let line = key_line(place.text, name);
        let (severity, message) = match kind {
            EnvKind::ClaudeSettings => (
                if place.tracked {
                    Severity::Critical
                } else {
                    Severity::High
                },
                format!(
                    "{} in the `env` block of {}: Claude Code sets it on its own process, so every \
                     Bash command, hook and MCP server it starts inherits {name}{}",
                    m.rule.kind,
                    place.shown.display(),
                    if place.tracked {
                        "; the file is tracked by git"
                    } else {
                        ""
                    }
                ),
            ),
            EnvKind::Mcp => (
                if place.tracked {
                    Severity::Critical
                } else if place.path.ends_with(".mcp.json") {
                    Severity::High
                } else {
                    Severity::Medium
                },
                format!(
                    "{} in an MCP server's `env` in {}: stored in plaintext{}",
                    m.rule.kind,
                    place.shown.display(),
                    if place.tracked {
                        " in a file tracked by git"
                    } else {
                        ""
                    }
                ),
            ),
        };
        let fix = match kind {
            EnvKind::ClaudeSettings if name == "ANTHROPIC_API_KEY" => format!(
                "remove {name} from the env block and run `keyfence setup claude`: it stores the \
                 key and starts claude under keyfence's agent profile"
            ),
            EnvKind::ClaudeSettings => format!(
                "remove {name} from the env block; store it with `keyfence secret set {name}` and \
                 inject it only where needed with `keyfence run --inject {name} -- COMMAND`"
            ),
            EnvKind::Mcp => format!(
                "store it with `keyfence secret set {name}` and start the server through \
                 `keyfence run --inject {name} -- SERVER`"
            ),
        };
        out.secret(
            Source::Agent,
            &m,
            severity,
            Location::file(place.located.clone(), line),
            message,
            fix,
        );
    }
}

fn mcp_servers(ctx: &Context, out: &mut Output, place: &Place, servers: &Value) {
    let Some(servers) = servers.as_object() else {
        return;
    };
    for server in servers.values() {
        if let Some(env) = server.get("env").and_then(Value::as_object) {
            env_block(ctx, out, place, env, EnvKind::Mcp);
        }
    }
}

/// The 1-based line of the first `"key"` in `text` (JSON values carry no positions in serde).
fn key_line(text: &[u8], key: &str) -> u32 {
    let needle = format!("\"{key}\"");
    memchr::memmem::find(text, needle.as_bytes()).map_or(1, |at| detect::line_col(text, at).0)
}

fn env_value<'a>(ctx: &'a Context, name: &str) -> Option<&'a str> {
    ctx.settings
        .env
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.to_str())
}

fn claude_env_checks(
    ctx: &Context,
    out: &mut Output,
    helper_set: bool,
    scrub_in_settings: Option<bool>,
    claude_configured: bool,
) {
    let key_exported = env_value(ctx, "ANTHROPIC_API_KEY").is_some_and(|v| !v.is_empty());
    let under_keyfence = starts_under_keyfence(ctx, "claude");
    if key_exported && !helper_set && !under_keyfence {
        out.findings.push(Finding {
            rule: "claude-api-key-without-helper".into(),
            severity: Severity::Medium,
            source: Source::Agent,
            location: Location::Env {
                env: "ANTHROPIC_API_KEY".into(),
            },
            secret: None,
            message: "ANTHROPIC_API_KEY is exported and no Claude Code `apiKeyHelper` is set: \
                      Claude Code and every command its Bash tool runs see the key"
                .into(),
            fix: "run `keyfence setup claude` (it stores the key and starts claude under \
                  keyfence's agent profile, which hands the key to claude alone), then stop \
                  exporting it (`keyfence fix` removes the export)"
                .into(),
        });
    }
    let scrub = env_value(ctx, "CLAUDE_CODE_SUBPROCESS_ENV_SCRUB")
        .map(|v| v == "1")
        .or(scrub_in_settings)
        .unwrap_or(false);
    // Once `setup claude` made the shell start claude under keyfence's agent profile, keys
    // reach neither claude's environment nor its tools': the scrub no longer matters.
    if (claude_configured || key_exported) && !scrub && !under_keyfence {
        out.findings.push(Finding {
            rule: "claude-subprocess-env-scrub-off".into(),
            severity: Severity::Info,
            source: Source::Agent,
            location: Location::Env {
                env: "CLAUDE_CODE_SUBPROCESS_ENV_SCRUB".into(),
            },
            secret: None,
            message: "Claude Code's subprocess credential scrub is off: Anthropic and cloud \
                      credentials in its environment reach Bash commands, hooks and MCP servers \
                      (the scrub covers a fixed list; OPENAI_API_KEY, STRIPE_* and database URLs \
                      pass anyway)"
                .into(),
            fix: "keep keys out of Claude Code's environment altogether (apiKeyHelper with \
                  keyfence), or set CLAUDE_CODE_SUBPROCESS_ENV_SCRUB=1"
                .into(),
        });
    }
}

/// Codex CLI: `shell_environment_policy` decides what its shell commands inherit. Today's
/// defaults are `inherit = "all"` and `ignore_default_excludes = true`: everything, secrets
/// included (codex-rs config/src/shell_environment_policy.rs, rust-v0.166.0).
fn codex(ctx: &Context, out: &mut Output) {
    let dir = env_value(ctx, "CODEX_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| ctx.home().join(".codex"));
    let path = dir.join("config.toml");
    let Some(bytes) = super::read_optional(ctx, out, Source::Agent, &path) else {
        return;
    };
    let text = String::from_utf8_lossy(&bytes);
    let table: toml::Table = match toml::from_str(&text) {
        Ok(t) => t,
        Err(e) => {
            let line = e
                .span()
                .map_or(1, |s| detect::line_col(text.as_bytes(), s.start).0);
            out.error(
                Source::Agent,
                Some(&path),
                format!(
                    "malformed TOML at line {line}: {}",
                    e.message().lines().next().unwrap_or("")
                ),
            );
            return;
        }
    };
    let shown = PathBuf::from(display_path(ctx.home(), &path));
    let policy = table
        .get("shell_environment_policy")
        .and_then(|v| v.as_table());
    let get_str = |k: &str| policy.and_then(|p| p.get(k)).and_then(|v| v.as_str());
    let get_bool = |k: &str| policy.and_then(|p| p.get(k)).and_then(|v| v.as_bool());
    let inherit = get_str("inherit").unwrap_or("all");
    let ignore_default_excludes = get_bool("ignore_default_excludes").unwrap_or(true);
    let has_filter = |k: &str| {
        policy
            .and_then(|p| p.get(k))
            .is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty()) || v.is_table())
    };
    let filtered = has_filter("include_only") || has_filter("exclude") || has_filter("filters");
    let line = if policy.is_some() {
        memchr::memmem::find(text.as_bytes(), b"shell_environment_policy")
            .map_or(1, |at| detect::line_col(text.as_bytes(), at).0)
    } else {
        1
    };
    if inherit == "all" && ignore_default_excludes && !filtered {
        out.findings.push(Finding {
            rule: "codex-env-policy-passes-secrets".into(),
            severity: Severity::High,
            source: Source::Agent,
            location: Location::file(path.clone(), line),
            secret: None,
            message: format!(
                "Codex passes its whole environment, secrets included, to every command it runs \
                 ({}: inherit = \"all\"{})",
                shown.display(),
                if policy.is_none() {
                    ", the default"
                } else {
                    " and default excludes ignored"
                }
            ),
            fix: "add to ~/.codex/config.toml:\n  [shell_environment_policy]\n  inherit = \"core\"\n  \
                  ignore_default_excludes = false"
                .into(),
        });
    }
    // Secrets written into the policy's `set` table or MCP server env tables.
    let mut tables: Vec<&toml::Table> = Vec::new();
    if let Some(set) = policy.and_then(|p| p.get("set")).and_then(|v| v.as_table()) {
        tables.push(set);
    }
    if let Some(servers) = table.get("mcp_servers").and_then(|v| v.as_table()) {
        tables.extend(
            servers
                .values()
                .filter_map(|s| s.get("env"))
                .filter_map(|e| e.as_table()),
        );
    }
    for t in tables {
        for (name, value) in t {
            let Some(value) = value.as_str() else {
                continue;
            };
            if let Some(m) = ctx.detector.classify_var(name, value.as_bytes()) {
                let line = memchr::memmem::find(text.as_bytes(), name.as_bytes())
                    .map_or(1, |at| detect::line_col(text.as_bytes(), at).0);
                out.secret(
                    Source::Agent,
                    &m,
                    Severity::High,
                    Location::file(path.clone(), line),
                    format!(
                        "{} in {}: Codex sets {name} for the commands or MCP servers it starts",
                        m.rule.kind,
                        shown.display()
                    ),
                    format!(
                        "remove it from the file; store it with `keyfence secret set {name}` and \
                         inject it with `keyfence run --inject {name} -- COMMAND`"
                    ),
                );
            }
        }
    }
}
