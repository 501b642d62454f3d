//! `keyfence setup claude [--dry-run] [--api-key-helper] [--shell SHELL]`, and `--hook`

use super::{Exit, home_dir, threads};
use crate::audit::{self, Context, Settings};
use crate::cli::{GlobalArgs, InitShell, SetupCommand};
use crate::finding::Source;
use crate::secret::SecretValue;
use crate::setup::claude::{self, KEY_NAME};
use crate::setup::rc::{self, Shell};
use crate::store::{Interactive, Paths, SetOutcome, Store, Time};
use anyhow::{Context as _, Result, bail};
use std::os::unix::ffi::OsStrExt;

pub fn run(g: &GlobalArgs, cmd: &SetupCommand) -> Result<Exit> {
    match cmd {
        SetupCommand::Claude {
            dry_run,
            hook: true,
            ..
        } => setup_claude_hook(*dry_run),
        SetupCommand::Claude {
            dry_run,
            hook: false,
            api_key_helper,
            shell,
            home,
        } => setup_claude(g, home, *dry_run, *api_key_helper, *shell),
    }
}

/// The shell whose start-up file gets the block: `--shell`, else `$SHELL`.
fn chosen_shell(shell: Option<InitShell>) -> Result<Shell> {
    if let Some(s) = shell {
        return Ok(match s {
            InitShell::Bash => Shell::Bash,
            InitShell::Zsh => Shell::Zsh,
            InitShell::Fish => Shell::Fish,
        });
    }
    let var = std::env::var("SHELL").unwrap_or_default();
    Shell::from_path(&var).ok_or_else(|| {
        anyhow::anyhow!(
            "cannot tell which start-up file to edit: SHELL is {}, and keyfence knows bash, zsh \
             and fish; nothing was changed\n\
             hint: name the shell with `keyfence setup claude --shell bash|zsh|fish`, or start \
             claude as `keyfence run --profile agent -- claude`",
            if var.is_empty() {
                "not set".to_string()
            } else {
                format!("`{var}`")
            }
        )
    })
}

fn setup_claude(
    g: &GlobalArgs,
    home: &crate::cli::HomeArg,
    dry_run: bool,
    api_key_helper: bool,
    shell: Option<InitShell>,
) -> Result<Exit> {
    let home = home_dir(home)?;
    let (exe, path_warning) = super::keyfence_path()?;
    if let Some(w) = &path_warning {
        eprintln!("keyfence: warning: {w}");
    }
    // Read and check every file before touching the store: invalid JSON or a broken link stops
    // everything.
    let settings = if api_key_helper {
        Some(claude::plan_settings(&home, &exe)?).filter(|c| c.changes_anything())
    } else {
        claude::plan_remove_helper(&home, &exe)?
    };
    let foreign_helper = claude::plan_settings(&home, &exe)?
        .previous_helper
        .filter(|h| !claude::is_keyfence_helper(h, &exe));
    let exported = std::env::var_os(KEY_NAME)
        .filter(|v| !v.is_empty())
        .map(|v| SecretValue::new(v.as_bytes()));
    let paths = Paths::from_env()?;
    let stored = Store::open(paths.clone(), &Interactive)
        .ok()
        .and_then(|s| s.entries().get(KEY_NAME).map(|e| e.value.clone()));
    let logged_in = claude::oauth_login(&home);
    let fingerprint = match (&exported, &stored) {
        (Some(v), _) => Some(v.fingerprint()),
        (None, Some(v)) => Some(v.fingerprint()),
        (None, None) if logged_in && !api_key_helper => None,
        (None, None) => bail!(
            "no {KEY_NAME} in the environment or in the store{}, so Claude Code would have no key\n\
             hint: store it first with `keyfence secret set {KEY_NAME}`{}",
            if api_key_helper {
                " for the apiKeyHelper"
            } else {
                ", and Claude Code is not logged in"
            },
            if api_key_helper {
                ""
            } else {
                ", or log in with `claude auth login`"
            }
        ),
    };
    let shell = chosen_shell(shell)?;
    let rc = rc::plan(shell, &home, |v| std::env::var(v).ok(), &exe)?;
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
    match (&exported, &stored, &fingerprint) {
        (Some(v), Some(s), Some(fp)) if v == s => say(format!(
            "{KEY_NAME} (fingerprint {fp}) is already in the store: keyfence hands it to claude \
             when claude starts"
        )),
        (Some(v), _, Some(fp)) => {
            if dry_run {
                say(format!(
                    "{verb} store the exported {KEY_NAME} (fingerprint {fp}) in {}",
                    paths.vault.display()
                ));
            } else {
                let new = super::secret::new_value(KEY_NAME, v.clone(), None, None);
                let outcome = Store::update(&paths, &Interactive, |e| Ok(e.set(new, Time::now())))?;
                // Read it back before relying on it.
                let back = Store::open(paths.clone(), &Interactive)?;
                if back.get(KEY_NAME)?.value != *v {
                    bail!("{KEY_NAME} did not read back from the store; nothing else was changed");
                }
                say(format!(
                    "{} {KEY_NAME} (fingerprint {fp}) in {}: keyfence hands it to claude when \
                     claude starts, so it need not be exported anywhere",
                    if outcome == SetOutcome::Rotated {
                        "replaced"
                    } else {
                        "stored"
                    },
                    paths.vault.display()
                ));
            }
        }
        (None, Some(_), Some(fp)) => say(format!(
            "{KEY_NAME} (fingerprint {fp}) is already in the store: keyfence hands it to claude \
             when claude starts"
        )),
        _ => say(
            "Claude Code is logged in (`claude auth login`): no key to store; claude keeps using \
             ~/.claude/.credentials.json, which the commands it runs cannot read under the \
             agent profile"
                .into(),
        ),
    }
    // 2. The shell starts claude through keyfence.
    let rc_shown = audit::display_path(&home, &rc.path);
    let link = if rc.real != rc.path {
        format!(" (a link: {} is edited)", rc.real.display())
    } else {
        String::new()
    };
    let what = "the commands claude runs get none of its keys and cannot read its environment \
                or memory, keyfence's store, or credential files such as \
                ~/.claude/.credentials.json";
    match rc.state {
        rc::RcState::Present | rc::RcState::LoadedByUser => say(format!(
            "{rc_shown} already loads `keyfence shell-init {}`: claude starts through keyfence's \
             agent profile: {what}",
            shell.name()
        )),
        _ if dry_run => {
            say(format!(
                "{verb} make {rc_shown}{link} load `keyfence shell-init {}`, so that claude \
                 starts through keyfence's agent profile:",
                shell.name()
            ));
            print!("{}", rc::diff(&rc));
        }
        _ => {
            let backup = rc::apply(&rc)?;
            say(format!(
                "claude now starts through keyfence's agent profile ({rc_shown}{link} loads \
                 `keyfence shell-init {}`): {what}",
                shell.name()
            ));
            if let Some(b) = backup {
                say(format!("  backup of the previous file: {}", b.display()));
            }
            say(
                "  a shell that is already running keeps the old definitions: run `exec $SHELL` \
                 or open a new terminal; `command claude` bypasses keyfence"
                    .into(),
            );
        }
    }
    let text = String::from_utf8_lossy(&rc.new_text);
    if let Some(line) = rc::redefined_after(&text, "claude") {
        say(format!(
            "warning: {rc_shown}:{line} defines `claude` again after shell-init is loaded, so \
             typing `claude` runs that definition, outside keyfence: delete it, or move it above \
             the line that loads shell-init"
        ));
    }
    let on_path = std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| d.is_absolute() && d.join("claude").is_file())
    });
    if !on_path {
        say(
            "note: no `claude` on PATH: keyfence's function runs the claude that PATH finds \
             (install Claude Code, or add its directory to PATH in the start-up file)"
                .into(),
        );
    }
    // 3. The apiKeyHelper: only where it is still needed.
    let settings_shown = audit::display_path(&home, &home.join(".claude/settings.json"));
    match settings {
        Some(change) if api_key_helper => {
            if dry_run {
                say(format!(
                    "{verb} set \"apiKeyHelper\": \"{}\" in {settings_shown}",
                    change.helper
                ));
            } else {
                let backup = claude::apply(&change)?;
                say(format!(
                    "set \"apiKeyHelper\": \"{}\" in {settings_shown}, for claude started \
                     without your shell (an IDE): the key stays out of environments, but any \
                     command claude runs there can run the helper and read the key",
                    change.helper
                ));
                if let Some(b) = backup {
                    say(format!("  backup of the previous file: {}", b.display()));
                }
            }
        }
        Some(change) => {
            let old = change.previous_helper.as_deref().unwrap_or_default();
            if dry_run {
                say(format!(
                    "{verb} remove \"apiKeyHelper\": \"{old}\" (written by an earlier keyfence \
                     setup) from {settings_shown}"
                ));
            } else {
                let backup = claude::apply(&change)?;
                say(format!(
                    "removed \"apiKeyHelper\": \"{old}\" (written by an earlier keyfence setup) \
                     from {settings_shown}: any command claude ran could run it and read the key; \
                     claude now gets its key from keyfence (`--api-key-helper` keeps it, for an \
                     IDE)"
                ));
                if let Some(b) = backup {
                    say(format!("  backup of the previous file: {}", b.display()));
                }
            }
        }
        None if api_key_helper => say(format!(
            "{settings_shown} already uses `{}` as apiKeyHelper",
            claude::helper_command(&exe)
        )),
        None => {}
    }
    if let Some(h) = foreign_helper {
        say(format!(
            "note: {settings_shown} sets another apiKeyHelper, `{h}`, left as it is: any command \
             claude runs can run it too"
        ));
    }
    // 4. Where the key is still exposed.
    if let Some(fingerprint) = &fingerprint {
        let remaining = still_exposed(&home, fingerprint)?;
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
    }
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
    let (exe, path_warning) = super::keyfence_path()?;
    if let Some(w) = &path_warning {
        eprintln!("keyfence: warning: {w}");
    }
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
    let (exe, _) = super::keyfence_path()?;
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
