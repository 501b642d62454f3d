//! `keyfence setup codex`: Codex CLI's own control, a `shell_environment_policy` in
//! `$CODEX_HOME/config.toml` under which the commands Codex runs inherit no secrets, edited
//! with `toml_edit` so that the user's other settings, comments and order stay. The key and the
//! shell's `codex` function are the command's (shared with the other agents).
//!
//! The policy keeps `inherit` as the user chose it ("all" keeps ordinary variables such as
//! `JAVA_HOME`), turns Codex's default excludes on (`*KEY*`, `*SECRET*`, `*TOKEN*`) and adds the
//! secret names they miss (`audit::agent::codex::EXTRA_EXCLUDES`, and any exported secret that would
//! still pass). It matters where keyfence is not in front of Codex (an IDE extension, `command
//! codex`): under the agent profile Codex's environment already holds no other key.

use super::claude::SetupError;
use crate::audit::agent::codex::{self as model, EXTRA_EXCLUDES};
use std::path::{Path, PathBuf};
use toml_edit::{Array, DocumentMut, Item, Table, Value};

/// Codex's API key variable.
pub const KEY_NAME: &str = "OPENAI_API_KEY";

/// The change to `config.toml`.
#[derive(Debug)]
pub struct PolicyChange {
    pub path: PathBuf,
    /// The file's bytes as read (`None`: it does not exist yet).
    pub original: Option<Vec<u8>>,
    pub new_text: String,
    /// What changed, one line each, for the user.
    pub done: Vec<String>,
    /// Names `shell_environment_policy.set` gives a value of the file's own: not changed, said.
    pub set_names: Vec<String>,
}

impl PolicyChange {
    pub fn changes_anything(&self) -> bool {
        self.original.as_deref() != Some(self.new_text.as_bytes())
    }
}

/// Codex's home: `$CODEX_HOME`, else `~/.codex`.
pub fn codex_home(home: &Path, var: impl Fn(&str) -> Option<String>) -> PathBuf {
    var("CODEX_HOME")
        .filter(|v| v.starts_with('/'))
        .map_or_else(|| home.join(".codex"), PathBuf::from)
}

/// Whether Codex is logged in through its own file (`codex login`): `auth.json` exists. Its
/// contents are not read.
pub fn logged_in(codex_home: &Path) -> bool {
    codex_home.join("auth.json").is_file()
}

/// Reads `config.toml` and computes it with a policy that passes none of `exported` (the names
/// of the secrets exported now) nor Codex's usual secret names.
pub fn plan_policy(codex_home: &Path, exported: &[String]) -> Result<PolicyChange, SetupError> {
    let path = codex_home.join("config.toml");
    let original = match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(SetupError::Read { path, source }),
    };
    let text = String::from_utf8_lossy(original.as_deref().unwrap_or_default()).into_owned();
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        let (line, column) = e.span().map_or((1, 1), |s| {
            crate::detect::line_col(text.as_bytes(), s.start)
        });
        SetupError::InvalidToml {
            path: path.clone(),
            line: line as usize,
            column: column as usize,
        }
    })?;
    let mut done = Vec::new();
    let policy = match doc.get("shell_environment_policy") {
        None => {
            let mut t = Table::new();
            // A header of its own, after the user's tables.
            t.set_implicit(false);
            doc.insert("shell_environment_policy", Item::Table(t));
            done.push("added [shell_environment_policy]".to_string());
            doc["shell_environment_policy"].as_table_mut()
        }
        Some(Item::Value(Value::InlineTable(_))) => {
            let inline = doc["shell_environment_policy"]
                .as_inline_table()
                .cloned()
                .unwrap_or_default();
            doc["shell_environment_policy"] = Item::Table(inline.into_table());
            doc["shell_environment_policy"].as_table_mut()
        }
        Some(_) => doc["shell_environment_policy"].as_table_mut(),
    }
    .ok_or_else(|| SetupError::NotATable {
        path: path.clone(),
        key: "shell_environment_policy".into(),
    })?;

    if policy
        .get("ignore_default_excludes")
        .and_then(Item::as_bool)
        != Some(false)
    {
        policy["ignore_default_excludes"] = toml_edit::value(false);
        done.push(
            "ignore_default_excludes = false: Codex drops *KEY*, *SECRET*, *TOKEN* variables"
                .to_string(),
        );
    }
    // What still passes once the default excludes are on: the extra names, and any exported
    // secret the patterns miss.
    let current = model_of(policy);
    let mut wanted: Vec<String> = EXTRA_EXCLUDES.iter().map(|s| s.to_string()).collect();
    wanted.extend(exported.iter().filter(|n| current.passes(n)).cloned());
    let uses_filters = policy.contains_key("filters");
    let mut added = Vec::new();
    if uses_filters {
        // The newer spelling: one file may not mix it with `exclude`.
        let filters =
            policy["filters"]
                .as_table_like_mut()
                .ok_or_else(|| SetupError::NotATable {
                    path: path.clone(),
                    key: "shell_environment_policy.filters".into(),
                })?;
        for p in &wanted {
            let present = filters.iter().any(|(k, _)| k.eq_ignore_ascii_case(p));
            if !present {
                filters.insert(p, toml_edit::value("exclude"));
                added.push(p.clone());
            }
        }
    } else {
        if !policy.contains_key("exclude") {
            policy["exclude"] = toml_edit::value(Array::new());
        }
        let list = policy["exclude"]
            .as_array_mut()
            .ok_or_else(|| SetupError::NotATable {
                path: path.clone(),
                key: "shell_environment_policy.exclude".into(),
            })?;
        for p in &wanted {
            let present = list
                .iter()
                .any(|v| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(p)));
            if !present {
                list.push(p.as_str());
                added.push(p.clone());
            }
        }
    }
    if !added.is_empty() {
        done.push(format!(
            "{} {}: names of secrets the default excludes miss",
            if uses_filters {
                "filters exclude"
            } else {
                "exclude +="
            },
            added.join(", ")
        ));
    }
    let set_names = model_of(policy).set;
    let mut new_text = doc.to_string();
    if !new_text.is_empty() && !new_text.ends_with('\n') {
        new_text.push('\n');
    }
    Ok(PolicyChange {
        path,
        original,
        new_text,
        done,
        set_names,
    })
}

/// The model of a policy table as toml_edit holds it.
fn model_of(policy: &Table) -> model::Policy {
    let text = policy.to_string();
    toml::from_str::<toml::Table>(&text)
        .ok()
        .and_then(|t| model::merge([&t]).ok())
        .unwrap_or_default()
}

/// Writes the change (backup of the old file first). Returns the backup's path.
pub fn apply(change: &PolicyChange) -> Result<Option<PathBuf>, SetupError> {
    super::claude::write_atomically(
        &change.path,
        &change.path,
        change.original.as_deref(),
        change.new_text.as_bytes(),
        0o600,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: Option<&str>, exported: &[&str]) -> (String, PolicyChange) {
        let dir = tempfile::tempdir().unwrap();
        if let Some(t) = text {
            std::fs::write(dir.path().join("config.toml"), t).unwrap();
        }
        let exported: Vec<String> = exported.iter().map(|s| s.to_string()).collect();
        let c = plan_policy(dir.path(), &exported).unwrap();
        (c.new_text.clone(), c)
    }

    fn passes(text: &str, name: &str) -> bool {
        let t: toml::Table = toml::from_str(text).unwrap();
        let p = t["shell_environment_policy"].as_table().unwrap();
        model::merge([p]).unwrap().passes(name)
    }

    #[test]
    fn keeps_comments_order_and_the_users_lists() {
        let original = "# my codex\nmodel = \"o4\" # fast\n\n[mcp_servers.gh]\ncommand = \"gh-mcp\"\n\n\
                        [shell_environment_policy]\n# keep JAVA_HOME\ninherit = \"all\"\nexclude = [\"AWS_*\"]\n\n\
                        [tui]\nnotifications = true\n";
        let (text, c) = plan(Some(original), &["MISTRAL_STUFF", "OPENAI_API_KEY"]);
        assert!(
            text.starts_with("# my codex\nmodel = \"o4\" # fast\n\n[mcp_servers.gh]\n"),
            "{text}"
        );
        assert!(
            text.contains("# keep JAVA_HOME\ninherit = \"all\"\n"),
            "{text}"
        );
        assert!(text.contains("\"AWS_*\", \"*PASSWORD*\""), "{text}");
        assert!(text.ends_with("[tui]\nnotifications = true\n"), "{text}");
        // OPENAI_API_KEY is already dropped by *KEY*; an odd name is excluded by name.
        assert!(text.contains("\"MISTRAL_STUFF\"") && !text.contains("\"OPENAI_API_KEY\""));
        for n in [
            "OPENAI_API_KEY",
            "DATABASE_URL",
            "PGPASSWORD",
            "MISTRAL_STUFF",
            "AWS_X",
        ] {
            assert!(!passes(&text, n), "{n}");
        }
        assert!(passes(&text, "JAVA_HOME"));
        assert!(c.changes_anything());
        // Twice: nothing more to do.
        let (again, c2) = plan(Some(&text), &["MISTRAL_STUFF"]);
        assert_eq!(again, text);
        assert!(!c2.changes_anything() && c2.done.is_empty());
    }

    #[test]
    fn a_new_file_filters_and_inline_tables() {
        let (text, _) = plan(None, &[]);
        assert!(
            text.starts_with("[shell_environment_policy]\nignore_default_excludes = false\n"),
            "{text}"
        );
        let (text, _) = plan(
            Some("[shell_environment_policy.filters]\n\"OPENAI*\" = \"exclude\"\n"),
            &[],
        );
        assert!(
            text.contains("\"*PASSWORD*\" = \"exclude\"") && !text.contains("exclude = ["),
            "{text}"
        );
        assert!(!passes(&text, "GH_TOKEN"));
        let (text, _) = plan(
            Some("shell_environment_policy = { inherit = \"core\" }\n"),
            &[],
        );
        assert!(text.contains("inherit = \"core\""), "{text}");
        assert!(!passes(&text, "DATABASE_URL"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), "a = [\n").unwrap();
        let e = plan_policy(dir.path(), &[]).unwrap_err().to_string();
        assert!(e.contains("invalid TOML at line 1"), "{e}");
    }
}
