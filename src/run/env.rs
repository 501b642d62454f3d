//! The command's environment: the current one, minus every variable the detection engine
//! classifies as a secret (by name and value) and every `--drop` pattern, plus `--allow`ed
//! variables kept and store entries injected.

use crate::detect::Detector;
use crate::policy::patterns::Patterns;
use crate::secret::SecretValue;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

pub struct EnvRules {
    /// Names kept even when they look like secrets.
    pub allow: Vec<String>,
    /// Names or globs dropped in addition to detected secrets.
    pub drop: Patterns,
}

impl EnvRules {
    pub fn new(allow: &[String], drop: &[String]) -> Result<Self, globset::Error> {
        Ok(EnvRules {
            allow: allow.to_vec(),
            drop: Patterns::new(drop)?,
        })
    }
}

/// The environment to run with, and what changed (names only, for `-v`).
pub struct Plan {
    pub env: Vec<(OsString, OsString)>,
    pub dropped: Vec<String>,
    pub injected: Vec<String>,
    /// Values to mask in the command's output: (variable name, value).
    pub secrets: Vec<(String, SecretValue)>,
}

/// Builds the plan from `current` and the values to inject (variable name, value).
pub fn plan(
    detector: &'static Detector,
    current: impl IntoIterator<Item = (OsString, OsString)>,
    rules: &EnvRules,
    inject: Vec<(String, SecretValue)>,
) -> Plan {
    let mut plan = Plan {
        env: Vec::new(),
        dropped: Vec::new(),
        injected: Vec::new(),
        secrets: Vec::new(),
    };
    for (name, value) in current {
        let name_str = name.to_string_lossy().into_owned();
        // An injected variable replaces any inherited one of the same name.
        if inject.iter().any(|(n, _)| *n == name_str) {
            continue;
        }
        if rules.allow.contains(&name_str) {
            plan.env.push((name, value));
            continue;
        }
        let secret = detector.classify_var(&name_str, value.as_bytes()).is_some();
        if secret || rules.drop.is_match(&name_str) {
            plan.secrets
                .push((name_str.clone(), SecretValue::new(value.as_bytes())));
            plan.dropped.push(name_str);
            continue;
        }
        plan.env.push((name, value));
    }
    for (name, value) in inject {
        plan.env.push((
            OsString::from(&name),
            OsString::from(std::ffi::OsStr::from_bytes(value.expose())),
        ));
        plan.injected.push(name.clone());
        plan.secrets.push((name, value));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_secrets_keeps_the_rest_and_allowed() {
        let d = crate::detect::detector();
        let rules = EnvRules::new(&["KEEP_TOKEN".into()], &["CORP_*".into()]).unwrap();
        let cur = [
            ("PATH", "/usr/bin"),
            ("MY_TOKEN", "Hq3vT9xLm2Zr8WbK5nYp4Jc7"),
            ("KEEP_TOKEN", "Zq8yR2vN0kT5mW7pL3xB9cF6"),
            ("CORP_SETTING", "x"),
            ("TOKENIZERS_PARALLELISM", "false"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let p = plan(
            d,
            cur,
            &rules,
            vec![("INJ".into(), SecretValue::new("v4lue-injected"))],
        );
        let names: Vec<String> = p
            .env
            .iter()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["PATH", "KEEP_TOKEN", "TOKENIZERS_PARALLELISM", "INJ"]
        );
        assert_eq!(p.dropped, ["MY_TOKEN", "CORP_SETTING"]);
        assert_eq!(p.injected, ["INJ"]);
    }
}
