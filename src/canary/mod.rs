//! Canaries: fake keys in the exact format of a real kind (length, alphabet, fixed markers,
//! valid checksums, no placeholder words), whose fingerprints are recorded in a registry so
//! keyfence recognises them wherever they turn up. LLM-provider canaries are local tripwires:
//! no provider reports their use (research/scanners.md §6.3).

use crate::detect::checksum;
use crate::secret::SecretValue;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const URLSAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const DIGITS: &[u8] = b"0123456789";

/// The kinds `canary new` makes, with the detection rule each must satisfy.
pub const KINDS: &[(&str, &str)] = &[
    ("anthropic", "anthropic-api-key"),
    ("anthropic-admin", "anthropic-admin-key"),
    ("claude-oauth", "claude-code-oauth-token"),
    ("openai", "openai-api-key"),
    ("github", "github-token"),
    ("npm", "npm-token"),
    ("aws", "aws-access-key-id"),
    ("groq", "groq-api-key"),
    ("xai", "xai-api-key"),
    ("huggingface", "huggingface-token"),
    ("replicate", "replicate-api-token"),
    ("google", "google-api-key"),
    ("gitlab", "gitlab-pat"),
    ("stripe", "stripe-live-key"),
    ("slack", "slack-token"),
];

fn random(alphabet: &[u8], n: usize) -> String {
    let mut bytes = vec![0u8; n];
    if getrandom::fill(&mut bytes).is_err() {
        // No randomness: a canary must never be predictable, so make it unusable instead.
        return "0".repeat(n);
    }
    bytes
        .iter()
        .map(|b| alphabet[*b as usize % alphabet.len()] as char)
        .collect()
}

fn crc_token(prefix: &str) -> String {
    let body = random(ALNUM, 30);
    let check = checksum::base62_6(crc32fast::hash(body.as_bytes()));
    format!("{prefix}{body}{}", String::from_utf8_lossy(&check))
}

/// Words scanners and attackers treat as signs of a fake.
fn looks_fake(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    [
        "xxxx", "test", "fake", "example", "dummy", "sample", "canary", "your", "demo",
    ]
    .iter()
    .any(|w| l.contains(w))
}

/// A fresh canary of `kind`, or `None` for an unknown kind.
pub fn generate(kind: &str) -> Option<SecretValue> {
    loop {
        let v = match kind {
            "anthropic" => format!("sk-ant-api03-{}AA", random(URLSAFE, 93)),
            "anthropic-admin" => format!("sk-ant-admin01-{}AA", random(URLSAFE, 93)),
            "claude-oauth" => format!("sk-ant-oat01-{}", random(URLSAFE, 95)),
            "openai" => format!(
                "sk-proj-{}T3BlbkFJ{}",
                random(URLSAFE, 74),
                random(URLSAFE, 74)
            ),
            "github" => crc_token("ghp_"),
            "npm" => crc_token("npm_"),
            "aws" => format!("AKIA{}", random(BASE32, 16)),
            "groq" => format!("gsk_{}WGdyb3FY{}", random(ALNUM, 20), random(ALNUM, 24)),
            "xai" => format!("xai-{}", random(ALNUM, 80)),
            "huggingface" => format!("hf_{}", random(LETTERS, 34)),
            "replicate" => format!("r8_{}", random(ALNUM, 37)),
            "google" => format!("AIza{}", random(URLSAFE, 35)),
            "gitlab" => format!("glpat-{}", random(URLSAFE, 20)),
            "stripe" => format!("sk_live_{}", random(ALNUM, 24)),
            "slack" => format!(
                "xoxb-{}-{}-{}",
                random(DIGITS, 12),
                random(DIGITS, 12),
                random(ALNUM, 24)
            ),
            _ => return None,
        };
        if !looks_fake(&v) {
            return Some(SecretValue::new(v));
        }
    }
}

/// The canary kind matching a detection rule, to replace a real secret with bait of its kind.
pub fn kind_for_rule(rule: &str) -> Option<&'static str> {
    KINDS.iter().find(|(_, r)| *r == rule).map(|(k, _)| *k)
}

/// A stand-in for a value no canary kind matches: same length, letters and digits.
pub fn generic_like(value: &SecretValue) -> SecretValue {
    SecretValue::new(random(ALNUM, value.len().clamp(16, 128)))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub fingerprint: String,
    pub kind: String,
    /// Unix seconds.
    pub created: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// The files it was planted in (absolute paths). Found in any other file, it was copied
    /// there: a sign that something harvested it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub planted_in: Vec<std::path::PathBuf>,
    /// Planted only in a process environment (`run --canary`): any file holding it is a copy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub env_only: bool,
}

impl Entry {
    /// Whether a sighting in `path` is somewhere it was not planted. Without a recorded place,
    /// nothing can be said.
    pub fn out_of_place(&self, path: &std::path::Path) -> bool {
        if self.env_only {
            return true;
        }
        !self.planted_in.is_empty() && !self.planted_in.iter().any(|p| p == path)
    }
}

/// The registry: fingerprints only, never values (a canary's value is the bait; its
/// fingerprint is all keyfence needs to recognise it).
pub fn registry_path() -> Option<PathBuf> {
    crate::store::Paths::from_env()
        .ok()
        .map(|p| p.dir.join("canaries.json"))
}

pub fn load(path: &Path) -> std::io::Result<Vec<Entry>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Writes the registry atomically (`fsio::replace_with`), mode 0600 in a 0700 directory.
pub fn save(path: &Path, entries: &[Entry]) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let bytes = serde_json::to_vec_pretty(entries).map_err(std::io::Error::other)?;
    crate::fsio::replace_with(path, &bytes, 0o600, None, || Ok::<(), std::io::Error>(()))
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Records canaries in the registry.
pub fn register(new: &[Entry]) -> std::io::Result<()> {
    let Some(path) = registry_path() else {
        return Err(std::io::Error::other("no data directory (HOME is not set)"));
    };
    let mut all = load(&path)?;
    all.extend_from_slice(new);
    save(&path, &all)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind looks real to keyfence's own detector (format, markers, checksums).
    #[test]
    fn every_kind_passes_its_detection_rule() {
        let d = crate::detect::detector();
        for (kind, rule) in KINDS {
            for _ in 0..20 {
                let v = generate(kind).unwrap();
                let ms = d.scan(v.expose(), crate::detect::Mode::Text);
                assert!(
                    ms.iter().any(|m| m.rule.id == *rule),
                    "{kind}: not a {rule}"
                );
                assert!(!looks_fake(&String::from_utf8_lossy(v.expose())));
            }
        }
        assert_eq!(generate("nope"), None);
        assert_ne!(generate("anthropic"), generate("anthropic"));
    }
}
