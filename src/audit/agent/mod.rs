//! `agent`: AI coding agents' own configuration, user and project level. Claude Code applies a
//! settings file's `env` block to its process, so every Bash command, hook and MCP server
//! inherits it; MCP server definitions carry their own `env` (Claude Code's `.mcp.json` and
//! `~/.claude.json`, Codex's `[mcp_servers.X.env]`, Gemini CLI's and Cursor's `mcpServers`);
//! Codex and Gemini CLI load their own `.env` files into their environment; Codex passes that
//! environment to the commands it runs as its `shell_environment_policy` says (`codex.rs`),
//! Gemini CLI whole unless `security.environmentVariableRedaction` is on.
//!
//! And whether typing an agent's name starts it under keyfence at all
//! ([`AGENT_STARTS_OUTSIDE_KEYFENCE`]); a running agent outside keyfence is the `proc` source's.

pub mod codex;

use crate::tree::git::GitState;
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
        || (parent == ".cursor" && name == "mcp.json")
        || (parent == ".gemini" && name == "settings.json")
        || (parent == ".codex" && name == "config.toml")
}

struct Place<'a> {
    shown: PathBuf,
    /// What locations carry: project-relative for project files, absolute for home files.
    located: PathBuf,
    text: &'a [u8],
    tracked: bool,
    in_project: bool,
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
            mcp_servers(ctx, out, &place, s, None);
        }
    }
    for p in &ctx.settings.projects {
        let path = p.join(".mcp.json");
        if let Some((text, json)) = read_json(ctx, out, &path) {
            let place = place(ctx, &path, &text, true);
            if let Some(s) = json.get("mcpServers") {
                mcp_servers(ctx, out, &place, s, None);
            }
        }
    }

    claude_env_checks(ctx, out, helper_set, scrub_in_settings, claude_dir.is_dir());
    codex(ctx, out);
    gemini(ctx, out);
    cursor(ctx, out);
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
                            "run `keyfence setup {program}`: {shown} then loads `keyfence \
                             shell-init {}`, whose `{program}` function starts it as `keyfence \
                             run --profile agent -- {program}`",
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

fn place<'a>(ctx: &Context, path: &Path, text: &'a [u8], in_project: bool) -> Place<'a> {
    let (shown, located) = if in_project {
        (crate::tree::walk::clean(path), crate::tree::walk::clean(path))
    } else {
        (
            PathBuf::from(display_path(ctx.home(), path)),
            path.to_path_buf(),
        )
    };
    let tracked = in_project && ctx.git.state(path) == GitState::Tracked;
    Place {
        shown,
        located,
        text,
        tracked,
        in_project,
    }
}

fn read_json(ctx: &Context, out: &mut Output, path: &Path) -> Option<(Vec<u8>, Value)> {
    let text = super::read_optional(ctx, out, Source::Agent, path)?;
    let json = parse_json(out, path, &text, "Claude Code")?;
    Some((text, json))
}

/// `text` as JSON, or an error naming the position and the agent that will not read it either.
fn parse_json(out: &mut Output, path: &Path, text: &[u8], agent: &str) -> Option<Value> {
    match serde_json::from_slice::<Value>(text) {
        Ok(v) => Some(v),
        Err(e) => {
            out.error(
                Source::Agent,
                Some(path),
                format!(
                    "malformed JSON at line {} column {}: {}; fix the file, {agent} will not \
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
    /// An MCP server's `env`, and the `keyfence setup` that moves such keys, if any.
    Mcp(Option<&'static str>),
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
            EnvKind::Mcp(_) => (
                if place.tracked {
                    Severity::Critical
                } else if place.in_project {
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
            EnvKind::Mcp(Some("cursor")) => format!(
                "run `keyfence setup cursor`: it stores {name} and starts the server as \
                 `keyfence run --inject {name} -- SERVER`, without the key in the file"
            ),
            EnvKind::Mcp(_) => format!(
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

fn mcp_servers(
    ctx: &Context,
    out: &mut Output,
    place: &Place,
    servers: &Value,
    setup: Option<&'static str>,
) {
    let Some(servers) = servers.as_object() else {
        return;
    };
    for server in servers.values() {
        if let Some(env) = server.get("env").and_then(Value::as_object) {
            env_block(ctx, out, place, env, EnvKind::Mcp(setup));
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

/// Rule `codex-env-policy-passes-secrets`: Codex's `shell_environment_policy` (all layers
/// merged) lets secrets of its environment through to the commands it runs.
pub const CODEX_POLICY_PASSES_SECRETS: &str = "codex-env-policy-passes-secrets";

/// Rule `codex-requirements-policy-ignored` (medium): `requirements.toml` holds a
/// `shell_environment_policy`, which Codex does not read there: the administrator's pin does
/// not hold.
pub const CODEX_REQUIREMENTS_POLICY_IGNORED: &str = "codex-requirements-policy-ignored";

/// Rule `gemini-env-redaction-off`: Gemini CLI passes its whole environment to its shell tool
/// (`security.environmentVariableRedaction.enabled` is false, the default) while secrets are
/// exported or in a `.env` file it loads.
pub const GEMINI_REDACTION_OFF: &str = "gemini-env-redaction-off";

/// The layers one policy is merged from, and the project layer among them (with whether the
/// user trusts the project).
type Verdict<'a> = (Vec<&'a TomlFile>, Option<(&'a TomlFile, bool)>);

/// A TOML file of Codex's: its path, text and table.
struct TomlFile {
    path: PathBuf,
    text: String,
    table: toml::Table,
}

fn read_toml(ctx: &Context, out: &mut Output, path: &Path) -> Option<TomlFile> {
    let bytes = super::read_optional(ctx, out, Source::Agent, path)?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    match toml::from_str::<toml::Table>(&text) {
        Ok(table) => Some(TomlFile {
            path: path.to_path_buf(),
            text,
            table,
        }),
        Err(e) => {
            let (line, column) = e
                .span()
                .map_or((1, 1), |s| detect::line_col(text.as_bytes(), s.start));
            out.error(
                Source::Agent,
                Some(path),
                format!(
                    "malformed TOML at line {line} column {column}: {}; fix the file, Codex will \
                     not start with it either",
                    e.message().lines().next().unwrap_or("")
                ),
            );
            None
        }
    }
}

/// The 1-based line of the first occurrence of `needle` (1 when absent).
fn line_of(text: &str, needle: &str) -> u32 {
    memchr::memmem::find(text.as_bytes(), needle.as_bytes())
        .map_or(1, |at| detect::line_col(text.as_bytes(), at).0)
}

/// Names of the secrets exported in the audited environment.
fn exported_secrets(ctx: &Context) -> Vec<String> {
    let mut names: Vec<String> = ctx
        .settings
        .env
        .iter()
        .filter_map(|(k, v)| {
            let k = k.to_str()?;
            use std::os::unix::ffi::OsStrExt;
            ctx.detector
                .classify_var(k, v.as_bytes())
                .map(|_| k.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Codex CLI: its configuration layers (`codex.rs`), the secrets they pass to commands or
/// write into `set` and MCP server tables, a policy pinned where Codex does not read it, and
/// `$CODEX_HOME/.env`, which Codex loads into its own environment.
fn codex(ctx: &Context, out: &mut Output) {
    use crate::audit::agent::codex::{self as model, Policy};
    let dir = env_value(ctx, "CODEX_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| ctx.home().join(".codex"));
    let etc = ctx.settings.etc.join("codex");
    let system = read_toml(ctx, out, &etc.join("config.toml"));
    let user = read_toml(ctx, out, &dir.join("config.toml"));
    let managed = read_toml(ctx, out, &etc.join("managed_config.toml"));
    let requirements = read_toml(ctx, out, &etc.join("requirements.toml"));
    let mut projects: Vec<(TomlFile, bool)> = Vec::new();
    for p in &ctx.settings.projects {
        if let Some(f) = read_toml(ctx, out, &p.join(".codex/config.toml")) {
            let trusted = user.as_ref().is_some_and(|u| codex_trusts(&u.table, p));
            projects.push((f, trusted));
        }
    }
    if !dir.is_dir() && system.is_none() && managed.is_none() && projects.is_empty() {
        return;
    }
    let policy_of = |f: &TomlFile| {
        f.table
            .get("shell_environment_policy")
            .and_then(toml::Value::as_table)
            .cloned()
    };

    // Secrets written into the files: the policy's `set`, MCP servers' `env`.
    let files = system
        .iter()
        .chain(user.iter())
        .chain(projects.iter().map(|(f, _)| f))
        .chain(managed.iter());
    for f in files {
        codex_written_secrets(ctx, out, f);
    }

    if let Some(r) = &requirements
        && r.table.contains_key("shell_environment_policy")
    {
        let shown = display_path(ctx.home(), &r.path);
        out.findings.push(Finding {
            rule: CODEX_REQUIREMENTS_POLICY_IGNORED.into(),
            severity: Severity::Medium,
            source: Source::Agent,
            location: Location::file(r.path.clone(), line_of(&r.text, "shell_environment_policy")),
            secret: None,
            message: format!(
                "{shown} sets `shell_environment_policy`, but Codex does not read it from \
                 requirements.toml (checked with Codex 0.171): users' own config.toml decides \
                 what their commands inherit"
            ),
            fix: format!(
                "move the [shell_environment_policy] table to {}, which overrides every user's \
                 config.toml",
                display_path(ctx.home(), &etc.join("managed_config.toml"))
            ),
        });
    }

    let exported = exported_secrets(ctx);
    // One verdict for the user's own layers, and one for each project layer, trusted or not.
    let mut verdicts: Vec<Verdict> = vec![(
        system
            .iter()
            .chain(user.iter())
            .chain(managed.iter())
            .collect(),
        None,
    )];
    for (f, trusted) in &projects {
        if policy_of(f).is_some() {
            let layers = system
                .iter()
                .chain(user.iter())
                .chain(std::iter::once(f))
                .chain(managed.iter())
                .collect();
            verdicts.push((layers, Some((f, *trusted))));
        }
    }
    for (layers, project) in verdicts {
        let tables: Vec<toml::Table> = layers.iter().filter_map(|f| policy_of(f)).collect();
        let policy: Policy = match model::merge(&tables) {
            Ok(p) => p,
            Err(e) => {
                let f = layers.last().map(|f| f.path.as_path());
                out.error(
                    Source::Agent,
                    f,
                    format!("shell_environment_policy: {e}; Codex will not start with it"),
                );
                continue;
            }
        };
        let passed: Vec<&str> = exported
            .iter()
            .map(String::as_str)
            .filter(|n| policy.passes(n))
            .collect();
        let probes: Vec<&str> = model::PROBES
            .iter()
            .copied()
            .filter(|n| policy.passes(n))
            .collect();
        if passed.is_empty() && probes.is_empty() {
            continue;
        }
        // The layer that decides: the highest one with a policy, else the user's file.
        let decisive = layers
            .iter()
            .rev()
            .find(|f| policy_of(f).is_some())
            .copied();
        let (path, line) = match decisive {
            Some(f) => (f.path.clone(), line_of(&f.text, "shell_environment_policy")),
            None => (dir.join("config.toml"), 1),
        };
        let shown = display_path(ctx.home(), &path);
        let what = if policy.passes_everything() {
            "its whole environment, secrets included,".to_string()
        } else if !passed.is_empty() {
            passed.join(", ")
        } else {
            format!("secrets such as {}", probes.join(", "))
        };
        let now = if passed.is_empty() || policy.passes_everything() {
            if passed.is_empty() {
                String::new()
            } else {
                format!(" ({} exported now)", passed.join(", "))
            }
        } else {
            " (exported now)".to_string()
        };
        let decided = match decisive {
            None => "no shell_environment_policy: Codex's default is inherit = \"all\" with its \
                     default excludes off"
                .to_string(),
            Some(_) => format!("policy from {shown}:{line}"),
        };
        let (severity, message) = match project {
            None => (
                if policy.passes_everything() || !passed.is_empty() {
                    Severity::High
                } else {
                    Severity::Medium
                },
                format!("Codex passes {what}{now} to every command it runs ({decided})"),
            ),
            Some((f, trusted)) => {
                let tracked = ctx.git.state(&f.path) == GitState::Tracked;
                (
                    if trusted {
                        Severity::High
                    } else {
                        Severity::Medium
                    },
                    format!(
                        "the project's {} makes Codex pass {what}{now} to every command it runs \
                         in this project{}{}",
                        crate::tree::walk::clean(&f.path).display(),
                        if trusted {
                            ", and you trust the project"
                        } else {
                            " once you trust the project"
                        },
                        if tracked {
                            "; the file is tracked by git: whoever can commit to the repository \
                             decides"
                        } else {
                            ""
                        }
                    ),
                )
            }
        };
        let fix = match (project, decisive) {
            (Some(_), _) => "delete the [shell_environment_policy] table from the project's \
                             .codex/config.toml (a project should not widen what commands \
                             inherit), and start codex through `keyfence setup codex`"
                .to_string(),
            (None, Some(f)) if f.path.starts_with(&ctx.settings.etc) => format!(
                "an administrator's file decides: in {shown} set inherit = \"all\", \
                 ignore_default_excludes = false, exclude = [{}]",
                quoted_list(model::EXTRA_EXCLUDES)
            ),
            (None, _) => format!(
                "run `keyfence setup codex` (it writes the policy and starts codex under \
                 keyfence's agent profile), or write in {}:\n  [shell_environment_policy]\n  \
                 inherit = \"all\"\n  ignore_default_excludes = false\n  exclude = [{}]",
                display_path(ctx.home(), &dir.join("config.toml")),
                quoted_list(model::EXTRA_EXCLUDES)
            ),
        };
        out.findings.push(Finding {
            rule: CODEX_POLICY_PASSES_SECRETS.into(),
            severity,
            source: Source::Agent,
            location: Location::file(path, line),
            secret: None,
            message,
            fix,
        });
    }

    // `$CODEX_HOME/.env`: Codex loads it into its own environment (checked with 0.171).
    agent_env_file(
        ctx,
        out,
        &dir.join(".env"),
        "Codex loads it into its own environment at start, so the commands it runs inherit",
        "codex",
    );
}

pub(crate) fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether the user's Codex config trusts `project` or a directory above it
/// (`[projects."PATH"] trust_level = "trusted"`).
fn codex_trusts(user: &toml::Table, project: &Path) -> bool {
    let Some(projects) = user.get("projects").and_then(toml::Value::as_table) else {
        return false;
    };
    let abs = std::path::absolute(project).unwrap_or_else(|_| project.to_path_buf());
    let canon = project.canonicalize().unwrap_or_else(|_| abs.clone());
    [abs, canon].iter().any(|p| {
        p.ancestors().any(|a| {
            projects
                .get(a.to_string_lossy().as_ref())
                .and_then(|e| e.get("trust_level"))
                .and_then(toml::Value::as_str)
                == Some("trusted")
        })
    })
}

/// Secrets written into a Codex TOML file: `shell_environment_policy.set` and MCP servers'
/// `env`.
fn codex_written_secrets(ctx: &Context, out: &mut Output, f: &TomlFile) {
    let policy = f
        .table
        .get("shell_environment_policy")
        .and_then(toml::Value::as_table);
    let mut tables: Vec<(&toml::Table, bool)> = Vec::new();
    if let Some(set) = policy.and_then(|p| p.get("set")).and_then(|v| v.as_table()) {
        tables.push((set, false));
    }
    if let Some(servers) = f.table.get("mcp_servers").and_then(|v| v.as_table()) {
        tables.extend(
            servers
                .values()
                .filter_map(|s| s.get("env"))
                .filter_map(|e| e.as_table())
                .map(|t| (t, true)),
        );
    }
    let shown = display_path(ctx.home(), &f.path);
    for (t, mcp) in tables {
        for (name, value) in t {
            let Some(value) = value.as_str() else {
                continue;
            };
            let Some(m) = ctx.detector.classify_var(name, value.as_bytes()) else {
                continue;
            };
            let line = line_of(&f.text, name);
            out.secret(
                Source::Agent,
                &m,
                Severity::High,
                Location::file(f.path.clone(), line),
                format!(
                    "{} in {shown}: Codex sets {name} for {}",
                    m.rule.kind,
                    if mcp {
                        "an MCP server it starts, and the file holds it in plaintext"
                    } else {
                        "every command it runs"
                    }
                ),
                if mcp {
                    format!(
                        "store it with `keyfence secret set {name}`, delete it from the server's \
                         env table, and start the server as `command = \"keyfence\"`, `args = \
                         [\"run\", \"--inject\", \"{name}\", \"--\", SERVER, ...]`"
                    )
                } else {
                    format!(
                        "delete it from [shell_environment_policy.set]; store it with `keyfence \
                         secret set {name}` and give it to the one command that needs it with \
                         `keyfence run --inject {name} -- COMMAND`"
                    )
                },
            );
        }
    }
}

/// Keys in an agent's own `.env` file, which the agent loads into its own environment.
fn agent_env_file(ctx: &Context, out: &mut Output, path: &Path, why: &str, agent: &str) {
    let Some(text) = super::read_optional(ctx, out, Source::Agent, path) else {
        return;
    };
    let shown = display_path(ctx.home(), path);
    for e in super::dotenv::parse(&text) {
        let Some(m) = ctx.detector.classify_var(&e.name, &e.value) else {
            continue;
        };
        let name = &e.name;
        out.secret(
            Source::Agent,
            &m,
            Severity::High,
            Location::file(path.to_path_buf(), e.line),
            format!("{} in {shown}: {why} {name}", m.rule.kind),
            format!(
                "delete the line; `keyfence setup {agent}` stores the agent's own key and hands \
                 it to {agent} alone (`keyfence secret set {name}` for any other)"
            ),
        );
    }
}

/// JSON that may carry `//` and `/* */` comments, as Gemini CLI's settings may (it strips them
/// before parsing): the comments become spaces, so lines and columns stay where they were.
pub(crate) fn strip_json_comments(text: &[u8]) -> Vec<u8> {
    let mut out = text.to_vec();
    let mut i = 0;
    let mut in_string = false;
    while i < out.len() {
        let b = out[i];
        if in_string {
            if b == b'\\' {
                i += 2;
                continue;
            }
            if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match (b, out.get(i + 1)) {
            (b'"', _) => in_string = true,
            (b'/', Some(b'/')) => {
                while i < out.len() && out[i] != b'\n' {
                    out[i] = b' ';
                    i += 1;
                }
                continue;
            }
            (b'/', Some(b'*')) => {
                let end =
                    memchr::memmem::find(&out[i + 2..], b"*/").map_or(out.len(), |e| i + 4 + e);
                for c in &mut out[i..end] {
                    if *c != b'\n' {
                        *c = b' ';
                    }
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Gemini CLI's settings files, lowest precedence first: system defaults, the user's, the
/// project's, the system's overrides (docs/reference/configuration.md of 0.61).
fn gemini_settings_files(ctx: &Context) -> Vec<(PathBuf, bool)> {
    let etc = ctx.settings.etc.join("gemini-cli");
    let var = |name: &str, default: PathBuf| {
        env_value(ctx, name)
            .filter(|v| v.starts_with('/'))
            .map_or(default, PathBuf::from)
    };
    let mut files = vec![
        (
            var(
                "GEMINI_CLI_SYSTEM_DEFAULTS_PATH",
                etc.join("system-defaults.json"),
            ),
            false,
        ),
        (ctx.home().join(".gemini/settings.json"), false),
    ];
    for p in &ctx.settings.projects {
        files.push((p.join(".gemini/settings.json"), true));
    }
    files.push((
        var("GEMINI_CLI_SYSTEM_SETTINGS_PATH", etc.join("settings.json")),
        false,
    ));
    files
}

/// Whether Gemini's redaction takes `name=value` out of a shell command's environment: 0.61's
/// `shouldRedactEnvironmentVariable` (bundle: its value patterns, then `GIT_CONFIG_*`, the
/// user's allowed and blocked lists, NEVER_ALLOWED_ENVIRONMENT_VARIABLES and the name patterns),
/// checked against the installed bundle in tests/it/audit/agent.rs.
fn gemini_redacts(name: &str, value: &[u8], allowed: &[String], blocked: &[String]) -> bool {
    static VALUES: std::sync::OnceLock<Option<regex::bytes::RegexSet>> = std::sync::OnceLock::new();
    let n = name.to_ascii_uppercase();
    if n.starts_with("GEMINI_CLI_") {
        return false;
    }
    let values = VALUES.get_or_init(|| {
        regex::bytes::RegexSet::new([
            r"(?i-u)-----BEGIN (RSA|OPENSSH|EC|PGP) PRIVATE KEY-----",
            r"(?i-u)-----BEGIN CERTIFICATE-----",
            r"(?i-u)(https?|ftp|smtp)://[^:\s]{1,1024}:[^@\s]{1,1024}@",
            r"(?i-u)(ghp|gho|ghu|ghs|ghr|github_pat)_[a-zA-Z0-9_]{36,}",
            r"(?i-u)AIzaSy[a-zA-Z0-9_\\-]{33}",
            r"(?i-u)AKIA[A-Z0-9]{16}",
            r"(?i-u)eyJ[a-zA-Z0-9_-]*\.[a-zA-Z0-9_-]*\.[a-zA-Z0-9_-]*",
            r"(?i-u)(s|r)k_(live|test)_[0-9a-zA-Z]{24}",
            r"(?i-u)xox[abpr]-[a-zA-Z0-9-]+",
        ])
        .ok()
    });
    if values.as_ref().is_some_and(|v| v.is_match(value)) {
        return true;
    }
    if n.starts_with("GIT_CONFIG_") || allowed.iter().any(|a| a.eq_ignore_ascii_case(name)) {
        return false;
    }
    if blocked.iter().any(|b| b.eq_ignore_ascii_case(name)) {
        return true;
    }
    const ALWAYS: &[&str] = &[
        "PATH",
        "SYSTEMROOT",
        "COMSPEC",
        "PATHEXT",
        "WINDIR",
        "TEMP",
        "TMP",
        "USERPROFILE",
        "SYSTEMDRIVE",
        "HOME",
        "LANG",
        "SHELL",
        "TMPDIR",
        "USER",
        "LOGNAME",
        "TERM",
        "COLORTERM",
    ];
    if ALWAYS.contains(&n.as_str()) {
        return false;
    }
    const NEVER: &[&str] = &[
        "CLIENT_ID",
        "DB_URI",
        "CONNECTION_STRING",
        "AWS_DEFAULT_REGION",
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "SLACK_WEBHOOK_URL",
        "TWILIO_ACCOUNT_SID",
        "DATABASE_URL",
        "GOOGLE_CLOUD_PROJECT",
        "GOOGLE_CLOUD_ACCOUNT",
        "FIREBASE_PROJECT_ID",
    ];
    NEVER.contains(&n.as_str())
        || [
            "TOKEN",
            "SECRET",
            "PASSWORD",
            "PASSWD",
            "KEY",
            "AUTH",
            "CREDENTIAL",
            "CREDS",
            "PRIVATE",
            "CERT",
        ]
        .iter()
        .any(|p| n.contains(p))
}

/// Gemini CLI: MCP servers' `env` in its settings files, `~/.gemini/.env`, and whether its
/// shell tool gets the environment whole (redaction off) while secrets are exported.
fn gemini(ctx: &Context, out: &mut Output) {
    let dir = ctx.home().join(".gemini");
    let mut enabled: Option<(bool, PathBuf, u32)> = None;
    let mut allowed: Vec<String> = Vec::new();
    let mut blocked: Vec<String> = Vec::new();
    let mut any = dir.is_dir();
    let mut last_file: Option<PathBuf> = None;
    for (path, in_project) in gemini_settings_files(ctx) {
        let Some(raw) = super::read_optional(ctx, out, Source::Agent, &path) else {
            continue;
        };
        any = true;
        let Some(json) = parse_json(out, &path, &strip_json_comments(&raw), "Gemini CLI") else {
            continue;
        };
        let place = place(ctx, &path, &raw, in_project);
        if let Some(s) = json.get("mcpServers") {
            mcp_servers(ctx, out, &place, s, Some("gemini"));
        }
        let redaction = &json["security"]["environmentVariableRedaction"];
        if let Some(b) = redaction["enabled"].as_bool() {
            let line = key_line(&raw, "environmentVariableRedaction");
            enabled = Some((b, path.clone(), line));
        }
        for (list, key) in [(&mut allowed, "allowed"), (&mut blocked, "blocked")] {
            if let Some(a) = redaction[key].as_array() {
                list.extend(a.iter().filter_map(|v| v.as_str().map(str::to_string)));
            }
        }
        if !in_project {
            last_file = Some(path);
        }
    }
    agent_env_file(
        ctx,
        out,
        &dir.join(".env"),
        "Gemini CLI loads it into its own environment when the project has no .env, and its \
         shell tool inherits",
        "gemini",
    );
    let on_path = env_value(ctx, "PATH").is_some_and(|p| {
        p.split(':')
            .any(|d| d.starts_with('/') && Path::new(d).join("gemini").is_file())
    });
    if !(any || on_path) {
        return;
    }
    let on = enabled.as_ref().is_some_and(|(b, _, _)| *b);
    let exported = exported_secrets(ctx);
    let value_of = |name: &str| {
        use std::os::unix::ffi::OsStrExt;
        ctx.settings
            .env
            .iter()
            .find(|(k, _)| k == name)
            .map_or(&[][..], |(_, v)| v.as_bytes())
    };
    let passed: Vec<&str> = exported
        .iter()
        .map(String::as_str)
        .filter(|n| !on || !gemini_redacts(n, value_of(n), &allowed, &blocked))
        .collect();
    if passed.is_empty() {
        return;
    }
    let (location, shown) = match (&enabled, &last_file) {
        (Some((_, p, line)), _) => (
            Location::file(p.clone(), *line),
            display_path(ctx.home(), p),
        ),
        (None, Some(p)) => (Location::file(p.clone(), 1), display_path(ctx.home(), p)),
        (None, None) => {
            let p = dir.join("settings.json");
            (Location::file(p.clone(), 1), display_path(ctx.home(), &p))
        }
    };
    let message = if on {
        format!(
            "Gemini CLI's redaction is on but lets {} through to its shell tool: their names \
             match none of its patterns (or {shown} allows them)",
            passed.join(", ")
        )
    } else {
        format!(
            "Gemini CLI passes {} (exported now) to every command its shell tool runs: \
             security.environmentVariableRedaction.enabled is {} in {shown}",
            passed.join(", "),
            if enabled.is_some() {
                "false"
            } else {
                "not set (default false)"
            }
        )
    };
    out.findings.push(Finding {
        rule: GEMINI_REDACTION_OFF.into(),
        severity: if on { Severity::Medium } else { Severity::High },
        source: Source::Agent,
        location,
        secret: None,
        message,
        fix: if on {
            format!(
                "add them to security.environmentVariableRedaction.blocked in {shown}, and start \
                 gemini through `keyfence setup gemini`"
            )
        } else {
            "run `keyfence setup gemini` (it turns redaction on in ~/.gemini/settings.json and \
             starts gemini under keyfence's agent profile), and stop exporting keys (`keyfence \
             fix`)"
                .to_string()
        },
    });
}

/// Cursor's MCP servers: `~/.cursor/mcp.json` and the project's `.cursor/mcp.json`, the same
/// shape as Claude Code's `.mcp.json`.
fn cursor(ctx: &Context, out: &mut Output) {
    let mut files = vec![(ctx.home().join(".cursor/mcp.json"), false)];
    for p in &ctx.settings.projects {
        files.push((p.join(".cursor/mcp.json"), true));
    }
    for (path, in_project) in files {
        let Some(raw) = super::read_optional(ctx, out, Source::Agent, &path) else {
            continue;
        };
        let Some(json) = parse_json(out, &path, &strip_json_comments(&raw), "Cursor") else {
            continue;
        };
        let place = place(ctx, &path, &raw, in_project);
        if let Some(s) = json.get("mcpServers") {
            mcp_servers(ctx, out, &place, s, Some("cursor"));
        }
    }
}
