//! The `file` source: keys written into the project's own files. Every planted exposure is reported at the right place with the right
//! severity, and no raw value is printed.

use super::{audit_json, expect};
use crate::common::*;

#[test]
fn file_source_scans_project_files_but_not_dependencies() {
    let mut fx = Fixture::new();
    let k1 = fx.key("google");
    let k2 = fx.key("slack");
    fx.git(&["init", "-q"]);
    fx.project_file(
        "src/config.js",
        &format!("module.exports = {{\n  apiKey: '{k1}',\n}};\n"),
    );
    fx.git(&["add", "src/config.js"]);
    fx.project_file("docs/notes.md", &format!("bot token {k2}\n"));
    let (d1, d2) = (fx.key("github"), fx.key("github"));
    fx.project_file("node_modules/dep/index.js", &format!("const k = '{d1}';\n"));
    fx.project_file("target/debug/build.txt", &format!("{d2}\n"));
    // Accepted on purpose: a fixtures directory in .keyfenceignore, and a line marked inline.
    let (d3, d4) = (fx.key("stripe"), fx.key("stripe"));
    fx.project_file(".keyfenceignore", "fixtures/\n");
    fx.project_file("fixtures/keys.txt", &format!("{d3}\n"));
    fx.project_file(
        "docs/example.md",
        &format!("`{d4}` <!-- keyfence:allow -->\n"),
    );
    let f = audit_json(&fx, "file", &[]);
    let g = expect(&f, "google-api-key", "src/config.js", 2, "critical");
    assert_eq!(g["location"]["column"], 12);
    expect(&f, "slack-token", "docs/notes.md", 1, "high");
    assert_eq!(f.len(), 2, "{}", serde_json::to_string_pretty(&f).unwrap());
}
