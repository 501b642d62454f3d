//! `keyfence fix`'s engine: keys written into shell start-up files, Claude Code settings `env`
//! blocks and a project's `.env` files, and the edits that take them out once they are safely in
//! the store.
//!
//! It finds the keys (with the audit's own file list, shell parser and detector), works out
//! which lines or entries can be removed without changing anything else, renders the edits as
//! redacted unified diffs, picks store names, and writes edited files safely (a backup, the
//! atomic replace of `crate::fsio`, refusal when a file changed under us). It never prints or
//! prompts — `command/fix.rs` decides what to ask and show — and it never puts a value in an
//! error or a diff.
//!
//! By job: `scan` reads the places and finds the keys, one file per format says how a key is
//! taken out of it (`shell`, `settings`, `dotenv`), this file holds the plan (the found keys,
//! the edit of a file, the store names), `diff` shows an edit without its values, `write`
//! writes it, and `backups` finds the backups whose change is checked.
//!
//! A shell line is removed only when it holds nothing but the assignment (`export X=...`,
//! `X=...`, `declare -x X=...`, fish `set -gx X ...`, csh `setenv X ...`), optionally followed
//! by `export X`; a line that does more is left alone and reported. A removal that would leave a
//! POSIX `then`/`do`/`{`/`(` body empty (a syntax error) leaves a `:` in its place.

mod backups;
mod diff;
mod dotenv;
mod scan;
mod settings;
mod shell;
mod write;

pub use backups::{CheckedBackup, checked_backups};
pub use diff::{diff, text_diff};
pub use scan::{loose_credential_files, scan};
pub use write::write;

use crate::finding::SecretInfo;
use crate::secret::SecretValue;
use crate::store::{Entries, NewValue, SetOutcome, Time};
use crate::syntax::shell::Dialect;
use serde_json::Value;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum FixError {
    #[error(
        "{shown}: invalid JSON at line {line}, column {column} ({reason})\n\
         hint: fix the file (Claude Code cannot read it either) and run `keyfence fix` again; \
         nothing was changed"
    )]
    InvalidJson {
        shown: String,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("{shown}: the top level is not a JSON object; nothing was changed")]
    NotAnObject { shown: String },
    #[error(
        "{shown} changed since keyfence read it, so it was not edited\nhint: run `keyfence fix` again"
    )]
    Changed { shown: String },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FixError {
    let path = path.to_path_buf();
    move |source| FixError::Io {
        action,
        path,
        source,
    }
}

/// Where to look.
#[derive(Debug, Clone)]
pub struct Places {
    pub home: PathBuf,
    /// The directory whose `.claude/settings*.json` are the project's (the working directory).
    pub project: PathBuf,
}

/// How a file is written, and so how a key is taken out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Shell(Dialect),
    /// A Claude Code `settings.json` / `settings.local.json`.
    ClaudeSettings,
    /// A project's `.env` / `.env.*`: the value gives way to a `store:NAME` reference.
    Dotenv,
}

/// How one occurrence of a key can be taken out of its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Delete this line (with an `export NAME` on the same line, if any).
    Line,
    /// Delete the entry from the `env` object.
    Entry,
    /// Keep the line, with `store:NAME` (the entry holding the key) in place of the value: the
    /// file still says what the program needs and where it is, and audit reads a reference as
    /// no key. dotenv libraries keep a variable that is already set, so `keyfence run --inject
    /// NAME` gives the program the key itself.
    Reference,
    /// Not automatically: why, and what to do by hand.
    Manual(String),
}

/// One key written in one place.
#[derive(Debug)]
pub struct Found {
    pub name: String,
    pub value: SecretValue,
    pub info: SecretInfo,
    /// 1-based line (for settings: the line of the entry's key).
    pub line: u32,
    pub removal: Removal,
    /// Things the user should know when this one is removed (never a value).
    pub notes: Vec<String>,
    /// Shell: indexes of the commands on the line, in the file's command list.
    cmds: Vec<usize>,
}

/// A file that holds at least one key.
#[derive(Debug)]
pub struct FileScan {
    /// The path as found (a start-up file may be a symlink into a dotfiles repository).
    pub path: PathBuf,
    /// What gets edited: the symlink's target, so the link itself stays.
    pub real: PathBuf,
    /// `~/.bashrc`, or the path relative to the project.
    pub shown: String,
    pub format: Format,
    pub found: Vec<Found>,
    original: Zeroizing<Vec<u8>>,
    /// Shell: lines that only say `export NAME` (name, line, command index).
    export_lines: Vec<(String, u32, usize)>,
    /// Shell: how many assignments of each name the file makes, secret or not.
    assignments: HashMap<String, usize>,
    json: Option<Value>,
}

/// Every file with a key, and what could not be read.
#[derive(Debug, Default)]
pub struct Scan {
    pub files: Vec<FileScan>,
    pub warnings: Vec<String>,
}

/// One key (a name and a value), wherever it is written.
#[derive(Debug)]
pub struct Key {
    pub name: String,
    pub value: SecretValue,
    pub info: SecretInfo,
    /// `(file index, found index)` of each place.
    pub places: Vec<(usize, usize)>,
}

/// Byte ranges of each line: (start, end without the line break, end with it).
fn line_table(text: &[u8]) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let nl = memchr::memchr(b'\n', &text[start..]).map_or(text.len(), |i| start + i);
        let end = if nl > start && text[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        let next = (nl + 1).min(text.len());
        out.push((start, end, next));
        start = next;
    }
    out
}

/// Line `n` (1-based) of `text` without its line break.
fn line_bytes<'a>(text: &'a [u8], lines: &[(usize, usize, usize)], n: u32) -> Option<&'a [u8]> {
    let &(s, e, _) = lines.get(usize::try_from(n).ok()?.checked_sub(1)?)?;
    text.get(s..e)
}

/// The keys of a scan, one per (name, value), in the order first seen.
pub fn keys(scan: &Scan) -> Vec<Key> {
    let mut out: Vec<Key> = Vec::new();
    for (fi, file) in scan.files.iter().enumerate() {
        for (ki, f) in file.found.iter().enumerate() {
            match out
                .iter_mut()
                .find(|k| k.name == f.name && k.value == f.value)
            {
                Some(k) => k.places.push((fi, ki)),
                None => out.push(Key {
                    name: f.name.clone(),
                    value: f.value.clone(),
                    info: f.info.clone(),
                    places: vec![(fi, ki)],
                }),
            }
        }
    }
    out
}

/// One edited file.
#[derive(Debug)]
pub struct Edit {
    pub new: Zeroizing<Vec<u8>>,
    /// What went, by found index, with the lines it took (an assignment and its `export`).
    pub removed: Vec<Removed>,
    /// How many removals left a `:` because they emptied an `if`/`while`/function body.
    pub placeholders: usize,
    /// `(name, line)` where the file still uses a variable it no longer sets.
    pub still_used: Vec<(String, u32)>,
}

impl Edit {
    /// An edit of a file whose format has no shell control flow: nothing left in place of a
    /// removal, nothing still used (a dotenv file, a JSON settings file).
    pub fn plain(new: Zeroizing<Vec<u8>>, removed: Vec<Removed>) -> Edit {
        Edit {
            new,
            removed,
            placeholders: 0,
            still_used: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub found: usize,
    pub lines: Vec<u32>,
}

/// The edit that removes the chosen found entries (indexes into `file.found`) that can be
/// removed; `None` if there is nothing to change. `store_name` names the store entry that holds
/// a found entry's key, for the references a `.env` keeps.
pub fn plan_edit(
    file: &FileScan,
    chosen: &[usize],
    store_name: &dyn Fn(usize) -> String,
) -> Option<Edit> {
    match file.format {
        Format::Shell(d) => shell::shell_edit(file, d, chosen),
        Format::ClaudeSettings => settings::settings_edit(file, chosen),
        Format::Dotenv => dotenv::dotenv_edit(file, chosen, store_name),
    }
}

/// Stores each value under its name, or under `NAME_2`, `NAME_3`, ... when the name already
/// holds a different value; a name that already holds the same value is reused. Returns each
/// value's store name and what happened, in order.
pub fn store_into(
    entries: &mut Entries,
    new: Vec<NewValue>,
    now: Time,
) -> Vec<(String, SetOutcome)> {
    let mut out = Vec::with_capacity(new.len());
    for mut nv in new {
        let base = nv.name.clone();
        let mut n = 1u32;
        let name = loop {
            let candidate = if n == 1 {
                base.clone()
            } else {
                format!("{base}_{n}")
            };
            match entries.get(&candidate) {
                Some(e) if e.value != nv.value => n += 1,
                _ => break candidate,
            }
        };
        nv.name = name.clone();
        let outcome = entries.set(nv, now);
        out.push((name, outcome));
    }
    out
}

/// What the tests of each part share: a fake key and a scanned shell file.
#[cfg(test)]
mod testing {
    use super::*;

    /// A fake key, put together at run time: written out whole here, it made `keyfence audit`
    /// of this checkout report a critical key (tests/it/cli.rs checks the checkout audits clean).
    pub struct FakeKey;
    impl std::fmt::Display for FakeKey {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let body = "Hq3vT9xLm2Zr8WbK5nYp4Jc7".repeat(4);
            write!(f, "sk-ant-api03-{}AA", &body[..93])
        }
    }
    pub const KEY: FakeKey = FakeKey;

    pub fn shell_file(text: &str, dialect: Dialect) -> FileScan {
        shell::scan_shell(
            PathBuf::from("/h/.rc"),
            PathBuf::from("/h/.rc"),
            "~/.rc".into(),
            Zeroizing::new(text.as_bytes().to_vec()),
            dialect,
        )
        .expect("a key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::testing::{KEY, shell_file};

    fn nv(name: &str, value: &str) -> NewValue {
        NewValue {
            name: name.into(),
            value: SecretValue::new(value),
            kind: None,
            fingerprint: None,
            ttl: None,
            profiles: None,
        }
    }

    #[test]
    fn store_names_never_overwrite_a_different_value() {
        let now = Time::now();
        let mut e = Entries::default();
        store_into(&mut e, vec![nv("K", "one")], now);
        let got = store_into(
            &mut e,
            vec![
                nv("K", "two"),
                nv("K", "one"),
                nv("K", "three"),
                nv("K", "two"),
            ],
            now,
        );
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["K_2", "K", "K_3", "K_2"]);
        assert_eq!(got[0].1, SetOutcome::Created);
        assert_eq!(got[1].1, SetOutcome::Unchanged);
        assert_eq!(e.get("K").unwrap().value, SecretValue::new("one"));
        assert_eq!(e.get("K_3").unwrap().value, SecretValue::new("three"));
    }

    #[test]
    fn line_table_keeps_breaks_apart() {
        let text = b"a\r\n\nbc";
        let lines = line_table(text);
        assert_eq!(lines, [(0, 1, 3), (3, 3, 4), (4, 6, 6)]);
        assert_eq!(line_bytes(text, &lines, 1), Some(&b"a"[..]));
        assert_eq!(line_bytes(text, &lines, 3), Some(&b"bc"[..]));
        assert_eq!(line_bytes(text, &lines, 0), None);
        assert_eq!(line_bytes(text, &lines, 4), None);
    }

    #[test]
    fn keys_are_one_per_name_and_value() {
        let other = KEY.to_string().replace("Hq3v", "Zq3v");
        let scan = Scan {
            files: vec![
                shell_file(
                    &format!("export ANTHROPIC_API_KEY={KEY}\nexport CLAUDE_KEY={KEY}\n"),
                    Dialect::Posix,
                ),
                shell_file(
                    &format!("export ANTHROPIC_API_KEY={other}\nexport ANTHROPIC_API_KEY={KEY}\n"),
                    Dialect::Posix,
                ),
            ],
            warnings: Vec::new(),
        };
        let keys = keys(&scan);
        let got: Vec<(&str, &[(usize, usize)])> = keys
            .iter()
            .map(|k| (k.name.as_str(), k.places.as_slice()))
            .collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], ("ANTHROPIC_API_KEY", &[(0, 0), (1, 1)][..]));
        assert_eq!(got[1], ("CLAUDE_KEY", &[(0, 1)][..]));
        assert_eq!(got[2], ("ANTHROPIC_API_KEY", &[(1, 0)][..]));
    }
}
