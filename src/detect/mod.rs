//! What a secret looks like: the rule catalogue, a literal prefilter, the regex and name
//! heuristics, checksums and entropy. Pure functions over bytes; nothing here reads files or
//! prints.
//!
//! Matching runs in two steps, as gitleaks and trufflehog do: an Aho-Corasick pass over every
//! rule's keywords finds which rules can match at all, then only those rules' regexes run. Inputs
//! are bytes, so invalid UTF-8 never stops a scan.

pub mod checksum;
pub mod entropy;
mod keywords;
pub mod names;
pub mod rules;

use crate::finding::SecretInfo;
use crate::secret::SecretValue;
use keywords::Keywords;
use names::NameKind;
use rules::{Checksum, Engine, Rule};
use std::collections::HashMap;
use std::sync::OnceLock;

pub use names::Strictness as Mode;

/// One secret found in a haystack.
#[derive(Debug, Clone)]
pub struct Match {
    pub rule: &'static Rule,
    /// Byte range of the secret value in the haystack.
    pub start: usize,
    pub end: usize,
    pub value: SecretValue,
    /// The variable or key name, for name-based matches.
    pub name: Option<String>,
}

impl Match {
    /// The public face of the secret: kind, preview and (for high-entropy values) fingerprint.
    pub fn info(&self) -> SecretInfo {
        secret_info(self.rule, &self.value)
    }
}

pub fn secret_info(rule: &Rule, value: &SecretValue) -> SecretInfo {
    let bytes = value.expose();
    let low_entropy = bytes.len() < 16 || entropy::shannon(bytes) < 3.0;
    let fingerprint = if rule.password && low_entropy {
        None
    } else {
        Some(value.fingerprint())
    };
    // The preview keeps the value's own leading bytes for the length of the rule's prefix, so
    // `gh?_` shows as `ghp_` and `sk-` as `sk-`.
    let n = rule
        .prefixes
        .iter()
        .filter(|p| bytes.starts_with(p.as_bytes()))
        .map(|p| p.len())
        .max()
        .unwrap_or(rule.prefix.len())
        .min(bytes.len());
    let prefix = match std::str::from_utf8(&bytes[..n]) {
        Ok(p) if p.is_ascii() => p,
        _ => "",
    };
    SecretInfo {
        kind: rule.kind.to_string(),
        fingerprint,
        preview: value.preview(prefix),
    }
}

pub struct Detector {
    rules: &'static [Rule],
    /// Keywords of format rules, and keywords of names (in their usual spellings): two
    /// sets, because the automaton's Teddy prefilter slows down sharply past a few dozen
    /// patterns.
    keywords: [Keywords; 2],
    /// For each keyword of each automaton: the rules it triggers.
    keyword_rules: [Vec<Vec<usize>>; 2],
}

static DETECTOR: OnceLock<Detector> = OnceLock::new();

/// The process-wide detector over the built-in rules.
pub fn detector() -> &'static Detector {
    DETECTOR.get_or_init(|| Detector::new(rules::builtin()))
}

/// `text` with every secret the detector finds replaced by `<redacted>`: for messages that
/// quote what a user wrote (a config line, a command line), where a key may have been pasted.
pub fn redact(text: String) -> String {
    let found = detector().scan(text.as_bytes(), Mode::Text);
    if found.is_empty() {
        return text;
    }
    let mut out = text.into_bytes();
    for m in found.iter().rev() {
        out.splice(m.start..m.end, b"<redacted>".iter().copied());
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Detector {
    pub fn new(rules: &'static [Rule]) -> Self {
        // Unique keywords (several rules may share one), each with the rules it triggers;
        // index 0 holds format keywords, 1 name keywords.
        let mut pats: [Vec<String>; 2] = Default::default();
        let mut map: [Vec<Vec<usize>>; 2] = Default::default();
        for (i, rule) in rules.iter().enumerate() {
            let set = usize::from(rule.ignore_case);
            for kw in rule.keywords {
                for kw in case_variants(kw, rule.ignore_case) {
                    match pats[set].iter().position(|p| *p == kw) {
                        Some(j) => map[set][j].push(i),
                        None => {
                            pats[set].push(kw);
                            map[set].push(vec![i]);
                        }
                    }
                }
            }
        }
        let [formats, names] = pats;
        Detector {
            keywords: [Keywords::new(formats), Keywords::new(names)],
            keyword_rules: map,
            rules,
        }
    }

    pub fn rules(&self) -> &'static [Rule] {
        self.rules
    }

    /// Every secret in `hay`. `mode` says how much evidence name-based matches need.
    pub fn scan(&self, hay: &[u8], mode: Mode) -> Vec<Match> {
        let mut triggered = vec![false; self.rules.len()];
        let mut any = false;
        // Name spans holding a name keyword, for the assignment engine (deduplicated).
        let mut names_seen: Vec<(usize, usize)> = Vec::new();
        for (set, keywords) in self.keywords.iter().enumerate() {
            for m in keywords.find_all(hay) {
                any = true;
                if set == 1 {
                    // Any name keyword may sit inside a secret-like name
                    // (`aws_secret_access_key` holds `key` and `secret`), and non-overlapping
                    // search reports only one: check the name around every such hit.
                    let span = name_span(hay, m.start, m.end);
                    if names_seen.last() != Some(&span) {
                        names_seen.push(span);
                    }
                }
                for &r in &self.keyword_rules[set][m.pattern] {
                    if self.rules[r].engine != Engine::Assignment {
                        triggered[r] = true;
                    }
                }
            }
        }
        if !any {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if triggered[i] {
                self.run_regex_rule(rule, hay, &mut out);
            }
        }
        names_seen.dedup();
        // Minified code repeats the same few names thousands of times: judge each name once.
        let mut verdicts: HashMap<&[u8], Option<NameKind>> = HashMap::new();
        for (s, e) in names_seen {
            let kind = *verdicts.entry(&hay[s..e]).or_insert_with(|| {
                let name = &hay[s..e];
                if name.len() > 80 {
                    return None;
                }
                names::name_kind(&String::from_utf8_lossy(name))
            });
            if let Some(kind) = kind {
                self.assignment_at(hay, s, e, kind, mode, &mut out);
            }
        }
        let mut out = resolve_overlaps(out);
        // `keyfence:allow` on a line marks its secrets as known and accepted (test fixtures,
        // documentation), as `gitleaks:allow` does for gitleaks, which is honoured too.
        if memchr::memmem::find(hay, b"keyfence:allow").is_some()
            || memchr::memmem::find(hay, b"gitleaks:allow").is_some()
        {
            out.retain(|m| {
                let (s, e) = line_bounds(hay, m.start);
                let line = &hay[s..e];
                memchr::memmem::find(line, b"keyfence:allow").is_none()
                    && memchr::memmem::find(line, b"gitleaks:allow").is_none()
            });
        }
        out
    }

    fn run_regex_rule(&self, rule: &'static Rule, hay: &[u8], out: &mut Vec<Match>) {
        let Some(re) = rule.regex() else { return };
        for caps in re.captures_iter(hay) {
            let Some(g) = caps.get(1).or_else(|| caps.get(0)) else {
                continue;
            };
            let value = g.as_bytes();
            if !self.value_passes(rule, value)
                || rule.allowed(caps.get(0).map_or(value, |m| m.as_bytes()))
            {
                continue;
            }
            out.push(Match {
                rule,
                start: g.start(),
                end: g.end(),
                value: SecretValue::new(value),
                name: None,
            });
        }
    }

    fn value_passes(&self, rule: &Rule, value: &[u8]) -> bool {
        // A valid checksum settles it: a placeholder or a hand-edited example fails it, and a
        // real token's random part may spell a placeholder word by chance.
        let random_enough = rule.min_entropy <= 0.0 || entropy::shannon(value) >= rule.min_entropy;
        if let Some(Checksum::Base62Crc32) = rule.checksum {
            return random_enough && checksum::base62_crc32_ok(value);
        }
        random_enough && !names::is_placeholder(value) && !names::is_reference(value)
    }

    /// The name heuristic at one name (`hay[start..end]`): the name must say "secret", be
    /// followed by an assignment operator, and hold a value that looks like one. Working from
    /// keyword hits rather than from every `a: b` in a file keeps minified code cheap.
    fn assignment_at(
        &self,
        hay: &[u8],
        start: usize,
        end: usize,
        kind: NameKind,
        mode: Mode,
        out: &mut Vec<Match>,
    ) {
        if !hay[start].is_ascii_alphabetic() && hay[start] != b'_' {
            return;
        }
        let name = String::from_utf8_lossy(&hay[start..end]);
        let Some((vs, ve)) = assignment_value(hay, end) else {
            return;
        };
        let value = &hay[vs..ve];
        // Longer values are blobs, not keys; a JWT is the exception (an OAuth token such as
        // the ChatGPT login's in ~/.codex/auth.json runs to 2 KB).
        let max = if is_jwt(value) { 8192 } else { 300 };
        if !(6..=max).contains(&value.len()) || !names::value_is_secret(kind, value, mode) {
            return;
        }
        out.push(Match {
            rule: self.generic_rule(kind),
            start: vs,
            end: ve,
            value: SecretValue::new(value),
            name: Some(name.into_owned()),
        });
    }

    fn generic_rule(&self, kind: NameKind) -> &'static Rule {
        let id = match kind {
            NameKind::Token => "generic-secret",
            NameKind::Password => "generic-password",
        };
        self.rule(id).expect("generic rules are built in")
    }

    pub fn rule(&self, id: &str) -> Option<&'static Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// Classifies one variable of an environment (or an `export`, a `.env` line): a known key
    /// format in the value, a name-anchored rule (`COHERE_API_KEY=...`), or the name heuristic.
    pub fn classify_var(&self, name: &str, value: &[u8]) -> Option<Match> {
        if value.is_empty() {
            return None;
        }
        // Name-anchored rules need the name next to the value, so scan `NAME=value` as one line.
        let mut line = Vec::with_capacity(name.len() + 1 + value.len());
        line.extend_from_slice(name.as_bytes());
        line.push(b'=');
        let offset = line.len();
        line.extend_from_slice(value);
        let best = self
            .scan(&line, Mode::Assignment)
            .into_iter()
            .filter(|m| m.start >= offset)
            .max_by_key(|m| (m.rule.priority, m.end - m.start));
        if let Some(mut m) = best {
            m.start -= offset;
            m.end -= offset;
            m.name = Some(name.to_string());
            return Some(m);
        }
        None
    }
}

/// The spellings a keyword is searched in. Names are written `api_key`, `API_KEY` or
/// `apiKey`: as written in the rule, lower, upper and capitalised cover them; `aPi_KeY` is not
/// worth a slower search.
fn case_variants(kw: &str, ignore_case: bool) -> Vec<String> {
    if !ignore_case {
        return vec![kw.to_string()];
    }
    let lower = kw.to_ascii_lowercase();
    let mut capital = lower.clone();
    if let Some(first) = capital.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    let mut out = vec![kw.to_string(), lower, kw.to_ascii_uppercase(), capital];
    out.sort();
    out.dedup();
    out
}

fn line_bounds(hay: &[u8], at: usize) -> (usize, usize) {
    let start = memchr::memrchr(b'\n', &hay[..at]).map_or(0, |i| i + 1);
    let end = memchr::memchr(b'\n', &hay[at..]).map_or(hay.len(), |i| at + i);
    (start, end)
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'
}

/// The identifier around a keyword hit: `MY_API_KEY` around `KEY`.
fn name_span(hay: &[u8], mut start: usize, mut end: usize) -> (usize, usize) {
    while start > 0 && is_name_byte(hay[start - 1]) {
        start -= 1;
    }
    while end < hay.len() && is_name_byte(hay[end]) {
        end += 1;
    }
    // `.`/`-` lead no identifier: `.token` in `this.token` starts at `token`'s owner, but a
    // leading separator is never part of a name.
    while start < end && !(hay[start].is_ascii_alphanumeric() || hay[start] == b'_') {
        start += 1;
    }
    (start, end)
}

/// After a name at `at`: an optional closing quote, up to three blanks, an operator (`=`,
/// `:=`, `=>`, `:`), up to three blanks, then a value quoted with `"`, `'` or `` ` `` (no
/// whitespace or backslash inside) or bare (up to a delimiter). Returns the value's range.
fn assignment_value(hay: &[u8], mut at: usize) -> Option<(usize, usize)> {
    let skip_blanks = |mut i: usize| {
        let limit = i + 3;
        while i < hay.len() && i < limit && (hay[i] == b' ' || hay[i] == b'\t') {
            i += 1;
        }
        i
    };
    if at < hay.len() && (hay[at] == b'"' || hay[at] == b'\'') {
        at += 1;
    }
    at = skip_blanks(at);
    let rest = hay.get(at..)?;
    let op = if rest.starts_with(b":=") || rest.starts_with(b"=>") {
        2
    } else if rest.starts_with(b"=") || rest.starts_with(b":") {
        1
    } else {
        return None;
    };
    // `==` and `::` are comparisons and paths, not assignments.
    if op == 1 && rest.get(1).is_some_and(|&b| b == rest[0]) {
        return None;
    }
    at = skip_blanks(at + op);
    let q = *hay.get(at)?;
    // Values are read up to 300 bytes, a JWT's (`is_jwt`) further.
    let limit = |from: usize| {
        if hay[from..].starts_with(b"eyJ") {
            8193
        } else {
            301
        }
    };
    if q == b'"' || q == b'\'' || q == b'`' {
        let vs = at + 1;
        let len = hay[vs..]
            .iter()
            .take(limit(vs))
            .position(|&b| b == q || b == b'\\' || b.is_ascii_whitespace())?;
        (hay.get(vs + len) == Some(&q)).then_some((vs, vs + len))
    } else {
        let len = hay[at..]
            .iter()
            .take(limit(at))
            .position(|&b| b.is_ascii_whitespace() || b"\"'`,;(){}[]<>".contains(&b))
            .unwrap_or(hay.len() - at);
        (len > 0).then_some((at, at + len))
    }
}

/// Where two matches overlap, keeps the one with the higher priority (then the longer one).
fn resolve_overlaps(mut ms: Vec<Match>) -> Vec<Match> {
    ms.sort_by(|a, b| {
        b.rule
            .priority
            .cmp(&a.rule.priority)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    let mut kept: Vec<Match> = Vec::with_capacity(ms.len());
    for m in ms {
        if !kept.iter().any(|k| m.start < k.end && k.start < m.end) {
            kept.push(m);
        }
    }
    kept.sort_by_key(|m| m.start);
    kept
}

/// 1-based line and column of byte `offset`.
pub fn line_col(hay: &[u8], offset: usize) -> (u32, u32) {
    let before = &hay[..offset.min(hay.len())];
    let line = memchr::memchr_iter(b'\n', before).count() + 1;
    let col = offset - memchr::memrchr(b'\n', before).map_or(0, |i| i + 1) + 1;
    (line as u32, col as u32)
}

/// A compact JWT: `eyJ` (a base64url JSON header), then three base64url segments.
fn is_jwt(value: &[u8]) -> bool {
    value.starts_with(b"eyJ")
        && value.iter().filter(|&&b| b == b'.').count() == 2
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule's examples must match that rule and its negative examples must not.
    #[test]
    fn every_rule_matches_its_examples_and_not_its_negatives() {
        let d = detector();
        let mut failures = Vec::new();
        for rule in d.rules() {
            assert!(
                !rule.examples.is_empty(),
                "rule {} has no examples",
                rule.id
            );
            for ex in rule.examples {
                let ms = d.scan(ex.as_bytes(), Mode::Text);
                let ms2 = d.scan(ex.as_bytes(), Mode::Assignment);
                if !ms.iter().chain(&ms2).any(|m| m.rule.id == rule.id) {
                    failures.push(format!("{}: example not matched: {ex:.60}", rule.id));
                }
            }
            for ex in rule.negative_examples {
                let ms = d.scan(ex.as_bytes(), Mode::Assignment);
                if let Some(m) = ms.iter().find(|m| m.rule.id == rule.id) {
                    failures.push(format!(
                        "{}: negative example matched ({}): {ex:.60}",
                        rule.id,
                        m.info().preview
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// Release builds leave out regex's Unicode tables (see Cargo.toml); the tests are built with
    /// them (a dev-dependency turns them on), so a rule that switched Unicode mode back on would
    /// pass here and fail in the shipped binary.
    /// A checksummed token whose random part happens to spell a placeholder word is still a
    /// token; the same text with a wrong checksum is not.
    #[test]
    fn a_valid_checksum_outweighs_placeholder_words() {
        let d = detector();
        for body in [
            "KWCUINCqIBK6dUL4CPSRe3TWw8xxxx",
            "Q7mZtodo4rTw9LpB2cVn8XkS1yHd6F",
        ] {
            assert_eq!(body.len(), 30);
            let good = format!(
                "ghp_{body}{}",
                String::from_utf8_lossy(&checksum::base62_6(crc32fast::hash(body.as_bytes())))
            );
            let found = d.scan(good.as_bytes(), Mode::Text);
            assert!(found.iter().any(|m| m.rule.id == "github-token"), "{good}");
            let bad = format!(
                "{}{}",
                &good[..good.len() - 1],
                if good.ends_with('a') { 'b' } else { 'a' }
            );
            let found = d.scan(bad.as_bytes(), Mode::Text);
            assert!(!found.iter().any(|m| m.rule.id == "github-token"), "{bad}");
        }
    }

    #[test]
    fn no_rule_regex_needs_unicode_tables() {
        let flags = regex::Regex::new(r"\(\?[a-zA-Z]*u").unwrap();
        let class = regex::Regex::new(r"\\[pP]").unwrap();
        for rule in detector().rules() {
            for src in rule.regex.iter().chain(rule.allowlist) {
                assert!(
                    !flags.is_match(src),
                    "rule {}: Unicode mode in {src}",
                    rule.id
                );
                assert!(
                    !class.is_match(src),
                    "rule {}: Unicode class in {src}",
                    rule.id
                );
            }
        }
    }

    #[test]
    fn rule_ids_are_unique_kebab_case() {
        let mut ids: Vec<&str> = detector().rules().iter().map(|r| r.id).collect();
        for id in &ids {
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{id}"
            );
        }
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate rule ids");
    }

    #[test]
    fn classify_var_uses_names_and_formats() {
        let d = detector();
        assert_eq!(
            d.classify_var("TOKENIZERS_PARALLELISM", b"false")
                .map(|m| m.rule.id),
            None
        );
        assert_eq!(d.classify_var("KEYTIMEOUT", b"1").map(|m| m.rule.id), None);
        let m = d
            .classify_var("MY_TOKEN", b"Hq3vT9xLm2Zr8WbK5nYp4Jc7")
            .unwrap();
        assert_eq!(m.rule.id, "generic-secret");
        assert_eq!((m.start, m.end), (0, 24));
        // An OAuth access token (a JWT) longer than a key.
        let jwt = format!("eyJhbGciOiJub25lIn0.{}.c2ln", "eyJzdWIiOiJ4In0".repeat(40));
        let m = d.classify_var("ACCESS_TOKEN", jwt.as_bytes()).unwrap();
        assert_eq!((m.rule.id, m.end), ("generic-secret", jwt.len()));
        assert!(
            d.classify_var("ACCESS_TOKEN", "x".repeat(400).as_bytes())
                .is_none()
        );
        let json = format!("{{\"access_token\": \"{jwt}\"}}");
        let ms = d.scan(json.as_bytes(), Mode::Assignment);
        assert!(ms.iter().any(|m| m.end - m.start == jwt.len()), "{ms:?}");
        let m = d.classify_var("DB_PASSWORD", b"hunter22").unwrap();
        assert_eq!(m.rule.id, "generic-password");
        assert!(m.info().fingerprint.is_none());
    }

    #[test]
    fn invalid_utf8_does_not_stop_matching() {
        let mut hay = vec![0xff, 0xfe, b'\n'];
        hay.extend_from_slice(b"AWS_ACCESS_KEY_ID=AKIAHGWGEMR245TUSXAB\n\xc3\x28");
        let ms = detector().scan(&hay, Mode::Text);
        assert!(ms.iter().any(|m| m.rule.id == "aws-access-key-id"));
    }

    proptest::proptest! {
        /// Any bytes: no panic, and every match lies inside the input with the value it claims.
        #[test]
        fn scan_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4000)) {
            for mode in [Mode::Text, Mode::Assignment] {
                for m in detector().scan(&bytes, mode) {
                    proptest::prop_assert!(m.start < m.end && m.end <= bytes.len());
                    proptest::prop_assert_eq!(&bytes[m.start..m.end], m.value.expose());
                }
            }
        }

        /// Keyword-dense text, where the name heuristic and rule regexes all run.
        #[test]
        fn scan_keyword_soup(s in "((key|token|secret|password|sk-ant-api03-|ghp_|AKIA|://|@|=|:|\\x27|\\x22| |\\n|[A-Za-z0-9]{1,12})){0,60}") {
            for m in detector().scan(s.as_bytes(), Mode::Text) {
                proptest::prop_assert!(m.end <= s.len());
            }
            let _ = detector().classify_var("API_KEY", s.as_bytes());
        }
    }

    #[test]
    fn allow_marker_silences_its_line_only() {
        let text = b"a = AKIAHGWGEMR245TUSXAB # keyfence:allow\nb = AKIAQWGEMR245TUSXABC\n";
        let ms = detector().scan(text, Mode::Text);
        assert_eq!(ms.len(), 1);
        assert_eq!(line_col(text, ms[0].start).0, 2);
    }

    #[test]
    fn redact_replaces_every_key_and_keeps_the_rest() {
        let key = "AKIAQWGEMR245TUSXABC";
        let text = format!("npm install --token={key} left-pad; echo {key}");
        let out = redact(text);
        assert!(!out.contains(key), "{out}");
        assert!(
            out.starts_with("npm install --token=<redacted> left-pad"),
            "{out}"
        );
        assert_eq!(redact("npm install".into()), "npm install");
    }

    #[test]
    fn line_col_is_one_based() {
        assert_eq!(line_col(b"ab\ncd", 4), (2, 2));
        assert_eq!(line_col(b"ab", 0), (1, 1));
    }
}
