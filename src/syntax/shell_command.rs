//! What a command line handed to `bash -c` runs, as far as keyfence's shell lexer can tell: the
//! simple commands it is made of (through `&&`, `||`, `;`, `|`, `&`, newlines, subshells,
//! groups, `$(...)`, backquotes, heredoc bodies, `bash -c '...'`, `eval ...`), each turned into
//! the command lines a profile's `match` is tried against. The Claude Code hook uses it to pick
//! the profile for a whole command (`setup::claude`).
//!
//! It is built to miss nothing rather than to be exact: a wrong guess in the safe direction
//! puts a harmless command under a sandbox, a wrong guess the other way runs an install
//! unprotected. So every later word that names a package manager starts a candidate too
//! (`strace -f npm install`, `poetry run pip install x`, and also `echo npm install`), options
//! before a subcommand are tried both as flags and as flags with a value (`npm --prefix web
//! install`), and what cannot be read with confidence (an unclosed quote, `eval "$X"`, a
//! program named by a variable, a shell reading its script from stdin) is reported as a doubt.
//! A quoted argument is one word, not a command: `grep 'npm install' README` runs grep.
//!
//! Nothing here expands anything or runs anything.

use crate::syntax::shell::{Dialect, Nested, Word};
use std::collections::HashSet;

/// Why a command line could not be read with confidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Doubt {
    /// A quote, substitution or arithmetic that does not close.
    Unclosed,
    /// Code that only exists when the shell runs: `eval "$X"`, `$PM install`, `bash -c "$S"`.
    Dynamic(String),
    /// A shell that reads its commands from stdin (`curl ... | sh`, `bash <<EOF`).
    ShellStdin(String),
    /// Nested deeper than keyfence follows.
    TooDeep,
    /// More candidate programs than keyfence looks at.
    TooLong,
    /// zsh syntax that runs code bash would not (Claude Code runs a command the hook passes
    /// in the user's shell, which may be zsh).
    Zsh(String),
}

impl std::fmt::Display for Doubt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Doubt::Unclosed => f.write_str("a quote or substitution does not close"),
            Doubt::Dynamic(w) => write!(f, "`{w}` is only known when the shell runs it"),
            Doubt::ShellStdin(w) => write!(f, "`{w}` reads its commands from stdin"),
            Doubt::TooDeep => f.write_str("commands are nested too deep to follow"),
            Doubt::TooLong => f.write_str("the command line names too many programs to follow"),
            Doubt::Zsh(at) => write!(f, "`{at}` runs code in zsh"),
        }
    }
}

/// One simple command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Simple {
    /// Its words joined by spaces (quotes removed), for messages.
    pub text: String,
    /// Command lines to match profiles against: from its program on, normalised, and the same
    /// from every later word that names a program of interest.
    pub candidates: Vec<Candidate>,
    /// Runs nothing that matters by itself: `cd DIR`, `true`, or a wrapper whose script is
    /// analysed on its own (`bash -c '...'`, `eval ...`).
    pub inert: bool,
}

/// One command line a simple command may be matched as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub line: String,
    /// Its first word is the program the shell runs (first in the command, or after wrappers
    /// such as `env`, `sudo -E`, `time`), not just a word that names one (`echo npm i`,
    /// `curl -d @- x gh pr create`). A profile that hands out secrets must only match these.
    pub runs: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analysis {
    pub commands: Vec<Simple>,
    /// The first reason the reading is a guess, if any.
    pub doubt: Option<Doubt>,
}

/// Nesting keyfence follows (`bash -c "eval '$(...)'"`); deeper is a doubt.
const MAX_DEPTH: usize = 12;

/// Words after a program that are tried as its subcommand (options and their values).
const MAX_LEADING_OPTIONS: usize = 8;

/// Program positions looked at in one analysis; past it, the rest is a doubt. Keeps the
/// hook's time bounded on any input, well inside Claude Code's hook timeout.
const MAX_CANDIDATES: usize = 20_000;

/// Commands that run the rest of their arguments: after these, a shell without `-c` reads
/// stdin (`echo npm i | sudo bash`).
const WRAPPERS: &[&str] = &[
    "sudo", "doas", "env", "exec", "command", "builtin", "nohup", "time", "nice", "ionice",
    "setsid", "stdbuf", "timeout", "xargs", "unbuffer",
];

/// Shells whose `-c` argument is a script.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "yash"];

/// Reserved words that may precede a command in the same simple command.
const PREFIX_WORDS: &[&str] = &[
    "if", "then", "else", "elif", "do", "while", "until", "!", "{", "time",
];

/// Lists, not commands: their words are data (substitutions in them are still followed).
const LIST_WORDS: &[&str] = &[
    "for", "case", "select", "[[", "function", "fi", "done", "esac", "}",
];

/// Commands that start nothing: with these, a line that also needs a secret profile is fine.
const INERT: &[&str] = &["cd", "pushd", "popd", "true", "false", ":"];

/// Other names the package managers are run by, and what keyfence matches them as.
const ALIASES: &[(&str, &str)] = &[
    ("pn", "pnpm"),
    ("yarnpkg", "yarn"),
    ("npm-cli.js", "npm"),
    ("npx-cli.js", "npx"),
    ("pnpm.cjs", "pnpm"),
    ("pnpm.js", "pnpm"),
    ("yarn.js", "yarn"),
    ("yarn.cjs", "yarn"),
];

/// The simple commands of `script` (Posix shell syntax, as Claude Code's Bash tool runs it).
/// `programs` are the program names that start a candidate wherever they appear (the first
/// words of the profiles' `match` patterns).
pub fn analyse(script: &str, programs: &[String]) -> Analysis {
    let mut scan: HashSet<String> = programs.iter().map(|p| normal_program(p)).collect();
    scan.extend(ALIASES.iter().map(|(from, _)| (*from).to_string()));
    let mut w = Walker {
        scan,
        out: Analysis::default(),
        budget: MAX_CANDIDATES,
    };
    w.walk(script.as_bytes(), 0, false);
    w.out
}

struct Walker {
    scan: HashSet<String>,
    out: Analysis,
    /// Candidates still allowed (`MAX_CANDIDATES`).
    budget: usize,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The last path component: `/usr/bin/npm` runs `npm`.
fn base(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// `pip3.12` and `pip3` are `pip`; other aliases as in `ALIASES`; zsh's `=npm` is `npm`.
fn normal_program(word: &str) -> String {
    let b = base(word.strip_prefix('=').unwrap_or(word));
    if let Some(rest) = b.strip_prefix("pip")
        && !rest.is_empty()
        && rest.bytes().all(|c| c.is_ascii_digit() || c == b'.')
    {
        return "pip".to_string();
    }
    ALIASES
        .iter()
        .find(|(from, _)| *from == b)
        .map_or_else(|| b.to_string(), |(_, to)| (*to).to_string())
}

fn is_python(b: &str) -> bool {
    b == "py"
        || b.strip_prefix("python")
            .is_some_and(|v| v.bytes().all(|c| c.is_ascii_digit() || c == b'.'))
}

/// An unquoted word the shell may turn into other words: brace expansion or a glob.
fn expands(w: &Word) -> bool {
    if !w.literal {
        return false;
    }
    let t = &w.text;
    if t == b"[" {
        return false;
    }
    let braces = t.contains(&b'{')
        && t.contains(&b'}')
        && (t.contains(&b',') || t.windows(2).any(|p| p == b".."));
    braces || t.iter().any(|c| matches!(c, b'*' | b'?' | b'['))
}

/// zsh constructs that run code where bash sees none: parameter flags (`${(e)X}` evaluates
/// the value) and glob qualifiers that run a command (`*(e:'cmd':)`, `*(+func)`). bash rejects
/// both, so taking them as doubts costs a bash user nothing. Returns the construct's start.
fn zsh_runs_code(text: &[u8]) -> Option<String> {
    let show = |i: usize| lossy(text.get(i..text.len().min(i + 16)).unwrap_or_default());
    for (i, w) in text.windows(3).enumerate() {
        if w == b"${(" {
            return Some(show(i));
        }
    }
    for (i, &c) in text.iter().enumerate() {
        if c != b'(' || i == 0 {
            continue;
        }
        let before = text[i - 1];
        if before.is_ascii_whitespace() || b"($<>=|&;`".contains(&before) {
            continue;
        }
        let body = &text[i + 1..];
        let end = body
            .iter()
            .position(|&b| b == b')' || b == b'(' || b.is_ascii_whitespace())
            .unwrap_or(body.len());
        let flags = &body[..end];
        let runs = flags.iter().enumerate().any(|(j, &f)| {
            f == b'+' || (f == b'e' && flags.get(j + 1).is_some_and(|d| !d.is_ascii_alphanumeric()))
        });
        if runs {
            return Some(show(i - 1));
        }
    }
    None
}

fn is_option(w: &str) -> bool {
    w.len() > 1 && (w.starts_with('-') || w.starts_with('+'))
}

/// A backquoted body as the shell reads it: `\$`, `` \` `` and `\\` lose their backslash.
fn unbackquote(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'\\' && matches!(b.get(i + 1), Some(b'$' | b'`' | b'\\')) {
            out.push(b[i + 1]);
            i += 2;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

impl Walker {
    fn doubt(&mut self, d: Doubt) {
        if self.out.doubt.is_none() {
            self.out.doubt = Some(d);
        }
    }

    /// `quiet`: a heredoc body, read as a script only in case it is one (`bash <<EOF`) or
    /// expands substitutions; prose in it is no reason for doubt.
    fn walk(&mut self, text: &[u8], depth: usize, quiet: bool) {
        if depth > MAX_DEPTH {
            self.doubt(Doubt::TooDeep);
            return;
        }
        let script = super::shell::split_script(text, Dialect::Posix);
        if script.unclosed && !quiet {
            self.doubt(Doubt::Unclosed);
        }
        if !quiet && let Some(at) = zsh_runs_code(text) {
            self.doubt(Doubt::Zsh(at));
        }
        for n in &script.nested {
            match n {
                // `$((...))` and `((...))`: arithmetic, which only runs the substitutions in it.
                Nested::Code(b) if b.first() == Some(&b'(') => self.walk(b, depth + 1, true),
                Nested::Code(b) => self.walk(b, depth + 1, false),
                Nested::Param(b) => self.walk(b, depth + 1, true),
                Nested::Backquoted(b) => self.walk(&unbackquote(b), depth + 1, false),
                Nested::Heredoc(b) => self.walk(b, depth + 1, true),
            }
        }
        for cmd in &script.commands {
            self.simple(&cmd.words, depth, quiet);
        }
    }

    fn simple(&mut self, words: &[Word], depth: usize, quiet: bool) {
        let start = words
            .iter()
            .position(|w| w.assign.is_none() && !(w.literal && is_among(&w.text, PREFIX_WORDS)))
            .unwrap_or(words.len());
        let words = words.get(start..).unwrap_or_default();
        let Some(first) = words.first() else { return };
        // `for x in ...`, `function f { npm i` (one simple command up to the `;`): no program
        // in front, but a package manager later in it still counts.
        let list = first.literal && is_among(&first.text, LIST_WORDS);
        let texts: Vec<String> = words.iter().map(|w| lossy(&w.text)).collect();
        let mut simple = Simple {
            text: texts.join(" "),
            inert: list || INERT.contains(&base(&texts[0])),
            ..Simple::default()
        };
        // `$PM install`, `{npm,i}` (brace expansion), `/usr/bin/np?`: the program is only
        // known when the shell expands it.
        if !quiet && !list && (first.expands || expands(first)) {
            self.doubt(Doubt::Dynamic(texts[0].clone()));
        }
        if !list && let Some(script) = self.script_of(words, &texts, quiet) {
            simple.inert = true;
            self.walk(&script, depth + 1, false);
        }
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        // Whether word k is in command position: first, or after only wrappers, their options,
        // assignments and numbers (`env A=1`, `timeout 60`, `nice -n 5`, `time -p`).
        let mut position = !list;
        for k in 0..texts.len() {
            let runs = position;
            let t = texts[k].as_str();
            let number = !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit() || c == b'.');
            let wrapperish = WRAPPERS.contains(&base(t))
                || is_option(t)
                || (k > 0 && (words[k].assign.is_some() || number));
            position = position && wrapperish;
            let b = normal_program(&texts[k]);
            let known = self.scan.contains(&b);
            // In a heredoc body, only a package manager counts: prose has no program.
            let interesting = (k == 0 && !quiet && !list) || known || is_python(base(&texts[k]));
            if !interesting {
                continue;
            }
            // `npm $cmd`, `xargs npm` (the subcommand comes from stdin): which subcommand
            // runs is only known at run time.
            if known && !quiet {
                let next_dynamic = words.get(k + 1).is_some_and(|w| w.expands);
                let from_xargs = texts[..k].iter().any(|t| base(t) == "xargs");
                if next_dynamic || from_xargs {
                    self.doubt(Doubt::Dynamic(texts[k..].join(" ")));
                }
            }
            if self.budget == 0 {
                self.doubt(Doubt::TooLong);
                break;
            }
            self.budget -= 1;
            for line in candidates(&texts[k..]) {
                match seen.get(&line) {
                    Some(&i) => simple.candidates[i].runs |= runs,
                    None => {
                        seen.insert(line.clone(), simple.candidates.len());
                        simple.candidates.push(Candidate { line, runs });
                    }
                }
            }
        }
        self.out.commands.push(simple);
    }

    /// The script a command runs itself: `sh -c S`, `eval ARGS`, `su -c S`, `env -S S`,
    /// `watch ARGS`, ... (after any wrapper words before it). Notes a doubt when it is
    /// dynamic or comes from stdin.
    fn script_of(&mut self, words: &[Word], texts: &[String], quiet: bool) -> Option<Vec<u8>> {
        // Skip wrappers such as `sudo`, `env`, `nohup`, `exec`: the script-taking command can
        // come anywhere later in the line.
        for k in 0..texts.len() {
            let b = base(&texts[k]);
            let rest = &texts[k + 1..];
            let rest_words = &words[k + 1..];
            // A program in command position, not an argument (`echo bash`, `which watch`).
            let runs = k == 0 || WRAPPERS.contains(&base(&texts[k - 1]));
            let found: Option<(usize, bool)> = if SHELLS.contains(&b) {
                match shell_script_arg(rest) {
                    ShellArg::Script(i) => Some((i, false)),
                    ShellArg::Stdin if runs => {
                        if !quiet {
                            self.doubt(Doubt::ShellStdin(texts[k..].join(" ")));
                        }
                        return None;
                    }
                    ShellArg::Stdin => None,
                    ShellArg::File if runs => return None,
                    ShellArg::File => None,
                }
            } else if b == "alias" && k == 0 {
                // With `shopt -s expand_aliases`, `alias i='npm install'` then `i` runs it.
                let values: Vec<&str> = rest
                    .iter()
                    .filter_map(|a| a.split_once('=').map(|(_, v)| v))
                    .collect();
                return Some(values.join("\n").into_bytes());
            } else if b == "concurrently" && runs {
                // `concurrently "npm install" "npm run dev"`: each argument is a command line.
                let args: Vec<&str> = rest
                    .iter()
                    .filter(|a| !is_option(a))
                    .map(String::as_str)
                    .collect();
                return Some(args.join("\n").into_bytes());
            } else if b == "eval" && runs {
                if rest_words.iter().any(|w| w.expands) && !quiet {
                    self.doubt(Doubt::Dynamic(texts.join(" ")));
                }
                return Some(rest.join(" ").into_bytes());
            } else if b == "watch" && runs {
                let i = rest
                    .iter()
                    .position(|w| !is_option(w))
                    .unwrap_or(rest.len());
                if rest_words[i..].iter().any(|w| w.expands) && !quiet {
                    self.doubt(Doubt::Dynamic(texts.join(" ")));
                }
                return Some(rest[i..].join(" ").into_bytes());
            } else if matches!(b, "su" | "runuser" | "script" | "flock") {
                flag_value(rest, &["-c", "--command"]).map(|i| (i, false))
            } else if b == "nodemon" {
                flag_value(rest, &["-x", "--exec"]).map(|i| (i, false))
            } else if b == "nix-shell" {
                flag_value(rest, &["--run", "--command"]).map(|i| (i, false))
            } else if b == "env" {
                flag_value(rest, &["-S", "--split-string"]).map(|i| (i, true))
            } else {
                None
            };
            if let Some((i, then_args)) = found {
                let (text, word) = match (rest.get(i), rest_words.get(i)) {
                    (Some(t), Some(w)) => (t.clone(), w),
                    // `--command=S` / `-SS`: the value is in the flag's own word.
                    _ => return None,
                };
                if word.expands && !quiet {
                    self.doubt(Doubt::Dynamic(texts.join(" ")));
                }
                let mut script = text;
                if then_args {
                    for a in &rest[i + 1..] {
                        script.push(' ');
                        script.push_str(a);
                    }
                }
                return Some(script.into_bytes());
            }
            if let Some(v) = joined_flag_value(b, rest) {
                return Some(v.into_bytes());
            }
        }
        None
    }
}

enum ShellArg {
    /// Index (in the words after the shell) of the `-c` script.
    Script(usize),
    /// No script: commands come from stdin.
    Stdin,
    /// A script file (keyfence does not read it).
    File,
}

/// Where a shell's `-c` script is, reading its options as bash does: `-c` may be grouped
/// (`-lc`, `-ec`), `-o NAME` / `-O NAME` / `--rcfile FILE` take a value.
fn shell_script_arg(rest: &[String]) -> ShellArg {
    let mut has_c = false;
    let mut i = 0;
    while let Some(w) = rest.get(i) {
        match w.as_str() {
            "-o" | "+o" | "-O" | "+O" | "--rcfile" | "--init-file" => i += 2,
            "--" => {
                i += 1;
                break;
            }
            "-" => break,
            w if w.starts_with("--") => i += 1,
            w if is_option(w) => {
                has_c |= w.starts_with('-') && w.contains('c');
                i += 1;
            }
            _ => break,
        }
    }
    match (has_c, i < rest.len()) {
        (true, true) => ShellArg::Script(i),
        (true, false) => ShellArg::File,
        (false, true) => ShellArg::File,
        (false, false) => ShellArg::Stdin,
    }
}

/// The index of the value of the first of `flags` in `rest` (`-c S`, `--command S`).
fn flag_value(rest: &[String], flags: &[&str]) -> Option<usize> {
    rest.iter()
        .position(|w| flags.contains(&w.as_str()))
        .map(|i| i + 1)
}

/// A script in the same word as its flag: `su --command=S`, `nix-shell --run=S`, `env -SS`,
/// `env --split-string=S ARGS`.
fn joined_flag_value(program: &str, rest: &[String]) -> Option<String> {
    let prefixes: &[&str] = match program {
        "su" | "runuser" | "script" | "flock" => &["--command="],
        "nix-shell" => &["--run=", "--command="],
        "env" => &["--split-string=", "-S"],
        _ => return None,
    };
    for (i, w) in rest.iter().enumerate() {
        for p in prefixes {
            if let Some(v) = w.strip_prefix(p).filter(|v| !v.is_empty()) {
                let mut s = v.to_string();
                if program == "env" {
                    for a in &rest[i + 1..] {
                        s.push(' ');
                        s.push_str(a);
                    }
                }
                return Some(s);
            }
        }
    }
    None
}

fn is_among(text: &[u8], list: &[&str]) -> bool {
    list.iter().any(|w| w.as_bytes() == text)
}

/// The command lines `words` (a program and its arguments) may be matched as: the program's
/// name normalised, `python -m pip` as `pip`, and options before a subcommand either dropped
/// or dropped with the word after them (`npm --prefix web install` is `npm install`).
fn candidates(words: &[String]) -> Vec<String> {
    let Some(first) = words.first() else {
        return Vec::new();
    };
    let mut rest: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    let mut program = normal_program(first);
    if is_python(base(first)) {
        // `python3 -I -m pip install x`: the interpreter's own options come first.
        let mut i = 0;
        let mut module = None;
        while let Some(w) = rest.get(i) {
            if *w == "-m" {
                module = rest.get(i + 1).map(|m| (*m, i + 2));
                break;
            }
            if let Some(m) = w.strip_prefix("-m").filter(|m| !m.is_empty()) {
                module = Some((m, i + 1));
                break;
            }
            if !is_option(w) {
                break;
            }
            i += 1;
        }
        if let Some((m, after)) = module {
            program = normal_program(m);
            rest = rest.get(after..).unwrap_or_default().to_vec();
        }
    }
    let mut out = Vec::new();
    for v in variants(&program, &rest, 2) {
        let line = v.join(" ");
        if !out.contains(&line) {
            out.push(line);
        }
    }
    out
}

fn variants<'a>(program: &'a str, rest: &[&'a str], level: usize) -> Vec<Vec<&'a str>> {
    let mut as_is = vec![program];
    as_is.extend_from_slice(rest);
    let mut out = vec![as_is];
    if level == 0 {
        return out;
    }
    let mut maybe_value = false;
    let mut reached_end = true;
    for (j, w) in rest.iter().enumerate().take(MAX_LEADING_OPTIONS) {
        if is_option(w) {
            maybe_value = !w.contains('=');
            continue;
        }
        for v in variants(w, rest.get(j + 1..).unwrap_or_default(), level - 1) {
            let mut line = vec![program];
            line.extend(v);
            out.push(line);
        }
        if !maybe_value {
            reached_end = false;
            break;
        }
        maybe_value = false;
    }
    if reached_end && rest.len() <= MAX_LEADING_OPTIONS && !rest.is_empty() {
        // Only options and their values: `yarn --cwd web` is a bare `yarn`.
        out.push(vec![program]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn programs() -> Vec<String> {
        crate::policy::Config::default().matched_programs()
    }

    fn all_candidates(a: &Analysis) -> Vec<String> {
        a.commands
            .iter()
            .flat_map(|c| c.candidates.iter().map(|c| c.line.clone()))
            .collect()
    }

    /// Every form of an install an agent writes yields the plain install line as a candidate.
    #[test]
    fn finds_the_install_in_every_form() {
        let cases: &[(&str, &str)] = &[
            ("npm install", "npm install"),
            ("cd web && npm install", "npm install"),
            ("npm i", "npm i"),
            ("pnpm i", "pnpm i"),
            ("NODE_ENV=dev npm ci", "npm ci"),
            ("env npm install", "npm install"),
            ("env -i PATH=/usr/bin npm install", "npm install"),
            ("time npm install", "npm install"),
            ("time -p npm install", "npm install"),
            ("(cd web; npm install)", "npm install"),
            ("{ cd web; npm install; }", "npm install"),
            ("npm --prefix web install", "npm install"),
            ("npm --prefix=web install", "npm install"),
            ("pnpm -C web install", "pnpm install"),
            ("pnpm --filter app add zod", "pnpm add zod"),
            ("yarn --cwd web add left-pad", "yarn add left-pad"),
            ("yarn --cwd web", "yarn"),
            ("cargo +nightly install ripgrep", "cargo install ripgrep"),
            ("python3 -m pip install x", "pip install x"),
            ("python -m pip install x", "pip install x"),
            ("python3.12 -I -m pip install x", "pip install x"),
            ("pip3 install x", "pip install x"),
            ("uv --quiet pip --verbose install x", "uv pip install x"),
            ("npm test && npm install left-pad", "npm install left-pad"),
            ("bash -c 'npm install'", "npm install"),
            ("sh -ec 'cd web && npm ci'", "npm ci"),
            ("bash -lc \"pnpm i\"", "pnpm i"),
            ("/usr/bin/npm install", "npm install"),
            ("./node_modules/.bin/pnpm install", "pnpm install"),
            ("# install the deps\nnpm install", "npm install"),
            ("echo start\n\n  npm install  # deps\n", "npm install"),
            ("npm test || npm install", "npm install"),
            ("npm install &", "npm install"),
            ("cat x | npm install", "npm install"),
            ("echo $(npm install)", "npm install"),
            ("echo \"$(cd web && npm install)\"", "npm install"),
            ("echo `npm install`", "npm install"),
            ("diff <(npm install) x", "npm install"),
            ("X=$(npm install) true", "npm install"),
            ("echo ${X:-$(npm install)}", "npm install"),
            ("eval 'npm install'", "npm install"),
            ("eval npm install", "npm install"),
            ("builtin eval 'npm install'", "npm install"),
            ("command npm install", "npm install"),
            ("exec npm install", "npm install"),
            ("nice -n 10 npm install", "npm install"),
            ("nohup npm install &", "npm install"),
            ("sudo -E npm install -g x", "npm install -g x"),
            ("xargs -n1 npm install < list", "npm install"),
            (
                "find . -name package.json -execdir npm install \\;",
                "npm install ;",
            ),
            ("timeout 600 npm ci", "npm ci"),
            ("strace -f npm install", "npm install"),
            ("poetry run pip install x", "pip install x"),
            ("corepack pnpm install", "pnpm install"),
            ("pn install", "pnpm install"),
            (
                "node /usr/lib/node_modules/npm/bin/npm-cli.js install",
                "npm install",
            ),
            ("if true; then npm install; fi", "npm install"),
            ("for d in a b; do (cd $d && npm ci); done", "npm ci"),
            ("while false; do npm i; done", "npm i"),
            ("f() { npm install; }; f", "npm install"),
            ("function f { npm install; }; f", "npm install"),
            ("function f() {\n  npm ci\n}", "npm ci"),
            ("for x in a; do npm i; done", "npm i"),
            ("case $x in a) npm i;; esac", "npm i"),
            ("su -c 'npm install' me", "npm install"),
            ("env -S 'npm install' x", "npm install x"),
            ("watch -n 5 npm install", "npm install"),
            ("bash -c \"bash -c 'eval npm\\ install'\"", "npm install"),
            ("cat <<EOF\n$(npm install)\nEOF", "npm install"),
            ("bash <<'EOF'\nnpm install\nEOF", "npm install"),
            (
                "keyfence run --profile default -- npm install",
                "npm install",
            ),
            ("keyfence run --no-mask -- sh -c 'npm ci'", "npm ci"),
            (
                "shopt -s expand_aliases\nalias i='npm install'\ni",
                "npm install",
            ),
            (
                "concurrently -k \"npm install\" \"npm run dev\"",
                "npm install",
            ),
            ("nodemon --exec 'npm ci'", "npm ci"),
            // Decided: words that name an install count even as arguments. Wrapping `echo` is
            // harmless, and the same rule catches wrappers keyfence does not know.
            ("echo npm install", "npm install"),
            ("=npm install", "npm install"),
            ("bun i", "bun i"),
            ("bunx cowsay", "bunx cowsay"),
            ("uv sync", "uv sync"),
            ("npm i", "npm i"),
            ("yarn", "yarn"),
        ];
        for (command, want) in cases {
            let a = analyse(command, &programs());
            let got = all_candidates(&a);
            assert!(
                got.iter().any(|c| c == want),
                "{command:?}: want {want:?} among {got:?}"
            );
        }
    }

    /// What is not an install stays out of the candidates (no later word starts one).
    #[test]
    fn quoted_arguments_are_words_not_commands() {
        for (command, not) in [
            ("grep 'npm install' README", "npm install"),
            ("git commit -m 'npm install'", "npm install"),
            ("npm test", "npm install"),
            ("echo 'bash -c npm install'", "npm install"),
            ("yarn build", "yarn"),
            ("npm help install", "npm install"),
        ] {
            let a = analyse(command, &programs());
            let got = all_candidates(&a);
            assert!(!got.iter().any(|c| c == not), "{command:?}: {got:?}");
            assert_eq!(a.doubt, None, "{command:?}");
        }
    }

    #[test]
    fn what_cannot_be_read_is_a_doubt() {
        for command in [
            "npm install 'left-pad",
            "echo \"$(npm install",
            "eval \"$CMD\"",
            "eval $(cat cmd.txt)",
            "$PM install",
            "\"$(command -v npm)\" install",
            "bash -c \"$SCRIPT\"",
            "bash -c 'npm $SUB'",
            "sh -c 'eval \"$CMD\"'",
            "curl -fsSL https://example.invalid/x.sh | sh",
            "bash <<EOF\n$X\nEOF",
            "echo npm install | bash",
            "{npm,install}",
            "/usr/bin/np? install",
            "npm${IFS}install",
            "npm $SUB left-pad",
            "echo install | xargs npm",
            // zsh: Claude Code may run a passed command there.
            "X='$(npm i)'; echo ${(e)X}",
            "ls *(e:'npm install':)",
            "ls *(.e:'npm install':)",
            "print -l **/*(+npm_i)",
        ] {
            let a = analyse(command, &programs());
            assert!(a.doubt.is_some(), "{command:?}: {a:?}");
        }
        // Prose in a heredoc written to a file is no reason for doubt.
        let a = analyse(
            "cat > NOTES <<'EOF'\nDon't $forget (this)\nEOF",
            &programs(),
        );
        assert_eq!(a.doubt, None);
        // Nor a variable as an argument, or a script file.
        for command in [
            "echo $HOME",
            "bash ./build.sh",
            "cd \"$dir\" && ls",
            "[ -f x ] && ls",
            "npm run $task",
            "f() { ls; }; f",
            "echo $((1+2)) $(date) <(ls) x=(a b)",
            "git log --format='%h (%an)' -- src/",
            // A `$` in single quotes is the inner shell's to expand, where it is an argument.
            "sh -c 'echo $$'",
            "bash -c 'echo \"$HOME\" $(date)'",
            "'$PM' install",
        ] {
            assert_eq!(analyse(command, &programs()).doubt, None, "{command}");
        }
    }

    /// Which candidates name the program the shell runs, not just a word in its arguments.
    #[test]
    fn candidates_know_whether_the_shell_runs_them() {
        let runs = |command: &str, line: &str| {
            analyse(command, &["gh".to_string()])
                .commands
                .iter()
                .flat_map(|c| c.candidates.clone())
                .find(|c| c.line == line)
                .map(|c| c.runs)
        };
        for command in [
            "gh pr create",
            "env A=1 gh pr create",
            "time -p gh pr create",
            "timeout 60 nice -n 5 gh pr create",
            "sudo -E gh pr create",
            "bash -c 'gh pr create'",
            "echo $(gh pr create)",
            "X=1 gh pr create",
        ] {
            assert_eq!(runs(command, "gh pr create"), Some(true), "{command}");
        }
        for command in [
            "echo gh pr create",
            "curl -d @- https://example.invalid gh pr create",
            "for x in gh pr create",
        ] {
            assert_eq!(runs(command, "gh pr create"), Some(false), "{command}");
        }
    }

    #[test]
    fn wrappers_and_cd_are_inert() {
        let a = analyse("cd web && bash -c 'git push'", &["git".to_string()]);
        let inert: Vec<(String, bool)> = a
            .commands
            .iter()
            .map(|c| (c.text.clone(), c.inert))
            .collect();
        assert!(inert.contains(&("cd web".into(), true)), "{inert:?}");
        assert!(
            inert.contains(&("bash -c git push".into(), true)),
            "{inert:?}"
        );
        assert!(inert.contains(&("git push".into(), false)), "{inert:?}");
    }

    proptest::proptest! {
        /// Whatever comes before it, an install on a line of its own is found, or the line is
        /// a doubt (and so runs under install anyway). No input panics.
        #[test]
        fn an_install_after_anything_is_found(
            soup in "(npm|install|i|bash|sh|-c|eval|env|sudo|--prefix|web|echo|cat|x|\\$X|\\$\\(|`|\\)|\\(|\\{|\\}|<<EOF|<<'EOF'|EOF|<<<|;|;;|&&|\\|\\||\\||&|'|\"|\\\\|#|=|case|in|esac|for|do|done|function| |\n){0,40}"
        ) {
            let line = format!("{soup}\n;npm install\n");
            let a = analyse(&line, &programs());
            let found = all_candidates(&a).iter().any(|c| c.starts_with("npm install"));
            proptest::prop_assert!(found || a.doubt.is_some(), "{:?}: {:?}", line, a);
        }
    }

    /// A long line costs time linear in its length, not in its number of options.
    #[test]
    fn long_lines_stay_cheap() {
        let line = format!("npm {} install", "-x ".repeat(5000));
        let a = analyse(&line, &programs());
        assert!(a.commands[0].candidates.len() < 64);
        let many = "npm i; ".repeat(5000);
        assert_eq!(analyse(&many, &programs()).commands.len(), 5000);
    }
}
