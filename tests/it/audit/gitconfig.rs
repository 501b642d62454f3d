//! The `gitconfig` source: tokens in git's own configuration, written there by real git the way
//! users and CI leave them — a token in a remote's URL (a clone with the token in its URL), and
//! an `Authorization` header in `http.<url>.extraheader` (what actions/checkout persists) — in
//! the project's `.git/config` and in the user's `~/.gitconfig`. Each has a control: once git
//! takes the token out again, the finding goes.

use crate::common::*;
use base64::Engine;
use serde_json::Value;

fn audit(fx: &Fixture) -> (Run, Vec<Value>) {
    let r = fx.run(&["audit", "--only", "gitconfig", "--format", "json"], &[]);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    r.assert_no_secret(&fx.planted);
    let findings = r.findings();
    (r, findings)
}

#[test]
fn a_token_in_a_remote_url_and_a_persisted_header_are_found_until_git_removes_them() {
    let mut fx = Fixture::new();
    let pat = fx.key("github");
    let installation = fx.key("github");
    fx.git(&["init", "-q"]);
    fx.git(&[
        "remote",
        "add",
        "origin",
        &format!("https://x-access-token:{pat}@github.com/o/r.git"),
    ]);
    // As actions/checkout writes it: the token, Basic-encoded with its user.
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{installation}"));
    fx.git(&[
        "config",
        "--local",
        "http.https://github.com/.extraheader",
        &format!("AUTHORIZATION: basic {basic}"),
    ]);
    // Not secrets: a signing key's id, and a URL whose password is a variable.
    fx.git(&["config", "--local", "user.signingkey", "3AA5C34371567BD2"]);
    fx.git(&[
        "remote",
        "add",
        "mirror",
        "https://ci:${MIRROR_TOKEN}@git.internal/r.git",
    ]);
    let (r, findings) = audit(&fx);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(findings.len(), 2, "{findings:#?}");
    for f in &findings {
        assert_eq!(f["source"], "gitconfig");
        assert_eq!(f["severity"], "high");
        assert_eq!(f["location"]["path"], ".git/config");
        assert_eq!(f["rule"], "github-token", "named by its kind: {f:#?}");
    }
    let messages: Vec<&str> = findings
        .iter()
        .filter_map(|f| f["message"].as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("in a URL")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("http.extraheader")),
        "{messages:?}"
    );
    // The control: git takes both out, and the findings go.
    fx.git(&["remote", "set-url", "origin", "https://github.com/o/r.git"]);
    fx.git(&[
        "config",
        "--local",
        "--unset-all",
        "http.https://github.com/.extraheader",
    ]);
    let (r, findings) = audit(&fx);
    assert_eq!(r.code, 0, "{findings:#?}");
}

#[test]
fn a_token_in_the_users_gitconfig_is_found() {
    let mut fx = Fixture::new();
    let pat = fx.key("github");
    fx.git(&[
        "config",
        "--global",
        &format!("url.https://{pat}@github.com/.insteadOf"),
        "https://github.com/",
    ]);
    let (r, findings) = audit(&fx);
    // Medium: below audit's default threshold for failing.
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0]["severity"], "medium");
    assert_eq!(findings[0]["rule"], "github-token");
    assert!(
        findings[0]["location"]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/.gitconfig")),
        "{findings:#?}"
    );
}
