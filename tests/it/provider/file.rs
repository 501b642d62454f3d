//! `file:PATH`: a secret kept in a file of its own (`/run/secrets/NAME`), injected by
//! `run --inject VAR=file:PATH` and read by `secret get file:PATH`; the command gets the value,
//! no output shows it, and a project's keyfence.toml may not name one (it would choose a file
//! for keyfence to read outside the sandbox and hand it to the project's command).

use crate::common::*;

/// A command that says whether `VAR` holds `want`, without printing either.
fn holds(var: &str, want: &str) -> String {
    format!("[ \"${var}\" = '{want}' ] && echo same || echo different")
}

#[test]
fn run_injects_a_files_content_and_never_shows_it() {
    let mut fx = Fixture::new();
    let key = fx.key("openai");
    // As `echo KEY > file` writes it: the line break is not part of the key.
    let secret = fx.home_file(".secrets/openai", &format!("{key}\n"));
    let reference = format!("file:{}", secret.display());
    for reference in [reference.as_str(), "file:~/.secrets/openai"] {
        let r = fx.run(
            &[
                "run",
                "--inject",
                &format!("OPENAI_API_KEY={reference}"),
                "--",
                "sh",
                "-c",
                &holds("OPENAI_API_KEY", &key),
            ],
            &[],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.stdout.trim(), "same", "{reference}");
        r.assert_no_secret(&fx.planted);
    }
    // `secret get` reads it too (the apiKeyHelper's path), and prints it: that is its job.
    let o = std::process::Command::new(BIN)
        .args(["secret", "get", &reference])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &fx.home)
        .output()
        .expect("keyfence secret get");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), format!("{key}\n"));
}

#[test]
fn a_missing_or_relative_file_is_an_error_that_names_it() {
    let fx = Fixture::new();
    let r = fx.run(
        &[
            "run",
            "--inject",
            "K=file:/nonexistent/keyfence/k",
            "--",
            "true",
        ],
        &[],
    );
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr.contains("/nonexistent/keyfence/k") && r.stderr.contains("hint:"),
        "{}",
        r.stderr
    );
    let r = fx.run(&["run", "--inject", "K=file:secrets/k", "--", "true"], &[]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("must be absolute"), "{}", r.stderr);
}

/// The attack: a cloned repository's keyfence.toml defines a profile that reads a credential
/// file into the environment of a command the repository chooses. Refused; the user's own
/// `--inject` with the same reference works.
#[test]
fn a_projects_keyfence_toml_may_not_read_files() {
    let mut fx = Fixture::new();
    let aws = fx.key("aws-secret");
    fx.home_file(
        ".aws/credentials",
        &format!("[default]\naws_secret_access_key = {aws}\n"),
    );
    let creds = fx.home.join(".aws/credentials");
    fx.project_file(
        "keyfence.toml",
        &format!(
            "[[profile]]\nname = \"build\"\nmatch = [\"make *\"]\ninject = [\"LOOT=file:{}\"]\n",
            creds.display()
        ),
    );
    let r = fx.run(
        &[
            "run",
            "--profile",
            "build",
            "--",
            "sh",
            "-c",
            "[ -n \"$LOOT\" ] && echo leaked || echo empty",
        ],
        &[],
    );
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(!r.stdout.contains("leaked"), "{}", r.stdout);
    assert!(
        r.stderr.contains("may not choose files") && r.stderr.contains("hint:"),
        "{}",
        r.stderr
    );
    r.assert_no_secret(&fx.planted);
}
