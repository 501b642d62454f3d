//! With the real Claude Code CLI (npm `@anthropic-ai/claude-code`, installed by `.ci/run` into
//! `target/test-tools`), pointed at a loopback stub of the Messages API.

#[path = "common/claude_stub.rs"]
mod claude_stub;
mod common;

use claude_stub::Stub;
use common::*;
use std::path::PathBuf;
use std::process::Command;

fn claude_bin() -> PathBuf {
    let p = std::env::var_os("KEYFENCE_TEST_CLAUDE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/test-tools/node_modules/.bin/claude")
        });
    assert!(
        p.exists(),
        "Claude Code CLI not found at {}: run `npm install --prefix target/test-tools @anthropic-ai/claude-code` (.ci/run does)",
        p.display()
    );
    p
}

/// Runs `claude -p` with one Bash tool call against the stub, in a fresh home.
fn claude(fx: &Fixture, stub: &Stub, wrap: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = Command::new(
        wrap.first()
            .map_or(claude_bin().into_os_string(), |w| (*w).into()),
    );
    if !wrap.is_empty() {
        c.args(&wrap[1..]).arg(claude_bin());
    }
    c.args([
        "-p",
        "run the command",
        "--allowedTools",
        "Bash",
        "--output-format",
        "json",
    ])
    .current_dir(&fx.project)
    .env_clear()
    .env("PATH", std::env::var_os("PATH").unwrap_or_default())
    .env("HOME", &fx.home)
    .env("ANTHROPIC_BASE_URL", &stub.url)
    .env("DISABLE_AUTOUPDATER", "1")
    .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    .env("DISABLE_TELEMETRY", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run claude");
    Run::from(out)
}

/// What the Bash tool call reported back to the API (the tool_result of the second request).
fn tool_results(stub: &Stub) -> String {
    stub.messages()
        .iter()
        .filter(|r| r.body.contains("tool_result"))
        .map(|r| r.body.clone())
        .collect()
}

#[test]
fn baseline_an_exported_key_reaches_the_tool_call() {
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    let stub = Stub::start(
        "env | grep -c '^ANTHROPIC_API_KEY=sk-ant-' ; tr '\\0' '\\n' < /proc/$PPID/environ | grep -c ANTHROPIC_API_KEY",
    );
    let r = claude(&fx, &stub, &[], &[("ANTHROPIC_API_KEY", &key)]);
    let msgs = stub.messages();
    assert!(
        msgs.len() >= 2,
        "stub saw {} requests; claude said: {} {}",
        msgs.len(),
        r.stdout,
        r.stderr
    );
    assert_eq!(msgs[0].header("x-api-key"), Some(key.as_str()));
    let results = tool_results(&stub);
    // The problem keyfence exists for: the command run by the Bash tool sees the key.
    assert!(results.contains("1\\n1"), "{results}");
}

/// Stores `key` as ANTHROPIC_API_KEY in the fixture home's vault, through stdin.
fn store_key(fx: &Fixture, key: &str) {
    use std::io::Write;
    let mut c = Command::new(BIN)
        .args(["secret", "set", "ANTHROPIC_API_KEY"])
        .env_clear()
        .env("HOME", &fx.home)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(key.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the tool call checks: the key in its own environment, and in its ancestors'.
const LOOK_FOR_KEY: &str = "env | grep -c ANTHROPIC_API_KEY; for p in $PPID $(ps -o ppid= -p $PPID); do tr '\\0' '\\n' < /proc/$p/environ; done | grep -c sk-ant-api03; echo checked";

#[test]
fn api_key_helper_keeps_the_key_out_of_every_environment() {
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    store_key(&fx, &key);
    fx.home_file(
        ".claude/settings.json",
        &format!("{{\"apiKeyHelper\": \"{BIN} secret get ANTHROPIC_API_KEY\"}}"),
    );
    let stub = Stub::start(LOOK_FOR_KEY);
    let r = claude(&fx, &stub, &[], &[]);
    let msgs = stub.messages();
    assert!(
        msgs.len() >= 2,
        "stub saw {} requests: {} {}",
        msgs.len(),
        r.stdout,
        r.stderr
    );
    // The API got the stored key from the helper...
    assert!(
        msgs.iter()
            .all(|m| m.header("x-api-key") == Some(key.as_str())
                || m.header("authorization") == Some(format!("Bearer {key}").as_str())),
        "{:?}",
        msgs.iter().map(|m| &m.headers).collect::<Vec<_>>()
    );
    // ...and the tool call found it in no environment, and sent no key back.
    let results = tool_results(&stub);
    assert!(results.contains("0\\n0\\nchecked"), "{results}");
    assert!(!results.contains(&key));
}

#[test]
fn run_inject_gives_claude_the_stored_key() {
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    store_key(&fx, &key);
    let stub = Stub::start("echo hello from the tool");
    let r = claude(
        &fx,
        &stub,
        &[BIN, "run", "--inject", "ANTHROPIC_API_KEY", "--"],
        &[],
    );
    let msgs = stub.messages();
    assert!(
        msgs.len() >= 2,
        "stub saw {} requests: {} {}",
        msgs.len(),
        r.stdout,
        r.stderr
    );
    assert_eq!(msgs[0].header("x-api-key"), Some(key.as_str()));
    assert!(!r.stdout.contains(&key) && !r.stderr.contains(&key));
}
