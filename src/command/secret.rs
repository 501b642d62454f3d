//! `keyfence init` and `keyfence secret ...`: the embedded vault (`store/`) from the command line.
//!
//! Values come from a no-echo prompt, from stdin, from a `.env` file or from the environment —
//! never from argv. The one place a value is ever written is `secret get`'s stdout, and only
//! when that is not a terminal (or with `--reveal`). Notes go to stderr; `list` prints only
//! metadata. `get` must stay fast (Claude Code runs it as `apiKeyHelper`): it builds no detector
//! and, in key-file mode, runs no key derivation.

use super::Exit;
use crate::cli::{Format, GlobalArgs, InitArgs, SecretCommand};
use crate::detect::{self, entropy};
use crate::provider;
use crate::secret::SecretValue;
use crate::store::{
    self, InitMode, Interactive, NewValue, Paths, SetOutcome, Store, StoreError, Time, Ttl,
};
use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use std::io::{IsTerminal, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use zeroize::Zeroizing;

/// Values longer than this are refused: a secret is not a file dump.
const MAX_VALUE: u64 = 1 << 20;

pub fn init(g: &GlobalArgs, args: &InitArgs) -> Result<Exit> {
    let paths = Paths::from_env()?;
    let mode = if args.passphrase {
        InitMode::Passphrase
    } else {
        InitMode::KeyFile
    };
    let done = Store::init(&paths, mode, &Interactive)?;
    if !g.quiet {
        match done.key_file {
            Some((key, existed)) => {
                eprintln!(
                    "keyfence: created {}, encrypted with the {} key in {}",
                    paths.vault.display(),
                    if existed { "existing" } else { "new" },
                    key.display()
                );
                eprintln!(
                    "keyfence: anyone with both files can read the secrets: keep {} out of \
                     backups and dotfile repositories that include the vault",
                    key.display()
                );
            }
            None => eprintln!(
                "keyfence: created {}, encrypted with a key derived from your passphrase",
                paths.vault.display()
            ),
        }
    }
    Ok(Exit::Clean)
}

pub fn run(g: &GlobalArgs, cmd: &SecretCommand) -> Result<Exit> {
    match cmd {
        SecretCommand::Set {
            name,
            from_env,
            ttl,
            profiles,
            rotate_after,
        } => set(
            g,
            name,
            from_env.as_deref(),
            ttl.as_deref(),
            profiles,
            rotate_after.as_deref(),
        ),
        SecretCommand::Rotate {
            name,
            from_env,
            rotate_after,
        } => rotate(g, name, from_env.as_deref(), rotate_after.as_deref()),
        SecretCommand::Profiles {
            name,
            add,
            remove,
            open,
            only_listed,
        } => profiles(
            g,
            name,
            add,
            remove,
            match (open, only_listed) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
        ),
        SecretCommand::Get { name, reveal } => get(name, *reveal),
        SecretCommand::List(_) => list(g),
        SecretCommand::Rm { name } => rm(g, name),
        SecretCommand::Import { file, from_env } => match file {
            Some(file) => import_file(g, file),
            None => import_env(g, from_env),
        },
    }
}

fn set(
    g: &GlobalArgs,
    name: &str,
    from_env: Option<&str>,
    ttl: Option<&str>,
    profiles: &[String],
    rotate_after: Option<&str>,
) -> Result<Exit> {
    check_name(name)?;
    refuse_secret_like_name(name)?;
    let ttl = ttl
        .map(store::parse_ttl)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--ttl: {e}"))?;
    let rotate_after = parse_rotate_after(rotate_after)?;
    for p in profiles {
        check_profile(p)?;
    }
    let value = match from_env {
        Some(var) => value_from_env(var)?,
        None => read_value(name)?,
    };
    let new = new_value(
        name,
        value,
        ttl,
        (!profiles.is_empty()).then(|| profiles.to_vec()),
    );
    let shown = describe(&new);
    let paths = Paths::from_env()?;
    let (outcome, was_open) = Store::update(&paths, &Interactive, |e| {
        let was_open = e
            .get(name)
            .is_some_and(|x| x.profiles.is_empty() || x.lists(store::ANY_PROFILE));
        let o = e.set(new, Time::now());
        if let Some(age) = rotate_after {
            e.set_rotate_after(name, age);
        }
        Ok((o, was_open))
    })?;
    // `--profile` replaces the list: said, since following an older hint used to close an
    // entry to every other profile without a word.
    if was_open && !profiles.is_empty() {
        eprintln!(
            "keyfence: note: {name} was open to every profile of yours; now only {} may receive \
             it\nhint: `keyfence secret profiles {name} --open` opens it again and keeps the list",
            profiles.join(", ")
        );
    }
    if !g.quiet {
        match outcome {
            SetOutcome::Created => eprintln!(
                "keyfence: stored {name} ({shown}) in {}",
                paths.vault.display()
            ),
            SetOutcome::Rotated => eprintln!("keyfence: rotated {name} ({shown})"),
            SetOutcome::Unchanged if ttl.is_some() || !profiles.is_empty() => eprintln!(
                "keyfence: {name} already holds this value; its expiry and profiles were updated"
            ),
            SetOutcome::Unchanged => eprintln!("keyfence: {name} already holds this value"),
        }
    }
    Ok(Exit::Clean)
}

fn parse_rotate_after(s: Option<&str>) -> Result<Option<Ttl>> {
    s.map(store::parse_ttl)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--rotate-after: {e}"))
}

/// A new value for an existing entry: like `set`, but the entry must exist and the value must
/// change, so a typo makes no new entry and a rotation that rotated nothing is not recorded.
fn rotate(
    g: &GlobalArgs,
    name: &str,
    from_env: Option<&str>,
    rotate_after: Option<&str>,
) -> Result<Exit> {
    check_name(name)?;
    let rotate_after = parse_rotate_after(rotate_after)?;
    let paths = Paths::from_env()?;
    // Fail before asking for the value when there is nothing to rotate.
    Store::open(paths.clone(), &Interactive)?
        .get(name)
        .map(drop)
        .or_else(|e| match e {
            StoreError::Expired { .. } => Ok(()),
            e => Err(e),
        })?;
    let value = match from_env {
        Some(var) => value_from_env(var)?,
        None => read_value(name)?,
    };
    let new = new_value(name, value, None, None);
    let shown = describe(&new);
    let changed = Store::update(&paths, &Interactive, |e| {
        match e.get(name) {
            None => {
                return Err(StoreError::NotFound {
                    name: name.to_string(),
                    path: paths.vault.clone(),
                });
            }
            Some(old) if old.value == new.value => return Ok(false),
            Some(_) => {}
        }
        e.set(new, Time::now());
        if let Some(age) = rotate_after {
            e.set_rotate_after(name, age);
        }
        Ok(true)
    })?;
    if !changed {
        bail!(
            "{name} already holds this value: nothing rotated\n\
             hint: create a new key with its provider first, then store that one"
        );
    }
    if !g.quiet {
        eprintln!("keyfence: rotated {name} ({shown}); revoke the old key with its provider");
    }
    Ok(Exit::Clean)
}

fn get(name: &str, reveal: bool) -> Result<Exit> {
    let stdout = std::io::stdout();
    if stdout.is_terminal() && !reveal {
        bail!(
            "refusing to print secret '{name}' to a terminal\n\
             hint: pipe or redirect it (`keyfence secret get {name} | ...`), or pass --reveal"
        );
    }
    let reference = provider::Reference::parse(name)?;
    let value = match &reference {
        r if r.is_leased() => bail!(
            "{name} is a short-lived credential, revoked when the command using it ends; \
             `secret get` would leave it running until it expires\n\
             hint: use it with `keyfence run --inject VAR={name} -- COMMAND`"
        ),
        r => provider::Resolver::new(super::run::lease_warnings()).resolve(
            r,
            name,
            provider::Access::Any,
        )?,
    };
    let mut out = stdout.lock();
    out.write_all(value.expose())?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(Exit::Clean)
}

fn rotation_due_at(e: &store::Entry) -> Option<String> {
    let age = e.rotate_after.unwrap_or(store::DEFAULT_ROTATION_AGE);
    (age != 0).then(|| Time(e.rotated.unwrap_or(e.created).0.saturating_add(age)).to_string())
}

/// One row of `secret list --format json`.
#[derive(Serialize)]
struct Listed<'a> {
    name: &'a str,
    kind: Option<&'a str>,
    fingerprint: Option<&'a str>,
    created: String,
    rotated: Option<String>,
    expires: Option<String>,
    expired: bool,
    /// When `audit` starts reporting it as due for rotation; absent: never.
    rotation_due: Option<String>,
    /// Empty: any profile.
    profiles: &'a [String],
}

fn list(g: &GlobalArgs) -> Result<Exit> {
    if g.format == Format::Sarif {
        bail!("--format sarif is for findings; `secret list` prints human or json");
    }
    let store = match Store::open_default() {
        Ok(s) => Some(s),
        Err(StoreError::NoVault { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let now = Time::now();
    let rows: Vec<Listed> = store
        .iter()
        .flat_map(|s| s.entries().iter())
        .map(|e| Listed {
            name: &e.name,
            kind: e.kind.as_deref(),
            fingerprint: e.fingerprint.as_deref(),
            created: e.created.to_string(),
            rotated: e.rotated.map(|t| t.to_string()),
            expires: e.expires.map(|t| t.to_string()),
            expired: e.is_expired(now),
            rotation_due: rotation_due_at(e),
            profiles: &e.profiles,
        })
        .collect();
    let mut out = std::io::stdout().lock();
    match g.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &rows)?;
            writeln!(out)?;
        }
        _ if rows.is_empty() => {
            if !g.quiet {
                eprintln!("keyfence: no secrets stored");
            }
        }
        _ => {
            let dash = || "-".to_string();
            let table: Vec<[String; 7]> = rows
                .iter()
                .map(|r| {
                    [
                        r.name.to_string(),
                        r.kind.unwrap_or("unrecognised").to_string(),
                        r.fingerprint.map_or_else(dash, str::to_string),
                        r.created.clone(),
                        r.rotated.clone().unwrap_or_else(dash),
                        match (&r.expires, r.expired) {
                            (Some(t), true) => format!("{t} (expired)"),
                            (Some(t), false) => t.clone(),
                            (None, _) => dash(),
                        },
                        if r.profiles.is_empty() {
                            "any".to_string()
                        } else {
                            r.profiles
                                .iter()
                                .map(|p| if p == store::ANY_PROFILE { "any" } else { p })
                                .collect::<Vec<_>>()
                                .join(",")
                        },
                    ]
                })
                .collect();
            let header = [
                "NAME",
                "KIND",
                "FINGERPRINT",
                "CREATED",
                "ROTATED",
                "EXPIRES",
                "PROFILES",
            ]
            .map(str::to_string);
            write_table(&mut out, &header, &table)?;
        }
    }
    out.flush()?;
    Ok(Exit::Clean)
}

fn write_table<const N: usize>(
    out: &mut impl Write,
    header: &[String; N],
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut width = [0usize; N];
    for row in std::iter::once(header).chain(rows) {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < N {
                let pad = width[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn rm(g: &GlobalArgs, name: &str) -> Result<Exit> {
    let paths = Paths::from_env()?;
    let not_found = || StoreError::NotFound {
        name: name.to_string(),
        path: paths.vault.clone(),
    };
    if !paths.vault.exists() {
        return Err(not_found().into());
    }
    Store::update(&paths, &Interactive, |e| {
        e.remove(name).map(drop).ok_or_else(not_found)
    })?;
    if !g.quiet {
        eprintln!("keyfence: removed {name}");
    }
    Ok(Exit::Clean)
}

fn import_file(g: &GlobalArgs, file: &Path) -> Result<Exit> {
    let text =
        Zeroizing::new(std::fs::read(file).with_context(|| format!("reading {}", file.display()))?);
    let mut new = Vec::new();
    let (entries, unparsed) = crate::audit::dotenv::parse_reporting(&text);
    let mut skipped: Vec<(u32, String)> = unparsed
        .iter()
        .map(|&line| (line, "not NAME=value".to_string()))
        .collect();
    for e in entries {
        if check_name(&e.name).is_err() {
            skipped.push((e.line, "not a usable name".to_string()));
        } else if e.value.is_empty() {
            skipped.push((e.line, format!("{}: empty value", e.name)));
        } else {
            new.push(new_value(&e.name, SecretValue::new(e.value), None, None));
        }
    }
    skipped.sort();
    for (line, why) in &skipped {
        if !g.quiet {
            eprintln!("keyfence: skipped {}:{line}: {why}", file.display());
        }
    }
    if new.is_empty() {
        bail!("no variables with a value to import in {}", file.display());
    }
    let names = store_all(new)?;
    if !g.quiet {
        eprintln!(
            "keyfence: {}",
            imported(&names, &file.display().to_string())
        );
        eprintln!(
            "hint: {} still holds the values in plain text; remove them from it once nothing \
             needs them there (`keyfence run --inject NAME` gives them to a command)",
            file.display()
        );
    }
    Ok(Exit::Clean)
}

fn import_env(g: &GlobalArgs, vars: &[String]) -> Result<Exit> {
    // Read and check every variable before storing any: all or nothing.
    let mut new = Vec::new();
    for var in vars {
        check_name(var)?;
        new.push(new_value(var, value_from_env(var)?, None, None));
    }
    let names = store_all(new)?;
    if !g.quiet {
        eprintln!("keyfence: {}", imported(&names, "the environment"));
        eprintln!(
            "hint: the variables are still exported wherever they were set; remove them there \
             (`keyfence audit` shows where)"
        );
    }
    Ok(Exit::Clean)
}

/// Stores every value in one write; the names stored, marked when not new: `B (rotated)`.
fn store_all(new: Vec<NewValue>) -> Result<Vec<String>> {
    let paths = Paths::from_env()?;
    let outcomes = Store::update(&paths, &Interactive, |entries| {
        let now = Time::now();
        let mut outcomes: Vec<(String, SetOutcome)> = Vec::new();
        for nv in new {
            let name = nv.name.clone();
            let o = entries.set(nv, now);
            // A name seen twice (a .env file that sets it again): the last one wins.
            match outcomes.iter_mut().find(|(n, _)| *n == name) {
                Some(prev) => {
                    if prev.1 == SetOutcome::Unchanged && o == SetOutcome::Rotated {
                        prev.1 = o;
                    }
                }
                None => outcomes.push((name, o)),
            }
        }
        Ok(outcomes)
    })?;
    let names: Vec<String> = outcomes
        .iter()
        .map(|(n, o)| match o {
            SetOutcome::Created => n.clone(),
            SetOutcome::Rotated => format!("{n} (rotated)"),
            SetOutcome::Unchanged => format!("{n} (unchanged)"),
        })
        .collect();
    Ok(names)
}

/// "imported 2 secrets from .env: A, B (rotated)".
fn imported(names: &[String], from: &str) -> String {
    format!(
        "imported {} secret{} from {from}: {}",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    )
}

/// An entry for `value`, with the kind and fingerprint the detector gives it.
pub(crate) fn new_value(
    name: &str,
    value: SecretValue,
    ttl: Option<Ttl>,
    profiles: Option<Vec<String>>,
) -> NewValue {
    let (kind, fingerprint) = match detect::detector().classify_var(name, value.expose()) {
        Some(m) => {
            let info = m.info();
            (Some(info.kind), info.fingerprint)
        }
        // Unrecognised: fingerprint only what a short hash cannot help brute-force.
        None => {
            let b = value.expose();
            let strong = b.len() >= 16 && entropy::shannon(b) >= 3.0;
            (None, strong.then(|| value.fingerprint()))
        }
    };
    NewValue {
        name: name.to_string(),
        value,
        kind,
        fingerprint,
        ttl,
        profiles,
    }
}

/// "anthropic-api-key, fingerprint 0123456789ab".
fn describe(nv: &NewValue) -> String {
    let kind = nv.kind.as_deref().unwrap_or("unrecognised kind");
    match &nv.fingerprint {
        Some(fp) => format!("{kind}, fingerprint {fp}"),
        None => kind.to_string(),
    }
}

/// Entry names become environment variable names (`run --inject NAME`) and appear in
/// messages, so they are kept plain. An invalid name is not echoed: it may be a pasted value.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !ok {
        bail!(
            "invalid secret name: use letters, digits, '_', '.' and '-' (at most 128), like \
             ANTHROPIC_API_KEY"
        );
    }
    Ok(())
}

/// `keyfence secret set sk-ant-...`: a value typed where the name goes is already in the shell
/// history and the process list; at least do not store it under itself, or echo it.
fn refuse_secret_like_name(name: &str) -> Result<()> {
    if !detect::detector()
        .scan(name.as_bytes(), detect::Mode::Text)
        .is_empty()
    {
        bail!(
            "the secret name looks like a secret value; refusing it\n\
             hint: give a name like ANTHROPIC_API_KEY; the value is read from a prompt, stdin or \
             --from-env, never from the command line (if this was a real key, it is now in your \
             shell history: rotate it)"
        );
    }
    Ok(())
}

/// `keyfence secret profiles NAME [--add P]... [--remove P]... [--open|--only-listed]`.
fn profiles(
    g: &GlobalArgs,
    name: &str,
    add: &[String],
    remove: &[String],
    open: Option<bool>,
) -> Result<Exit> {
    for p in add.iter().chain(remove) {
        check_profile(p)?;
    }
    let paths = Paths::from_env()?;
    let changed = Store::update(&paths, &Interactive, |e| {
        e.change_profiles(name, add, remove, open)
    })?;
    let Some(list) = changed else {
        bail!(
            "no secret named '{name}' in {}\nhint: `keyfence secret list` shows the names stored",
            paths.vault.display()
        );
    };
    if !g.quiet {
        eprintln!("keyfence: {name}: {}", describe_profiles(&list));
    }
    Ok(Exit::Clean)
}

/// Who may receive an entry, in words.
fn describe_profiles(list: &[String]) -> String {
    let listed: Vec<&str> = list
        .iter()
        .map(String::as_str)
        .filter(|p| *p != store::ANY_PROFILE)
        .collect();
    let open = list.is_empty() || list.len() != listed.len();
    match (open, listed.is_empty()) {
        (true, true) => "every profile of yours may receive it".into(),
        (true, false) => format!(
            "every profile of yours may receive it, and it is listed for {}",
            listed.join(", ")
        ),
        (false, _) => format!("only {} may receive it", listed.join(", ")),
    }
}

fn check_profile(p: &str) -> Result<()> {
    if p.is_empty()
        || !p
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        bail!("invalid profile name '{p}': use letters, digits, '_', '.' and '-'");
    }
    Ok(())
}

fn value_from_env(var: &str) -> Result<SecretValue> {
    match std::env::var_os(var) {
        None => bail!("the environment variable {var} is not set"),
        Some(v) if v.is_empty() => {
            bail!("the environment variable {var} is empty; refusing to store an empty value")
        }
        Some(v) => Ok(SecretValue::new(v.as_bytes())),
    }
}

/// The value from a no-echo prompt when stdin is a terminal, else all of stdin without one
/// trailing newline.
fn read_value(name: &str) -> Result<SecretValue> {
    let stdin = std::io::stdin();
    let mut value = if stdin.is_terminal() {
        let v = rpassword::prompt_password(format!("value for {name} (input hidden): "))
            .context("reading the value from the terminal")?;
        Zeroizing::new(v.into_bytes())
    } else {
        // Room for any ordinary key up front, so the buffer does not leave copies as it grows.
        let mut buf = Zeroizing::new(Vec::with_capacity(16 * 1024));
        stdin
            .lock()
            .take(MAX_VALUE + 1)
            .read_to_end(&mut buf)
            .context("reading the value from stdin")?;
        if buf.len() as u64 > MAX_VALUE {
            bail!("the value on stdin is larger than 1 MiB; refusing it");
        }
        store::key::strip_newline(&mut buf);
        buf
    };
    if value.is_empty() {
        bail!(
            "refusing to store an empty value for {name}\n\
             hint: pipe the value in (`... | keyfence secret set {name}`), or use --from-env VAR"
        );
    }
    Ok(SecretValue::new(std::mem::take(&mut *value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["ANTHROPIC_API_KEY", "openai.prod", "gh-token", "A"] {
            assert!(check_name(ok).is_ok(), "{ok}");
            assert!(refuse_secret_like_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "A=B", "A B", "a/b", &"x".repeat(129)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
