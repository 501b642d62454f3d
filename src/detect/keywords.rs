//! The keyword prefilter: which rule keywords occur in a haystack, found leftmost-longest and
//! without overlaps (Aho-Corasick's `MatchKind::LeftmostLongest`).
//!
//! Two searchers give the same matches. An Aho-Corasick automaton with its SIMD prefilter
//! searches fast but costs ~0.3 ms to build; a hand search through a table of the keywords by
//! first byte costs nothing to set up but a few nanoseconds per byte. `keyfence run` classifies
//! only its environment (a few kilobytes) before it execs the command (DESIGN.md §4: ≤ 1 ms
//! added), so short inputs are searched by hand until the bytes searched that way would have
//! paid for the automaton; from then on (and for any long input) the automaton is built and
//! used. A scan of many small files therefore pays the hand search only at its start.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Inputs up to this length may be searched by hand.
const SHORT_INPUT: usize = 4096;
/// Bytes searched by hand before the automaton is built anyway: at a few nanoseconds per byte,
/// about what building the automaton costs.
const HAND_SEARCH_BUDGET: usize = 64 * 1024;

/// One keyword occurrence: pattern index and byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub pattern: usize,
    pub start: usize,
    pub end: usize,
}

pub struct Keywords {
    patterns: Vec<String>,
    /// Pattern indexes by their first byte, longest pattern first: the first that matches at a
    /// position is the leftmost-longest match there.
    by_first_byte: Vec<Vec<usize>>,
    automaton: OnceLock<AhoCorasick>,
    searched_by_hand: AtomicUsize,
}

impl Keywords {
    /// `patterns` must be non-empty strings without duplicates.
    pub fn new(patterns: Vec<String>) -> Self {
        let mut by_first_byte = vec![Vec::new(); 256];
        for (i, p) in patterns.iter().enumerate() {
            by_first_byte[usize::from(p.as_bytes()[0])].push(i);
        }
        for list in &mut by_first_byte {
            list.sort_by_key(|&i| std::cmp::Reverse(patterns[i].len()));
        }
        Keywords {
            patterns,
            by_first_byte,
            automaton: OnceLock::new(),
            searched_by_hand: AtomicUsize::new(0),
        }
    }

    /// Every keyword occurrence in `hay`, leftmost-longest, non-overlapping, in order.
    pub fn find_all(&self, hay: &[u8]) -> Vec<Hit> {
        let by_hand = self.automaton.get().is_none()
            && hay.len() <= SHORT_INPUT
            && self
                .searched_by_hand
                .fetch_add(hay.len(), Ordering::Relaxed)
                < HAND_SEARCH_BUDGET;
        if by_hand {
            self.find_all_by_hand(hay)
        } else {
            self.find_all_by_automaton(hay)
        }
    }

    fn find_all_by_hand(&self, hay: &[u8]) -> Vec<Hit> {
        let mut hits = Vec::new();
        let mut at = 0;
        while at < hay.len() {
            let rest = &hay[at..];
            let found = self.by_first_byte[usize::from(rest[0])]
                .iter()
                .find(|&&i| rest.starts_with(self.patterns[i].as_bytes()));
            match found {
                Some(&i) => {
                    let end = at + self.patterns[i].len();
                    hits.push(Hit {
                        pattern: i,
                        start: at,
                        end,
                    });
                    at = end;
                }
                None => at += 1,
            }
        }
        hits
    }

    fn find_all_by_automaton(&self, hay: &[u8]) -> Vec<Hit> {
        let automaton = self.automaton.get_or_init(|| {
            // Leftmost-longest, non-overlapping, case-sensitive: this lets the automaton use its
            // SIMD (Teddy) prefilter. Overlapping search cannot, and true ASCII case folding
            // multiplies the variants past what Teddy takes; together they made keyword search
            // 65% of a tree scan. The contiguous NFA builds in a fraction of the time of the
            // default full DFA, and the prefilter does most of the searching either way.
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .kind(Some(AhoCorasickKind::ContiguousNFA))
                .build(&self.patterns)
                .expect("keyword automaton")
        });
        automaton
            .find_iter(hay)
            .map(|m| Hit {
                pattern: m.pattern().as_usize(),
                start: m.start(),
                end: m.end(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(words: &[&str]) -> Keywords {
        Keywords::new(words.iter().map(|w| w.to_string()).collect())
    }

    #[test]
    fn longest_wins_at_the_leftmost_position_and_matches_do_not_overlap() {
        let k = set(&["key", "keys", "ey", "secret", "s"]);
        let hay = b"keyssecret key";
        let hits = k.find_all_by_hand(hay);
        let spans: Vec<_> = hits.iter().map(|h| (h.start, h.end)).collect();
        assert_eq!(spans, [(0, 4), (4, 10), (11, 14)]);
        assert_eq!(hits, k.find_all_by_automaton(hay));
    }

    /// The built-in sets, on every rule example and on all of them at once.
    #[test]
    fn both_searches_agree_on_the_builtin_keywords() {
        let d = crate::detect::detector();
        let mut all = Vec::new();
        for rule in d.rules() {
            for ex in rule.examples.iter().chain(rule.negative_examples) {
                all.extend_from_slice(ex.as_bytes());
                all.push(b'\n');
                for k in &d.keywords {
                    assert_eq!(
                        k.find_all_by_hand(ex.as_bytes()),
                        k.find_all_by_automaton(ex.as_bytes()),
                        "{ex}"
                    );
                }
            }
        }
        for k in &d.keywords {
            let hits = k.find_all_by_hand(&all);
            assert!(hits.len() > 50);
            assert_eq!(hits, k.find_all_by_automaton(&all));
        }
    }

    #[test]
    fn the_automaton_takes_over_once_the_hand_search_has_cost_as_much() {
        let k = set(&["key"]);
        let line = vec![b'x'; 1000];
        for _ in 0..HAND_SEARCH_BUDGET / line.len() {
            k.find_all(&line);
        }
        assert!(k.automaton.get().is_none());
        k.find_all(&line);
        k.find_all(&line);
        assert!(k.automaton.get().is_some());
        let long = set(&["key"]);
        long.find_all(&vec![b'x'; SHORT_INPUT + 1]);
        assert!(long.automaton.get().is_some());
    }

    proptest::proptest! {
        /// The hand search and the automaton agree on any input built from keyword pieces.
        #[test]
        fn hand_search_agrees_with_the_automaton(
            s in "((key|KEY|Key|token|tok|en|secret|sec|ret|sk-ant-|sk-|ghp_|gh|AKIA|_| |=|[a-zA-Z0-9]{1,3})){0,80}"
        ) {
            let k = set(&["key", "KEY", "Key", "token", "ken", "secret", "secret_key", "sk-", "sk-ant-", "ghp_", "AKIA", "t"]);
            proptest::prop_assert_eq!(k.find_all_by_hand(s.as_bytes()), k.find_all_by_automaton(s.as_bytes()));
        }
    }
}
