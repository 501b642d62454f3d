//! Shell-style patterns for command lines (`match`) and variable names (`--drop`).
//!
//! Nearly every pattern is a literal, or a literal followed by one `*`; those are compared by
//! hand. globset builds Aho-Corasick automata even for such sets, and building them was about a
//! quarter of `keyfence run`'s start-up, which DESIGN.md §4 holds to 1 ms. Anything else goes to
//! globset, with its usual meaning (`*` also matches `/`).

use globset::{Glob, GlobSet, GlobSetBuilder};

#[derive(Debug, Clone, Default)]
pub struct Patterns {
    exact: Vec<String>,
    prefixes: Vec<String>,
    other: Option<GlobSet>,
}

fn is_literal(s: &str) -> bool {
    !s.contains(['*', '?', '[', ']', '{', '}', '\\'])
}

impl Patterns {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Patterns, globset::Error> {
        let mut out = Patterns::default();
        let mut other = GlobSetBuilder::new();
        let mut any_other = false;
        for p in patterns {
            let p = p.as_ref();
            if is_literal(p) {
                out.exact.push(p.to_string());
            } else if let Some(head) = p.strip_suffix('*').filter(|h| is_literal(h)) {
                out.prefixes.push(head.to_string());
            } else {
                other.add(Glob::new(p)?);
                any_other = true;
            }
        }
        if any_other {
            out.other = Some(other.build()?);
        }
        Ok(out)
    }

    pub fn is_match(&self, s: &str) -> bool {
        self.exact.iter().any(|e| e == s)
            || self.prefixes.iter().any(|p| s.starts_with(p.as_str()))
            || self.other.as_ref().is_some_and(|g| g.is_match(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-matched forms agree with globset on the cases that matter.
    #[test]
    fn agrees_with_globset() {
        let patterns = [
            "npm install*",
            "yarn",
            "npx *",
            "CORP_*",
            "A?C",
            "x[ab]y",
            "*_TOKEN",
            "pre*mid*",
            "a/b*",
        ];
        let inputs = [
            "npm install",
            "npm install --save x",
            "npm installer",
            "npm ci",
            "yarn",
            "yarn add",
            "npx",
            "npx cowsay",
            "CORP_",
            "CORP_KEY",
            "corp_key",
            "ABC",
            "AC",
            "xay",
            "xcy",
            "GH_TOKEN",
            "TOKEN",
            "premidpost",
            "a/b/c",
            "",
        ];
        for p in patterns {
            let ours = Patterns::new(&[p]).unwrap();
            let theirs = Glob::new(p).unwrap().compile_matcher();
            for i in inputs {
                assert_eq!(ours.is_match(i), theirs.is_match(i), "{p:?} on {i:?}");
            }
        }
    }

    #[test]
    fn bad_glob_is_an_error() {
        assert!(Patterns::new(&["a[b"]).is_err());
        assert!(!Patterns::new::<&str>(&[]).unwrap().is_match("x"));
    }
}
