//! The `shell` source: start-up files, each shell's dialect. Every planted exposure is reported at the right place with the right
//! severity, and no raw value is printed.

use super::{audit_json, expect};
use crate::common::*;

#[test]
fn shell_source_understands_exports_quoting_and_dialects() {
    let mut fx = Fixture::new();
    let k1 = fx.key("anthropic");
    let k2 = fx.key("openai");
    let k3 = fx.key("github");
    let k4 = fx.key("groq");
    let k5 = fx.key("token");
    let k6 = fx.key("stripe");
    let k7 = fx.key("npm");
    let k8 = fx.key("huggingface");
    fx.home_file(
        ".bashrc",
        &format!(
            "# my bashrc\nalias ll='ls -l'\nexport ANTHROPIC_API_KEY=\"{k1}\"\nOPENAI_API_KEY='{k2}'\nexport OPENAI_API_KEY\nGH_HELPER_TOKEN={k5}\nsource ~/.secrets.sh\nexport TOKENIZERS_PARALLELISM=false\n"
        ),
    );
    fx.home_file(
        ".secrets.sh",
        &format!("\n\ndeclare -x GITHUB_TOKEN={k3}\n"),
    );
    fx.home_file(
        ".config/fish/config.fish",
        &format!("set -gx GROQ_API_KEY {k4}\n"),
    );
    fx.home_file(".cshrc", &format!("setenv STRIPE_API_KEY {k6}\n"));
    fx.home_file(
        ".config/fish/conf.d/npm.fish",
        &format!("set -x NPM_TOKEN '{k7}'\n"),
    );
    std::fs::create_dir_all(fx.etc.join("profile.d")).unwrap();
    fx.write(
        &fx.etc.join("environment"),
        &format!("HF_TOKEN={k8}\nLANG=C.UTF-8\n"),
    );
    let f = audit_json(&fx, "shell", &[]);
    expect(&f, "anthropic-api-key", "home/.bashrc", 3, "high");
    expect(&f, "openai-api-key", "home/.bashrc", 4, "high");
    // Assigned without export: plaintext at rest, lower severity.
    expect(&f, "generic-secret", "home/.bashrc", 6, "medium");
    expect(&f, "github-token", "home/.secrets.sh", 3, "high");
    expect(&f, "groq-api-key", "config.fish", 1, "high");
    expect(&f, "stripe-live-key", "home/.cshrc", 1, "high");
    expect(&f, "npm-token", "conf.d/npm.fish", 1, "high");
    expect(&f, "huggingface-token", "etc/environment", 1, "high");
    assert_eq!(f.len(), 8, "{}", serde_json::to_string_pretty(&f).unwrap());
}
