//! `keyfence setup claude [--dry-run] [--api-key-helper] [--shell SHELL]`, and `--hook`;
//! `keyfence setup codex|gemini [--dry-run] [--shell SHELL]`; `keyfence setup cursor [--dry-run]`

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
        SetupCommand::Codex {
            dry_run,
            shell,
            home,
        } => setup_agent(g, Agent::Codex, home, *dry_run, *shell),
        SetupCommand::Gemini {
            dry_run,
            shell,
            home,
        } => setup_agent(g, Agent::Gemini, home, *dry_run, *shell),
        SetupCommand::Cursor { dry_run, home } => setup_cursor(g, home, *dry_run),
    }
}

/// The shell whose start-up file gets the block: `--shell`, else `$SHELL`.
fn chosen_shell(shell: Option<InitShell>, program: &str) -> Result<Shell> {
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
             hint: name the shell with `keyfence setup {program} --shell bash|zsh|fish`, or \
             start {program} as `keyfence run --profile agent -- {program}`",
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
    let shell = chosen_shell(shell, "claude")?;
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
    store_agent_key(
        &say,
        dry_run,
        &paths,
        KEY_NAME,
        "claude",
        &exported,
        &stored,
        &fingerprint,
        "Claude Code is logged in (`claude auth login`): no key to store; claude keeps using \
         ~/.claude/.credentials.json, which the commands it runs cannot read under the agent \
         profile",
    )?;
    // 2. The shell starts claude through keyfence.
    shell_starts_through_keyfence(
        &say,
        dry_run,
        &home,
        shell,
        &rc,
        "claude",
        "~/.claude/.credentials.json",
    )?;
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

/// Step 2 of `setup claude`, `setup codex` and `setup gemini`: the user's start-up file loads
/// `keyfence shell-init`, whose function starts `program` under the agent profile. Says what is
/// (or would be) done, shows the diff under `--dry-run`, and warns of a later definition of
/// `program` in the file and of a `program` missing from PATH. `login_file`: the agent's
/// credential file, named in what the commands it runs can no longer read.
fn shell_starts_through_keyfence(
    say: &impl Fn(String),
    dry_run: bool,
    home: &std::path::Path,
    shell: Shell,
    rc: &rc::RcChange,
    program: &str,
    login_file: &str,
) -> Result<()> {
    let verb = if dry_run { "would" } else { "will" };
    let rc_shown = audit::display_path(home, &rc.path);
    let link = if rc.real != rc.path {
        format!(" (a link: {} is edited)", rc.real.display())
    } else {
        String::new()
    };
    let what = format!(
        "the commands {program} runs get none of its keys and cannot read its environment or \
         memory, keyfence's store, or credential files such as {login_file}"
    );
    match rc.state {
        rc::RcState::Present | rc::RcState::LoadedByUser => say(format!(
            "{rc_shown} already loads `keyfence shell-init {}`: {program} starts through \
             keyfence's agent profile: {what}",
            shell.name()
        )),
        _ if dry_run => {
            say(format!(
                "{verb} make {rc_shown}{link} load `keyfence shell-init {}`, so that {program} \
                 starts through keyfence's agent profile:",
                shell.name()
            ));
            print!("{}", rc::diff(rc));
        }
        _ => {
            let backup = rc::apply(rc)?;
            say(format!(
                "{program} now starts through keyfence's agent profile ({rc_shown}{link} loads \
                 `keyfence shell-init {}`): {what}",
                shell.name()
            ));
            if let Some(b) = backup {
                say(format!("  backup of the previous file: {}", b.display()));
            }
            say(format!(
                "  a shell that is already running keeps the old definitions: run `exec $SHELL` \
                 or open a new terminal; `command {program}` bypasses keyfence"
            ));
        }
    }
    let text = String::from_utf8_lossy(&rc.new_text);
    if let Some(line) = rc::redefined_after(&text, program) {
        say(format!(
            "warning: {rc_shown}:{line} defines `{program}` again after shell-init is loaded, so \
             typing `{program}` runs that definition, outside keyfence: delete it, or move it \
             above the line that loads shell-init"
        ));
    }
    let on_path = std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| d.is_absolute() && d.join(program).is_file())
    });
    if !on_path {
        say(format!(
            "note: no `{program}` on PATH: keyfence's function runs the {program} that PATH finds \
             (install it, or add its directory to PATH in the start-up file)"
        ));
    }
    Ok(())
}

/// `setup`'s first step for an agent: its exported key into the store, read back before
/// anything else changes; or what is there already (a stored key, the agent's own login).
#[allow(clippy::too_many_arguments)]
fn store_agent_key(
    say: &dyn Fn(String),
    dry_run: bool,
    paths: &Paths,
    key_name: &str,
    program: &str,
    exported: &Option<SecretValue>,
    stored: &Option<SecretValue>,
    fingerprint: &Option<String>,
    logged_in: &str,
) -> Result<()> {
    match (exported, stored, fingerprint) {
        (Some(v), Some(s), Some(fp)) if v == s => say(format!(
            "{key_name} (fingerprint {fp}) is already in the store: keyfence hands it to \
             {program} when {program} starts"
        )),
        (Some(_), _, Some(fp)) if dry_run => say(format!(
            "would store the exported {key_name} (fingerprint {fp}) in {}",
            paths.vault.display()
        )),
        (Some(v), _, Some(fp)) => {
            let new = super::secret::new_value(key_name, v.clone(), None, None);
            let outcome = Store::update(paths, &Interactive, |e| Ok(e.set(new, Time::now())))?;
            // Read it back before relying on it.
            let back = Store::open(paths.clone(), &Interactive)?;
            if back.get(key_name)?.value != *v {
                bail!("{key_name} did not read back from the store; nothing else was changed");
            }
            say(format!(
                "{} {key_name} (fingerprint {fp}) in {}: keyfence hands it to {program} when \
                 {program} starts, so it need not be exported anywhere",
                if outcome == SetOutcome::Rotated {
                    "replaced"
                } else {
                    "stored"
                },
                paths.vault.display()
            ));
        }
        (None, Some(_), Some(fp)) => say(format!(
            "{key_name} (fingerprint {fp}) is already in the store: keyfence hands it to \
             {program} when {program} starts"
        )),
        _ => say(logged_in.to_string()),
    }
    Ok(())
}

/// Places, other than the store, where the key with `fingerprint` is found by an audit.
fn still_exposed(home: &std::path::Path, fingerprint: &str) -> Result<Vec<(String, String)>> {
    let settings = Settings {
        home: home.to_path_buf(),
        etc: "/etc".into(),
        projects: vec![std::env::current_dir()?],
        // Everywhere but the project's own files: those are the project's business.
        sources: Source::ALL
            .iter()
            .copied()
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

/// The agents `setup_agent` knows besides Claude Code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agent {
    Codex,
    Gemini,
}

impl Agent {
    fn program(self) -> &'static str {
        match self {
            Agent::Codex => "codex",
            Agent::Gemini => "gemini",
        }
    }

    fn key_name(self) -> &'static str {
        match self {
            Agent::Codex => crate::setup::codex::KEY_NAME,
            Agent::Gemini => crate::setup::gemini::key_name(|v| std::env::var(v).ok()),
        }
    }

    /// Its own login file, which the agent profile keeps from the commands it runs.
    fn login_file(self) -> &'static str {
        match self {
            Agent::Codex => "~/.codex/auth.json",
            Agent::Gemini => "~/.gemini/oauth_creds.json",
        }
    }

    fn login_command(self) -> &'static str {
        match self {
            Agent::Codex => "codex login",
            Agent::Gemini => "gemini (choose \"Login with Google\")",
        }
    }
}

/// A change to one of the agent's own settings files, whatever its format.
struct ToolChange {
    path: std::path::PathBuf,
    original: Option<Vec<u8>>,
    new_text: String,
    done: Vec<String>,
    notes: Vec<String>,
}

/// The names of the secrets exported in keyfence's own environment (never their values).
fn exported_secret_names() -> Vec<String> {
    let d = crate::detect::detector();
    let mut names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let k = k.into_string().ok()?;
            d.classify_var(&k, v.as_bytes()).map(|_| k)
        })
        .collect();
    names.sort();
    names
}

/// `setup codex` / `setup gemini`: what `setup claude` does (the key into the store, the shell
/// starting the agent under the agent profile), plus the agent's own control: Codex's
/// `shell_environment_policy`, Gemini CLI's redaction.
fn setup_agent(
    g: &GlobalArgs,
    agent: Agent,
    home: &crate::cli::HomeArg,
    dry_run: bool,
    shell: Option<InitShell>,
) -> Result<Exit> {
    use crate::setup::{codex, gemini};
    let home = home_dir(home)?;
    let (exe, path_warning) = super::keyfence_path()?;
    if let Some(w) = &path_warning {
        eprintln!("keyfence: warning: {w}");
    }
    let program = agent.program();
    let key_name = agent.key_name();
    // Read and check every file before touching the store.
    let codex_home = codex::codex_home(&home, |v| std::env::var(v).ok());
    let tool = match agent {
        Agent::Codex => {
            let c = codex::plan_policy(&codex_home, &exported_secret_names())?;
            let mut notes = Vec::new();
            if !c.set_names.is_empty() {
                notes.push(format!(
                    "shell_environment_policy.set gives {} a value of the file's own: Codex \
                     hands it to every command; `keyfence audit --only agent` says whether it \
                     is a key",
                    c.set_names.join(", ")
                ));
            }
            ToolChange {
                path: c.path,
                original: c.original,
                new_text: c.new_text,
                done: c.done,
                notes,
            }
        }
        Agent::Gemini => {
            let c = gemini::plan_redaction(&home)?;
            let done = if c.changes_anything() {
                vec![
                    "security.environmentVariableRedaction.enabled = true: the shell tool drops \
                     variables whose names or values look like secrets"
                        .to_string(),
                ]
            } else {
                Vec::new()
            };
            ToolChange {
                path: c.path,
                original: c.original,
                new_text: c.new_text,
                done,
                notes: Vec::new(),
            }
        }
    };
    let exported = std::env::var_os(key_name)
        .filter(|v| !v.is_empty())
        .map(|v| SecretValue::new(v.as_bytes()));
    let paths = Paths::from_env()?;
    let stored = Store::open(paths.clone(), &Interactive)
        .ok()
        .and_then(|s| s.entries().get(key_name).map(|e| e.value.clone()));
    let logged_in = match agent {
        Agent::Codex => codex::logged_in(&codex_home),
        Agent::Gemini => gemini::logged_in(&home),
    };
    let fingerprint = match (&exported, &stored) {
        (Some(v), _) => Some(v.fingerprint()),
        (None, Some(v)) => Some(v.fingerprint()),
        (None, None) if logged_in => None,
        (None, None) => bail!(
            "no {key_name} in the environment or in the store, and {program} is not logged in, \
             so {program} would have no credential; nothing was changed\n\
             hint: store the key first with `keyfence secret set {key_name}`, or log in with \
             `{}`",
            agent.login_command()
        ),
    };
    let shell = chosen_shell(shell, program)?;
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
    store_agent_key(
        &say,
        dry_run,
        &paths,
        key_name,
        program,
        &exported,
        &stored,
        &fingerprint,
        &format!(
            "{program} is logged in ({}): no key to store; {program} keeps using that file, \
             which the commands it runs cannot read under the agent profile",
            agent.login_file()
        ),
    )?;
    // 2. The shell starts the agent through keyfence.
    shell_starts_through_keyfence(
        &say,
        dry_run,
        &home,
        shell,
        &rc,
        program,
        agent.login_file(),
    )?;
    // 3. The agent's own control, for runs keyfence is not in front of (an IDE, `command`).
    let tool_shown = audit::display_path(&home, &tool.path);
    let changes = tool.original.as_deref() != Some(tool.new_text.as_bytes());
    if !changes {
        say(format!(
            "{tool_shown} already {}",
            match agent {
                Agent::Codex =>
                    "has a shell_environment_policy that passes no secret keyfence \
                                 knows of to the commands Codex runs",
                Agent::Gemini => "turns on Gemini CLI's redaction of secret variables",
            }
        ));
    } else if dry_run {
        say(format!(
            "{verb} change {tool_shown}, for {program} started without keyfence (an IDE, \
             `command {program}`):"
        ));
        for d in &tool.done {
            say(format!("  {d}"));
        }
        // The file may hold keys (an MCP server's env) on lines a rewrite moves: each is shown
        // as its preview.
        let original = tool.original.as_deref().unwrap_or_default();
        let found: Vec<(SecretValue, String)> = crate::detect::detector()
            .scan(original, crate::detect::Mode::Assignment)
            .into_iter()
            .map(|m| {
                let preview = m.info().preview;
                (m.value, preview)
            })
            .collect();
        let forms: Vec<(&SecretValue, &str)> = found.iter().map(|(v, p)| (v, p.as_str())).collect();
        print!(
            "{}",
            crate::fix::text_diff(
                &tool.path.display().to_string(),
                original,
                tool.new_text.as_bytes(),
                &forms
            )
        );
    } else {
        let backup = crate::setup::claude::write_atomically(
            &tool.path,
            &tool.path,
            tool.original.as_deref(),
            tool.new_text.as_bytes(),
            0o600,
        )?;
        say(format!(
            "changed {tool_shown}, for {program} started without keyfence (an IDE, `command \
             {program}`):"
        ));
        for d in &tool.done {
            say(format!("  {d}"));
        }
        if let Some(b) = backup {
            say(format!("  backup of the previous file: {}", b.display()));
        }
    }
    for n in &tool.notes {
        say(format!("note: {n}"));
    }
    // 4. What is still exposed: the key elsewhere, and the agent's settings that still pass
    // secrets (a project's or an administrator's layer).
    let mut remaining = match &fingerprint {
        Some(fp) => still_exposed(&home, fp)?,
        None => Vec::new(),
    };
    if !dry_run {
        remaining.extend(agent_settings_exposure(&home, program)?);
    }
    if remaining.is_empty() {
        say(format!(
            "nothing else that keyfence audit looks at exposes {}",
            if fingerprint.is_some() {
                key_name.to_string()
            } else {
                format!("keys through {program}'s settings")
            }
        ));
    } else {
        say(format!(
            "still exposed in {} place{}:",
            remaining.len(),
            if remaining.len() == 1 { "" } else { "s" }
        ));
        for (place, fix) in &remaining {
            say(format!("  {place}\n    fix: {fix}"));
        }
    }
    Ok(Exit::Clean)
}

/// Findings of the `agent` source about `program`'s own configuration (its policy or
/// redaction, keys in its files), after the change.
fn agent_settings_exposure(home: &std::path::Path, program: &str) -> Result<Vec<(String, String)>> {
    let settings = Settings {
        home: home.to_path_buf(),
        etc: "/etc".into(),
        projects: vec![std::env::current_dir()?],
        sources: vec![Source::Agent],
        env: std::env::vars_os().collect(),
        max_filesize: 10 << 20,
        threads: threads(None),
    };
    let ctx = Context::new(&settings);
    let report = audit::run(&ctx);
    let dir = format!(".{program}");
    Ok(report
        .findings
        .iter()
        .filter(|f| {
            f.rule.starts_with(&format!("{program}-"))
                || matches!(&f.location, crate::finding::Location::File { path, .. }
                    if path.components().any(|c| c.as_os_str() == dir.as_str()))
        })
        .map(|f| {
            (
                format!(
                    "{}: {}",
                    crate::report::location_text(Some(home), f),
                    f.message
                ),
                f.fix.clone(),
            )
        })
        .collect())
}

/// `setup cursor`: each key in a local MCP server's `env` goes into the store, and the server
/// starts through `keyfence run --inject`.
fn setup_cursor(g: &GlobalArgs, home: &crate::cli::HomeArg, dry_run: bool) -> Result<Exit> {
    use crate::fix;
    use crate::setup::cursor;
    let home = home_dir(home)?;
    let (exe, path_warning) = super::keyfence_path()?;
    if let Some(w) = &path_warning {
        eprintln!("keyfence: warning: {w}");
    }
    let say = |s: String| {
        if !g.quiet {
            println!("{s}");
        }
    };
    if dry_run {
        say("dry run: nothing is changed".into());
    }
    let project = std::env::current_dir()?;
    // Every file is read and checked before the store is touched.
    let mut scans = Vec::new();
    for path in cursor::files(&home, &project) {
        if let Some(s) = cursor::scan(&path)? {
            scans.push(s);
        }
    }
    if scans.is_empty() {
        say(
            "no key in Cursor's MCP server definitions (~/.cursor/mcp.json, .cursor/mcp.json)"
                .into(),
        );
        return Ok(Exit::Clean);
    }
    let paths = Paths::from_env()?;
    for scan in &scans {
        let shown = audit::display_path(&home, &scan.path);
        if scan.keys.is_empty() {
            for (server, field) in &scan.left {
                say(format!(
                    "{shown}: server `{server}` holds a key in {field}: a remote server's \
                     headers cannot be started through keyfence; move it to the server's own \
                     login (OAuth) if it offers one, and rotate the key"
                ));
            }
            continue;
        }
        let new_values: Vec<crate::store::NewValue> = scan
            .keys
            .iter()
            .map(|k| super::secret::new_value(&k.name, k.value.clone(), None, None))
            .collect();
        // The store names each key gets: its variable's, or NAME_2... when that already holds
        // another value.
        let names: Vec<String> = if dry_run {
            let entries = Store::open(paths.clone(), &Interactive)
                .ok()
                .map(|s| s.entries().clone());
            let mut taken: Vec<(String, SecretValue)> = Vec::new();
            scan.keys
                .iter()
                .map(|k| {
                    let mut n = 1u32;
                    loop {
                        let candidate = if n == 1 {
                            k.name.clone()
                        } else {
                            format!("{}_{n}", k.name)
                        };
                        let held = entries
                            .as_ref()
                            .and_then(|e| e.get(&candidate).map(|x| x.value.clone()))
                            .or_else(|| {
                                taken
                                    .iter()
                                    .find(|(t, _)| *t == candidate)
                                    .map(|(_, v)| v.clone())
                            });
                        match held {
                            Some(v) if v != k.value => n += 1,
                            _ => {
                                taken.push((candidate.clone(), k.value.clone()));
                                break candidate;
                            }
                        }
                    }
                })
                .collect()
        } else {
            let mut names = Vec::new();
            Store::update(&paths, &Interactive, |e| {
                names = fix::store_into(e, new_values, Time::now())
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect();
                Ok(())
            })?;
            // Read each back before the file loses it.
            let back = Store::open(paths.clone(), &Interactive)?;
            for (k, n) in scan.keys.iter().zip(&names) {
                if back.get(n)?.value != k.value {
                    bail!("{n} did not read back from the store; {shown} was not changed");
                }
            }
            names
        };
        let new_text = cursor::rewrite(scan, &exe, &names);
        for (k, n) in scan.keys.iter().zip(&names) {
            say(format!(
                "{} {} of server `{}` in {shown} ({}) into the store as {n}; the server {} \
                 `keyfence run --inject {}`",
                if dry_run { "would move" } else { "moved" },
                k.name,
                k.server,
                k.preview,
                if dry_run {
                    "would start through"
                } else {
                    "starts through"
                },
                if *n == k.name {
                    n.clone()
                } else {
                    format!("{}={n}", k.name)
                }
            ));
        }
        let forms: Vec<(&SecretValue, &str)> = scan
            .keys
            .iter()
            .map(|k| (&k.value, k.preview.as_str()))
            .collect();
        if dry_run {
            print!(
                "{}",
                fix::text_diff(
                    &scan.path.display().to_string(),
                    &scan.original,
                    new_text.as_bytes(),
                    &forms
                )
            );
        } else {
            let backup = crate::setup::claude::write_atomically(
                &scan.path,
                &scan.path,
                Some(&scan.original),
                new_text.as_bytes(),
                0o600,
            )?;
            if let Some(b) = backup {
                say(format!(
                    "  backup of the previous file (it still holds the keys: delete it once \
                     Cursor starts the servers): {}",
                    b.display()
                ));
            }
        }
        for (server, field) in &scan.left {
            say(format!(
                "still exposed: {shown}: server `{server}` holds a key in {field}, which cannot \
                 be moved (a remote server's headers)"
            ));
        }
    }
    say(
        "Cursor reloads mcp.json by itself; the keys are now only in keyfence's store, and each \
         server gets its own alone"
            .into(),
    );
    Ok(Exit::Clean)
}
