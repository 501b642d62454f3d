//! `keyfence setup codex`, `setup gemini` and `setup cursor` against fixture homes: the key
//! goes into the store, the shell starts the agent under the agent profile, and each tool's own
//! control is set in its own file, keeping the user's settings, with a backup and a `--dry-run`
//! diff. The results are checked with the real CLIs where they can be run offline: Codex
//! applies the written policy (`codex sandbox -- env`), Gemini CLI accepts the settings
//! (`gemini mcp list` validates them). No key appears in any output or written file.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const BEGIN: &str = "# >>> keyfence shell-init >>>";

/// A tool from the npm packages part B installs under target/test-tools, or by hand under
/// target/agent-cli.
fn tool(name: &str, package: &str) -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let found = [
        root.join("target/test-tools/node_modules/.bin").join(name),
        root.join("target/agent-cli/node_modules/.bin").join(name),
    ]
    .into_iter()
    .find(|p| p.exists());
    if found.is_none() {
        skip(&format!(
            "{name} is not installed: npm install --prefix target/test-tools {package}"
        ));
    }
    found
}

/// No planted secret, nor a 16-character piece of one, in the file.
fn assert_file_clean(path: &Path, planted: &[String]) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for s in planted {
        let tail = &s[s.len().saturating_sub(16)..];
        assert!(
            !text.contains(tail),
            "{} holds a planted secret",
            path.display()
        );
    }
}

/// The names among `vars` that the real Codex hands to a command it runs in `fx`'s home.
fn codex_passes(codex: &Path, fx: &Fixture, vars: &[(&str, String)]) -> Vec<String> {
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
    assert!(out.status.success(), "codex sandbox failed");
    let env = String::from_utf8_lossy(&out.stdout);
    vars.iter()
        .filter(|(k, v)| env.lines().any(|l| l == format!("{k}={v}")))
        .map(|(k, _)| k.to_string())
        .collect()
}

/// The attack: a command Codex runs reads the exported keys from its own environment. Before
/// `setup codex` the real Codex hands it every one (the default policy); after, none, while the
/// user's config keeps its comments, order and tables. `--dry-run` shows the diff and changes
/// nothing; a second run changes nothing.
#[test]
fn setup_codex_writes_a_policy_the_real_codex_applies() {
    let codex = tool("codex", "@openai/codex@0.171.0");
    let mut fx = Fixture::new();
    let key = fx.key("openai");
    let vars = vec![
        ("OPENAI_API_KEY", key.clone()),
        ("GH_TOKEN", fx.key("github")),
        ("SERVICE_PASSWORD", fx.key("password")),
        (
            "DATABASE_URL",
            format!(
                "postgres://app:{}@db.internal/app",
                random_from("abcdefghjkmnpqrstuvwxyz23456789", 20)
            ),
        ),
    ];
    fx.planted.push(vars[3].1.clone());
    let original = "# my settings\nmodel = \"o4-mini\" # fast\n\n[mcp_servers.docs]\ncommand = \"docs-mcp\"\n\n[tui]\nnotifications = true\n";
    let config = fx.home_file(".codex/config.toml", original);
    let env: Vec<(&str, &str)> = vars
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain([("SHELL", "/bin/bash")])
        .collect();
    if let Some(codex) = &codex {
        let mut before = codex_passes(codex, &fx, &vars);
        before.sort();
        assert_eq!(
            before,
            [
                "DATABASE_URL",
                "GH_TOKEN",
                "OPENAI_API_KEY",
                "SERVICE_PASSWORD"
            ],
            "baseline: the default policy passes every key"
        );
    }

    // Its help says what it does (a flattened option's doc comment once took its place).
    let help = fx.run(&["setup", "codex", "--help"], &[]);
    assert!(
        help.stdout.starts_with("Store an exported OPENAI_API_KEY"),
        "{}",
        help.stdout
    );
    let dry = fx.run(&["setup", "codex", "--dry-run"], &env);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    for said in [
        "would store the exported OPENAI_API_KEY",
        &format!("+{BEGIN}"),
        "+ignore_default_excludes = false",
        "+exclude = [\"*PASSWORD*\"",
    ] {
        assert!(dry.stdout.contains(said), "{said}:\n{}", dry.stdout);
    }
    assert_eq!(std::fs::read_to_string(&config).unwrap(), original);
    assert!(!fx.home.join(".bashrc").exists());
    assert!(!fx.home.join(".local/share/keyfence/vault").exists());

    let r = fx.run(&["setup", "codex"], &env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for said in [
        "stored OPENAI_API_KEY",
        "codex now starts through keyfence's agent profile",
        "changed ~/.codex/config.toml",
        "backup of the previous file",
    ] {
        assert!(r.stdout.contains(said), "{said}:\n{}", r.stdout);
    }
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.starts_with(original),
        "the user's settings, comments and order stay:\n{text}"
    );
    assert!(text.contains("[shell_environment_policy]\n"), "{text}");
    assert_eq!(
        std::fs::read_to_string(fx.home.join(".codex/config.toml.keyfence-bak")).unwrap(),
        original
    );
    let rc = std::fs::read_to_string(fx.home.join(".bashrc")).unwrap();
    assert!(rc.contains(BEGIN), "{rc}");
    for f in [&config, &fx.home.join(".bashrc")] {
        assert_file_clean(f, &fx.planted);
    }
    let init = fx.run(&["shell-init", "bash"], &[]);
    assert!(
        init.stdout
            .contains("run --profile agent -- codex \"$@\"; }"),
        "{}",
        init.stdout
    );
    // The store holds the key.
    let got = fx.run(&["secret", "list"], &[]);
    assert!(got.stdout.contains("OPENAI_API_KEY"), "{}", got.stdout);

    if let Some(codex) = &codex {
        assert_eq!(
            codex_passes(codex, &fx, &vars),
            Vec::<String>::new(),
            "the real Codex under the written policy"
        );
    }
    let audit = fx.run(&["audit", "--only", "agent", "--format", "json"], &env);
    assert!(
        !audit
            .findings()
            .iter()
            .any(|f| f["rule"] == "codex-env-policy-passes-secrets"),
        "{}",
        audit.stdout
    );

    let again = fx.run(&["setup", "codex"], &env);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again
            .stdout
            .contains("already has a shell_environment_policy"),
        "{}",
        again.stdout
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), text);
    assert!(!fx.home.join(".codex/config.toml.keyfence-bak.1").exists());
}

/// No key anywhere and no login: refused before anything changes. Logged in with `codex
/// login` (auth.json): nothing stored, the rest done. A broken config.toml stops everything.
#[test]
fn setup_codex_needs_a_key_or_a_login_and_a_readable_config() {
    let mut fx = Fixture::new();
    let r = fx.run(&["setup", "codex"], &[("SHELL", "/bin/bash")]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("no OPENAI_API_KEY") && r.stderr.contains("hint: "),
        "{}",
        r.stderr
    );
    assert!(!fx.home.join(".bashrc").exists());
    let token = fx.key("openai");
    fx.home_file(
        ".codex/auth.json",
        &format!("{{\"OPENAI_API_KEY\": \"{token}\"}}"),
    );
    let r = fx.run(&["setup", "codex"], &[("SHELL", "/bin/bash")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("codex is logged in"), "{}", r.stdout);
    assert!(!fx.home.join(".local/share/keyfence/vault").exists());

    fx.home_file(".codex/config.toml", "model = \n");
    let before = std::fs::read_to_string(fx.home.join(".bashrc")).unwrap();
    let r = fx.run(
        &["setup", "codex", "--shell", "zsh"],
        &[("SHELL", "/bin/bash")],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("invalid TOML at line 1") && r.stderr.contains("nothing was changed"),
        "{}",
        r.stderr
    );
    assert!(!fx.home.join(".zshrc").exists());
    assert_eq!(
        std::fs::read_to_string(fx.home.join(".bashrc")).unwrap(),
        before
    );
}

/// Gemini CLI passes its whole environment to its shell tool unless redaction is on: `setup
/// gemini` turns it on, keeping the user's settings and their order, and the real CLI accepts
/// the file (a control with a wrong value is refused by it). A settings file with comments is
/// left alone, with what to add.
#[test]
fn setup_gemini_turns_redaction_on() {
    let gemini = tool("gemini", "@google/gemini-cli@0.61.0");
    let mut fx = Fixture::new();
    let key = fx.key("google");
    let other = fx.key("openai");
    // An MCP server's key sits in the file: the diff of the rewrite must not show it.
    let mcp_key = fx.key("github");
    let settings = fx.home_file(
        ".gemini/settings.json",
        &format!("{{\n  \"ui\": {{\"theme\": \"GitHub\"}},\n  \"security\": {{\"auth\": {{\"selectedType\": \"gemini-api-key\"}}}},\n  \"mcpServers\": {{\"gh\": {{\"command\": \"gh-mcp\", \"env\": {{\"GITHUB_TOKEN\": \"{mcp_key}\"}}}}}},\n  \"general\": {{\"vimMode\": true}}\n}}\n"),
    );
    let env = [
        ("GEMINI_API_KEY", key.as_str()),
        ("OPENAI_API_KEY", other.as_str()),
        ("SHELL", "/bin/bash"),
    ];
    let audit = |fx: &Fixture| {
        fx.run(&["audit", "--only", "agent", "--format", "json"], &env)
            .findings()
            .into_iter()
            .filter(|f| f["rule"] == "gemini-env-redaction-off")
            .count()
    };
    assert_eq!(
        audit(&fx),
        1,
        "baseline: redaction off while keys are exported"
    );

    let dry = fx.run(&["setup", "gemini", "--dry-run"], &env);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout.contains("+      \"enabled\": true"),
        "{}",
        dry.stdout
    );
    let r = fx.run(&["setup", "gemini"], &env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("stored GEMINI_API_KEY")
            && r.stdout
                .contains("gemini now starts through keyfence's agent profile"),
        "{}",
        r.stdout
    );
    let now: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    let keys: Vec<&String> = now.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["ui", "security", "mcpServers", "general"]);
    assert_eq!(now["security"]["auth"]["selectedType"], "gemini-api-key");
    assert_eq!(
        now["security"]["environmentVariableRedaction"]["enabled"],
        true
    );
    assert!(fx.home.join(".gemini/settings.json.keyfence-bak").exists());
    assert_file_clean(&fx.home.join(".bashrc"), &fx.planted);
    assert_eq!(audit(&fx), 0);

    if let Some(gemini) = &gemini {
        let check = |fx: &Fixture| {
            let out = Command::new(gemini)
                .args(["mcp", "list"])
                .current_dir(&fx.project)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", &fx.home)
                .output()
                .expect("gemini");
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        };
        let said = check(&fx);
        assert!(!said.contains("Invalid configuration"), "{said}");
        let good = std::fs::read_to_string(&settings).unwrap();
        fx.write(
            &settings,
            &good.replace("\"enabled\": true", "\"enabled\": \"yes\""),
        );
        assert!(check(&fx).contains("Invalid configuration"), "control");
        fx.write(&settings, &good);
    }

    fx.home_file(".gemini/settings.json", "// mine\n{}\n");
    let r = fx.run(&["setup", "gemini", "--shell", "zsh"], &env);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("has comments") && r.stderr.contains("environmentVariableRedaction"),
        "{}",
        r.stderr
    );
    assert!(!fx.home.join(".zshrc").exists());
}

/// Gemini CLI on Vertex AI (express mode: `GOOGLE_GENAI_USE_VERTEXAI=true` and an API key in
/// `GOOGLE_API_KEY`, which it reads there instead of GEMINI_API_KEY): audit names the exported
/// key as what Gemini's shell tool gets, and `setup gemini` stores GOOGLE_API_KEY, the name
/// the agent profile hands Gemini (a stand-in, tests/it/guard/agent_fence_clis.rs), not GEMINI_API_KEY.
#[test]
fn setup_gemini_stores_a_vertex_key_under_its_own_name() {
    let mut fx = Fixture::new();
    let key = fx.key("google");
    fx.home_file(
        ".gemini/settings.json",
        "{\"security\": {\"auth\": {\"selectedType\": \"vertex-ai\"}}}\n",
    );
    let env = [
        ("GOOGLE_API_KEY", key.as_str()),
        ("GOOGLE_GENAI_USE_VERTEXAI", "true"),
        ("SHELL", "/bin/bash"),
    ];
    let redaction_off = |fx: &Fixture| {
        fx.run(&["audit", "--only", "agent", "--format", "json"], &env)
            .findings()
            .into_iter()
            .filter(|f| f["rule"] == "gemini-env-redaction-off")
            .map(|f| f["message"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    let before = redaction_off(&fx);
    assert!(
        before.len() == 1 && before[0].contains("GOOGLE_API_KEY"),
        "{before:?}"
    );
    let r = fx.run(&["setup", "gemini"], &env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("stored GOOGLE_API_KEY"), "{}", r.stdout);
    assert!(!r.stdout.contains("GEMINI_API_KEY"), "{}", r.stdout);
    let list = fx.run(&["secret", "list"], &[]);
    assert!(
        list.stdout.contains("GOOGLE_API_KEY") && !list.stdout.contains("GEMINI_API_KEY"),
        "{}",
        list.stdout
    );
    assert_file_clean(&fx.home.join(".bashrc"), &fx.planted);
    assert_file_clean(&fx.home.join(".gemini/settings.json"), &fx.planted);
    assert!(redaction_off(&fx).is_empty());
}

/// The attack: any process of the user reads the keys Cursor keeps in `~/.cursor/mcp.json` (a
/// command an agent runs, a postinstall script). `setup cursor` moves each local server's key
/// into the store and starts the server through `keyfence run --inject`: the file no longer
/// holds it, and the rewritten server still gets its key (run for real); a remote server's
/// header key is listed, not moved.
#[test]
fn setup_cursor_moves_mcp_keys_into_the_store() {
    let mut fx = Fixture::new();
    let key = fx.key("github");
    let header = fx.key("token");
    let server = fx.dir.path().join("bin/gh-mcp");
    // Stands in for the MCP server: says whether it got the key, by its hash.
    fx.script(
        &server,
        "#!/bin/sh\nprintf %s \"$GITHUB_TOKEN\" | sha256sum | cut -c1-12\necho \"args: $*\"\n",
    );
    let mcp = fx.home_file(
        ".cursor/mcp.json",
        &format!(
            "{{\n  \"mcpServers\": {{\n    \"github\": {{\n      \"command\": \"{}\",\n      \"args\": [\"--stdio\"],\n      \"env\": {{\"GITHUB_TOKEN\": \"{key}\", \"LOG_LEVEL\": \"info\"}}\n    }},\n    \"remote\": {{\"url\": \"https://mcp.invalid/sse\", \"headers\": {{\"X_API_KEY\": \"{header}\"}}}}\n  }}\n}}\n",
            server.display()
        ),
    );
    let grep = |p: &Path| std::fs::read_to_string(p).unwrap().contains(&key);
    assert!(
        grep(&mcp),
        "baseline: the key is in the file any process can read"
    );

    let dry = fx.run(&["setup", "cursor", "--dry-run"], &[]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout
            .contains("would move GITHUB_TOKEN of server `github`")
            && dry.stdout.contains("+      \"args\": ["),
        "{}",
        dry.stdout
    );
    assert!(grep(&mcp));

    let r = fx.run(&["setup", "cursor"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("moved GITHUB_TOKEN of server `github`")
            && r.stdout
                .contains("server `remote` holds a key in headers.X_API_KEY"),
        "{}",
        r.stdout
    );
    assert!(!grep(&mcp), "the file no longer holds the key");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&mcp).unwrap()).unwrap();
    let gh = &v["mcpServers"]["github"];
    assert_eq!(gh["command"], BIN);
    assert_eq!(gh["env"], serde_json::json!({"LOG_LEVEL": "info"}));
    assert!(fx.home.join(".cursor/mcp.json.keyfence-bak").exists());

    // Start the server as Cursor would: the command and args from the file.
    let args: Vec<String> = gh["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let out = Command::new(gh["command"].as_str().unwrap())
        .args(&args)
        .env_clear()
        .env("HOME", &fx.home)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.starts_with(&sha12_of(&key)) && said.contains("args: --stdio"),
        "the server gets its key: {said} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let audit = fx.run(&["audit", "--only", "agent", "--format", "json"], &[]);
    let findings = audit.findings();
    assert!(
        !findings.iter().any(|f| f["rule"] == "github-token"),
        "{}",
        audit.stdout
    );
    // The backup still holds the key: audit says so, with its removal as the fix.
    let creds = fx.run(&["audit", "--only", "credfile", "--format", "json"], &[]);
    assert!(
        creds.findings().iter().any(|f| f["location"]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with(".cursor/mcp.json.keyfence-bak"))
            && f["fix"].as_str().is_some_and(|x| x.contains("rm "))),
        "{}",
        creds.stdout
    );
    // Twice: the header key is still listed, nothing else changes.
    let text = std::fs::read_to_string(&mcp).unwrap();
    let again = fx.run(&["setup", "cursor"], &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(std::fs::read_to_string(&mcp).unwrap(), text);
}

/// The first 12 hex characters of the SHA-256 of `s`, as `sha256sum | cut -c1-12` prints them.
fn sha12_of(s: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", "printf %s \"$1\" | sha256sum | cut -c1-12", "sh", s])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `codex` and `gemini` on PATH while the shell does not load shell-init: typing either starts
/// it outside the agent profile, which audit says, naming the set-up for that agent; after it,
/// the finding goes.
#[test]
fn audit_reports_codex_and_gemini_on_path_until_set_up() {
    let mut fx = Fixture::new();
    let bin = fx.dir.path().join("bin");
    for p in ["codex", "gemini"] {
        fx.script(&bin.join(p), "#!/bin/sh\nexit 0\n");
    }
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let key = fx.key("openai");
    let env = [
        ("PATH", path.as_str()),
        ("SHELL", "/bin/bash"),
        ("OPENAI_API_KEY", key.as_str()),
    ];
    let starts = |fx: &Fixture| {
        fx.run(&["audit", "--only", "agent", "--format", "json"], &env)
            .findings()
            .into_iter()
            .filter(|f| f["rule"] == "agent-starts-outside-keyfence")
            .map(|f| f["fix"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let fixes = starts(&fx);
    assert_eq!(fixes.len(), 2, "{fixes:?}");
    assert!(
        fixes
            .iter()
            .any(|f| f.starts_with("run `keyfence setup codex`")),
        "{fixes:?}"
    );
    assert!(
        fixes
            .iter()
            .any(|f| f.starts_with("run `keyfence setup gemini`")),
        "{fixes:?}"
    );
    let r = fx.run(&["setup", "codex"], &env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(starts(&fx), Vec::<String>::new());
}
