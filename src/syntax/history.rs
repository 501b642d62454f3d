//! Shell history syntax: splits bash, zsh and fish history files into commands with their line
//! numbers, and finds the possible secrets in one typed command — variable assignments
//! (`KEY=value cmd`, `export KEY=value`, fish's `set -x KEY value`) and credentials handed to
//! HTTP tools (`curl -H 'x-api-key: ...'`, `-u user:password`, httpie `Header:value`, URLs with
//! `user:password@`).
//!
//! Hand-written on purpose: no crate parses shell history (or the shell start-up files the same
//! lexer serves) forgivingly with line numbers. Commands are split into words by
//! `syntax::shell`'s lexer, so a command here and in a start-up file are read the same way.

use crate::syntax::shell::{Dialect, Word};

/// Which shell wrote a history file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryKind {
    Bash,
    Zsh,
    Fish,
}

/// One command from a history file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// 1-based line of the command (its first line when it spans several).
    pub line: u32,
    pub command: Vec<u8>,
}

/// The commands of a history file, in file order. Empty commands are left out.
pub fn entries(text: &[u8], kind: HistoryKind) -> Vec<HistoryEntry> {
    match kind {
        HistoryKind::Bash => bash(text),
        HistoryKind::Zsh => zsh(text),
        HistoryKind::Fish => fish(text),
    }
}

/// Lines with their 1-based numbers, without the newline or a trailing carriage return.
fn lines(text: &[u8]) -> impl Iterator<Item = (u32, &[u8])> {
    text.split(|&b| b == b'\n').enumerate().map(|(i, l)| {
        let n = u32::try_from(i).map_or(u32::MAX, |n| n.saturating_add(1));
        (n, l.strip_suffix(b"\r").unwrap_or(l))
    })
}

fn is_blank(l: &[u8]) -> bool {
    l.iter().all(u8::is_ascii_whitespace)
}

/// Bash: one command per line; `#1700000000` lines are timestamps (HISTTIMEFORMAT).
fn bash(text: &[u8]) -> Vec<HistoryEntry> {
    lines(text)
        .filter(|(_, l)| !is_blank(l) && !is_timestamp(l))
        .map(|(line, l)| HistoryEntry {
            line,
            command: l.to_vec(),
        })
        .collect()
}

fn is_timestamp(l: &[u8]) -> bool {
    match l.strip_prefix(b"#") {
        Some(rest) => {
            let rest = rest.trim_ascii_end();
            !rest.is_empty() && rest.iter().all(u8::is_ascii_digit)
        }
        None => false,
    }
}

/// Zsh: plain lines or `: <start>:<elapsed>;command` (EXTENDED_HISTORY); a line ending in a
/// backslash continues on the next (zsh's way of saving a newline inside a command); bytes are
/// metafied (0x83 then the byte XOR 0x20).
fn zsh(text: &[u8]) -> Vec<HistoryEntry> {
    let mut out = Vec::new();
    let mut cur: Option<HistoryEntry> = None;
    for (line, raw) in lines(text) {
        let l = unmetafy(raw);
        let mut entry = match cur.take() {
            Some(mut e) => {
                e.command.push(b'\n');
                e.command.extend_from_slice(&l);
                e
            }
            None => HistoryEntry {
                line,
                command: strip_extended(&l).to_vec(),
            },
        };
        if entry.command.last() == Some(&b'\\') {
            entry.command.pop();
            cur = Some(entry);
        } else if !is_blank(&entry.command) {
            out.push(entry);
        }
    }
    if let Some(e) = cur.filter(|e| !is_blank(&e.command)) {
        out.push(e);
    }
    out
}

fn unmetafy(l: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(l.len());
    let mut it = l.iter();
    while let Some(&b) = it.next() {
        if b == 0x83 {
            if let Some(&n) = it.next() {
                out.push(n ^ 0x20);
            }
        } else {
            out.push(b);
        }
    }
    out
}

/// The command of a `: 1700000000:0;command` line; the line itself when it is not one.
fn strip_extended(l: &[u8]) -> &[u8] {
    fn digits(s: &[u8]) -> Option<&[u8]> {
        let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 { None } else { s.get(n..) }
    }
    let parsed = (|| {
        let rest = l.strip_prefix(b":")?.trim_ascii_start();
        let rest = digits(rest)?.strip_prefix(b":")?;
        digits(rest)?.strip_prefix(b";")
    })();
    parsed.unwrap_or(l)
}

/// Fish: YAML-like `- cmd: ...` entries (with `when:` and `paths:` lines, ignored); the command
/// escapes newlines as `\n` and backslashes as `\\`.
fn fish(text: &[u8]) -> Vec<HistoryEntry> {
    lines(text)
        .filter_map(|(line, l)| {
            let rest = l.strip_prefix(b"- cmd:")?;
            let rest = rest.strip_prefix(b" ").unwrap_or(rest);
            let command = fish_unescape(rest);
            (!is_blank(&command)).then_some(HistoryEntry { line, command })
        })
        .collect()
}

fn fish_unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.iter().copied().peekable();
    while let Some(b) = it.next() {
        if b == b'\\' {
            match it.peek() {
                Some(b'n') => {
                    it.next();
                    out.push(b'\n');
                }
                Some(b'\\') => {
                    it.next();
                    out.push(b'\\');
                }
                _ => out.push(b),
            }
        } else {
            out.push(b);
        }
    }
    out
}

/// What made a value a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CandidateKind {
    /// `KEY=value cmd` and `export KEY=value` (exported), `KEY=value` alone (not).
    Assignment { exported: bool },
    /// An HTTP header, by lowercase name; `userinfo` for a password given as `user:password`.
    Header { header: String },
}

/// A possible secret in a typed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The variable name for assignments; `None` for headers.
    pub name: Option<String>,
    /// The possible secret itself (for `Authorization: Bearer X`, just `X`). Never empty.
    pub value: Vec<u8>,
    pub kind: CandidateKind,
}

/// Possible secrets in one command line: assignments first, then headers and passwords, each
/// in the order written.
pub fn command_candidates(command: &[u8]) -> Vec<Candidate> {
    let cmds = super::shell::split_commands(command, Dialect::Posix);
    let parsed = super::shell::parse_commands(&cmds, Dialect::Posix, true);
    let mut out: Vec<Candidate> = parsed
        .assignments
        .into_iter()
        .filter(|a| !a.value.is_empty())
        .map(|a| Candidate {
            name: Some(a.name),
            value: a.value,
            kind: CandidateKind::Assignment {
                exported: a.exported,
            },
        })
        .collect();
    for cmd in &cmds {
        credentials(&cmd.words, &mut out);
    }
    out
}

/// Programs whose `-u user:password` is an HTTP password.
const HTTP_TOOLS: &[&str] = &[
    "curl", "wget", "wget2", "http", "https", "xh", "xhs", "httpie", "curlie", "grpcurl",
];

/// Programs taking httpie's `Header:value` request items.
const HTTPIE_TOOLS: &[&str] = &["http", "https", "xh", "xhs", "httpie", "curlie"];

/// httpie options followed by a value (so that value is not a request item).
const HTTPIE_VALUE_OPTIONS: &[&str] = &[
    "-a",
    "--auth",
    "-A",
    "--auth-type",
    "-o",
    "--output",
    "--session",
    "--session-read-only",
    "-p",
    "--print",
    "-P",
    "--history-print",
    "--pretty",
    "-s",
    "--style",
    "--verify",
    "--cert",
    "--cert-key",
    "--proxy",
    "--timeout",
    "--max-redirects",
    "--default-scheme",
    "--format-options",
    "--boundary",
    "--raw",
    "--response-charset",
    "--response-mime",
    "--ssl",
    "--ciphers",
];

/// Options whose value is a bare password.
const PASSWORD_OPTIONS: &[&str] = &[
    "--password",
    "--http-password",
    "--proxy-password",
    "--ftp-password",
];

fn program(w: &Word) -> &[u8] {
    let t = w.text.as_slice();
    match t.iter().rposition(|&b| b == b'/') {
        Some(p) => t.get(p + 1..).unwrap_or_default(),
        None => t,
    }
}

fn is_one_of(t: &[u8], list: &[&str]) -> bool {
    list.iter().any(|s| s.as_bytes() == t)
}

fn credentials(words: &[Word], out: &mut Vec<Candidate>) {
    let http_tool = words
        .iter()
        .any(|w| w.assign.is_none() && is_one_of(program(w), HTTP_TOOLS));
    let httpie_at = words
        .iter()
        .position(|w| w.assign.is_none() && is_one_of(program(w), HTTPIE_TOOLS));
    // httpie: [METHOD] URL then request items.
    let mut positional = 0;
    let mut method = false;
    let mut i = 0;
    while let Some(w) = words.get(i) {
        let t = w.text.as_slice();
        let next = words.get(i + 1).map(|n| n.text.as_slice());
        i += 1;
        if w.assign.is_none() {
            // An assignment's value is already a candidate of its own.
            url_userinfo(t, out);
        }
        // curl's clustered short options: `-sSH 'x-api-key: ...'`, `-su user:password`.
        let cluster = http_tool
            && t.len() > 2
            && t.first() == Some(&b'-')
            && t.get(1..)
                .is_some_and(|f| f.iter().all(u8::is_ascii_alphabetic));
        if cluster && matches!(t.last(), Some(b'H' | b'u')) {
            if let Some(n) = next {
                if t.last() == Some(&b'H') {
                    header(n, out);
                } else {
                    userinfo(n, out);
                }
                i += 1;
            }
            continue;
        }
        if t == b"-H" || t == b"--header" {
            if let Some(n) = next {
                header(n, out);
                i += 1;
            }
            continue;
        }
        if let Some(rest) = t.strip_prefix(b"--header=") {
            header(rest, out);
            continue;
        }
        if let Some(rest) = t.strip_prefix(b"-H").filter(|r| !r.is_empty()) {
            header(rest, out);
            continue;
        }
        if http_tool {
            if is_one_of(t, &["-u", "--user", "-U", "--proxy-user"]) {
                if let Some(n) = next {
                    userinfo(n, out);
                    i += 1;
                }
                continue;
            }
            if let Some(rest) = t
                .strip_prefix(b"--user=")
                .or_else(|| t.strip_prefix(b"--proxy-user="))
                .or_else(|| t.strip_prefix(b"-u").filter(|r| !r.is_empty()))
            {
                userinfo(rest, out);
                continue;
            }
            if is_one_of(t, PASSWORD_OPTIONS) {
                if let Some(n) = next {
                    push_password(n, out);
                    i += 1;
                }
                continue;
            }
            if let Some(rest) = PASSWORD_OPTIONS.iter().find_map(|o| {
                t.strip_prefix(o.as_bytes())
                    .and_then(|r| r.strip_prefix(b"="))
            }) {
                push_password(rest, out);
                continue;
            }
        }
        let Some(start) = httpie_at else { continue };
        if i <= start + 1 {
            continue;
        }
        if t == b"-a" || t == b"--auth" {
            if let Some(n) = next {
                httpie_auth(n, out);
            }
        } else if let Some(rest) = t.strip_prefix(b"--auth=") {
            httpie_auth(rest, out);
            continue;
        }
        if is_one_of(t, HTTPIE_VALUE_OPTIONS) {
            i += 1;
            continue;
        }
        if t.first() == Some(&b'-') {
            continue;
        }
        positional += 1;
        if positional == 1 && !t.is_empty() && t.iter().all(u8::is_ascii_uppercase) {
            method = true;
        } else if positional > 1 + usize::from(method) {
            httpie_item(t, out);
        }
    }
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

/// An HTTP header name (RFC 9110 token).
fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `Name: value` as given to `-H`.
fn header(raw: &[u8], out: &mut Vec<Candidate>) {
    let Some(colon) = raw.iter().position(|&b| b == b':') else {
        return;
    };
    let (name, value) = (
        trim(raw.get(..colon).unwrap_or_default()),
        raw.get(colon + 1..),
    );
    if is_token(name) {
        push_header(name, trim(value.unwrap_or_default()), out);
    }
}

fn push_header(name: &[u8], value: &[u8], out: &mut Vec<Candidate>) {
    let header = String::from_utf8_lossy(name).to_ascii_lowercase();
    let mut value = value;
    if header == "authorization" || header == "proxy-authorization" {
        // `Bearer X`, `token X`, `Basic X`: the scheme is not the secret.
        if let Some(sp) = value.iter().position(u8::is_ascii_whitespace) {
            value = trim(value.get(sp..).unwrap_or_default());
        }
    }
    if !value.is_empty() {
        out.push(Candidate {
            name: None,
            value: value.to_vec(),
            kind: CandidateKind::Header { header },
        });
    }
}

fn push_password(value: &[u8], out: &mut Vec<Candidate>) {
    if !value.is_empty() {
        out.push(Candidate {
            name: None,
            value: value.to_vec(),
            kind: CandidateKind::Header {
                header: "userinfo".to_string(),
            },
        });
    }
}

/// `user:password`: the password. Without a colon the tool asks for it, so nothing is exposed.
fn userinfo(raw: &[u8], out: &mut Vec<Candidate>) {
    if let Some(colon) = raw.iter().position(|&b| b == b':') {
        push_password(raw.get(colon + 1..).unwrap_or_default(), out);
    }
}

/// httpie `-a user:password`, or `-a TOKEN` (with `-A bearer`).
fn httpie_auth(raw: &[u8], out: &mut Vec<Candidate>) {
    if raw.contains(&b':') {
        userinfo(raw, out);
    } else {
        push_header(b"authorization", raw, out);
    }
}

/// An httpie request item `Name:value` (not `name:=json`, `Name:@file`, or a `host:port`).
fn httpie_item(t: &[u8], out: &mut Vec<Candidate>) {
    let Some(colon) = t.iter().position(|&b| b == b':') else {
        return;
    };
    let name = t.get(..colon).unwrap_or_default();
    let value = t.get(colon + 1..).unwrap_or_default();
    if !is_token(name) || name.contains(&b'.') {
        return;
    }
    if matches!(value.first(), Some(b'=' | b'@' | b'/')) {
        return;
    }
    let port = value.split(|&b| b == b'/').next().unwrap_or_default();
    if !port.is_empty() && port.iter().all(u8::is_ascii_digit) {
        return;
    }
    push_header(name, trim(value), out);
}

/// `scheme://user:password@host/...` anywhere in a word.
fn url_userinfo(t: &[u8], out: &mut Vec<Candidate>) {
    let Some(p) = t.windows(3).position(|w| w == b"://") else {
        return;
    };
    let rest = t.get(p + 3..).unwrap_or_default();
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#') || b.is_ascii_whitespace())
        .unwrap_or(rest.len());
    let authority = rest.get(..end).unwrap_or_default();
    if let Some(at) = authority.iter().rposition(|&b| b == b'@') {
        userinfo(authority.get(..at).unwrap_or_default(), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FAKE: &str = "Hq3vT9xLm2Zr8WbK5nYp4Jc7";

    fn ents(text: &[u8], kind: HistoryKind) -> Vec<(u32, String)> {
        entries(text, kind)
            .into_iter()
            .map(|e| (e.line, String::from_utf8_lossy(&e.command).into_owned()))
            .collect()
    }

    fn want(v: &[(u32, &str)]) -> Vec<(u32, String)> {
        v.iter().map(|(l, c)| (*l, c.to_string())).collect()
    }

    #[test]
    fn bash_entries() {
        let cases: &[(&str, &[(u32, &str)])] = &[
            ("ls\ncd /tmp\n", &[(1, "ls"), (2, "cd /tmp")]),
            (
                "#1700000000\nls\n#1700000001\ncd\n",
                &[(2, "ls"), (4, "cd")],
            ),
            (
                "# a comment typed\nls",
                &[(1, "# a comment typed"), (2, "ls")],
            ),
            ("#\nls", &[(1, "#"), (2, "ls")]),
            ("ls\n\n   \ncd", &[(1, "ls"), (4, "cd")]),
            ("ls\r\ncd\r\n", &[(1, "ls"), (2, "cd")]),
            ("", &[]),
            ("\n\n", &[]),
            ("export K=v", &[(1, "export K=v")]),
            ("#1700000000 \nls", &[(2, "ls")]),
        ];
        for (text, w) in cases {
            assert_eq!(
                ents(text.as_bytes(), HistoryKind::Bash),
                want(w),
                "{text:?}"
            );
        }
    }

    #[test]
    fn zsh_entries() {
        let cases: &[(&str, &[(u32, &str)])] = &[
            ("ls\ncd\n", &[(1, "ls"), (2, "cd")]),
            (": 1700000000:0;ls -la\n", &[(1, "ls -la")]),
            (
                ": 1700000000:12;export K=v\n: 1700000001:0;cd\n",
                &[(1, "export K=v"), (2, "cd")],
            ),
            (
                ": 1700000000:0;echo a\\\necho b\nls",
                &[(1, "echo a\necho b"), (3, "ls")],
            ),
            ("a\\\nb\\\nc\nd", &[(1, "a\nb\nc"), (4, "d")]),
            ("trailing\\", &[(1, "trailing")]),
            (": 1700000000:0;", &[]),
            (":1700000000:0;ls", &[(1, "ls")]),
            (": not extended", &[(1, ": not extended")]),
            (": 17x:0;ls", &[(1, ": 17x:0;ls")]),
            (": 1700000000:0;a;b", &[(1, "a;b")]),
            ("ls\r\n", &[(1, "ls")]),
        ];
        for (text, w) in cases {
            assert_eq!(ents(text.as_bytes(), HistoryKind::Zsh), want(w), "{text:?}");
        }
    }

    #[test]
    fn zsh_unmetafies() {
        // "é" is C3 A9; zsh stores A9 (a meta byte) as 83 89.
        let text = b": 1700000000:0;echo caf\xc3\x83\x89\n";
        let e = entries(text, HistoryKind::Zsh);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].command, "echo café".as_bytes());
        let e = entries(b"a\x83", HistoryKind::Zsh);
        assert_eq!(e[0].command, b"a");
        let e = entries(b"\x83\xa3x", HistoryKind::Zsh);
        assert_eq!(e[0].command, b"\x83x");
    }

    #[test]
    fn fish_entries() {
        let text = "- cmd: ls\n  when: 1700000000\n- cmd: cd /tmp\n  when: 1700000001\n  paths:\n    - /tmp\n- cmd: echo a\\nb \\\\n\n  when: 1\n- cmd: \n- cmd:   spaced\n";
        assert_eq!(
            ents(text.as_bytes(), HistoryKind::Fish),
            want(&[
                (1, "ls"),
                (3, "cd /tmp"),
                (7, "echo a\nb \\n"),
                (10, "  spaced")
            ])
        );
        assert_eq!(
            ents(
                b"garbage\n  - cmd: no\n- cmd: set -gx K v",
                HistoryKind::Fish
            ),
            want(&[(3, "set -gx K v")])
        );
        assert_eq!(
            ents(b"- cmd: a\\qb\\", HistoryKind::Fish),
            want(&[(1, "a\\qb\\")])
        );
    }

    fn assignment(name: &str, value: &str, exported: bool) -> Candidate {
        Candidate {
            name: Some(name.to_string()),
            value: value.as_bytes().to_vec(),
            kind: CandidateKind::Assignment { exported },
        }
    }

    fn header(header: &str, value: &str) -> Candidate {
        Candidate {
            name: None,
            value: value.as_bytes().to_vec(),
            kind: CandidateKind::Header {
                header: header.to_string(),
            },
        }
    }

    fn check(cases: &[(&str, Vec<Candidate>)]) {
        for (cmd, want) in cases {
            assert_eq!(&command_candidates(cmd.as_bytes()), want, "{cmd:?}");
        }
    }

    #[test]
    fn assignment_candidates() {
        check(&[
            (
                "OPENAI_API_KEY=Hq3vT9xLm2Zr8WbK5nYp4Jc7 python app.py",
                vec![assignment("OPENAI_API_KEY", FAKE, true)],
            ),
            (
                "export K=Hq3vT9xLm2Zr8WbK5nYp4Jc7",
                vec![assignment("K", FAKE, true)],
            ),
            (
                "export K='Hq3vT9xLm2Zr8WbK5nYp4Jc7'",
                vec![assignment("K", FAKE, true)],
            ),
            (
                "K=\"Hq3vT9xLm2Zr8WbK5nYp4Jc7\"",
                vec![assignment("K", FAKE, false)],
            ),
            ("K=v; export K", vec![assignment("K", "v", true)]),
            (
                "A=1 B=2 cmd",
                vec![assignment("A", "1", true), assignment("B", "2", true)],
            ),
            ("cd x && K=v make", vec![assignment("K", "v", true)]),
            ("cat f | K=v tool", vec![assignment("K", "v", true)]),
            ("K=v", vec![assignment("K", "v", false)]),
            ("K= cmd", vec![]),
            ("env K=v cmd", vec![assignment("K", "v", true)]),
            ("sudo env K=v cmd", vec![]),
            ("declare -x K=v", vec![assignment("K", "v", true)]),
            ("set -gx K v", vec![assignment("K", "v", true)]),
            ("set -Ux K v", vec![assignment("K", "v", true)]),
            ("set -g K v", vec![assignment("K", "v", false)]),
            ("set -x", vec![]),
            ("set -euo pipefail", vec![]),
            ("echo K=v", vec![]),
            ("export K=$OTHER", vec![assignment("K", "$OTHER", true)]),
            (
                "if true; then export K=v; fi",
                vec![assignment("K", "v", true)],
            ),
        ]);
    }

    #[test]
    fn header_candidates() {
        check(&[
            (
                "curl -H 'x-api-key: Hq3vT9xLm2Zr8WbK5nYp4Jc7' https://api.example.com",
                vec![header("x-api-key", FAKE)],
            ),
            (
                "curl --header \"Authorization: Bearer Hq3vT9xLm2Zr8WbK5nYp4Jc7\" https://x",
                vec![header("authorization", FAKE)],
            ),
            (
                "curl -H \"Authorization: token Hq3vT9xLm2Zr8WbK5nYp4Jc7\" https://x",
                vec![header("authorization", FAKE)],
            ),
            (
                "curl -H 'authorization:   Bearer    Hq3vT9xLm2Zr8WbK5nYp4Jc7  ' https://x",
                vec![header("authorization", FAKE)],
            ),
            (
                "curl --header='X-Api-Key: Hq3vT9xLm2Zr8WbK5nYp4Jc7' https://x",
                vec![header("x-api-key", FAKE)],
            ),
            (
                "curl -H'X-Api-Key: Hq3vT9xLm2Zr8WbK5nYp4Jc7' https://x",
                vec![header("x-api-key", FAKE)],
            ),
            (
                "wget --header='X-API-KEY: Hq3vT9xLm2Zr8WbK5nYp4Jc7' https://x",
                vec![header("x-api-key", FAKE)],
            ),
            (
                "wget --header 'PRIVATE-TOKEN: Hq3vT9xLm2Zr8WbK5nYp4Jc7' https://x",
                vec![header("private-token", FAKE)],
            ),
            (
                "curl -H 'Proxy-Authorization: Basic SHEzdlQ5eExtMlpyOA==' https://x",
                vec![header("proxy-authorization", "SHEzdlQ5eExtMlpyOA==")],
            ),
            (
                "curl -H 'Authorization: Hq3vT9xLm2Zr8WbK5nYp4Jc7' https://x",
                vec![header("authorization", FAKE)],
            ),
            (
                "curl -s -H 'Accept: application/json' -H 'x-api-key: Hq3vT9xLm2Zr8WbK5nYp4Jc7' https://x",
                vec![
                    header("accept", "application/json"),
                    header("x-api-key", FAKE),
                ],
            ),
            ("curl -H 'X-Empty:' https://x", vec![]),
            ("curl -H 'X-Removed;' https://x", vec![]),
            ("curl -H @headers.txt https://x", vec![]),
            ("curl -H", vec![]),
            ("curl -H 'bad name: v' https://x", vec![]),
            (
                "curl -H \"Authorization: Bearer $TOKEN\" https://x",
                vec![header("authorization", "$TOKEN")],
            ),
            (
                "K=v curl -H 'x-api-key: Hq3vT9xLm2Zr8WbK5nYp4Jc7' https://x",
                vec![assignment("K", "v", true), header("x-api-key", FAKE)],
            ),
            (
                "cd /tmp; curl -H 'x-api-key: Hq3vT9xLm2Zr8WbK5nYp4Jc7' https://x | jq .",
                vec![header("x-api-key", FAKE)],
            ),
            ("grep -H pattern file", vec![]),
            ("grep -rH 'x-api-key: v' .", vec![]),
            (
                "curl -sSH 'x-api-key: Hq3vT9xLm2Zr8WbK5nYp4Jc7' https://x",
                vec![header("x-api-key", FAKE)],
            ),
            (
                "curl -sfH \"Authorization: Bearer Hq3vT9xLm2Zr8WbK5nYp4Jc7\" https://x",
                vec![header("authorization", FAKE)],
            ),
        ]);
    }

    #[test]
    fn httpie_candidates() {
        check(&[
            (
                "http GET https://api.example.com x-api-key:Hq3vT9xLm2Zr8WbK5nYp4Jc7",
                vec![header("x-api-key", FAKE)],
            ),
            (
                "http https://api.example.com 'Authorization:Bearer Hq3vT9xLm2Zr8WbK5nYp4Jc7'",
                vec![header("authorization", FAKE)],
            ),
            (
                "https POST api.example.com X-Api-Key:Hq3vT9xLm2Zr8WbK5nYp4Jc7 name=x",
                vec![header("x-api-key", FAKE)],
            ),
            (
                "xh api.example.com/v1 'x-api-key: Hq3vT9xLm2Zr8WbK5nYp4Jc7'",
                vec![header("x-api-key", FAKE)],
            ),
            ("http localhost:8080 a==b c:=1 d@file", vec![]),
            ("http POST localhost:8080/path", vec![]),
            ("http :3000/api", vec![]),
            ("http example.com x-file:@path", vec![]),
            (
                "http -a user:Hq3vT9xLm2Zr8WbK5nYp4Jc7 example.com",
                vec![header("userinfo", FAKE)],
            ),
            (
                "http -A bearer -a Hq3vT9xLm2Zr8WbK5nYp4Jc7 example.com",
                vec![header("authorization", FAKE)],
            ),
            (
                "http --auth=user:Hq3vT9xLm2Zr8WbK5nYp4Jc7 example.com",
                vec![header("userinfo", FAKE)],
            ),
            (
                "http --session s1 example.com x-api-key:Hq3vT9xLm2Zr8WbK5nYp4Jc7",
                vec![header("x-api-key", FAKE)],
            ),
            ("echo x-api-key:v", vec![]),
        ]);
    }

    #[test]
    fn password_candidates() {
        check(&[
            (
                "curl -u user:Hq3vT9xLm2Zr8WbK5nYp4Jc7 https://x",
                vec![header("userinfo", FAKE)],
            ),
            (
                "curl --user 'user:Hq3vT9xLm2Zr8WbK5nYp4Jc7' https://x",
                vec![header("userinfo", FAKE)],
            ),
            (
                "curl --user=user:Hq3vT9xLm2Zr8WbK5nYp4Jc7 https://x",
                vec![header("userinfo", FAKE)],
            ),
            (
                "curl -uuser:Hq3vT9xLm2Zr8WbK5nYp4Jc7 https://x",
                vec![header("userinfo", FAKE)],
            ),
            (
                "/usr/bin/curl -u user:a:b https://x",
                vec![header("userinfo", "a:b")],
            ),
            ("curl -u user https://x", vec![]),
            (
                "curl -su user:Hq3vT9xLm2Zr8WbK5nYp4Jc7 https://x",
                vec![header("userinfo", FAKE)],
            ),
            (
                "export DATABASE_URL=postgres://app:Hq3vT9xLm2Zr8WbK5nYp4Jc7@db/x",
                vec![assignment(
                    "DATABASE_URL",
                    "postgres://app:Hq3vT9xLm2Zr8WbK5nYp4Jc7@db/x",
                    true,
                )],
            ),
            ("curl -u user: https://x", vec![]),
            ("sudo -u root:x cmd", vec![]),
            (
                "wget --password=Hq3vT9xLm2Zr8WbK5nYp4Jc7 https://x",
                vec![header("userinfo", FAKE)],
            ),
            (
                "wget --http-password Hq3vT9xLm2Zr8WbK5nYp4Jc7 https://x",
                vec![header("userinfo", FAKE)],
            ),
            (
                "git clone https://user:Hq3vT9xLm2Zr8WbK5nYp4Jc7@git.example.com/r.git",
                vec![header("userinfo", FAKE)],
            ),
            ("git clone https://git.example.com/a:b@c", vec![]),
            ("psql postgres://app@db/x", vec![]),
        ]);
    }

    fn line_count(text: &[u8]) -> u32 {
        text.iter().filter(|&&b| b == b'\n').count() as u32 + 1
    }

    fn check_entries(text: &[u8]) {
        let max = line_count(text);
        for kind in [HistoryKind::Bash, HistoryKind::Zsh, HistoryKind::Fish] {
            let mut last = 0;
            for e in entries(text, kind) {
                assert!(e.line >= 1 && e.line <= max, "{e:?}");
                assert!(e.line > last, "lines go forward: {e:?}");
                last = e.line;
                check_candidates(&e.command);
            }
        }
    }

    fn check_candidates(command: &[u8]) {
        for c in command_candidates(command) {
            assert!(!c.value.is_empty(), "{c:?}");
            match &c.kind {
                CandidateKind::Assignment { .. } => {
                    assert!(c.name.as_deref().is_some_and(|n| !n.is_empty()), "{c:?}");
                }
                CandidateKind::Header { header } => {
                    assert!(c.name.is_none(), "{c:?}");
                    assert_eq!(header, &header.to_ascii_lowercase());
                }
            }
        }
    }

    fn commandish() -> impl Strategy<Value = Vec<u8>> {
        let tokens = vec![
            "curl ",
            "http ",
            "wget ",
            "-H ",
            "--header ",
            "--header=",
            "-u ",
            "-a ",
            "'",
            "\"",
            "x-api-key: ",
            "Authorization: Bearer ",
            "K=",
            "v",
            " ",
            ";",
            "&&",
            "|",
            "\n",
            "export ",
            "set -gx ",
            "https://u:p@h/",
            ":",
            "\\",
            "$(",
            ")",
            "-H",
            "--user=",
            "#",
            ": 1700000000:0;",
            "- cmd: ",
            "\\n",
            "\u{83}",
        ];
        let mut tokens: Vec<&'static [u8]> = tokens.into_iter().map(str::as_bytes).collect();
        tokens.push(b"\x83");
        prop::collection::vec(prop::sample::select(tokens), 0..120).prop_map(|t| t.concat())
    }

    proptest! {
        #[test]
        fn entries_never_panic(text in prop::collection::vec(any::<u8>(), 0..2048)) {
            check_entries(&text);
        }

        #[test]
        fn commandish_entries_never_panic(text in commandish()) {
            check_entries(&text);
        }

        #[test]
        fn candidates_never_panic(command in prop::collection::vec(any::<u8>(), 0..1024)) {
            check_candidates(&command);
        }

        #[test]
        fn commandish_candidates_never_panic(command in commandish()) {
            check_candidates(&command);
        }

        #[test]
        fn header_value_round_trips(value in "[A-Za-z0-9_.+/=-]{1,40}") {
            let cmd = format!("curl -H 'x-api-key: {value}' https://example.com");
            prop_assert_eq!(
                command_candidates(cmd.as_bytes()),
                vec![Candidate {
                    name: None,
                    value: value.as_bytes().to_vec(),
                    kind: CandidateKind::Header { header: "x-api-key".into() },
                }]
            );
        }

        #[test]
        fn bash_entry_lines_match_file_lines(cmds in prop::collection::vec("[a-z][a-z =]{0,20}", 1..40)) {
            let text = cmds.iter().map(|c| format!("#1700000000\n{c}\n")).collect::<String>();
            let e = entries(text.as_bytes(), HistoryKind::Bash);
            prop_assert_eq!(e.len(), cmds.len());
            for (i, entry) in e.iter().enumerate() {
                prop_assert_eq!(entry.line as usize, 2 * i + 2);
                prop_assert_eq!(&entry.command, cmds[i].as_bytes());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn long_histories_never_panic(
            chunks in prop::collection::vec(prop_oneof![
                prop::collection::vec(any::<u8>(), 0..256),
                commandish(),
            ], 64..256)
        ) {
            check_entries(&chunks.concat());
        }
    }
}
