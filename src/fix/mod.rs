//! `keyfence fix`: keys written into shell start-up files and Claude Code settings `env` blocks,
//! and the edits that take them out once they are safely in the store.
//!
//! This module finds the keys (with the audit's own file list, shell parser and detector), works
//! out which lines or JSON entries can be removed without changing anything else, renders the
//! edits as redacted unified diffs, picks store names, and writes edited files safely (backup,
//! temp file + rename, refusal when a file changed under us). It never prints or prompts — the
//! command decides what to ask and show — and it never puts a value in an error or a diff.
//!
//! A shell line is removed only when it holds nothing but the assignment (`export X=...`,
//! `X=...`, `declare -x X=...`, fish `set -gx X ...`, csh `setenv X ...`), optionally followed
//! by `export X`; a line that does more is left alone and reported. A removal that would leave a
//! POSIX `then`/`do`/`{`/`(` body empty (a syntax error) leaves a `:` in its place.

use crate::audit::{self, Context, Settings};
use crate::detect::{self, Mode};
use crate::finding::SecretInfo;
use crate::secret::SecretValue;
use crate::store::{Entries, NewValue, SetOutcome, Time};
use crate::syntax;
use crate::syntax::shell::{Command, Dialect, Sep, Word};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Start-up files larger than this are not shell configuration anyone edits by hand.
const MAX_FILE: u64 = 4 * 1024 * 1024;

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

/// The credential files (those `audit`'s credfile source reads) that others can read: what
/// audit's `credential-file-permissions` asks to `chmod 600`, with their modes.
pub fn loose_credential_files(home: &Path) -> Vec<(PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    crate::audit::credfile::HOME_FILES
        .iter()
        .map(|rel| home.join(rel))
        .filter_map(|p| {
            let meta = std::fs::metadata(&p).ok()?;
            let mode = meta.permissions().mode() & 0o7777;
            (meta.is_file() && mode & 0o077 != 0).then_some((p, mode))
        })
        .collect()
}

/// Reads the home's shell start-up files, the Claude Code settings files (the user's and the
/// project's) and the project's `.env` files. Settings that are not valid JSON stop everything:
/// such a file may hold a key that cannot be seen, and Claude Code would not read it either.
pub fn scan(places: &Places) -> Result<Scan, FixError> {
    let mut out = Scan::default();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let settings = Settings {
        home: places.home.clone(),
        etc: PathBuf::from("/etc"),
        projects: vec![places.project.clone()],
        sources: Vec::new(),
        env: Vec::new(),
        max_filesize: MAX_FILE,
        threads: 1,
    };
    let ctx = Context::new(&settings);
    // Start-up files, then the files they `source` (one level).
    audit::shell::walk_start_up_files(&ctx, 1, |path, dialect| {
        // System files are the administrator's; fix edits only the user's.
        if !path.starts_with(&places.home) || path.starts_with(&settings.etc) {
            return None;
        }
        let (real, text) = read(&path, &mut seen, &mut out.warnings)?;
        let sources = syntax::shell::parse(&text, dialect).sources;
        let shown = shown_path(places, &path, &real, false);
        if let Some(f) = scan_shell(path, real, shown, text, dialect) {
            out.files.push(f);
        }
        Some(sources)
    });
    let claude = places.home.join(".claude");
    let project = places.project.join(".claude");
    for (path, in_project) in [
        (claude.join("settings.json"), false),
        (claude.join("settings.local.json"), false),
        (project.join("settings.json"), true),
        (project.join("settings.local.json"), true),
    ] {
        let Some((real, text)) = read(&path, &mut seen, &mut out.warnings) else {
            continue;
        };
        let shown = shown_path(places, &path, &real, in_project);
        if let Some(f) = scan_settings(path, real, shown, text)? {
            out.files.push(f);
        }
    }
    for path in project_dotenv_files(&places.project) {
        let Some((real, text)) = read(&path, &mut seen, &mut out.warnings) else {
            continue;
        };
        let shown = shown_path(places, &path, &real, true);
        if let Some(f) = scan_dotenv(path, real, shown, text) {
            out.files.push(f);
        }
    }
    Ok(out)
}

/// The `.env` and `.env.*` files at the top of the project, as the dotenv libraries load them
/// from the working directory. `.envrc` is direnv's shell script (the shell fix applies to it
/// by hand), and keyfence's own backups are not the project's.
fn project_dotenv_files(project: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(project) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                audit::dotenv::is_dotenv_name(n) && n != ".envrc" && !n.contains(".keyfence-bak")
            })
        })
        .collect();
    files.sort();
    files
}

/// The file's real path and bytes; `None` (with a warning when it exists) if it cannot be read,
/// is not a regular file, or was already read under another name.
fn read(
    path: &Path,
    seen: &mut HashSet<PathBuf>,
    warnings: &mut Vec<String>,
) -> Option<(PathBuf, Zeroizing<Vec<u8>>)> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            warnings.push(format!("cannot read {}: {e}", path.display()));
            return None;
        }
    };
    if !meta.is_file() {
        return None;
    }
    if meta.len() > MAX_FILE {
        warnings.push(format!(
            "skipped {}: {} bytes is too large for a start-up or settings file",
            path.display(),
            meta.len()
        ));
        return None;
    }
    let real = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if !seen.insert(real.clone()) {
        return None;
    }
    match fs::read(path) {
        Ok(b) => Some((real, Zeroizing::new(b))),
        Err(e) => {
            warnings.push(format!("cannot read {}: {e}", path.display()));
            None
        }
    }
}

/// `~/.bashrc` for files in the home, `.claude/settings.json` for the project's; a symlink
/// also shows where it points.
fn shown_path(places: &Places, path: &Path, real: &Path, in_project: bool) -> String {
    let shown = match path.strip_prefix(&places.project) {
        Ok(rel) if in_project => rel.display().to_string(),
        _ => audit::display_path(&places.home, path),
    };
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if is_link {
        format!("{shown} (-> {})", audit::display_path(&places.home, real))
    } else {
        shown
    }
}

// ---------------------------------------------------------------------------------------------
// Shell files
// ---------------------------------------------------------------------------------------------

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

fn line_bytes<'a>(text: &'a [u8], lines: &[(usize, usize, usize)], n: u32) -> Option<&'a [u8]> {
    let &(s, e, _) = lines.get(usize::try_from(n).ok()?.checked_sub(1)?)?;
    text.get(s..e)
}

/// Whether a line ends in a backslash that continues it (an odd number of trailing `\`).
fn continues(line: &[u8]) -> bool {
    line.iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}

fn scan_shell(
    path: PathBuf,
    real: PathBuf,
    shown: String,
    text: Zeroizing<Vec<u8>>,
    dialect: Dialect,
) -> Option<FileScan> {
    let detector = detect::detector();
    let parsed = syntax::shell::parse(&text, dialect);
    let mut assignments: HashMap<String, usize> = HashMap::new();
    for a in &parsed.assignments {
        *assignments.entry(a.name.clone()).or_default() += 1;
    }
    let cmds = syntax::shell::split_commands(&text, dialect);
    let lines = line_table(&text);
    let mut found = Vec::new();
    for a in &parsed.assignments {
        let Some(m) = detector.classify_var(&a.name, &a.value) else {
            continue;
        };
        let (removal, cmd_ix, notes) = match shell_removal(&text, &lines, &cmds, dialect, a) {
            Ok((ix, notes)) => (Removal::Line, ix, notes),
            Err(why) => (Removal::Manual(why), Vec::new(), Vec::new()),
        };
        found.push(Found {
            name: a.name.clone(),
            value: SecretValue::new(a.value.clone()),
            info: m.info(),
            line: a.line,
            removal,
            notes,
            cmds: cmd_ix,
        });
    }
    if found.is_empty() {
        return None;
    }
    let mut export_lines = Vec::new();
    if dialect == Dialect::Posix {
        for (i, c) in cmds.iter().enumerate() {
            if let Some(name) = bare_export(&c.words)
                && let Some(line) = c.words.first().map(|w| w.line)
                && standalone(&text, &lines, &cmds, dialect, i, line).is_ok()
            {
                export_lines.push((name, line, i));
            }
        }
    }
    Some(FileScan {
        path,
        real,
        shown,
        format: Format::Shell(dialect),
        found,
        original: text,
        export_lines,
        assignments,
        json: None,
    })
}

/// `export NAME`, `declare -x NAME`, `typeset -x NAME`: the name, when that is all it does.
fn bare_export(words: &[Word]) -> Option<String> {
    let (cmd, args) = words.split_first()?;
    if !cmd.literal {
        return None;
    }
    let mut export = cmd.text == b"export";
    if !export && cmd.text != b"declare" && cmd.text != b"typeset" {
        return None;
    }
    let mut names = Vec::new();
    for w in args {
        let t = w.text.as_slice();
        if w.assign.is_some() || t.contains(&b'=') {
            return None;
        }
        if t.first() == Some(&b'-') {
            if t.iter().skip(1).any(|c| b"fFpn".contains(c)) {
                return None;
            }
            export |= t.contains(&b'x');
        } else if syntax::shell::is_name(t) {
            names.push(String::from_utf8_lossy(t).into_owned());
        } else {
            return None;
        }
    }
    match names.as_slice() {
        [one] if export => Some(one.clone()),
        _ => None,
    }
}

/// Whether the command `ci`, which starts on `line`, is alone on that line and does not take
/// part in a list (`a && b`, `a | b`) with the commands around it. Returns the indexes of the
/// commands on the line (`ci` and any that follow it there).
fn standalone(
    text: &[u8],
    lines: &[(usize, usize, usize)],
    cmds: &[Command],
    dialect: Dialect,
    ci: usize,
    line: u32,
) -> Result<Vec<usize>, String> {
    let spans = "the command spans several lines".to_string();
    let raw = line_bytes(text, lines, line).ok_or_else(|| spans.clone())?;
    if continues(raw) || (line > 1 && line_bytes(text, lines, line - 1).is_some_and(continues)) {
        return Err(spans);
    }
    // Commands starting on this line, in the whole file.
    let mut on_line = vec![ci];
    let mut k = ci + 1;
    while let Some(c) = cmds.get(k) {
        match c.words.first() {
            Some(w) if w.line == line => on_line.push(k),
            Some(_) => break,
            None if c.end == Sep::Newline || c.end == Sep::End => break,
            None => {}
        }
        k += 1;
    }
    for &i in &on_line {
        if cmds[i].words.iter().any(|w| w.line != line) {
            return Err(spans);
        }
        if !matches!(cmds[i].end, Sep::Newline | Sep::Semi | Sep::End) {
            return Err(
                "the line joins commands with &&, ||, | or &, or opens a subshell".to_string(),
            );
        }
    }
    // The previous command must not chain into this one (`a &&` at the end of the line
    // before). Empty commands are blank lines and comments.
    let prev = cmds[..ci]
        .iter()
        .rev()
        .find(|c| !(c.words.is_empty() && c.end == Sep::Newline));
    if let Some(p) = prev {
        if matches!(p.end, Sep::And | Sep::Or | Sep::Pipe) {
            return Err(
                "the line is part of a list with the line before it (&&, || or |)".to_string(),
            );
        }
        if (p.end == Sep::Semi || p.end == Sep::Amp)
            && p.words.last().is_some_and(|w| w.line == line)
        {
            return Err(mixed());
        }
    }
    if dialect == Dialect::Fish {
        // `and`/`or` on the next line test the status this line leaves.
        let next = cmds[k.min(cmds.len())..]
            .iter()
            .find(|c| !c.words.is_empty());
        if next
            .and_then(|c| c.words.first())
            .is_some_and(|w| w.text == b"and" || w.text == b"or")
        {
            return Err("the next line tests this line's status with `and`/`or`".to_string());
        }
    }
    Ok(on_line)
}

fn mixed() -> String {
    "the line does more than set it".to_string()
}

/// Why `words` (one command) is not just an assignment of `name`, if it is not.
fn single_assignment(words: &[Word], dialect: Dialect, name: &str) -> Result<(), String> {
    let is_target = |w: &Word| match w.assignment() {
        Some((n, _)) => n == name,
        None => w.text.starts_with(format!("{name}=").as_bytes()),
    };
    let Some((first, rest)) = words.split_first() else {
        return Err(mixed());
    };
    let ok = match dialect {
        Dialect::Posix => {
            if rest.is_empty() && first.assign.is_some() {
                is_target(first)
            } else if first.literal
                && [&b"export"[..], b"declare", b"typeset", b"readonly"].contains(&&first.text[..])
            {
                let args: Vec<&Word> = rest
                    .iter()
                    .filter(|w| {
                        !(w.assign.is_none() && matches!(w.text.first(), Some(b'-' | b'+')))
                    })
                    .collect();
                args.len() == 1 && is_target(args[0])
            } else {
                false
            }
        }
        Dialect::Fish => {
            if first.literal && first.text == b"set" {
                let args: Vec<&Word> = rest
                    .iter()
                    .skip_while(|w| w.text.first() == Some(&b'-'))
                    .collect();
                args.first().is_some_and(|w| w.text == name.as_bytes())
            } else if first.literal && first.text == b"export" {
                rest.len() == 1 && is_target(&rest[0])
            } else {
                false
            }
        }
        Dialect::Csh => {
            let texts: Vec<&[u8]> = rest.iter().map(|w| w.text.as_slice()).collect();
            if first.literal && first.text == b"setenv" {
                rest.len() == 2 && texts[0] == name.as_bytes()
            } else if first.literal && first.text == b"set" {
                let assign = format!("{name}=");
                match texts.as_slice() {
                    [one] => one.starts_with(assign.as_bytes()),
                    [n, eq, _] => *n == name.as_bytes() && *eq == b"=",
                    [n, v] => {
                        (*n == name.as_bytes() && v.first() == Some(&b'='))
                            || *n == assign.as_bytes()
                    }
                    _ => false,
                }
            } else {
                false
            }
        }
    };
    if ok { Ok(()) } else { Err(mixed()) }
}

/// Works out whether the line of assignment `a` can be deleted as a whole: the commands on it,
/// and notes for the user; or why not.
fn shell_removal(
    text: &[u8],
    lines: &[(usize, usize, usize)],
    cmds: &[Command],
    dialect: Dialect,
    a: &syntax::shell::Assignment,
) -> Result<(Vec<usize>, Vec<String>), String> {
    let by_hand =
        |why: String| format!("{why}; delete the assignment of {} from it by hand", a.name);
    // The command holding the assignment: the word that starts where the name does.
    let target = cmds.iter().enumerate().find_map(|(i, c)| {
        c.words
            .iter()
            .position(|w| w.line == a.line && w.column == a.column)
            .map(|wi| (i, wi))
    });
    let Some((ci, wi)) = target else {
        return Err(by_hand("the assignment spans several lines".into()));
    };
    let word = &cmds[ci].words[wi];
    if let Some(split) = word_split(word)
        && word.text.get(split - 2..split) == Some(b"+=")
    {
        return Err(by_hand(format!(
            "the line appends to {} instead of setting it",
            a.name
        )));
    }
    let on_line = standalone(text, lines, cmds, dialect, ci, a.line).map_err(by_hand)?;
    single_assignment(&cmds[ci].words, dialect, &a.name).map_err(by_hand)?;
    // Anything else on the line may only be `export NAME` (`X=...; export X`).
    for &i in &on_line[1..] {
        if bare_export(&cmds[i].words).as_deref() != Some(&a.name) {
            return Err(by_hand(mixed()));
        }
    }
    // The line on its own must say exactly the same thing: this guards against any construct
    // that the checks above do not know, such as a quote opened on an earlier line.
    let raw = line_bytes(text, lines, a.line).unwrap_or_default();
    let alone = syntax::shell::parse(raw, dialect);
    match alone.assignments.as_slice() {
        [one] if one.name == a.name && one.value == a.value => {}
        _ => return Err(by_hand("the line cannot be read on its own".into())),
    }
    let mut notes = Vec::new();
    if dialect == Dialect::Fish
        && cmds[ci]
            .words
            .iter()
            .take_while(|w| w.text.first() == Some(&b'-') || w.text == b"set")
            .any(|w| {
                w.text == b"--universal" || (!w.text.starts_with(b"--") && w.text.contains(&b'U'))
            })
    {
        notes.push(format!(
            "{} was a fish universal variable: fish keeps it in ~/.config/fish/fish_variables \
             until you run `set -e -U {}`",
            a.name, a.name
        ));
    }
    Ok((on_line, notes))
}

/// Where the value starts in an assignment word's text.
fn word_split(w: &Word) -> Option<usize> {
    let (name, _) = w.assignment()?;
    let rest = w.text.get(name.len()..)?;
    Some(name.len() + if rest.starts_with(b"+=") { 2 } else { 1 })
}

/// The words that open a POSIX compound body, and those that close one.
fn opens_body(c: &Command) -> bool {
    match c.words.last() {
        Some(w) => w.literal && [&b"then"[..], b"else", b"do", b"{"].contains(&w.text.as_slice()),
        None => c.end == Sep::Open,
    }
}

fn closes_body(c: &Command) -> bool {
    match c.words.first() {
        Some(w) => {
            w.literal && [&b"fi"[..], b"else", b"elif", b"done", b"}"].contains(&w.text.as_slice())
        }
        None => c.end == Sep::Close,
    }
}

fn shell_edit(file: &FileScan, dialect: Dialect, chosen: &[usize]) -> Option<Edit> {
    let text: &[u8] = &file.original;
    let lines = line_table(text);
    // line -> (found indexes, or none for an `export NAME` line)
    let mut removed: BTreeMap<u32, Vec<Option<usize>>> = BTreeMap::new();
    let mut gone_cmds: HashSet<usize> = HashSet::new();
    let mut per_name: HashMap<&str, usize> = HashMap::new();
    for &fi in chosen {
        let f = &file.found[fi];
        if f.removal != Removal::Line {
            continue;
        }
        removed.entry(f.line).or_default().push(Some(fi));
        gone_cmds.extend(&f.cmds);
        *per_name.entry(&f.name).or_default() += 1;
    }
    if removed.is_empty() {
        return None;
    }
    // `X=...` then `export X` on its own line: the export goes too, once nothing assigns X here.
    for (name, line, ci) in &file.export_lines {
        if per_name
            .get(name.as_str())
            .is_some_and(|n| Some(n) == file.assignments.get(name))
        {
            removed.entry(*line).or_default().push(None);
            gone_cmds.insert(*ci);
        }
    }
    let cmds = syntax::shell::split_commands(text, dialect);
    // Removals that would leave `then ... fi` (and the like) empty keep a `:` instead.
    let mut placeholder: HashSet<u32> = HashSet::new();
    if dialect == Dialect::Posix {
        let line_of = |c: &Command| c.words.first().map(|w| w.line);
        for &line in removed.keys() {
            let here: Vec<usize> = (0..cmds.len())
                .filter(|&i| gone_cmds.contains(&i) && line_of(&cmds[i]) == Some(line))
                .collect();
            let (Some(&lo), Some(&hi)) = (here.first(), here.last()) else {
                continue;
            };
            let skip = |i: &usize| {
                let c = &cmds[*i];
                (c.words.is_empty() && c.end == Sep::Newline)
                    || (gone_cmds.contains(i)
                        && !line_of(c).is_some_and(|l| placeholder.contains(&l)))
            };
            let prev = (0..lo).rev().find(|i| !skip(i)).map(|i| &cmds[i]);
            let next = (hi + 1..cmds.len()).find(|i| !skip(i)).map(|i| &cmds[i]);
            if prev.is_some_and(opens_body) && next.is_some_and(closes_body) {
                placeholder.insert(line);
            }
        }
    }
    let mut new = Zeroizing::new(Vec::with_capacity(text.len()));
    for (i, &(s, e, next)) in lines.iter().enumerate() {
        let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
        if !removed.contains_key(&n) {
            new.extend_from_slice(&text[s..next]);
        } else if placeholder.contains(&n) {
            let indent = text[s..e]
                .iter()
                .take_while(|b| **b == b' ' || **b == b'\t')
                .count();
            new.extend_from_slice(&text[s..s + indent]);
            new.extend_from_slice(b":  # moved to the keyfence store by `keyfence fix`");
            new.extend_from_slice(&text[e..next]);
        }
    }
    let mut removed_out: Vec<Removed> = Vec::new();
    for (line, who) in &removed {
        for fi in who.iter().flatten() {
            removed_out.push(Removed {
                found: *fi,
                lines: vec![*line],
            });
        }
    }
    // Each removal of X also names the `export X` lines that went with it.
    for r in &mut removed_out {
        let name = &file.found[r.found].name;
        for (n, l, _) in &file.export_lines {
            if n == name && removed.get(l).is_some_and(|w| w.contains(&None)) {
                r.lines.push(*l);
            }
        }
        r.lines.sort_unstable();
        r.lines.dedup();
    }
    // Names this file no longer assigns at all, that it still refers to.
    let unset: Vec<&str> = per_name
        .iter()
        .filter(|(name, n)| file.assignments.get(**name) == Some(*n))
        .map(|(name, _)| *name)
        .collect();
    let still_used = references(&new, &unset);
    Some(Edit {
        new,
        removed: removed_out,
        placeholders: placeholder.len(),
        still_used,
    })
}

/// `(name, line)` of each `$NAME` / `${NAME` left in `new` for a removed name.
fn references(new: &[u8], names: &[&str]) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for name in names {
        for pat in [format!("${name}"), format!("${{{name}")] {
            for at in memchr::memmem::find_iter(new, pat.as_bytes()) {
                let after = new.get(at + pat.len()).copied();
                if !after.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    let line = detect::line_col(new, at).0;
                    if !out.contains(&(name.to_string(), line)) {
                        out.push((name.to_string(), line));
                    }
                }
            }
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// Claude Code settings
// ---------------------------------------------------------------------------------------------

fn scan_settings(
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

fn scan_dotenv(
    path: PathBuf,
    real: PathBuf,
    shown: String,
    text: Zeroizing<Vec<u8>>,
) -> Option<FileScan> {
    let detector = detect::detector();
    let lines = line_table(&text);
    let mut found = Vec::new();
    for e in audit::dotenv::parse(&text) {
        let Some(m) = detector.classify_var(&e.name, &e.value) else {
            continue;
        };
        let removal = match line_bytes(&text, &lines, e.line).and_then(dotenv_value_span) {
            Some(_) if syntax::shell::is_name(e.name.as_bytes()) => Removal::Reference,
            Some(_) => Removal::Manual(
                "its name cannot be a store entry or an environment variable; move it by hand"
                    .to_string(),
            ),
            None => Removal::Manual(
                "the value spans several lines; replace it by hand with store:NAME".to_string(),
            ),
        };
        found.push(Found {
            name: e.name.clone(),
            value: SecretValue::new(e.value.as_slice()),
            info: m.info(),
            line: e.line,
            removal,
            notes: Vec::new(),
            cmds: Vec::new(),
        });
    }
    if found.is_empty() {
        return None;
    }
    Some(FileScan {
        path,
        real,
        shown,
        format: Format::Dotenv,
        found,
        original: text,
        export_lines: Vec::new(),
        assignments: HashMap::new(),
        json: None,
    })
}

/// Where the value of a one-line `[export ]NAME=value` starts and ends in `line` (its quotes
/// included; a trailing ` # comment` excluded); `None` when the value goes on past the line.
fn dotenv_value_span(line: &[u8]) -> Option<(usize, usize)> {
    let sep = line.iter().position(|&b| b == b'=' || b == b':')?;
    let start = sep
        + 1
        + line[sep + 1..]
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
    let rest = &line[start..];
    let end = match rest.first() {
        Some(&q @ (b'\'' | b'"')) => {
            let mut i = 1;
            loop {
                match rest.get(i) {
                    None => return None,
                    Some(b'\\') if q == b'"' => i += 2,
                    Some(&b) if b == q => break start + i + 1,
                    Some(_) => i += 1,
                }
            }
        }
        _ => {
            let comment = rest
                .windows(2)
                .position(|w| matches!(w[0], b' ' | b'\t') && w[1] == b'#')
                .unwrap_or(rest.len());
            let value = &rest[..comment];
            start + value.len()
                - value
                    .iter()
                    .rev()
                    .take_while(|b| b.is_ascii_whitespace())
                    .count()
        }
    };
    Some((start, end))
}

fn dotenv_edit(
    file: &FileScan,
    chosen: &[usize],
    store_name: &dyn Fn(usize) -> String,
) -> Option<Edit> {
    let lines = line_table(&file.original);
    // Line number → the reference that replaces its value.
    let mut replace: BTreeMap<u32, String> = BTreeMap::new();
    let mut removed = Vec::new();
    for &fi in chosen {
        let f = &file.found[fi];
        if f.removal == Removal::Reference {
            replace.insert(f.line, format!("store:{}", store_name(fi)));
            removed.push(Removed {
                found: fi,
                lines: vec![f.line],
            });
        }
    }
    if removed.is_empty() {
        return None;
    }
    let mut new = Zeroizing::new(Vec::with_capacity(file.original.len()));
    for (n, &(start, end, next)) in lines.iter().enumerate() {
        let line = &file.original[start..end];
        match replace.get(&(n as u32 + 1)) {
            Some(reference) => {
                let (vs, ve) = dotenv_value_span(line)?;
                new.extend_from_slice(&line[..vs]);
                new.extend_from_slice(reference.as_bytes());
                new.extend_from_slice(&line[ve..]);
            }
            None => new.extend_from_slice(line),
        }
        new.extend_from_slice(&file.original[end..next]);
    }
    Some(Edit {
        new,
        removed,
        placeholders: 0,
        still_used: Vec::new(),
    })
}

/// The 1-based line of `"key"` in the `env` object (serde_json keeps no positions).
fn key_line(text: &[u8], key: &str) -> u32 {
    let needle = serde_json::to_string(key).unwrap_or_default();
    let from = memchr::memmem::find(text, b"\"env\"").unwrap_or(0);
    memchr::memmem::find(&text[from..], needle.as_bytes())
        .map_or(1, |at| detect::line_col(text, from + at).0)
}

fn settings_edit(file: &FileScan, chosen: &[usize]) -> Option<Edit> {
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
    Some(Edit {
        new,
        removed,
        placeholders: 0,
        still_used: Vec::new(),
    })
}

// ---------------------------------------------------------------------------------------------
// Keys, edits, diffs
// ---------------------------------------------------------------------------------------------

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
        Format::Shell(d) => shell_edit(file, d, chosen),
        Format::ClaudeSettings => settings_edit(file, chosen),
        Format::Dotenv => dotenv_edit(file, chosen, store_name),
    }
}

/// A unified diff of the edit in which no value appears: every known key value is shown as its
/// preview, and any other secret the detector sees in a shown line too.
pub fn diff(file: &FileScan, new: &[u8]) -> String {
    let forms: Vec<(&SecretValue, &str)> = file
        .found
        .iter()
        .map(|f| (&f.value, f.info.preview.as_str()))
        .collect();
    text_diff(
        &file.real.display().to_string(),
        &file.original,
        new,
        &forms,
    )
}

/// A unified diff of `old` → `new` under `name`, with each of `values` shown as its preview and
/// any other secret the detector sees replaced by its own: for setup's edits of agent settings,
/// which may hold keys near the lines it changes.
pub fn text_diff(name: &str, old: &[u8], new: &[u8], values: &[(&SecretValue, &str)]) -> String {
    use similar::{ChangeTag, TextDiff};
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    let td = TextDiff::from_lines(old.as_ref(), new.as_ref());
    let redactor = Redactor::new(values);
    let mut out = format!("--- {name}\n+++ {name}\n");
    for hunk in td.unified_diff().context_radius(3).iter_hunks() {
        out.push_str(&format!("{}\n", hunk.header()));
        for change in hunk.iter_changes() {
            let sign = match change.tag() {
                ChangeTag::Delete => '-',
                ChangeTag::Insert => '+',
                ChangeTag::Equal => ' ',
            };
            let line = change.value();
            let body = line.strip_suffix('\n').unwrap_or(line);
            let body = body.strip_suffix('\r').unwrap_or(body);
            out.push(sign);
            out.push_str(&redactor.line(body));
            out.push('\n');
            if change.missing_newline() {
                out.push_str("\\ No newline at end of file\n");
            }
        }
    }
    out
}

/// Replaces secret values in text shown to the user.
struct Redactor {
    /// (a way the value may be written, its preview), longest first.
    forms: Vec<(Zeroizing<String>, String)>,
    values: Vec<SecretValue>,
}

impl Redactor {
    fn new(found: &[(&SecretValue, &str)]) -> Self {
        let mut forms = Vec::new();
        let mut values = Vec::new();
        for (value, preview) in found {
            let raw = Zeroizing::new(String::from_utf8_lossy(value.expose()).into_owned());
            let json = Zeroizing::new(serde_json::to_string(raw.as_str()).unwrap_or_default());
            let json = Zeroizing::new(json[1..json.len().saturating_sub(1).max(1)].to_string());
            for form in [raw, json] {
                if !form.is_empty() {
                    forms.push((form, preview.to_string()));
                }
            }
            values.push((*value).clone());
        }
        forms.sort_by_key(|(f, _)| std::cmp::Reverse(f.len()));
        Redactor { forms, values }
    }

    fn line(&self, line: &str) -> String {
        let mut s = line.to_string();
        for (form, preview) in &self.forms {
            if s.contains(form.as_str()) {
                s = s.replace(form.as_str(), preview);
            }
        }
        let matches = detect::detector().scan(s.as_bytes(), Mode::Assignment);
        let mut shown: Vec<String> = Vec::new();
        if !matches.is_empty() {
            let mut r = String::with_capacity(s.len());
            let mut at = 0;
            for m in matches {
                if m.start < at
                    || !s.is_char_boundary(m.start)
                    || !s.is_char_boundary(m.end)
                    || s[m.start..m.end].contains('…')
                {
                    continue;
                }
                r.push_str(&s[at..m.start]);
                let preview = m.info().preview;
                r.push_str(&preview);
                shown.push(preview);
                at = m.end;
            }
            r.push_str(&s[at..]);
            s = r;
        }
        // Last guard: a value written in some other way (escaped, split) still shows a piece.
        // Previews share the public prefix with their value, so they are not looked at.
        let mut rest = s.clone();
        for p in self.forms.iter().map(|(_, p)| p).chain(&shown) {
            rest = rest.replace(p.as_str(), "");
        }
        if self
            .values
            .iter()
            .any(|v| leaks(rest.as_bytes(), v.expose()))
        {
            return "[line hidden: it holds part of a key]".to_string();
        }
        s
    }
}

/// Whether `hay` holds 10 consecutive bytes of `value` (all of it, if shorter).
fn leaks(hay: &[u8], value: &[u8]) -> bool {
    let w = value.len().min(10);
    w > 0
        && value
            .windows(w)
            .any(|piece| memchr::memmem::find(hay, piece).is_some())
}

// ---------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// Writes the edit: checks that the file still holds what was read, keeps the old bytes as
/// `PATH.keyfence-bak` (or `.keyfence-bak.N`; never overwriting one, mode 0600 since it holds the
/// key), writes the new bytes to a temp file beside the real file with its mode and owner,
/// checks the file once more, and renames the temp file over it. Returns the backup's path.
pub fn write(file: &FileScan, new: &[u8]) -> Result<PathBuf, FixError> {
    let real = &file.real;
    unchanged(file)?;
    let meta = fs::metadata(real).map_err(io_err("read", real))?;
    // Beside the path as found: for a symlink into a dotfiles repository, the backup (which
    // holds the key) stays out of the repository.
    let backup = create_backup(&file.path, &file.original)?;
    let written = crate::fsio::replace_with(
        real,
        new,
        meta.permissions().mode(),
        Some((meta.uid(), meta.gid())),
        || unchanged(file).map_err(WriteError::Changed),
    );
    if let Err(e) = written {
        let _ = fs::remove_file(&backup);
        return Err(match e {
            WriteError::Changed(e) => e,
            WriteError::Io(e) => io_err("replace", real)(e),
        });
    }
    Ok(backup)
}

/// A `FILE.keyfence-bak[.N]` that `fix` or `setup claude` left, whose change is checked: every
/// key in it is in the store and no longer in FILE. Then it is only a copy of those keys in
/// clear, and deleting it loses nothing the user needs.
#[derive(Debug)]
pub struct CheckedBackup {
    pub path: PathBuf,
    pub original: PathBuf,
    pub keys: usize,
}

/// The checked backups in `dirs` (audit's `backup_dirs`), given the fingerprints of the
/// store's entries. A backup whose file is gone, or that holds no key, stays: it is the user's.
pub fn checked_backups(dirs: &[PathBuf], stored: &[String]) -> Vec<CheckedBackup> {
    let detector = detect::detector();
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        let mut backups: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
            .collect();
        backups.sort();
        for path in backups {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some((stem, suffix)) = name.split_once(".keyfence-bak") else {
                continue;
            };
            if !(suffix.is_empty()
                || suffix
                    .strip_prefix('.')
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))
            {
                continue;
            }
            let original = dir.join(stem);
            let (Ok(text), Ok(now)) = (fs::read(&path), fs::read(&original)) else {
                continue;
            };
            let (text, now) = (Zeroizing::new(text), Zeroizing::new(now));
            let keys = detector.scan(&text, Mode::Assignment);
            let checked = !keys.is_empty()
                && keys.iter().all(|m| {
                    stored.contains(&m.value.fingerprint())
                        && memchr::memmem::find(&now, m.value.expose()).is_none()
                });
            if checked {
                out.push(CheckedBackup {
                    path,
                    original,
                    keys: keys.len(),
                });
            }
        }
    }
    out
}

/// What stopped `fsio::replace_with` in `write`: the file changed under us, or the write.
enum WriteError {
    Changed(FixError),
    Io(io::Error),
}

impl From<io::Error> for WriteError {
    fn from(e: io::Error) -> Self {
        WriteError::Io(e)
    }
}

/// Refuses when the file no longer holds the bytes it was read with.
fn unchanged(file: &FileScan) -> Result<(), FixError> {
    let now = Zeroizing::new(fs::read(&file.real).map_err(io_err("read", &file.real))?);
    if now.as_slice() != file.original.as_slice() {
        return Err(FixError::Changed {
            shown: file.shown.clone(),
        });
    }
    Ok(())
}

/// Creates the first free `PATH.keyfence-bak`, `PATH.keyfence-bak.1`, ... (the naming
/// `setup claude` uses) with `bytes`, atomically against a concurrent `fix`.
pub(crate) fn create_backup(path: &Path, bytes: &[u8]) -> Result<PathBuf, FixError> {
    let base = format!("{}.keyfence-bak", path.display());
    for n in 0u32..10_000 {
        let candidate = if n == 0 {
            PathBuf::from(&base)
        } else {
            PathBuf::from(format!("{base}.{n}"))
        };
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&candidate)
        {
            Ok(mut f) => {
                let r = f.write_all(bytes).and_then(|()| f.sync_all());
                if let Err(e) = r {
                    let _ = fs::remove_file(&candidate);
                    return Err(io_err("write the backup", &candidate)(e));
                }
                return Ok(candidate);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("create the backup", &candidate)(e)),
        }
    }
    Err(io_err("create a backup of", path)(io::Error::other(
        "too many backups already exist",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake key, put together at run time: written out whole here, it made `keyfence audit`
    /// of this checkout report a critical key (tests/cli.rs checks the checkout audits clean).
    struct FakeKey;
    impl std::fmt::Display for FakeKey {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let body = "Hq3vT9xLm2Zr8WbK5nYp4Jc7".repeat(4);
            write!(f, "sk-ant-api03-{}AA", &body[..93])
        }
    }
    const KEY: FakeKey = FakeKey;

    fn shell_file(text: &str, dialect: Dialect) -> FileScan {
        scan_shell(
            PathBuf::from("/h/.rc"),
            PathBuf::from("/h/.rc"),
            "~/.rc".into(),
            Zeroizing::new(text.as_bytes().to_vec()),
            dialect,
        )
        .expect("a key")
    }

    /// The file after removing every key that can be removed.
    fn fixed(text: &str, dialect: Dialect) -> (String, Vec<Removal>) {
        let f = shell_file(text, dialect);
        let all: Vec<usize> = (0..f.found.len()).collect();
        let removals = f.found.iter().map(|x| x.removal.clone()).collect();
        let new = plan_edit(&f, &all, &|_| String::new()).map_or_else(
            || text.to_string(),
            |e| String::from_utf8(e.new.to_vec()).unwrap(),
        );
        (new, removals)
    }

    #[test]
    fn removable_lines() {
        let k = &KEY.to_string();
        let cases: &[(&str, Dialect, &str)] = &[
            (
                &format!("a\nexport ANTHROPIC_API_KEY={k}\nb\n"),
                Dialect::Posix,
                "a\nb\n",
            ),
            (
                &format!("export ANTHROPIC_API_KEY=\"{k}\" # mine\n"),
                Dialect::Posix,
                "",
            ),
            (&format!("ANTHROPIC_API_KEY='{k}'\n"), Dialect::Posix, ""),
            (
                &format!("declare -x ANTHROPIC_API_KEY={k}\r\nx\r\n"),
                Dialect::Posix,
                "x\r\n",
            ),
            (
                &format!("ANTHROPIC_API_KEY={k}; export ANTHROPIC_API_KEY\n"),
                Dialect::Posix,
                "",
            ),
            (
                &format!("ANTHROPIC_API_KEY={k}\necho hi\nexport ANTHROPIC_API_KEY\n"),
                Dialect::Posix,
                "echo hi\n",
            ),
            (
                &format!("if true; then\n  x=1\n  export ANTHROPIC_API_KEY={k}\nfi\n"),
                Dialect::Posix,
                "if true; then\n  x=1\nfi\n",
            ),
            (
                &format!("set -gx ANTHROPIC_API_KEY {k}\nx\n"),
                Dialect::Fish,
                "x\n",
            ),
            (&format!("setenv ANTHROPIC_API_KEY {k}\n"), Dialect::Csh, ""),
            (&format!("set ANTHROPIC_API_KEY = {k}\n"), Dialect::Csh, ""),
            (
                &format!("typeset -x ANTHROPIC_API_KEY={k}\nreadonly B={k}\n"),
                Dialect::Posix,
                "",
            ),
            (
                &format!("f() {{\n  export ANTHROPIC_API_KEY={k}\n  echo\n}}\n"),
                Dialect::Posix,
                "f() {\n  echo\n}\n",
            ),
            (
                &format!("x\nexport ANTHROPIC_API_KEY={k}"),
                Dialect::Posix,
                "x\n",
            ),
        ];
        for (text, d, want) in cases {
            let (got, removals) = fixed(text, *d);
            assert!(
                removals.iter().all(|r| *r == Removal::Line),
                "{text:?}: {removals:?}"
            );
            assert_eq!(got, *want, "{text:?}");
        }
    }

    #[test]
    fn lines_that_do_more_are_left_alone() {
        let k = &KEY.to_string();
        let cases: &[(&str, Dialect)] = &[
            (
                &format!("export A=1 ANTHROPIC_API_KEY={k}\n"),
                Dialect::Posix,
            ),
            (
                &format!("if true; then export ANTHROPIC_API_KEY={k}; fi\n"),
                Dialect::Posix,
            ),
            (
                &format!("ANTHROPIC_API_KEY={k} somecommand\n"),
                Dialect::Posix,
            ),
            (
                &format!("true &&\n  export ANTHROPIC_API_KEY={k}\n"),
                Dialect::Posix,
            ),
            (
                &format!("export ANTHROPIC_API_KEY={k} && echo ok\n"),
                Dialect::Posix,
            ),
            (
                &format!("export \\\n  ANTHROPIC_API_KEY={k}\n"),
                Dialect::Posix,
            ),
            (
                &format!("echo a; export ANTHROPIC_API_KEY={k}\n"),
                Dialect::Posix,
            ),
            (
                &format!("( export ANTHROPIC_API_KEY={k} )\n"),
                Dialect::Posix,
            ),
            (
                &format!("set -gx ANTHROPIC_API_KEY {k}\nand echo ok\n"),
                Dialect::Fish,
            ),
            (
                &format!("set -gx ANTHROPIC_API_KEY {k}; echo\n"),
                Dialect::Fish,
            ),
        ];
        for (text, d) in cases {
            let (got, removals) = fixed(text, *d);
            assert!(
                matches!(removals.as_slice(), [Removal::Manual(_)]),
                "{text:?}: {removals:?}"
            );
            assert_eq!(got, *text, "{text:?}");
        }
    }

    #[test]
    fn emptied_body_keeps_a_no_op() {
        let text = format!("if [ -n \"$X\" ]; then\n    export ANTHROPIC_API_KEY={KEY}\nfi\n");
        let (got, _) = fixed(&text, Dialect::Posix);
        assert_eq!(
            got,
            "if [ -n \"$X\" ]; then\n    :  # moved to the keyfence store by `keyfence fix`\nfi\n"
        );
        // Fish accepts an empty `if`.
        let text = format!("if status is-interactive\n    set -gx ANTHROPIC_API_KEY {KEY}\nend\n");
        assert_eq!(
            fixed(&text, Dialect::Fish).0,
            "if status is-interactive\nend\n"
        );
    }

    #[test]
    fn notes_for_universal_variables_and_leftover_references() {
        let f = shell_file(
            &format!(
                "set -Ux ANTHROPIC_API_KEY {KEY}\nalias c='claude --key $ANTHROPIC_API_KEY'\n"
            ),
            Dialect::Fish,
        );
        assert!(f.found[0].notes[0].contains("set -e -U ANTHROPIC_API_KEY"));
        let e = plan_edit(&f, &[0], &|_| String::new()).unwrap();
        assert_eq!(e.still_used, [("ANTHROPIC_API_KEY".to_string(), 1)]);
        // `$ANTHROPIC_API_KEY_OLD` is another variable.
        let f = shell_file(
            &format!("export ANTHROPIC_API_KEY={KEY}\necho $ANTHROPIC_API_KEY_OLD\n"),
            Dialect::Posix,
        );
        assert!(
            plan_edit(&f, &[0], &|_| String::new())
                .unwrap()
                .still_used
                .is_empty()
        );
    }

    #[test]
    fn export_line_stays_while_another_assignment_remains() {
        let text = format!(
            "ANTHROPIC_API_KEY=$(cat ~/k)\nANTHROPIC_API_KEY={KEY}\nexport ANTHROPIC_API_KEY\n"
        );
        let (got, _) = fixed(&text, Dialect::Posix);
        assert_eq!(
            got,
            "ANTHROPIC_API_KEY=$(cat ~/k)\nexport ANTHROPIC_API_KEY\n"
        );
    }

    #[test]
    fn diff_shows_previews_not_values() {
        let text = format!("# top\nexport ANTHROPIC_API_KEY={KEY}\nexport PATH=/bin\n");
        let f = shell_file(&text, Dialect::Posix);
        let e = plan_edit(&f, &[0], &|_| String::new()).unwrap();
        let d = diff(&f, &e.new);
        assert!(
            d.contains("-export ANTHROPIC_API_KEY=sk-ant-api03-…AA\n"),
            "{d}"
        );
        assert!(d.contains(" export PATH=/bin\n"), "{d}");
        assert!(!d.contains("Hq3vT9xLm2"), "{d}");
    }

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
    fn a_file_changed_after_reading_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".bashrc");
        let text = format!("export ANTHROPIC_API_KEY={KEY}\n");
        fs::write(&path, &text).unwrap();
        let mut f = shell_file(&text, Dialect::Posix);
        f.path = path.clone();
        f.real = path.clone();
        let e = plan_edit(&f, &[0], &|_| String::new()).unwrap();
        // Someone appends a line between the scan and the write.
        fs::write(&path, format!("{text}alias x=y\n")).unwrap();
        let err = write(&f, &e.new).unwrap_err();
        assert!(matches!(err, FixError::Changed { .. }), "{err}");
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("{text}alias x=y\n")
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no backup or temp file left"
        );
    }

    #[test]
    fn write_keeps_mode_and_numbers_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".zshrc");
        let text = format!("export ANTHROPIC_API_KEY={KEY}\nx\n");
        fs::write(&path, &text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        fs::write(dir.path().join(".zshrc.keyfence-bak"), "older").unwrap();
        let mut f = shell_file(&text, Dialect::Posix);
        f.path = path.clone();
        f.real = path.clone();
        let e = plan_edit(&f, &[0], &|_| String::new()).unwrap();
        let backup = write(&f, &e.new).unwrap();
        assert_eq!(backup, dir.path().join(".zshrc.keyfence-bak.1"));
        assert_eq!(fs::read_to_string(&backup).unwrap(), text);
        assert_eq!(
            fs::read_to_string(dir.path().join(".zshrc.keyfence-bak")).unwrap(),
            "older"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "x\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let bmode = fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
        assert_eq!(bmode, 0o600);
    }
}
