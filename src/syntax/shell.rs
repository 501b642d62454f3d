//! Shell start-up file syntax: a forgiving, line-aware lexer for sh/bash/zsh/ksh, fish and
//! csh/tcsh files that reports variable assignments (with whether the shell exports them) and
//! `source` lines, each with the line and column where it is written.
//!
//! This module owns the shell word lexer for the whole crate: quoting, escapes, line
//! continuations, comments, heredocs and command separators. `syntax::history` splits typed
//! commands with the same lexer (`split_commands`), so both agree on what a word is.
//!
//! Hand-written on purpose: no crate parses shell start-up files forgivingly with line numbers
//! (shell parsers reject what the shell would only warn about, and lose positions). Nothing here
//! expands anything: `$VAR`, `${VAR}`, `$(cmd)` and backquotes stay in a value as written, so a
//! caller can tell a reference from a literal. Broken input never fails: an unclosed quote is
//! read as a literal quote character, and the scan always ends in time linear in the input.

use std::collections::{HashMap, HashSet};

/// Which shell's syntax a file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// sh, bash, zsh, ksh.
    Posix,
    Fish,
    /// csh, tcsh.
    Csh,
}

/// One variable assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub name: String,
    /// After quote removal and escape processing; references are kept as written.
    pub value: Vec<u8>,
    /// 1-based line where the value starts.
    pub line: u32,
    /// 1-based byte column where the name starts.
    pub column: u32,
    /// Whether processes started by the shell get it in their environment.
    pub exported: bool,
}

/// A `source FILE` / `. FILE` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced {
    /// As written, unquoted (may contain `~`, `$HOME`, `${HOME}`).
    pub path: String,
    pub line: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub assignments: Vec<Assignment>,
    pub sources: Vec<Sourced>,
}

/// Assignments and `source` lines of a start-up file. Never fails: what cannot be understood is
/// skipped.
pub fn parse(text: &[u8], dialect: Dialect) -> Parsed {
    parse_commands(&split_commands(text, dialect), dialect, false)
}

// ---------------------------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------------------------

/// One shell word after quote removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    /// Quotes removed, escapes processed, substitutions kept as written.
    pub(crate) text: Vec<u8>,
    /// 1-based line and byte column of the word's first byte.
    pub(crate) line: u32,
    pub(crate) column: u32,
    /// Set when the word starts with an unquoted `NAME=` (or `NAME+=`).
    pub(crate) assign: Option<AssignSplit>,
    /// No quoting, escapes or substitutions: only such words can be reserved words.
    pub(crate) literal: bool,
    /// The shell expands something in it when it runs it (`$X`, `$(...)`, `${...}`, a
    /// backquote; unquoted or in double quotes): what the word holds is only known then. A
    /// `$` in single quotes is not an expansion.
    pub(crate) expands: bool,
}

/// Where the name and value of an assignment word are in its `text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AssignSplit {
    pub(crate) name_len: usize,
    pub(crate) value_start: usize,
    /// 1-based line of the value's first byte (the `=`'s line when the value is empty).
    pub(crate) value_line: u32,
}

impl Word {
    /// `(name, value)` of an assignment word.
    pub(crate) fn assignment(&self) -> Option<(&str, &[u8])> {
        let a = self.assign?;
        let name = std::str::from_utf8(self.text.get(..a.name_len)?).ok()?;
        let value = self.text.get(a.value_start..)?;
        Some((name, value))
    }

    fn is(&self, s: &str) -> bool {
        self.text == s.as_bytes()
    }
}

/// What ended a simple command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sep {
    Newline,
    /// `;` (and `;;`, `;&` in case statements).
    Semi,
    /// `&&`
    And,
    /// `||`
    Or,
    /// `|`, `|&`
    Pipe,
    /// `&`
    Amp,
    /// `(`
    Open,
    /// `)`
    Close,
    /// End of input.
    End,
}

/// A simple command: its words (redirections removed) and what ended it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Command {
    pub(crate) words: Vec<Word>,
    pub(crate) end: Sep,
}

/// Splits `text` into simple commands. Comments, heredoc bodies and redirections (with their
/// targets) are dropped; every byte of input is looked at a bounded number of times.
pub(crate) fn split_commands(text: &[u8], dialect: Dialect) -> Vec<Command> {
    split_script(text, dialect).commands
}

/// What `split_commands` read, and what it kept as written without looking inside: code that
/// the shell may still run (`$(...)`, backquotes, `<(...)`, `${...}`, `((...))`, heredoc
/// bodies), and whether some quote or substitution never closed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Script {
    pub(crate) commands: Vec<Command>,
    /// Each as written, openers and closers removed (a backquoted body keeps its backslashes).
    pub(crate) nested: Vec<Nested>,
    /// A quote, substitution or arithmetic that did not close: the words after it are a guess.
    pub(crate) unclosed: bool,
}

/// One piece of code the lexer copied without splitting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Nested {
    /// `$(...)`, `<(...)`, `>(...)`, `((...))`, `$((...))`.
    Code(Vec<u8>),
    /// `${...}`: a parameter expansion, which may hold substitutions.
    Param(Vec<u8>),
    /// `` `...` ``: backslash escapes still in.
    Backquoted(Vec<u8>),
    /// A heredoc's body.
    Heredoc(Vec<u8>),
}

/// `split_commands`, with what the lexer skipped over (Posix and fish only see the commands).
pub(crate) fn split_script(text: &[u8], dialect: Dialect) -> Script {
    let mut lx = Lexer::new(text, dialect);
    let mut out = Vec::new();
    let mut cur: Vec<Word> = Vec::new();
    let mut end = |cur: &mut Vec<Word>, sep: Sep| {
        out.push(Command {
            words: std::mem::take(cur),
            end: sep,
        });
    };
    loop {
        let Some(c) = lx.peek() else {
            end(&mut cur, Sep::End);
            break;
        };
        match c {
            b' ' | b'\t' | b'\r' | 0x0b | 0x0c => {
                lx.bump();
            }
            b'\\' if lx.continuation_len() > 0 => lx.skip_continuation(),
            b'\n' => {
                lx.bump();
                end(&mut cur, Sep::Newline);
                lx.skip_heredoc_bodies();
            }
            b'#' => lx.skip_comment(),
            b';' => {
                lx.bump();
                if dialect == Dialect::Posix && matches!(lx.peek(), Some(b';' | b'&')) {
                    lx.bump();
                }
                end(&mut cur, Sep::Semi);
            }
            b'&' => {
                lx.bump();
                match lx.peek() {
                    Some(b'&') => {
                        lx.bump();
                        end(&mut cur, Sep::And);
                    }
                    Some(b'>') if dialect != Dialect::Csh => lx.redirect(),
                    Some(b'|') if dialect == Dialect::Fish => {
                        lx.bump();
                        end(&mut cur, Sep::Pipe);
                    }
                    _ => end(&mut cur, Sep::Amp),
                }
            }
            b'|' => {
                lx.bump();
                match lx.peek() {
                    Some(b'|') => {
                        lx.bump();
                        end(&mut cur, Sep::Or);
                    }
                    Some(b'&') => {
                        lx.bump();
                        end(&mut cur, Sep::Pipe);
                    }
                    _ => end(&mut cur, Sep::Pipe),
                }
            }
            b'(' if dialect == Dialect::Fish => cur.push(lx.word(false)),
            b'(' => {
                if dialect == Dialect::Posix && lx.peek_at(1) == Some(b'(') && lx.skip_arithmetic()
                {
                    continue;
                }
                lx.bump();
                end(&mut cur, Sep::Open);
            }
            b')' => {
                lx.bump();
                end(&mut cur, Sep::Close);
            }
            b'<' | b'>' if dialect == Dialect::Posix && lx.peek_at(1) == Some(b'(') => {
                cur.push(lx.word(false));
            }
            b'<' | b'>' => lx.redirect(),
            _ => {
                let w = lx.word(true);
                let io_number = w.literal
                    && !w.text.is_empty()
                    && w.text.iter().all(u8::is_ascii_digit)
                    && matches!(lx.peek(), Some(b'<' | b'>'));
                if !io_number {
                    cur.push(w);
                }
            }
        }
    }
    Script {
        commands: out,
        nested: lx.nested,
        unclosed: lx.unclosed,
    }
}

#[derive(Debug, Clone, Copy)]
struct Mark {
    pos: usize,
    line: u32,
    line_start: usize,
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
    line: u32,
    line_start: usize,
    dialect: Dialect,
    /// Heredocs opened on the current line: (delimiter, strip leading tabs).
    heredocs: Vec<(Vec<u8>, bool)>,
    /// Bytes scanned by quotes or substitutions that never closed. Such a quote is retried as a
    /// literal character while this stays within `budget`; past it, an unclosed quote runs to
    /// the end of the input. This keeps the whole scan linear.
    wasted: usize,
    budget: usize,
    /// Code copied as written (see `Script::nested`).
    nested: Vec<Nested>,
    /// Some construct hit the end of input unclosed.
    unclosed: bool,
    /// Expansions read so far (see `Word::expands`).
    expansions: usize,
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl<'a> Lexer<'a> {
    fn new(s: &'a [u8], dialect: Dialect) -> Self {
        Lexer {
            s,
            pos: 0,
            line: 1,
            line_start: 0,
            dialect,
            heredocs: Vec::new(),
            expansions: 0,
            wasted: 0,
            budget: s.len().saturating_mul(4).saturating_add(4096),
            nested: Vec::new(),
            unclosed: false,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn peek_at(&self, k: usize) -> Option<u8> {
        self.s.get(self.pos.saturating_add(k)).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        if c == b'\n' {
            self.line = self.line.saturating_add(1);
            self.line_start = self.pos;
        }
        Some(c)
    }

    fn column(&self) -> u32 {
        to_u32(self.pos.saturating_sub(self.line_start).saturating_add(1))
    }

    fn mark(&self) -> Mark {
        Mark {
            pos: self.pos,
            line: self.line,
            line_start: self.line_start,
        }
    }

    fn reset(&mut self, m: Mark) {
        self.pos = m.pos;
        self.line = m.line;
        self.line_start = m.line_start;
    }

    /// Called when a construct that started at `from` hit the end of input unclosed: whether to
    /// go back and read its opening character as a literal.
    fn retry(&mut self, from: Mark) -> bool {
        self.unclosed = true;
        self.wasted = self
            .wasted
            .saturating_add(self.pos.saturating_sub(from.pos));
        if self.wasted <= self.budget {
            self.reset(from);
            true
        } else {
            false
        }
    }

    /// Length of a backslash-newline (or backslash-CRLF) at the cursor, 0 if none.
    fn continuation_len(&self) -> usize {
        if self.peek() != Some(b'\\') {
            return 0;
        }
        match (self.peek_at(1), self.peek_at(2)) {
            (Some(b'\n'), _) => 2,
            (Some(b'\r'), Some(b'\n')) => 3,
            _ => 0,
        }
    }

    fn skip_continuation(&mut self) {
        for _ in 0..self.continuation_len() {
            self.bump();
        }
    }

    fn skip_comment(&mut self) {
        let rest = self.s.get(self.pos..).unwrap_or_default();
        let n = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        // No newline inside, so the line counters stay right.
        self.pos += n;
    }

    fn skip_blanks(&mut self) {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | 0x0b | 0x0c) => {
                    self.bump();
                }
                Some(b'\\') if self.continuation_len() > 0 => self.skip_continuation(),
                _ => break,
            }
        }
    }

    /// Bytes that end an unquoted word.
    fn is_boundary(&self, c: u8) -> bool {
        match c {
            b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c | b';' | b'&' | b'|' | b'<' | b'>' => true,
            b')' => true,
            b'(' => self.dialect != Dialect::Fish,
            _ => false,
        }
    }

    /// After an unquoted newline: skips the bodies of heredocs opened on the line just ended.
    fn skip_heredoc_bodies(&mut self) {
        for (delim, strip_tabs) in std::mem::take(&mut self.heredocs) {
            let start = self.pos;
            let mut end = self.s.len();
            while self.pos < self.s.len() {
                let rest = self.s.get(self.pos..).unwrap_or_default();
                let n = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
                let mut line = rest.get(..n).unwrap_or_default();
                if let [head @ .., b'\r'] = line {
                    line = head;
                }
                if strip_tabs {
                    while let [b'\t', tail @ ..] = line {
                        line = tail;
                    }
                }
                let done = line == delim.as_slice();
                if done {
                    end = self.pos;
                }
                self.pos += n;
                self.bump();
                if done {
                    break;
                }
            }
            let body = self.s.get(start..end).unwrap_or_default();
            self.nested.push(Nested::Heredoc(body.to_vec()));
        }
    }

    /// `((...))` arithmetic command (Posix), skipped whole. False (nothing consumed) when it does
    /// not close, so that the caller reads a subshell instead.
    fn skip_arithmetic(&mut self) -> bool {
        let m = self.mark();
        self.bump();
        self.bump();
        let mut sink = Vec::new();
        if self.scan_nested(&mut sink, vec![b')', b')'], false) {
            // Kept with its parentheses, as `$((...))` is: arithmetic, not a command.
            let body = sink.get(..sink.len().saturating_sub(1)).unwrap_or_default();
            let mut body = body.to_vec();
            body.insert(0, b'(');
            self.nested.push(Nested::Code(body));
            return true;
        }
        if !self.retry(m) {
            // Out of budget: whatever is left has been consumed.
            return true;
        }
        false
    }

    /// A redirection operator at the cursor and its target word, both dropped; a heredoc's
    /// delimiter is remembered so its body can be skipped after the line ends.
    fn redirect(&mut self) {
        let mut heredoc = None;
        match self.bump() {
            Some(b'<') => match self.peek() {
                Some(b'<') => {
                    self.bump();
                    if self.peek() == Some(b'<') {
                        self.bump(); // here-string: the target is an ordinary word
                    } else if self.dialect != Dialect::Fish {
                        let strip = self.peek() == Some(b'-');
                        if strip {
                            self.bump();
                        }
                        heredoc = Some(strip);
                    }
                }
                Some(b'>' | b'&') => {
                    self.bump();
                }
                _ => {}
            },
            Some(b'>') => {
                if matches!(self.peek(), Some(b'>' | b'|' | b'!' | b'?')) {
                    self.bump();
                }
                if self.peek() == Some(b'&') {
                    self.bump();
                }
                if self.peek() == Some(b'!') {
                    self.bump();
                }
            }
            _ => return,
        }
        self.skip_blanks();
        let Some(c) = self.peek() else { return };
        if self.is_boundary(c) && !(self.dialect == Dialect::Fish && c == b'(') {
            return;
        }
        let w = self.word(false);
        if let Some(strip) = heredoc {
            self.heredocs.push((w.text, strip));
        }
    }

    /// One word starting at the cursor (which is not at a boundary). With `allow_array`, a
    /// Posix `NAME=(a b c)` array value is read too, its elements joined by spaces.
    fn word(&mut self, allow_array: bool) -> Word {
        let mut w = Word {
            text: Vec::new(),
            line: self.line,
            column: self.column(),
            assign: None,
            literal: true,
            expands: false,
        };
        let expansions = self.expansions;
        // Process substitution `<(cmd)` / `>(cmd)` (Posix).
        if self.dialect == Dialect::Posix
            && matches!(self.peek(), Some(b'<' | b'>'))
            && self.peek_at(1) == Some(b'(')
        {
            w.literal = false;
            self.substitution(&mut w.text, 2, b')', false);
        }
        let mut name_phase = true;
        let mut want_value_line = false;
        while let Some(c) = self.peek() {
            if c == b'\\' && self.continuation_len() > 0 {
                self.skip_continuation();
                continue;
            }
            if self.is_boundary(c) {
                break;
            }
            if want_value_line {
                if let Some(a) = w.assign.as_mut() {
                    a.value_line = self.line;
                }
                want_value_line = false;
            }
            if name_phase {
                let op_len = match (c, self.peek_at(1)) {
                    (b'=', _) => 1,
                    (b'+', Some(b'=')) => 2,
                    _ => 0,
                };
                if op_len > 0 && is_name(&w.text) {
                    name_phase = false;
                    let name_len = w.text.len();
                    for _ in 0..op_len {
                        if let Some(b) = self.bump() {
                            w.text.push(b);
                        }
                    }
                    w.assign = Some(AssignSplit {
                        name_len,
                        value_start: w.text.len(),
                        value_line: self.line,
                    });
                    want_value_line = true;
                    if allow_array && self.dialect == Dialect::Posix && self.peek() == Some(b'(') {
                        let line = self.line;
                        if self.array(&mut w.text) {
                            if let Some(a) = w.assign.as_mut() {
                                a.value_line = line;
                            }
                            want_value_line = false;
                        }
                    }
                    continue;
                }
                if !is_name_byte(c) {
                    name_phase = false;
                }
            }
            match c {
                b'\'' => {
                    w.literal = false;
                    self.single_quote(&mut w.text);
                }
                b'"' => {
                    w.literal = false;
                    self.double_quote(&mut w.text);
                }
                b'`' if self.dialect != Dialect::Fish => {
                    w.literal = false;
                    self.substitution(&mut w.text, 1, b'`', false);
                }
                b'$' => self.dollar(&mut w.text, &mut w.literal, false),
                b'(' => {
                    // Fish command substitution (elsewhere `(` is a boundary).
                    w.literal = false;
                    self.substitution(&mut w.text, 1, b')', false);
                }
                b'\\' => {
                    w.literal = false;
                    self.escape(&mut w.text);
                }
                _ => {
                    self.bump();
                    w.text.push(c);
                }
            }
        }
        w.expands = self.expansions != expansions;
        w
    }

    /// Posix array value `(a b c)` at the cursor. False (nothing consumed) when it does not close.
    fn array(&mut self, out: &mut Vec<u8>) -> bool {
        let m = self.mark();
        let base = out.len();
        self.bump();
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                if self.retry(m) {
                    out.truncate(base);
                    return false;
                }
                return true;
            };
            match c {
                b')' => {
                    self.bump();
                    return true;
                }
                b'#' => self.skip_comment(),
                b'\\' if self.continuation_len() > 0 => self.skip_continuation(),
                c if self.is_boundary(c) => {
                    self.bump();
                }
                _ => {
                    let w = self.word(false);
                    if !first {
                        out.push(b' ');
                    }
                    out.extend_from_slice(&w.text);
                    first = false;
                }
            }
        }
    }

    fn single_quote(&mut self, out: &mut Vec<u8>) {
        let m = self.mark();
        let base = out.len();
        self.bump();
        loop {
            match self.bump() {
                None => {
                    if self.retry(m) {
                        out.truncate(base);
                        self.bump();
                        out.push(b'\'');
                    }
                    return;
                }
                Some(b'\'') => return,
                Some(b'\\') if self.dialect == Dialect::Fish => match self.peek() {
                    Some(c @ (b'\'' | b'\\')) => {
                        self.bump();
                        out.push(c);
                    }
                    _ => out.push(b'\\'),
                },
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self, out: &mut Vec<u8>) {
        let m = self.mark();
        let base = out.len();
        self.bump();
        let mut literal = false;
        loop {
            let Some(c) = self.peek() else {
                if self.retry(m) {
                    out.truncate(base);
                    self.bump();
                    out.push(b'"');
                }
                return;
            };
            match c {
                b'"' => {
                    self.bump();
                    return;
                }
                b'\\' if self.continuation_len() > 0 => self.skip_continuation(),
                b'\\' if self.dialect != Dialect::Csh => {
                    self.bump();
                    let escapable: &[u8] = if self.dialect == Dialect::Fish {
                        b"\"\\$"
                    } else {
                        b"\"\\$`"
                    };
                    match self.peek() {
                        Some(e) if escapable.contains(&e) => {
                            self.bump();
                            out.push(e);
                        }
                        _ => out.push(b'\\'),
                    }
                }
                b'$' => self.dollar(out, &mut literal, true),
                b'`' if self.dialect != Dialect::Fish => {
                    self.substitution(out, 1, b'`', true);
                }
                _ => {
                    self.bump();
                    out.push(c);
                }
            }
        }
    }

    /// `$` at the cursor: ANSI-C or locale quoting, or a substitution kept as written.
    fn dollar(&mut self, out: &mut Vec<u8>, literal: &mut bool, in_dq: bool) {
        let posix = self.dialect == Dialect::Posix;
        match self.peek_at(1) {
            Some(b'\'') if posix && !in_dq => {
                *literal = false;
                self.ansi_c(out);
            }
            Some(b'"') if posix && !in_dq => {
                *literal = false;
                self.bump();
                self.double_quote(out);
            }
            Some(b'(') if self.dialect != Dialect::Csh => {
                *literal = false;
                self.substitution(out, 2, b')', in_dq);
            }
            Some(b'{') if self.dialect != Dialect::Fish => {
                *literal = false;
                self.substitution(out, 2, b'}', in_dq);
            }
            next => {
                // `$NAME`, `$1`, `$$`, `$?`, ...: a parameter; a lone `$` is a character.
                if next.is_some_and(|c| c.is_ascii_alphanumeric() || b"_$?#@*!-".contains(&c)) {
                    self.expansions += 1;
                }
                self.bump();
                out.push(b'$');
            }
        }
    }

    /// A substitution whose `open_len` opening bytes are at the cursor, copied as written up to
    /// its matching `closer`. Unclosed: the first opening byte is taken as a literal.
    fn substitution(&mut self, out: &mut Vec<u8>, open_len: usize, closer: u8, in_dq: bool) {
        self.expansions += 1;
        let m = self.mark();
        let base = out.len();
        for _ in 0..open_len {
            if let Some(b) = self.bump() {
                out.push(b);
            }
        }
        if self.scan_nested(out, vec![closer], in_dq) {
            let body = out
                .get(base.saturating_add(open_len)..out.len().saturating_sub(1))
                .unwrap_or_default()
                .to_vec();
            self.nested.push(match closer {
                b'`' => Nested::Backquoted(body),
                b'}' => Nested::Param(body),
                _ => Nested::Code(body),
            });
            return;
        }
        if self.retry(m) {
            out.truncate(base);
            if let Some(b) = self.bump() {
                out.push(b);
            }
        }
    }

    /// Copies bytes up to the point where `stack` (closers still expected, innermost last) is
    /// empty, following nested quotes and substitutions. False at end of input.
    fn scan_nested(&mut self, out: &mut Vec<u8>, mut stack: Vec<u8>, in_dq: bool) -> bool {
        let base_depth = 1;
        while let Some(&top) = stack.last() {
            let Some(c) = self.bump() else { return false };
            out.push(c);
            let dq_braces = in_dq && stack.len() == base_depth && top == b'}';
            match top {
                b'\'' => {
                    if c == b'\'' {
                        stack.pop();
                    }
                }
                b'`' => match c {
                    b'\\' => self.copy_one(out),
                    b'`' => {
                        stack.pop();
                    }
                    _ => {}
                },
                b'"' => match c {
                    b'\\' => self.copy_one(out),
                    b'"' => {
                        stack.pop();
                    }
                    b'`' => stack.push(b'`'),
                    b'$' => self.nested_dollar(out, &mut stack),
                    _ => {}
                },
                _ => match c {
                    b'\\' => self.copy_one(out),
                    c if c == top => {
                        stack.pop();
                    }
                    b'(' if top == b')' => stack.push(b')'),
                    b'{' if top == b'}' => stack.push(b'}'),
                    b'$' => self.nested_dollar(out, &mut stack),
                    // Inside a double-quoted `${...}`, single quotes are plain characters.
                    b'\'' if !dq_braces => stack.push(b'\''),
                    b'"' => stack.push(b'"'),
                    b'`' if self.dialect != Dialect::Fish => stack.push(b'`'),
                    _ => {}
                },
            }
        }
        true
    }

    fn copy_one(&mut self, out: &mut Vec<u8>) {
        if let Some(b) = self.bump() {
            out.push(b);
        }
    }

    fn nested_dollar(&mut self, out: &mut Vec<u8>, stack: &mut Vec<u8>) {
        match self.peek() {
            Some(b'(') => {
                self.copy_one(out);
                stack.push(b')');
            }
            Some(b'{') => {
                self.copy_one(out);
                stack.push(b'}');
            }
            _ => {}
        }
    }

    /// Bash `$'...'` with C escapes.
    fn ansi_c(&mut self, out: &mut Vec<u8>) {
        let m = self.mark();
        let base = out.len();
        self.bump();
        self.bump();
        loop {
            match self.bump() {
                None => {
                    if self.retry(m) {
                        out.truncate(base);
                        self.bump();
                        out.push(b'$');
                    }
                    return;
                }
                Some(b'\'') => return,
                Some(b'\\') => match self.bump() {
                    None => out.push(b'\\'),
                    Some(e) => self.c_escape(e, out, true),
                },
                Some(c) => out.push(c),
            }
        }
    }

    /// The escape `\e` (backslash already consumed) shared by bash `$'...'` and unquoted fish.
    fn c_escape(&mut self, e: u8, out: &mut Vec<u8>, ansi: bool) {
        match e {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'e' | b'E' => out.push(0x1b),
            b'f' => out.push(0x0c),
            b'v' => out.push(0x0b),
            b'x' | b'X' => match self.digits(16, 2) {
                Some(v) => out.push(u8::try_from(v & 0xff).unwrap_or(0)),
                None => out.extend_from_slice(&[b'\\', e]),
            },
            b'u' | b'U' => {
                let max = if e == b'u' { 4 } else { 8 };
                match self.digits(16, max).and_then(char::from_u32) {
                    Some(ch) => {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    }
                    None => out.extend_from_slice(&[b'\\', e]),
                }
            }
            b'c' => match self.bump() {
                Some(x) => out.push(x & 0x1f),
                None => out.extend_from_slice(b"\\c"),
            },
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match self.peek() {
                        Some(d @ b'0'..=b'7') => {
                            self.bump();
                            v = v * 8 + u32::from(d - b'0');
                        }
                        _ => break,
                    }
                }
                out.push(u8::try_from(v & 0xff).unwrap_or(0));
            }
            b'\\' | b'\'' | b'"' | b'?' if ansi => out.push(e),
            _ if ansi => out.extend_from_slice(&[b'\\', e]),
            _ => out.push(e),
        }
    }

    /// Up to `max` digits in `radix` at the cursor.
    fn digits(&mut self, radix: u32, max: usize) -> Option<u32> {
        let mut v: u32 = 0;
        let mut n = 0;
        while n < max {
            let Some(d) = self.peek().and_then(|c| char::from(c).to_digit(radix)) else {
                break;
            };
            self.bump();
            v = v.saturating_mul(radix).saturating_add(d);
            n += 1;
        }
        (n > 0).then_some(v)
    }

    /// An unquoted backslash escape at the cursor (not a line continuation).
    fn escape(&mut self, out: &mut Vec<u8>) {
        self.bump();
        match self.bump() {
            None => out.push(b'\\'),
            Some(e) if self.dialect == Dialect::Fish => self.c_escape(e, out, false),
            Some(e) => out.push(e),
        }
    }
}

fn is_name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// A shell variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_name(s: &[u8]) -> bool {
    match s.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_alphabetic() || *first == b'_') && rest.iter().all(|&c| is_name_byte(c))
        }
        None => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Commands to assignments
// ---------------------------------------------------------------------------------------------

/// `(name, value, value line)` of an argument to `export`/`declare`: an assignment word, or a
/// quoted one (`export "X=v"`), which these builtins split after quote removal.
fn declared(w: &Word) -> Option<(String, Vec<u8>, u32)> {
    if let (Some((name, value)), Some(a)) = (w.assignment(), w.assign) {
        return Some((name.to_string(), value.to_vec(), a.value_line));
    }
    let eq = w.text.iter().position(|&b| b == b'=')?;
    let name = w.text.get(..eq).filter(|n| is_name(n))?;
    let value = w.text.get(eq + 1..)?;
    Some((
        String::from_utf8_lossy(name).into_owned(),
        value.to_vec(),
        w.line,
    ))
}

/// Assignments and `source` lines of already split commands. `fish_set` also reads fish's
/// `set -x NAME value` in Posix input (history files mix both).
pub(crate) fn parse_commands(cmds: &[Command], dialect: Dialect, fish_set: bool) -> Parsed {
    let mut st = State::default();
    let mut k = 0;
    while let Some(cmd) = cmds.get(k) {
        k += 1;
        match dialect {
            Dialect::Posix => st.posix(&cmd.words, fish_set),
            Dialect::Fish => st.fish(&cmd.words),
            Dialect::Csh => {
                if st.csh(cmd, cmds.get(k)) {
                    k += 1;
                }
            }
        }
    }
    st.out
}

#[derive(Default)]
struct State {
    out: Parsed,
    /// Names with the export attribute (`export X`, `declare -x X`, `set -x X`).
    exported: HashSet<String>,
    /// Indexes of not-exported assignments per name, for a later `export NAME`.
    unexported: HashMap<String, Vec<usize>>,
    /// `set -a` (allexport) in force.
    allexport: bool,
}

impl State {
    fn push(&mut self, name: &str, value: Vec<u8>, line: u32, column: u32, exported: bool) {
        if !exported {
            self.unexported
                .entry(name.to_string())
                .or_default()
                .push(self.out.assignments.len());
        }
        self.out.assignments.push(Assignment {
            name: name.to_string(),
            value,
            line,
            column,
            exported,
        });
    }

    fn push_word(&mut self, w: &Word, exported: bool) {
        if let (Some((name, value)), Some(a)) = (w.assignment(), w.assign) {
            self.push(name, value.to_vec(), a.value_line, w.column, exported);
        }
    }

    /// Gives `name` the export attribute, including its earlier assignments.
    fn mark_exported(&mut self, name: &str) {
        self.exported.insert(name.to_string());
        for i in self.unexported.remove(name).unwrap_or_default() {
            if let Some(a) = self.out.assignments.get_mut(i) {
                a.exported = true;
            }
        }
    }

    fn plain_exported(&self, name: &str) -> bool {
        self.allexport || self.exported.contains(name)
    }

    fn source(&mut self, args: &[Word], options: &[&str]) {
        let path = args
            .iter()
            .find(|w| !w.is("--") && !options.iter().any(|o| w.is(o)));
        // `source <(cmd)` reads a command's output, not a file.
        if let Some(w) = path.filter(|w| !w.text.starts_with(b"<(")) {
            self.out.sources.push(Sourced {
                path: String::from_utf8_lossy(&w.text).into_owned(),
                line: w.line,
            });
        }
    }

    /// `env [-i] [-u NAME] NAME=value ... [command]`: the assignments reach the command.
    fn env(&mut self, args: &[Word]) {
        let mut i = 0;
        while let Some(w) = args.get(i) {
            if w.assign.is_some() {
                self.push_word(w, true);
                i += 1;
            } else if ["-u", "--unset", "-C", "--chdir", "-S", "--split-string"]
                .iter()
                .any(|o| w.is(o))
            {
                i += 2;
            } else if w.text.first() == Some(&b'-') {
                i += 1;
            } else {
                break;
            }
        }
    }

    fn posix(&mut self, words: &[Word], fish_set: bool) {
        let mut i = 0;
        while let Some(w) = words.get(i) {
            if !w.literal {
                break;
            }
            match w.text.as_slice() {
                b"if" | b"then" | b"else" | b"elif" | b"fi" | b"do" | b"done" | b"while"
                | b"until" | b"{" | b"}" | b"!" | b"time" | b"esac" | b"coproc" => i += 1,
                b"function" => i += 2,
                b"for" | b"select" | b"case" | b"foreach" | b"repeat" => return,
                _ => break,
            }
        }
        let first = i;
        while words.get(i).is_some_and(|w| w.assign.is_some()) {
            i += 1;
        }
        let prefix = words.get(first..i).unwrap_or_default();
        if i >= words.len() {
            for w in prefix {
                if let Some((name, _)) = w.assignment() {
                    let exported = self.plain_exported(name);
                    self.push_word(w, exported);
                }
            }
            return;
        }
        // `X=v cmd`: the command gets X in its environment.
        for w in prefix {
            self.push_word(w, true);
        }
        while words.get(i).is_some_and(|w| {
            ["command", "builtin", "noglob", "nocorrect", "exec"]
                .iter()
                .any(|k| w.is(k))
        }) {
            i += 1;
        }
        let Some(cmd) = words.get(i) else { return };
        let args = words.get(i + 1..).unwrap_or_default();
        match cmd.text.as_slice() {
            b"export" => self.declare(args, true),
            b"declare" | b"typeset" | b"local" | b"readonly" | b"integer" | b"float" => {
                self.declare(args, false);
            }
            b"source" | b"." => self.source(args, &[]),
            b"env" => self.env(args),
            b"set" => {
                self.posix_set(args);
                if fish_set {
                    self.fish_set(args);
                }
            }
            _ => {}
        }
    }

    /// `export`, `declare`, `typeset`, `local`, `readonly`: options, then `NAME=value` or `NAME`.
    fn declare(&mut self, args: &[Word], is_export: bool) {
        let mut export = is_export;
        let mut unexport = false;
        let mut options = true;
        for w in args {
            let t = w.text.as_slice();
            if options && w.assign.is_none() && matches!(t.first(), Some(b'-' | b'+')) {
                if t == b"--" {
                    options = false;
                    continue;
                }
                let minus = t.first() == Some(&b'-');
                for &c in t.get(1..).unwrap_or_default() {
                    match c {
                        b'x' if minus => export = true,
                        b'x' => unexport = true,
                        // `export -n`: remove the attribute.
                        b'n' if is_export && minus => unexport = true,
                        // Functions, or printing: no variables assigned.
                        b'f' | b'F' | b'p' => return,
                        _ => {}
                    }
                }
                continue;
            }
            options = false;
            if let Some((name, value, line)) = declared(w) {
                let exported = if unexport {
                    self.exported.remove(&name);
                    false
                } else if export {
                    self.mark_exported(&name);
                    true
                } else {
                    self.plain_exported(&name)
                };
                self.push(&name, value, line, w.column, exported);
            } else if is_name(t) {
                let name = String::from_utf8_lossy(t).into_owned();
                if unexport {
                    self.exported.remove(&name);
                } else if export {
                    self.mark_exported(&name);
                }
            }
        }
    }

    /// `set -a` / `set -o allexport` turn on exporting of every later assignment.
    fn posix_set(&mut self, args: &[Word]) {
        let mut i = 0;
        while let Some(w) = args.get(i) {
            let t = w.text.as_slice();
            let on = match t.first() {
                Some(b'-') => true,
                Some(b'+') => false,
                _ => break,
            };
            if t == b"--" || t == b"-" || t.starts_with(b"--") {
                break;
            }
            if t.len() == 2 && t.get(1) == Some(&b'o') {
                if args.get(i + 1).is_some_and(|n| n.is("allexport")) {
                    self.allexport = on;
                }
                i += 2;
                continue;
            }
            if t.get(1..).unwrap_or_default().contains(&b'a') {
                self.allexport = on;
            }
            i += 1;
        }
    }

    /// Fish `set [options] NAME [values...]`.
    fn fish_set(&mut self, args: &[Word]) {
        let mut export: Option<bool> = None;
        let mut i = 0;
        while let Some(w) = args.get(i) {
            let t = w.text.as_slice();
            if t == b"--" {
                i += 1;
                break;
            }
            if let Some(long) = t.strip_prefix(b"--") {
                match long {
                    b"export" => export = Some(true),
                    b"unexport" => export = Some(false),
                    b"erase" | b"query" | b"show" | b"names" | b"help" => return,
                    _ => {}
                }
                i += 1;
                continue;
            }
            if t.len() > 1 && t.first() == Some(&b'-') {
                for &c in t.get(1..).unwrap_or_default() {
                    match c {
                        b'x' => export = Some(true),
                        b'u' => export = Some(false),
                        b'e' | b'q' | b'S' | b'n' | b'h' => return,
                        _ => {}
                    }
                }
                i += 1;
                continue;
            }
            break;
        }
        let Some(nw) = args.get(i) else { return };
        // `set NAME[1] value` assigns one element.
        let raw = nw.text.as_slice();
        let raw = raw
            .iter()
            .position(|&b| b == b'[')
            .and_then(|p| raw.get(..p))
            .unwrap_or(raw);
        if !is_name(raw) {
            return;
        }
        let name = String::from_utf8_lossy(raw).into_owned();
        let values = args.get(i + 1..).unwrap_or_default();
        let value = values
            .iter()
            .map(|w| w.text.as_slice())
            .collect::<Vec<_>>()
            .join(&b' ');
        let line = values.first().map_or(nw.line, |w| w.line);
        let exported = match export {
            Some(true) => {
                self.exported.insert(name.clone());
                true
            }
            Some(false) => {
                self.exported.remove(&name);
                false
            }
            None => self.exported.contains(&name),
        };
        self.push(&name, value, line, nw.column, exported);
    }

    fn fish(&mut self, words: &[Word]) {
        let mut i = 0;
        while let Some(w) = words.get(i) {
            if !w.literal {
                break;
            }
            match w.text.as_slice() {
                b"and" | b"or" | b"not" | b"!" | b"begin" | b"end" | b"else" | b"if" | b"while"
                | b"command" | b"builtin" | b"exec" | b"time" => i += 1,
                b"function" | b"for" | b"switch" | b"case" => return,
                _ => break,
            }
        }
        let first = i;
        while words.get(i).is_some_and(|w| w.assign.is_some()) {
            i += 1;
        }
        let Some(cmd) = words.get(i) else {
            // A bare `X=v` is an error in fish: nothing is assigned.
            return;
        };
        for w in words.get(first..i).unwrap_or_default() {
            self.push_word(w, true);
        }
        let args = words.get(i + 1..).unwrap_or_default();
        match cmd.text.as_slice() {
            b"set" => self.fish_set(args),
            // fish ships an `export NAME=value` wrapper.
            b"export" => self.declare(args, true),
            b"source" | b"." => self.source(args, &[]),
            b"env" => self.env(args),
            _ => {}
        }
    }

    /// Returns whether `next` (a parenthesised word list) was used as a value.
    fn csh(&mut self, cmd: &Command, next: Option<&Command>) -> bool {
        let words = cmd.words.as_slice();
        let mut i = 0;
        while let Some(w) = words.get(i) {
            if !w.literal {
                break;
            }
            match w.text.as_slice() {
                b"then" | b"else" | b"endif" | b"end" | b"endsw" | b"breaksw" | b"default:"
                | b"if" | b"while" | b"time" | b"nohup" => i += 1,
                b"foreach" | b"switch" | b"case" => return false,
                _ => break,
            }
        }
        let Some(name) = words.get(i) else {
            return false;
        };
        let args = words.get(i + 1..).unwrap_or_default();
        match name.text.as_slice() {
            b"setenv" => {
                if let Some(nw) = args.first().filter(|w| is_name(&w.text)) {
                    let (value, line) = args
                        .get(1)
                        .map_or((Vec::new(), nw.line), |v| (v.text.clone(), v.line));
                    let name = String::from_utf8_lossy(&nw.text).into_owned();
                    self.push(&name, value, line, nw.column, true);
                }
                false
            }
            b"set" => self.csh_set(args, cmd.end == Sep::Open, next),
            b"source" => {
                self.source(args, &["-h"]);
                false
            }
            b"env" => {
                self.env(args);
                false
            }
            _ => false,
        }
    }

    /// csh `set NAME = value`, `set NAME=value`, `set NAME = ( list )`, several per command.
    fn csh_set(&mut self, args: &[Word], paren_follows: bool, next: Option<&Command>) -> bool {
        let mut used_next = false;
        let mut take_list = |fallback_line: u32| -> Option<(Vec<u8>, u32)> {
            if !paren_follows || used_next {
                return None;
            }
            let next = next?;
            used_next = true;
            let value = next
                .words
                .iter()
                .map(|w| w.text.as_slice())
                .collect::<Vec<_>>()
                .join(&b' ');
            let line = next.words.first().map_or(fallback_line, |w| w.line);
            Some((value, line))
        };
        let mut j = 0;
        while args
            .get(j)
            .is_some_and(|w| w.assign.is_none() && w.text.first() == Some(&b'-'))
        {
            j += 1;
        }
        while let Some(w) = args.get(j) {
            let (name, value, line, step) = if let (Some((name, val)), Some(a)) =
                (w.assignment(), w.assign)
            {
                if !val.is_empty() {
                    (name.to_string(), val.to_vec(), a.value_line, 1)
                } else if let Some(v) = args.get(j + 1) {
                    (name.to_string(), v.text.clone(), v.line, 2)
                } else {
                    let (value, line) =
                        take_list(a.value_line).unwrap_or((Vec::new(), a.value_line));
                    (name.to_string(), value, line, 1)
                }
            } else if is_name(&w.text) {
                let name = String::from_utf8_lossy(&w.text).into_owned();
                match args.get(j + 1) {
                    Some(eq) if eq.is("=") => match args.get(j + 2) {
                        Some(v) => (name, v.text.clone(), v.line, 3),
                        None => {
                            let (value, line) = take_list(eq.line).unwrap_or((Vec::new(), eq.line));
                            (name, value, line, 2)
                        }
                    },
                    Some(eq) if eq.text.first() == Some(&b'=') => (
                        name,
                        eq.text.get(1..).unwrap_or_default().to_vec(),
                        eq.line,
                        2,
                    ),
                    _ => {
                        j += 1;
                        continue;
                    }
                }
            } else {
                j += 1;
                continue;
            };
            self.push(&name, value, line, w.column, false);
            j += step;
        }
        used_next
    }
}

/// A word quoted for `/bin/sh`, bash and zsh (the Claude Code hook's commands, `run`'s hints,
/// the start-up file's line): as is when it has nothing any of them would read, else in single
/// quotes.
pub fn sh_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FAKE: &str = "Hq3vT9xLm2Zr8WbK5nYp4Jc7";

    /// (name, value, line, column, exported)
    type Want<'a> = (&'a str, &'a str, u32, u32, bool);

    fn got(text: &str, dialect: Dialect) -> Vec<(String, String, u32, u32, bool)> {
        parse(text.as_bytes(), dialect)
            .assignments
            .into_iter()
            .map(|a| {
                let v = String::from_utf8_lossy(&a.value).into_owned();
                (a.name, v, a.line, a.column, a.exported)
            })
            .collect()
    }

    fn check(cases: &[(&str, &[Want])], dialect: Dialect) {
        for (text, want) in cases {
            let want: Vec<_> = want
                .iter()
                .map(|(n, v, l, c, e)| (n.to_string(), v.to_string(), *l, *c, *e))
                .collect();
            assert_eq!(got(text, dialect), want, "input: {text:?}");
        }
    }

    #[test]
    fn posix_export_forms() {
        check(
            &[
                ("export X=v", &[("X", "v", 1, 8, true)]),
                ("export X=\"v w\"", &[("X", "v w", 1, 8, true)]),
                ("export X='v w'", &[("X", "v w", 1, 8, true)]),
                (
                    "export API_KEY=Hq3vT9xLm2Zr8WbK5nYp4Jc7",
                    &[("API_KEY", FAKE, 1, 8, true)],
                ),
                (
                    "export A=1 B=2",
                    &[("A", "1", 1, 8, true), ("B", "2", 1, 12, true)],
                ),
                ("export   X=v   # trailing", &[("X", "v", 1, 10, true)]),
                ("export -- X=v", &[("X", "v", 1, 11, true)]),
                ("export X", &[]),
                ("export", &[]),
                ("export -p", &[]),
                ("export -f myfunc", &[]),
                ("export -n X=v", &[("X", "v", 1, 11, false)]),
                ("export X+=more", &[("X", "more", 1, 8, true)]),
                ("export \"X=a b\"", &[("X", "a b", 1, 8, true)]),
                ("export 'X'=v", &[("X", "v", 1, 8, true)]),
                ("export \"1X=v\"", &[]),
                ("export X=", &[("X", "", 1, 8, true)]),
                ("export X=''", &[("X", "", 1, 8, true)]),
                ("\texport X=v", &[("X", "v", 1, 9, true)]),
                ("    export X=v", &[("X", "v", 1, 12, true)]),
                ("command export X=v", &[("X", "v", 1, 16, true)]),
                ("builtin export X=v", &[("X", "v", 1, 16, true)]),
            ],
            Dialect::Posix,
        );
    }

    #[test]
    fn posix_plain_and_later_export() {
        check(
            &[
                ("X=v", &[("X", "v", 1, 1, false)]),
                ("_x1=v", &[("_x1", "v", 1, 1, false)]),
                ("X=v; export X", &[("X", "v", 1, 1, true)]),
                (
                    "X=v\nY=w\nexport X",
                    &[("X", "v", 1, 1, true), ("Y", "w", 2, 1, false)],
                ),
                ("export X\nX=v", &[("X", "v", 2, 1, true)]),
                (
                    "X=a\nX=b\nexport X\nX=c",
                    &[
                        ("X", "a", 1, 1, true),
                        ("X", "b", 2, 1, true),
                        ("X", "c", 4, 1, true),
                    ],
                ),
                (
                    "X=v; export -n X; X=w",
                    &[("X", "v", 1, 1, false), ("X", "w", 1, 19, false)],
                ),
                (
                    "export X=v; export -n X; X=w",
                    &[("X", "v", 1, 8, true), ("X", "w", 1, 26, false)],
                ),
                (
                    "A=1 B=2",
                    &[("A", "1", 1, 1, false), ("B", "2", 1, 5, false)],
                ),
                ("1X=v", &[]),
                ("\"X\"=v", &[]),
                ("X\\=v", &[]),
                ("=v", &[]),
                ("a-b=v", &[]),
                ("arr[0]=v", &[]),
                ("echo X=v", &[]),
                ("X==v", &[("X", "=v", 1, 1, false)]),
                ("X=a=b", &[("X", "a=b", 1, 1, false)]),
                (
                    "set -a\nX=v\nset +a\nY=w",
                    &[("X", "v", 2, 1, true), ("Y", "w", 4, 1, false)],
                ),
                (
                    "set -o allexport; X=v; set +o allexport; Y=w",
                    &[("X", "v", 1, 19, true), ("Y", "w", 1, 42, false)],
                ),
                ("set -euo pipefail; X=v", &[("X", "v", 1, 20, false)]),
            ],
            Dialect::Posix,
        );
    }

    #[test]
    fn posix_declare_family() {
        check(
            &[
                ("declare -x X=v", &[("X", "v", 1, 12, true)]),
                ("typeset -x X=v", &[("X", "v", 1, 12, true)]),
                ("declare -gx X=v", &[("X", "v", 1, 13, true)]),
                ("typeset -gx X=v", &[("X", "v", 1, 13, true)]),
                ("declare -r -x X=v", &[("X", "v", 1, 15, true)]),
                ("declare X=v", &[("X", "v", 1, 9, false)]),
                ("declare -r X=v", &[("X", "v", 1, 12, false)]),
                ("local X=v", &[("X", "v", 1, 7, false)]),
                ("local -x X=v", &[("X", "v", 1, 10, true)]),
                ("readonly X=v", &[("X", "v", 1, 10, false)]),
                ("readonly -x X=v", &[("X", "v", 1, 13, true)]),
                ("declare +x X=v", &[("X", "v", 1, 12, false)]),
                ("declare -x X\nX=v", &[("X", "v", 2, 1, true)]),
                ("X=v\ndeclare -x X", &[("X", "v", 1, 1, true)]),
                ("declare -p X", &[]),
                ("declare -f f", &[]),
                ("integer N=3", &[("N", "3", 1, 9, false)]),
                ("declare -a A=(one two)", &[("A", "one two", 1, 12, false)]),
                ("export X; readonly X=v", &[("X", "v", 1, 20, true)]),
            ],
            Dialect::Posix,
        );
    }

    #[test]
    fn posix_per_command_assignments() {
        check(
            &[
                ("X=v cmd", &[("X", "v", 1, 1, true)]),
                (
                    "X=v Y=w cmd arg",
                    &[("X", "v", 1, 1, true), ("Y", "w", 1, 5, true)],
                ),
                ("X=v cmd Y=w", &[("X", "v", 1, 1, true)]),
                ("X=v >/dev/null", &[("X", "v", 1, 1, false)]),
                ("X=v 2>/dev/null cmd", &[("X", "v", 1, 1, true)]),
                ("env X=v cmd", &[("X", "v", 1, 5, true)]),
                ("env -i -u Y X=v cmd", &[("X", "v", 1, 13, true)]),
                ("X=v exec cmd", &[("X", "v", 1, 1, true)]),
            ],
            Dialect::Posix,
        );
    }

    #[test]
    fn posix_separators() {
        check(
            &[
                ("a; X=v", &[("X", "v", 1, 4, false)]),
                ("a && export X=v", &[("X", "v", 1, 13, true)]),
                ("a || export X=v", &[("X", "v", 1, 13, true)]),
                ("a | X=v cmd", &[("X", "v", 1, 5, true)]),
                ("a & X=v", &[("X", "v", 1, 5, false)]),
                ("a |& X=v cmd", &[("X", "v", 1, 6, true)]),
                (
                    "X=v;Y=w",
                    &[("X", "v", 1, 1, false), ("Y", "w", 1, 5, false)],
                ),
                (
                    "X=v&&Y=w",
                    &[("X", "v", 1, 1, false), ("Y", "w", 1, 6, false)],
                ),
                (
                    "export X=v;export Y=w",
                    &[("X", "v", 1, 8, true), ("Y", "w", 1, 19, true)],
                ),
                (
                    "X=1\n\nY=2\n",
                    &[("X", "1", 1, 1, false), ("Y", "2", 3, 1, false)],
                ),
                (
                    "X=1\r\nY=2\r\n",
                    &[("X", "1", 1, 1, false), ("Y", "2", 2, 1, false)],
                ),
                ("export X=\"v\"\r\n", &[("X", "v", 1, 8, true)]),
                ("(export X=v)", &[("X", "v", 1, 9, true)]),
                ("f() { export X=v; }", &[("X", "v", 1, 14, true)]),
                ("function f { export X=v; }", &[("X", "v", 1, 21, true)]),
                (
                    "function f() {\n  export X=v\n}",
                    &[("X", "v", 2, 10, true)],
                ),
                ("echo $(X=v)", &[]),
                ("echo `X=v`", &[]),
            ],
            Dialect::Posix,
        );
    }

    #[test]
    fn posix_comments() {
        check(
            &[
                ("# export X=v", &[]),
                ("   # export X=v", &[]),
                ("export X=v # export Y=w", &[("X", "v", 1, 8, true)]),
                ("export X=v#w", &[("X", "v#w", 1, 8, true)]),
                ("export X=\"#v\"", &[("X", "#v", 1, 8, true)]),
                ("echo a#b; X=v", &[("X", "v", 1, 11, false)]),
                ("# it's a comment\nX=v", &[("X", "v", 2, 1, false)]),
                ("#!/bin/sh\nexport X=v", &[("X", "v", 2, 8, true)]),
            ],
            Dialect::Posix,
        );
    }

    #[test]
    fn posix_continuations() {
        check(
            &[
                ("export \\\n  X=v", &[("X", "v", 2, 3, true)]),
                ("export X=\\\nv", &[("X", "v", 2, 8, true)]),
                ("export X=ab\\\ncd", &[("X", "abcd", 1, 8, true)]),
                ("export X=\"ab\\\ncd\"", &[("X", "abcd", 1, 8, true)]),
                ("export X='ab\\\ncd'", &[("X", "ab\\\ncd", 1, 8, true)]),
                (
                    "export X=a \\\n  Y=b",
                    &[("X", "a", 1, 8, true), ("Y", "b", 2, 3, true)],
                ),
                ("export X=v\\\r\nw", &[("X", "vw", 1, 8, true)]),
            ],
            Dialect::Posix,
        );
    }

    #[test]
    fn posix_double_quotes() {
        check(
            &[
                (r#"X="a\"b""#, &[("X", "a\"b", 1, 1, false)]),
                (r#"X="a\\b""#, &[("X", "a\\b", 1, 1, false)]),
                (r#"X="a\$b""#, &[("X", "a$b", 1, 1, false)]),
                ("X=\"a\\`b\"", &[("X", "a`b", 1, 1, false)]),
                (r#"X="a\nb""#, &[("X", "a\\nb", 1, 1, false)]),
                (r#"X="a'b""#, &[("X", "a'b", 1, 1, false)]),
                (r#"X="a b  c""#, &[("X", "a b  c", 1, 1, false)]),
                ("X=\"line1\nline2\"", &[("X", "line1\nline2", 1, 1, false)]),
                ("X=\"a;b && c | d\"", &[("X", "a;b && c | d", 1, 1, false)]),
            ],
            Dialect::Posix,
        );
    }

    #[test]
    fn posix_single_and_ansi_quotes() {
        check(
            &[
                (r"X='a\b'", &[("X", "a\\b", 1, 1, false)]),
                (r#"X='a"b'"#, &[("X", "a\"b", 1, 1, false)]),
                (r"X='a'\''b'", &[("X", "a'b", 1, 1, false)]),
                (r"X='$HOME'", &[("X", "$HOME", 1, 1, false)]),
                (r"X=$'a\nb'", &[("X", "a\nb", 1, 1, false)]),
                (r"X=$'a\tb'", &[("X", "a\tb", 1, 1, false)]),
                (r"X=$'a\\b'", &[("X", "a\\b", 1, 1, false)]),
                (r"X=$'it\'s'", &[("X", "it's", 1, 1, false)]),
                (r"X=$'\x41\x42'", &[("X", "AB", 1, 1, false)]),
                (r"X=$'\101'", &[("X", "A", 1, 1, false)]),
                (r"X=$'\u00e9'", &[("X", "\u{e9}", 1, 1, false)]),
                (r"X=$'\q'", &[("X", "\\q", 1, 1, false)]),
                (r#"X=$"a b""#, &[("X", "a b", 1, 1, false)]),
                (r#"X="$'a'""#, &[("X", "$'a'", 1, 1, false)]),
            ],
            Dialect::Posix,
        );
    }

    #[test]
    fn posix_concatenation_and_escapes() {
        check(
            &[
                (r#"X="a"'b'c"#, &[("X", "abc", 1, 1, false)]),
                (r#"X=a"b c"d"#, &[("X", "ab cd", 1, 1, false)]),
                (r"X=a\ b", &[("X", "a b", 1, 1, false)]),
                (r"X=a\;b", &[("X", "a;b", 1, 1, false)]),
                (r"X=\$HOME", &[("X", "$HOME", 1, 1, false)]),
                (
                    r#"export X="Hq3vT9xLm2"'Zr8WbK5nYp4Jc7'"#,
                    &[("X", FAKE, 1, 8, true)],
                ),
            ],
            Dialect::Posix,
        );
    }

    #[test]
    fn posix_references_kept() {
        check(
            &[
                ("X=$Y", &[("X", "$Y", 1, 1, false)]),
                ("X=${Y}", &[("X", "${Y}", 1, 1, false)]),
                ("X=\"${Y:-a b}\"", &[("X", "${Y:-a b}", 1, 1, false)]),
                ("X=\"${Y:-it's}\"", &[("X", "${Y:-it's}", 1, 1, false)]),
                ("X=$(cmd arg)", &[("X", "$(cmd arg)", 1, 1, false)]),
                (
                    "X=\"$(cmd \"a b\")\"",
                    &[("X", "$(cmd \"a b\")", 1, 1, false)],
                ),
                ("X=$(a $(b) c)", &[("X", "$(a $(b) c)", 1, 1, false)]),
                ("X=$(echo ')')", &[("X", "$(echo ')')", 1, 1, false)]),
                ("X=`cmd arg`", &[("X", "`cmd arg`", 1, 1, false)]),
                ("X=$((1 + 2))", &[("X", "$((1 + 2))", 1, 1, false)]),
                (
                    "X=$HOME/bin:$PATH",
                    &[("X", "$HOME/bin:$PATH", 1, 1, false)],
                ),
                (
                    "X=$(pass show api\n  | head -1)",
                    &[("X", "$(pass show api\n  | head -1)", 1, 1, false)],
                ),
                (
                    "X=$(a)\nY=b",
                    &[("X", "$(a)", 1, 1, false), ("Y", "b", 2, 1, false)],
                ),
                (
                    "X=$(a\nb)\nY=c",
                    &[("X", "$(a\nb)", 1, 1, false), ("Y", "c", 3, 1, false)],
                ),
            ],
            Dialect::Posix,
        );
    }

    #[test]
    fn posix_keywords() {
        check(
            &[
                ("if true; then export X=1; fi", &[("X", "1", 1, 22, true)]),
                (
                    "if [ -z \"$X\" ]; then\n  export X=1\nfi",
                    &[("X", "1", 2, 10, true)],
                ),
                (
                    "if a; then :; else export X=1; fi",
                    &[("X", "1", 1, 27, true)],
                ),
                (
                    "if a; then :; elif b; then X=1; fi",
                    &[("X", "1", 1, 28, false)],
                ),
                ("while read l; do X=1; done", &[("X", "1", 1, 18, false)]),
                ("until a; do export X=1; done", &[("X", "1", 1, 20, true)]),
                (
                    "for i in a b; do export X=1; done",
                    &[("X", "1", 1, 25, true)],
                ),
                ("for X=1 in a; do :; done", &[]),
                ("{ export X=1; }", &[("X", "1", 1, 10, true)]),
                ("{ export X=1;}", &[("X", "1", 1, 10, true)]),
                ("! X=1 cmd", &[("X", "1", 1, 3, true)]),
                ("time X=1 cmd", &[("X", "1", 1, 6, true)]),
                (
                    "case $a in\n  x) export X=1;;\n  *) Y=2 ;;\nesac",
                    &[("X", "1", 2, 13, true), ("Y", "2", 3, 6, false)],
                ),
                ("case $a in x) X=1;; esac", &[("X", "1", 1, 15, false)]),
                ("[ -f f ] && . f && export X=1", &[("X", "1", 1, 27, true)]),
                ("\"if\" X=1", &[]),
                ("((n++)) && export X=1", &[("X", "1", 1, 19, true)]),
                ("(( x = 1 << 2 ))\nexport X=1", &[("X", "1", 2, 8, true)]),
            ],
            Dialect::Posix,
        );
    }

    #[test]
    fn posix_heredocs_skipped() {
        check(
            &[
                (
                    "cat <<EOF\nexport X=1\nEOF\nexport Y=2",
                    &[("Y", "2", 4, 8, true)],
                ),
                ("cat <<'EOF'\nX=1\nEOF\nY=2", &[("Y", "2", 4, 1, false)]),
                ("cat <<\"EOF\"\nX=1\nEOF\nY=2", &[("Y", "2", 4, 1, false)]),
                ("cat << EOF\nX=1\nEOF\nY=2", &[("Y", "2", 4, 1, false)]),
                ("cat <<\\EOF\nX=1\nEOF\nY=2", &[("Y", "2", 4, 1, false)]),
                ("cat <<-EOF\n\tX=1\n\tEOF\nY=2", &[("Y", "2", 4, 1, false)]),
                (
                    "cat <<EOF\n\tX=1\n\tEOF\nEOF\nY=2",
                    &[("Y", "2", 5, 1, false)],
                ),
                (
                    "cat <<EOF > f; export Z=3\nX=1\nEOF\nY=2",
                    &[("Z", "3", 1, 23, true), ("Y", "2", 4, 1, false)],
                ),
                (
                    "cat <<A <<B\nX=1\nA\nX=2\nB\nY=3",
                    &[("Y", "3", 6, 1, false)],
                ),
                ("cat <<EOF\r\nX=1\r\nEOF\r\nY=2", &[("Y", "2", 4, 1, false)]),
                ("cat <<EOF\nX=1", &[]),
                ("X=v cat <<EOF\nY=1\nEOF", &[("X", "v", 1, 1, true)]),
                ("cat <<<X=1; Y=2", &[("Y", "2", 1, 13, false)]),
                ("cat <<<\"a\nb\"\nY=2", &[("Y", "2", 3, 1, false)]),
            ],
            Dialect::Posix,
        );
    }

    #[test]
    fn posix_redirections_dropped() {
        check(
            &[
                ("X=1 > out", &[("X", "1", 1, 1, false)]),
                ("export X=1 2>/dev/null", &[("X", "1", 1, 8, true)]),
                ("export X=1 >>log 2>&1", &[("X", "1", 1, 8, true)]),
                ("X=1 &>/dev/null", &[("X", "1", 1, 1, false)]),
                ("> f X=1 cmd", &[("X", "1", 1, 5, true)]),
                ("source <(cmd) ; X=1", &[("X", "1", 1, 17, false)]),
                ("diff <(a) >(b); X=1", &[("X", "1", 1, 17, false)]),
            ],
            Dialect::Posix,
        );
    }

    #[test]
    fn posix_multiline_values_keep_lines_right() {
        check(
            &[
                (
                    "X=\"a\nb\nc\"\nexport Y=v",
                    &[("X", "a\nb\nc", 1, 1, false), ("Y", "v", 4, 8, true)],
                ),
                (
                    "export X='a\nb'; Y=w",
                    &[("X", "a\nb", 1, 8, true), ("Y", "w", 2, 5, false)],
                ),
                ("export X=\n", &[("X", "", 1, 8, true)]),
                (
                    "X=(\n  a\n  b\n)\nY=c",
                    &[("X", "a b", 1, 1, false), ("Y", "c", 5, 1, false)],
                ),
                ("X=( # comment\n a )", &[("X", "a", 1, 1, false)]),
            ],
            Dialect::Posix,
        );
    }

    #[test]
    fn posix_broken_input_recovers() {
        check(
            &[
                ("echo it's broken\nexport X=v", &[("X", "v", 2, 8, true)]),
                ("echo \"unclosed\nexport X=v", &[("X", "v", 2, 8, true)]),
                ("echo $(unclosed\nexport X=v", &[("X", "v", 2, 8, true)]),
                ("echo ${unclosed\nexport X=v", &[("X", "v", 2, 8, true)]),
                ("echo `unclosed\nexport X=v", &[("X", "v", 2, 8, true)]),
                ("echo $'unclosed\nexport X=v", &[("X", "v", 2, 8, true)]),
                (
                    "X=(unclosed\nexport Y=v",
                    &[("X", "", 1, 1, false), ("Y", "v", 2, 8, true)],
                ),
                ("((unclosed\nexport X=v", &[("X", "v", 2, 8, true)]),
                ("export X=v\\", &[("X", "v\\", 1, 8, true)]),
                (")))\nexport X=v", &[("X", "v", 2, 8, true)]),
                ("fi\ndone\n}\nexport X=v", &[("X", "v", 4, 8, true)]),
            ],
            Dialect::Posix,
        );
    }

    #[test]
    fn posix_sources() {
        let cases: &[(&str, &[(&str, u32)])] = &[
            ("source ~/.aliases", &[("~/.aliases", 1)]),
            (". ~/.aliases", &[("~/.aliases", 1)]),
            ("source \"$HOME/.secrets\"", &[("$HOME/.secrets", 1)]),
            ("source '${HOME}/.secrets'", &[("${HOME}/.secrets", 1)]),
            ("[ -f ~/.x ] && . ~/.x", &[("~/.x", 1)]),
            ("\n\nif [ -r f ]; then\n  source f\nfi", &[("f", 4)]),
            ("source -- f", &[("f", 1)]),
            ("source", &[]),
            ("echo source f", &[]),
            ("# source f", &[]),
            ("cat <<EOF\nsource f\nEOF", &[]),
            ("source a; . b", &[("a", 1), ("b", 1)]),
            ("source $ZSH/oh-my-zsh.sh", &[("$ZSH/oh-my-zsh.sh", 1)]),
            ("source <(kubectl completion bash)", &[]),
            (
                "source /dev/stdin <<<x; . f",
                &[("/dev/stdin", 1), ("f", 1)],
            ),
        ];
        for (text, want) in cases {
            let got: Vec<(String, u32)> = parse(text.as_bytes(), Dialect::Posix)
                .sources
                .into_iter()
                .map(|s| (s.path, s.line))
                .collect();
            let want: Vec<(String, u32)> = want.iter().map(|(p, l)| (p.to_string(), *l)).collect();
            assert_eq!(got, want, "input: {text:?}");
        }
    }

    #[test]
    fn fish_assignments() {
        check(
            &[
                ("set -x X v", &[("X", "v", 1, 8, true)]),
                ("set -gx X v", &[("X", "v", 1, 9, true)]),
                ("set -xg X v", &[("X", "v", 1, 9, true)]),
                ("set -Ux X v", &[("X", "v", 1, 9, true)]),
                ("set --export X v", &[("X", "v", 1, 14, true)]),
                ("set --global --export X v", &[("X", "v", 1, 23, true)]),
                ("set -g X v", &[("X", "v", 1, 8, false)]),
                ("set X v", &[("X", "v", 1, 5, false)]),
                ("set -l X v", &[("X", "v", 1, 8, false)]),
                ("set -gx PATH a b c", &[("PATH", "a b c", 1, 9, true)]),
                ("set -gx X 'a b'", &[("X", "a b", 1, 9, true)]),
                ("set -gx X \"a b\"", &[("X", "a b", 1, 9, true)]),
                ("set -gx X 'it\\'s'", &[("X", "it's", 1, 9, true)]),
                ("set -gx X 'a\\\\b'", &[("X", "a\\b", 1, 9, true)]),
                ("set -gx X 'a\\nb'", &[("X", "a\\nb", 1, 9, true)]),
                ("set -gx X \"a\\\"b\"", &[("X", "a\"b", 1, 9, true)]),
                ("set -gx X \"a\\$b\"", &[("X", "a$b", 1, 9, true)]),
                ("set -gx X a\\ b", &[("X", "a b", 1, 9, true)]),
                ("set -gx X (cat f)", &[("X", "(cat f)", 1, 9, true)]),
                ("set -gx X (cat 'a)b')", &[("X", "(cat 'a)b')", 1, 9, true)]),
                ("set -gx X \"$(cat f)\"", &[("X", "$(cat f)", 1, 9, true)]),
                ("set -gx X $HOME/x", &[("X", "$HOME/x", 1, 9, true)]),
                ("set -gx X", &[("X", "", 1, 9, true)]),
                ("set -gx X\\\n  v", &[("X", "v", 2, 9, true)]),
                ("set -gx X \\\n  v", &[("X", "v", 2, 9, true)]),
                ("set -gx X 'a\nb'", &[("X", "a\nb", 1, 9, true)]),
                ("set -e X", &[]),
                ("set -q X", &[]),
                ("set -S X", &[]),
                ("set --erase X", &[]),
                ("set -gx 1X v", &[]),
                (
                    "set -g X v; set -x X w",
                    &[("X", "v", 1, 8, false), ("X", "w", 1, 20, true)],
                ),
                (
                    "set -gx X v\nset -g X w",
                    &[("X", "v", 1, 9, true), ("X", "w", 2, 8, true)],
                ),
                (
                    "set -gx X v; set -u X w",
                    &[("X", "v", 1, 9, true), ("X", "w", 1, 21, false)],
                ),
                ("set X[1] v", &[("X", "v", 1, 5, false)]),
                ("set -- X v", &[("X", "v", 1, 8, false)]),
                ("export X=v", &[("X", "v", 1, 8, true)]),
                ("X=v cmd", &[("X", "v", 1, 1, true)]),
                ("X=v", &[]),
                ("env X=v cmd", &[("X", "v", 1, 5, true)]),
            ],
            Dialect::Fish,
        );
    }

    #[test]
    fn fish_structure() {
        check(
            &[
                (
                    "if status is-interactive\n  set -gx X v\nend",
                    &[("X", "v", 2, 11, true)],
                ),
                ("if test -f f; set -gx X v; end", &[("X", "v", 1, 23, true)]),
                ("test -f f; and set -gx X v", &[("X", "v", 1, 24, true)]),
                ("test -f f; or set -gx X v", &[("X", "v", 1, 23, true)]),
                ("test -f f && set -gx X v", &[("X", "v", 1, 22, true)]),
                ("begin; set -gx X v; end", &[("X", "v", 1, 16, true)]),
                ("function f\n  set -gx X v\nend", &[("X", "v", 2, 11, true)]),
                (
                    "switch $a\ncase x\n  set -gx X v\nend",
                    &[("X", "v", 3, 11, true)],
                ),
                ("else if a\n set -x X v", &[("X", "v", 2, 9, true)]),
                ("# set -gx X v", &[]),
                ("set -gx X v # comment", &[("X", "v", 1, 9, true)]),
                (
                    "set -gx X v; set -gx Y w",
                    &[("X", "v", 1, 9, true), ("Y", "w", 1, 22, true)],
                ),
                ("echo 'unclosed\nset -gx X v", &[("X", "v", 2, 9, true)]),
            ],
            Dialect::Fish,
        );
        let p = parse(
            b"source ~/.config/fish/secrets.fish\n. other.fish",
            Dialect::Fish,
        );
        assert_eq!(
            p.sources,
            vec![
                Sourced {
                    path: "~/.config/fish/secrets.fish".into(),
                    line: 1
                },
                Sourced {
                    path: "other.fish".into(),
                    line: 2
                },
            ]
        );
    }

    #[test]
    fn csh_assignments() {
        check(
            &[
                ("setenv X v", &[("X", "v", 1, 8, true)]),
                ("setenv X \"a b\"", &[("X", "a b", 1, 8, true)]),
                ("setenv X 'a b'", &[("X", "a b", 1, 8, true)]),
                (
                    "setenv API_KEY Hq3vT9xLm2Zr8WbK5nYp4Jc7",
                    &[("API_KEY", FAKE, 1, 8, true)],
                ),
                ("setenv X", &[("X", "", 1, 8, true)]),
                ("setenv X $HOME/x", &[("X", "$HOME/x", 1, 8, true)]),
                ("setenv X `cat f`", &[("X", "`cat f`", 1, 8, true)]),
                ("setenv X ${HOME}", &[("X", "${HOME}", 1, 8, true)]),
                ("setenv X \"a\\\"", &[("X", "a\\", 1, 8, true)]),
                ("set X = v", &[("X", "v", 1, 5, false)]),
                ("set X=v", &[("X", "v", 1, 5, false)]),
                ("set X= v", &[("X", "v", 1, 5, false)]),
                ("set X =v", &[("X", "v", 1, 5, false)]),
                ("set X = \"a b\"", &[("X", "a b", 1, 5, false)]),
                (
                    "set X=1 Y=2",
                    &[("X", "1", 1, 5, false), ("Y", "2", 1, 9, false)],
                ),
                (
                    "set X = 1 Y = 2",
                    &[("X", "1", 1, 5, false), ("Y", "2", 1, 11, false)],
                ),
                (
                    "set path = ( /bin /usr/bin )",
                    &[("path", "/bin /usr/bin", 1, 5, false)],
                ),
                (
                    "set path=(/bin $path)\nsetenv Y w",
                    &[("path", "/bin $path", 1, 5, false), ("Y", "w", 2, 8, true)],
                ),
                ("set -r X = v", &[("X", "v", 1, 8, false)]),
                ("set X", &[]),
                ("set", &[]),
                ("if ($?prompt) setenv X v", &[("X", "v", 1, 22, true)]),
                (
                    "if ( -f f ) then\n  setenv X v\nendif",
                    &[("X", "v", 2, 10, true)],
                ),
                (
                    "if (a) then\nelse\n  setenv X v\nendif",
                    &[("X", "v", 3, 10, true)],
                ),
                (
                    "foreach i (a b)\n  setenv X v\nend",
                    &[("X", "v", 2, 10, true)],
                ),
                ("# setenv X v", &[]),
                ("setenv X v # c", &[("X", "v", 1, 8, true)]),
                (
                    "setenv X v; setenv Y w",
                    &[("X", "v", 1, 8, true), ("Y", "w", 1, 20, true)],
                ),
                ("setenv X \\\n  v", &[("X", "v", 2, 8, true)]),
                ("echo setenv X v", &[]),
            ],
            Dialect::Csh,
        );
        let p = parse(b"source ~/.cshrc.local\nsource -h hist", Dialect::Csh);
        assert_eq!(
            p.sources,
            vec![
                Sourced {
                    path: "~/.cshrc.local".into(),
                    line: 1
                },
                Sourced {
                    path: "hist".into(),
                    line: 2
                },
            ]
        );
    }

    #[test]
    fn etc_environment_style() {
        check(
            &[
                (
                    "PATH=\"/usr/local/sbin:/usr/bin\"\nAPI_TOKEN=Hq3vT9xLm2Zr8WbK5nYp4Jc7\n",
                    &[
                        ("PATH", "/usr/local/sbin:/usr/bin", 1, 1, false),
                        ("API_TOKEN", FAKE, 2, 1, false),
                    ],
                ),
                ("# comment\nKEY='v'\n", &[("KEY", "v", 2, 1, false)]),
            ],
            Dialect::Posix,
        );
    }

    #[test]
    fn invalid_utf8_is_kept_as_bytes() {
        let p = parse(b"export X=\xff\xfe\nexport \xc3(=1\nY=\x80", Dialect::Posix);
        let got: Vec<(&str, &[u8])> = p
            .assignments
            .iter()
            .map(|a| (a.name.as_str(), a.value.as_slice()))
            .collect();
        assert_eq!(got, vec![("X", &b"\xff\xfe"[..]), ("Y", &b"\x80"[..])]);
    }

    #[test]
    fn split_commands_separators() {
        let cmds = split_commands(b"a b; c && d || e | f & g\nh (i) j", Dialect::Posix);
        let got: Vec<(Vec<String>, Sep)> = cmds
            .iter()
            .map(|c| {
                (
                    c.words
                        .iter()
                        .map(|w| String::from_utf8_lossy(&w.text).into_owned())
                        .collect(),
                    c.end,
                )
            })
            .collect();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            got,
            vec![
                (s(&["a", "b"]), Sep::Semi),
                (s(&["c"]), Sep::And),
                (s(&["d"]), Sep::Or),
                (s(&["e"]), Sep::Pipe),
                (s(&["f"]), Sep::Amp),
                (s(&["g"]), Sep::Newline),
                (s(&["h"]), Sep::Open),
                (s(&["i"]), Sep::Close),
                (s(&["j"]), Sep::End),
            ]
        );
    }

    #[test]
    fn long_inputs_are_linear() {
        // Many unclosed openers: each is retried as a literal within the budget, and the scan
        // still finishes quickly.
        for unit in ["$(", "\"", "'", "`", "${", "((", "$'", "X=(", "<<E\n"] {
            let mut text = unit.repeat(20_000);
            text.push_str("\nexport X=v");
            let start = std::time::Instant::now();
            let p = parse(text.as_bytes(), Dialect::Posix);
            assert!(start.elapsed().as_secs() < 10, "{unit:?} took too long");
            let lines = text.matches('\n').count() as u32 + 1;
            assert!(p.assignments.iter().all(|a| a.line >= 1 && a.line <= lines));
        }
        let deep = "$(".repeat(100_000);
        let _ = parse(deep.as_bytes(), Dialect::Posix);
        let deep = "(".repeat(100_000);
        let _ = parse(deep.as_bytes(), Dialect::Fish);
    }

    fn line_count(text: &[u8]) -> u32 {
        text.iter().filter(|&&b| b == b'\n').count() as u32 + 1
    }

    fn check_invariants(text: &[u8]) {
        let max = line_count(text) + 1;
        for d in [Dialect::Posix, Dialect::Fish, Dialect::Csh] {
            let p = parse(text, d);
            for a in &p.assignments {
                assert!(a.line >= 1 && a.line <= max, "{a:?}");
                assert!(a.column >= 1, "{a:?}");
                assert!(is_name(a.name.as_bytes()), "{a:?}");
            }
            for s in &p.sources {
                assert!(s.line >= 1 && s.line <= max, "{s:?}");
            }
        }
    }

    /// Bytes that mean something to a shell, so random input exercises the lexer's states.
    fn shellish() -> impl Strategy<Value = Vec<u8>> {
        let alphabet: Vec<u8> = b" \t\n\r\\'\"`$(){}[]<>;&|#=+-xX_aA1EOF.~!:@,*?".to_vec();
        prop::collection::vec(prop::sample::select(alphabet), 0..512)
    }

    fn words_of(tokens: Vec<&'static str>) -> Vec<u8> {
        tokens.concat().into_bytes()
    }

    fn tokenish() -> impl Strategy<Value = Vec<u8>> {
        let tokens = vec![
            "export ",
            "X=",
            "Y=",
            "v",
            " ",
            "\n",
            "'",
            "\"",
            "$(",
            ")",
            "${",
            "}",
            "`",
            "<<",
            "EOF",
            "<<-",
            "\t",
            ";",
            "&&",
            "|",
            "#",
            "\\\n",
            "\\",
            "$'",
            "(",
            "set -gx ",
            "setenv ",
            "set ",
            " = ",
            "declare -x ",
            "source ",
            ". ",
            "if ",
            "then ",
            "fi",
            "case ",
            "esac",
            "((",
            "))",
            "\r\n",
        ];
        prop::collection::vec(prop::sample::select(tokens), 0..200).prop_map(words_of)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn long_inputs_never_panic(
            chunks in prop::collection::vec(prop_oneof![
                prop::collection::vec(any::<u8>(), 0..256),
                shellish(),
                tokenish(),
            ], 64..256)
        ) {
            check_invariants(&chunks.concat());
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(text in prop::collection::vec(any::<u8>(), 0..2048)) {
            check_invariants(&text);
        }

        #[test]
        fn shellish_bytes_never_panic(text in shellish()) {
            check_invariants(&text);
        }

        #[test]
        fn shell_tokens_never_panic(text in tokenish()) {
            check_invariants(&text);
        }

        #[test]
        fn exported_value_round_trips(value in "[A-Za-z0-9_./:+-]{1,40}") {
            for text in [
                format!("export K={value}"),
                format!("export K='{value}'"),
                format!("export K=\"{value}\""),
                format!("# c\n  export K=\"{value}\" # c"),
            ] {
                let p = parse(text.as_bytes(), Dialect::Posix);
                prop_assert_eq!(p.assignments.len(), 1);
                prop_assert_eq!(&p.assignments[0].value, value.as_bytes());
                prop_assert!(p.assignments[0].exported);
            }
            let p = parse(format!("set -gx K '{value}'").as_bytes(), Dialect::Fish);
            prop_assert_eq!(&p.assignments[0].value, value.as_bytes());
            let p = parse(format!("setenv K \"{value}\"").as_bytes(), Dialect::Csh);
            prop_assert_eq!(&p.assignments[0].value, value.as_bytes());
        }

        #[test]
        fn line_numbers_follow_preceding_lines(pre in prop::collection::vec("[a-z ]{0,20}", 0..30)) {
            let mut text = pre.iter().map(|l| format!("echo {l}\n")).collect::<String>();
            text.push_str("export K=v\n");
            let p = parse(text.as_bytes(), Dialect::Posix);
            prop_assert_eq!(p.assignments.len(), 1);
            prop_assert_eq!(p.assignments[0].line as usize, pre.len() + 1);
        }
    }
}
