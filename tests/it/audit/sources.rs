//! Each audit source against a fixture home and project: every planted exposure is reported at
//! the right place with the right severity, and no raw value is printed.

use crate::common::*;
use serde_json::Value;

fn audit_json(fx: &Fixture, only: &str, env: &[(&str, &str)]) -> Vec<Value> {
    let run = fx.run(&["audit", "--format", "json", "--only", only], env);
    assert!(
        run.code == 0 || run.code == 1,
        "exit {}: {}",
        run.code,
        run.stderr
    );
    run.findings()
}

fn expect(findings: &[Value], rule: &str, path: &str, line: u64, severity: &str) -> Value {
    let f = find_at(findings, rule, path, line).unwrap_or_else(|| {
        panic!(
            "no {rule} at {path}:{line} in {}",
            serde_json::to_string_pretty(findings).unwrap()
        )
    });
    assert_eq!(f["severity"], severity, "{f}");
    f.clone()
}

#[test]
fn env_source_reports_secret_variables_and_not_decoys() {
    let mut fx = Fixture::new();
    let ant = fx.key("anthropic");
    let tok = fx.key("token");
    let pw = fx.key("password");
    let f = audit_json(
        &fx,
        "env",
        &[
            ("ANTHROPIC_API_KEY", &ant),
            ("MY_SERVICE_TOKEN", &tok),
            ("DB_PASSWORD", &pw),
            ("TOKENIZERS_PARALLELISM", "false"),
            ("KEYTIMEOUT", "1"),
            ("GPG_KEY_FILE", "/home/dev/.gnupg/key.asc"),
            ("API_KEY", "changeme"),
            ("PLACEHOLDER_KEY", "sk-ant-xxxx"),
        ],
    );
    let by_var = |v: &str| f.iter().find(|x| x["location"]["env"] == v).cloned();
    let a = by_var("ANTHROPIC_API_KEY").expect("anthropic");
    assert_eq!(a["rule"], "anthropic-api-key");
    assert_eq!(a["severity"], "high");
    assert_eq!(a["secret"]["fingerprint"], sha12(&ant));
    assert_eq!(
        by_var("MY_SERVICE_TOKEN").expect("token")["rule"],
        "generic-secret"
    );
    let p = by_var("DB_PASSWORD").expect("password");
    assert_eq!(p["rule"], "generic-password");
    assert!(
        p["secret"].get("fingerprint").is_none(),
        "low-entropy passwords get no fingerprint"
    );
    for decoy in [
        "TOKENIZERS_PARALLELISM",
        "KEYTIMEOUT",
        "GPG_KEY_FILE",
        "API_KEY",
        "PLACEHOLDER_KEY",
    ] {
        assert!(by_var(decoy).is_none(), "decoy {decoy} reported");
    }
    assert_eq!(f.len(), 3, "{f:?}");
}

#[test]
fn shell_source_understands_exports_quoting_and_dialects() {
    let mut fx = Fixture::new();
    let k1 = fx.key("anthropic");
    let k2 = fx.key("openai");
    let k3 = fx.key("github");
    let k4 = fx.key("groq");
    let k5 = fx.key("token");
    let k6 = fx.key("stripe");
    let k7 = fx.key("npm");
    let k8 = fx.key("huggingface");
    fx.home_file(
        ".bashrc",
        &format!(
            "# my bashrc\nalias ll='ls -l'\nexport ANTHROPIC_API_KEY=\"{k1}\"\nOPENAI_API_KEY='{k2}'\nexport OPENAI_API_KEY\nGH_HELPER_TOKEN={k5}\nsource ~/.secrets.sh\nexport TOKENIZERS_PARALLELISM=false\n"
        ),
    );
    fx.home_file(
        ".secrets.sh",
        &format!("\n\ndeclare -x GITHUB_TOKEN={k3}\n"),
    );
    fx.home_file(
        ".config/fish/config.fish",
        &format!("set -gx GROQ_API_KEY {k4}\n"),
    );
    fx.home_file(".cshrc", &format!("setenv STRIPE_API_KEY {k6}\n"));
    fx.home_file(
        ".config/fish/conf.d/npm.fish",
        &format!("set -x NPM_TOKEN '{k7}'\n"),
    );
    std::fs::create_dir_all(fx.etc.join("profile.d")).unwrap();
    fx.write(
        &fx.etc.join("environment"),
        &format!("HF_TOKEN={k8}\nLANG=C.UTF-8\n"),
    );
    let f = audit_json(&fx, "shell", &[]);
    expect(&f, "anthropic-api-key", "home/.bashrc", 3, "high");
    expect(&f, "openai-api-key", "home/.bashrc", 4, "high");
    // Assigned without export: plaintext at rest, lower severity.
    expect(&f, "generic-secret", "home/.bashrc", 6, "medium");
    expect(&f, "github-token", "home/.secrets.sh", 3, "high");
    expect(&f, "groq-api-key", "config.fish", 1, "high");
    expect(&f, "stripe-live-key", "home/.cshrc", 1, "high");
    expect(&f, "npm-token", "conf.d/npm.fish", 1, "high");
    expect(&f, "huggingface-token", "etc/environment", 1, "high");
    assert_eq!(f.len(), 8, "{}", serde_json::to_string_pretty(&f).unwrap());
}

#[test]
fn history_source_finds_inline_keys_exports_and_headers() {
    let mut fx = Fixture::new();
    let k1 = fx.key("anthropic");
    let k2 = fx.key("openai");
    let k3 = fx.key("token");
    let k4 = fx.key("xai");
    fx.home_file(
        ".bash_history",
        &format!(
            "ls\n#1700000000\nANTHROPIC_API_KEY={k1} claude -p hi\ncd /tmp\ncurl -H 'Authorization: Bearer {k2}' https://api.openai.com/v1/models\n"
        ),
    );
    fx.home_file(
        ".zsh_history",
        &format!(": 1700000000:0;git status\n: 1700000001:0;curl -H \"x-api-key: {k3}\" http://localhost:8080\n: 1700000002:0;export XAI_API_KEY={k4}\n"),
    );
    let k5 = fx.key("github");
    fx.home_file(
        ".local/share/fish/fish_history",
        &format!("- cmd: ls\n  when: 1700000000\n- cmd: set -x GH_TOKEN {k5}; gh repo list\n  when: 1700000001\n"),
    );
    let f = audit_json(&fx, "history", &[]);
    expect(&f, "github-token", "fish_history", 3, "medium");
    expect(&f, "anthropic-api-key", ".bash_history", 3, "medium");
    expect(&f, "openai-api-key", ".bash_history", 5, "medium");
    expect(&f, "generic-secret", ".zsh_history", 2, "medium");
    expect(&f, "xai-api-key", ".zsh_history", 3, "medium");
    assert_eq!(f.len(), 5, "{}", serde_json::to_string_pretty(&f).unwrap());
}

#[test]
fn dotenv_severity_follows_git_state() {
    let mut fx = Fixture::new();
    let tracked = fx.key("anthropic");
    let ignored = fx.key("openai");
    let untracked = fx.key("stripe");
    let envrc = fx.key("github");
    fx.git(&["init", "-q"]);
    fx.project_file(".gitignore", ".env.local\n");
    fx.project_file(
        ".env",
        &format!("# app\nANTHROPIC_API_KEY={tracked}\nAPI_KEY=changeme\n"),
    );
    fx.git(&["add", ".env", ".gitignore"]);
    fx.project_file(".env.local", &format!("OPENAI_API_KEY=\"{ignored}\"\n"));
    fx.project_file(
        "svc/.env.production",
        &format!("\n\nexport STRIPE_KEY={untracked}\n"),
    );
    fx.project_file(".envrc", &format!("export GITHUB_TOKEN={envrc}\n"));
    // Dependencies are not the project's own .env files.
    let dep = fx.key("token");
    fx.project_file("node_modules/pkg/.env", &format!("X_TOKEN={dep}\n"));
    let f = audit_json(&fx, "dotenv", &[]);
    expect(&f, "anthropic-api-key", ".env", 2, "critical");
    let ign = expect(&f, "openai-api-key", ".env.local", 1, "medium");
    assert!(ign["message"].as_str().unwrap().contains("Bun"), "{ign}");
    expect(&f, "stripe-live-key", "svc/.env.production", 3, "high");
    expect(&f, "github-token", ".envrc", 1, "high");
    assert_eq!(f.len(), 4, "{}", serde_json::to_string_pretty(&f).unwrap());
}

#[test]
fn credfile_source_reports_tokens_and_loose_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let mut fx = Fixture::new();
    let id = fx.key("aws-id");
    let secret = fx.key("aws-secret");
    let npm = fx.key("npm");
    let gho = fx.key("github-oauth");
    let pw = fx.key("password");
    let creds = fx.home_file(
        ".aws/credentials",
        &format!("[default]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"),
    );
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    let npmrc = fx.home_file(
        ".npmrc",
        &format!("//registry.npmjs.org/:_authToken={npm}\n"),
    );
    std::fs::set_permissions(&npmrc, std::fs::Permissions::from_mode(0o600)).unwrap();
    fx.home_file(
        ".config/gh/hosts.yml",
        &format!("github.com:\n    oauth_token: {gho}\n    user: dev\n"),
    );
    fx.home_file(
        ".netrc",
        &format!("machine db.internal login dev password {pw}\n"),
    );
    let project_npm = fx.key("npm");
    fx.project_file(
        ".npmrc",
        &format!("//registry.npmjs.org/:_authToken={project_npm}\n"),
    );
    let f = audit_json(&fx, "credfile", &[]);
    expect(
        &f,
        "credential-file-permissions",
        ".aws/credentials",
        1,
        "high",
    );
    expect(&f, "aws-access-key-id", ".aws/credentials", 2, "low");
    let s = expect(&f, "aws-secret-access-key", ".aws/credentials", 3, "low");
    assert_eq!(s["secret"]["fingerprint"], sha12(&secret));
    expect(&f, "npm-token", "home/.npmrc", 1, "low");
    expect(&f, "github-token", "gh/hosts.yml", 2, "low");
    expect(&f, "generic-password", ".netrc", 1, "low");
    let p = f
        .iter()
        .find(|x| x["location"]["path"] == ".npmrc")
        .expect("project .npmrc");
    assert_eq!(p["severity"], "high");
    assert!(find_at(&f, "credential-file-permissions", "home/.npmrc", 1).is_none());
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

#[test]
fn file_source_scans_project_files_but_not_dependencies() {
    let mut fx = Fixture::new();
    let k1 = fx.key("google");
    let k2 = fx.key("slack");
    fx.git(&["init", "-q"]);
    fx.project_file(
        "src/config.js",
        &format!("module.exports = {{\n  apiKey: '{k1}',\n}};\n"),
    );
    fx.git(&["add", "src/config.js"]);
    fx.project_file("docs/notes.md", &format!("bot token {k2}\n"));
    let (d1, d2) = (fx.key("github"), fx.key("github"));
    fx.project_file("node_modules/dep/index.js", &format!("const k = '{d1}';\n"));
    fx.project_file("target/debug/build.txt", &format!("{d2}\n"));
    // Accepted on purpose: a fixtures directory in .keyfenceignore, and a line marked inline.
    let (d3, d4) = (fx.key("stripe"), fx.key("stripe"));
    fx.project_file(".keyfenceignore", "fixtures/\n");
    fx.project_file("fixtures/keys.txt", &format!("{d3}\n"));
    fx.project_file(
        "docs/example.md",
        &format!("`{d4}` <!-- keyfence:allow -->\n"),
    );
    let f = audit_json(&fx, "file", &[]);
    let g = expect(&f, "google-api-key", "src/config.js", 2, "critical");
    assert_eq!(g["location"]["column"], 12);
    expect(&f, "slack-token", "docs/notes.md", 1, "high");
    assert_eq!(f.len(), 2, "{}", serde_json::to_string_pretty(&f).unwrap());
}

#[test]
fn proc_source_and_ps_see_a_real_child_process() {
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .env_clear()
        .env("ANTHROPIC_API_KEY", &key)
        .env("HARMLESS", "1")
        .spawn()
        .expect("sleep");
    let pid = u64::from(child.id());
    let f = audit_json(&fx, "proc", &[]);
    let held = f
        .iter()
        .find(|x| x["location"]["pid"] == pid)
        .unwrap_or_else(|| panic!("child {pid} not reported"));
    assert_eq!(held["rule"], "anthropic-api-key");
    assert_eq!(held["location"]["comm"], "sleep");
    assert_eq!(held["location"]["env"], "ANTHROPIC_API_KEY");
    assert_eq!(held["secret"]["fingerprint"], sha12(&key));

    let ps = fx.run(&["ps", "--format", "json"], &[]);
    assert_eq!(ps.code, 1, "{}", ps.stderr);
    let procs = ps.json()["processes"].as_array().cloned().unwrap();
    assert!(
        procs
            .iter()
            .any(|p| p["pid"] == pid && p["held"][0]["env"] == "ANTHROPIC_API_KEY")
    );
    let tree = fx.run(&["ps", "--color", "never"], &[]);
    assert!(
        tree.stdout.contains(&format!(
            "{pid} sleep  holds ANTHROPIC_API_KEY=sk-ant-api03-…"
        )),
        "{}",
        tree.stdout
    );
    // The count agrees with its verb: "1 process holds", "3 processes hold".
    let summary = tree.stdout.lines().last().unwrap_or_default();
    let n: usize = summary
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{summary}"));
    let said = if n == 1 {
        "1 process holds secrets; "
    } else {
        &format!("{n} processes hold secrets; ")
    };
    assert!(summary.starts_with(said), "{summary}");
    child.kill().ok();
    child.wait().ok();
}

/// Kernel threads have no environment: they are neither holders nor "could not be read"
/// (reading their `environ` fails, ESRCH for root). Told apart here by their parent, kthreadd
/// (pid 2), rather than by the flag keyfence reads.
#[test]
fn kernel_threads_are_not_counted_as_unreadable() {
    let fx = Fixture::new();
    let mut unreadable_kthreads = 0;
    let mut unreadable_others = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid: u32 = stat[stat.rfind(')').unwrap() + 2..]
            .split(' ')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if std::fs::read(entry.path().join("environ")).is_err() {
            if pid == 2 || ppid == 2 {
                unreadable_kthreads += 1;
            } else {
                unreadable_others += 1;
            }
        }
    }
    if unreadable_kthreads == 0 {
        // Not a missing tool: where no kernel thread shows, there is nothing to miscount.
        eprintln!("no kernel threads visible in /proc (a container?): nothing to check");
        return;
    }
    let ps = fx.run(&["ps", "--format", "json"], &[]);
    let unreadable = ps.json()["unreadable"].as_u64().unwrap() as usize;
    // Processes come and go between the two looks: a little slack, far below the kthreads.
    assert!(
        unreadable <= unreadable_others + 3,
        "ps counts {unreadable} unreadable; {unreadable_others} processes and \
         {unreadable_kthreads} kernel threads are"
    );
}

#[test]
fn the_same_key_in_several_places_is_one_exposure() {
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    fx.home_file(".bashrc", &format!("export ANTHROPIC_API_KEY={key}\n"));
    fx.project_file(".env", &format!("ANTHROPIC_API_KEY={key}\n"));
    let run = fx.run(
        &["audit", "--skip", "proc", "--color", "never"],
        &[("ANTHROPIC_API_KEY", &key)],
    );
    assert_eq!(run.code, 1);
    let fp = sha12(&key);
    let header = run
        .stdout
        .lines()
        .find(|l| l.contains(&fp))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(header.contains("exposed in 3 places"), "{header}");
    assert_eq!(run.stdout.matches(&fp).count(), 1, "{}", run.stdout);
    assert!(run.stdout.contains("~/.bashrc:1"), "{}", run.stdout);
    assert!(run.stdout.contains(".env:1"), "{}", run.stdout);
}

/// A key that keyfence's store already holds, still exported in a start-up file: the advice is
/// to delete the export and use the stored entry, not to store it again; a key the store does
/// not hold keeps the advice to store it.
#[test]
fn a_key_already_stored_is_called_stored() {
    let mut fx = Fixture::new();
    let stored = fx.key("anthropic");
    let other = fx.key("openai");
    fx.store_secret("ANTHROPIC_API_KEY", &stored);
    fx.home_file(
        ".bashrc",
        &format!("export ANTHROPIC_API_KEY={stored}\nexport OPENAI_API_KEY={other}\n"),
    );
    let r = fx.run(&["audit", "--only", "shell,store", "--format", "json"], &[]);
    let findings = r.json()["findings"].as_array().unwrap().clone();
    let fix_of = |var: &str| {
        findings
            .iter()
            .find(|f| f["message"].as_str().unwrap_or("").contains(var))
            .map(|f| f["fix"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no finding for {var}: {findings:#?}"))
    };
    assert!(
        fix_of("ANTHROPIC_API_KEY")
            .starts_with("it is already in keyfence's store as ANTHROPIC_API_KEY"),
        "{findings:#?}"
    );
    assert!(
        fix_of("OPENAI_API_KEY").starts_with("run `keyfence fix`: it moves the key into"),
        "{findings:#?}"
    );
}

/// The rule added by following docs/architecture.md ("Add a rule"): a Perplexity key exported in
/// a start-up file is reported by its kind, where before it was only a secret-named variable.
#[test]
fn a_perplexity_key_is_known_by_its_kind() {
    let mut fx = Fixture::new();
    let key = fx.key("perplexity");
    fx.home_file(".bashrc", &format!("export PERPLEXITY_API_KEY={key}\n"));
    // Any name: the format alone says what it is.
    fx.home_file(".zshrc", &format!("export SOMETHING={key}\n"));
    let f = audit_json(&fx, "shell", &[]);
    let found: Vec<_> = f
        .iter()
        .filter(|x| x["rule"] == "perplexity-api-key")
        .collect();
    assert_eq!(found.len(), 2, "{f:#?}");
    assert!(
        found
            .iter()
            .all(|x| x["secret"]["kind"] == "Perplexity API key")
    );
    assert!(
        found
            .iter()
            .all(|x| x["secret"]["fingerprint"] == sha12(&key))
    );
}
