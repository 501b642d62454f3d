//! The `dotenv` source: the project's `.env` files, their severity by git state. Every planted exposure is reported at the right place with the right
//! severity, and no raw value is printed.

use super::{audit_json, expect};
use crate::common::*;

#[test]
fn dotenv_severity_follows_git_state() {
    let mut fx = Fixture::new();
    let tracked = fx.key("anthropic");
    let ignored = fx.key("openai");
    let untracked = fx.key("stripe");
    let envrc = fx.key("github");
    fx.git(&["init", "-q"]);
    fx.project_file(".gitignore", ".env.local\n");
    fx.project_file(
        ".env",
        &format!("# app\nANTHROPIC_API_KEY={tracked}\nAPI_KEY=changeme\n"),
    );
    fx.git(&["add", ".env", ".gitignore"]);
    fx.project_file(".env.local", &format!("OPENAI_API_KEY=\"{ignored}\"\n"));
    fx.project_file(
        "svc/.env.production",
        &format!("\n\nexport STRIPE_KEY={untracked}\n"),
    );
    fx.project_file(".envrc", &format!("export GITHUB_TOKEN={envrc}\n"));
    // Dependencies are not the project's own .env files.
    let dep = fx.key("token");
    fx.project_file("node_modules/pkg/.env", &format!("X_TOKEN={dep}\n"));
    let f = audit_json(&fx, "dotenv", &[]);
    expect(&f, "anthropic-api-key", ".env", 2, "critical");
    let ign = expect(&f, "openai-api-key", ".env.local", 1, "medium");
    assert!(ign["message"].as_str().unwrap().contains("Bun"), "{ign}");
    expect(&f, "stripe-live-key", "svc/.env.production", 3, "high");
    expect(&f, "github-token", ".envrc", 1, "high");
    assert_eq!(f.len(), 4, "{}", serde_json::to_string_pretty(&f).unwrap());
}
