//! `keyfence setup claude`: make `keyfence secret get ANTHROPIC_API_KEY` Claude Code's
//! `apiKeyHelper`, so the key lives in the store instead of any environment. Computes the
//! change and applies it; printing is the command's job.
//!
//! What this protects: the key leaves every environment, so nothing Claude Code starts
//! inherits it or can read it from `/proc/PID/environ`. What it does not: any process in the
//! agent's tree can still run the helper command itself or read the store's files. Closing that
//! is the job of guard and the sandbox.

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
    let p = exe.to_string_lossy();
    let quoted = if p
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b))
    {
        p.into_owned()
    } else {
        format!("'{}'", p.replace('\'', "'\\''"))
    };
    format!("{quoted} secret get {KEY_NAME}")
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

/// The hook command line, quoted for `/bin/sh` like the helper.
pub fn hook_command(exe: &Path) -> String {
    let helper = helper_command(exe);
    let exe_part = helper.trim_end_matches(&format!(" secret get {KEY_NAME}")[..]);
    format!("{exe_part} __hook-claude")
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
                e["hooks"]
                    .as_array()
                    .is_some_and(|hs| hs.iter().any(|h| h["command"] == hook.as_str()))
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

/// The Bash command rewritten to run under the profile it matches, or None when it matches
/// none (the built-in `default` is left alone) or already goes through keyfence.
pub fn wrap_command(config: &crate::policy::Config, exe: &Path, command: &str) -> Option<String> {
    let hook = hook_command(exe);
    let exe = hook.trim_end_matches(" __hook-claude");
    let trimmed = command.trim();
    if trimmed.is_empty() || trimmed.starts_with(exe) || trimmed.starts_with("keyfence ") {
        return None;
    }
    let chosen = config.select(None, trimmed).ok()?;
    if chosen.origin == crate::policy::Origin::Builtin && chosen.profile.name == "default" {
        return None;
    }
    let quoted = format!("'{}'", command.replace('\'', "'\\''"));
    Some(format!(
        "{exe} run --profile {} -- bash -c {quoted}",
        chosen.profile.name
    ))
}

/// Writes the change: a backup of the old file first, then the new content atomically (temp
/// file in the same directory, fsync, rename) with the old file's mode (0600 for a new one).
/// Refuses when the file changed since it was read. Returns the backup's path.
pub fn apply(change: &SettingsChange) -> Result<Option<PathBuf>, SetupError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let err = |source| SetupError::Write {
        path: change.path.clone(),
        source,
    };
    let now = match std::fs::read(&change.path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(err(e)),
    };
    if now != change.original {
        return Err(err(std::io::Error::other(
            "the file changed since it was read; run the command again",
        )));
    }
    let dir = change.path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let mode = std::fs::metadata(&change.path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o600);
    // The same backups as `fix`: never overwriting an older one, mode 0600.
    let backup = match &change.original {
        Some(bytes) => Some(
            super::fix::create_backup(&change.path, bytes)
                .map_err(|e| err(std::io::Error::other(e.to_string())))?,
        ),
        None => None,
    };
    let tmp = dir.join(format!(".settings.json.keyfence-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(err)?;
    f.write_all(change.new_text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, &change.path).map_err(err)?;
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
