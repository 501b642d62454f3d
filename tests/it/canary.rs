//! Canaries: `canary new` prints a registered fake key that audit recognises; `run --canary`
//! hands a harvester bait of the right kind instead of the real key.

use crate::common::*;

fn canary_list(fx: &Fixture) -> Vec<serde_json::Value> {
    let r = fx.run(&["canary", "list", "--format", "json"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str::<Vec<serde_json::Value>>(&r.stdout).unwrap()
}

#[test]
fn a_new_canary_is_reported_as_a_canary_until_removed() {
    let fx = Fixture::new();
    let key = fx.new_canary("anthropic", &["--label".as_ref(), "project .env".as_ref()]);
    assert!(
        key.starts_with("sk-ant-api03-") && key.ends_with("AA") && key.len() == 108,
        "{key}"
    );
    let list = canary_list(&fx);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["fingerprint"], sha12(&key));
    assert_eq!(list[0]["kind"], "anthropic");

    fx.project_file(".env", &format!("ANTHROPIC_API_KEY={key}\n"));
    let r = fx.run(&["audit", "--only", "dotenv", "--format", "json"], &[]);
    let f = &r.findings()[0];
    assert_eq!(f["rule"], "canary");
    assert_eq!(f["severity"], "info");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("planted: project .env"),
        "{f}"
    );
    assert_eq!(r.code, 0, "a canary alone is not a failure");

    let r = fx.run(&["canary", "rm", &sha12(&key)], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = fx.run(&["audit", "--only", "dotenv", "--format", "json"], &[]);
    assert_eq!(r.findings()[0]["rule"], "anthropic-api-key");
    let r = fx.run(&["canary", "new", "bogus"], &[]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("kinds are anthropic"), "{}", r.stderr);
}

#[test]
fn run_canary_gives_bait_of_the_same_kind_instead_of_the_key() {
    let mut fx = Fixture::new();
    let real = fx.key("github");
    let r = fx.run(
        &[
            "run",
            "--canary",
            "--",
            "sh",
            "-c",
            "printf '%s' \"$GITHUB_TOKEN\" > bait",
        ],
        &[("GITHUB_TOKEN", &real)],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bait = std::fs::read_to_string(fx.project.join("bait")).unwrap();
    assert_ne!(bait, real);
    assert!(bait.starts_with("ghp_") && bait.len() == 40, "{bait}");
    assert!(
        canary_list(&fx)
            .iter()
            .any(|c| c["fingerprint"] == sha12(&bait))
    );
    // Wherever the bait lands, audit knows it for what it is: bait planted in an environment
    // and found in a file was copied there.
    let r = fx.run(&["audit", "--only", "file", "--format", "json"], &[]);
    let f = r.findings();
    assert!(
        f.iter().any(|f| f["rule"] == "canary-out-of-place"),
        "{f:?}"
    );
}

/// A canary planted in one file and found in another was copied there: critical. The planted
/// copy stays an informational canary.
#[test]
fn a_canary_found_where_it_was_not_planted_is_critical() {
    let fx = Fixture::new();
    let planted = fx.project.join(".env");
    let key = fx.new_canary("anthropic", &["--planted-in".as_ref(), planted.as_os_str()]);
    fx.project_file(".env", &format!("ANTHROPIC_API_KEY={key}\n"));
    fx.project_file(
        "logs/debug.log",
        &format!("request headers: x-api-key={key}\n"),
    );
    let r = fx.run(
        &[
            "audit",
            "--only",
            "dotenv,file",
            "--format",
            "json",
            "--fail-on",
            "critical",
        ],
        &[],
    );
    assert!(!r.stdout.contains(&key));
    let findings = r.findings();
    let at = |name: &str| {
        findings
            .iter()
            .find(|f| {
                f["location"]["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(name))
            })
            .unwrap_or_else(|| panic!("no finding in {name}: {findings:?}"))
    };
    assert_eq!(at(".env")["rule"], "canary");
    assert_eq!(at(".env")["severity"], "info");
    assert_eq!(at("debug.log")["rule"], "canary-out-of-place");
    assert_eq!(at("debug.log")["severity"], "critical");
    // Written across source lines: a lost line continuation shows as a run of spaces.
    for f in &findings {
        for field in ["message", "fix"] {
            let text = f[field].as_str().unwrap_or_default();
            assert!(
                !text.contains("   "),
                "{field} has a run of spaces: {text:?}"
            );
        }
    }
    assert_eq!(r.code, 1, "a critical finding fails the audit");
}

/// `run --canary` plants bait in a process environment only: a file holding it is a copy made
/// by whatever ran (here, a command dumping its environment).
#[test]
fn a_run_canary_written_to_a_file_is_critical() {
    let mut fx = Fixture::new();
    let key = fx.key("openai");
    let r = fx.run(
        &["run", "--canary", "--", "sh", "-c", "env > harvested.txt"],
        &[("OPENAI_API_KEY", &key)],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let dump = std::fs::read_to_string(fx.project.join("harvested.txt")).unwrap();
    assert!(
        dump.contains("OPENAI_API_KEY=sk-") && !dump.contains(&key),
        "{dump}"
    );
    let r = fx.run(&["audit", "--only", "file", "--format", "json"], &[]);
    let f = r
        .findings()
        .into_iter()
        .find(|f| {
            f["location"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("harvested.txt"))
        })
        .expect("the dump is found");
    assert_eq!(f["rule"], "canary-out-of-place");
    assert_eq!(f["severity"], "critical");
}
