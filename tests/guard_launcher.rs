//! Issue #18: under guard, the agent behind a launcher (Codex's Node launcher starts the native
//! `codex` as a child) keeps the command's key and its own credential file, and what the
//! agent starts cannot get either by exec'ing a program of the same name. Stand-in scripts
//! play the launcher and the agent, so the attack is exact; tests/agent_fence_clis.rs runs
//! the real CLIs. The tree runs as nobody: root passes the kernel's ptrace checks.

mod common;

use common::*;

/// The launcher: starts the agent as a child (not an exec), as Codex's launcher does on Node
/// before 22.15.
const LAUNCHER: &str =
    "#!/bin/sh\n\"$(dirname \"$0\")/../native/codex\" \"$@\"\necho \"launcher done $?\"\n";

/// The agent, and the attacker its shell tool runs: the same program, so that the attacker's
/// exec names what the launcher's did.
const AGENT: &str = r#"#!/bin/sh
if [ "$1" = agent ]; then
  [ -n "$OPENAI_API_KEY" ] && echo "agent holds the key"
  read -r line < "$HOME/.codex/auth.json" && echo "agent reads its file"
  # What the agent starts runs the agent's program again, as the agent's own child, as the
  # launcher's child did.
  "$0" attack "$$"
else
  # Shell builtins only: what this process itself can read, not what a child of it can.
  echo "$OPENAI_API_KEY" > "$LOOT/attack-env"
  { while IFS= read -r l; do echo "$l"; done < "$HOME/.codex/auth.json"; } > "$LOOT/attack-file" 2>&1
  { while IFS= read -r l; do echo "$l"; done < "/proc/$2/environ"; } > "$LOOT/attack-agent" 2>&1
  echo "attacker ran"
fi
"#;

fn fixture() -> (Fixture, String, String) {
    let mut fx = Fixture::outside_tmp();
    let key = fx.key("openai");
    fx.store_secret("OPENAI_API_KEY", &key);
    let login = fx.key("openai");
    fx.home_file(
        ".codex/auth.json",
        &format!("{{\"OPENAI_API_KEY\": \"{login}\"}}\n"),
    );
    for (rel, text) in [("launcher/codex", LAUNCHER), ("native/codex", AGENT)] {
        use std::os::unix::fs::PermissionsExt;
        let p = fx.project_file(rel, text);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::create_dir_all(fx.project.join("loot")).unwrap();
    (fx, key, login)
}

fn run(fx: &Fixture, profile_args: &[&str]) -> Option<Run> {
    let launcher = fx.project.join("launcher/codex");
    let loot = fx.project.join("loot");
    let mut args = vec!["run"];
    args.extend(profile_args);
    args.extend(["--inject", "OPENAI_API_KEY", "--"]);
    args.push(launcher.to_str().unwrap());
    args.push("agent");
    fx.run_unprivileged(
        &args,
        &[("PATH", "/usr/bin:/bin"), ("LOOT", loot.to_str().unwrap())],
    )
}

#[test]
fn the_launched_agent_keeps_its_key_and_file_and_its_tool_cannot_become_it() {
    let (fx, key, login) = fixture();
    let Some(r) = run(&fx, &["--profile", "agent"]) else {
        skip("setpriv missing or not running as root (needed to drop to nobody)");
        return;
    };
    r.assert_no_secret(&fx.planted);
    assert!(
        r.stdout.contains("agent holds the key")
            && r.stdout.contains("agent reads its file")
            && r.stdout.contains("attacker ran")
            && r.stdout.contains("launcher done 0"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    for loot in ["attack-env", "attack-file", "attack-agent"] {
        let got = std::fs::read_to_string(fx.project.join("loot").join(loot)).unwrap();
        assert!(
            !got.contains(&key) && !got.contains(&login),
            "the agent's tool got a credential through {loot}, by exec'ing the agent's program"
        );
        if loot != "attack-env" {
            assert!(got.contains("Permission denied"), "{loot}: {got}");
        }
    }
}

/// The issue's failure, kept as the control: without the launcher rule (a user's profile
/// turns it off with `launches = ""`), the agent loses the key and its file, as Codex did
/// ("Missing environment variable: `OPENAI_API_KEY`").
#[test]
fn without_the_launcher_rule_the_agent_gets_nothing() {
    let (fx, _key, _login) = fixture();
    fx.home_file(
        ".config/keyfence/config.toml",
        "[[profile]]\nname = \"agent\"\nlaunches = \"\"\n",
    );
    let Some(r) = run(&fx, &["--profile", "agent"]) else {
        skip("setpriv missing or not running as root (needed to drop to nobody)");
        return;
    };
    r.assert_no_secret(&fx.planted);
    assert!(
        !r.stdout.contains("agent holds the key") && !r.stdout.contains("agent reads its file"),
        "{}{}",
        r.stdout,
        r.stderr
    );
}
