//! Providers: where an injected value comes from (DESIGN.md §3, "Store"). A reference names a
//! value wherever a store name is accepted (`run --inject VAR=REF`, a profile's `inject`,
//! `secret get REF`):
//!
//! | reference | value |
//! |---|---|
//! | `NAME`, `store:NAME` | the embedded vault's entry |
//! | `openbao://MOUNT/PATH#FIELD` (`vault://`) | FIELD of the latest version of a KV v2 secret |
//! | `openbao+lease://PATH#FIELD` (`vault+lease://`) | FIELD of a dynamic secret read at PATH (`database/creds/ROLE`), leased for the command's lifetime |
//! | `openbao+token://POLICY[,POLICY...][?ttl=DURATION]` | a child token with those policies (TTL default 1h), for the command's lifetime |
//! | `cmd:PROGRAM ARGS...` | what the program prints on stdout, trimmed |
//! | `file:PATH` (absolute, or `~/...`) | the file's content, less its last line break (`/run/secrets/NAME`) |
//!
//! Each value is fetched once per run, however many variables refer to it: two fields of one
//! lease (`#username`, `#password`) come from one lease. Leases and child tokens are renewed
//! while the command runs and revoked when it ends; they are revoked too when keyfence fails
//! before starting it. This module holds values only as [`SecretValue`]s and never prints: its
//! warnings go where the caller says ([`Warn`]).

pub mod cmd;
pub mod file;
pub mod openbao;

use crate::secret::SecretValue;
use openbao::{BaoError, Client, Config};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

/// A child token's lifetime when the reference does not give one.
pub const DEFAULT_TOKEN_TTL: u64 = 3600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// An entry of the embedded vault.
    Store(String),
    /// A KV v2 secret's field.
    Kv {
        mount: String,
        path: String,
        field: String,
    },
    /// A field of a dynamic secret, whose lease lasts as long as the command.
    Lease { path: String, field: String },
    /// A child token with these policies and TTL (seconds).
    Token { policies: Vec<String>, ttl: u64 },
    /// A program's output.
    Cmd { argv: Vec<String> },
    /// A file's content (`~/` not yet expanded).
    File { path: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{reference}: {message}\nhint: {hint}")]
    Syntax {
        reference: String,
        message: String,
        hint: &'static str,
    },
    #[error(transparent)]
    Bao(#[from] BaoError),
    #[error(transparent)]
    Cmd(#[from] cmd::CmdError),
    #[error(transparent)]
    File(#[from] file::FileError),
    #[error("{reference}: the secret has no field '{field}' (it has: {fields})")]
    NoField {
        reference: String,
        field: String,
        fields: String,
    },
    #[error(
        "{reference}: the answer carries no lease to revoke\n\
         hint: `openbao+lease://` is for dynamic secrets (database/creds/ROLE, ...); a KV secret \
         is `openbao://MOUNT/PATH#FIELD`"
    )]
    NoLease { reference: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Which entries of the embedded vault a request may have (the rules are the store's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access<'a> {
    /// `secret get`: any entry, as its owner asks for it.
    Any,
    /// The user's own flags and configuration for this profile: entries that list no
    /// profiles or list this one.
    Profile(&'a str),
    /// A project's keyfence.toml for this profile: it comes with the code it configures, so
    /// only entries that list the profile by name.
    Listed(&'a str),
}

const SYNTAX_HINT: &str = "references are NAME, store:NAME, openbao://MOUNT/PATH#FIELD, \
     openbao+lease://PATH#FIELD, openbao+token://POLICY[,POLICY]?ttl=1h, cmd:PROGRAM ARGS or \
     file:PATH";

impl Reference {
    /// Parses a reference; anything without a scheme is a store name.
    pub fn parse(s: &str) -> Result<Reference, ProviderError> {
        let err = |message: &str| ProviderError::Syntax {
            reference: s.to_string(),
            message: message.to_string(),
            hint: SYNTAX_HINT,
        };
        if let Some(name) = s.strip_prefix("store:") {
            if name.is_empty() {
                return Err(err("no store entry name"));
            }
            return Ok(Reference::Store(name.to_string()));
        }
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err(err("no file named"));
            }
            return Ok(Reference::File {
                path: path.to_string(),
            });
        }
        if let Some(rest) = s.strip_prefix("cmd:") {
            let argv = cmd::split(rest).ok_or_else(|| err("a quote is not closed"))?;
            if argv.is_empty() {
                return Err(err("no program to run"));
            }
            return Ok(Reference::Cmd { argv });
        }
        // DESIGN.md §3 writes `openbao:PATH#FIELD`: the same as `openbao://`.
        let s_full = ["openbao:", "vault:"]
            .iter()
            .find_map(|p| {
                s.strip_prefix(p)
                    .filter(|r| !r.starts_with("//"))
                    .map(|r| format!("{p}//{r}"))
            })
            .unwrap_or_else(|| s.to_string());
        let Some((scheme, rest)) = s_full.split_once("://") else {
            return Ok(Reference::Store(s.to_string()));
        };
        let path_field = |rest: &str| -> Result<(String, String), ProviderError> {
            let (path, field) = rest
                .split_once('#')
                .ok_or_else(|| err("no #FIELD: name the field of the secret to use"))?;
            let path = path.trim_matches('/');
            if path.is_empty() || field.is_empty() {
                return Err(err("expected PATH#FIELD"));
            }
            if path
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
            {
                return Err(err("empty, . or .. path segment"));
            }
            Ok((path.to_string(), field.to_string()))
        };
        match scheme {
            "openbao" | "vault" => {
                let (path, field) = path_field(rest)?;
                let (mount, path) = path
                    .split_once('/')
                    .ok_or_else(|| err("expected MOUNT/PATH#FIELD, like secret/app#api_key"))?;
                Ok(Reference::Kv {
                    mount: mount.to_string(),
                    path: path.to_string(),
                    field,
                })
            }
            "openbao+lease" | "vault+lease" => {
                let (path, field) = path_field(rest)?;
                Ok(Reference::Lease { path, field })
            }
            "openbao+token" | "vault+token" => {
                let (policies, query) = rest.split_once('?').unwrap_or((rest, ""));
                let policies: Vec<String> = policies
                    .trim_matches('/')
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect();
                if policies.is_empty() {
                    return Err(err("name at least one policy for the child token"));
                }
                let mut ttl = DEFAULT_TOKEN_TTL;
                for kv in query.split('&').filter(|q| !q.is_empty()) {
                    match kv.split_once('=') {
                        Some(("ttl", d)) => match crate::store::parse_ttl(d) {
                            Ok(crate::store::Ttl::Seconds(s)) => ttl = s,
                            _ => return Err(err("ttl must be a duration like 90s, 15m or 2h")),
                        },
                        _ => return Err(err("the only option is ?ttl=DURATION")),
                    }
                }
                Ok(Reference::Token { policies, ttl })
            }
            _ => Err(err("unknown scheme")),
        }
    }

    /// Whether it needs keyfence to stay around to renew and revoke it.
    pub fn is_leased(&self) -> bool {
        matches!(self, Reference::Lease { .. } | Reference::Token { .. })
    }
}

/// The signal (SIGINT, SIGTERM, SIGHUP) that arrived once credentials started being leased.
static INTERRUPT: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// From the first lease on, SIGINT, SIGTERM and SIGHUP no longer kill keyfence outright: a
/// lease taken before the command starts must still be revoked. They are recorded, and
/// [`interrupted`] tells the caller not to start the command. Armed only then, so a Ctrl-C at a
/// passphrase prompt before any lease still ends keyfence at once.
fn arm_signals() {
    INTERRUPT.get_or_init(|| {
        let flag = Arc::new(AtomicUsize::new(0));
        for sig in [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ] {
            let _ = signal_hook::flag::register_usize(sig, Arc::clone(&flag), sig as usize);
        }
        flag
    });
}

/// The signal received while leases were being taken, if any.
pub fn interrupted() -> Option<i32> {
    let sig = INTERRUPT.get()?.load(Ordering::SeqCst);
    (sig != 0).then_some(sig as i32)
}

/// A lease or child token to renew while the command runs and revoke after.
enum Held {
    Lease { id: String },
    Token { token: SecretValue },
}

struct Item {
    held: Held,
    /// What it is, for messages: the reference without a field.
    what: String,
    ttl: u64,
    renewable: bool,
    renewed: Instant,
}

/// Where the warnings of a run's leases go (a renewal that failed while the command ran, a
/// revocation that failed when they were dropped): the command layer's choice, since this
/// module never prints. Names only, never values.
pub type Warn = Arc<dyn Fn(&str) + Send + Sync>;

/// Everything leased for one run. Dropping it revokes what it holds.
#[derive(Default)]
pub struct Leases {
    client: Option<Client>,
    items: Arc<Mutex<Vec<Item>>>,
    warn: Option<Warn>,
}

/// Renews leases in a background thread until dropped.
pub struct KeepAlive {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Leases {
    pub fn is_empty(&self) -> bool {
        self.items.lock().map(|i| i.is_empty()).unwrap_or(true)
    }

    /// Starts renewing: each renewable lease at two thirds of its duration, by its original
    /// duration. A failed renewal is a warning (names only) and is not retried.
    pub fn keep_alive(&self) -> KeepAlive {
        let Some(client) = self.client.clone() else {
            return KeepAlive {
                stop: None,
                thread: None,
            };
        };
        if self.is_empty() {
            return KeepAlive {
                stop: None,
                thread: None,
            };
        }
        let items = Arc::clone(&self.items);
        let warn = self.warn.clone();
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            loop {
                let next = {
                    let Ok(items) = items.lock() else { return };
                    items
                        .iter()
                        .enumerate()
                        .filter(|(_, i)| i.renewable && i.ttl > 0)
                        .map(|(n, i)| (n, i.renewed + Duration::from_secs(i.ttl) * 2 / 3))
                        .min_by_key(|(_, at)| *at)
                };
                let Some((n, at)) = next else { return };
                match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                let Ok(mut items) = items.lock() else { return };
                let item = &mut items[n];
                let r = match &item.held {
                    Held::Lease { id } => client.renew_lease(id, item.ttl),
                    Held::Token { token } => client.renew_token(token, item.ttl),
                };
                match r {
                    Ok(granted) if granted > 0 => {
                        item.renewed = Instant::now();
                        item.ttl = granted;
                    }
                    Ok(_) => item.renewable = false,
                    Err(e) => {
                        if let Some(warn) = &warn {
                            warn(&format!("cannot renew {}: {e}", item.what));
                        }
                        item.renewable = false;
                    }
                }
            }
        });
        KeepAlive {
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// Revokes everything held; returns how many were revoked and the errors (no values).
    pub fn revoke_all(&mut self) -> (usize, Vec<String>) {
        let items = match self.items.lock() {
            Ok(mut i) => std::mem::take(&mut *i),
            Err(_) => return (0, vec!["lease list poisoned".into()]),
        };
        let Some(client) = &self.client else {
            return (0, Vec::new());
        };
        let mut done = 0;
        let mut errors = Vec::new();
        for item in items {
            let r = match &item.held {
                Held::Lease { id } => client.revoke_lease(id),
                Held::Token { token } => client.revoke_token(token),
            };
            match r {
                Ok(()) => done += 1,
                Err(e) => errors.push(format!(
                    "cannot revoke {} (it expires by itself in at most {} s): {e}",
                    item.what, item.ttl
                )),
            }
        }
        (done, errors)
    }
}

impl Drop for Leases {
    fn drop(&mut self) {
        let errors = self.revoke_all().1;
        if let Some(warn) = &self.warn {
            for e in errors {
                warn(&e);
            }
        }
    }
}

/// The fields of one answer.
type Fields = openbao::Json;

/// Fetches values for one run, each source once, and holds the leases it created. The store
/// is opened once, on the first entry asked for (it may ask for a passphrase).
#[derive(Default)]
pub struct Resolver {
    store: Option<crate::store::Store>,
    kv: HashMap<(String, String), Fields>,
    leased: HashMap<String, Fields>,
    tokens: HashMap<(Vec<String>, u64), SecretValue>,
    cmds: HashMap<Vec<String>, SecretValue>,
    leases: Leases,
}

impl Resolver {
    /// `warn`: where the warnings of the leases it takes go (`Warn`).
    pub fn new(warn: Warn) -> Resolver {
        let mut r = Resolver::default();
        r.leases.warn = Some(warn);
        r
    }

    fn client(&mut self) -> Result<Client, ProviderError> {
        if let Some(c) = &self.leases.client {
            return Ok(c.clone());
        }
        let c = Client::connect(&Config::from_env()?)?;
        self.leases.client = Some(c.clone());
        Ok(c)
    }

    /// A store entry, as `access` may have it.
    pub fn entry(&mut self, name: &str, access: Access<'_>) -> Result<SecretValue, ProviderError> {
        let store = match &mut self.store {
            Some(s) => s,
            None => self.store.insert(crate::store::Store::open_default()?),
        };
        let entry = match access {
            Access::Any => store.get(name)?,
            Access::Profile(profile) => store.get_for_profile(name, profile)?,
            Access::Listed(profile) => store.get_listed_for_profile(name, profile)?,
        };
        Ok(entry.value.clone())
    }

    /// The value of a reference (`shown` is how the user wrote it); a store entry as `access`
    /// may have it.
    pub fn resolve(
        &mut self,
        reference: &Reference,
        shown: &str,
        access: Access<'_>,
    ) -> Result<SecretValue, ProviderError> {
        let field_of = |fields: &Fields, field: &str| {
            openbao::secret_at(
                &fields.0,
                &format!("/{}", field.replace('~', "~0").replace('/', "~1")),
            )
            .ok_or_else(|| ProviderError::NoField {
                reference: shown.to_string(),
                field: field.to_string(),
                fields: fields
                    .0
                    .as_object()
                    .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
                    .unwrap_or_default(),
            })
        };
        match reference {
            Reference::Store(name) => self.entry(name, access),
            Reference::Kv { mount, path, field } => {
                let key = (mount.clone(), path.clone());
                if !self.kv.contains_key(&key) {
                    let data = self.client()?.kv_read(mount, path)?;
                    self.kv.insert(key.clone(), data);
                }
                field_of(&self.kv[&key], field)
            }
            Reference::Lease { path, field } => {
                if !self.leased.contains_key(path) {
                    let client = self.client()?;
                    arm_signals();
                    let mut answer = client.read(path)?;
                    let id = answer.0["lease_id"].as_str().unwrap_or("").to_string();
                    let ttl = answer.0["lease_duration"].as_u64().unwrap_or(0);
                    let renewable = answer.0["renewable"].as_bool().unwrap_or(false);
                    let data = openbao::Json(answer.0["data"].take());
                    if id.is_empty() {
                        return Err(ProviderError::NoLease {
                            reference: shown.to_string(),
                        });
                    }
                    if let Ok(mut items) = self.leases.items.lock() {
                        items.push(Item {
                            held: Held::Lease { id },
                            what: format!("the lease on {path}"),
                            ttl,
                            renewable,
                            renewed: Instant::now(),
                        });
                    }
                    self.leased.insert(path.clone(), data);
                }
                field_of(&self.leased[path], field)
            }
            Reference::Token { policies, ttl } => {
                let key = (policies.clone(), *ttl);
                if let Some(t) = self.tokens.get(&key) {
                    return Ok(t.clone());
                }
                let client = self.client()?;
                arm_signals();
                let (token, granted, renewable) = client.create_token(policies, *ttl)?;
                if let Ok(mut items) = self.leases.items.lock() {
                    items.push(Item {
                        held: Held::Token {
                            token: token.clone(),
                        },
                        what: format!("the child token with policies {}", policies.join(",")),
                        ttl: granted,
                        renewable,
                        renewed: Instant::now(),
                    });
                }
                self.tokens.insert(key, token.clone());
                Ok(token)
            }
            Reference::File { path } => {
                let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
                Ok(file::read(&file::path_of(path, home.as_deref())?)?)
            }
            Reference::Cmd { argv } => {
                if let Some(v) = self.cmds.get(argv) {
                    return Ok(v.clone());
                }
                let v = cmd::run(argv, cmd::timeout_from_env()?)?;
                self.cmds.insert(argv.clone(), v.clone());
                Ok(v)
            }
        }
    }

    /// The leases created so far; the resolver keeps none.
    pub fn take_leases(&mut self) -> Leases {
        let mut fresh = Leases::default();
        fresh.warn = self.leases.warn.clone();
        std::mem::replace(&mut self.leases, fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        let kv = |m: &str, p: &str, f: &str| Reference::Kv {
            mount: m.into(),
            path: p.into(),
            field: f.into(),
        };
        for (s, want) in [
            (
                "ANTHROPIC_API_KEY",
                Reference::Store("ANTHROPIC_API_KEY".into()),
            ),
            ("store:gh.token", Reference::Store("gh.token".into())),
            (
                "openbao://secret/app#api_key",
                kv("secret", "app", "api_key"),
            ),
            (
                "vault://kv/team/ci/npm#token",
                kv("kv", "team/ci/npm", "token"),
            ),
            (
                "openbao+lease://database/creds/ro#password",
                Reference::Lease {
                    path: "database/creds/ro".into(),
                    field: "password".into(),
                },
            ),
            (
                "openbao+token://deploy,read?ttl=15m",
                Reference::Token {
                    policies: vec!["deploy".into(), "read".into()],
                    ttl: 900,
                },
            ),
            (
                "vault+token://ci",
                Reference::Token {
                    policies: vec!["ci".into()],
                    ttl: DEFAULT_TOKEN_TTL,
                },
            ),
            (
                "cmd:op read 'op://my vault/item/field'",
                Reference::Cmd {
                    argv: vec![
                        "op".into(),
                        "read".into(),
                        "op://my vault/item/field".into(),
                    ],
                },
            ),
        ] {
            assert_eq!(Reference::parse(s).unwrap(), want, "{s}");
        }
        for bad in [
            "store:",
            "cmd:",
            "cmd:  ",
            "cmd:op 'x",
            "openbao://secret/app",
            "openbao://app#f",
            "openbao://secret/#f",
            "openbao://secret/a/../b#f",
            "openbao+lease://database/creds/ro",
            "openbao+token://",
            "openbao+token://p?ttl=never",
            "openbao+token://p?x=1",
            "https://example.com/x#y",
        ] {
            let e = Reference::parse(bad).unwrap_err().to_string();
            assert!(e.contains("hint:"), "{bad}: {e}");
        }
        assert!(
            Reference::parse("openbao+lease://db/creds/x#u")
                .unwrap()
                .is_leased()
        );
        assert!(!Reference::parse("openbao://s/x#u").unwrap().is_leased());
    }
}
