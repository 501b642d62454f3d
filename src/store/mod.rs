//! The embedded vault: secrets at rest in one encrypted file, with no server (DESIGN.md §3,
//! "Store"). This module owns the vault's files, its format and its locking; it never prints
//! (the only thing it ever shows is a passphrase prompt, on `/dev/tty`), and no value ever goes
//! into an error, a log, a file name, or any file except as ciphertext.
//!
//! # Files
//!
//! - `$XDG_DATA_HOME/keyfence/vault` (default `~/.local/share/keyfence/vault`), 0600 in a 0700
//!   directory: a header (magic, format version, key mode and its parameters, nonce) followed by
//!   the XChaCha20-Poly1305 ciphertext of a JSON list of entries; the header is the associated
//!   data. Byte layout in [`format`].
//! - `vault.bak` beside it: the previous version, kept at every write.
//! - `vault.lock` beside it: writers hold an exclusive lock on it.
//! - `$XDG_STATE_HOME/keyfence/vault.key` (default `~/.local/state/keyfence/vault.key`), 0600 in
//!   a 0700 directory: the 32-byte data key in base64, in the default mode.
//!
//! The key file is deliberately not beside the vault, and not under `$XDG_CONFIG_HOME`:
//! `~/.config` is what dotfile managers (chezmoi, yadm, stow, a bare git repo) commit and push, and
//! `~/.local/share` is what "back up my application data" and sync tools pick up, so putting the
//! key in either would ship it next to the vault. `$XDG_STATE_HOME` is defined by the XDG Base
//! Directory spec as data that stays on this machine ("not important or portable enough ... to
//! be stored in `$XDG_DATA_HOME`"), and is not where people keep things they sync. A backup of
//! the whole home directory still holds both files; use passphrase mode against that.
//!
//! # What each mode protects against
//!
//! - **Key file (default)**. A copy of the vault alone — a backup or sync of the data
//!   directory, the file attached to a bug report, one directory of a stolen disk — reveals
//!   nothing but the number and sizes of the entries; any change to it is detected. A copy of
//!   the whole home directory (a full backup, an unencrypted stolen laptop) holds the key too,
//!   and reveals everything.
//! - **Passphrase** (`keyfence init --passphrase`): the key is derived with Argon2id (64 MiB, 3
//!   passes, parameters stored in the header) and exists only in memory, so a copy of the whole
//!   home directory costs the attacker one Argon2id per passphrase guess. The price: every
//!   `secret get` asks for the passphrase on the terminal (or reads the file named by
//!   `KEYFENCE_PASSPHRASE_FILE`, which is then as exposed as a key file) and takes ~0.1 s.
//! - **Neither mode** protects against code running as the same user — an install script, a
//!   compromised dependency, a command a prompt-injected agent runs. It can read the key file,
//!   run `keyfence secret get` itself, read the passphrase file, or read a value from the
//!   environment of a process it was injected into. Keeping such code away from the store is the
//!   job of the sandbox and of guard (`isolate/`), not of the encryption.
//! - Not detected: replacing the vault with an older genuine version (for example `vault.bak`),
//!   which brings back a value that was rotated away. That needs write access to the directory.
//!
//! # Writes
//!
//! A write takes the lock, reads and decrypts the current vault, changes it, then writes a temp
//! file in the same directory, fsyncs it, links the current vault as `vault.bak`, renames the
//! temp file over the vault and fsyncs the directory. Concurrent writers therefore lose nothing,
//! a writer killed at any point leaves the old or the new vault (plus a stray temp file, removed
//! by the next writer), and a vault that fails to decrypt is never overwritten. Reads take no
//! lock — a rename is atomic, so a reader sees one whole version — which keeps `secret get`
//! (Claude Code's `apiKeyHelper`) down to reading two small files.

pub mod format;
use crate::fsio;
pub mod key;
pub mod time;

use crate::secret::SecretValue;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use format::{FormatError, KeyMode};
use key::{DataKey, KeyError};
pub use key::{Interactive, PASSPHRASE_FILE_ENV, PassphraseError, PassphraseSource};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
pub use time::{Time, Ttl, parse_ttl};
use zeroize::Zeroizing;

/// Where the vault and its companions live.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The directory holding the vault, its backup and its lock.
    pub dir: PathBuf,
    pub vault: PathBuf,
    pub backup: PathBuf,
    pub lock: PathBuf,
    /// The data key, in key-file mode.
    pub key: PathBuf,
}

impl Paths {
    /// The vault in `data_dir`, its key file in `key_dir`.
    pub fn new(data_dir: PathBuf, key_dir: &Path) -> Paths {
        Paths {
            vault: data_dir.join("vault"),
            backup: data_dir.join("vault.bak"),
            lock: data_dir.join("vault.lock"),
            key: key_dir.join("vault.key"),
            dir: data_dir,
        }
    }

    /// `$XDG_DATA_HOME/keyfence` and `$XDG_STATE_HOME/keyfence`, each falling back to its
    /// default under `$HOME` when unset, empty or relative (as the XDG spec requires).
    pub fn from_env() -> Result<Paths, StoreError> {
        let xdg = |var: &str, default: &str| -> Result<PathBuf, StoreError> {
            match std::env::var_os(var).map(PathBuf::from) {
                Some(p) if p.is_absolute() => Ok(p),
                _ => match std::env::var_os("HOME") {
                    Some(h) if !h.is_empty() => Ok(PathBuf::from(h).join(default)),
                    _ => Err(StoreError::NoHome),
                },
            }
        };
        let data = xdg("XDG_DATA_HOME", ".local/share")?.join("keyfence");
        let state = xdg("XDG_STATE_HOME", ".local/state")?.join("keyfence");
        Ok(Paths::new(data, &state))
    }
}

/// One stored secret and what is known about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    #[serde(with = "value_b64")]
    pub value: SecretValue,
    /// The kind the detector gave it (`anthropic-api-key`, ...), if it recognised it.
    pub kind: Option<String>,
    /// Absent for low-entropy values, as in reports (DESIGN.md §3).
    pub fingerprint: Option<String>,
    pub created: Time,
    /// When the value last changed, if it was set again after being created.
    pub rotated: Option<Time>,
    pub expires: Option<Time>,
    /// The `--ttl` in seconds, so setting the value again restarts the same lifetime.
    pub ttl: Option<u64>,
    /// Profiles allowed to receive it; empty means any (but see [`Store::get_listed_for_profile`]).
    pub profiles: Vec<String>,
    /// Seconds after which `audit` reports the value as due for rotation; absent: the default
    /// ([`DEFAULT_ROTATION_AGE`]); 0: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_after: Option<u64>,
}

/// How old a value may get before `audit` says to rotate it: 90 days.
pub const DEFAULT_ROTATION_AGE: u64 = 90 * 86_400;

impl Entry {
    pub fn is_expired(&self, now: Time) -> bool {
        self.expires.is_some_and(|at| now >= at)
    }

    /// When the value became due for rotation, if it is by `now`.
    pub fn rotation_due(&self, now: Time) -> Option<Time> {
        let age = self.rotate_after.unwrap_or(DEFAULT_ROTATION_AGE);
        if age == 0 {
            return None;
        }
        let due = Time(self.rotated.unwrap_or(self.created).0.saturating_add(age));
        (now >= due).then_some(due)
    }

    /// Whether a profile that is not from a project file may receive it: no list (open, as
    /// every entry starts), a list holding `ANY_PROFILE` (open, and listed for some project
    /// profiles), or a list naming it.
    pub fn allows(&self, profile: &str) -> bool {
        self.profiles.is_empty() || self.lists(ANY_PROFILE) || self.lists(profile)
    }

    /// Whether it names `profile` explicitly.
    pub fn lists(&self, profile: &str) -> bool {
        self.profiles.iter().any(|p| p == profile)
    }
}

/// In an entry's profile list: every profile of the user's may receive it too. Never a valid
/// profile name, so listing a project's profile on an open entry keeps it open
/// (`keyfence secret profiles NAME --add P`).
pub const ANY_PROFILE: &str = "*";

/// Serialises values as base64 (they are bytes, not necessarily UTF-8), through zeroizing
/// buffers.
mod value_b64 {
    use super::*;
    use serde::de::Error as _;

    pub fn serialize<S: serde::Serializer>(v: &SecretValue, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&Zeroizing::new(B64.encode(v.expose())))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SecretValue, D::Error> {
        // Borrowed straight from the decrypted (zeroizing) buffer: base64 has no escapes.
        let s: &'de str = Deserialize::deserialize(d)?;
        B64.decode(s)
            .map(SecretValue::new)
            .map_err(|_| D::Error::custom("bad base64 in a value"))
    }
}

/// What a `set` changes.
#[derive(Debug)]
pub struct NewValue {
    pub name: String,
    pub value: SecretValue,
    pub kind: Option<String>,
    pub fingerprint: Option<String>,
    /// `None`: keep the entry's lifetime (none for a new entry).
    pub ttl: Option<Ttl>,
    /// `None`: keep the entry's profiles (any, for a new entry).
    pub profiles: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    Created,
    /// The value changed.
    Rotated,
    /// Same value; only the lifetime or profiles may have changed.
    Unchanged,
}

/// The entries of a vault, by name.
#[derive(Debug, Default, Clone)]
pub struct Entries(BTreeMap<String, Entry>);

impl Entries {
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.0.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.0.values()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn remove(&mut self, name: &str) -> Option<Entry> {
        self.0.remove(name)
    }

    /// Changes who may receive an entry without its value: lists `add`, unlists `remove`; `open`
    /// (`Some(true)`: every profile of the user's may receive it as well, `Some(false)`: only the
    /// listed ones). An open entry stays open when a profile is listed on it. The new list, or
    /// `None` when there is no such entry; an error rather than an entry closed to everyone
    /// (an empty list means open).
    pub fn change_profiles(
        &mut self,
        name: &str,
        add: &[String],
        remove: &[String],
        open: Option<bool>,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let Some(e) = self.0.get_mut(name) else {
            return Ok(None);
        };
        let was_open = e.profiles.is_empty() || e.profiles.iter().any(|p| p == ANY_PROFILE);
        let mut listed: Vec<String> = e
            .profiles
            .iter()
            .filter(|p| *p != ANY_PROFILE && !remove.contains(p))
            .cloned()
            .collect();
        for p in add {
            if !listed.contains(p) {
                listed.push(p.clone());
            }
        }
        let open = open.unwrap_or(was_open);
        if !open && listed.is_empty() {
            return Err(StoreError::NoProfileLeft {
                name: name.to_string(),
            });
        }
        e.profiles = match (open, listed.is_empty()) {
            (true, true) => Vec::new(),
            (true, false) => std::iter::once(ANY_PROFILE.to_string())
                .chain(listed)
                .collect(),
            (false, _) => listed,
        };
        Ok(Some(e.profiles.clone()))
    }

    /// Sets the rotation age of an entry (`Never`: never due). Returns false if there is none.
    pub fn set_rotate_after(&mut self, name: &str, age: Ttl) -> bool {
        match self.0.get_mut(name) {
            Some(e) => {
                e.rotate_after = Some(match age {
                    Ttl::Seconds(s) => s,
                    Ttl::Never => 0,
                });
                true
            }
            None => false,
        }
    }

    /// Stores a value. Setting an existing name again keeps `created`, sets `rotated` if the
    /// value changed, and restarts the expiry; a lifetime or profile list not given is kept,
    /// so rotating a key never silently widens who may receive it.
    pub fn set(&mut self, new: NewValue, now: Time) -> SetOutcome {
        let ttl = |old: Option<u64>| match new.ttl {
            Some(Ttl::Seconds(s)) => Some(s),
            Some(Ttl::Never) => None,
            None => old,
        };
        match self.0.get_mut(&new.name) {
            Some(e) => {
                let changed = e.value != new.value;
                if changed {
                    e.value = new.value;
                    e.kind = new.kind;
                    e.fingerprint = new.fingerprint;
                    e.rotated = Some(now);
                }
                e.ttl = ttl(e.ttl);
                e.expires = e.ttl.map(Time::after);
                if let Some(p) = new.profiles {
                    e.profiles = p;
                }
                if changed {
                    SetOutcome::Rotated
                } else {
                    SetOutcome::Unchanged
                }
            }
            None => {
                let ttl = ttl(None);
                self.0.insert(
                    new.name.clone(),
                    Entry {
                        name: new.name,
                        value: new.value,
                        kind: new.kind,
                        fingerprint: new.fingerprint,
                        created: now,
                        rotated: None,
                        expires: ttl.map(Time::after),
                        ttl,
                        profiles: new.profiles.unwrap_or_default(),
                        rotate_after: None,
                    },
                );
                SetOutcome::Created
            }
        }
    }
}

/// How a new vault gets its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitMode {
    KeyFile,
    Passphrase,
}

/// What `init` did.
#[derive(Debug)]
pub struct Initialized {
    /// In key-file mode: the key file, and whether it existed already (and was reused).
    pub key_file: Option<(PathBuf, bool)>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot find the vault: HOME is not set\n\
         hint: set HOME, or XDG_DATA_HOME and XDG_STATE_HOME"
    )]
    NoHome,
    #[error(
        "no vault at {}\nhint: store a secret with `keyfence secret set NAME`, which creates it",
        path.display()
    )]
    NoVault { path: PathBuf },
    #[error(
        "a vault already exists at {}\nhint: to start over, move it and its key file away first",
        path.display()
    )]
    Exists { path: PathBuf },
    #[error(
        "no secret named '{name}' in {}\nhint: `keyfence secret list` shows the names stored",
        path.display()
    )]
    NotFound { name: String, path: PathBuf },
    #[error("secret '{name}' expired at {at}; set it again with `keyfence secret set {name}`")]
    Expired { name: String, at: Time },
    #[error(
        "secret '{name}' may only be given to the profiles {}, not to '{profile}'\n\
         hint: to allow it, `keyfence secret profiles {name} --add {profile}` (the others keep it)",
        allowed.join(", ")
    )]
    ProfileNotAllowed {
        name: String,
        profile: String,
        allowed: Vec<String>,
    },
    #[error(
        "secret '{name}' does not list profile '{profile}', and a project's keyfence.toml only \
         gets secrets that list its profile by name\n\
         hint: if you trust this project, `keyfence secret profiles {name} --add {profile}` lists \
         it (your own profiles keep the secret)"
    )]
    NotListed { name: String, profile: String },
    #[error(
        "secret '{name}' would be given to no profile at all\nhint: list one with --add, or remove \
         the secret with `keyfence secret rm {name}`"
    )]
    NoProfileLeft { name: String },
    #[error("{} is corrupted or was modified ({reason}); {}", path.display(), backup_note(backup.as_deref(), path))]
    Corrupt {
        path: PathBuf,
        reason: &'static str,
        backup: Option<PathBuf>,
    },
    #[error(
        "{} was written by a newer keyfence (format version {version})\nhint: upgrade keyfence",
        path.display()
    )]
    NewerFormat { path: PathBuf, version: u8 },
    #[error("wrong passphrase for {}", path.display())]
    WrongPassphrase { path: PathBuf },
    #[error(
        "cannot decrypt {}: its key file {} is missing\n\
         hint: restore the key file from where you keep it; without it the vault cannot be read",
        vault.display(), key.display()
    )]
    KeyMissing { vault: PathBuf, key: PathBuf },
    #[error(
        "cannot decrypt {} with the key in {}: the key file belongs to another vault, or the \
         vault was modified; {}",
        vault.display(), key.display(), backup_note(backup.as_deref(), vault)
    )]
    KeyMismatch {
        vault: PathBuf,
        key: PathBuf,
        backup: Option<PathBuf>,
    },
    #[error("the key file {} is damaged: {reason}", path.display())]
    BadKeyFile { path: PathBuf, reason: &'static str },
    #[error(transparent)]
    Passphrase(#[from] PassphraseError),
    #[error("deriving the key from the passphrase: {0}")]
    Kdf(argon2::Error),
    #[error(
        "the store is out of reach here: this command runs below one that `keyfence run --guard` \
         (the agent profile) supervises, or in another sandbox; guard keeps the store and the \
         credential files from every command it starts ({} is not readable)\n\
         hint: run `keyfence secret` in a terminal of your own; a command the agent runs that \
         needs a key gets it by name from a profile of yours with `inject`",
        path.display()
    )]
    Fenced { path: PathBuf },
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// Whether a refusal to read `path` comes from the descendant fence: this process is traced
/// by keyfence, or (where the tracer is out of sight: inside Codex's sandbox, a pid namespace
/// of its own) the file is the caller's own and readable by its owner, so no file permission
/// refused it and a sandbox did.
fn fenced(path: &Path) -> bool {
    crate::guard::supervised() || {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path)
            .is_ok_and(|m| m.uid() == nix::unistd::geteuid().as_raw() && m.mode() & 0o400 != 0)
    }
}

fn backup_note(backup: Option<&Path>, vault: &Path) -> String {
    match backup {
        Some(b) => format!(
            "the last good version is in {}\nhint: `cp {} {}` restores it (losing the last change)",
            b.display(),
            b.display(),
            vault.display()
        ),
        None => "there is no backup (vault.bak) to restore".to_string(),
    }
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

/// The decrypted vault, read without taking the lock.
#[derive(Debug)]
pub struct Store {
    paths: Paths,
    entries: Entries,
}

/// A key already obtained for a vault with this key mode (so a passphrase is asked once).
type KeyCache = Option<(KeyMode, DataKey)>;

impl Store {
    /// The vault at the default place, unlocked with the key file, or with the passphrase from
    /// `KEYFENCE_PASSPHRASE_FILE` or the terminal. [`StoreError::NoVault`] if there is none.
    pub fn open_default() -> Result<Store, StoreError> {
        Store::open(Paths::from_env()?, &Interactive)
    }

    pub fn open(paths: Paths, pw: &dyn PassphraseSource) -> Result<Store, StoreError> {
        match load(&paths, pw, &mut None)? {
            Some((_, _, entries)) => Ok(Store { paths, entries }),
            None => Err(StoreError::NoVault { path: paths.vault }),
        }
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// Every entry, expired ones included, by name.
    pub fn entries(&self) -> &Entries {
        &self.entries
    }

    /// The entry `name`, if it exists and has not expired.
    pub fn get(&self, name: &str) -> Result<&Entry, StoreError> {
        let e = self.find(name)?;
        self.unexpired(e)
    }

    /// The entry `name` for a profile chosen by the user (`--profile`, or the user's config):
    /// allowed when the entry lists no profiles or lists this one.
    pub fn get_for_profile(&self, name: &str, profile: &str) -> Result<&Entry, StoreError> {
        let e = self.find(name)?;
        if !e.allows(profile) {
            return Err(StoreError::ProfileNotAllowed {
                name: name.to_string(),
                profile: profile.to_string(),
                allowed: e.profiles.clone(),
            });
        }
        self.unexpired(e)
    }

    /// The entry `name` for a profile defined in a project's `keyfence.toml`, which comes with
    /// the code and is not trusted to ask for any secret: the entry must list the profile.
    pub fn get_listed_for_profile(&self, name: &str, profile: &str) -> Result<&Entry, StoreError> {
        let e = self.find(name)?;
        if !e.lists(profile) {
            return Err(StoreError::NotListed {
                name: name.to_string(),
                profile: profile.to_string(),
            });
        }
        self.unexpired(e)
    }

    fn find(&self, name: &str) -> Result<&Entry, StoreError> {
        self.entries.get(name).ok_or_else(|| StoreError::NotFound {
            name: name.to_string(),
            path: self.paths.vault.clone(),
        })
    }

    fn unexpired<'a>(&self, e: &'a Entry) -> Result<&'a Entry, StoreError> {
        match e.expires {
            Some(at) if e.is_expired(Time::now()) => Err(StoreError::Expired {
                name: e.name.clone(),
                at,
            }),
            _ => Ok(e),
        }
    }

    /// Read-modify-write under the lock: `f` changes the entries, and they are written back
    /// atomically unless `f` fails. A vault that does not exist yet is created in key-file
    /// mode, with a new key file unless one exists.
    pub fn update<T>(
        paths: &Paths,
        pw: &dyn PassphraseSource,
        f: impl FnOnce(&mut Entries) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // Derive a passphrase key before queueing for the lock, so concurrent writers do not
        // wait for each other's Argon2id. The salt never changes, so inside the lock the header
        // is checked and the key reused.
        let mut cache: KeyCache = None;
        if let Ok(bytes) = std::fs::read(&paths.vault)
            && let Ok(h) = format::parse_header(&bytes)
            && matches!(h.mode, KeyMode::Argon2id(_))
        {
            cache = Some((h.mode.clone(), obtain_key(paths, &h.mode, pw)?));
        }
        fsio::private_dir(&paths.dir).map_err(io_err("creating", &paths.dir))?;
        let _lock = fsio::lock(&paths.lock).map_err(io_err("locking", &paths.lock))?;
        fsio::remove_stale_temps(&paths.dir);
        let (mode, key, mut entries) = match load(paths, pw, &mut cache)? {
            Some((mode, key, entries)) => (mode, Some(key), entries),
            None => (KeyMode::KeyFile, None, Entries::default()),
        };
        let out = f(&mut entries)?;
        let key = match key {
            Some(k) => k,
            None => create_key_file(paths)?,
        };
        save(paths, &mode, &key, &entries)?;
        Ok(out)
    }

    /// Creates an empty vault. An existing vault is an error; an existing key file is reused.
    pub fn init(
        paths: &Paths,
        mode: InitMode,
        pw: &dyn PassphraseSource,
    ) -> Result<Initialized, StoreError> {
        let exists = || paths.vault.try_exists().unwrap_or(true);
        if exists() {
            return Err(StoreError::Exists {
                path: paths.vault.clone(),
            });
        }
        // Ask before taking the lock: the user may take a while to type.
        let derived = match mode {
            InitMode::KeyFile => None,
            InitMode::Passphrase => {
                let pass = pw.passphrase(&paths.vault, true)?;
                let params = key::new_params().map_err(io_err("creating", &paths.vault))?;
                let k = key::derive(&pass, &params).map_err(StoreError::Kdf)?;
                Some((KeyMode::Argon2id(params), k))
            }
        };
        fsio::private_dir(&paths.dir).map_err(io_err("creating", &paths.dir))?;
        let _lock = fsio::lock(&paths.lock).map_err(io_err("locking", &paths.lock))?;
        if exists() {
            return Err(StoreError::Exists {
                path: paths.vault.clone(),
            });
        }
        let (mode, key, key_file) = match derived {
            Some((mode, key)) => (mode, key, None),
            None => {
                let existed = paths.key.exists();
                let key = create_key_file(paths)?;
                (KeyMode::KeyFile, key, Some((paths.key.clone(), existed)))
            }
        };
        save(paths, &mode, &key, &Entries::default())?;
        Ok(Initialized { key_file })
    }
}

fn create_key_file(paths: &Paths) -> Result<DataKey, StoreError> {
    if let Some(dir) = paths.key.parent() {
        // Only keyfence writes there, and the vault lock is held: leftovers are from a
        // `keyfence` killed while creating the key.
        fsio::remove_stale_temps(dir);
    }
    key::create_key_file(&paths.key, &paths.vault).map_err(|e| key_error(paths, e))
}

fn key_error(paths: &Paths, e: KeyError) -> StoreError {
    match e {
        KeyError::Missing => StoreError::KeyMissing {
            vault: paths.vault.clone(),
            key: paths.key.clone(),
        },
        KeyError::Malformed(reason) => StoreError::BadKeyFile {
            path: paths.key.clone(),
            reason,
        },
        KeyError::Io(source) => StoreError::Io {
            action: "reading",
            path: paths.key.clone(),
            source,
        },
    }
}

fn existing_backup(paths: &Paths) -> Option<PathBuf> {
    paths.backup.is_file().then(|| paths.backup.clone())
}

fn obtain_key(
    paths: &Paths,
    mode: &KeyMode,
    pw: &dyn PassphraseSource,
) -> Result<DataKey, StoreError> {
    match mode {
        KeyMode::KeyFile => key::read_key_file(&paths.key).map_err(|e| key_error(paths, e)),
        KeyMode::Argon2id(params) => {
            let pass = pw.passphrase(&paths.vault, false)?;
            key::derive(&pass, params).map_err(StoreError::Kdf)
        }
    }
}

/// Reads and decrypts the vault; `None` if there is none.
fn load(
    paths: &Paths,
    pw: &dyn PassphraseSource,
    cache: &mut KeyCache,
) -> Result<Option<(KeyMode, DataKey, Entries)>, StoreError> {
    let bytes = match std::fs::read(&paths.vault) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && fenced(&paths.vault) => {
            return Err(StoreError::Fenced {
                path: paths.vault.clone(),
            });
        }
        Err(e) => return Err(io_err("reading", &paths.vault)(e)),
    };
    let corrupt = |reason| StoreError::Corrupt {
        path: paths.vault.clone(),
        reason,
        backup: existing_backup(paths),
    };
    let header = format::parse_header(&bytes).map_err(|e| match e {
        FormatError::Corrupt(reason) => corrupt(reason),
        FormatError::NewerVersion(version) => StoreError::NewerFormat {
            path: paths.vault.clone(),
            version,
        },
        FormatError::WrongKey => corrupt("bad header"),
    })?;
    let key = match cache.take() {
        Some((mode, key)) if mode == header.mode => key,
        _ => obtain_key(paths, &header.mode, pw)?,
    };
    let plain = format::open(&bytes, &header, &key).map_err(|e| match (e, &header.mode) {
        (FormatError::WrongKey, KeyMode::KeyFile) => StoreError::KeyMismatch {
            vault: paths.vault.clone(),
            key: paths.key.clone(),
            backup: existing_backup(paths),
        },
        (FormatError::WrongKey, KeyMode::Argon2id(_)) => StoreError::WrongPassphrase {
            path: paths.vault.clone(),
        },
        (FormatError::NewerVersion(_) | FormatError::Corrupt(_), _) => {
            corrupt("authentication failed")
        }
    })?;
    // The error text of serde_json may quote the input, which holds values: never keep it.
    let payload: PayloadIn =
        serde_json::from_slice(&plain).map_err(|_| corrupt("its contents cannot be parsed"))?;
    let entries = Entries(
        payload
            .entries
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect(),
    );
    Ok(Some((header.mode, key, entries)))
}

#[derive(Deserialize)]
struct PayloadIn {
    entries: Vec<Entry>,
}

#[derive(Serialize)]
struct PayloadOut<'a> {
    entries: Vec<&'a Entry>,
}

/// Encrypts and atomically writes the entries.
fn save(paths: &Paths, mode: &KeyMode, key: &DataKey, entries: &Entries) -> Result<(), StoreError> {
    let size: usize = entries.iter().map(|e| e.value.len() * 2 + 256).sum();
    let mut plain = ZBuf(Zeroizing::new(Vec::with_capacity(size + 64)));
    serde_json::to_writer(
        &mut plain,
        &PayloadOut {
            entries: entries.iter().collect(),
        },
    )
    .map_err(|e| io_err("encoding", &paths.vault)(e.into()))?;
    let file = format::seal(mode, key, &plain.0).map_err(io_err("encrypting", &paths.vault))?;
    fsio::replace(&paths.vault, &paths.backup, &file).map_err(io_err("writing", &paths.vault))
}

/// A byte buffer that wipes every allocation it leaves behind when it grows.
struct ZBuf(Zeroizing<Vec<u8>>);

impl Write for ZBuf {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let need = self.0.len() + b.len();
        if need > self.0.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(need.max(self.0.capacity() * 2)));
            bigger.extend_from_slice(&self.0);
            // The old buffer is zeroized as it drops.
            self.0 = bigger;
        }
        self.0.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str);

    impl PassphraseSource for Fixed {
        fn passphrase(&self, _: &Path, _: bool) -> Result<Zeroizing<Vec<u8>>, PassphraseError> {
            Ok(Zeroizing::new(self.0.as_bytes().to_vec()))
        }
    }

    fn paths(d: &tempfile::TempDir) -> Paths {
        Paths::new(
            d.path().join("data/keyfence"),
            &d.path().join("state/keyfence"),
        )
    }

    fn new_value(name: &str, value: &str) -> NewValue {
        NewValue {
            name: name.into(),
            value: SecretValue::new(value),
            kind: None,
            fingerprint: None,
            ttl: None,
            profiles: None,
        }
    }

    fn set(p: &Paths, nv: NewValue) -> SetOutcome {
        Store::update(p, &Fixed("unused"), |e| Ok(e.set(nv, Time::now()))).unwrap()
    }

    #[test]
    fn first_write_creates_vault_and_key_file() {
        let d = tempfile::tempdir().unwrap();
        let p = paths(&d);
        assert!(matches!(
            Store::open(p.clone(), &Fixed("x")),
            Err(StoreError::NoVault { .. })
        ));
        assert_eq!(set(&p, new_value("A", "one")), SetOutcome::Created);
        assert!(p.vault.is_file() && p.key.is_file() && !p.backup.exists());
        let s = Store::open(p.clone(), &Fixed("x")).unwrap();
        assert_eq!(s.get("A").unwrap().value.expose(), b"one");
    }

    #[test]
    fn set_again_rotates_and_keeps_created_ttl_and_profiles() {
        let d = tempfile::tempdir().unwrap();
        let p = paths(&d);
        let mut nv = new_value("A", "one");
        nv.ttl = Some(Ttl::Seconds(3600));
        nv.profiles = Some(vec!["agent".into()]);
        set(&p, nv);
        assert_eq!(set(&p, new_value("A", "one")), SetOutcome::Unchanged);
        assert_eq!(set(&p, new_value("A", "two")), SetOutcome::Rotated);
        let s = Store::open(p.clone(), &Fixed("x")).unwrap();
        let e = s.get_for_profile("A", "agent").unwrap();
        assert_eq!(e.value.expose(), b"two");
        assert!(e.rotated.is_some() && e.expires.is_some());
        assert_eq!(e.ttl, Some(3600));
        assert!(matches!(
            s.get_for_profile("A", "install"),
            Err(StoreError::ProfileNotAllowed { .. })
        ));
        let mut never = new_value("A", "two");
        never.ttl = Some(Ttl::Never);
        set(&p, never);
        let s = Store::open(p, &Fixed("x")).unwrap();
        assert_eq!(s.get("A").unwrap().expires, None);
    }

    #[test]
    fn rotation_is_due_after_the_age_from_the_last_change() {
        let d = tempfile::tempdir().unwrap();
        let p = paths(&d);
        set(&p, new_value("A", "one"));
        let s = Store::open(p.clone(), &Fixed("x")).unwrap();
        let e = s.get("A").unwrap().clone();
        assert_eq!(e.rotation_due(Time::now()), None);
        let later = Time(e.created.0 + DEFAULT_ROTATION_AGE);
        assert_eq!(e.rotation_due(later), Some(later));
        let mut rotated = e.clone();
        rotated.rotated = Some(Time(e.created.0 + 86_400));
        assert_eq!(rotated.rotation_due(later), None);
        Store::update(&p, &Fixed("x"), |en| {
            assert!(en.set_rotate_after("A", Ttl::Never));
            assert!(!en.set_rotate_after("B", Ttl::Never));
            Ok(())
        })
        .unwrap();
        let s = Store::open(p, &Fixed("x")).unwrap();
        assert_eq!(s.get("A").unwrap().rotation_due(Time(u64::MAX)), None);
    }

    #[test]
    fn profiles_open_and_listed() {
        let d = tempfile::tempdir().unwrap();
        let p = paths(&d);
        set(&p, new_value("ANY", "v"));
        let mut nv = new_value("ONLY", "w");
        nv.profiles = Some(vec!["agent".into()]);
        set(&p, nv);
        let s = Store::open(p, &Fixed("x")).unwrap();
        assert!(s.get_for_profile("ANY", "agent").is_ok());
        assert!(matches!(
            s.get_listed_for_profile("ANY", "agent"),
            Err(StoreError::NotListed { .. })
        ));
        assert!(s.get_listed_for_profile("ONLY", "agent").is_ok());
        assert!(matches!(s.get("NONE"), Err(StoreError::NotFound { .. })));
    }

    #[test]
    fn expired_entries_are_refused_with_the_time() {
        let d = tempfile::tempdir().unwrap();
        let p = paths(&d);
        set(&p, new_value("A", "v"));
        // Rewrite the expiry into the past through the same write path.
        Store::update(&p, &Fixed("x"), |e| {
            let mut entry = e.remove("A").unwrap();
            entry.expires = Some(Time(1_000));
            e.0.insert("A".into(), entry);
            Ok(())
        })
        .unwrap();
        let s = Store::open(p, &Fixed("x")).unwrap();
        let err = s.get("A").unwrap_err().to_string();
        assert!(err.contains("expired at 1970-01-01T00:16:40Z"), "{err}");
        assert!(err.contains("keyfence secret set A"), "{err}");
        assert_eq!(s.entries().len(), 1);
    }

    #[test]
    fn passphrase_vault_opens_only_with_the_passphrase() {
        let d = tempfile::tempdir().unwrap();
        let p = paths(&d);
        Store::init(&p, InitMode::Passphrase, &Fixed("correct horse")).unwrap();
        assert!(!p.key.exists());
        assert!(matches!(
            Store::init(&p, InitMode::KeyFile, &Fixed("x")),
            Err(StoreError::Exists { .. })
        ));
        Store::update(&p, &Fixed("correct horse"), |e| {
            Ok(e.set(new_value("A", "v"), Time::now()))
        })
        .unwrap();
        assert!(matches!(
            Store::open(p.clone(), &Fixed("wrong")),
            Err(StoreError::WrongPassphrase { .. })
        ));
        let s = Store::open(p, &Fixed("correct horse")).unwrap();
        assert_eq!(s.get("A").unwrap().value.expose(), b"v");
    }

    #[test]
    fn damaged_vault_is_never_overwritten() {
        let d = tempfile::tempdir().unwrap();
        let p = paths(&d);
        set(&p, new_value("A", "v"));
        set(&p, new_value("B", "w"));
        let mut bytes = std::fs::read(&p.vault).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&p.vault, &bytes).unwrap();
        let err = Store::update(&p, &Fixed("x"), |e| {
            Ok(e.set(new_value("C", "x"), Time::now()))
        })
        .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("vault.bak"), "{err}");
        assert_eq!(std::fs::read(&p.vault).unwrap(), bytes);
    }

    #[test]
    fn zbuf_keeps_every_byte_across_growth() {
        let mut b = ZBuf(Zeroizing::new(Vec::with_capacity(1)));
        for i in 0..1000u32 {
            b.write_all(&i.to_le_bytes()).unwrap();
        }
        assert_eq!(b.0.len(), 4000);
        assert_eq!(&b.0[3996..], &999u32.to_le_bytes());
    }
}
