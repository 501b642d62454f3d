//! `keyfence shell-init`: real bash runs package managers through `keyfence run`, and the
//! profile follows the command line: an install gets the `install` sandbox, a test run only the
//! scrub.

use crate::common::*;
use std::process::Command;

#[test]
fn bash_functions_route_installs_through_the_install_profile() {
    let mut fx = Fixture::outside_tmp();
    let key = fx.key("anthropic");
    let aws = fx.key("aws-secret");
    fx.home_file(
        ".aws/credentials",
        &format!("[default]\naws_secret_access_key = {aws}\n"),
    );
    // A stand-in npm that reports what it can reach.
    let bin = fx.dir.path().join("bin");
    let npm = bin.join("npm");
    fx.script(
        &npm,
        "#!/bin/sh\necho \"npm $1: key=${ANTHROPIC_API_KEY:-none}\"\nif cat ~/.aws/credentials >/dev/null 2>&1; then echo \"npm $1: credentials readable\"; else echo \"npm $1: credentials denied\"; fi\n",
    );

    let init = fx.run(&["shell-init", "bash"], &[]);
    assert_eq!(init.code, 0, "{}", init.stderr);
    for p in [
        "npm() {", "npx() {", "pnpm() {", "pip() {", "uv() {", "bun() {", "yarn() {",
    ] {
        assert!(init.stdout.contains(p), "{p} missing:\n{}", init.stdout);
    }
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let out = Command::new("bash")
        .args([
            "--norc",
            "-c",
            "eval \"$(\"$KF\" shell-init bash)\"; npm install left-pad; npm test",
        ])
        .current_dir(&fx.project)
        .env_clear()
        .env("KF", BIN)
        .env("HOME", &fx.home)
        .env("PATH", &path)
        .env("ANTHROPIC_API_KEY", &key)
        .output()
        .unwrap();
    let r = Run::from(out);
    r.assert_no_secret(&fx.planted);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("npm install: key=none"), "{}", r.stdout);
    assert!(
        r.stdout.contains("npm install: credentials denied"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("npm test: key=none"), "{}", r.stdout);
    // `npm test` matches no install pattern: the default profile, which only scrubs.
    assert!(
        r.stdout.contains("npm test: credentials readable"),
        "{}",
        r.stdout
    );
}

#[test]
fn fish_and_zsh_scripts_define_the_same_functions() {
    let fx = Fixture::new();
    let fish = fx.run(&["shell-init", "fish"], &[]);
    assert!(
        fish.stdout.contains("function npm --wraps npm;"),
        "{}",
        fish.stdout
    );
    assert!(
        fish.stdout.contains(" run -- npm $argv; end"),
        "{}",
        fish.stdout
    );
    let zsh = fx.run(&["shell-init", "zsh"], &[]);
    assert!(zsh.stdout.contains("npm() {"), "{}", zsh.stdout);
    // An agent's function names the agent profile: a user's profile whose `match` fits
    // `claude ...` must not take the guard away.
    let bash = fx.run(&["shell-init", "bash"], &[]);
    assert!(
        bash.stdout.contains(&format!(
            "claude() {{ '{BIN}' run --profile agent -- claude \"$@\"; }}"
        )),
        "{}",
        bash.stdout
    );
    assert!(
        fish.stdout
            .contains(" run --profile agent -- claude $argv; end"),
        "{}",
        fish.stdout
    );
    let bad = fx.run(&["shell-init", "tcsh"], &[]);
    assert_eq!(bad.code, 2);
}

/// Issue #14: `npm i *` needed an argument, so a bare `npm i` (and `pnpm i`, `bun i`) ran with
/// the key and the credential files in reach, through shell-init and `keyfence run` alike.
#[test]
fn bare_install_commands_get_the_install_profile() {
    let mut fx = Fixture::outside_tmp();
    let key = fx.key("anthropic");
    let npm_token = fx.key("npm");
    fx.home_file(
        ".npmrc",
        &format!("//registry.npmjs.org/:_authToken={npm_token}\n"),
    );
    let bin = fx.dir.path().join("bin");
    for name in ["npm", "pnpm", "bun", "yarn"] {
        let p = bin.join(name);
        fx.script(
            &p,
            &format!(
                "#!/bin/sh\nif cat ~/.npmrc >/dev/null 2>&1; then r=readable; else r=denied; fi\n\
                 echo \"{name}${{*:+ $*}}: key=${{ANTHROPIC_API_KEY:-none}} npmrc=$r\"\n"
            ),
        );
    }
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let forms = [
        "npm i",
        "npm install",
        "npm ci",
        "npm it",
        "pnpm i",
        "pnpm install",
        "bun i",
        "yarn",
        // Options before the subcommand: read as the Claude Code hook reads them.
        "npm --prefix web install",
        "pnpm -C web i",
    ];
    let script = format!("eval \"$(\"$KF\" shell-init bash)\"; {}", forms.join("; "));
    let out = Command::new("bash")
        .args(["--norc", "-c", &script])
        .current_dir(&fx.project)
        .env_clear()
        .env("KF", BIN)
        .env("HOME", &fx.home)
        .env("PATH", &path)
        .env("ANTHROPIC_API_KEY", &key)
        .output()
        .unwrap();
    let r = Run::from(out);
    r.assert_no_secret(&fx.planted);
    for form in forms {
        let line = format!("{form}: key=none npmrc=denied");
        assert!(
            r.stdout.contains(&line),
            "{line}:\n{}{}",
            r.stdout,
            r.stderr
        );
    }
    // A script handed to a shell is read the same way.
    let r = fx.run(
        &["run", "--", "bash", "-c", "mkdir -p web && cd web && npm i"],
        &[("PATH", &path), ("ANTHROPIC_API_KEY", &key)],
    );
    assert!(
        r.stdout.contains("npm i: key=none npmrc=denied"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    // `keyfence run` picks the same profile from the bare command line.
    for form in forms {
        let mut args = vec!["run", "--"];
        args.extend(form.split(' '));
        let r = fx.run(&args, &[("PATH", &path), ("ANTHROPIC_API_KEY", &key)]);
        assert!(
            r.stdout.contains(&format!("{form}: key=none npmrc=denied")),
            "{form}: {}{}",
            r.stdout,
            r.stderr
        );
    }
}
