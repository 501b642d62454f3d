//! The `credfile` source: tools' credential files and their permissions. Every planted exposure is reported at the right place with the right
//! severity, and no raw value is printed.

use super::{audit_json, expect};
use crate::common::*;

#[test]
fn credfile_source_reports_tokens_and_loose_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let mut fx = Fixture::new();
    let id = fx.key("aws-id");
    let secret = fx.key("aws-secret");
    let npm = fx.key("npm");
    let gho = fx.key("github-oauth");
    let pw = fx.key("password");
    let creds = fx.home_file(
        ".aws/credentials",
        &format!("[default]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"),
    );
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    let npmrc = fx.home_file(
        ".npmrc",
        &format!("//registry.npmjs.org/:_authToken={npm}\n"),
    );
    std::fs::set_permissions(&npmrc, std::fs::Permissions::from_mode(0o600)).unwrap();
    fx.home_file(
        ".config/gh/hosts.yml",
        &format!("github.com:\n    oauth_token: {gho}\n    user: dev\n"),
    );
    fx.home_file(
        ".netrc",
        &format!("machine db.internal login dev password {pw}\n"),
    );
    let project_npm = fx.key("npm");
    fx.project_file(
        ".npmrc",
        &format!("//registry.npmjs.org/:_authToken={project_npm}\n"),
    );
    let f = audit_json(&fx, "credfile", &[]);
    expect(
        &f,
        "credential-file-permissions",
        ".aws/credentials",
        1,
        "high",
    );
    expect(&f, "aws-access-key-id", ".aws/credentials", 2, "low");
    let s = expect(&f, "aws-secret-access-key", ".aws/credentials", 3, "low");
    assert_eq!(s["secret"]["fingerprint"], sha12(&secret));
    expect(&f, "npm-token", "home/.npmrc", 1, "low");
    expect(&f, "github-token", "gh/hosts.yml", 2, "low");
    expect(&f, "generic-password", ".netrc", 1, "low");
    let p = f
        .iter()
        .find(|x| x["location"]["path"] == ".npmrc")
        .expect("project .npmrc");
    assert_eq!(p["severity"], "high");
    assert!(find_at(&f, "credential-file-permissions", "home/.npmrc", 1).is_none());
}
