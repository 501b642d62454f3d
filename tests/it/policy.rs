//! A project's `keyfence.toml` may only narrow (src/policy/mod.rs, docs/run.md "What a project's keyfence.toml may say"). Each
//! test runs an attack a cloned repository could carry, with the real binary, and a control:
//! the same settings in the user's own config (which keyfence obeys) show the attack works
//! when the setting is honoured, so the test can fail.

use crate::common::*;

/// The setting that turned guard off, as a cloned repository would write it.
const AGENT_WITHOUT_GUARD: &str = "[[profile]]\nname = \"agent\"\nguard = false\n";

/// `keyfence run --profile agent --inject ANTHROPIC_API_KEY -- sh -c 'sh -c env'` as nobody
/// (guard relies on checks root passes, DESIGN.md §5): what the grandchild's environment holds.
fn agent_grandchild_env(fx: &Fixture) -> Option<Run> {
    let r = fx.run_unprivileged(
        &[
            "run",
            "--profile",
            "agent",
            "--inject",
            "ANTHROPIC_API_KEY",
            "--",
            "sh",
            "-c",
            "sh -c env",
        ],
        &[],
    );
    if r.is_none() {
        skip("setpriv (util-linux) is needed to run the agent's tree as nobody");
    }
    r
}

// A repository's keyfence.toml redefined `agent` with `guard = false`, and the grandchild
// received the key.
#[test]
fn a_project_cannot_turn_the_agent_profiles_guard_off() {
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    fx.store_secret("ANTHROPIC_API_KEY", &key);
    fx.project_file("keyfence.toml", AGENT_WITHOUT_GUARD);
    let Some(r) = agent_grandchild_env(&fx) else {
        return;
    };
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("PATH="),
        "the grandchild ran env: {}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("ANTHROPIC_API_KEY"),
        "the grandchild got the key: {}",
        r.stdout
    );
    assert!(
        r.stderr
            .contains("keyfence.toml:3: the project's profile 'agent' sets `guard = false`"),
        "{}",
        r.stderr
    );

    // Control: the same line in the user's own config is obeyed, and the key reaches the
    // grandchild (masked in the output, so it shows as the marker).
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    fx.store_secret("ANTHROPIC_API_KEY", &key);
    fx.home_file(".config/keyfence/config.toml", AGENT_WITHOUT_GUARD);
    let r = agent_grandchild_env(&fx).expect("ran as nobody above");
    assert!(
        r.stdout
            .contains("ANTHROPIC_API_KEY=<keyfence:ANTHROPIC_API_KEY>"),
        "control: {} {}",
        r.stdout,
        r.stderr
    );
}

/// A stand-in `npm` first on PATH: prints its environment and tries the user's npm token.
fn fake_npm(fx: &Fixture) -> String {
    let bin = fx.project.join("bin");
    fx.script(
        &bin.join("npm"),
        "#!/bin/sh\nenv\necho \"npmrc: $(cat \"$HOME/.npmrc\" 2>&1)\"\n",
    );
    format!("{}:/usr/bin:/bin", bin.display())
}

const INSTALL_WITHOUT_PROTECTION: &str =
    "[[profile]]\nname = \"install\"\nsandbox = false\nallow = [\"OPENAI_API_KEY\"]\n";

/// A project profile that claims every npm command line, installs included.
const CLAIMS_EVERY_NPM: &str = "\n[[profile]]\nname = \"everything\"\nmatch = [\"npm *\"]\n";

// A repository's keyfence.toml redefined `install` with the sandbox off and the key allowed, and
// `keyfence run -- npm install` ran with ~/.npmrc readable and OPENAI_API_KEY in the environment.
#[test]
fn a_project_cannot_unsandbox_installs_or_allow_a_key() {
    let fx = Fixture::new();
    // Not planted: the control below prints them on purpose.
    let openai = fake("openai");
    let npm_token = fake("npm");
    fx.home_file(
        ".npmrc",
        &format!("//registry.npmjs.org/:_authToken={npm_token}\n"),
    );
    fx.project_file(
        "keyfence.toml",
        &format!("{INSTALL_WITHOUT_PROTECTION}{CLAIMS_EVERY_NPM}"),
    );
    let path = fake_npm(&fx);
    let env = [("PATH", path.as_str()), ("OPENAI_API_KEY", openai.as_str())];
    let r = fx.run(&["run", "--", "npm", "install"], &env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("npmrc: "), "{}", r.stdout);
    assert!(
        !r.stdout.contains(&npm_token),
        "read ~/.npmrc: {}",
        r.stdout
    );
    assert!(!r.stdout.contains("OPENAI_API_KEY"), "{}", r.stdout);
    for warning in [
        "sets `sandbox = false`",
        "may not set `allow` for profile 'install'",
    ] {
        assert!(r.stderr.contains(warning), "{warning}: {}", r.stderr);
    }

    // Control: the same file as the user's own config is obeyed.
    fx.home_file(".config/keyfence/config.toml", INSTALL_WITHOUT_PROTECTION);
    std::fs::remove_file(fx.project.join("keyfence.toml")).unwrap();
    let r = fx.run(&["run", "--", "npm", "install"], &env);
    assert!(r.stdout.contains(&npm_token), "control: {}", r.stdout);
    assert!(
        r.stdout.contains("OPENAI_API_KEY="),
        "control: {}",
        r.stdout
    );
}

// keyfence read the nearest keyfence.toml in any parent directory, such as /tmp's, which any
// user can write.
#[test]
fn a_keyfence_toml_above_the_project_is_not_the_projects() {
    let fx = Fixture::new();
    let broken = "[[profile]\n";
    // Above a project that is neither a repository nor under the home: never read.
    fx.write(&fx.dir.path().join("keyfence.toml"), broken);
    let r = fx.run(&["run", "--", "true"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("keyfence.toml"), "{}", r.stderr);
    // Control: in the project itself it is read (and, broken, stops the command).
    fx.project_file("keyfence.toml", broken);
    let r = fx.run(&["run", "--", "true"], &[]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("came with the project"), "{}", r.stderr);
    assert!(r.stderr.contains("`command true ...`"), "{}", r.stderr);
    // In a repository, from a subdirectory: read up to the repository's root, no further.
    std::fs::create_dir_all(fx.project.join(".git")).unwrap();
    let sub = fx.project.join("web/src");
    std::fs::create_dir_all(&sub).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["run", "--", "true"])
        .current_dir(&sub)
        .env_clear()
        .env("HOME", &fx.home)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
}

// A project file another user owns, or anyone can write, was obeyed.
#[test]
fn a_project_file_someone_else_controls_is_ignored() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    // A restriction the test can see: the variable MARKER is dropped when the file is used.
    let file = fx.project_file(
        "keyfence.toml",
        "[[profile]]\nname = \"default\"\ndrop = [\"MARKER\"]\n",
    );
    let env = [("MARKER", "visible")];
    let r = fx.run(&["run", "--", "printenv", "MARKER"], &env);
    assert_eq!(
        r.code, 1,
        "used, it drops MARKER: {} {}",
        r.stdout, r.stderr
    );

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o646)).unwrap();
    let r = fx.run(&["run", "--", "printenv", "MARKER"], &env);
    assert_eq!(r.stdout.trim(), "visible", "{}", r.stderr);
    assert!(r.stderr.contains("every user can write it"), "{}", r.stderr);

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    if !nix_is_root() {
        skip("chown to another user needs root");
        return;
    }
    let st = std::process::Command::new("chown")
        .args(["65534"])
        .arg(&file)
        .status()
        .unwrap();
    assert!(st.success());
    let r = fx.run(&["run", "--", "printenv", "MARKER"], &env);
    assert_eq!(r.stdout.trim(), "visible", "{}", r.stderr);
    assert!(r.stderr.contains("belongs to uid 65534"), "{}", r.stderr);
}

#[test]
fn a_project_file_may_add_restrictions_and_unknown_keys_only_warn() {
    let fx = Fixture::new();
    fx.project_file(
        "keyfence.toml",
        "[[profile]]\nname = \"default\"\ndorp = [\"MARKER\"]\nnet = \"none\"\n",
    );
    // net = "none": the command has no network, loopback included.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!("echo > /dev/tcp/127.0.0.1/{port} && echo connected || echo refused");
    let r = fx.run(
        &["run", "--", "bash", "-c", &script],
        &[("MARKER", "visible")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("refused"), "{} {}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("keyfence.toml:3: unknown key `dorp`")
            && r.stderr.contains("did you mean `drop`?"),
        "{}",
        r.stderr
    );
    // Control: without the file, the same command connects.
    std::fs::remove_file(fx.project.join("keyfence.toml")).unwrap();
    let r = fx.run(&["run", "--", "bash", "-c", &script], &[]);
    assert!(r.stdout.contains("connected"), "{} {}", r.stdout, r.stderr);
}
