//! `keyfence setup claude [--dry-run]`

use super::{Exit, home_dir, threads};
use crate::audit::{self, Context, Settings};
use crate::cli::{GlobalArgs, SetupCommand};
use crate::finding::Source;
use crate::secret::SecretValue;
use crate::setup::claude::{self, KEY_NAME};
use crate::store::{Interactive, Paths, SetOutcome, Store, Time};
use anyhow::{Context as _, Result, bail};
use std::os::unix::ffi::OsStrExt;

pub fn run(g: &GlobalArgs, cmd: &SetupCommand) -> Result<Exit> {
    match cmd {
        SetupCommand::Claude {
            dry_run,
            hook: true,
        } => setup_claude_hook(*dry_run),
        SetupCommand::Claude {
            dry_run,
            hook: false,
        } => setup_claude(g, *dry_run),
    }
}

fn setup_claude(g: &GlobalArgs, dry_run: bool) -> Result<Exit> {
    let home = home_dir(g)?;
    let exe = std::env::current_exe().context("finding keyfence's own path")?;
    // Read and check the settings before touching the store: invalid JSON stops everything.
    let change = claude::plan_settings(&home, &exe)?;
    let exported = std::env::var_os(KEY_NAME)
        .filter(|v| !v.is_empty())
        .map(|v| SecretValue::new(v.as_bytes()));
    let paths = Paths::from_env()?;
    let stored = Store::open(paths.clone(), &Interactive)
        .ok()
        .and_then(|s| s.entries().get(KEY_NAME).map(|e| e.value.clone()));
    let fingerprint = match (&exported, &stored) {
        (Some(v), _) => v.fingerprint(),
        (None, Some(v)) => v.fingerprint(),
        (None, None) => bail!(
            "no {KEY_NAME} in the environment or in the store, so Claude Code would have no key\n\
             hint: store it first with `keyfence secret set {KEY_NAME}`"
        ),
    };
    let say = |s: String| {
        if !g.quiet {
            println!("{s}");
        }
    };
    let verb = if dry_run { "would" } else { "will" };
    if dry_run {
        say("dry run: nothing is changed".into());
    }
    // 1. The key into the store.
    match (&exported, &stored) {
        (Some(v), Some(s)) if v == s => say(format!(
            "{KEY_NAME} (fingerprint {fingerprint}) is already in the store"
        )),
        (Some(v), _) => {
            if dry_run {
                say(format!(
                    "{verb} store the exported {KEY_NAME} (fingerprint {fingerprint}) in {}",
                    paths.vault.display()
                ));
            } else {
                let new = super::secret::new_value(KEY_NAME, v.clone(), None, None);
                let outcome = Store::update(&paths, &Interactive, |e| Ok(e.set(new, Time::now())))?;
                // Read it back before pointing Claude Code at it.
                let back = Store::open(paths.clone(), &Interactive)?;
                if back.get(KEY_NAME)?.value != *v {
                    bail!("{KEY_NAME} did not read back from the store; settings left unchanged");
                }
                say(format!(
                    "{} {KEY_NAME} (fingerprint {fingerprint}) in {}",
                    if outcome == SetOutcome::Rotated {
                        "replaced"
                    } else {
                        "stored"
                    },
                    paths.vault.display()
                ));
            }
        }
        (None, Some(_)) => say(format!(
            "{KEY_NAME} (fingerprint {fingerprint}) is already in the store"
        )),
        (None, None) => unreachable!("handled above"),
    }
    // 2. The helper in settings.json.
    let shown = audit::display_path(&home, &change.path);
    if !change.changes_anything() {
        say(format!(
            "{shown} already uses `{}` as apiKeyHelper",
            change.helper
        ));
    } else if dry_run {
        say(format!(
            "{verb} set \"apiKeyHelper\": \"{}\" in {shown}",
            change.helper
        ));
    } else {
        let backup = claude::apply(&change)?;
        say(format!(
            "set \"apiKeyHelper\": \"{}\" in {shown}",
            change.helper
        ));
        if let Some(b) = backup {
            say(format!("  backup of the previous file: {}", b.display()));
        }
    }
    if let Some(prev) = change
        .previous_helper
        .as_ref()
        .filter(|p| **p != change.helper)
    {
        say(format!("  (it replaces the previous helper `{prev}`)"));
    }
    // 3. Where the key is still exposed.
    let remaining = still_exposed(&home, &fingerprint)?;
    if remaining.is_empty() {
        say(format!(
            "{KEY_NAME} is exposed nowhere else that keyfence audit looks"
        ));
    } else {
        say(format!(
            "the key is still exposed in {} place{}:",
            remaining.len(),
            if remaining.len() == 1 { "" } else { "s" }
        ));
        for (place, fix) in &remaining {
            say(format!("  {place}\n    fix: {fix}"));
        }
        say("  `keyfence fix` moves exported keys into the store and removes the lines".into());
    }
    say(
        "what this protects: the key leaves every environment, so nothing Claude Code starts \
         inherits it or can read it from /proc. What it does not: any process in the agent's \
         tree can still run the helper command or read the store's files; `keyfence run --guard` \
         and `--sandbox` are what close that."
            .into(),
    );
    Ok(Exit::Clean)
}

/// Places, other than the store, where the key with `fingerprint` is found by an audit.
fn still_exposed(home: &std::path::Path, fingerprint: &str) -> Result<Vec<(String, String)>> {
    let settings = Settings {
        home: home.to_path_buf(),
        etc: "/etc".into(),
        projects: vec![std::env::current_dir()?],
        // Everywhere but the project's own files: those are the project's business.
        sources: Source::ALL
            .into_iter()
            .filter(|s| !matches!(s, Source::File | Source::Ci | Source::Package))
            .collect(),
        env: std::env::vars_os().collect(),
        max_filesize: 10 << 20,
        threads: threads(None),
    };
    let ctx = Context::new(&settings);
    let report = audit::run(&ctx);
    Ok(report
        .findings
        .iter()
        .filter(|f| f.secret.as_ref().and_then(|s| s.fingerprint.as_deref()) == Some(fingerprint))
        .map(|f| (crate::report::location_text(Some(home), f), f.fix.clone()))
        .collect())
}

/// `setup claude --hook`: the PreToolUse hook in ~/.claude/settings.json.
fn setup_claude_hook(dry_run: bool) -> Result<Exit> {
    use crate::setup::claude;
    let home = std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .ok_or_else(|| anyhow::anyhow!("HOME is not set"))?;
    let exe = std::env::current_exe()?;
    let change = claude::plan_hook(&home, &exe)?;
    if !change.changes_anything() {
        println!(
            "{}: the keyfence hook is already there",
            change.path.display()
        );
        return Ok(Exit::Clean);
    }
    if dry_run {
        println!(
            "would add a PreToolUse hook for Bash to {}: `{}`",
            change.path.display(),
            change.helper
        );
        return Ok(Exit::Clean);
    }
    let backup = claude::apply(&change)?;
    println!(
        "added a PreToolUse hook for Bash to {}: commands that match a profile now run under \
         `keyfence run --profile P`",
        change.path.display()
    );
    if let Some(b) = backup {
        println!("backup: {}", b.display());
    }
    Ok(Exit::Clean)
}

/// `keyfence __hook-claude`: Claude Code passes the tool call as JSON on stdin; a Bash command
/// that matches a profile comes back rewritten (`updatedInput`) to run under that profile.
///
/// It fails closed. Claude Code runs the command as written when a PreToolUse hook exits with
/// any status but 0 or 2 (a crash, a panic), so every failure here ends in status 2 with the
/// reason on stderr, which Claude Code shows the model and the command does not run: input
/// that is not JSON, a config file that cannot be loaded (keyfence cannot tell which profile
/// the command needs), a command line that runs a secret-injecting profile along with other
/// commands.
pub fn hook_claude() -> Result<Exit> {
    std::panic::set_hook(Box::new(|info| {
        eprintln!(
            "keyfence: the hook failed ({info}); the command was not run\n\
             hint: report this at keyfence's issue tracker; `keyfence setup claude --hook` \
             put the hook in ~/.claude/settings.json"
        );
        std::process::exit(2);
    }));
    let blocked = |message: String| {
        eprintln!("{message}");
        Ok(Exit::Error)
    };
    let output = match hook_output() {
        Ok(None) => return Ok(Exit::Clean),
        Ok(Some(out)) => out,
        Err(HookFailure::Block(m)) => return blocked(m),
        Err(HookFailure::Error(e)) => {
            return blocked(format!(
                "keyfence: the command was not run: {e:#}\n\
                 hint: keyfence cannot tell which profile it needs until this is fixed"
            ));
        }
    };
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{output}").and_then(|()| stdout.flush()) {
        // Not the usual broken pipe = success: without the rewritten command Claude Code
        // would run the original.
        return blocked(format!(
            "keyfence: cannot hand the rewritten command to Claude Code: {e}; the command was \
             not run"
        ));
    }
    Ok(Exit::Clean)
}

enum HookFailure {
    Block(String),
    Error(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for HookFailure {
    fn from(e: E) -> Self {
        HookFailure::Error(e.into())
    }
}

/// The JSON to print (None: run the command as written).
fn hook_output() -> Result<Option<serde_json::Value>, HookFailure> {
    use crate::setup::claude::HookDecision;
    use std::io::Read;
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the tool call from stdin")?;
    let call: serde_json::Value =
        serde_json::from_str(&input).context("the tool call on stdin is not JSON")?;
    if call["tool_name"] != "Bash" {
        return Ok(None);
    }
    let Some(command) = call["tool_input"]["command"].as_str() else {
        return Ok(None);
    };
    let cwd = match call["cwd"].as_str() {
        Some(c) => std::path::PathBuf::from(c),
        None => std::env::current_dir().context("finding the current directory")?,
    };
    let config = crate::policy::Config::load(
        crate::policy::project_file(&cwd).as_deref(),
        crate::policy::user_file().as_deref(),
    )?;
    let exe = std::env::current_exe().context("finding keyfence's own path")?;
    let wrapped = match claude::decide(&config, &exe, command) {
        HookDecision::Pass => return Ok(None),
        HookDecision::Block(m) => return Err(HookFailure::Block(m)),
        HookDecision::Wrap { command, .. } => command,
    };
    let mut updated = call["tool_input"].clone();
    updated["command"] = serde_json::Value::String(wrapped);
    Ok(Some(serde_json::json!({
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "updatedInput": updated,
        }
    })))
}
