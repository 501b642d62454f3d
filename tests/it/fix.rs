//! `keyfence fix` through the real binary, on fixture homes with fake keys generated per run:
//! keys move into the store, their lines and settings entries go, every other byte stays, backups
//! hold the originals, `--dry-run` changes nothing, and no command prints a value (`Fixture::run`
//! checks every output for every planted key).

use crate::common::*;
use serde_json::{Value, json};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `keyfence ARGS` with `stdin`, for `secret get`/`secret set`, whose output may hold a value.
fn raw(fx: &Fixture, args: &[&str], stdin: &str) -> Run {
    let mut c = Command::new(BIN)
        .current_dir(&fx.project)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &fx.home)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run keyfence");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    Run::from(c.wait_with_output().expect("wait"))
}

fn secret_get(fx: &Fixture, name: &str) -> Option<String> {
    let r = raw(fx, &["secret", "get", name], "");
    (r.code == 0).then(|| r.stdout.trim_end_matches('\n').to_string())
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn backup(p: &Path) -> PathBuf {
    PathBuf::from(format!("{}.keyfence-bak", p.display()))
}

/// Every file under `dir`, with its bytes (the vault's directory included).
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            let meta = std::fs::symlink_metadata(&p).expect("stat");
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                out.push((p.clone(), std::fs::read(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}

/// A home with keys in `.bashrc`, `.zshrc`, fish's `config.fish` and Claude Code settings (the
/// user's and the project's).
struct Home {
    fx: Fixture,
    anthropic: String,
    token: String,
    groq: String,
    hf: String,
    xai: String,
    github: String,
    openai: String,
    bashrc: PathBuf,
    zshrc: PathBuf,
    fish: PathBuf,
    settings: PathBuf,
    project_settings: PathBuf,
}

impl Home {
    fn new() -> Self {
        let mut fx = Fixture::new();
        let anthropic = fx.key("anthropic");
        let token = fx.key("token");
        let groq = fx.key("groq");
        let hf = fx.key("huggingface");
        let xai = fx.key("xai");
        let github = fx.key("github");
        let openai = fx.key("openai");
        let bashrc = fx.home_file(
            ".bashrc",
            &format!(
                "# ~/.bashrc\n\
                 export PATH=\"$HOME/bin:$PATH\"\n\
                 export ANTHROPIC_API_KEY={anthropic}\n\
                 MY_SERVICE_TOKEN='{token}'\n\
                 export MY_SERVICE_TOKEN\n\
                 if [ -n \"$PS1\" ]; then\n\
                 \x20   alias ll='ls -l'\n\
                 \x20   export GROQ_API_KEY=\"{groq}\"\n\
                 fi\n\
                 export EDITOR=vim HF_TOKEN={hf}\n\
                 PS1='\\u@\\h \\w\\$ '\n"
            ),
        );
        std::fs::set_permissions(&bashrc, std::fs::Permissions::from_mode(0o640)).unwrap();
        let zshrc = fx.home_file(
            ".zshrc",
            &format!(
                "setopt autocd\n\
                 if [[ -o interactive ]]; then\n\
                 \x20 export XAI_API_KEY={xai}\n\
                 fi\n\
                 bindkey -e\n"
            ),
        );
        let fish = fx.home_file(
            ".config/fish/config.fish",
            &format!(
                "set -gx EDITOR vim\n\
                 set -gx GITHUB_TOKEN {github}\n\
                 if status is-interactive\n\
                 \x20   abbr -a g git\n\
                 end\n"
            ),
        );
        // Valid, but not how Claude Code writes it: odd spacing, `env` between other keys, the
        // secret second in `env`, nested objects and arrays, no final newline.
        let settings = fx.home_file(
            ".claude/settings.json",
            &format!(
                "{{\n    \"permissions\" : {{ \"deny\": [ \"Read(./.env)\" ], \"allow\" : [] }},\n\
                 \"env\":{{\n  \"DISABLE_TELEMETRY\":\"1\",   \"ANTHROPIC_API_KEY\" : \"{anthropic}\"}},\n\
                 \t\"model\": \"opus\", \"hooks\": {{\"PostToolUse\": [{{\"matcher\": \"Bash\", \
                 \"hooks\": [{{\"type\": \"command\", \"command\": \"true\"}}]}}]}},\n\
                 \"zeta\": 1.5, \"alpha\": null}}"
            ),
        );
        let project_settings = fx.project_file(
            ".claude/settings.local.json",
            &format!("{{\"env\": {{\"OPENAI_API_KEY\": \"{openai}\"}}, \"model\": \"sonnet\"}}\n"),
        );
        Home {
            fx,
            anthropic,
            token,
            groq,
            hf,
            xai,
            github,
            openai,
            bashrc,
            zshrc,
            fish,
            settings,
            project_settings,
        }
    }

    fn files(&self) -> [&PathBuf; 5] {
        [
            &self.bashrc,
            &self.zshrc,
            &self.fish,
            &self.settings,
            &self.project_settings,
        ]
    }

    fn home(&self) -> &str {
        self.fx.home.to_str().unwrap()
    }
}

#[test]
fn fix_moves_keys_to_the_store_and_removes_only_their_lines() {
    let h = Home::new();
    let before: Vec<String> = h.files().iter().map(|p| read(p)).collect();
    let r = h.fx.run(&["fix", "--yes", "--home", h.home()], &[]);
    // The mixed line is left for the user, so the exit status says something is left to do.
    assert_eq!(r.code, 1, "stdout: {}\nstderr: {}", r.stdout, r.stderr);

    // Every key is in the store, the one on the mixed line included.
    for (name, value) in [
        ("ANTHROPIC_API_KEY", &h.anthropic),
        ("MY_SERVICE_TOKEN", &h.token),
        ("GROQ_API_KEY", &h.groq),
        ("HF_TOKEN", &h.hf),
        ("XAI_API_KEY", &h.xai),
        ("GITHUB_TOKEN", &h.github),
        ("OPENAI_API_KEY", &h.openai),
    ] {
        assert_eq!(secret_get(&h.fx, name).as_ref(), Some(value), "{name}");
    }
    // The same key in .bashrc and settings.json is one entry.
    assert_eq!(secret_get(&h.fx, "ANTHROPIC_API_KEY_2"), None);

    // The lines are gone, and every other byte is where it was.
    assert_eq!(
        read(&h.bashrc),
        format!(
            "# ~/.bashrc\n\
             export PATH=\"$HOME/bin:$PATH\"\n\
             if [ -n \"$PS1\" ]; then\n\
             \x20   alias ll='ls -l'\n\
             fi\n\
             export EDITOR=vim HF_TOKEN={}\n\
             PS1='\\u@\\h \\w\\$ '\n",
            h.hf
        )
    );
    // The `if` body would be empty, which bash rejects: a `:` keeps it valid.
    assert_eq!(
        read(&h.zshrc),
        "setopt autocd\n\
         if [[ -o interactive ]]; then\n\
         \x20 :  # moved to the keyfence store by `keyfence fix`\n\
         fi\n\
         bindkey -e\n"
    );
    assert_eq!(
        read(&h.fish),
        "set -gx EDITOR vim\nif status is-interactive\n    abbr -a g git\nend\n"
    );
    let mode = std::fs::metadata(&h.bashrc).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "the edited file keeps its mode");

    // Settings: the entry is gone, everything else is the same value in the same order, written
    // the way Claude Code writes it.
    let mut want: Value = serde_json::from_str(&before[3]).unwrap();
    want["env"]
        .as_object_mut()
        .unwrap()
        .remove("ANTHROPIC_API_KEY");
    let got_text = read(&h.settings);
    let got: Value = serde_json::from_str(&got_text).unwrap();
    assert_eq!(got, want);
    let order: Vec<&String> = got.as_object().unwrap().keys().collect();
    assert_eq!(
        order,
        ["permissions", "env", "model", "hooks", "zeta", "alpha"]
    );
    assert_eq!(got["env"], json!({"DISABLE_TELEMETRY": "1"}));
    assert_eq!(got_text, serde_json::to_string_pretty(&want).unwrap());
    // The project's file: its `env` held only the key, so `env` goes too.
    assert_eq!(read(&h.project_settings), "{\n  \"model\": \"sonnet\"\n}\n");

    // Backups hold the original bytes, readable only by the owner.
    for (p, old) in h.files().iter().zip(&before) {
        assert_eq!(&read(&backup(p)), old, "{}", p.display());
        let mode = std::fs::metadata(backup(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    // The report: what went where, what is left, and what to do next.
    for needle in [
        "~/.bashrc:3  ANTHROPIC_API_KEY",
        "~/.bashrc:4,5  MY_SERVICE_TOKEN",
        "~/.bashrc:8  GROQ_API_KEY",
        "~/.claude/settings.json:4  ANTHROPIC_API_KEY (env entry)",
        ".claude/settings.local.json:1  OPENAI_API_KEY (env entry)",
        "~/.bashrc:10  HF_TOKEN: the line does more than set it",
        "~/.bashrc.keyfence-bak",
        "keyfence run --inject GITHUB_TOKEN -- COMMAND",
        "keyfence setup claude",
        "rotate",
    ] {
        assert!(r.stdout.contains(needle), "no {needle:?} in:\n{}", r.stdout);
    }

    // The audit no longer sees the moved keys; only the one on the mixed line is left.
    let audit = h.fx.run(
        &[
            "audit",
            "--only",
            "shell,agent",
            "--home",
            h.home(),
            "--format",
            "json",
        ],
        &[],
    );
    let left: Vec<String> = audit
        .findings()
        .iter()
        .filter_map(|f| f["secret"]["fingerprint"].as_str().map(str::to_string))
        .collect();
    for k in [
        &h.anthropic,
        &h.token,
        &h.groq,
        &h.xai,
        &h.github,
        &h.openai,
    ] {
        assert!(
            !left.contains(&sha12(k)),
            "still reported: {}",
            audit.stdout
        );
    }
    assert!(left.contains(&sha12(&h.hf)), "{}", audit.stdout);

    // Running it again changes no file and makes no new backup; it deletes the first run's
    // backups whose keys are all stored and gone from their files (the one of a file that still
    // holds a key stays).
    let files = snapshot(&h.fx.home);
    let again = h.fx.run(&["fix", "--yes", "--home", h.home()], &[]);
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert!(
        again.stdout.contains("already holds this value"),
        "{}",
        again.stdout
    );
    let after = snapshot(&h.fx.home);
    // The store is rewritten (same entries); every other file is as it was.
    let outside_store = |s: Vec<(PathBuf, Vec<u8>)>| {
        s.into_iter()
            .filter(|(p, _)| !p.starts_with(h.fx.home.join(".local")))
            .collect::<Vec<_>>()
    };
    let (files, after) = (outside_store(files), outside_store(after));
    let deleted: Vec<PathBuf> = files
        .iter()
        .map(|(p, _)| p.clone())
        .filter(|p| !after.iter().any(|(q, _)| q == p))
        .collect();
    assert!(!deleted.is_empty(), "{}", again.stderr);
    for p in &deleted {
        let name = p.strip_prefix(&h.fx.home).unwrap().display().to_string();
        assert!(name.contains(".keyfence-bak"), "{name} went");
        assert!(
            again.stderr.contains(&format!("deleted ~/{name}")),
            "{}",
            again.stderr
        );
    }
    let kept: Vec<_> = files
        .into_iter()
        .filter(|(p, _)| !deleted.contains(p))
        .collect();
    assert_eq!(kept, after);
}

#[test]
fn dry_run_prints_redacted_diffs_and_changes_nothing() {
    let mut h = Home::new();
    let before = snapshot(h.fx.dir.path());
    let r = h.fx.run(&["fix", "--dry-run", "--home", h.home()], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        snapshot(h.fx.dir.path()),
        before,
        "a dry run wrote something"
    );
    assert!(!h.fx.home.join(".local/share/keyfence").exists());

    let tail = |k: &str| k[k.len() - 2..].to_string();
    for needle in [
        format!(
            "-export ANTHROPIC_API_KEY=sk-ant-api03-…{}",
            tail(&h.anthropic)
        ),
        "-export MY_SERVICE_TOKEN\n".to_string(),
        format!("+++ {}", h.bashrc.display()),
        " export EDITOR=vim HF_TOKEN=".to_string(),
        "+  :  # moved to the keyfence store".to_string(),
        "-set -gx GITHUB_TOKEN ghp_…".to_string(),
        "+  \"model\": \"opus\",".to_string(),
        "~/.bashrc:10  left in place".to_string(),
        "~/.bashrc:4,5  would be removed".to_string(),
        "would be stored as ANTHROPIC_API_KEY".to_string(),
    ] {
        assert!(
            r.stdout.contains(&needle),
            "no {needle:?} in:\n{}",
            r.stdout
        );
    }

    // With a store: still unchanged.
    let other = h.fx.key("anthropic");
    assert_eq!(
        raw(&h.fx, &["secret", "set", "ANTHROPIC_API_KEY"], &other).code,
        0
    );
    let before = snapshot(h.fx.dir.path());
    let r = h.fx.run(&["fix", "--dry-run"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        snapshot(h.fx.dir.path()),
        before,
        "a dry run wrote something"
    );
    assert!(
        r.stdout.contains("would be stored as ANTHROPIC_API_KEY_2 (ANTHROPIC_API_KEY already holds a different value)"),
        "{}",
        r.stdout
    );
}

#[test]
fn without_yes_or_a_terminal_it_refuses() {
    let h = Home::new();
    let before = snapshot(h.fx.dir.path());
    let r = h.fx.run(&["fix"], &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    for needle in [
        "no terminal",
        "--yes",
        "--dry-run",
        "ANTHROPIC_API_KEY (Anthropic",
    ] {
        assert!(r.stderr.contains(needle), "no {needle:?} in:\n{}", r.stderr);
    }
    assert_eq!(snapshot(h.fx.dir.path()), before);
}

#[test]
fn invalid_settings_json_stops_everything() {
    let mut fx = Fixture::new();
    let k = fx.key("anthropic");
    fx.home_file(".bashrc", &format!("export ANTHROPIC_API_KEY={k}\n"));
    let openai = fx.key("openai");
    fx.home_file(
        ".claude/settings.json",
        &format!("{{\n  \"env\": {{\n    \"OPENAI_API_KEY\": \"{openai}\",\n  }}\n}}\n"),
    );
    let before = snapshot(fx.dir.path());
    let r = fx.run(&["fix", "--yes"], &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr
            .contains("~/.claude/settings.json: invalid JSON at line 4, column 3"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
    assert_eq!(snapshot(fx.dir.path()), before);
}

#[test]
fn a_name_holding_another_value_gets_a_new_name() {
    let mut fx = Fixture::new();
    let old = fx.key("anthropic");
    let new = fx.key("anthropic");
    assert_eq!(
        raw(&fx, &["secret", "set", "ANTHROPIC_API_KEY"], &old).code,
        0
    );
    fx.home_file(".profile", &format!("export ANTHROPIC_API_KEY=\"{new}\"\n"));
    let r = fx.run(&["fix", "-y"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(secret_get(&fx, "ANTHROPIC_API_KEY"), Some(old));
    assert_eq!(secret_get(&fx, "ANTHROPIC_API_KEY_2"), Some(new));
    for needle in [
        "stored as ANTHROPIC_API_KEY_2 (ANTHROPIC_API_KEY already holds a different value)",
        "keyfence run --inject ANTHROPIC_API_KEY=ANTHROPIC_API_KEY_2 -- COMMAND",
        "keyfence run --profile agent --inject ANTHROPIC_API_KEY=ANTHROPIC_API_KEY_2 -- claude",
    ] {
        assert!(r.stdout.contains(needle), "no {needle:?} in:\n{}", r.stdout);
    }
    assert_eq!(read(&fx.home.join(".profile")), "");
}

#[test]
fn a_symlinked_start_up_file_is_edited_through_the_link() {
    let mut fx = Fixture::new();
    let k = fx.key("openai");
    let target = fx.home_file(
        "dotfiles/bashrc",
        &format!("alias g=git\nexport OPENAI_API_KEY={k}\n"),
    );
    std::os::unix::fs::symlink("dotfiles/bashrc", fx.home.join(".bashrc")).unwrap();
    let r = fx.run(&["fix", "--yes"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let link = std::fs::symlink_metadata(fx.home.join(".bashrc")).unwrap();
    assert!(link.file_type().is_symlink(), "the link was replaced");
    assert_eq!(read(&target), "alias g=git\n");
    // The backup, which holds the key, stays out of the dotfiles repository.
    assert_eq!(
        read(&fx.home.join(".bashrc.keyfence-bak")),
        format!("alias g=git\nexport OPENAI_API_KEY={k}\n")
    );
    assert!(!fx.home.join("dotfiles/bashrc.keyfence-bak").exists());
    assert_eq!(secret_get(&fx, "OPENAI_API_KEY"), Some(k));
}

#[test]
fn nothing_to_fix() {
    let fx = Fixture::new();
    fx.home_file(".bashrc", "export PATH=/usr/bin\n");
    let r = fx.run(&["fix", "--yes"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("nothing to fix"), "{}", r.stderr);
    assert!(!fx.home.join(".local/share/keyfence").exists());
}

/// Without `--yes`, on a terminal: one question per key, and a file that changes while the
/// question waits is not edited (`script` from util-linux provides the terminal).
#[test]
fn asks_per_key_on_the_terminal_and_leaves_a_file_changed_meanwhile() {
    if Command::new("script").arg("--version").output().is_err() {
        skip("script missing");
        return;
    }
    let mut fx = Fixture::new();
    let (k1, k2, k3) = (fx.key("anthropic"), fx.key("openai"), fx.key("groq"));
    let bashrc = fx.home_file(
        ".bashrc",
        &format!("export ANTHROPIC_API_KEY={k1}\nexport OPENAI_API_KEY={k2}\n"),
    );
    let zshrc = fx.home_file(".zshrc", &format!("export GROQ_API_KEY={k3}\n"));
    // The answers come after the scan, and after .zshrc changed: yes, no, yes.
    let input =
        "(sleep 2; echo '# edited meanwhile' >> \"$HOME/.zshrc\"; printf 'y\\nn\\ny\\n'; sleep 2)";
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{input} | script -qec '{BIN} fix; echo rc=$?' /dev/null"
        ))
        .current_dir(&fx.project)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &fx.home)
        .output()
        .expect("script");
    let run = Run::from(out);
    run.assert_no_secret(&fx.planted);
    let text = run.stdout.replace('\r', "");
    assert_eq!(text.matches("[y/N]").count(), 3, "{text}");
    assert!(
        text.contains("~/.zshrc changed since keyfence read it"),
        "{text}"
    );
    assert!(text.contains("rc=1"), "{text}");
    assert_eq!(read(&bashrc), format!("export OPENAI_API_KEY={k2}\n"));
    assert_eq!(
        read(&zshrc),
        format!("export GROQ_API_KEY={k3}\n# edited meanwhile\n")
    );
    assert!(!backup(&zshrc).exists());
    assert_eq!(secret_get(&fx, "ANTHROPIC_API_KEY"), Some(k1));
    assert_eq!(secret_get(&fx, "OPENAI_API_KEY"), None);
    // Stored before the edit was attempted: the key is safe even though the file was not edited.
    assert_eq!(secret_get(&fx, "GROQ_API_KEY"), Some(k3));
}

#[test]
fn a_file_sourced_by_a_start_up_file_is_fixed_too() {
    let mut fx = Fixture::new();
    let k = fx.key("github");
    fx.home_file(".bashrc", "alias g=git\nsource ~/.secrets.sh\n");
    let secrets = fx.home_file(
        ".secrets.sh",
        &format!("export EDITOR=vim\nexport GITHUB_TOKEN={k}\n"),
    );
    let r = fx.run(&["fix", "--yes"], &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(read(&secrets), "export EDITOR=vim\n");
    assert_eq!(
        read(&fx.home.join(".bashrc")),
        "alias g=git\nsource ~/.secrets.sh\n"
    );
    assert_eq!(secret_get(&fx, "GITHUB_TOKEN"), Some(k));
}

/// `--format json`: names, fingerprints and places of what was stored, the lines removed and
/// the backups — never a value.
#[test]
fn json_output_lists_what_was_stored_and_changed() {
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    fx.home_file(
        ".bashrc",
        &format!("alias ll='ls -l'\nexport ANTHROPIC_API_KEY=\"{key}\"\n"),
    );
    let dry = fx.run(&["fix", "--dry-run", "--format", "json"], &[]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let d = dry.json();
    assert_eq!(d["dry_run"], true);
    assert_eq!(d["would_store"][0]["fingerprint"], sha12(&key));
    assert!(
        read(&fx.home.join(".bashrc")).contains("export"),
        "dry run changed the file"
    );
    let r = fx.run(&["fix", "--yes", "--format", "json"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    assert_eq!(v["version"], 1);
    let stored = v["stored"].as_array().unwrap();
    assert_eq!(stored.len(), 1, "{v}");
    assert_eq!(stored[0]["variable"], "ANTHROPIC_API_KEY");
    assert_eq!(stored[0]["stored_as"], "ANTHROPIC_API_KEY");
    assert_eq!(stored[0]["fingerprint"], sha12(&key));
    assert!(
        stored[0]["found_in"][0]
            .as_str()
            .unwrap()
            .ends_with(".bashrc:2"),
        "{v}"
    );
    assert!(
        v["removed"][0].as_str().unwrap().contains(".bashrc:2"),
        "{v}"
    );
    assert_eq!(v["backups"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(secret_get(&fx, "ANTHROPIC_API_KEY"), Some(key));
    assert_eq!(read(&fx.home.join(".bashrc")), "alias ll='ls -l'\n");
}

/// The backups `fix` leaves beside the files it changed still hold the keys in clear: `audit`
/// reports each, with the command that deletes it, and stops once it is gone.
#[test]
fn audit_reports_the_backups_fix_left() {
    let h = Home::new();
    let r = h.fx.run(&["fix", "--yes", "--home", h.home()], &[]);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let bak = backup(&h.bashrc);
    assert!(bak.exists());
    let audit = |h: &Home| {
        h.fx.run(
            &[
                "audit",
                "--only",
                "credfile",
                "--format",
                "json",
                "--home",
                h.home(),
            ],
            &[],
        )
        .json()["findings"]
            .as_array()
            .unwrap()
            .clone()
    };
    let found = audit(&h);
    let at_backup: Vec<_> = found
        .iter()
        .filter(|f| f["location"]["path"].as_str() == Some(bak.to_str().unwrap()))
        .collect();
    assert!(!at_backup.is_empty(), "{found:#?}");
    assert!(at_backup.iter().all(|f| {
        f["fix"]
            .as_str()
            .unwrap()
            .starts_with("check the changed file, then delete the backup: rm ")
    }));
    for b in std::fs::read_dir(h.home()).unwrap().filter_map(|e| e.ok()) {
        if b.file_name().to_string_lossy().contains(".keyfence-bak") {
            std::fs::remove_file(b.path()).unwrap();
        }
    }
    assert!(
        !audit(&h)
            .iter()
            .any(|f| f["location"]["path"].as_str() == Some(bak.to_str().unwrap()))
    );
}

/// `fix` does what audit's `credential-file-permissions` asks: `chmod 600` of a credential file
/// others can read (said with --dry-run, done with --yes), after which audit no longer reports it.
#[test]
fn fix_makes_credential_files_private() {
    use std::os::unix::fs::PermissionsExt;
    let mut fx = Fixture::new();
    let aws = fx.key("aws-secret");
    let creds = fx.home_file(
        ".aws/credentials",
        &format!("[default]\naws_secret_access_key = {aws}\n"),
    );
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    let home = fx.home.to_str().unwrap().to_string();
    let audit = |fx: &Fixture| {
        fx.run(
            &[
                "audit", "--only", "credfile", "--format", "json", "--home", &home,
            ],
            &[],
        )
        .stdout
        .contains("credential-file-permissions")
    };
    assert!(audit(&fx));
    let mode = || std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777;
    let r = fx.run(&["fix", "--dry-run", "--home", &home], &[]);
    assert!(r.stderr.contains("is mode 0644"), "{}", r.stderr);
    assert_eq!(mode(), 0o644);
    let r = fx.run(&["fix", "--yes", "--home", &home], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("chmod 600"), "{}", r.stderr);
    assert_eq!(mode(), 0o600);
    assert!(!audit(&fx));
}

/// A key in the project's `.env` goes to the store and the line keeps a `store:NAME`
/// reference (its comment and the file's other lines as they were); a value that spans lines
/// is left for the user. The real Node.js loads that `.env` (`node --env-file`) and, run with
/// `keyfence run --inject`, gets the key: a variable already set wins over the file, as in the
/// dotenv libraries. The backup in the project is reported by credfile alone, and the next
/// `fix` deletes it once the change is checked.
#[test]
fn a_project_env_key_becomes_a_store_reference() {
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    let quoted = fx.key("groq");
    let multi = fx.key("openai");
    let original = format!(
        "PORT=3000\n\
         ANTHROPIC_API_KEY={key}  # the team's key\n\
         export GROQ_API_KEY=\"{quoted}\"\n\
         OPENAI_API_KEY=\"{multi}\nsecond line\"\n"
    );
    let env = fx.project_file(".env", &original);
    let dry = fx.run(&["fix", "--dry-run"], &[]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout
            .contains(".env:2  would become store:ANTHROPIC_API_KEY, a reference"),
        "{}",
        dry.stdout
    );
    assert_eq!(read(&env), original);

    let r = fx.run(&["fix", "--yes"], &[]);
    assert_eq!(r.code, 1, "the multi-line value is left: {}", r.stderr);
    assert_eq!(
        read(&env),
        format!(
            "PORT=3000\n\
             ANTHROPIC_API_KEY=store:ANTHROPIC_API_KEY  # the team's key\n\
             export GROQ_API_KEY=store:GROQ_API_KEY\n\
             OPENAI_API_KEY=\"{multi}\nsecond line\"\n"
        )
    );
    assert!(
        r.stdout
            .contains(".env:4  OPENAI_API_KEY: the value spans several lines")
    );
    assert_eq!(secret_get(&fx, "ANTHROPIC_API_KEY"), Some(key.clone()));
    assert_eq!(secret_get(&fx, "GROQ_API_KEY"), Some(quoted.clone()));
    for k in [&key, &quoted, &multi] {
        assert!(!r.stdout.contains(k.as_str()) && !r.stderr.contains(k.as_str()));
    }

    // The program still gets the key, from keyfence, while its .env holds only the reference.
    // The value's fingerprint, so that no key is printed.
    let node = "node --env-file=.env -e 'const v = process.env.ANTHROPIC_API_KEY; \
                process.stdout.write(v.startsWith(\"store:\") ? v : require(\"crypto\")\
                .createHash(\"sha256\").update(v).digest(\"hex\").slice(0, 12))'";
    let direct = Command::new("sh")
        .args(["-c", node])
        .current_dir(&fx.project)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .output()
        .expect("node");
    assert_eq!(
        String::from_utf8_lossy(&direct.stdout),
        "store:ANTHROPIC_API_KEY"
    );
    let injected = fx.run(
        &[
            "run",
            "--inject",
            "ANTHROPIC_API_KEY",
            "--",
            "sh",
            "-c",
            node,
        ],
        &[],
    );
    assert_eq!(injected.code, 0, "{}", injected.stderr);
    assert_eq!(injected.stdout, sha12(&key));

    // audit: the references are no keys; the backup is reported once, by credfile.
    let found = fx.run(
        &["audit", "--only", "dotenv,credfile", "--format", "json"],
        &[],
    );
    let f = found.findings();
    let at = |path: &str| {
        f.iter()
            .filter(|x| {
                x["location"]["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(path))
            })
            .map(|x| x["source"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(at(".env"), vec!["dotenv"], "{f:#?}");
    assert_eq!(at(".env.keyfence-bak"), vec!["credfile"; 3], "{f:#?}");

    // The next run: the backup still holds the multi-line key, which is not stored: it stays.
    let again = fx.run(&["fix", "--yes"], &[]);
    assert!(backup(&env).exists(), "{}", again.stderr);
    // Once that one is moved by hand, the backup's keys are all stored and gone: it goes.
    std::fs::write(&env, "PORT=3000\nOPENAI_API_KEY=store:OPENAI_API_KEY\n").unwrap();
    assert_eq!(
        raw(&fx, &["secret", "set", "OPENAI_API_KEY"], &multi).code,
        0
    );
    let last = fx.run(&["fix", "--yes"], &[]);
    assert_eq!(last.code, 0, "{}", last.stderr);
    assert!(
        last.stderr.contains("deleted .env.keyfence-bak"),
        "{}",
        last.stderr
    );
    assert!(!backup(&env).exists());
}
