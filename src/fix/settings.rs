//! Claude Code `settings.json` / `settings.local.json`: the keys in the `env` object, and the
//! settings with those entries (and an `env` left empty) removed.

use super::{Edit, FileScan, FixError, Format, Found, Removal, Removed};
use crate::detect;
use crate::secret::SecretValue;
use crate::syntax;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use zeroize::Zeroizing;

pub(super) fn scan_settings(
    path: PathBuf,
    real: PathBuf,
    shown: String,
    text: Zeroizing<Vec<u8>>,
) -> Result<Option<FileScan>, FixError> {
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let json: Value = serde_json::from_slice(&text).map_err(|e| FixError::InvalidJson {
        shown: shown.clone(),
        line: e.line(),
        column: e.column(),
        // serde_json's syntax errors name the problem, never the input.
        reason: e
            .to_string()
            .split(" at line ")
            .next()
            .unwrap_or("")
            .to_string(),
    })?;
    let Some(obj) = json.as_object() else {
        return Err(FixError::NotAnObject { shown });
    };
    let Some(env) = obj.get("env").and_then(Value::as_object) else {
        return Ok(None);
    };
    let detector = detect::detector();
    let mut found = Vec::new();
    for (name, value) in env {
        let Some(v) = value.as_str() else { continue };
        let Some(m) = detector.classify_var(name, v.as_bytes()) else {
            continue;
        };
        let removal = if syntax::shell::is_name(name.as_bytes()) && name.len() <= 120 {
            Removal::Entry
        } else {
            Removal::Manual(
                "its name cannot be a store entry or an environment variable; remove the entry \
                 by hand"
                    .to_string(),
            )
        };
        found.push(Found {
            name: name.clone(),
            value: SecretValue::new(v.as_bytes()),
            info: m.info(),
            line: key_line(&text, name),
            removal,
            notes: Vec::new(),
            cmds: Vec::new(),
        });
    }
    if found.is_empty() {
        return Ok(None);
    }
    Ok(Some(FileScan {
        path,
        real,
        shown,
        format: Format::ClaudeSettings,
        found,
        original: text,
        export_lines: Vec::new(),
        assignments: HashMap::new(),
        json: Some(json),
    }))
}

/// The 1-based line of `"key"` in the `env` object (serde_json keeps no positions).
fn key_line(text: &[u8], key: &str) -> u32 {
    let needle = serde_json::to_string(key).unwrap_or_default();
    let from = memchr::memmem::find(text, b"\"env\"").unwrap_or(0);
    memchr::memmem::find(&text[from..], needle.as_bytes())
        .map_or(1, |at| detect::line_col(text, from + at).0)
}

pub(super) fn settings_edit(file: &FileScan, chosen: &[usize]) -> Option<Edit> {
    let mut json = file.json.clone()?;
    let obj = json.as_object_mut()?;
    let env = obj.get_mut("env")?.as_object_mut()?;
    let mut removed = Vec::new();
    for &fi in chosen {
        let f = &file.found[fi];
        if f.removal == Removal::Entry && env.shift_remove(&f.name).is_some() {
            removed.push(Removed {
                found: fi,
                lines: vec![f.line],
            });
        }
    }
    if removed.is_empty() {
        return None;
    }
    if env.is_empty() {
        obj.shift_remove("env");
    }
    // Claude Code writes its settings with two-space indentation.
    let mut new = Zeroizing::new(serde_json::to_vec_pretty(&json).ok()?);
    if file.original.ends_with(b"\n") {
        new.push(b'\n');
    }
    Some(Edit::plain(new, removed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::plan_edit;
    use crate::fix::testing::KEY;

    #[test]
    fn settings_entry_removed_and_empty_env_dropped() {
        let text = format!(
            "{{\"z\": {{\"b\": [1, {{\"c\": null}}]}}, \"env\": {{\"ANTHROPIC_API_KEY\": \"{KEY}\"}}, \"a\": true}}\n"
        );
        let f = scan_settings(
            "/s.json".into(),
            "/s.json".into(),
            "s.json".into(),
            Zeroizing::new(text.into_bytes()),
        )
        .unwrap()
        .unwrap();
        let e = plan_edit(&f, &[0], &|_| String::new()).unwrap();
        assert_eq!(
            String::from_utf8(e.new.to_vec()).unwrap(),
            "{\n  \"z\": {\n    \"b\": [\n      1,\n      {\n        \"c\": null\n      }\n    ]\n  },\n  \"a\": true\n}\n"
        );
    }

    #[test]
    fn invalid_settings_name_line_and_column() {
        let e = scan_settings(
            "/s.json".into(),
            "/s.json".into(),
            "s.json".into(),
            Zeroizing::new(b"{\n  \"env\": {\n    \"A\": 1,\n  }\n}".to_vec()),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("s.json: invalid JSON at line 4, column 3"),
            "{e}"
        );
    }
}
