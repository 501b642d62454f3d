//! Shell start-up files: which assignments of a key can be removed as whole lines (and the
//! `export NAME` lines that go with them), why the others cannot, and the edited text.

use super::{Edit, FileScan, Format, Found, Removal, Removed, line_bytes, line_table};
use crate::detect;
use crate::secret::SecretValue;
use crate::syntax;
use crate::syntax::shell::{Command, Dialect, Sep, Word};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Whether a line ends in a backslash that continues it (an odd number of trailing `\`).
fn continues(line: &[u8]) -> bool {
    line.iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}

pub(super) fn scan_shell(
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

pub(super) fn shell_edit(file: &FileScan, dialect: Dialect, chosen: &[usize]) -> Option<Edit> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::plan_edit;
    use crate::fix::testing::{KEY, shell_file};

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
}
