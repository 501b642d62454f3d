//! The attack: a command an agent runs reads the keys Codex, Gemini CLI and Cursor keep in
//! their own files (`~/.codex/.env` and `~/.gemini/.env`, which the agents load into their
//! environment; Gemini's file keychain, whose key is derived from the host and user names;
//! Cursor's MCP definitions). Under the agent profile the descendant fence denies them, as it
//! does the other credential files audit knows, while the command itself keeps reading them.
//! Run as nobody: root passes Landlock's checks (DESIGN.md §5).

use crate::common::*;
use std::process::Command;

#[test]
fn the_fence_keeps_the_agents_own_files_from_what_the_agent_runs() {
    let mut fx = Fixture::outside_tmp();
    let codex = fx.key("openai");
    let gemini = fx.key("google");
    let keychain = fx.key("token");
    let cursor = fx.key("github");
    fx.home_file(".codex/.env", &format!("OPENAI_API_KEY={codex}\n"));
    fx.home_file(".gemini/.env", &format!("GEMINI_API_KEY={gemini}\n"));
    fx.home_file(
        ".gemini/gemini-credentials.json",
        &format!("{{\"data\": \"{keychain}\"}}\n"),
    );
    fx.home_file(
        ".cursor/mcp.json",
        &format!(
            "{{\"mcpServers\": {{\"gh\": {{\"env\": {{\"GITHUB_TOKEN\": \"{cursor}\"}}}}}}}}\n"
        ),
    );
    let keys = [&codex, &gemini, &keychain, &cursor];
    let loot = fx.project.join("loot");
    let files = "~/.codex/.env ~/.gemini/.env ~/.gemini/gemini-credentials.json ~/.cursor/mcp.json";
    // The command reads one of its own files (with the shell's own `read`: `grep` would be a
    // descendant), then starts a shell that tries them all.
    let script = format!(
        "read -r line < ~/.codex/.env; case \"$line\" in OPENAI_API_KEY=*) echo own-ok;; esac; \
         sh -c 'for f in {files}; do cat \"$f\"; done; echo done' > {} 2>&1",
        loot.display()
    );
    if !fx.hand_to_unprivileged() {
        skip("setpriv missing or not running as root (needed to drop to nobody)");
        return;
    }
    // Baseline, without keyfence: every file is read.
    let out = Command::new(AS_UNPRIVILEGED[0])
        .args(&AS_UNPRIVILEGED[1..])
        .args(["sh", "-c", &script])
        .current_dir(&fx.project)
        .env_clear()
        .env("HOME", &fx.home)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let open = std::fs::read_to_string(&loot).unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("own-ok"));
    for k in keys {
        assert!(open.contains(k.as_str()), "baseline: a file was not read");
    }
    std::fs::remove_file(&loot).unwrap();

    let r = fx
        .run_unprivileged(
            &["run", "--profile", "agent", "--", "sh", "-c", &script],
            &[("PATH", "/usr/bin:/bin")],
        )
        .unwrap();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("own-ok"),
        "the command keeps its files: {}",
        r.stdout
    );
    let fenced = std::fs::read_to_string(&loot).unwrap();
    assert!(fenced.contains("done"), "the probe ran to the end");
    for k in keys {
        assert!(
            !fenced.contains(k.as_str()),
            "a descendant read an agent's key file under the agent profile"
        );
    }
    assert_eq!(
        fenced.matches("Permission denied").count(),
        4,
        "each file refused: {}",
        fenced
            .lines()
            .filter(|l| !keys.iter().any(|k| l.contains(k.as_str())))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
