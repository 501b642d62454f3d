//! What a secret looks like: the rule catalogue, a literal prefilter, the regex and name
//! heuristics, checksums and entropy. Pure functions over bytes; nothing here reads files or
//! prints.
//!
//! Matching runs in two steps, as gitleaks and trufflehog do: an Aho-Corasick pass over every
//! rule's keywords finds which rules can match at all, then only those rules' regexes run. Inputs
//! are bytes, so invalid UTF-8 never stops a scan.

pub mod checksum;
pub mod entropy;
pub mod names;
pub mod rules;

use crate::finding::SecretInfo;
use crate::secret::SecretValue;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use names::NameKind;
use regex::bytes::Regex;
use rules::{Checksum, Engine, Rule};
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
    let n = rule.prefix.len().min(bytes.len());
    let prefix = match std::str::from_utf8(&bytes[..n]) {
        Ok(p) if p.is_ascii() => p,
        _ => "",
    };
    SecretInfo {
        kind: rule.kind.clone(),
        fingerprint,
        preview: value.preview(prefix),
    }
}

pub struct Detector {
    rules: Vec<Rule>,
    sensitive: AhoCorasick,
    sensitive_rule: Vec<usize>,
    insensitive: AhoCorasick,
    insensitive_rule: Vec<usize>,
}

static DETECTOR: OnceLock<Detector> = OnceLock::new();

/// The process-wide detector over the built-in rules.
pub fn detector() -> &'static Detector {
    DETECTOR.get_or_init(|| Detector::new(rules::builtin()))
}

/// Finds `NAME <op> VALUE` in a line: shell, dotenv, YAML, JSON, TOML, JS object literals.
fn assignment_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            // Unbounded repetitions and ASCII classes keep this small to compile; lengths are
            // checked after the match.
            r#"(?-u)([A-Za-z_][A-Za-z0-9_.\-]*)["']?[ \t]{0,3}(?:=|:=|=>|:)[ \t]{0,3}(?:"([^"\\\s]+)"|'([^'\\\s]+)'|`([^`\\\s]+)`|([^\s"'`,;(){}\[\]<>]+))"#,
        )
        .expect("assignment regex")
    })
}

impl Detector {
    pub fn new(rules: Vec<Rule>) -> Self {
        let mut sens = (Vec::new(), Vec::new());
        let mut insens = (Vec::new(), Vec::new());
        for (i, rule) in rules.iter().enumerate() {
            for kw in &rule.keywords {
                let target = if rule.ignore_case {
                    &mut insens
                } else {
                    &mut sens
                };
                target.0.push(kw.clone());
                target.1.push(i);
            }
        }
        let build = |pats: &[String], ci: bool| {
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(ci)
                .match_kind(MatchKind::Standard)
                .build(pats)
                .expect("keyword automaton")
        };
        Detector {
            sensitive: build(&sens.0, false),
            sensitive_rule: sens.1,
            insensitive: build(&insens.0, true),
            insensitive_rule: insens.1,
            rules,
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Every secret in `hay`. `mode` says how much evidence name-based matches need.
    pub fn scan(&'static self, hay: &[u8], mode: Mode) -> Vec<Match> {
        let mut triggered = vec![false; self.rules.len()];
        let mut any = false;
        // Lines holding a name keyword, for the assignment engine (start offsets, deduplicated).
        let mut assignment_lines: Vec<(usize, usize)> = Vec::new();
        for m in self.sensitive.find_overlapping_iter(hay) {
            triggered[self.sensitive_rule[m.pattern().as_usize()]] = true;
            any = true;
        }
        for m in self.insensitive.find_overlapping_iter(hay) {
            let r = self.insensitive_rule[m.pattern().as_usize()];
            any = true;
            if self.rules[r].engine == Engine::Assignment {
                let line = line_bounds(hay, m.start());
                if assignment_lines.last() != Some(&line) {
                    assignment_lines.push(line);
                }
            } else {
                triggered[r] = true;
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
        assignment_lines.dedup();
        for (s, e) in assignment_lines {
            self.run_assignments(&hay[s..e], s, mode, &mut out);
        }
        resolve_overlaps(out)
    }

    fn run_regex_rule(&'static self, rule: &'static Rule, hay: &[u8], out: &mut Vec<Match>) {
        let Some(re) = rule.regex() else { return };
        for caps in re.captures_iter(hay) {
            let Some(g) = caps.get(1).or_else(|| caps.get(0)) else {
                continue;
            };
            let value = g.as_bytes();
            if !self.value_passes(rule, value) {
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
        if names::is_placeholder(value) || names::is_reference(value) {
            return false;
        }
        if rule.min_entropy > 0.0 && entropy::shannon(value) < rule.min_entropy {
            return false;
        }
        match rule.checksum {
            Some(Checksum::Base62Crc32) => checksum::base62_crc32_ok(value),
            None => true,
        }
    }

    fn run_assignments(&'static self, line: &[u8], base: usize, mode: Mode, out: &mut Vec<Match>) {
        for caps in assignment_regex().captures_iter(line) {
            let name = String::from_utf8_lossy(&caps[1]);
            if name.len() > 80 {
                continue;
            }
            let Some(kind) = names::name_kind(&name) else {
                continue;
            };
            let Some(v) = (2..=5).find_map(|i| caps.get(i)) else {
                continue;
            };
            if !(6..=300).contains(&v.len()) {
                continue;
            }
            if !names::value_is_secret(kind, v.as_bytes(), mode) {
                continue;
            }
            out.push(Match {
                rule: self.generic_rule(kind),
                start: base + v.start(),
                end: base + v.end(),
                value: SecretValue::new(v.as_bytes()),
                name: Some(name.into_owned()),
            });
        }
    }

    fn generic_rule(&'static self, kind: NameKind) -> &'static Rule {
        let id = match kind {
            NameKind::Token => "generic-secret",
            NameKind::Password => "generic-password",
        };
        self.rule(id).expect("generic rules are built in")
    }

    pub fn rule(&'static self, id: &str) -> Option<&'static Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// Classifies one variable of an environment (or an `export`, a `.env` line): a known key
    /// format in the value, a name-anchored rule (`COHERE_API_KEY=...`), or the name heuristic.
    pub fn classify_var(&'static self, name: &str, value: &[u8]) -> Option<Match> {
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

fn line_bounds(hay: &[u8], at: usize) -> (usize, usize) {
    let start = memchr::memrchr(b'\n', &hay[..at]).map_or(0, |i| i + 1);
    let end = memchr::memchr(b'\n', &hay[at..]).map_or(hay.len(), |i| at + i);
    (start, end)
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
            for ex in &rule.examples {
                let ms = d.scan(ex.as_bytes(), Mode::Text);
                let ms2 = d.scan(ex.as_bytes(), Mode::Assignment);
                if !ms.iter().chain(&ms2).any(|m| m.rule.id == rule.id) {
                    failures.push(format!("{}: example not matched: {ex:.60}", rule.id));
                }
            }
            for ex in &rule.negative_examples {
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

    #[test]
    fn rule_ids_are_unique_kebab_case() {
        let mut ids: Vec<&str> = detector().rules().iter().map(|r| r.id.as_str()).collect();
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
                .map(|m| m.rule.id.as_str()),
            None
        );
        assert_eq!(
            d.classify_var("KEYTIMEOUT", b"1")
                .map(|m| m.rule.id.as_str()),
            None
        );
        let m = d
            .classify_var("MY_TOKEN", b"Hq3vT9xLm2Zr8WbK5nYp4Jc7")
            .unwrap();
        assert_eq!(m.rule.id, "generic-secret");
        assert_eq!((m.start, m.end), (0, 24));
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

    #[test]
    fn line_col_is_one_based() {
        assert_eq!(line_col(b"ab\ncd", 4), (2, 2));
        assert_eq!(line_col(b"ab", 0), (1, 1));
    }
}
