//! `keyfence setup gemini`: Gemini CLI's own control, `security.environmentVariableRedaction`
//! turned on in `~/.gemini/settings.json` (off by default), so that its shell tool drops
//! variables whose names or values look like secrets. The user's other settings keep their
//! order. Gemini CLI allows comments in the file; keyfence cannot keep them when it rewrites
//! JSON, so a file with comments is left alone and the user is told what to add.

use super::claude::SetupError;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Gemini CLI's API key variable.
pub const KEY_NAME: &str = "GEMINI_API_KEY";

/// Its key in Vertex AI's express mode (`GOOGLE_GENAI_USE_VERTEXAI=true`), which Gemini CLI
/// 0.61 reads instead of `KEY_NAME` there.
pub const VERTEX_KEY_NAME: &str = "GOOGLE_API_KEY";

/// The key `setup gemini` stores: `VERTEX_KEY_NAME` when the user runs Gemini CLI on Vertex AI,
/// or exports only that one; `KEY_NAME` otherwise. `env` reads the user's environment.
pub fn key_name(env: impl Fn(&str) -> Option<String>) -> &'static str {
    let set = |v: &str| env(v).is_some_and(|x| !x.is_empty());
    let vertex = env("GOOGLE_GENAI_USE_VERTEXAI").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if set(VERTEX_KEY_NAME) && (vertex || !set(KEY_NAME)) {
        VERTEX_KEY_NAME
    } else {
        KEY_NAME
    }
}

/// What is added, as the user would write it.
const WANTED: &str = "\"security\": {\"environmentVariableRedaction\": {\"enabled\": true}}";

#[derive(Debug)]
pub struct RedactionChange {
    pub path: PathBuf,
    pub original: Option<Vec<u8>>,
    pub new_text: String,
}

impl RedactionChange {
    pub fn changes_anything(&self) -> bool {
        self.original.as_deref() != Some(self.new_text.as_bytes())
    }
}

/// Whether Gemini CLI is logged in with Google (`~/.gemini/oauth_creds.json`). Not read.
pub fn logged_in(home: &Path) -> bool {
    home.join(".gemini/oauth_creds.json").is_file()
}

/// Reads `~/.gemini/settings.json` and computes it with redaction on.
pub fn plan_redaction(home: &Path) -> Result<RedactionChange, SetupError> {
    let path = home.join(".gemini/settings.json");
    let original = match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(SetupError::Read { path, source }),
    };
    let mut doc: Value = match &original {
        Some(b) if !b.iter().all(u8::is_ascii_whitespace) => {
            let stripped = crate::audit::agent::strip_json_comments(b);
            let doc = serde_json::from_slice(&stripped).map_err(|e| SetupError::InvalidJson {
                path: path.clone(),
                line: e.line(),
                column: e.column(),
            })?;
            if stripped != *b {
                return Err(SetupError::JsonComments {
                    path,
                    wanted: WANTED.into(),
                });
            }
            doc
        }
        _ => Value::Object(serde_json::Map::new()),
    };
    let not_object = || SetupError::NotAnObject { path: path.clone() };
    let obj = doc.as_object_mut().ok_or_else(not_object)?;
    let security = obj
        .entry("security")
        .or_insert_with(|| Value::Object(serde_json::Map::new()))
        .as_object_mut()
        .ok_or_else(not_object)?;
    let redaction = security
        .entry("environmentVariableRedaction")
        .or_insert_with(|| Value::Object(serde_json::Map::new()))
        .as_object_mut()
        .ok_or_else(not_object)?;
    if redaction.get("enabled") == Some(&Value::Bool(true)) {
        let new_text = String::from_utf8_lossy(original.as_deref().unwrap_or_default()).into();
        return Ok(RedactionChange {
            path,
            original,
            new_text,
        });
    }
    redaction.insert("enabled".into(), Value::Bool(true));
    // Gemini CLI writes its settings with two-space indentation.
    let mut new_text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    new_text.push('\n');
    Ok(RedactionChange {
        path,
        original,
        new_text,
    })
}

pub fn apply(change: &RedactionChange) -> Result<Option<PathBuf>, SetupError> {
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

    #[test]
    fn stores_the_vertex_key_where_gemini_reads_it() {
        let with = |vars: &'static [(&'static str, &'static str)]| {
            key_name(|v| {
                vars.iter()
                    .find(|(k, _)| *k == v)
                    .map(|(_, x)| x.to_string())
            })
        };
        assert_eq!(with(&[]), KEY_NAME);
        assert_eq!(with(&[("GEMINI_API_KEY", "a")]), KEY_NAME);
        assert_eq!(with(&[("GOOGLE_API_KEY", "a")]), VERTEX_KEY_NAME);
        assert_eq!(
            with(&[("GOOGLE_API_KEY", "a"), ("GEMINI_API_KEY", "b")]),
            KEY_NAME
        );
        assert_eq!(
            with(&[
                ("GOOGLE_API_KEY", "a"),
                ("GEMINI_API_KEY", "b"),
                ("GOOGLE_GENAI_USE_VERTEXAI", "true")
            ]),
            VERTEX_KEY_NAME
        );
        assert_eq!(
            with(&[
                ("GOOGLE_API_KEY", ""),
                ("GOOGLE_GENAI_USE_VERTEXAI", "true")
            ]),
            KEY_NAME
        );
    }

    #[test]
    fn turns_redaction_on_keeping_order() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        assert!(
            plan_redaction(home)
                .unwrap()
                .new_text
                .contains("\"enabled\": true")
        );
        std::fs::create_dir_all(home.join(".gemini")).unwrap();
        let f = home.join(".gemini/settings.json");
        std::fs::write(
            &f,
            "{\"ui\": {\"theme\": \"x\"}, \"security\": {\"auth\": {\"selectedType\": \"gemini-api-key\"}, \
             \"environmentVariableRedaction\": {\"enabled\": false, \"blocked\": [\"X\"]}}, \"a\": 1}",
        )
        .unwrap();
        let c = plan_redaction(home).unwrap();
        let v: Value = serde_json::from_str(&c.new_text).unwrap();
        assert_eq!(
            v["security"]["environmentVariableRedaction"]["enabled"],
            true
        );
        assert_eq!(
            v["security"]["environmentVariableRedaction"]["blocked"][0],
            "X"
        );
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["ui", "security", "a"]);
        apply(&c).unwrap();
        assert!(!plan_redaction(home).unwrap().changes_anything());
        std::fs::write(&f, "// mine\n{}\n").unwrap();
        let e = plan_redaction(home).unwrap_err().to_string();
        assert!(e.contains("has comments") && e.contains("hint: add"), "{e}");
    }
}
