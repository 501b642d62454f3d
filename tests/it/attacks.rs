//! The attack suite so far: a probe run as an untrusted grandchild of the command (through a
//! shell, as an npm lifecycle script would be) tries every path to a key it can and writes
//! what it got to a file (files are not masked, so masking cannot hide a leak). Each mode's
//! outcome is asserted: what it must stop, and — honestly — what it does not stop yet.
//! T1 own environment, T2 every ancestor's /proc/PID/environ, T4 credential files, T5
//! `keyfence secret get`, T7 printing the key (masked in output).

use crate::common::*;

fn probe_script(loot: &std::path::Path) -> String {
    format!(
        "exec > {loot} 2>&1; \
         echo T1; env; \
         echo T2; p=$$; while [ \"$p\" -gt 1 ]; do tr '\\0' '\\n' < /proc/$p/environ; p=$(sed 's/.*) //' /proc/$p/stat | cut -d' ' -f2); done; \
         echo T4; cat ~/.aws/credentials; \
         echo T5; {BIN} secret get ANTHROPIC_API_KEY",
        loot = loot.display()
    )
}

struct Keys {
    exported: String,
    stored: String,
    in_file: String,
}

fn setup() -> (Fixture, Keys) {
    let mut fx = Fixture::outside_tmp();
    let keys = Keys {
        exported: fx.key("openai"),
        stored: fx.key("anthropic"),
        in_file: fx.key("aws-secret"),
    };
    fx.home_file(
        ".aws/credentials",
        &format!("[default]\naws_secret_access_key = {}\n", keys.in_file),
    );
    fx.store_secret("ANTHROPIC_API_KEY", &keys.stored);
    (fx, keys)
}

/// Runs the probe as a grandchild under `mode` flags; returns what it collected.
fn attack(fx: &Fixture, keys: &Keys, mode: &[&str]) -> String {
    let loot = fx.project.join("loot");
    let _ = std::fs::remove_file(&loot);
    let mut args = vec!["run"];
    args.extend_from_slice(mode);
    let inner = probe_script(&loot);
    let outer = format!("sh -c '{}'", inner.replace('\'', "'\\''"));
    args.extend(["--", "sh", "-c", &outer]);
    // The exit status is the probe's last attempt's; what matters is what it collected.
    let r = fx.run(&args, &[("OPENAI_API_KEY", &keys.exported)]);
    assert!(r.code < 125, "keyfence failed ({}): {}", r.code, r.stderr);
    std::fs::read_to_string(&loot).unwrap_or_default()
}

#[test]
fn scrub_stops_env_and_ancestors_but_not_files_or_the_store() {
    let (fx, keys) = setup();
    let loot = attack(&fx, &keys, &[]);
    assert!(loot.contains("T5"), "probe did not run: {loot}");
    assert!(
        !loot.contains(&keys.exported),
        "T1/T2 leaked the exported key"
    );
    // T2 really read the supervisor's environment: the variable is there, blanked (as root;
    // an ordinary user may not read it at all, the supervisor is not dumpable).
    assert!(
        loot.contains("OPENAI_API_KEY=****") || !nix_is_root(),
        "T2 did not reach keyfence: {loot}"
    );
    // Not closed by scrubbing alone: files and the store's interface (use --sandbox).
    assert!(
        loot.contains(&keys.in_file),
        "T4 expected to succeed without a sandbox"
    );
    assert!(
        loot.contains(&keys.stored),
        "T5 expected to succeed without a sandbox"
    );
}

#[test]
fn sandbox_stops_env_ancestors_files_and_the_store() {
    let (fx, keys) = setup();
    let loot = attack(&fx, &keys, &["--sandbox"]);
    assert!(loot.contains("T5"), "probe did not run: {loot}");
    for (what, k) in [
        ("exported", &keys.exported),
        ("file", &keys.in_file),
        ("stored", &keys.stored),
    ] {
        assert!(
            !loot.contains(k.as_str()),
            "{what} key leaked under --sandbox:\n{loot}"
        );
    }
}

#[test]
fn inject_alone_reaches_every_descendant() {
    let (fx, keys) = setup();
    let loot = attack(&fx, &keys, &["--sandbox", "--inject", "ANTHROPIC_API_KEY"]);
    assert!(!loot.contains(&keys.exported) && !loot.contains(&keys.in_file));
    // Inherited by every descendant: this is what --guard is for (tests/it/guard/mod.rs).
    assert!(
        loot.contains(&keys.stored),
        "T1 expected to see an injected key"
    );
}

#[test]
fn phantom_gives_descendants_only_the_stand_in() {
    let (fx, keys) = setup();
    let loot = attack(
        &fx,
        &keys,
        &[
            "--sandbox",
            "--phantom",
            "ANTHROPIC_API_KEY",
            "--upstream",
            "http://127.0.0.1:9",
        ],
    );
    assert!(
        loot.contains("ANTHROPIC_API_KEY=sk-ant-api03-"),
        "no stand-in: {loot}"
    );
    for (what, k) in [
        ("exported", &keys.exported),
        ("file", &keys.in_file),
        ("stored", &keys.stored),
    ] {
        assert!(
            !loot.contains(k.as_str()),
            "{what} key leaked under --phantom:\n{loot}"
        );
    }
}
