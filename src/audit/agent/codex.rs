//! Codex CLI's `shell_environment_policy`: which variables of Codex's own environment reach the
//! commands it runs. A model of Codex 0.171's rules, so that `audit` can say which exported
//! keys a configuration passes on and `setup codex` can check the policy it writes. Nothing here
//! reads files or prints.
//!
//! Checked against the real CLI (`codex sandbox -- env` applies the policy, offline):
//! - defaults: `inherit = "all"` and `ignore_default_excludes = true`: everything passes;
//! - order: inherit (`all`, `core`, `none`), then the default excludes (`*KEY*`, `*SECRET*`,
//!   `*TOKEN*`, case-insensitive) unless ignored, then `exclude`, then `set`, then `include_only`
//!   (codex-rs protocol/src/shell_environment.rs). `filters` (`"PATTERN" = "include"|"exclude"`)
//!   is the newer spelling of `exclude`/`include_only`, and one file may not mix the two;
//! - layers, lowest first: `/etc/codex/config.toml`, `$CODEX_HOME/config.toml`, a trusted
//!   project's `.codex/config.toml`, `/etc/codex/managed_config.toml`. Keys merge one by one;
//!   a list in a higher layer replaces the lower one;
//! - `requirements.toml` has no `shell_environment_policy`: Codex ignores one written there.

/// Variables `inherit = "core"` keeps (Unix).
const CORE: &[&str] = &[
    "PATH", "SHELL", "TMPDIR", "TEMP", "TMP", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "LOGNAME",
    "USER",
];

/// Codex's default excludes, applied unless `ignore_default_excludes = true`.
pub const DEFAULT_EXCLUDES: &[&str] = &["*KEY*", "*SECRET*", "*TOKEN*"];

/// Names that hold secrets and that Codex's default excludes miss; `setup codex` adds them to
/// `exclude`.
pub const EXTRA_EXCLUDES: &[&str] = &[
    "*PASSWORD*",
    "*PASSWD*",
    "*CREDENTIAL*",
    "*DATABASE_URL*",
    "*_DSN",
];

/// Secret variables a policy is judged by when none is exported: the providers' keys and the
/// secrets whose names the default excludes miss.
pub const PROBES: &[&str] = &[
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GITHUB_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "DATABASE_URL",
    "PGPASSWORD",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inherit {
    All,
    Core,
    None,
}

/// The policy after merging the layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub inherit: Inherit,
    pub ignore_default_excludes: bool,
    pub exclude: Vec<String>,
    pub include_only: Vec<String>,
    /// Names `set` gives a value (their values are not kept).
    pub set: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            inherit: Inherit::All,
            ignore_default_excludes: true,
            exclude: Vec::new(),
            include_only: Vec::new(),
            set: Vec::new(),
        }
    }
}

/// The `[shell_environment_policy]` tables of the layers, lowest first, merged key by key as
/// Codex merges them. An `inherit` Codex would refuse is an error naming it.
pub fn merge<'a>(layers: impl IntoIterator<Item = &'a toml::Table>) -> Result<Policy, String> {
    let mut p = Policy::default();
    for t in layers {
        if let Some(v) = t.get("inherit") {
            p.inherit = match v.as_str() {
                Some("all") => Inherit::All,
                Some("core") => Inherit::Core,
                Some("none") => Inherit::None,
                _ => {
                    return Err(format!(
                        "inherit = {v} is not \"all\", \"core\" or \"none\""
                    ));
                }
            };
        }
        if let Some(b) = t
            .get("ignore_default_excludes")
            .and_then(toml::Value::as_bool)
        {
            p.ignore_default_excludes = b;
        }
        let strings = |k: &str| -> Option<Vec<String>> {
            t.get(k).and_then(toml::Value::as_array).map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
        };
        if let Some(filters) = t.get("filters").and_then(toml::Value::as_table) {
            // The newer spelling replaces both lists of the layers below.
            p.exclude.clear();
            p.include_only.clear();
            for (pattern, action) in filters {
                match action.as_str() {
                    Some("exclude") => p.exclude.push(pattern.clone()),
                    Some("include") => p.include_only.push(pattern.clone()),
                    _ => {}
                }
            }
        }
        if let Some(e) = strings("exclude") {
            p.exclude = e;
        }
        if let Some(i) = strings("include_only") {
            p.include_only = i;
        }
        if let Some(set) = t.get("set").and_then(toml::Value::as_table) {
            for k in set.keys() {
                if !p.set.contains(k) {
                    p.set.push(k.clone());
                }
            }
        }
    }
    Ok(p)
}

impl Policy {
    /// Whether a variable `name` of Codex's environment reaches the commands it runs.
    pub fn passes(&self, name: &str) -> bool {
        let inherited = match self.inherit {
            Inherit::All => true,
            Inherit::None => false,
            Inherit::Core => CORE.iter().any(|c| c.eq_ignore_ascii_case(name)),
        };
        let mut kept = inherited
            && (self.ignore_default_excludes
                || !DEFAULT_EXCLUDES.iter().any(|p| wildmatch(p, name)))
            && !self.exclude.iter().any(|p| wildmatch(p, name));
        // `set` gives its own value, which is no longer the exported one.
        if self.set.iter().any(|s| s == name) {
            kept = false;
        }
        kept && (self.include_only.is_empty()
            || self.include_only.iter().any(|p| wildmatch(p, name)))
    }

    /// Whether it passes the environment whole: nothing is taken out.
    pub fn passes_everything(&self) -> bool {
        self.inherit == Inherit::All
            && self.ignore_default_excludes
            && self.exclude.is_empty()
            && self.include_only.is_empty()
    }
}

/// Codex's `EnvironmentVariablePattern::new_case_insensitive`: `*` any run, `?` one character.
pub fn wildmatch(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().flat_map(char::to_lowercase).collect();
    let n: Vec<char> = name.chars().flat_map(char::to_lowercase).collect();
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Policy {
        let t: toml::Table = toml::from_str(text).unwrap();
        merge([&t]).unwrap()
    }

    #[test]
    fn patterns() {
        for (p, n, m) in [
            ("*KEY*", "openai_api_key", true),
            ("*KEY*", "KEYTIMEOUT", true),
            ("OPENAI*", "OPENAI_API_KEY", true),
            ("OPENAI*", "MY_OPENAI", false),
            ("A?C", "abc", true),
            ("*_DSN", "SENTRY_DSN", true),
            ("*_DSN", "DSN", false),
            ("", "", true),
        ] {
            assert_eq!(wildmatch(p, n), m, "{p} {n}");
        }
    }

    /// The same cases run against the real CLI in tests/it/audit/agent.rs.
    #[test]
    fn codex_rules() {
        let default = Policy::default();
        assert!(default.passes("OPENAI_API_KEY") && default.passes_everything());
        let core = policy("inherit = \"core\"");
        assert!(!core.passes("OPENAI_API_KEY") && core.passes("home"));
        let excl = policy("ignore_default_excludes = false");
        assert!(!excl.passes("OPENAI_API_KEY") && !excl.passes("GH_TOKEN"));
        assert!(excl.passes("DATABASE_URL") && excl.passes("MY_PASSWORD"));
        let only = policy("include_only = [\"PATH\"]");
        assert!(!only.passes("OPENAI_API_KEY") && only.passes("PATH"));
        let filt = policy("[filters]\n\"OPENAI*\" = \"exclude\"");
        assert!(!filt.passes("OPENAI_API_KEY") && filt.passes("GH_TOKEN"));
        let set = policy("[set]\nOPENAI_API_KEY = \"x\"");
        assert!(!set.passes("OPENAI_API_KEY"));
    }

    #[test]
    fn layers_merge_key_by_key_and_lists_replace() {
        let user: toml::Table = toml::from_str("inherit = \"all\"\nexclude = [\"FOO*\"]").unwrap();
        let project: toml::Table = toml::from_str("exclude = [\"OPENAI*\"]").unwrap();
        let p = merge([&user, &project]).unwrap();
        assert!(p.passes("FOO_API_KEY") && !p.passes("OPENAI_API_KEY"));
        let project: toml::Table = toml::from_str("ignore_default_excludes = false").unwrap();
        let p = merge([&user, &project]).unwrap();
        assert!(!p.passes("FOO_API_KEY") && p.passes("DATABASE_URL"));
        let bad: toml::Table = toml::from_str("inherit = \"most\"").unwrap();
        assert!(merge([&bad]).is_err());
    }
}
