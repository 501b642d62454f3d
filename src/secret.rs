//! The secret value type, and the two public faces of a secret: its fingerprint and its preview.
//!
//! A `SecretValue` never shows its bytes through `Debug` or `Display`, and wipes them on drop.
//! Everything that leaves the process (reports, errors, logs) carries at most the preview and the
//! fingerprint defined in DESIGN.md §3.

use sha2::{Digest, Sha256};
use std::fmt;
use zeroize::Zeroizing;

/// Raw secret bytes. Deliberately not `Clone`-free: copies stay inside `Zeroizing`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(Zeroizing::new(bytes.into()))
    }

    /// The raw bytes, for matching and hashing only. Callers must not print them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// First 12 hex characters of SHA-256: enough to recognise the same key in two places,
    /// too short to help anyone who does not already hold a candidate value.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.0)
    }

    /// `public_prefix` + `…` + the last two characters. The prefix is the part of the format
    /// that every key of the kind shares (`sk-ant-api03-`), so it reveals nothing.
    pub fn preview(&self, public_prefix: &str) -> String {
        let s = String::from_utf8_lossy(&self.0);
        let chars: Vec<char> = s.chars().collect();
        let prefix_len = public_prefix.chars().count();
        // A value too short to keep any characters back is shown as the prefix only.
        if chars.len() < prefix_len + 8 {
            return format!("{public_prefix}…");
        }
        let tail: String = chars[chars.len() - 2..].iter().collect();
        format!("{public_prefix}…{tail}")
    }
}

pub fn fingerprint(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(12);
    for b in &digest[..6] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue(<redacted, {} bytes>)", self.0.len())
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let raw = "sk-ant-api03-Zq8yR2vN0kT5mW7pL3xB9cF6hJ1dG4sA";
        let s = SecretValue::new(raw);
        for shown in [format!("{s}"), format!("{s:?}"), format!("{s:#?}")] {
            assert!(!shown.contains(raw), "{shown}");
            assert!(!shown.contains("Zq8y"), "{shown}");
        }
    }

    #[test]
    fn preview_keeps_prefix_and_last_two() {
        let s = SecretValue::new("sk-ant-api03-Zq8yR2vN0kT5mW7pL3xB9cF6hJ1dG4sAb");
        assert_eq!(s.preview("sk-ant-api03-"), "sk-ant-api03-…Ab");
        assert_eq!(SecretValue::new("short").preview(""), "…");
    }

    #[test]
    fn fingerprint_is_sha256_prefix() {
        // sha256("abc") = ba7816bf8f01cfea...
        assert_eq!(fingerprint(b"abc"), "ba7816bf8f01");
    }
}
