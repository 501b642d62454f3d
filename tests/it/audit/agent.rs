//! The `agent` and `proc` audit sources for Codex CLI, Gemini CLI and Cursor: keys in their MCP
//! `env` blocks and `.env` files, a Codex `shell_environment_policy` that passes secrets (checked
//! against what the real Codex CLI passes), Gemini's redaction off while keys are exported, a
//! policy pinned where Codex does not read it, and an agent run by `node` outside keyfence.
//! Each with a control in which the finding goes; no raw value is printed.

use super::{audit_json, expect};
use crate::common::chatgpt_auth;
use crate::common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn audit(fx: &Fixture, only: &str, env: &[(&str, &str)]) -> Run {
    let run = fx.run(&["audit", "--format", "json", "--only", only], env);
    assert!(
        run.code == 0 || run.code == 1,
        "exit {}: {}",
        run.code,
        run.stderr
    );
    run
}

fn rule<'a>(findings: &'a [Value], rule: &str) -> Vec<&'a Value> {
    findings.iter().filter(|f| f["rule"] == rule).collect()
}

/// The real Codex CLI, when installed (by scripts/test-all under target/test-tools, or by hand
/// under target/agent-cli).
fn codex_bin() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let found = std::env::var_os("KEYFENCE_TEST_CODEX")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            root.join("target/test-tools/node_modules/.bin/codex"),
            root.join("target/agent-cli/node_modules/.bin/codex"),
        ])
        .find(|p| p.exists());
    if found.is_none() {
        skip(
            "the Codex CLI is not installed: npm install --prefix target/test-tools \
             @openai/codex@0.171.0",
        );
    }
    found
}

/// The names among `vars` that `codex sandbox -- env` (which applies the configured
/// shell_environment_policy) hands to the command, with HOME set to the fixture's.
fn codex_passes(codex: &PathBuf, fx: &Fixture, vars: &[(&str, String)]) -> Vec<String> {
    let mut c = Command::new(codex);
    c.args(["sandbox", "--", "env"])
        .current_dir(&fx.project)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &fx.home);
    for (k, v) in vars {
        c.env(k, v);
    }
    let out = c.output().expect("codex sandbox");
    assert!(
        out.status.success(),
        "codex sandbox failed: {}",
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let env = String::from_utf8_lossy(&out.stdout);
    vars.iter()
        .filter(|(k, v)| env.lines().any(|l| l == format!("{k}={v}")))
        .map(|(k, _)| k.to_string())
        .collect()
}

/// What audit says the policy passes: the exported names its finding names (none without one).
fn audit_passes(fx: &Fixture, vars: &[(&str, String)]) -> Vec<String> {
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = audit(fx, "agent", &env);
    let findings = run.findings();
    let f = rule(&findings, "codex-env-policy-passes-secrets");
    let Some(f) = f.first() else {
        return Vec::new();
    };
    let message = f["message"].as_str().unwrap();
    vars.iter()
        .filter(|(k, _)| message.contains(k))
        .map(|(k, _)| k.to_string())
        .collect()
}

/// For each policy, `audit` names exactly the exported secrets the real Codex hands to the
/// commands it runs: the default (everything), `inherit = "core"`, the default excludes alone
/// (which miss a database URL and a password), `filters`, a trusted project's layer that widens
/// the user's, and the policy `setup codex` writes.
#[test]
fn codex_policy_audit_agrees_with_the_real_codex() {
    let Some(codex) = codex_bin() else { return };
    let mut fx = Fixture::new();
    let vars = vec![
        ("OPENAI_API_KEY", fx.key("openai")),
        ("GH_TOKEN", fx.key("github")),
        (
            "DATABASE_URL",
            format!(
                "postgres://app:{}@db.internal/app",
                random_from("abcdefghjkmnpqrstuvwxyz23456789", 20)
            ),
        ),
        ("SERVICE_PASSWORD", fx.key("password")),
    ];
    fx.planted.push(vars[2].1.clone());
    let all: Vec<String> = vars.iter().map(|(k, _)| k.to_string()).collect();
    let codex_dir = fx.home.join(".codex");
    std::fs::create_dir_all(&codex_dir).unwrap();
    let project = fx.project.display().to_string();
    let trusted = format!("\n[projects.\"{project}\"]\ntrust_level = \"trusted\"\n");
    let cases: Vec<(&str, String, Option<&str>, Vec<&str>)> = vec![
        ("no policy", String::new(), None, vec!["OPENAI_API_KEY", "GH_TOKEN", "DATABASE_URL", "SERVICE_PASSWORD"]),
        ("core", "[shell_environment_policy]\ninherit = \"core\"\n".into(), None, vec![]),
        (
            "default excludes",
            "[shell_environment_policy]\nignore_default_excludes = false\n".into(),
            None,
            vec!["DATABASE_URL", "SERVICE_PASSWORD"],
        ),
        (
            "filters",
            "[shell_environment_policy.filters]\n\"OPENAI*\" = \"exclude\"\n".into(),
            None,
            vec!["GH_TOKEN", "DATABASE_URL", "SERVICE_PASSWORD"],
        ),
        (
            "a trusted project widens it",
            format!("[shell_environment_policy]\ninherit = \"core\"\n{trusted}"),
            Some("[shell_environment_policy]\ninherit = \"all\"\n"),
            vec!["OPENAI_API_KEY", "GH_TOKEN", "DATABASE_URL", "SERVICE_PASSWORD"],
        ),
        (
            "setup's policy",
            "[shell_environment_policy]\ninherit = \"all\"\nignore_default_excludes = false\n\
             exclude = [\"*PASSWORD*\", \"*PASSWD*\", \"*CREDENTIAL*\", \"*DATABASE_URL*\", \"*_DSN\"]\n"
                .into(),
            None,
            vec![],
        ),
    ];
    for (what, user, project_layer, expected) in cases {
        std::fs::write(codex_dir.join("config.toml"), &user).unwrap();
        let project_file = fx.project.join(".codex/config.toml");
        match project_layer {
            Some(t) => fx.write(&project_file, t),
            None => {
                let _ = std::fs::remove_file(&project_file);
            }
        }
        let mut real = codex_passes(&codex, &fx, &vars);
        real.sort();
        let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(real, expected, "{what}: the real Codex (of {all:?})");
        let mut said = audit_passes(&fx, &vars);
        said.sort();
        assert_eq!(said, real, "{what}: audit against the real Codex");
    }
}

/// Keys in Gemini CLI's and Cursor's MCP `env` (user and project, comments allowed), in the
/// `.env` files Codex and Gemini load, and Codex policies in the administrator's files:
/// reported at their line with a concrete fix; the controls go quiet.
#[test]
fn agent_source_reads_gemini_cursor_and_codex_files() {
    let mut fx = Fixture::new();
    let gh = fx.key("github");
    let slack = fx.key("slack");
    let stripe = fx.key("stripe");
    let tracked = fx.key("github");
    let gemini_key = fx.key("google");
    let openai = fx.key("openai");
    let exported = fx.key("openai");
    fx.git(&["init", "-q"]);
    fx.home_file(
        ".gemini/settings.json",
        &format!(
            "// Gemini CLI strips comments\n{{\n  \"general\": {{}},\n  /* servers */\n  \"mcpServers\": {{\"gh\": {{\"command\": \"gh-mcp\", \"env\": {{\n    \"GITHUB_TOKEN\": \"{gh}\"}}}}}}\n}}\n"
        ),
    );
    fx.project_file(
        ".gemini/settings.json",
        &format!(
            "{{\"mcpServers\": {{\"s\": {{\"env\": {{\"SLACK_BOT_TOKEN\": \"{slack}\"}}}}}}}}\n"
        ),
    );
    fx.home_file(
        ".cursor/mcp.json",
        &format!("{{\n  \"mcpServers\": {{\n    \"pay\": {{\n      \"command\": \"stripe-mcp\",\n      \"env\": {{\"STRIPE_API_KEY\": \"{stripe}\"}}\n    }}\n  }}\n}}\n"),
    );
    fx.project_file(
        ".cursor/mcp.json",
        &format!(
            "{{\"mcpServers\": {{\"gh\": {{\n\"env\": {{\"GITHUB_TOKEN\": \"{tracked}\"}}}}}}}}\n"
        ),
    );
    fx.git(&["add", ".cursor/mcp.json"]);
    fx.home_file(
        ".gemini/.env",
        &format!("# mine\nGEMINI_API_KEY={gemini_key}\n"),
    );
    fx.home_file(".codex/.env", &format!("OPENAI_API_KEY={openai}\n"));
    fx.write(
        &fx.etc.join("codex/requirements.toml"),
        "allowed_sandbox_modes = [\"read-only\"]\n\n[shell_environment_policy]\ninherit = \"core\"\n",
    );
    fx.home_file(".codex/config.toml", "model = \"o4\"\n");
    let run = audit(&fx, "agent", &[("OPENAI_API_KEY", &exported)]);
    let f = run.findings();
    let gh_f = expect(
        &f,
        "github-token",
        "home/.gemini/settings.json",
        6,
        "medium",
    );
    assert!(
        gh_f["message"].as_str().unwrap().contains("MCP server"),
        "{gh_f}"
    );
    expect(&f, "slack-token", ".gemini/settings.json", 1, "high");
    let cursor = expect(&f, "stripe-live-key", "home/.cursor/mcp.json", 5, "medium");
    assert!(
        cursor["fix"]
            .as_str()
            .unwrap()
            .contains("keyfence setup cursor"),
        "{cursor}"
    );
    expect(&f, "github-token", ".cursor/mcp.json", 2, "critical");
    let env_f = expect(&f, "google-api-key", "home/.gemini/.env", 2, "high");
    assert!(
        env_f["fix"]
            .as_str()
            .unwrap()
            .contains("keyfence setup gemini"),
        "{env_f}"
    );
    expect(&f, "openai-api-key", "home/.codex/.env", 1, "high");
    expect(
        &f,
        "codex-requirements-policy-ignored",
        "etc/codex/requirements.toml",
        3,
        "medium",
    );
    let policy = expect(
        &f,
        "codex-env-policy-passes-secrets",
        "home/.codex/config.toml",
        1,
        "high",
    );
    assert!(
        policy["message"]
            .as_str()
            .unwrap()
            .contains("OPENAI_API_KEY exported now"),
        "{policy}"
    );
    let redaction = expect(
        &f,
        "gemini-env-redaction-off",
        "home/.gemini/settings.json",
        1,
        "high",
    );
    assert!(
        redaction["message"]
            .as_str()
            .unwrap()
            .contains("OPENAI_API_KEY")
            && redaction["fix"]
                .as_str()
                .unwrap()
                .contains("keyfence setup gemini"),
        "{redaction}"
    );

    // Controls: the administrator pins the policy where Codex reads it; redaction on; the keys
    // out of the files.
    std::fs::rename(
        fx.etc.join("codex/requirements.toml"),
        fx.etc.join("codex/managed_config.toml"),
    )
    .unwrap();
    fx.home_file(
        ".gemini/settings.json",
        "{\"security\": {\"environmentVariableRedaction\": {\"enabled\": true}}}\n",
    );
    std::fs::remove_file(fx.home.join(".gemini/.env")).unwrap();
    std::fs::remove_file(fx.home.join(".codex/.env")).unwrap();
    fx.home_file(".cursor/mcp.json", "{\"mcpServers\": {}}\n");
    let run = audit(&fx, "agent", &[("OPENAI_API_KEY", &exported)]);
    let f = run.findings();
    for r in [
        "codex-requirements-policy-ignored",
        "codex-env-policy-passes-secrets",
        "gemini-env-redaction-off",
        "stripe-live-key",
        "google-api-key",
        "openai-api-key",
    ] {
        assert!(rule(&f, r).is_empty(), "{r} still reported: {f:?}");
    }
}

/// A project's `.codex/config.toml` that widens the policy: medium while the project is not
/// trusted (it takes effect once it is), high when it is; a malformed file is an error with its
/// line and column, not a crash.
#[test]
fn a_projects_codex_policy_counts_once_trusted() {
    let mut fx = Fixture::new();
    let key = fx.key("openai");
    fx.home_file(
        ".codex/config.toml",
        "[shell_environment_policy]\ninherit = \"core\"\n",
    );
    fx.project_file(
        ".codex/config.toml",
        "# from the repository\n[shell_environment_policy]\ninherit = \"all\"\n",
    );
    let f = audit(&fx, "agent", &[("OPENAI_API_KEY", &key)]).findings();
    let p = expect(
        &f,
        "codex-env-policy-passes-secrets",
        ".codex/config.toml",
        2,
        "medium",
    );
    assert!(
        p["message"]
            .as_str()
            .unwrap()
            .contains("once you trust the project"),
        "{p}"
    );
    assert!(
        find_at(
            &f,
            "codex-env-policy-passes-secrets",
            "home/.codex/config.toml",
            2
        )
        .is_none()
    );
    fx.home_file(
        ".codex/config.toml",
        &format!(
            "[shell_environment_policy]\ninherit = \"core\"\n\n[projects.\"{}\"]\ntrust_level = \"trusted\"\n",
            fx.project.display()
        ),
    );
    let f = audit(&fx, "agent", &[("OPENAI_API_KEY", &key)]).findings();
    expect(
        &f,
        "codex-env-policy-passes-secrets",
        ".codex/config.toml",
        2,
        "high",
    );

    fx.project_file(
        ".codex/config.toml",
        "[shell_environment_policy\ninherit = 1\n",
    );
    let run = audit(&fx, "agent", &[]);
    let errors = run.json()["errors"].as_array().cloned().unwrap_or_default();
    assert!(
        errors.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("malformed TOML at line 1 column"))),
        "{errors:?}"
    );
    fx.home_file(".gemini/settings.json", "{\n  \"mcpServers\": {,}\n}\n");
    let run = audit(&fx, "agent", &[]);
    let errors = run.json()["errors"].as_array().cloned().unwrap_or_default();
    assert!(
        errors.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("malformed JSON at line 2 column"))),
        "{errors:?}"
    );
}

/// A Gemini CLI run by `node` (as npm installs it), which relaunches itself in a second node,
/// outside keyfence: one `agent-outside-keyfence` finding, for the first; a node running
/// another script is not one.
#[test]
fn audit_reports_gemini_run_by_node_outside_keyfence() {
    if Command::new("node").arg("--version").output().is_err() {
        skip("node is not installed");
        return;
    }
    let fx = Fixture::new();
    let dir = fx.dir.path().join("lib/@google/gemini-cli/bundle");
    // The stand-in relaunches itself once, as Gemini CLI does, then waits.
    let script = dir.join("gemini.js");
    fx.write(
        &script,
        "const { spawn } = require('child_process');\n\
         if (!process.env.RELAUNCHED) {\n\
           spawn(process.execPath, [__filename], { env: { ...process.env, RELAUNCHED: '1' }, stdio: 'inherit' });\n\
         }\n\
         setTimeout(() => {}, 60000);\n",
    );
    let other = fx.dir.path().join("server.js");
    fx.write(&other, "setTimeout(() => {}, 60000);\n");
    let mut gemini = Command::new("node").arg(&script).spawn().unwrap();
    let mut server = Command::new("node").arg(&other).spawn().unwrap();
    // Wait for the relaunched child.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let child = loop {
        let out = Command::new("pgrep")
            .args(["-P", &gemini.id().to_string()])
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !s.is_empty() {
            break s.parse::<u32>().unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "no relaunched child");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let run = audit(&fx, "proc", &[]);
    let _ = gemini.kill();
    let _ = server.kill();
    let _ = Command::new("kill").arg(child.to_string()).status();
    let _ = gemini.wait();
    let _ = server.wait();
    let f = run.findings();
    let ours: Vec<&Value> = rule(&f, "agent-outside-keyfence")
        .into_iter()
        .filter(|x| {
            [gemini.id(), child, server.id()]
                .iter()
                .any(|p| x["location"]["pid"] == *p)
        })
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(ours[0]["location"]["pid"], gemini.id());
    assert_eq!(ours[0]["location"]["comm"], "node");
    let message = ours[0]["message"].as_str().unwrap();
    assert!(message.starts_with("gemini (node "), "{message}");
    assert!(
        ours[0]["fix"]
            .as_str()
            .unwrap()
            .contains("keyfence setup gemini"),
        "{}",
        ours[0]
    );
}

/// With Gemini CLI's redaction on, `audit` names the exported secrets it still lets through to
/// the shell tool: checked against `shouldRedactEnvironmentVariable` taken from the installed
/// bundle and run by node, on keys whose names match its patterns, whose values do (a Stripe
/// key under an innocent name, a GitHub token under an allowed name), and keys it misses (an
/// Anthropic key or a Postgres URL under an innocent name).
#[test]
fn gemini_redaction_model_agrees_with_the_bundle() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let Some(bin) = [
        root.join("target/test-tools/node_modules/.bin/gemini"),
        root.join("target/agent-cli/node_modules/.bin/gemini"),
    ]
    .into_iter()
    .find(|p| p.exists()) else {
        skip(
            "Gemini CLI is not installed: npm install --prefix target/test-tools @google/gemini-cli@0.61.0",
        );
        return;
    };
    let bundle = bin.canonicalize().unwrap().parent().unwrap().to_path_buf();
    let chunk = std::fs::read_dir(&bundle)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.extension().is_some_and(|x| x == "js")
                && std::fs::read_to_string(p)
                    .is_ok_and(|t| t.contains("function shouldRedactEnvironmentVariable("))
        })
        .expect("the bundle's redaction function");
    let mut fx = Fixture::new();
    let vars: Vec<(&str, String)> = vec![
        ("OPENAI_API_KEY", fx.key("openai")),
        ("STRIPE", fx.key("stripe")),
        ("ALLOWED_GH_TOKEN", fx.key("github")),
        ("ALLOWED_SVC_TOKEN", fx.key("token")),
        ("MY_SVC", fx.key("anthropic")),
        ("OTHER_SVC", fx.key("anthropic")),
        ("HF", fx.key("huggingface")),
        (
            "PG",
            format!(
                "postgres://app:{}@db/app",
                random_from("abcdefghjkmnpqrstuvwxyz23456789", 20)
            ),
        ),
        (
            "DATABASE_URL",
            format!(
                "postgres://app:{}@db/app",
                random_from("abcdefghjkmnpqrstuvwxyz23456789", 20)
            ),
        ),
    ];
    for (_, v) in &vars[7..] {
        fx.planted.push(v.clone());
    }
    let allowed = ["ALLOWED_GH_TOKEN", "ALLOWED_SVC_TOKEN"];
    let blocked = ["MY_SVC"];
    // The bundle's own function, on the same names and values; it prints one verdict per line.
    let script = format!(
        "const fs = require('fs');\n\
         const src = fs.readFileSync({chunk:?}, 'utf8');\n\
         const a = src.indexOf('var ALWAYS_ALLOWED_ENVIRONMENT_VARIABLES');\n\
         const b = src.indexOf('function getSecureSanitizationConfig');\n\
         const f = new Function(src.slice(a, b) + '; return shouldRedactEnvironmentVariable;')();\n\
         const input = JSON.parse(fs.readFileSync(0, 'utf8'));\n\
         const allowed = new Set({allowed:?}), blocked = new Set({blocked:?});\n\
         for (const [k, v] of input) console.log(f(k, v, allowed, blocked, false) ? 'redacted' : 'passes');\n"
    );
    let mut node = Command::new("node")
        .args(["-e", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node");
    {
        use std::io::Write;
        let json = serde_json::to_string(&vars).unwrap();
        node.stdin
            .take()
            .unwrap()
            .write_all(json.as_bytes())
            .unwrap();
    }
    let out = node.wait_with_output().unwrap();
    assert!(out.status.success(), "node failed");
    let verdicts: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(verdicts.len(), vars.len());
    let mut bundle_passes: Vec<&str> = vars
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| *v == "passes")
        .map(|((k, _), _)| *k)
        .collect();
    bundle_passes.sort();
    assert_eq!(
        bundle_passes,
        ["ALLOWED_SVC_TOKEN", "HF", "OTHER_SVC", "PG"],
        "the bundle's verdicts"
    );

    fx.home_file(
        ".gemini/settings.json",
        &format!(
            "{{\"security\": {{\"environmentVariableRedaction\": {{\"enabled\": true, \"allowed\": {allowed:?}, \"blocked\": {blocked:?}}}}}}}\n"
        ),
    );
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let f = audit(&fx, "agent", &env).findings();
    let r = rule(&f, "gemini-env-redaction-off");
    assert_eq!(r.len(), 1, "{f:?}");
    assert_eq!(r[0]["severity"], "medium");
    let message = r[0]["message"].as_str().unwrap();
    let list = message
        .split("lets ")
        .nth(1)
        .and_then(|m| m.split(" through").next())
        .unwrap();
    let mut said: Vec<&str> = list.split(", ").collect();
    said.sort();
    assert_eq!(said, bundle_passes, "{message}");
}

/// Codex's and Gemini CLI's login files, in the shapes the CLIs write, readable by every user:
/// `credential-file-permissions` with `chmod 600` as the fix; at 0600, not.
#[test]
fn agent_login_files_readable_by_others_are_reported() {
    use std::os::unix::fs::PermissionsExt;
    let mut fx = Fixture::new();
    let refresh = fx.key("token");
    let access = fx.key("token");
    let codex = fx.home_file(
        ".codex/auth.json",
        &format!(
            "{{\n  \"OPENAI_API_KEY\": null,\n  \"tokens\": {{\n    \"access_token\": \"{access}\",\n    \"refresh_token\": \"{refresh}\",\n    \"account_id\": \"acc\"\n  }},\n  \"last_refresh\": \"2026-12-01T00:00:00Z\"\n}}\n"
        ),
    );
    let g_access = fx.key("token");
    let g_refresh = fx.key("token");
    let gemini = fx.home_file(
        ".gemini/oauth_creds.json",
        &format!(
            "{{\"access_token\": \"ya29.{g_access}\", \"refresh_token\": \"1//{g_refresh}\", \"token_type\": \"Bearer\", \"expiry_date\": 1764547200000}}\n"
        ),
    );
    fx.planted.push(format!("ya29.{g_access}"));
    for (f, mode) in [(&codex, 0o644), (&gemini, 0o640)] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let found = |fx: &Fixture| {
        audit(fx, "credfile", &[])
            .findings()
            .into_iter()
            .filter(|f| f["rule"] == "credential-file-permissions")
            .collect::<Vec<_>>()
    };
    let f = found(&fx);
    expect(
        &f,
        "credential-file-permissions",
        ".codex/auth.json",
        1,
        "high",
    );
    let g = expect(
        &f,
        "credential-file-permissions",
        ".gemini/oauth_creds.json",
        1,
        "high",
    );
    assert!(g["fix"].as_str().unwrap().starts_with("chmod 600 "), "{g}");
    for f in [&codex, &gemini] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    assert!(found(&fx).is_empty());
}

/// Codex logged in with ChatGPT (`auth_mode` "chatgpt"): auth.json holds OAuth tokens, not an
/// API key. audit knows each for a credential: readable by others, the file is reported;
/// at 0600, each token is reported where it is stored, by fingerprint, never by value.
#[test]
fn a_codex_chatgpt_login_is_a_credential_file() {
    use std::os::unix::fs::PermissionsExt;
    let mut fx = Fixture::new();
    let (file, tokens, _) = chatgpt_auth::chatgpt_auth();
    let path = fx.home_file(".codex/auth.json", &file);
    for (_, v) in &tokens {
        fx.planted.push(v.clone());
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = audit(&fx, "credfile", &[]);
    run.assert_no_secret(&fx.planted);
    let f = run.findings();
    expect(
        &f,
        "credential-file-permissions",
        ".codex/auth.json",
        1,
        "high",
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = audit(&fx, "credfile", &[]);
    run.assert_no_secret(&fx.planted);
    let f = run.findings();
    assert!(rule(&f, "credential-file-permissions").is_empty());
    let text = std::fs::read_to_string(&path).unwrap();
    for (what, v) in &tokens {
        let line = text[..text.find(v.as_str()).unwrap()].lines().count() as u64;
        let at = f.iter().find(|x| {
            x["location"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with(".codex/auth.json"))
                && x["location"]["line"] == line
        });
        assert!(
            at.is_some_and(|x| x["secret"]["fingerprint"] == sha12(v)),
            "{what} at line {line} is not reported: {}",
            serde_json::to_string_pretty(&f).unwrap()
        );
    }
}

#[test]
fn agent_source_reads_claude_and_codex_settings() {
    let mut fx = Fixture::new();
    let in_settings = fx.key("anthropic");
    let in_mcp = fx.key("github");
    let in_user_mcp = fx.key("token");
    let env_key = fx.key("anthropic");
    fx.git(&["init", "-q"]);
    fx.project_file(
        ".claude/settings.json",
        &format!("{{\n  \"permissions\": {{}},\n  \"env\": {{\n    \"ANTHROPIC_API_KEY\": \"{in_settings}\",\n    \"DEBUG\": \"1\"\n  }}\n}}\n"),
    );
    fx.git(&["add", ".claude/settings.json"]);
    fx.project_file(
        ".mcp.json",
        &format!("{{\"mcpServers\": {{\"gh\": {{\"command\": \"gh-mcp\",\n \"env\": {{\"GITHUB_TOKEN\": \"{in_mcp}\"}}}}}}}}\n"),
    );
    fx.home_file(
        ".claude.json",
        &format!("{{\"projects\": {{\"/x\": {{\"mcpServers\": {{\"s\": {{\"env\": {{\n\"SVC_API_KEY\": \"{in_user_mcp}\"}}}}}}}}}}}}"),
    );
    fx.home_file(
        ".codex/config.toml",
        "model = \"o4\"\n\n[shell_environment_policy]\ninherit = \"all\"\n",
    );
    let f = audit_json(&fx, "agent", &[("ANTHROPIC_API_KEY", &env_key)]);
    expect(
        &f,
        "anthropic-api-key",
        ".claude/settings.json",
        4,
        "critical",
    );
    expect(&f, "github-token", ".mcp.json", 2, "high");
    expect(&f, "generic-secret", "home/.claude.json", 2, "medium");
    expect(
        &f,
        "codex-env-policy-passes-secrets",
        ".codex/config.toml",
        3,
        "high",
    );
    let helper = f
        .iter()
        .find(|x| x["rule"] == "claude-api-key-without-helper")
        .expect("helper");
    assert_eq!(helper["severity"], "medium");
    assert!(
        f.iter()
            .any(|x| x["rule"] == "claude-subprocess-env-scrub-off")
    );

    // With a helper, a scrub and a strict Codex policy, those three configuration findings go.
    fx.home_file(
        ".claude/settings.json",
        "{\"apiKeyHelper\": \"keyfence secret get ANTHROPIC_API_KEY\", \"env\": {\"CLAUDE_CODE_SUBPROCESS_ENV_SCRUB\": \"1\"}}",
    );
    fx.home_file(
        ".codex/config.toml",
        "[shell_environment_policy]\ninherit = \"core\"\nignore_default_excludes = false\n",
    );
    let f = audit_json(&fx, "agent", &[("ANTHROPIC_API_KEY", &env_key)]);
    for rule in [
        "claude-api-key-without-helper",
        "claude-subprocess-env-scrub-off",
        "codex-env-policy-passes-secrets",
    ] {
        assert!(
            !f.iter().any(|x| x["rule"] == rule),
            "{rule} still reported"
        );
    }
}
