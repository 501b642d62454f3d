//! Issue #18: under guard, the agent behind a launcher keeps the command's key and its own
//! credential file, and what the agent starts cannot get either by exec'ing a program of the
//! same name. Stand-ins play the CLIs, so that each attack is exact (tests/it/guard/agent_fence_clis.rs
//! runs the real ones): a Node launcher that starts a native `codex` as a child (Codex on Node
//! 20), a `codex` that is the agent itself (Codex's launcher on a Node with `process.execve`
//! replaces itself), and a Node `gemini` that starts `node` again (Gemini CLI's relaunch), or
//! not when told so by GEMINI_CLI_NO_RELAUNCH. In each, the agent's child runs the agent's own
//! program (`codex`, `node`) and tries to read the key from its environment, the agent's
//! environ and the credential file, in its own process. The tree runs as nobody: root passes
//! the kernel's ptrace checks.

use crate::common::*;
use std::path::{Path, PathBuf};

/// Codex's launcher on Node 20: starts the native binary as a child.
const CODEX_LAUNCHER: &str = r#"#!/usr/bin/env node
const { spawnSync } = require("child_process");
const path = require("path");
const r = spawnSync(path.join(__dirname, "..", "native", "codex"), process.argv.slice(2), { stdio: "inherit" });
console.log("launcher done " + r.status);
"#;

/// The native `codex`, and the attacker its shell tool runs: the same program, so that the
/// attacker's exec names what the launcher's did.
const CODEX_AGENT: &str = r#"#!/bin/sh
if [ "$1" = agent ]; then
  [ -n "$OPENAI_API_KEY" ] && echo "agent holds the key"
  read -r line < "$HOME/.codex/auth.json" && echo "agent reads its file"
  # What the agent starts runs the agent's program again, as the agent's own child.
  "$0" attack "$$"
else
  # Shell builtins only: what this process itself can read, not what a child of it can.
  echo "$OPENAI_API_KEY" > "$LOOT/attack-env"
  { while IFS= read -r l; do echo "$l"; done < "$HOME/.codex/auth.json"; } > "$LOOT/attack-file" 2>&1
  { while IFS= read -r l; do echo "$l"; done < "/proc/$2/environ"; } > "$LOOT/attack-agent" 2>&1
  echo "attacker ran"
fi
"#;

/// Gemini CLI's shape: the first Node process starts `node` again with
/// GEMINI_CLI_NO_RELAUNCH set, which is the agent; told so from the start, it is the agent.
const GEMINI: &str = r#"#!/usr/bin/env node
const { spawnSync } = require("child_process");
const fs = require("fs");
if (!process.env.GEMINI_CLI_NO_RELAUNCH) {
  const env = { ...process.env, GEMINI_CLI_NO_RELAUNCH: "true" };
  const r = spawnSync(process.execPath, [__filename, ...process.argv.slice(2)], { stdio: "inherit", env });
  console.log("launcher done " + r.status);
} else {
  if (process.env.GEMINI_API_KEY) console.log("agent holds the key");
  try { fs.readFileSync(process.env.HOME + "/.gemini/oauth_creds.json"); console.log("agent reads its file"); } catch (e) {}
  // What the agent starts runs `node` again, as the agent's own child.
  const attack = `
    const fs = require("fs"), L = process.env.LOOT;
    const get = (f) => { try { return f(); } catch (e) { return String(e); } };
    fs.writeFileSync(L + "/attack-env", process.env.GEMINI_API_KEY || "");
    fs.writeFileSync(L + "/attack-file", get(() => fs.readFileSync(process.env.HOME + "/.gemini/oauth_creds.json", "utf8")));
    fs.writeFileSync(L + "/attack-agent", get(() => fs.readFileSync("/proc/${process.pid}/environ", "utf8")));
    console.log("attacker ran");`;
  spawnSync(process.execPath, ["-e", attack], { stdio: "inherit" });
}
"#;

struct Setup {
    fx: Fixture,
    /// The stored key, and the one in the agent's credential file.
    key: String,
    login: String,
}

fn node_missing() -> bool {
    if Path::new("/usr/bin/node").exists() {
        return false;
    }
    skip("needs node (the stand-in launchers are Node scripts, as the real ones are)");
    true
}

fn setup(var: &str, kind: &str, file: &str) -> Setup {
    let mut fx = Fixture::outside_tmp();
    let key = fx.key(kind);
    fx.store_secret(var, &key);
    let login = fx.key(kind);
    fx.home_file(file, &format!("{{\"token\": \"{login}\"}}\n"));
    for (rel, text) in [
        ("launcher/codex", CODEX_LAUNCHER),
        ("native/codex", CODEX_AGENT),
        ("gemini/gemini", GEMINI),
    ] {
        use std::os::unix::fs::PermissionsExt;
        let p = fx.project_file(rel, text);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::create_dir_all(fx.project.join("loot")).unwrap();
    Setup { fx, key, login }
}

/// `keyfence run --profile agent --inject VAR -- COMMAND agent` as nobody.
fn run(s: &Setup, var: &str, command: &str, env: &[(&str, &str)]) -> Option<Run> {
    let command: PathBuf = s.fx.project.join(command);
    let loot = s.fx.project.join("loot");
    let args = [
        "run",
        "--profile",
        "agent",
        "--inject",
        var,
        "--",
        command.to_str().unwrap(),
        "agent",
    ];
    let mut env = env.to_vec();
    env.extend([("PATH", "/usr/bin:/bin"), ("LOOT", loot.to_str().unwrap())]);
    let r = s.fx.run_unprivileged(&args, &env);
    if r.is_none() {
        skip("setpriv missing or not running as root (needed to drop to nobody)");
    }
    r
}

/// The agent held its key and read its file; its child, running the agent's program, got
/// neither, nor the agent's environ.
fn assert_agent_alone_holds(s: &Setup, r: &Run) {
    r.assert_no_secret(&s.fx.planted);
    assert!(
        r.stdout.contains("agent holds the key")
            && r.stdout.contains("agent reads its file")
            && r.stdout.contains("attacker ran"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    for loot in ["attack-env", "attack-file", "attack-agent"] {
        let got = std::fs::read_to_string(s.fx.project.join("loot").join(loot)).unwrap();
        assert!(
            !got.contains(&s.key) && !got.contains(&s.login),
            "the agent's child got a credential through {loot}, by exec'ing the agent's program"
        );
        if loot != "attack-env" {
            assert!(
                got.to_lowercase().contains("permission denied"),
                "{loot}: {got}"
            );
        }
    }
}

#[test]
fn codex_behind_its_node_launcher_keeps_its_key_and_file_and_its_tool_cannot_become_it() {
    if node_missing() {
        return;
    }
    let s = setup("OPENAI_API_KEY", "openai", ".codex/auth.json");
    let Some(r) = run(&s, "OPENAI_API_KEY", "launcher/codex", &[]) else {
        return;
    };
    assert_agent_alone_holds(&s, &r);
    assert!(r.stdout.contains("launcher done 0"), "{}", r.stdout);
}

/// Codex's launcher on a Node with `process.execve` replaces itself: the command is the
/// agent, and a `codex` it starts (its own sandbox helper is one) is no launcher's child.
#[test]
fn codex_that_replaced_its_launcher_gives_a_codex_it_starts_nothing() {
    let s = setup("OPENAI_API_KEY", "openai", ".codex/auth.json");
    let Some(r) = run(&s, "OPENAI_API_KEY", "native/codex", &[]) else {
        return;
    };
    assert_agent_alone_holds(&s, &r);
}

#[test]
fn gemini_relaunched_keeps_its_key_and_file_and_a_node_it_starts_gets_nothing() {
    if node_missing() {
        return;
    }
    let s = setup("GEMINI_API_KEY", "google", ".gemini/oauth_creds.json");
    let Some(r) = run(&s, "GEMINI_API_KEY", "gemini/gemini", &[]) else {
        return;
    };
    assert_agent_alone_holds(&s, &r);
    assert!(r.stdout.contains("launcher done 0"), "{}", r.stdout);
}

/// Told not to relaunch, Gemini CLI is the agent itself: the first `node` it starts (an MCP
/// server a project's settings name, a tool's `node -e`) is not its relaunch.
#[test]
fn gemini_told_not_to_relaunch_gives_a_node_it_starts_nothing() {
    if node_missing() {
        return;
    }
    let s = setup("GEMINI_API_KEY", "google", ".gemini/oauth_creds.json");
    let Some(r) = run(
        &s,
        "GEMINI_API_KEY",
        "gemini/gemini",
        &[("GEMINI_CLI_NO_RELAUNCH", "true")],
    ) else {
        return;
    };
    assert_agent_alone_holds(&s, &r);
}

/// The issue's failure, kept as the control: without the launcher rule (a user's profile
/// turns it off with `launches = ""`), the agent loses the key and its file, as Codex did
/// ("Missing environment variable: `OPENAI_API_KEY`").
#[test]
fn without_the_launcher_rule_the_agent_gets_nothing() {
    if node_missing() {
        return;
    }
    let s = setup("OPENAI_API_KEY", "openai", ".codex/auth.json");
    s.fx.home_file(
        ".config/keyfence/config.toml",
        "[[profile]]\nname = \"agent\"\nlaunches = \"\"\n",
    );
    let Some(r) = run(&s, "OPENAI_API_KEY", "launcher/codex", &[]) else {
        return;
    };
    r.assert_no_secret(&s.fx.planted);
    assert!(
        r.stdout.contains("launcher done")
            && !r.stdout.contains("agent holds the key")
            && !r.stdout.contains("agent reads its file"),
        "{}{}",
        r.stdout,
        r.stderr
    );
}

/// bubblewrap started by a command below the agent (not Codex's own sandbox chain, which
/// tests/it/guard/agent_sandbox.rs covers) cannot mount inside the fence: guard says so, and what
/// to do, instead of leaving "Failed to make / slave" a puzzle.
#[test]
fn guard_says_why_bubblewrap_fails_below_the_command() {
    let bwrap = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(
        "target/test-tools/node_modules/@openai/codex-linux-x64/vendor/\
         x86_64-unknown-linux-musl/codex-resources/bwrap",
    );
    if !bwrap.exists() {
        skip("needs Codex CLI's bundled bwrap (scripts/test-all installs Codex)");
        return;
    }
    let s = setup("OPENAI_API_KEY", "openai", ".codex/auth.json");
    // The control: as nobody, outside keyfence, it works.
    let plain = std::process::Command::new(AS_UNPRIVILEGED[0])
        .args(&AS_UNPRIVILEGED[1..])
        .arg(&bwrap)
        .args(["--ro-bind", "/", "/", "true"])
        .status();
    if !plain.as_ref().is_ok_and(|st| st.success()) {
        skip(&format!(
            "bwrap does not work as nobody here ({plain:?}): no user namespaces?"
        ));
        return;
    }
    let script = format!(
        "{} --ro-bind / / true; echo \"bwrap exit $?\"",
        bwrap.display()
    );
    let Some(r) = s.fx.run_unprivileged(
        &[
            "run",
            "--guard",
            "--inject",
            "OPENAI_API_KEY",
            "--",
            "sh",
            "-c",
            &script,
        ],
        &[("PATH", "/usr/bin:/bin")],
    ) else {
        skip("setpriv missing or not running as root (needed to drop to nobody)");
        return;
    };
    assert!(
        !r.stdout.contains("bwrap exit 0") && r.stdout.contains("bwrap exit"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stderr
            .contains("cannot set up its sandbox inside a guarded tree")
            && r.stderr.contains("only Codex CLI's own sandbox"),
        "{}",
        r.stderr
    );
}
