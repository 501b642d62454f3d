//! What holds across the audit sources: one exposure however many places hold the key, a key
//! already in the store, a kind known by its format.

use super::audit_json;
use crate::common::*;

#[test]
fn the_same_key_in_several_places_is_one_exposure() {
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    fx.home_file(".bashrc", &format!("export ANTHROPIC_API_KEY={key}\n"));
    fx.project_file(".env", &format!("ANTHROPIC_API_KEY={key}\n"));
    let run = fx.run(
        &["audit", "--skip", "proc", "--color", "never"],
        &[("ANTHROPIC_API_KEY", &key)],
    );
    assert_eq!(run.code, 1);
    let fp = sha12(&key);
    let header = run
        .stdout
        .lines()
        .find(|l| l.contains(&fp))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(header.contains("exposed in 3 places"), "{header}");
    assert_eq!(run.stdout.matches(&fp).count(), 1, "{}", run.stdout);
    assert!(run.stdout.contains("~/.bashrc:1"), "{}", run.stdout);
    assert!(run.stdout.contains(".env:1"), "{}", run.stdout);
}

/// A key that keyfence's store already holds, still exported in a start-up file: the advice is
/// to delete the export and use the stored entry, not to store it again; a key the store does
/// not hold keeps the advice to store it.
#[test]
fn a_key_already_stored_is_called_stored() {
    let mut fx = Fixture::new();
    let stored = fx.key("anthropic");
    let other = fx.key("openai");
    fx.store_secret("ANTHROPIC_API_KEY", &stored);
    fx.home_file(
        ".bashrc",
        &format!("export ANTHROPIC_API_KEY={stored}\nexport OPENAI_API_KEY={other}\n"),
    );
    let r = fx.run(&["audit", "--only", "shell,store", "--format", "json"], &[]);
    let findings = r.json()["findings"].as_array().unwrap().clone();
    let fix_of = |var: &str| {
        findings
            .iter()
            .find(|f| f["message"].as_str().unwrap_or("").contains(var))
            .map(|f| f["fix"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no finding for {var}: {findings:#?}"))
    };
    assert!(
        fix_of("ANTHROPIC_API_KEY")
            .starts_with("it is already in keyfence's store as ANTHROPIC_API_KEY"),
        "{findings:#?}"
    );
    assert!(
        fix_of("OPENAI_API_KEY").starts_with("run `keyfence fix`: it moves the key into"),
        "{findings:#?}"
    );
}

/// The rule added by following docs/architecture.md ("Add a rule"): a Perplexity key exported in
/// a start-up file is reported by its kind, where before it was only a secret-named variable.
#[test]
fn a_perplexity_key_is_known_by_its_kind() {
    let mut fx = Fixture::new();
    let key = fx.key("perplexity");
    fx.home_file(".bashrc", &format!("export PERPLEXITY_API_KEY={key}\n"));
    // Any name: the format alone says what it is.
    fx.home_file(".zshrc", &format!("export SOMETHING={key}\n"));
    let f = audit_json(&fx, "shell", &[]);
    let found: Vec<_> = f
        .iter()
        .filter(|x| x["rule"] == "perplexity-api-key")
        .collect();
    assert_eq!(found.len(), 2, "{f:#?}");
    assert!(
        found
            .iter()
            .all(|x| x["secret"]["kind"] == "Perplexity API key")
    );
    assert!(
        found
            .iter()
            .all(|x| x["secret"]["fingerprint"] == sha12(&key))
    );
}
