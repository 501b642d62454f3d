//! The `env` source: keyfence's own environment. Every planted exposure is reported at the right place with the right
//! severity, and no raw value is printed.

use super::audit_json;
use crate::common::*;

#[test]
fn env_source_reports_secret_variables_and_not_decoys() {
    let mut fx = Fixture::new();
    let ant = fx.key("anthropic");
    let tok = fx.key("token");
    let pw = fx.key("password");
    let f = audit_json(
        &fx,
        "env",
        &[
            ("ANTHROPIC_API_KEY", &ant),
            ("MY_SERVICE_TOKEN", &tok),
            ("DB_PASSWORD", &pw),
            ("TOKENIZERS_PARALLELISM", "false"),
            ("KEYTIMEOUT", "1"),
            ("GPG_KEY_FILE", "/home/dev/.gnupg/key.asc"),
            ("API_KEY", "changeme"),
            ("PLACEHOLDER_KEY", "sk-ant-xxxx"),
        ],
    );
    let by_var = |v: &str| f.iter().find(|x| x["location"]["env"] == v).cloned();
    let a = by_var("ANTHROPIC_API_KEY").expect("anthropic");
    assert_eq!(a["rule"], "anthropic-api-key");
    assert_eq!(a["severity"], "high");
    assert_eq!(a["secret"]["fingerprint"], sha12(&ant));
    assert_eq!(
        by_var("MY_SERVICE_TOKEN").expect("token")["rule"],
        "generic-secret"
    );
    let p = by_var("DB_PASSWORD").expect("password");
    assert_eq!(p["rule"], "generic-password");
    assert!(
        p["secret"].get("fingerprint").is_none(),
        "low-entropy passwords get no fingerprint"
    );
    for decoy in [
        "TOKENIZERS_PARALLELISM",
        "KEYTIMEOUT",
        "GPG_KEY_FILE",
        "API_KEY",
        "PLACEHOLDER_KEY",
    ] {
        assert!(by_var(decoy).is_none(), "decoy {decoy} reported");
    }
    assert_eq!(f.len(), 3, "{f:?}");
}
