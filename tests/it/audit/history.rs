//! The `history` source: shell histories. Every planted exposure is reported at the right place with the right
//! severity, and no raw value is printed.

use super::{audit_json, expect};
use crate::common::*;

#[test]
fn history_source_finds_inline_keys_exports_and_headers() {
    let mut fx = Fixture::new();
    let k1 = fx.key("anthropic");
    let k2 = fx.key("openai");
    let k3 = fx.key("token");
    let k4 = fx.key("xai");
    fx.home_file(
        ".bash_history",
        &format!(
            "ls\n#1700000000\nANTHROPIC_API_KEY={k1} claude -p hi\ncd /tmp\ncurl -H 'Authorization: Bearer {k2}' https://api.openai.com/v1/models\n"
        ),
    );
    fx.home_file(
        ".zsh_history",
        &format!(": 1700000000:0;git status\n: 1700000001:0;curl -H \"x-api-key: {k3}\" http://localhost:8080\n: 1700000002:0;export XAI_API_KEY={k4}\n"),
    );
    let k5 = fx.key("github");
    fx.home_file(
        ".local/share/fish/fish_history",
        &format!("- cmd: ls\n  when: 1700000000\n- cmd: set -x GH_TOKEN {k5}; gh repo list\n  when: 1700000001\n"),
    );
    let f = audit_json(&fx, "history", &[]);
    expect(&f, "github-token", "fish_history", 3, "medium");
    expect(&f, "anthropic-api-key", ".bash_history", 3, "medium");
    expect(&f, "openai-api-key", ".bash_history", 5, "medium");
    expect(&f, "generic-secret", ".zsh_history", 2, "medium");
    expect(&f, "xai-api-key", ".zsh_history", 3, "medium");
    assert_eq!(f.len(), 5, "{}", serde_json::to_string_pretty(&f).unwrap());
}
