//! `run --sandbox`: the command cannot read credential stores (T4) or keyfence's own store
//! (T5), can write only in the project, temp and cache directories, and everything else stays
//! readable.

use crate::common::*;

#[test]
fn sandbox_denies_credential_stores_and_keyfence_store_only() {
    let mut fx = Fixture::outside_tmp();
    let aws = fx.key("aws-secret");
    let npm = fx.key("npm");
    let stored = fx.key("anthropic");
    fx.home_file(
        ".aws/credentials",
        &format!("[default]\naws_secret_access_key = {aws}\n"),
    );
    fx.home_file(
        ".npmrc",
        &format!("//registry.npmjs.org/:_authToken={npm}\n"),
    );
    fx.home_file(".bashrc", "alias ll='ls -l'\n");
    fx.home_file(".config/app/settings.toml", "theme = 'dark'\n");
    // A secret in the store, which the sandboxed command tries to get back out.
    fx.store_secret("ANTHROPIC_API_KEY", &stored);
    let probe = format!(
        "cat ~/.aws/credentials; echo aws=$?; cat ~/.npmrc; echo npmrc=$?; \
         cat ~/.local/share/keyfence/vault >/dev/null; echo vault=$?; \
         cat ~/.local/state/keyfence/vault.key >/dev/null; echo key=$?; \
         {BIN} secret get ANTHROPIC_API_KEY; echo get=$?; \
         cat ~/.bashrc >/dev/null; echo bashrc=$?; cat ~/.config/app/settings.toml >/dev/null; echo config=$?; \
         cat /etc/hostname >/dev/null; echo etc=$?; \
         echo x > made-in-project; echo project_write=$?; \
         (echo x > ~/.bashrc) 2>/dev/null; echo home_write=$?; \
         (echo x > ~/.config/app/settings.toml) 2>/dev/null; echo config_write=$?"
    );
    let r = fx.run(&["run", "--sandbox", "--", "sh", "-c", &probe], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let got = |k: &str| {
        r.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing: {}", r.stdout))
            .to_string()
    };
    // Denied: credential files, the store and its key, and therefore `secret get` (T4, T5);
    // shell start-up files, which the `shell` audit reads for keys.
    for k in ["aws", "npmrc", "vault", "key", "get", "bashrc"] {
        assert_ne!(got(k), "0", "{k} was readable: {}", r.stdout);
    }
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    // Still readable: everything else. Writable: the project only (here).
    for k in ["config", "etc", "project_write"] {
        assert_eq!(got(k), "0", "{k}: {}\n{}", r.stdout, r.stderr);
    }
    for k in ["home_write", "config_write"] {
        assert_ne!(got(k), "0", "{k} was writable: {}", r.stdout);
    }
    assert!(fx.project.join("made-in-project").exists());
    // The harness already checked that no planted value reached stdout or stderr.

    // The built-in `install` profile sandboxes too.
    let r = fx.run(
        &[
            "run",
            "--profile",
            "install",
            "--",
            "sh",
            "-c",
            "cat ~/.npmrc; echo npmrc=$?",
        ],
        &[],
    );
    assert!(r.stdout.contains("npmrc=1"), "{}{}", r.stdout, r.stderr);
}

// Broke once: with --sandbox the supervisor could no longer blank its own environment block
// (Landlock forbade /proc/self/mem), so self-protection now happens before the sandbox.
#[test]
fn supervisor_protects_itself_before_the_sandbox_closes_proc() {
    let mut fx = Fixture::outside_tmp();
    let tok = fx.key("token");
    let r = fx.run(
        &[
            "run",
            "--sandbox",
            "--",
            "sh",
            "-c",
            "tr '\\0' '\\n' < /proc/$PPID/environ | grep -c '^SERVICE_TOKEN=\\**$'",
        ],
        &[("SERVICE_TOKEN", &tok)],
    );
    // As root the read succeeds and shows the value blanked; an ordinary user may not read
    // the supervisor's environ at all (it is not dumpable).
    if nix_is_root() {
        assert_eq!(r.stdout.trim(), "1", "{}{}", r.stdout, r.stderr);
    } else {
        assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    }
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
}
