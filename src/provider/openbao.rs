//! OpenBao / HashiCorp Vault over its HTTP API: configuration from the usual variables and
//! files, token or AppRole login, KV v2 reads, dynamic secrets (leases) and child tokens.
//!
//! Only the paths of requests and the server's own error messages ever appear in errors: never
//! a token, a response body or a value. Response bodies are read into zeroizing buffers, and the
//! JSON parsed from them is wiped before it is dropped.
//!
//! API reference: <https://openbao.org/api-docs/> (KV v2 `GET /v1/MOUNT/data/PATH`, AppRole
//! `POST /v1/auth/approle/login`, `PUT /v1/sys/leases/renew` and `/revoke`,
//! `POST /v1/auth/token/create`, `/renew-self`, `/revoke-self`).

use crate::secret::SecretValue;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::{Zeroize, Zeroizing};

/// Environment variables that configure the client. They are credentials (or lead to them), so
/// `keyfence run` drops them from the command's environment unless the profile allows them.
pub const SETTINGS_VARS: &[&str] = &["BAO_*", "VAULT_*", "KEYFENCE_BAO_*"];

/// No request to the server may take longer than this.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a response body read: secrets engines answer in kilobytes.
const MAX_BODY: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BaoError {
    #[error(
        "no OpenBao address: set BAO_ADDR (or VAULT_ADDR), for example \
         BAO_ADDR=https://bao.example.com:8200"
    )]
    NoAddr,
    #[error("{addr}: {reason}")]
    BadAddr { addr: String, reason: &'static str },
    #[error(
        "no OpenBao token: set BAO_TOKEN (or VAULT_TOKEN), log in with `bao login` (which writes \
         ~/.vault-token), or set KEYFENCE_BAO_ROLE_ID_FILE and KEYFENCE_BAO_SECRET_ID_FILE for \
         an AppRole login"
    )]
    NoToken,
    #[error("reading {} ({what}): {source}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} ({what}) is empty", path.display())]
    EmptyFile { what: &'static str, path: PathBuf },
    #[error("{}: no PEM certificate in it (BAO_CACERT)", path.display())]
    BadCaCert { path: PathBuf },
    #[error(
        "cannot reach OpenBao at {addr}: {reason}\nhint: {}",
        unreachable_hint(reason)
    )]
    Unreachable { addr: String, reason: String },
    #[error(
        "OpenBao at {addr} is sealed\n\
         hint: it must be unsealed (`bao operator unseal`) by whoever holds its unseal keys"
    )]
    Sealed { addr: String },
    #[error(
        "OpenBao refused {what} (permission denied)\n\
         hint: the token ({token_from}) is wrong, expired or has no policy for this path; log in \
         again (`bao login`) or ask for access"
    )]
    Denied {
        what: String,
        token_from: &'static str,
    },
    #[error("nothing at {what} in OpenBao\nhint: {hint}")]
    NotFound { what: String, hint: String },
    #[error("OpenBao answered {status} to {what}: {messages}")]
    Status {
        what: String,
        status: u16,
        messages: String,
    },
    #[error("OpenBao's answer to {what} is not what keyfence expected: {reason}")]
    Malformed { what: String, reason: &'static str },
}

fn unreachable_hint(reason: &str) -> &'static str {
    if reason.contains("certificate") || reason.contains("UnknownIssuer") {
        "the server's certificate is not trusted: set BAO_CACERT to its CA certificate (PEM)"
    } else {
        "check that the server is running and that BAO_ADDR points at it"
    }
}

/// How keyfence authenticates.
#[derive(Clone)]
enum Auth {
    Token {
        token: SecretValue,
        from: &'static str,
    },
    AppRole {
        role_id: PathBuf,
        secret_id: PathBuf,
        mount: String,
    },
}

/// Where the server is and how to talk to it, from the environment.
#[derive(Clone)]
pub struct Config {
    addr: String,
    namespace: Option<String>,
    ca_cert: Option<PathBuf>,
    auth: Auth,
}

fn var(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

fn read_file(path: &Path, what: &'static str) -> Result<SecretValue, BaoError> {
    let mut bytes = Zeroizing::new(std::fs::read(path).map_err(|source| BaoError::File {
        what,
        path: path.to_path_buf(),
        source,
    })?);
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() {
        return Err(BaoError::EmptyFile {
            what,
            path: path.to_path_buf(),
        });
    }
    let v = SecretValue::new(trimmed.to_vec());
    bytes.zeroize();
    Ok(v)
}

impl Config {
    /// `BAO_ADDR`/`VAULT_ADDR`; the token from `BAO_TOKEN`/`VAULT_TOKEN`, else an AppRole login
    /// with the role id and secret id read from `KEYFENCE_BAO_ROLE_ID_FILE` and
    /// `KEYFENCE_BAO_SECRET_ID_FILE` (mount `KEYFENCE_BAO_APPROLE_MOUNT`, default `approle`),
    /// else `~/.vault-token` (what `bao login` writes); `BAO_NAMESPACE`/`VAULT_NAMESPACE`;
    /// `BAO_CACERT`/`VAULT_CACERT`, a PEM file trusted instead of the public roots.
    pub fn from_env() -> Result<Config, BaoError> {
        let addr = var(&["BAO_ADDR", "VAULT_ADDR"]).ok_or(BaoError::NoAddr)?;
        let addr = check_addr(&addr)?;
        let auth = if let Some((t, from)) = var(&["BAO_TOKEN"])
            .map(|t| (t, "BAO_TOKEN"))
            .or_else(|| var(&["VAULT_TOKEN"]).map(|t| (t, "VAULT_TOKEN")))
        {
            Auth::Token {
                token: SecretValue::new(Zeroizing::new(t).as_bytes().to_vec()),
                from,
            }
        } else if let (Some(r), Some(s)) = (
            var(&["KEYFENCE_BAO_ROLE_ID_FILE"]),
            var(&["KEYFENCE_BAO_SECRET_ID_FILE"]),
        ) {
            Auth::AppRole {
                role_id: r.into(),
                secret_id: s.into(),
                mount: var(&["KEYFENCE_BAO_APPROLE_MOUNT"]).unwrap_or_else(|| "approle".into()),
            }
        } else {
            let home = std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .ok_or(BaoError::NoToken)?;
            let path = PathBuf::from(home).join(".vault-token");
            if !path.exists() {
                return Err(BaoError::NoToken);
            }
            Auth::Token {
                token: read_file(&path, "the token `bao login` saved")?,
                from: "~/.vault-token",
            }
        };
        Ok(Config {
            addr,
            namespace: var(&["BAO_NAMESPACE", "VAULT_NAMESPACE"]),
            ca_cert: var(&["BAO_CACERT", "VAULT_CACERT"]).map(PathBuf::from),
            auth,
        })
    }
}

/// `https://host[:port]`, or `http://` to a loopback address only: a token must not cross a
/// network in the clear.
fn check_addr(addr: &str) -> Result<String, BaoError> {
    let bad = |reason| BaoError::BadAddr {
        addr: addr.to_string(),
        reason,
    };
    let addr = addr.trim_end_matches('/');
    let (tls, rest) = if let Some(r) = addr.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = addr.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad(
            "BAO_ADDR must start with https:// (or http:// on loopback)",
        ));
    };
    let host = rest.split('/').next().unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((h, port)) if !h.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    if host.is_empty() {
        return Err(bad("BAO_ADDR has no host"));
    }
    let loopback = host == "localhost" || host == "[::1]" || host.starts_with("127.");
    if !tls && !loopback {
        return Err(bad(
            "plain http is allowed only to a loopback address; use https:// (and BAO_CACERT \
             for a private CA)",
        ));
    }
    Ok(addr.to_string())
}

/// A parsed JSON answer whose strings are wiped when it is dropped.
pub struct Json(pub Value);

impl Drop for Json {
    fn drop(&mut self) {
        fn wipe(v: &mut Value) {
            match v {
                Value::String(s) => s.zeroize(),
                Value::Array(a) => a.iter_mut().for_each(wipe),
                Value::Object(o) => o.values_mut().for_each(wipe),
                _ => {}
            }
        }
        wipe(&mut self.0);
    }
}

/// A string in a JSON answer as a secret.
pub fn secret_at(v: &Value, pointer: &str) -> Option<SecretValue> {
    match v.pointer(pointer)? {
        Value::String(s) => Some(SecretValue::new(s.as_bytes().to_vec())),
        Value::Number(n) => Some(SecretValue::new(n.to_string())),
        Value::Bool(b) => Some(SecretValue::new(b.to_string())),
        _ => None,
    }
}

/// A logged-in client.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    addr: String,
    namespace: Option<String>,
    token: SecretValue,
    token_from: &'static str,
}

#[derive(Clone, Copy)]
enum Method {
    Get,
    Post,
    Put,
}

impl Client {
    /// Builds the HTTP client and logs in (AppRole) when the configuration says so.
    pub fn connect(cfg: &Config) -> Result<Client, BaoError> {
        let mut b = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT))
            // A redirect could carry the token to another host.
            .max_redirects(0)
            .user_agent(concat!("keyfence/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &cfg.ca_cert {
            let pem = std::fs::read(ca).map_err(|source| BaoError::File {
                what: "BAO_CACERT",
                path: ca.clone(),
                source,
            })?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|i| match i {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(BaoError::BadCaCert { path: ca.clone() });
            }
            b = b.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                    .build(),
            );
        }
        let mut client = Client {
            agent: b.build().into(),
            addr: cfg.addr.clone(),
            namespace: cfg.namespace.clone(),
            token: SecretValue::new(Vec::new()),
            token_from: "",
        };
        match &cfg.auth {
            Auth::Token { token, from } => {
                client.token = token.clone();
                client.token_from = from;
            }
            Auth::AppRole {
                role_id,
                secret_id,
                mount,
            } => {
                let role = read_file(role_id, "KEYFENCE_BAO_ROLE_ID_FILE")?;
                let secret = read_file(secret_id, "KEYFENCE_BAO_SECRET_ID_FILE")?;
                // Both the JSON value and its text are wiped when dropped.
                let login = Json(serde_json::json!({
                    "role_id": String::from_utf8_lossy(role.expose()),
                    "secret_id": String::from_utf8_lossy(secret.expose()),
                }));
                let body = Zeroizing::new(login.0.to_string());
                let what = format!("the AppRole login (auth/{mount}/login)");
                client.token_from = "AppRole login";
                let v = client.call(
                    Method::Post,
                    &format!("auth/{mount}/login"),
                    Some(body.as_bytes()),
                    None,
                    &what,
                )?;
                client.token =
                    secret_at(&v.0, "/auth/client_token").ok_or(BaoError::Malformed {
                        what,
                        reason: "no auth.client_token",
                    })?;
            }
        }
        Ok(client)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// One request; `what` names it in errors. `token`: another token than the client's.
    fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        token: Option<&SecretValue>,
        what: &str,
    ) -> Result<Json, BaoError> {
        let url = format!("{}/v1/{path}", self.addr);
        let token = token.unwrap_or(&self.token);
        let tok = Zeroizing::new(String::from_utf8_lossy(token.expose()).into_owned());
        macro_rules! with_headers {
            ($req:expr) => {{
                let mut r = $req;
                if !tok.is_empty() {
                    r = r.header("X-Vault-Token", tok.as_str());
                }
                if let Some(ns) = &self.namespace {
                    r = r.header("X-Vault-Namespace", ns.as_str());
                }
                r
            }};
        }
        let result = match method {
            Method::Get => with_headers!(self.agent.get(&url)).call(),
            Method::Post => with_headers!(self.agent.post(&url))
                .content_type("application/json")
                .send(body.unwrap_or(b"{}")),
            Method::Put => with_headers!(self.agent.put(&url))
                .content_type("application/json")
                .send(body.unwrap_or(b"{}")),
        };
        let mut resp = result.map_err(|e| BaoError::Unreachable {
            addr: self.addr.clone(),
            reason: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let bytes = Zeroizing::new(
            resp.body_mut()
                .with_config()
                .limit(MAX_BODY)
                .read_to_vec()
                .map_err(|e| BaoError::Unreachable {
                    addr: self.addr.clone(),
                    reason: e.to_string(),
                })?,
        );
        let json = if bytes.is_empty() {
            Json(Value::Null)
        } else {
            // serde_json's error may quote the input: never keep it.
            Json(
                serde_json::from_slice(&bytes).map_err(|_| BaoError::Malformed {
                    what: what.to_string(),
                    reason: "not JSON",
                })?,
            )
        };
        if (200..300).contains(&status) {
            return Ok(json);
        }
        let messages: Vec<String> = json
            .0
            .get("errors")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|s| s.lines().next().unwrap_or("").chars().take(200).collect())
                    .collect()
            })
            .unwrap_or_default();
        let what = what.to_string();
        Err(match status {
            503 if messages.iter().any(|m| m.contains("sealed")) => BaoError::Sealed {
                addr: self.addr.clone(),
            },
            403 => BaoError::Denied {
                what,
                token_from: self.token_from,
            },
            404 => BaoError::NotFound {
                hint: "check the mount and path (`bao kv list`, `bao secrets list`)".into(),
                what,
            },
            _ => BaoError::Status {
                what,
                status,
                messages: if messages.is_empty() {
                    "no message".into()
                } else {
                    messages.join("; ")
                },
            },
        })
    }

    /// The fields of the latest version of a KV v2 secret.
    pub fn kv_read(&self, mount: &str, path: &str) -> Result<Json, BaoError> {
        let what = format!("{mount}/{path} (KV v2)");
        let mut v = self
            .call(
                Method::Get,
                &format!("{mount}/data/{path}"),
                None,
                None,
                &what,
            )
            .map_err(|e| match e {
                BaoError::NotFound { what, .. } => BaoError::NotFound {
                    hint: format!(
                        "`bao kv get -mount={mount} {path}` shows what is there; the mount must \
                         be a KV version 2 engine"
                    ),
                    what,
                },
                e => e,
            })?;
        match v.0.pointer_mut("/data/data").map(Value::take) {
            Some(data @ Value::Object(_)) => Ok(Json(data)),
            // A deleted latest version reads as data: null.
            _ => Err(BaoError::NotFound {
                what,
                hint: "the latest version was deleted; `bao kv undelete` or write it again".into(),
            }),
        }
    }

    /// A plain read, as of a dynamic secret (`database/creds/ROLE`): the whole answer, with
    /// `lease_id` and `lease_duration`.
    pub fn read(&self, path: &str) -> Result<Json, BaoError> {
        self.call(Method::Get, path, None, None, path)
    }

    /// Extends a lease by `increment` seconds; returns the new duration.
    pub fn renew_lease(&self, lease_id: &str, increment: u64) -> Result<u64, BaoError> {
        let body = serde_json::json!({"lease_id": lease_id, "increment": increment}).to_string();
        let v = self.call(
            Method::Put,
            "sys/leases/renew",
            Some(body.as_bytes()),
            None,
            "the lease renewal",
        )?;
        Ok(v.0["lease_duration"].as_u64().unwrap_or(0))
    }

    pub fn revoke_lease(&self, lease_id: &str) -> Result<(), BaoError> {
        let body = serde_json::json!({"lease_id": lease_id}).to_string();
        self.call(
            Method::Put,
            "sys/leases/revoke",
            Some(body.as_bytes()),
            None,
            "the lease revocation",
        )
        .map(drop)
    }

    /// A child token of the client's token with these policies and this TTL: (token, TTL
    /// granted, renewable).
    pub fn create_token(
        &self,
        policies: &[String],
        ttl: u64,
    ) -> Result<(SecretValue, u64, bool), BaoError> {
        let body = serde_json::json!({
            "policies": policies,
            "ttl": format!("{ttl}s"),
            "display_name": "keyfence-run",
        })
        .to_string();
        let what = "a child token (auth/token/create)";
        let v = self.call(
            Method::Post,
            "auth/token/create",
            Some(body.as_bytes()),
            None,
            what,
        )?;
        let token = secret_at(&v.0, "/auth/client_token").ok_or(BaoError::Malformed {
            what: what.into(),
            reason: "no auth.client_token",
        })?;
        let granted = v.0.pointer("/auth/lease_duration").and_then(Value::as_u64);
        let renewable = v.0.pointer("/auth/renewable").and_then(Value::as_bool);
        Ok((token, granted.unwrap_or(ttl), renewable.unwrap_or(false)))
    }

    pub fn renew_token(&self, token: &SecretValue, increment: u64) -> Result<u64, BaoError> {
        let body = serde_json::json!({"increment": format!("{increment}s")}).to_string();
        let v = self.call(
            Method::Post,
            "auth/token/renew-self",
            Some(body.as_bytes()),
            Some(token),
            "the child token's renewal",
        )?;
        Ok(v.0
            .pointer("/auth/lease_duration")
            .and_then(Value::as_u64)
            .unwrap_or(0))
    }

    pub fn revoke_token(&self, token: &SecretValue) -> Result<(), BaoError> {
        self.call(
            Method::Post,
            "auth/token/revoke-self",
            None,
            Some(token),
            "the child token's revocation",
        )
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for ok in [
            "https://bao.example.com:8200",
            "https://bao.example.com/",
            "http://127.0.0.1:8200",
            "http://localhost:8200",
            "http://[::1]:8200",
        ] {
            assert!(check_addr(ok).is_ok(), "{ok}");
        }
        for bad in [
            "bao.example.com:8200",
            "http://bao.example.com:8200",
            "http://10.0.0.1:8200",
            "https://",
            "ftp://x",
        ] {
            assert!(check_addr(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_addr("http://127.0.0.1:8200/").unwrap(),
            "http://127.0.0.1:8200"
        );
    }

    #[test]
    fn secrets_are_read_from_strings_numbers_and_booleans() {
        let j = Json(serde_json::json!({"a": {"s": "value", "n": 5432, "b": true, "o": {}}}));
        assert_eq!(secret_at(&j.0, "/a/s").unwrap().expose(), b"value");
        assert_eq!(secret_at(&j.0, "/a/n").unwrap().expose(), b"5432");
        assert_eq!(secret_at(&j.0, "/a/b").unwrap().expose(), b"true");
        assert!(secret_at(&j.0, "/a/o").is_none());
        assert!(secret_at(&j.0, "/a/x").is_none());
    }
}
