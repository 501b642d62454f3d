//! Streaming output masking: every secret value a command writes is replaced by
//! `<keyfence:NAME>`, also when the value arrives split across writes.
//!
//! Only a suffix that could still grow into a secret is held back; every other byte is passed on
//! at once, so a prompt without a newline shows immediately.

use crate::secret::SecretValue;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

pub struct Masker {
    automaton: AhoCorasick,
    values: Vec<SecretValue>,
    replacements: Vec<Vec<u8>>,
    /// Bytes held back because they may be the start of a secret.
    pending: Vec<u8>,
}

/// Values shorter than this are not masked: they would also match ordinary output.
pub const MIN_MASKED_LEN: usize = 6;

impl Masker {
    /// `secrets` are (name, value) pairs; `None` when there is nothing worth masking.
    pub fn new(secrets: &[(String, SecretValue)]) -> Option<Masker> {
        let mut values = Vec::new();
        let mut replacements = Vec::new();
        for (name, value) in secrets {
            if value.len() >= MIN_MASKED_LEN && !values.contains(value) {
                values.push(value.clone());
                replacements.push(format!("<keyfence:{name}>").into_bytes());
            }
        }
        if values.is_empty() {
            return None;
        }
        let automaton = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(values.iter().map(SecretValue::expose))
            .ok()?;
        Some(Masker {
            automaton,
            values,
            replacements,
            pending: Vec::new(),
        })
    }

    /// Masks `input` (the next bytes of the stream) into `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        // Fast path: nothing held back, so the input can be searched in place.
        if self.pending.is_empty() {
            let keep = self.emit(input, out);
            self.pending.extend_from_slice(&input[keep..]);
        } else {
            let mut buf = std::mem::take(&mut self.pending);
            buf.extend_from_slice(input);
            let keep = self.emit(&buf, out);
            buf.drain(..keep);
            self.pending = buf;
        }
    }

    /// Writes the masked form of `buf` to `out`, except a tail that may be the start of a
    /// secret; returns where that tail starts.
    fn emit(&self, buf: &[u8], out: &mut Vec<u8>) -> usize {
        let mut last = 0;
        for m in self.automaton.find_iter(buf) {
            out.extend_from_slice(&buf[last..m.start()]);
            out.extend_from_slice(&self.replacements[m.pattern().as_usize()]);
            last = m.end();
        }
        let hold = self.partial_suffix(&buf[last..]);
        let keep = buf.len() - hold;
        out.extend_from_slice(&buf[last..keep]);
        keep
    }

    /// Length of the longest suffix of `tail` that is a proper prefix of some secret.
    fn partial_suffix(&self, tail: &[u8]) -> usize {
        let longest = self.values.iter().map(SecretValue::len).max().unwrap_or(0);
        let max = tail.len().min(longest.saturating_sub(1));
        (1..=max)
            .rev()
            .find(|&k| {
                let suffix = &tail[tail.len() - k..];
                self.values.iter().any(|v| v.expose().starts_with(suffix))
            })
            .unwrap_or(0)
    }

    /// End of stream: what was held back cannot become a secret any more.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.pending);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn masker(secrets: &[(&str, &str)]) -> Masker {
        let s: Vec<(String, SecretValue)> = secrets
            .iter()
            .map(|(n, v)| (n.to_string(), SecretValue::new(*v)))
            .collect();
        Masker::new(&s).unwrap()
    }

    fn run(m: &mut Masker, chunks: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        let mut out = Vec::new();
        let mut after_each = Vec::new();
        for c in chunks {
            m.push(c, &mut out);
            after_each.push(out.len());
        }
        m.finish(&mut out);
        (out, after_each)
    }

    #[test]
    fn masks_whole_and_split_values() {
        let mut m = masker(&[("K", "Zq8yR2vN0kT5")]);
        let (out, _) = run(&mut m, &[b"key=Zq8y", b"R2vN", b"0kT5 done"]);
        assert_eq!(out, b"key=<keyfence:K> done");
    }

    #[test]
    fn passes_non_prefix_bytes_at_once() {
        let mut m = masker(&[("K", "Zq8yR2vN0kT5")]);
        let (_, after) = run(&mut m, &[b"Password: "]);
        assert_eq!(after, [10], "a prompt must not wait for more output");
        let mut m = masker(&[("K", "Zq8yR2vN0kT5")]);
        let (out, after) = run(&mut m, &[b"abc Zq8", b"x"]);
        assert_eq!(after[0], 4, "only the possible start is held");
        assert_eq!(out, b"abc Zq8x");
    }

    #[test]
    fn several_secrets() {
        let mut m = masker(&[("A", "aaaa1111bbbb"), ("B", "cccc2222dddd")]);
        let (out, _) = run(&mut m, &[b"aaaa1111bbbbcccc2222dd", b"dd!"]);
        assert_eq!(out, b"<keyfence:A><keyfence:B>!");
    }

    proptest! {
        /// However the output is cut into writes, the secret never survives and the rest is
        /// unchanged.
        #[test]
        fn any_split(prefix in "[ -~]{0,40}", suffix in "[ -~]{0,40}", cuts in proptest::collection::vec(0usize..120, 0..8)) {
            let secret = "Hq3vT9xLm2Zr8WbK";
            let text = format!("{prefix}{secret}{suffix}");
            let mut m = masker(&[("S", secret)]);
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c % (text.len() + 1)).collect();
            points.sort();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points { chunks.push(&text.as_bytes()[last..p]); last = p; }
            chunks.push(&text.as_bytes()[last..]);
            let (out, _) = run(&mut m, &chunks);
            let out = String::from_utf8(out).unwrap();
            prop_assert!(!out.contains(secret));
            let expected = text.replace(secret, "<keyfence:S>");
            prop_assert_eq!(out, expected);
        }
    }
}
