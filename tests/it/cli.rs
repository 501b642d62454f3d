//! The command line: help, completions, usage errors, exit codes, colour, and bad input that
//! must become error entries instead of crashes.

use crate::common::*;

#[test]
fn help_and_completions() {
    let fx = Fixture::new();
    let h = fx.run(&["--help"], &[]);
    assert_eq!(h.code, 0);
    for word in ["audit", "scan", "ps", "completions", "--color"] {
        assert!(
            h.stdout.contains(word),
            "--help lacks {word}:\n{}",
            h.stdout
        );
    }
    // Each command's help shows the options that apply to it: the audit's on `audit` only.
    let audit_only = ["--fail-on", "--home", "--only", "--skip"];
    let help = |args: &[&str]| fx.run(args, &[]).stdout;
    for word in audit_only {
        // As an option row (`--home <DIR>`), not a mention in prose.
        let row = format!("{word} <");
        assert!(
            help(&["audit", "--help"]).contains(&row),
            "audit --help lacks {word}"
        );
        for other in [
            &["run", "--help"][..],
            &["secret", "set", "--help"],
            &["--help"],
        ] {
            assert!(!help(other).contains(&row), "{other:?} shows {word}");
        }
    }
    // SARIF is offered where the output is findings, and only there.
    for findings in [&["audit", "--help"][..], &["scan", "--help"]] {
        assert!(help(findings).contains("sarif"), "{findings:?}");
    }
    for listing in [
        &["ps", "--help"][..],
        &["doctor", "--help"],
        &["fix", "--help"],
        &["secret", "list", "--help"],
        &["canary", "list", "--help"],
    ] {
        let h = help(listing);
        assert!(
            h.contains("--format <FORMAT>") && h.contains("json"),
            "{listing:?}: {h}"
        );
        assert!(!h.contains("sarif"), "{listing:?} offers sarif: {h}");
    }
    for none in [
        &["run", "--help"][..],
        &["secret", "set", "--help"],
        &["--help"],
    ] {
        assert!(
            !help(none).contains("--format <"),
            "{none:?} offers --format"
        );
    }
    let refused = fx.run(&["ps", "--format", "sarif"], &[]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("invalid value 'sarif'"),
        "{}",
        refused.stderr
    );
    assert!(help(&["scan", "--help"]).contains("--fail-on"));
    assert!(help(&["fix", "--help"]).contains("--home"));
    assert!(help(&["setup", "claude", "--help"]).contains("--home"));
    let ha = fx.run(&["help", "audit"], &[]);
    assert_eq!(ha.code, 0);
    for src in [
        "env", "shell", "history", "dotenv", "credfile", "agent", "proc", "file",
    ] {
        assert!(ha.stdout.contains(src), "help audit lacks {src}");
    }
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef keyfence"),
        ("fish", "complete -c keyfence"),
    ] {
        let c = fx.run(&["completions", shell], &[]);
        assert_eq!(c.code, 0, "{}", c.stderr);
        assert!(
            c.stdout.contains(marker),
            "{shell}: {}",
            &c.stdout[..200.min(c.stdout.len())]
        );
    }
}

/// `run`'s usage errors end with 125, keyfence's own failure before the command starts, as
/// `env`'s do: a script cannot tell 2 from the command's own status. Help is still 0, and the
/// other commands' usage errors still 2.
#[test]
fn runs_usage_errors_exit_125_not_the_commands_2() {
    let fx = Fixture::new();
    let cases: [(&[&str], &str); 4] = [
        (
            &["run", "--net", "bogus", "--", "true"],
            "invalid value 'bogus' for '--net <allow|none|tcp:PORTS>': expected allow, none, or tcp:PORT",
        ),
        (
            &["run", "--net", "tcp:0", "--", "true"],
            "ports must be numbers from 1 to 65535",
        ),
        (
            &["run", "--no-such-flag", "--", "true"],
            "unexpected argument '--no-such-flag'",
        ),
        (&["-v", "run"], "<COMMAND>"),
    ];
    for (args, says) in cases {
        let r = fx.run(args, &[]);
        assert_eq!(r.code, 125, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
        assert!(!r.stdout.contains("ran"), "{args:?}");
    }
    // A status the command itself chose is still its own.
    assert_eq!(fx.run(&["run", "--", "sh", "-c", "exit 2"], &[]).code, 2);
    assert_eq!(fx.run(&["run", "--help"], &[]).code, 0);
    assert_eq!(fx.run(&["audit", "--no-such-flag"], &[]).code, 2);
}

#[test]
fn usage_errors_list_the_valid_values_and_exit_2() {
    let fx = Fixture::new();
    let r = fx.run(&["audit", "--only", "env,bogus"], &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("bogus") && r.stderr.contains("credfile"),
        "{}",
        r.stderr
    );
    let r = fx.run(&["audit", "--format", "xml"], &[]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("sarif"), "{}", r.stderr);
    let r = fx.run(&["audit", "does-not-exist"], &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("does-not-exist: not a directory"),
        "{}",
        r.stderr
    );
    let r = fx.run(&["audit", "--home", "/nonexistent/home"], &[]);
    assert_eq!(r.code, 2);
}

#[test]
fn fail_on_sets_the_threshold() {
    let mut fx = Fixture::new();
    let k = fx.key("anthropic");
    fx.home_file(".bash_history", &format!("ANTHROPIC_API_KEY={k} claude\n"));
    // History findings are medium: below the default threshold (high).
    let r = fx.run(&["audit", "--only", "history"], &[]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("medium"));
    let r = fx.run(&["audit", "--only", "history", "--fail-on", "medium"], &[]);
    assert_eq!(r.code, 1);
    let r = fx.run(
        &["audit", "--only", "history", "--fail-on", "critical", "-q"],
        &[],
    );
    assert_eq!(r.code, 0);
    assert!(
        !r.stdout.contains("keyfence audit:"),
        "-q prints no summary"
    );
}

#[test]
fn clean_audit_exits_0() {
    let fx = Fixture::new();
    let r = fx.run(&["audit", "--skip", "proc"], &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("no exposed secrets found"),
        "{}",
        r.stdout
    );
}

#[test]
fn colour_follows_flag_and_no_color() {
    let mut fx = Fixture::new();
    let k = fx.key("github");
    fx.project_file("a.txt", &format!("{k}\n"));
    let always = fx.run(&["scan", ".", "--color", "always"], &[]);
    assert!(always.stdout.contains("\x1b["), "--color always");
    let never = fx.run(&["scan", ".", "--color", "never"], &[]);
    assert!(!never.stdout.contains("\x1b["));
    // Not a terminal: auto means no colour, and NO_COLOR is honoured too.
    let auto = fx.run(&["scan", "."], &[("NO_COLOR", "1")]);
    assert!(!auto.stdout.contains("\x1b["));
    assert_eq!(auto.code, 1);
}

#[test]
fn bad_input_becomes_errors_not_crashes() {
    let mut fx = Fixture::new();
    let k = fx.key("anthropic");
    // A symlink loop where a start-up file should be.
    std::os::unix::fs::symlink(fx.home.join(".bashrc"), fx.home.join(".bashrc")).unwrap();
    // Malformed settings.
    fx.home_file(".claude/settings.json", "{\"env\": {\"A\": ");
    fx.home_file(
        ".codex/config.toml",
        "[shell_environment_policy\ninherit = \"all\"\n",
    );
    // Invalid UTF-8 around a key, a binary file, a file over the size limit, a directory loop.
    let mut bytes = b"\xff\xfe\n".to_vec();
    bytes.extend_from_slice(format!("export OPENAI={k}\n").as_bytes());
    bytes.extend_from_slice(b"\xc3\x28\n");
    std::fs::write(fx.project.join("latin1.sh"), &bytes).unwrap();
    let mut bin = vec![0u8; 100];
    bin.extend_from_slice(fx.key("github").as_bytes());
    std::fs::write(fx.project.join("blob.bin"), &bin).unwrap();
    fx.project_file("big.txt", &"a".repeat(2048));
    std::os::unix::fs::symlink(&fx.project, fx.project.join("loop")).unwrap();
    let r = fx.run(
        &[
            "audit",
            "--skip",
            "proc",
            "--format",
            "json",
            "--max-filesize",
            "1K",
        ],
        &[],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let j = r.json();
    let errors = j["errors"].as_array().unwrap();
    let has = |needle: &str| errors.iter().any(|e| e.to_string().contains(needle));
    assert!(has(".bashrc"), "symlink loop not reported: {errors:?}");
    assert!(has("malformed JSON at line 1"), "{errors:?}");
    assert!(has("malformed TOML at line 1"), "{errors:?}");
    assert_eq!(j["skipped"]["binary_files"], 1);
    assert_eq!(j["skipped"]["large_files"], 1);
    let f = r.findings();
    assert!(
        find_at(&f, "anthropic-api-key", "latin1.sh", 2).is_some(),
        "{f:?}"
    );
}

#[test]
fn unreadable_files_as_an_ordinary_user() {
    // Root reads everything, so drop to nobody for this one (DESIGN.md §5).
    if !std::path::Path::new("/usr/bin/setpriv").exists() {
        skip("setpriv missing");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    for d in [fx.dir.path(), &fx.home, &fx.project, &fx.etc] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let rc = fx.home_file(".zshrc", "export A=1\n");
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o000)).unwrap();
    let secret_dir = fx.project.join("private");
    std::fs::create_dir(&secret_dir).unwrap();
    std::fs::set_permissions(&secret_dir, std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = std::process::Command::new(AS_UNPRIVILEGED[0])
        .args(&AS_UNPRIVILEGED[1..])
        .arg(BIN)
        .args(["audit", "--skip", "proc", "--format", "json", "--etc"])
        .arg(&fx.etc)
        .current_dir(&fx.project)
        .env_clear()
        .env("HOME", &fx.home)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let r = Run::from(out);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let text = r.json()["errors"].to_string();
    assert!(
        text.contains(".zshrc") && text.contains("ermission denied"),
        "{text}"
    );
    assert!(text.contains("private"), "{text}");

    // Processes of other users (root's, here) cannot be read by nobody: counted, not fatal.
    let out = std::process::Command::new(AS_UNPRIVILEGED[0])
        .args(&AS_UNPRIVILEGED[1..])
        .arg(BIN)
        .args(["audit", "--only", "proc", "--format", "json"])
        .current_dir(&fx.project)
        .env_clear()
        .env("HOME", &fx.home)
        .output()
        .unwrap();
    let r = Run::from(out);
    // Other tests may run processes as nobody meanwhile (a claude outside keyfence, a baseline
    // holding a key): findings (1) are theirs; an error (2) would be this test's.
    assert!(r.code == 0 || r.code == 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.json()["skipped"]["unreadable_processes"]
            .as_u64()
            .unwrap()
            > 0,
        "{}",
        r.stdout
    );
}

#[test]
fn audit_from_the_home_directory_does_not_walk_it() {
    let mut fx = Fixture::new();
    let k = fx.key("github");
    fx.home_file("projects/app/config.js", &format!("const t = '{k}';\n"));
    let out = std::process::Command::new(BIN)
        .args(["audit", "--skip", "proc", "--format", "json"])
        .current_dir(&fx.home)
        .env_clear()
        .env("HOME", &fx.home)
        .output()
        .unwrap();
    let r = Run::from(out);
    r.assert_no_secret(&fx.planted);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.findings().is_empty(), "{}", r.stdout);
    assert!(
        r.stderr.contains("current directory is your home"),
        "{}",
        r.stderr
    );
}

/// The README's first command, `keyfence audit` in this checkout, finds nothing to fix: every
/// fake key in the tree is made at test time or marked (`keyfence:allow`, `.keyfenceignore`).
/// The checkout's own `.git/config` is left out: a CI runner may have put its token there, and
/// that is the runner's, not the tree's.
#[test]
fn the_checkout_audits_clean() {
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["audit", "--skip", "proc,gitconfig", "--format", "json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let r = Run::from(out);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let findings = r.json()["findings"].as_array().unwrap().clone();
    let serious: Vec<_> = findings
        .iter()
        .filter(|f| f["severity"] != "info" && f["severity"] != "low")
        .collect();
    assert!(serious.is_empty(), "{serious:#?}");
}

/// `keyfence run /bin/true` (no `--`) says how to write it; with `--` it runs.
#[test]
fn run_without_dashes_gets_a_hint() {
    let fx = Fixture::new();
    let r = fx.run(&["run", "/bin/true"], &[]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr.contains("hint: put `--` before the command"),
        "{}",
        r.stderr
    );
    assert_eq!(fx.run(&["run", "--", "/bin/true"], &[]).code, 0);
}

/// The fake-key generator the README and rule examples point to explains itself.
#[test]
fn fakekey_helps() {
    let out = std::process::Command::new("python3")
        .args([
            concat!(env!("CARGO_MANIFEST_DIR"), "/tools/fakekey.py"),
            "--help",
        ])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("KIND") && text.contains("anthropic"),
        "{text}"
    );
    let bad = std::process::Command::new("python3")
        .args([
            concat!(env!("CARGO_MANIFEST_DIR"), "/tools/fakekey.py"),
            "no-such-kind",
        ])
        .output()
        .expect("python3");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid choice"));
}

/// An error whose message already ends with its cause (`reading FILE: Is a directory`) says
/// the cause once, not twice as anyhow's chain would.
#[test]
fn an_errors_cause_is_said_once() {
    let fx = Fixture::new();
    std::fs::create_dir_all(fx.home.join(".local/share/keyfence/vault")).unwrap();
    let r = fx.run(&["secret", "get", "SOME_KEY"], &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(
        r.stderr.matches("Is a directory").count(),
        1,
        "the cause is not said exactly once: {}",
        r.stderr
    );
}
