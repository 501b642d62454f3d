//! The rule catalogue: one TOML file per provider in `rules/`, turned into Rust data by
//! `build.rs` (so start-up parses nothing), each rule with examples and negative examples that
//! one test runs.
//!
//! Regexes are compiled lazily, the first time a rule's keyword is seen, so a short audit pays
//! only for the rules its inputs trigger (DESIGN.md §4: cold audit ≤ 20 ms).

use regex::bytes::{Regex, RegexSet};
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The rule's own regex; capture group 1 is the secret.
    Regex,
    /// The name heuristic in `names.rs`.
    Assignment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    Base62Crc32,
}

/// A rule as written in its TOML file (field meanings: see `Rule`).
#[derive(Debug)]
pub struct RuleSpec {
    pub id: &'static str,
    pub kind: &'static str,
    pub prefix: &'static str,
    pub prefixes: &'static [&'static str],
    pub keywords: &'static [&'static str],
    pub ignore_case: bool,
    pub engine: Engine,
    pub regex: Option<&'static str>,
    pub min_entropy: f64,
    pub checksum: Option<Checksum>,
    pub password: bool,
    pub priority: i32,
    pub allowlist: &'static [&'static str],
    pub examples: &'static [&'static str],
    pub negative_examples: &'static [&'static str],
}

const SPECS: &[RuleSpec] = include!(concat!(env!("OUT_DIR"), "/rules.rs"));

#[derive(Debug)]
pub struct Rule {
    /// The rule as written: `id`, `kind` ("Anthropic API key"), `prefix` (the part every key of
    /// the kind starts with, kept in previews because it reveals nothing), `prefixes` (longer
    /// public prefixes such as `sk-proj-`), `keywords` for the prefilter, `min_entropy`,
    /// `checksum`, `password` (no entropy floor, no fingerprint when low-entropy), `priority`
    /// (the higher wins when two matches overlap), `allowlist` (regexes over the whole match
    /// that mark it as not a secret, as gitleaks' `regexTarget = "match"`), and the examples.
    pub spec: &'static RuleSpec,
    compiled: OnceLock<Regex>,
    compiled_allowlist: OnceLock<Option<RegexSet>>,
}

impl std::ops::Deref for Rule {
    type Target = RuleSpec;
    fn deref(&self) -> &RuleSpec {
        self.spec
    }
}

impl Rule {
    pub fn regex(&self) -> Option<&Regex> {
        let src = self.spec.regex?;
        Some(self.compiled.get_or_init(|| {
            // ASCII classes (`(?-u)`): keys are ASCII, and Unicode classes make compilation
            // ten times slower, which a 20 ms audit cannot afford.
            Regex::new(&format!("(?-u){src}"))
                .unwrap_or_else(|e| panic!("rule {}: bad regex: {e}", self.id))
        }))
    }

    /// Whether the whole match `m` is allowlisted.
    pub fn allowed(&self, m: &[u8]) -> bool {
        self.compiled_allowlist
            .get_or_init(|| {
                (!self.allowlist.is_empty()).then(|| {
                    let pats = self.allowlist.iter().map(|p| format!("(?-u){p}"));
                    RegexSet::new(pats)
                        .unwrap_or_else(|e| panic!("rule {}: bad allowlist: {e}", self.id))
                })
            })
            .as_ref()
            .is_some_and(|set| set.is_match(m))
    }
}

/// The built-in catalogue, made once per process (each rule keeps its compiled regex).
pub fn builtin() -> &'static [Rule] {
    static BUILTIN: OnceLock<Vec<Rule>> = OnceLock::new();
    BUILTIN.get_or_init(|| {
        SPECS
            .iter()
            .map(|spec| Rule {
                spec,
                compiled: OnceLock::new(),
                compiled_allowlist: OnceLock::new(),
            })
            .collect()
    })
}
