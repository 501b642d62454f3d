//! Rotation of store entries: `secret rotate`, the rotation age, and the audit finding.

use crate::common::*;
use std::io::Write;
use std::process::{Command, Stdio};

/// `keyfence ARGS` with `value` on stdin.
fn with_stdin(fx: &Fixture, args: &[&str], value: &str) -> Run {
    let mut c = Command::new(BIN)
        .args(args)
        .env_clear()
        .env("HOME", &fx.home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keyfence");
    // A keyfence that ended before reading says why in its status and stderr, below.
    if let Err(e) = c.stdin.take().expect("stdin").write_all(value.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write: {e}");
    }
    let r = Run::from(c.wait_with_output().expect("wait"));
    r.assert_no_secret(&fx.planted);
    r
}

fn due(fx: &Fixture) -> Vec<serde_json::Value> {
    let r = fx.run(&["audit", "--only", "store", "--format", "json"], &[]);
    r.findings()
        .into_iter()
        .filter(|f| f["rule"] == "store-rotation-due")
        .collect()
}

#[test]
fn entries_past_their_rotation_age_are_reported_until_rotated() {
    let mut fx = Fixture::new();
    let old = fx.key("openai");
    // Measured from before the set, so a slow machine can only skip the first check, never
    // make it fail.
    let before_set = std::time::Instant::now();
    let age = std::time::Duration::from_secs(3);
    let r = with_stdin(
        &fx,
        &["secret", "set", "OPENAI_API_KEY", "--rotate-after", "3s"],
        &old,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let after_set = std::time::Instant::now();
    let fresh = fx.key("github");
    fx.store_secret("FRESH", &fresh);
    let early = due(&fx);
    if before_set.elapsed() < age {
        assert!(early.is_empty(), "{early:?}");
    }
    // Past the age counted from after the set, plus a second for whole-second timestamps.
    std::thread::sleep(
        (age + std::time::Duration::from_millis(1100)).saturating_sub(after_set.elapsed()),
    );
    let found = due(&fx);
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!(f["severity"], "low");
    assert_eq!(f["source"], "store");
    assert!(f.get("secret").is_none(), "{f}");
    let msg = f["message"].as_str().unwrap();
    assert!(
        msg.contains("OPENAI_API_KEY") && msg.contains(&sha12(&old)),
        "{msg}"
    );
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("keyfence secret rotate OPENAI_API_KEY"),
        "{f}"
    );
    // Low: an audit with the default --fail-on high still passes.
    let r = fx.run(&["audit", "--only", "store"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("OPENAI_API_KEY"), "{}", r.stdout);

    // The same value again is not a rotation.
    let r = with_stdin(&fx, &["secret", "rotate", "OPENAI_API_KEY"], &old);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("nothing rotated"), "{}", r.stderr);
    // A name that is not stored is refused.
    let other = fx.key("openai");
    let r = with_stdin(&fx, &["secret", "rotate", "NOPE"], &other);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("no secret named 'NOPE'"), "{}", r.stderr);

    let new = fx.key("openai");
    let r = with_stdin(
        &fx,
        &[
            "secret",
            "rotate",
            "OPENAI_API_KEY",
            "--rotate-after",
            "30d",
        ],
        &new,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("rotated OPENAI_API_KEY"), "{}", r.stderr);
    assert!(due(&fx).is_empty());
    let list = fx.run(&["secret", "list", "--format", "json"], &[]);
    let row = list
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "OPENAI_API_KEY")
        .cloned()
        .unwrap();
    assert!(
        row["rotated"].is_string() && row["rotation_due"].is_string(),
        "{row}"
    );
    let got = Command::new(BIN)
        .args(["secret", "get", "OPENAI_API_KEY"])
        .env_clear()
        .env("HOME", &fx.home)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&got.stdout), format!("{new}\n"));
}

#[test]
fn passphrase_vaults_are_not_prompted_for_by_audit() {
    let fx = Fixture::new();
    let pass = fx.dir.path().join("pass");
    std::fs::write(&pass, "correct horse battery").unwrap();
    let p = pass.to_str().unwrap();
    let r = fx.run(
        &["init", "--passphrase"],
        &[("KEYFENCE_PASSPHRASE_FILE", p)],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = fx.run(&["audit", "--only", "store", "--format", "json"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.json()["errors"]
            .to_string()
            .contains("passphrase-protected"),
        "{}",
        r.stdout
    );
    let r = fx.run(
        &["audit", "--only", "store", "--format", "json"],
        &[("KEYFENCE_PASSPHRASE_FILE", p)],
    );
    assert_eq!(
        r.json()["errors"].as_array().unwrap().len(),
        0,
        "{}",
        r.stdout
    );
}
