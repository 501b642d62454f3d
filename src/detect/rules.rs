//! The rule catalogue: one TOML file per provider in `rules/`, compiled into the binary.
//!
//! Regexes are compiled lazily, the first time a rule's keyword is seen, so a short audit pays
//! only for the rules its inputs trigger (DESIGN.md §4: cold audit ≤ 20 ms).

use regex::bytes::Regex;
use serde::Deserialize;
use std::sync::OnceLock;

/// Every rules file, by name. Adding a provider is adding a file here.
const RULE_FILES: &[(&str, &str)] = &[
    ("anthropic", include_str!("../../rules/anthropic.toml")),
    ("openai", include_str!("../../rules/openai.toml")),
    ("google", include_str!("../../rules/google.toml")),
    (
        "ai-providers",
        include_str!("../../rules/ai-providers.toml"),
    ),
    ("aws", include_str!("../../rules/aws.toml")),
    ("github", include_str!("../../rules/github.toml")),
    ("gitlab", include_str!("../../rules/gitlab.toml")),
    ("npm", include_str!("../../rules/npm.toml")),
    ("pypi", include_str!("../../rules/pypi.toml")),
    ("stripe", include_str!("../../rules/stripe.toml")),
    ("slack", include_str!("../../rules/slack.toml")),
    ("databricks", include_str!("../../rules/databricks.toml")),
    ("private-key", include_str!("../../rules/private-key.toml")),
    (
        "url-password",
        include_str!("../../rules/url-password.toml"),
    ),
    ("generic", include_str!("../../rules/generic.toml")),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// The rule's own regex; capture group 1 is the secret.
    #[default]
    Regex,
    /// The name heuristic in `names.rs`.
    Assignment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Checksum {
    Base62Crc32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    /// What the secret is, for people: "Anthropic API key".
    pub kind: String,
    /// The part every key of this kind starts with; kept in previews because it reveals nothing.
    #[serde(default)]
    pub prefix: String,
    /// Longer public prefixes some keys of the kind carry (`sk-proj-`); previews keep the
    /// longest that matches.
    #[serde(default)]
    pub prefixes: Vec<String>,
    pub keywords: Vec<String>,
    #[serde(default)]
    pub ignore_case: bool,
    #[serde(default)]
    pub engine: Engine,
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub min_entropy: f64,
    #[serde(default)]
    pub checksum: Option<Checksum>,
    /// Passwords: no entropy floor, and no fingerprint when the value is low-entropy.
    #[serde(default)]
    pub password: bool,
    /// When two matches overlap, the higher priority wins (a GCP key file over the PEM inside it).
    #[serde(default)]
    pub priority: i32,
    /// Regexes over the whole match: a match any of them finds is not a secret (documentation
    /// hosts, escaped test strings), as gitleaks' `allowlists` with `regexTarget = "match"`.
    #[serde(default)]
    pub allowlist: Vec<String>,
    pub examples: Vec<String>,
    #[serde(default)]
    pub negative_examples: Vec<String>,
    #[serde(skip)]
    compiled: OnceLock<Regex>,
    #[serde(skip)]
    compiled_allowlist: OnceLock<Option<regex::bytes::RegexSet>>,
}

impl Rule {
    /// Whether the whole match `m` is allowlisted.
    pub fn allowed(&self, m: &[u8]) -> bool {
        self.compiled_allowlist
            .get_or_init(|| {
                (!self.allowlist.is_empty()).then(|| {
                    let pats = self.allowlist.iter().map(|p| format!("(?-u){p}"));
                    regex::bytes::RegexSet::new(pats)
                        .unwrap_or_else(|e| panic!("rule {}: bad allowlist: {e}", self.id))
                })
            })
            .as_ref()
            .is_some_and(|set| set.is_match(m))
    }

    pub fn regex(&self) -> Option<&Regex> {
        let src = self.regex.as_deref()?;
        Some(self.compiled.get_or_init(|| {
            // ASCII classes (`(?-u)`): keys are ASCII, and Unicode classes make compilation
            // ten times slower, which a 20 ms audit cannot afford.
            Regex::new(&format!("(?-u){src}"))
                .unwrap_or_else(|e| panic!("rule {}: bad regex: {e}", self.id))
        }))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    rules: Vec<Rule>,
}

/// Parses the built-in catalogue. The files are part of the binary, so a parse error is a bug
/// caught by the tests, not a user error.
pub fn builtin() -> Vec<Rule> {
    let mut rules = Vec::new();
    for (name, text) in RULE_FILES {
        let file: RuleFile =
            toml::from_str(text).unwrap_or_else(|e| panic!("rules/{name}.toml: {e}"));
        rules.extend(file.rules);
    }
    rules
}
