//! `keyfence fix [--dry-run] [--yes]`: move keys written in shell start-up files, Claude Code
//! settings and a project's `.env` files into the store, then take them out of those files;
//! `chmod 600` the credential files others can read; offer to delete the backups whose change
//! is checked. The engine (what to fix, the edits, the diffs, the writes) is `crate::fix`; this
//! file asks, prints and decides the exit status.
//!
//! Order matters: find everything (invalid settings JSON stops here), ask, store, read every
//! value back from a freshly opened vault, and only then edit files. A file is edited only if it
//! still holds the bytes that were read. Exit status: 0 when every key chosen is stored and gone
//! from its files, 1 when some place is left to edit by hand (or changed while we worked), 2 on
//! errors.

use super::{Exit, home_dir};
use crate::cli::{FixArgs, GlobalArgs};
use crate::fix::{self, FileScan, Key, Places, Removal, Scan};
use crate::store::{
    Interactive, PassphraseError, PassphraseSource, Paths, SetOutcome, Store, StoreError, Time,
};
use anyhow::{Context as _, Result, bail};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// `chmod 600` for the credential files others can read (audit's
/// `credential-file-permissions`): said with `--dry-run`, done with `--yes` or when the user
/// agrees. True when some are left as they were.
fn tighten_credential_files(home: &Path, args: &FixArgs) -> Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    let loose = fix::loose_credential_files(home);
    if loose.is_empty() {
        return Ok(false);
    }
    for (p, mode) in &loose {
        eprintln!(
            "keyfence: {} is mode {mode:04o}: others can read the credentials in it",
            p.display()
        );
    }
    if args.dry_run {
        eprintln!("keyfence: would chmod 600 each (dry run: nothing changed)");
        return Ok(false);
    }
    let agreed = args.yes || {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            eprintln!("keyfence: left as they are (no terminal to ask; --yes to chmod 600 them)");
            return Ok(true);
        }
        eprint!("chmod 600 them? [y/N] ");
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        matches!(line.trim(), "y" | "Y" | "yes")
    };
    if !agreed {
        return Ok(true);
    }
    for (p, mode) in &loose {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 600 {}", p.display()))?;
        eprintln!("keyfence: chmod 600 {} (was {mode:04o})", p.display());
    }
    Ok(false)
}

/// The backups an earlier `fix` or `setup claude` left whose change is checked
/// (`fix::checked_backups`: each key in them is in the store and gone from the file) hold
/// nothing but keys in clear: said with `--dry-run`, deleted with `--yes` or when the user
/// agrees. The backups of this run (`fresh`) stay until the user has had a look at the edits.
/// True when some are left.
fn delete_checked_backups(
    places: &Places,
    args: &FixArgs,
    paths: &Paths,
    pw: &AskOnce,
    fresh: &[PathBuf],
) -> Result<bool> {
    let dirs =
        crate::audit::credfile::backup_dirs(&places.home, std::slice::from_ref(&places.project));
    let any = dirs.iter().any(|d| {
        std::fs::read_dir(d).is_ok_and(|mut entries| {
            entries
                .any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().contains(".keyfence-bak")))
        })
    });
    if !any {
        return Ok(false);
    }
    let store = match Store::open(paths.clone(), pw) {
        Ok(s) => s,
        Err(StoreError::NoVault { .. }) => return Ok(false),
        Err(e) => {
            eprintln!("keyfence: warning: cannot check keyfence's backups against the store: {e}");
            return Ok(false);
        }
    };
    let stored: Vec<String> = store
        .entries()
        .iter()
        .map(|e| e.value.fingerprint())
        .collect();
    // As `fix` shows files: the project's relative to it, the others from `~`.
    let shown = |p: &Path| match p.strip_prefix(&places.project) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => shown_backup(&places.home, p),
    };
    let mut checked = fix::checked_backups(&dirs, &stored);
    checked.retain(|b| !fresh.contains(&b.path));
    if checked.is_empty() {
        return Ok(false);
    }
    for b in &checked {
        eprintln!(
            "keyfence: {} holds {} key{} in clear, which the store holds and {} no longer does",
            shown(&b.path),
            b.keys,
            if b.keys == 1 { "" } else { "s" },
            shown(&b.original)
        );
    }
    if args.dry_run {
        eprintln!(
            "keyfence: would delete {} (dry run: nothing changed)",
            if checked.len() == 1 { "it" } else { "them" }
        );
        return Ok(false);
    }
    let agreed = args.yes || {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            eprintln!("keyfence: left as they are (no terminal to ask; --yes to delete them)");
            return Ok(true);
        }
        eprint!(
            "delete {}? [y/N] ",
            if checked.len() == 1 { "it" } else { "them" }
        );
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        matches!(line.trim(), "y" | "Y" | "yes")
    };
    if !agreed {
        return Ok(true);
    }
    for b in &checked {
        std::fs::remove_file(&b.path).with_context(|| format!("deleting {}", b.path.display()))?;
        eprintln!("keyfence: deleted {}", shown(&b.path));
    }
    Ok(false)
}

pub fn run(g: &GlobalArgs, args: &FixArgs) -> Result<Exit> {
    let places = Places {
        home: home_dir(&args.home)?,
        project: std::env::current_dir().context("finding the working directory")?,
    };
    let scan = fix::scan(&places)?;
    for w in &scan.warnings {
        eprintln!("keyfence: warning: {w}");
    }
    let loose_left = tighten_credential_files(&places.home, args)?;
    let keys = fix::keys(&scan);
    let paths = Paths::from_env()?;
    let pw = AskOnce::default();
    if keys.is_empty() {
        let backups_left = delete_checked_backups(&places, args, &paths, &pw, &[])?;
        if loose_left || backups_left {
            return Ok(Exit::Findings);
        }
        if !g.quiet {
            eprintln!(
                "keyfence: no keys in the shell start-up files of {}, in Claude Code settings or \
                 in the project's .env files; nothing to fix",
                places.home.display()
            );
        }
        return Ok(Exit::Clean);
    }
    if args.dry_run {
        let exit = dry_run(g, &scan, &keys, &paths, &pw)?;
        delete_checked_backups(&places, args, &paths, &pw, &[])?;
        return Ok(exit);
    }
    let chosen: Vec<bool> = if args.yes {
        vec![true; keys.len()]
    } else {
        ask(&scan, &keys)?
    };
    let selected: Vec<(usize, &Key)> = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| chosen[*i])
        .collect();
    if selected.is_empty() {
        if !g.quiet {
            eprintln!("keyfence: nothing chosen; nothing changed");
        }
        return Ok(Exit::Clean);
    }

    // 1. Store every chosen key in one write.
    let new = selected
        .iter()
        .map(|(_, k)| super::secret::new_value(&k.name, k.value.clone(), None, None))
        .collect();
    let stored = Store::update(&paths, &pw, |entries| {
        Ok(fix::store_into(entries, new, Time::now()))
    })?;

    // 2. Read every value back from a freshly opened vault before any file is touched.
    let back =
        Store::open(paths.clone(), &pw).context("reading the store back; no file was edited")?;
    for ((_, k), (name, _)) in selected.iter().zip(&stored) {
        let ok = back.get(name).is_ok_and(|e| e.value == k.value);
        if !ok {
            bail!(
                "{name} did not read back from {} as the value just stored; no file was edited\n\
                 hint: check the vault with `keyfence secret list`",
                paths.vault.display()
            );
        }
    }
    let store_name: BTreeMap<usize, &str> = selected
        .iter()
        .zip(&stored)
        .map(|((i, _), (name, _))| (*i, name.as_str()))
        .collect();

    // 3. Edit the files.
    let mut report = Report::default();
    for (fi, file) in scan.files.iter().enumerate() {
        let picked = picked_in(fi, file, &keys, &chosen);
        for &ki in &picked {
            if let Removal::Manual(why) = &file.found[ki].removal {
                report.manual.push(format!(
                    "{}:{}  {}: {why}",
                    file.shown, file.found[ki].line, file.found[ki].name
                ));
            }
        }
        let name_of = |ki: usize| {
            keys.iter()
                .position(|k| k.places.contains(&(fi, ki)))
                .and_then(|i| store_name.get(&i))
                .map_or_else(|| file.found[ki].name.clone(), |n| n.to_string())
        };
        let Some(edit) = fix::plan_edit(file, &picked, &name_of) else {
            continue;
        };
        match fix::write(file, &edit.new) {
            Ok(backup) => {
                for r in &edit.removed {
                    let f = &file.found[r.found];
                    report.removed.push(format!(
                        "{}:{}  {}{}",
                        file.shown,
                        join_lines(&r.lines),
                        f.name,
                        match file.format {
                            fix::Format::ClaudeSettings => " (env entry)".to_string(),
                            fix::Format::Dotenv =>
                                format!(" (now store:{}, a reference)", name_of(r.found)),
                            fix::Format::Shell(_) => String::new(),
                        }
                    ));
                    report.notes.extend(f.notes.iter().cloned());
                }
                if edit.placeholders > 0 {
                    report.notes.push(format!(
                        "{}: a removed line was the only command of its block, so a `:` (do \
                         nothing) stands in its place",
                        file.shown
                    ));
                }
                for (name, line) in &edit.still_used {
                    report.notes.push(format!(
                        "{}:{line} still uses ${name}, which the file no longer sets",
                        file.shown
                    ));
                }
                report
                    .backups
                    .push(match backup.strip_prefix(&places.project) {
                        Ok(rel) => rel.display().to_string(),
                        Err(_) => shown_backup(&places.home, &backup),
                    });
                report.written.push(backup);
            }
            Err(e) => report.failed.push(format!("{e:#}")),
        }
    }
    if g.format == crate::cli::Format::Json {
        print_json(&scan, &selected, &stored, &report)?;
    } else if !g.quiet {
        print_done(&paths, &keys, &selected, &stored, &store_name, &report)?;
    }
    if g.quiet && g.format != crate::cli::Format::Json {
        for f in &report.failed {
            eprintln!("keyfence: {f}");
        }
        for m in &report.manual {
            eprintln!("keyfence: left in place: {m}");
        }
    }
    let backups_left = delete_checked_backups(&places, args, &paths, &pw, &report.written)?;
    Ok(
        if report.failed.is_empty() && report.manual.is_empty() && !backups_left {
            Exit::Clean
        } else {
            Exit::Findings
        },
    )
}

#[derive(Default)]
struct Report {
    removed: Vec<String>,
    manual: Vec<String>,
    failed: Vec<String>,
    backups: Vec<String>,
    /// The backups this run wrote, as paths.
    written: Vec<PathBuf>,
    notes: Vec<String>,
}

/// One key for `--format json`: its variable, store name, fingerprint and places, never its
/// value.
fn key_json(scan: &Scan, k: &Key, stored_as: &str) -> serde_json::Value {
    let places: Vec<String> = k
        .places
        .iter()
        .map(|&(fi, ki)| {
            let file = &scan.files[fi];
            format!("{}:{}", file.shown, file.found[ki].line)
        })
        .collect();
    serde_json::json!({
        "variable": k.name,
        "stored_as": stored_as,
        "fingerprint": k.value.fingerprint(),
        "found_in": places,
    })
}

/// `--format json`: what was stored (names and fingerprints, never values) and what changed.
fn print_json(
    scan: &Scan,
    selected: &[(usize, &Key)],
    stored: &[(String, SetOutcome)],
    report: &Report,
) -> Result<()> {
    let keys: Vec<serde_json::Value> = selected
        .iter()
        .zip(stored)
        .map(|((_, k), (name, _))| key_json(scan, k, name))
        .collect();
    let out = serde_json::json!({
        "version": 1,
        "stored": keys,
        "removed": report.removed,
        "left_in_place": report.manual,
        "failed": report.failed,
        "backups": report.backups,
        "notes": report.notes,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Indexes of `file.found` whose key was chosen.
fn picked_in(fi: usize, file: &FileScan, keys: &[Key], chosen: &[bool]) -> Vec<usize> {
    (0..file.found.len())
        .filter(|&ki| {
            keys.iter()
                .zip(chosen)
                .any(|(k, &c)| c && k.places.contains(&(fi, ki)))
        })
        .collect()
}

fn join_lines(lines: &[u32]) -> String {
    lines
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn shown_backup(home: &Path, p: &Path) -> String {
    crate::audit::display_path(home, p)
}

/// `~/.bashrc:3, ~/.claude/settings.json:5`
fn where_(scan: &Scan, k: &Key) -> String {
    k.places
        .iter()
        .map(|&(fi, ki)| {
            let f = &scan.files[fi];
            format!("{}:{}", f.shown, f.found[ki].line)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(k: &Key) -> String {
    format!("{} ({}, {})", k.name, k.info.kind, k.info.preview)
}

/// Asks about each key on the terminal; refuses without one.
fn ask(scan: &Scan, keys: &[Key]) -> Result<Vec<bool>> {
    let tty = if std::io::stdin().is_terminal() {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .ok()
    } else {
        None
    };
    let Some(tty) = tty else {
        let list: String = keys
            .iter()
            .map(|k| format!("\n  {} in {}", describe(k), where_(scan, k)))
            .collect();
        bail!(
            "no terminal to ask whether to move these keys:{list}\n\
             hint: pass --yes to move them all, or --dry-run to see the edits first"
        );
    };
    let mut out = tty.try_clone().context("opening the terminal")?;
    let mut input = BufReader::new(tty);
    let mut answers = Vec::with_capacity(keys.len());
    for k in keys {
        let manual = k
            .places
            .iter()
            .any(|&(fi, ki)| matches!(scan.files[fi].found[ki].removal, Removal::Manual(_)));
        write!(
            out,
            "{} in {}\n  store it and remove it from {}? [y/N] ",
            describe(k),
            where_(scan, k),
            if manual {
                "there (some lines must be edited by hand)"
            } else {
                "there"
            }
        )?;
        out.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            bail!("no answer on the terminal; nothing changed");
        }
        answers.push(matches!(line.trim(), "y" | "Y" | "yes" | "Yes" | "YES"));
    }
    Ok(answers)
}

fn dry_run(g: &GlobalArgs, scan: &Scan, keys: &[Key], paths: &Paths, pw: &AskOnce) -> Result<Exit> {
    // The names the keys would get, from a copy of the current entries: nothing is written.
    let mut entries = match Store::open(paths.clone(), pw) {
        Ok(s) => s.entries().clone(),
        Err(StoreError::NoVault { .. }) => Default::default(),
        Err(e) => {
            eprintln!(
                "keyfence: warning: cannot read the store ({e}); the names below assume it is empty"
            );
            Default::default()
        }
    };
    let new = keys
        .iter()
        .map(|k| super::secret::new_value(&k.name, k.value.clone(), None, None))
        .collect();
    let names = fix::store_into(&mut entries, new, Time::now());
    let edits: Vec<Option<fix::Edit>> = scan
        .files
        .iter()
        .enumerate()
        .map(|(fi, file)| {
            let name_of = |ki: usize| {
                keys.iter()
                    .zip(&names)
                    .find(|(k, _)| k.places.contains(&(fi, ki)))
                    .map_or_else(|| file.found[ki].name.clone(), |(_, (n, _))| n.clone())
            };
            fix::plan_edit(file, &(0..file.found.len()).collect::<Vec<_>>(), &name_of)
        })
        .collect();
    if g.format == crate::cli::Format::Json {
        let would: Vec<serde_json::Value> = keys
            .iter()
            .zip(&names)
            .map(|(k, (name, _))| key_json(scan, k, name))
            .collect();
        let out = serde_json::json!({"version": 1, "dry_run": true, "would_store": would});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Exit::Clean);
    }
    let mut out = std::io::stdout().lock();
    if !g.quiet {
        writeln!(out, "dry run: nothing is changed, the store included\n")?;
        for (k, (name, outcome)) in keys.iter().zip(&names) {
            writeln!(
                out,
                "{}: would be {}",
                describe(k),
                stored_as(&k.name, name, *outcome)
            )?;
            for &(fi, ki) in &k.places {
                let file = &scan.files[fi];
                let f = &file.found[ki];
                let lines = edits[fi]
                    .as_ref()
                    .and_then(|e| e.removed.iter().find(|r| r.found == ki))
                    .map_or_else(|| f.line.to_string(), |r| join_lines(&r.lines));
                match &f.removal {
                    Removal::Manual(why) => {
                        writeln!(out, "  {}:{}  left in place: {why}", file.shown, f.line)?
                    }
                    Removal::Reference => writeln!(
                        out,
                        "  {}:{lines}  would become store:{name}, a reference",
                        file.shown
                    )?,
                    _ => writeln!(out, "  {}:{lines}  would be removed", file.shown)?,
                }
            }
        }
        writeln!(out)?;
    }
    for (file, edit) in scan.files.iter().zip(&edits) {
        if let Some(edit) = edit {
            write!(out, "{}", fix::diff(file, &edit.new))?;
        }
    }
    out.flush()?;
    Ok(Exit::Clean)
}

/// "stored as NAME", "stored as NAME_2 (NAME holds a different value)", ...
fn stored_as(wanted: &str, name: &str, outcome: SetOutcome) -> String {
    match outcome {
        SetOutcome::Unchanged => format!("kept as {name}, which already holds this value"),
        _ if name != wanted => {
            format!("stored as {name} ({wanted} already holds a different value)")
        }
        _ => format!("stored as {name}"),
    }
}

fn print_done(
    paths: &Paths,
    keys: &[Key],
    selected: &[(usize, &Key)],
    stored: &[(String, SetOutcome)],
    store_name: &BTreeMap<usize, &str>,
    report: &Report,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} key{} in the store, {} (each read back and checked):",
        selected.len(),
        if selected.len() == 1 { "" } else { "s" },
        paths.vault.display()
    )?;
    for ((_, k), (name, outcome)) in selected.iter().zip(stored) {
        writeln!(
            out,
            "  {}: {}",
            describe(k),
            stored_as(&k.name, name, *outcome)
        )?;
    }
    let section = |out: &mut std::io::StdoutLock, title: &str, items: &[String]| {
        if items.is_empty() {
            return Ok::<(), std::io::Error>(());
        }
        writeln!(out, "{title}")?;
        for i in items {
            writeln!(out, "  {}", i.replace('\n', "\n    "))?;
        }
        Ok(())
    };
    section(&mut out, "removed:", &report.removed)?;
    section(&mut out, "left in place (edit by hand):", &report.manual)?;
    section(&mut out, "not edited:", &report.failed)?;
    section(
        &mut out,
        "backups of the edited files (they hold the keys in clear; once you have checked the \
         edits, `keyfence fix` offers to delete them):",
        &report.backups,
    )?;
    section(&mut out, "notes:", &report.notes)?;
    writeln!(out, "next steps:")?;
    writeln!(
        out,
        "  - open a new shell: shells and programs already running still have the keys in their \
         environment"
    )?;
    writeln!(out, "  - give each key only to the command that needs it:")?;
    for (i, name) in store_name {
        let k = &keys[*i];
        let inject = if k.name == *name {
            name.to_string()
        } else {
            format!("{}={name}", k.name)
        };
        writeln!(out, "      keyfence run --inject {inject} -- COMMAND")?;
    }
    if let Some(name) = store_name
        .iter()
        .find(|(i, _)| keys[**i].name == "ANTHROPIC_API_KEY")
        .map(|(_, n)| *n)
    {
        if name == "ANTHROPIC_API_KEY" {
            writeln!(
                out,
                "  - Claude Code: `keyfence setup claude` makes your shell start claude under \
                 keyfence's agent profile, which gives claude alone the stored key (until then \
                 it has no API key)"
            )?;
        } else {
            writeln!(
                out,
                "  - Claude Code: start it as `keyfence run --profile agent --inject \
                 ANTHROPIC_API_KEY={name} -- claude` (until then it has no API key)"
            )?;
        }
    }
    writeln!(
        out,
        "  - rotate these keys if those files were ever shared, synced, backed up or committed \
         (a dotfiles repository, cloud sync): the old values are still there"
    )?;
    out.flush()?;
    Ok(())
}

/// The passphrase asked at most once, for the write and the read-back.
#[derive(Default)]
struct AskOnce {
    cached: RefCell<Option<Zeroizing<Vec<u8>>>>,
}

impl PassphraseSource for AskOnce {
    fn passphrase(&self, vault: &Path, new: bool) -> Result<Zeroizing<Vec<u8>>, PassphraseError> {
        if let Some(p) = self.cached.borrow().as_ref() {
            return Ok(p.clone());
        }
        let p = Interactive.passphrase(vault, new)?;
        *self.cached.borrow_mut() = Some(p.clone());
        Ok(p)
    }
}
