//! Snapshots of the three report formats over one fixed fixture (tests/fixtures/demo).
//! Temp paths are replaced by `[TMP]` so snapshots are stable.

use crate::common::*;
use std::path::Path;

fn demo() -> (Fixture, Vec<String>) {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/demo");
    copy_tree(&src.join("home"), &fx.home);
    copy_tree(&src.join("project"), &fx.project);
    // Git does not keep modes beyond the executable bit; make the loose one explicit.
    std::fs::set_permissions(
        fx.home.join(".aws/credentials"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    // The raw values in the fixture, to check none is printed.
    let mut planted = Vec::new();
    for f in [
        "home/.bashrc",
        "home/.bash_history",
        "home/.aws/credentials",
        "home/.claude/settings.json",
        "project/.env",
        "project/src/config.js",
    ] {
        let text = std::fs::read_to_string(src.join(f)).unwrap();
        for word in text.split(|c: char| c.is_whitespace() || "\"'=,".contains(c)) {
            if word.len() >= 20 && !word.contains("://") && !word.contains('/') {
                planted.push(word.to_string());
            }
        }
    }
    (fx, planted)
}

fn snapshot_run(format: &str) -> String {
    let (fx, planted) = demo();
    let r = fx.run(
        &[
            "audit", "--skip", "proc", "--format", format, "--color", "never",
        ],
        &[],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(planted.len() >= 6, "{planted:?}");
    r.assert_no_secret(&planted);
    r.stdout
        .replace(&fx.dir.path().display().to_string(), "[TMP]")
}

#[test]
fn json_report() {
    insta::assert_snapshot!(snapshot_run("json"));
}

#[test]
fn sarif_report() {
    let out = snapshot_run("sarif");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["version"], "2.1.0");
    for r in v["runs"][0]["results"].as_array().unwrap() {
        let idx = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(
            v["runs"][0]["tool"]["driver"]["rules"][idx]["id"],
            r["ruleId"]
        );
    }
    let version = env!("CARGO_PKG_VERSION");
    insta::assert_snapshot!(out.replace(version, "[VERSION]"));
}

#[test]
fn human_report() {
    insta::assert_snapshot!(snapshot_run("human"));
}
