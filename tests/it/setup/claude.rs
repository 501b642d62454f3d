//! `keyfence setup claude` leaves the user with `claude` started under keyfence's agent profile
//! when they type it: the shell's start-up file loads `keyfence shell-init`, checked with real
//! interactive bash (a stand-in `claude`, and the real Claude Code CLI against the loopback
//! stub), as nobody where the kernel's checks depend on the uid (DESIGN.md §5). And `audit`
//! reports a claude that runs, or would start, outside the profile.

use crate::common::claude_stub::{Stub, claude_bin};
use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const BEGIN: &str = "# >>> keyfence shell-init >>>";

/// `keyfence setup claude` with `SHELL` and the key exported, as the user runs it.
fn setup(fx: &Fixture, shell: &str, key: Option<&str>, extra: &[&str]) -> Run {
    let mut args = vec!["setup", "claude"];
    args.extend(extra);
    let mut env = vec![("SHELL", shell)];
    if let Some(k) = key {
        env.push(("ANTHROPIC_API_KEY", k));
    }
    fx.run(&args, &env)
}

#[test]
fn setup_adds_the_shell_init_block_once_with_a_backup() {
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    // No final newline, and an export right above where the block goes: the diff must show
    // neither the user's line nor the key.
    let original = format!("alias ll='ls -l'\nexport ANTHROPIC_API_KEY={key}");
    let rc = fx.home_file(".bashrc", &original);

    let dry = setup(&fx, "/bin/bash", Some(&key), &["--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout.contains(&format!("+{BEGIN}"))
            && dry
                .stdout
                .contains(&format!("+eval \"$({BIN} shell-init bash)\"")),
        "{}",
        dry.stdout
    );
    assert!(!dry.stdout.contains("ANTHROPIC_API_KEY="), "{}", dry.stdout);
    assert_eq!(std::fs::read_to_string(&rc).unwrap(), original);
    assert!(!fx.home.join(".local/share/keyfence/vault").exists());

    let r = setup(&fx, "/bin/bash", Some(&key), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for said in [
        "stored ANTHROPIC_API_KEY",
        "claude now starts through keyfence's agent profile (~/.bashrc loads `keyfence \
         shell-init bash`)",
        "exec $SHELL",
        // The export is still there, and listed.
        "~/.bashrc:2",
    ] {
        assert!(r.stdout.contains(said), "{said}:\n{}", r.stdout);
    }
    let text = std::fs::read_to_string(&rc).unwrap();
    assert!(
        text.starts_with(&format!("{original}\n\n{BEGIN}\n")),
        "{text}"
    );
    assert_eq!(text.matches(BEGIN).count(), 1);
    let backup = fx.home.join(".bashrc.keyfence-bak");
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), original);
    // No apiKeyHelper unless asked for.
    assert!(!fx.home.join(".claude/settings.json").exists());

    // Twice: nothing changes, no second backup.
    let again = setup(&fx, "/bin/bash", None, &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stdout.contains("~/.bashrc already loads"),
        "{}",
        again.stdout
    );
    assert_eq!(std::fs::read_to_string(&rc).unwrap(), text);
    assert!(!fx.home.join(".bashrc.keyfence-bak.1").exists());

    // zsh and fish get their own files; --shell overrides $SHELL.
    let r = setup(&fx, "/usr/bin/zsh", None, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let zshrc = std::fs::read_to_string(fx.home.join(".zshrc")).unwrap();
    assert!(
        zshrc.contains(&format!("eval \"$({BIN} shell-init zsh)\"")),
        "{zshrc}"
    );
    let r = setup(&fx, "/bin/bash", None, &["--shell", "fish"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let fish = std::fs::read_to_string(fx.home.join(".config/fish/config.fish")).unwrap();
    assert!(
        fish.contains(&format!("'{BIN}' shell-init fish | source")),
        "{fish}"
    );
    // A shell keyfence has no shell-init for: refused, with the way out.
    let r = setup(&fx, "/bin/tcsh", None, &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("SHELL is `/bin/tcsh`") && r.stderr.contains("hint: "),
        "{}",
        r.stderr
    );
}

/// A start-up file kept in a dotfiles repository and linked into the home: the file the link
/// points to gets the block, the link stays a link, the backup (which may hold a key) stays
/// beside the link, out of the repository. A link to nothing is refused.
#[test]
fn setup_edits_a_linked_start_up_file_at_its_target() {
    let fx = Fixture::new();
    let key = fake("anthropic");
    let dotfiles = fx.dir.path().join("dotfiles");
    fx.write(&dotfiles.join("bashrc"), "set -o vi\n");
    let link = fx.home.join(".bashrc");
    std::os::unix::fs::symlink(dotfiles.join("bashrc"), &link).unwrap();
    let r = setup(&fx, "/bin/bash", Some(&key), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("(a link: "), "{}", r.stdout);
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    let text = std::fs::read_to_string(dotfiles.join("bashrc")).unwrap();
    assert!(text.starts_with("set -o vi\n\n# >>> keyfence"), "{text}");
    assert!(fx.home.join(".bashrc.keyfence-bak").exists());
    assert_eq!(std::fs::read_dir(&dotfiles).unwrap().count(), 1);

    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(fx.dir.path().join("gone"), &link).unwrap();
    let r = setup(&fx, "/bin/bash", None, &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("is a symbolic link to") && r.stderr.contains("nothing was changed"),
        "{}",
        r.stderr
    );
}

/// An `apiKeyHelper` an earlier `setup claude` wrote is removed (any command claude runs could
/// run it), with a backup and every other setting kept; someone else's helper stays;
/// `--api-key-helper` writes keyfence's for an IDE.
#[test]
fn setup_removes_its_own_earlier_api_key_helper() {
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    let settings = fx.home_file(
        ".claude/settings.json",
        "{\n  \"model\": \"opus\",\n  \"apiKeyHelper\": \"keyfence secret get ANTHROPIC_API_KEY\",\n  \"env\": {\"DEBUG\": \"0\"}\n}\n",
    );
    let original = std::fs::read_to_string(&settings).unwrap();
    let r = setup(&fx, "/bin/bash", Some(&key), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("removed \"apiKeyHelper\""),
        "{}",
        r.stdout
    );
    let now: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    let keys: Vec<&String> = now.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["model", "env"]);
    assert_eq!(
        std::fs::read_to_string(fx.home.join(".claude/settings.json.keyfence-bak")).unwrap(),
        original
    );

    let r = setup(&fx, "/bin/bash", None, &["--api-key-helper"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let now: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(
        now["apiKeyHelper"],
        format!("{BIN} secret get ANTHROPIC_API_KEY")
    );
    assert!(r.stdout.contains("can run the helper"), "{}", r.stdout);

    fx.home_file(
        ".claude/settings.json",
        "{\"apiKeyHelper\": \"op read op://vault/anthropic\"}",
    );
    let r = setup(&fx, "/bin/bash", None, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("sets another apiKeyHelper"),
        "{}",
        r.stdout
    );
    assert!(
        std::fs::read_to_string(&settings)
            .unwrap()
            .contains("op read")
    );
}

/// Logged in with `claude auth login`: no key is needed, none is stored, the wrapper goes in,
/// and the token is never printed.
#[test]
fn setup_after_claude_auth_login_stores_nothing() {
    let mut fx = Fixture::new();
    let token = fx.key("claude-oauth");
    fx.home_file(
        ".claude/.credentials.json",
        &format!("{{\"claudeAiOauth\": {{\"accessToken\": \"{token}\", \"expiresAt\": 1}}}}"),
    );
    let r = setup(&fx, "/bin/bash", None, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("Claude Code is logged in"),
        "{}",
        r.stdout
    );
    assert!(!fx.home.join(".local/share/keyfence/vault").exists());
    assert!(
        std::fs::read_to_string(fx.home.join(".bashrc"))
            .unwrap()
            .contains(BEGIN)
    );
    // Not logged in and no key: a clear error, and nothing changed.
    let fx2 = Fixture::new();
    let r = setup(&fx2, "/bin/bash", None, &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("claude auth login") && r.stderr.contains("keyfence secret set"),
        "{}",
        r.stderr
    );
    assert!(!fx2.home.join(".bashrc").exists());
}

/// The attack: a command claude runs reads the key from its own environment and from claude's
/// `/proc/PID/environ`. Typing `claude` in an interactive bash, with the key exported in
/// ~/.bashrc: before `setup claude` both work; after it, `claude` is keyfence's function, claude
/// runs traced by keyfence (guard) with the key injected from the store, and its child finds the
/// key nowhere. As nobody: root passes the kernel's ptrace checks.
#[test]
fn typing_claude_in_bash_runs_it_under_the_agent_profile() {
    let mut fx = Fixture::outside_tmp();
    let key = fx.key("anthropic");
    fx.home_file(".bashrc", &format!("export ANTHROPIC_API_KEY={key}\n"));
    // Claude gets the real key (inject): the child must still not reach it.
    fx.home_file(
        ".config/keyfence/config.toml",
        "[[profile]]\nname = \"agent\"\ninject = [\"ANTHROPIC_API_KEY\"]\n",
    );
    let bin = fx.dir.path().join("bin");
    let piece = &key[20..40];
    fx.script(
        &bin.join("claude"),
        &format!(
            "#!/bin/sh\n\
             t=$(awk '/^TracerPid:/ {{print $2}}' /proc/$$/status)\n\
             [ \"$t\" != 0 ] && echo \"claude: traced by $(cat /proc/$t/comm 2>/dev/null || echo a process)\" || echo 'claude: not traced'\n\
             [ -n \"$ANTHROPIC_API_KEY\" ] && echo 'claude: has a key'\n\
             sh -c 'echo \"child env: $(env | grep -c -F -e {piece})\"; echo \"child reads claude: $(tr \"\\0\" \"\\n\" < /proc/$PPID/environ | grep -c -F -e {piece})\"' 2>&1\n"
        ),
    );
    let interactive = |fx: &Fixture| {
        let out = Command::new(AS_UNPRIVILEGED[0])
            .args(&AS_UNPRIVILEGED[1..])
            .args(["bash", "-i", "-c", "claude"])
            .current_dir(&fx.project)
            .env_clear()
            .env("HOME", &fx.home)
            .env("SHELL", "/bin/bash")
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .output()
            .unwrap();
        let r = Run::from(out);
        r.assert_no_secret(&fx.planted);
        r
    };
    // The store and the start-up file, set up as the user would (then handed to nobody).
    let r = setup(&fx, "/bin/bash", Some(&key), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let with_block = std::fs::read_to_string(fx.home.join(".bashrc")).unwrap();
    if !fx.hand_to_unprivileged() {
        skip("setpriv (util-linux) is needed to drop from root to nobody");
        return;
    }

    // Baseline: the same start-up file without keyfence's block.
    fx.home_file(".bashrc", &format!("export ANTHROPIC_API_KEY={key}\n"));
    let r = interactive(&fx);
    assert!(
        r.stdout.contains("claude: not traced"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stdout.contains("child env: 1"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stdout.contains("child reads claude: 1"),
        "{}{}",
        r.stdout,
        r.stderr
    );

    fx.home_file(".bashrc", &with_block);
    let r = interactive(&fx);
    for line in [
        "claude: traced by keyfence",
        "claude: has a key",
        "child env: 0",
        "child reads claude: 0",
    ] {
        assert!(r.stdout.contains(line), "{line}:\n{}{}", r.stdout, r.stderr);
    }
    assert!(
        r.stdout.contains("environ: Permission denied"),
        "{}{}",
        r.stdout,
        r.stderr
    );
}

/// `bash -i -c 'claude -p ...'` as nobody: what the user types, the real CLI, against the stub.
fn typed_claude(fx: &Fixture, stub: &Stub) -> Run {
    let claude_dir = claude_bin().parent().map(Path::to_path_buf).unwrap();
    let out = Command::new(AS_UNPRIVILEGED[0])
        .args(&AS_UNPRIVILEGED[1..])
        .args([
            "bash",
            "-i",
            "-c",
            "claude -p 'run the command' --allowedTools Bash --output-format json",
        ])
        .current_dir(&fx.project)
        .env_clear()
        .env("HOME", &fx.home)
        .env("SHELL", "/bin/bash")
        .env("PATH", format!("{}:/usr/bin:/bin", claude_dir.display()))
        .env("ANTHROPIC_BASE_URL", &stub.url)
        .env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_TELEMETRY", "1")
        .output()
        .expect("bash");
    let r = Run::from(out);
    r.assert_no_secret(&fx.planted);
    r
}

/// The real Claude Code, typed as `claude` in an interactive bash after `keyfence setup claude`:
/// the API gets the stored key (through the phantom proxy; claude itself holds a stand-in), and
/// the command its Bash tool runs finds the key neither in its environment nor in its
/// ancestors' (claude's included). Before setup, the same start-up file hands the tool the key.
#[test]
fn typing_claude_runs_the_real_claude_code_guarded() {
    let mut fx = Fixture::outside_tmp();
    let key = fx.key("anthropic");
    let _ = claude_bin();
    fx.home_file(".bashrc", &format!("export ANTHROPIC_API_KEY={key}\n"));
    let r = setup(&fx, "/bin/bash", Some(&key), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let with_block = std::fs::read_to_string(fx.home.join(".bashrc")).unwrap();
    if !fx.hand_to_unprivileged() {
        skip("setpriv (util-linux) is needed to drop from root to nobody");
        return;
    }
    let look = "env | grep -c ANTHROPIC_API_KEY; for p in $PPID $(ps -o ppid= -p $PPID); do tr '\\0' '\\n' < /proc/$p/environ; done | grep -c sk-ant-api03; echo checked";

    // Baseline: the export reaches the tool call, in its environment and in claude's.
    fx.home_file(".bashrc", &format!("export ANTHROPIC_API_KEY={key}\n"));
    let stub = Stub::start(look);
    let r = typed_claude(&fx, &stub);
    let msgs = stub.messages();
    assert!(msgs.len() >= 2, "{} {}", r.stdout, r.stderr);
    let results = stub.tool_results();
    assert!(results.contains("content\":\"1\\n"), "{results}");

    // After setup. The stub stands in for api.anthropic.com: the user's profile points the
    // phantom's upstream at it (the proxy otherwise sends the key to the real API only).
    fx.home_file(".bashrc", &with_block);
    let stub = Stub::start(look);
    fx.home_file(
        ".config/keyfence/config.toml",
        &format!(
            "[[profile]]\nname = \"agent\"\n[[profile.phantom]]\nvar = \"ANTHROPIC_API_KEY\"\nupstream = \"{}\"\n",
            stub.url
        ),
    );
    fx.hand_to_unprivileged();
    let r = typed_claude(&fx, &stub);
    let msgs = stub.messages();
    assert!(msgs.len() >= 2, "{} {}", r.stdout, r.stderr);
    for m in &msgs {
        assert_eq!(m.header("x-api-key"), Some(key.as_str()));
    }
    let results = stub.tool_results();
    assert!(!results.contains(&key));
    let at = results
        .find("\"tool_result\",\"content\":\"")
        .expect("a tool result");
    let report = &results[at..results.len().min(at + 400)];
    assert!(report.contains("content\":\"0\\n"), "{report}");
    assert!(report.contains("environ: Permission denied"), "{report}");
    assert!(report.contains("\\n0\\nchecked"), "{report}");
}

/// A live process named claude, its pid written to its first argument. It waits on stdin
/// (`read` is a builtin: no child outlives it when the test kills it).
fn stand_in_claude(fx: &Fixture) -> PathBuf {
    let bin = fx.dir.path().join("bin");
    fx.script(&bin.join("claude"), "#!/bin/sh\necho $$ > \"$1\"\nread x\n");
    bin
}

fn wait_for_pid(file: &Path) -> u32 {
    for _ in 0..200 {
        if let Some(pid) = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("{} was not written", file.display());
}

fn agent_findings(fx: &Fixture, env: &[(&str, &str)]) -> Vec<serde_json::Value> {
    let r = fx.run(&["audit", "--only", "proc", "--format", "json"], env);
    r.findings()
        .into_iter()
        .filter(|f| f["rule"] == "agent-outside-keyfence")
        .collect()
}

/// `audit` reports a claude that runs outside keyfence (its commands reach everything), and not
/// one started by `keyfence run --profile agent`.
#[test]
fn audit_reports_a_running_claude_outside_keyfence() {
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    let bin = stand_in_claude(&fx);
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let outside = fx.dir.path().join("outside.pid");
    let mut plain = Command::new(bin.join("claude"))
        .arg(&outside)
        .env_clear()
        .env("PATH", &path)
        .env("ANTHROPIC_API_KEY", &key)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let inside = fx.dir.path().join("inside.pid");
    let mut guarded = Command::new(BIN)
        .args(["run", "--profile", "agent", "--", "claude"])
        .arg(&inside)
        .env_clear()
        .env("HOME", &fx.home)
        .env("PATH", &path)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let outside_pid = wait_for_pid(&outside);
    let inside_pid = wait_for_pid(&inside);
    let found = agent_findings(&fx, &[]);
    // The human report shows what the agent's commands can reach, not a "held by" summary.
    let human = fx.run(&["audit", "--only", "proc", "--color", "never"], &[]);
    let _ = plain.kill();
    let _ = guarded.kill();
    let _ = plain.wait();
    let _ = guarded.wait();

    let of = |pid: u32| found.iter().find(|f| f["location"]["pid"] == pid);
    let f = of(outside_pid).unwrap_or_else(|| panic!("{found:?}"));
    assert_eq!(f["severity"], "high");
    assert_eq!(f["location"]["comm"], "claude");
    let message = f["message"].as_str().unwrap();
    assert!(
        message.contains("ANTHROPIC_API_KEY from its environment")
            && message.contains("keyfence secret get"),
        "{message}"
    );
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("keyfence run --profile agent -- claude"),
        "{f}"
    );
    assert!(of(inside_pid).is_none(), "{found:?}");
    assert!(
        human.stdout.contains(&format!(
            "claude ({outside_pid}) runs outside keyfence's agent profile"
        )),
        "{}",
        human.stdout
    );
}

/// `audit` reports claude installed on PATH while the shell's start-up file does not load
/// shell-init (typing `claude` starts it unprotected), and stops after `setup claude`.
#[test]
fn audit_reports_claude_on_path_until_the_shell_loads_shell_init() {
    let fx = Fixture::new();
    let bin = stand_in_claude(&fx);
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let audit = |shell: &str| {
        fx.run(
            &["audit", "--only", "agent", "--format", "json"],
            &[("PATH", &path), ("SHELL", shell)],
        )
        .findings()
        .into_iter()
        .filter(|f| f["rule"] == "agent-starts-outside-keyfence")
        .collect::<Vec<_>>()
    };
    let f = audit("/bin/bash");
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["severity"], "medium");
    assert!(
        f[0]["location"]["path"]
            .as_str()
            .unwrap()
            .ends_with("home/.bashrc"),
        "{f:?}"
    );
    assert!(
        f[0]["fix"]
            .as_str()
            .unwrap()
            .contains("keyfence setup claude"),
        "{f:?}"
    );
    // A shell keyfence has no functions for: the finding names the command to use instead.
    let f = audit("/bin/tcsh");
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["location"]["env"], "SHELL");

    let token = fake("claude-oauth");
    fx.home_file(
        ".claude/.credentials.json",
        &format!("{{\"claudeAiOauth\": {{\"accessToken\": \"{token}\"}}}}"),
    );
    let r = setup(&fx, "/bin/bash", None, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(audit("/bin/bash").is_empty());
    // Not on PATH: nothing to say.
    let f = fx
        .run(
            &["audit", "--only", "agent", "--format", "json"],
            &[("PATH", "/usr/bin:/bin"), ("SHELL", "/bin/zsh")],
        )
        .findings();
    assert!(
        !f.iter()
            .any(|f| f["rule"] == "agent-starts-outside-keyfence"),
        "{f:?}"
    );
}

/// The two pieces of Claude Code advice that matter only while claude starts outside keyfence
/// (set an apiKeyHelper, turn the subprocess scrub on) go once `setup claude` made the shell
/// start it under the agent profile; the exported key itself stays reported (env source).
#[test]
fn claude_advice_goes_once_claude_starts_under_keyfence() {
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    let rules = |fx: &Fixture| {
        fx.run(
            &["audit", "--only", "agent,env", "--format", "json"],
            &[("SHELL", "/bin/bash"), ("ANTHROPIC_API_KEY", &key)],
        )
        .findings()
        .into_iter()
        .map(|f| f["rule"].as_str().unwrap().to_string())
        .collect::<Vec<_>>()
    };
    let before = rules(&fx);
    for rule in [
        "claude-api-key-without-helper",
        "claude-subprocess-env-scrub-off",
        "anthropic-api-key",
    ] {
        assert!(before.iter().any(|r| r == rule), "{rule}: {before:?}");
    }
    let r = setup(&fx, "/bin/bash", Some(&key), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let after = rules(&fx);
    assert!(after.iter().any(|r| r == "anthropic-api-key"), "{after:?}");
    for rule in [
        "claude-api-key-without-helper",
        "claude-subprocess-env-scrub-off",
    ] {
        assert!(!after.iter().any(|r| r == rule), "{rule}: {after:?}");
    }
}

/// The attack on the wrapper itself: a `claude` alias defined after the line that loads
/// shell-init wins, so typing `claude` starts it outside keyfence (Claude Code's older local
/// installer appended such an alias). setup cannot stop a later edit; setup warns and audit
/// reports it. An alias defined before the block is harmless: bash expands it in the function's
/// definition, which then carries the alias's name.
#[test]
fn an_alias_after_the_block_is_reported() {
    let fx = Fixture::new();
    let bin = fx.dir.path().join("bin");
    let local = fx.dir.path().join("local");
    let tracer = "#!/bin/sh\nt=$(awk '/^TracerPid:/ {print $2}' /proc/$$/status)\n[ \"$t\" != 0 ] && echo 'claude: traced' || echo 'claude: not traced'\n";
    fx.script(&bin.join("claude"), tracer);
    fx.script(&local.join("claude"), tracer);
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let alias = format!("alias claude={}\n", local.join("claude").display());
    fx.home_file(".bashrc", &alias);
    let r = fx.run(
        &["setup", "claude"],
        &[
            ("SHELL", "/bin/bash"),
            ("PATH", &path),
            ("ANTHROPIC_API_KEY", &fake("anthropic")),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.contains("warning:"), "{}", r.stdout);
    let typed = || {
        let out = Command::new("bash")
            .args(["-i", "-c", "claude"])
            .current_dir(&fx.project)
            .env_clear()
            .env("HOME", &fx.home)
            .env("PATH", &path)
            .output()
            .unwrap();
        Run::from(out).stdout
    };
    // Before the block: absorbed.
    assert!(typed().contains("claude: traced"), "{}", typed());

    // After the block (and not also before it, which would have renamed the function).
    let rc = fx.home.join(".bashrc");
    let with_block = std::fs::read_to_string(&rc)
        .unwrap()
        .replacen(&alias, "", 1);
    std::fs::write(&rc, format!("{with_block}{alias}")).unwrap();
    let line = with_block.lines().count() + 1;
    // The attack works: typing claude bypasses keyfence.
    assert!(typed().contains("claude: not traced"), "{}", typed());
    // setup says so, and audit reports it at the line.
    let r = fx.run(
        &["setup", "claude"],
        &[("SHELL", "/bin/bash"), ("PATH", &path)],
    );
    assert!(
        r.stdout
            .contains(&format!("warning: ~/.bashrc:{line} defines `claude` again")),
        "{}",
        r.stdout
    );
    let f = fx
        .run(
            &["audit", "--only", "agent", "--format", "json"],
            &[("PATH", &path), ("SHELL", "/bin/bash")],
        )
        .findings();
    let f = f
        .iter()
        .find(|f| f["rule"] == "agent-starts-outside-keyfence")
        .unwrap_or_else(|| panic!("{f:?}"));
    assert_eq!(f["location"]["line"], line, "{f}");
}

/// What setup writes names keyfence as `keyfence` when that name on PATH is this binary, so the
/// line survives a rebuild or reinstall; otherwise by its full path, with a warning that the
/// line breaks when the binary moves (as a build directory's does after `cargo clean`).
#[test]
fn setup_names_keyfence_as_found_on_path() {
    let fx = Fixture::new();
    let key = fake("anthropic");
    let dir = std::path::Path::new(BIN).parent().unwrap();
    let on_path = format!("{}:/usr/bin:/bin", dir.display());
    let r = fx.run(
        &["setup", "claude", "--dry-run"],
        &[
            ("SHELL", "/bin/bash"),
            ("PATH", &on_path),
            ("ANTHROPIC_API_KEY", &key),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("+eval \"$(keyfence shell-init bash)\""),
        "{}",
        r.stdout
    );
    assert!(!r.stderr.contains("full path"), "{}", r.stderr);
    let init = fx.run(&["shell-init", "bash"], &[("PATH", &on_path)]);
    assert!(
        init.stdout
            .contains("claude() { 'keyfence' run --profile agent -- claude \"$@\"; }"),
        "{}",
        init.stdout
    );

    let r = fx.run(
        &["setup", "claude", "--dry-run"],
        &[
            ("SHELL", "/bin/bash"),
            ("PATH", "/usr/bin:/bin"),
            ("ANTHROPIC_API_KEY", &key),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains(&format!("+eval \"$({BIN} shell-init bash)\""))
    );
    assert!(
        r.stderr.contains("keyfence is not on PATH")
            && r.stderr.contains("stops working if that file moves"),
        "{}",
        r.stderr
    );
}

/// Every agent's set-up says when its program is not on PATH (keyfence's function runs the one
/// PATH finds), and not when it is.
#[test]
fn setup_says_when_the_agent_is_not_on_path() {
    let mut fx = Fixture::new();
    let bin = fx.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let openai = fx.key("openai");
    let anthropic = fx.key("anthropic");
    for (program, var, key) in [
        ("codex", "OPENAI_API_KEY", &openai),
        ("claude", "ANTHROPIC_API_KEY", &anthropic),
    ] {
        let note = format!("note: no `{program}` on PATH");
        let with_path = |path: &str| {
            let r = fx.run(
                &["setup", program, "--dry-run"],
                &[("PATH", path), ("SHELL", "/bin/bash"), (var, key.as_str())],
            );
            assert_eq!(r.code, 0, "{}", r.stderr);
            r.assert_no_secret(&fx.planted);
            r.stdout
        };
        let out = with_path("/usr/bin:/bin");
        assert!(out.contains(&note), "{program}: {out}");
        fx.script(&bin.join(program), "#!/bin/sh\n");
        let out = with_path(&format!("{}:/usr/bin:/bin", bin.display()));
        assert!(!out.contains(&note), "{program}: {out}");
    }
}
