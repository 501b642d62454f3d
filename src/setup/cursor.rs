//! `keyfence setup cursor`: keys out of Cursor's MCP server definitions (`~/.cursor/mcp.json`,
//! the project's `.cursor/mcp.json`). Each key in a local server's `env` goes into the store and
//! the server is started through keyfence, which hands it that key alone:
//! `"command": "keyfence", "args": ["run", "--inject", "NAME", "--", SERVER, ARGS...]`.
//!
//! Cursor's own reference syntax, `${env:NAME}` in `env`, is not used: it reads the variable
//! from Cursor's environment, so the key would have to be exported to Cursor and to everything
//! Cursor starts, the exposure this removes. A remote server's (`url`) `headers` cannot be
//! wrapped: those keys are listed, not moved. Computes; the command stores and writes.

use super::claude::SetupError;
use crate::detect;
use crate::secret::SecretValue;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One key in a server's `env`.
#[derive(Debug)]
pub struct Key {
    pub server: String,
    pub name: String,
    pub value: SecretValue,
    pub preview: String,
    pub fingerprint: Option<String>,
}

/// One `mcp.json` with keys in it.
#[derive(Debug)]
pub struct Scan {
    pub path: PathBuf,
    pub original: Vec<u8>,
    doc: Value,
    /// Keys in local servers' `env`: moved.
    pub keys: Vec<Key>,
    /// (server, header or variable) holding a key that cannot be moved: a remote server's.
    pub left: Vec<(String, String)>,
}

/// The MCP files setup looks at: the user's, then the project's.
pub fn files(home: &Path, project: &Path) -> Vec<PathBuf> {
    let mut v = vec![home.join(".cursor/mcp.json")];
    let p = project.join(".cursor/mcp.json");
    if p != v[0] {
        v.push(p);
    }
    v
}

/// Reads one `mcp.json`; `None` when it is missing or holds no key.
pub fn scan(path: &Path) -> Result<Option<Scan>, SetupError> {
    let original = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SetupError::Read {
                path: path.into(),
                source,
            });
        }
    };
    let stripped = crate::audit::agent::strip_json_comments(&original);
    let doc: Value = serde_json::from_slice(&stripped).map_err(|e| SetupError::InvalidJson {
        path: path.into(),
        line: e.line(),
        column: e.column(),
    })?;
    let d = detect::detector();
    let mut keys = Vec::new();
    let mut left = Vec::new();
    if let Some(servers) = doc.get("mcpServers").and_then(Value::as_object) {
        for (server, def) in servers {
            let local = def.get("command").and_then(Value::as_str).is_some();
            for (field, map) in [("env", def.get("env")), ("headers", def.get("headers"))] {
                let Some(map) = map.and_then(Value::as_object) else {
                    continue;
                };
                for (name, v) in map {
                    let Some(s) = v.as_str() else { continue };
                    let Some(m) = d.classify_var(name, s.as_bytes()) else {
                        continue;
                    };
                    if local && field == "env" {
                        let info = m.info();
                        keys.push(Key {
                            server: server.clone(),
                            name: name.clone(),
                            value: SecretValue::new(s.as_bytes()),
                            preview: info.preview,
                            fingerprint: info.fingerprint,
                        });
                    } else {
                        left.push((server.clone(), format!("{field}.{name}")));
                    }
                }
            }
        }
    }
    if keys.is_empty() && left.is_empty() {
        return Ok(None);
    }
    if stripped != original && !keys.is_empty() {
        return Err(SetupError::JsonComments {
            path: path.into(),
            wanted: "the servers' keys moved out by hand".into(),
        });
    }
    Ok(Some(Scan {
        path: path.into(),
        original,
        doc,
        keys,
        left,
    }))
}

/// The file with each key of `scan.keys` out of its `env` and its server started as
/// `exe run --inject NAME=STORED -- SERVER ARGS...`, `stored` giving each key's store name.
pub fn rewrite(scan: &Scan, exe: &Path, stored: &[String]) -> String {
    let mut doc = scan.doc.clone();
    let exe = exe.to_string_lossy().into_owned();
    let servers = doc.get_mut("mcpServers").and_then(Value::as_object_mut);
    if let Some(servers) = servers {
        for (server, def) in servers.iter_mut() {
            let injects: Vec<String> = scan
                .keys
                .iter()
                .zip(stored)
                .filter(|(k, _)| &k.server == server)
                .map(|(k, s)| {
                    if *s == k.name {
                        k.name.clone()
                    } else {
                        format!("{}={s}", k.name)
                    }
                })
                .collect();
            if injects.is_empty() {
                continue;
            }
            let Some(obj) = def.as_object_mut() else {
                continue;
            };
            if let Some(env) = obj.get_mut("env").and_then(Value::as_object_mut) {
                env.retain(|name, _| {
                    !scan
                        .keys
                        .iter()
                        .any(|k| &k.server == server && &k.name == name)
                });
                if env.is_empty() {
                    obj.shift_remove("env");
                }
            }
            let command = obj
                .get("command")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let args: Vec<Value> = obj
                .get("args")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut flags: Vec<Value> = Vec::new();
            for i in &injects {
                flags.push(Value::String("--inject".into()));
                flags.push(Value::String(i.clone()));
            }
            let already = Path::new(&command).file_name() == Some("keyfence".as_ref())
                && args.first().and_then(Value::as_str) == Some("run");
            let new_args: Vec<Value> = if already {
                let mut a = vec![args[0].clone()];
                a.extend(flags);
                a.extend(args[1..].iter().cloned());
                a
            } else {
                let mut a = vec![Value::String("run".into())];
                a.extend(flags);
                a.push(Value::String("--".into()));
                a.push(Value::String(command));
                a.extend(args);
                a
            };
            if !already {
                obj.insert("command".into(), Value::String(exe.clone()));
            }
            obj.insert("args".into(), Value::Array(new_args));
        }
    }
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_keys_into_a_keyfence_command() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("mcp.json");
        // Made at run time: the checkout must audit clean.
        let key = ["Zx8Qp2Lm9Wt4", "Rv7Ny3Kb6Hd1", "Fs5Gj0CeTq"].concat();
        let key = key.as_str();
        std::fs::write(
            &f,
            format!(
                "{{\"mcpServers\": {{\"gh\": {{\"command\": \"npx\", \"args\": [\"-y\", \"gh-mcp\"], \
                 \"env\": {{\"GITHUB_TOKEN\": \"{key}\", \"LOG\": \"1\"}}}}, \
                 \"web\": {{\"url\": \"https://x.invalid\", \"headers\": {{\"X_API_KEY\": \"{key}\"}}}}}}}}"
            ),
        )
        .unwrap();
        let s = scan(&f).unwrap().unwrap();
        assert_eq!(s.keys.len(), 1);
        assert_eq!(
            s.left,
            [("web".to_string(), "headers.X_API_KEY".to_string())]
        );
        let text = rewrite(&s, Path::new("/k/keyfence"), &["GITHUB_TOKEN_2".into()]);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["mcpServers"]["gh"]["command"], "/k/keyfence");
        assert_eq!(
            v["mcpServers"]["gh"]["args"],
            serde_json::json!([
                "run",
                "--inject",
                "GITHUB_TOKEN=GITHUB_TOKEN_2",
                "--",
                "npx",
                "-y",
                "gh-mcp"
            ])
        );
        assert_eq!(
            v["mcpServers"]["gh"]["env"],
            serde_json::json!({"LOG": "1"})
        );
        assert!(!v["mcpServers"]["gh"].to_string().contains(key));
    }
}
