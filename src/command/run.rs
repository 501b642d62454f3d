//! `keyfence run [options] -- COMMAND [ARGS...]`: parse, then settle, then act. `settle`
//! turns the arguments and the resolved profile into one `run::settings::Settings` (fetching
//! the values, starting the phantom proxy, entering the sandbox's mount namespace: what must
//! happen before any other thread starts); `enter` restricts keyfence itself (network,
//! Landlock); `start` runs the command. Of everything `run` uses, only this file prints.
//!
//! Errors before the command starts exit 125 (not 2): `run`'s status space belongs to the
//! command, as for `env`, `sudo` and `op run`.

use super::Exit;
use crate::cli::{GlobalArgs, RunArgs};
use crate::detect;
use crate::policy::{self, NetPolicy};
use crate::provider;
use crate::run::sandbox::Sandbox;
use crate::run::settings::{DenyRead, Protections, Settings, Trace, Tracer};
use crate::run::{env, process, protect};
use crate::secret::SecretValue;
use anyhow::{Context as _, Result, bail};
use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub fn run(g: &GlobalArgs, args: &RunArgs) -> Result<Exit> {
    // Before any value is read: the copies the standard library makes and frees are zeroed.
    // The detector is built first: its construction handles no value, and growing its
    // automata under zeroing (every realloc a copy) was a fifth of the start-up.
    crate::detect::detector();
    crate::zero_alloc::zero_freed_memory();
    // A failure drops what was settled so far: its leases are revoked.
    let (mut settings, trace_file) = match settle(g, args).and_then(|s| {
        let file = enter(&s)?;
        Ok((s, file))
    }) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("keyfence: error: {e:#}");
            return Ok(Exit::CannotRun);
        }
    };
    let mut leases = std::mem::take(&mut settings.leases);
    if let Some(sig) = provider::interrupted() {
        drop(leases);
        eprintln!(
            "keyfence: interrupted (signal {sig}) before the command started; its credentials \
             were revoked"
        );
        return Ok(Exit::Code(128u8.wrapping_add(sig as u8)));
    }
    let keep_alive = leases.keep_alive();
    let exit = start(&mut settings, trace_file);
    drop(keep_alive);
    if let Some(sb) = &settings.sandbox {
        if let Some(warning) = sb.quarantine_new_git() {
            eprintln!("{warning}");
        }
        if !matches!(exit, Exit::Signal(_))
            && let Some(note) = sb.note(&settings.command, exit.code())
        {
            eprintln!("{note}");
        }
    }
    let (revoked, errors) = leases.revoke_all();
    for e in errors {
        eprintln!("keyfence: warning: {e}");
    }
    if g.verbose && revoked > 0 {
        eprintln!("keyfence: revoked {revoked} lease(s) and token(s)");
    }
    Ok(exit)
}

/// Restricts keyfence itself, and so the command it starts, as settled; the trace file,
/// opened first: the sandbox may deny keyfence the file's directory too
/// (`--trace=$HOME/trace.jsonl`), and a network namespace comes with a user namespace.
fn enter(s: &Settings) -> Result<Option<crate::trace::file::TraceFile>> {
    let trace_file = match s.trace.as_ref().and_then(|t| t.file.as_deref()) {
        Some(file) => Some(crate::trace::file::open(file).context("--trace")?),
        None => None,
    };
    // Order matters: self-protection and the network namespace both write to /proc/self,
    // which the sandbox then forbids.
    if s.supervise {
        protect_supervisor(&s.plan);
    }
    restrict_network(s)?;
    enter_sandbox(s)?;
    seal_denied(s)?;
    Ok(trace_file)
}

/// Decides the sandbox's policy, creates the package manager's cache if missing (the home is
/// not writable inside, so a fresh home's first install would fail) and enters the mount
/// namespace. `allow`: the variables kept by name (an agent's keeps its socket).
#[cfg(target_os = "linux")]
fn prepare_sandbox(
    args: &RunArgs,
    home: Option<&Path>,
    allow: &[String],
    denied: &Denied,
) -> Result<Sandbox> {
    use crate::isolate::{mounts, sandbox};
    let home = required_home(home, "--sandbox")?;
    let cwd = std::env::current_dir()?;
    let allow_write: Vec<std::path::PathBuf> =
        args.allow_write.iter().map(|p| cwd.join(p)).collect();
    let store = store_dirs();
    let policy = sandbox::Policy::for_request(&sandbox::Request {
        home,
        project: &cwd,
        store_dirs: &store,
        command: &args.command,
        allow,
        allow_write: &allow_write,
    });
    for dir in sandbox::Policy::caches_to_create(home, &args.command) {
        if !dir.exists() {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .with_context(|| format!("creating {} before the sandbox starts", dir.display()))?;
        }
    }
    for dir in sandbox::Policy::prefixes_to_create(home, &args.command) {
        let _ = std::fs::create_dir_all(dir);
    }
    let targets = mounts::targets(&policy.read_only, &policy.writable);
    let kept = match mounts::enter(&targets, &policy.hidden, &denied.paths) {
        Ok(m) => {
            denied.done.set(true);
            m.read_only
        }
        Err(e) if denied.asked => return Err(e).context(denied.refusal()),
        // Say so and go on: Landlock still denies the credential stores, and a refusal here
        // would stop every install where user namespaces are off.
        Err(e) => {
            eprintln!(
                "keyfence: warning: {e:#}\nkeyfence: warning: so the command can write {} and \
                 reach {}{}",
                list(&targets),
                list(&policy.hidden),
                denied.readable_too(),
            );
            Vec::new()
        }
    };
    let git = cwd.join(".git");
    let no_git = std::fs::symlink_metadata(&git).is_err().then_some(git);
    Ok(Sandbox {
        policy,
        kept,
        no_git,
    })
}

/// Hides the user's session services from a guarded tree, in a mount namespace as the
/// sandbox does (isolate/mounts.rs): tmux (`tmux new-window CMD`), the D-Bus session bus
/// (`systemd-run --user CMD`, the secret service), systemd's and gpg's and ssh's agents,
/// docker's and podman's sockets. Each would run a command, or use a key, for a descendant
/// outside the descendant fence (guard/fence.rs), where it could read every credential file.
/// The command is hidden from them too: a mount namespace holds a whole tree. `allowed`
/// variables keep theirs (`allow = ["SSH_AUTH_SOCK"]` in the user's profile).
#[cfg(target_os = "linux")]
fn hide_services(home: Option<&Path>, allowed: &[String], denied: &Denied) -> Result<()> {
    use crate::isolate::{mounts, sandbox};
    let home = required_home(home, "--guard")?;
    let hidden = sandbox::agent_sockets(home, &|v: &str| allowed.iter().any(|a| a == v));
    match mounts::enter(&[], &hidden, &denied.paths) {
        Ok(m) => {
            denied.done.set(true);
            if !m.hidden.is_empty() {
                eprintln!(
                    "keyfence: guard: hidden from the command's tree: {} (to keep one, allow \
                     its variable in your profile, e.g. allow = [\"SSH_AUTH_SOCK\"])",
                    list(&m.hidden)
                );
            }
        }
        Err(e) if denied.asked => return Err(e).context(denied.refusal()),
        Err(e) => eprintln!(
            "keyfence: warning: guard: {e:#}\nkeyfence: warning: so what the command starts can \
             reach {}, and through them run commands outside the fence{}",
            list(&hidden),
            denied.readable_too(),
        ),
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn hide_services(_home: Option<&Path>, _allowed: &[String], denied: &Denied) -> Result<()> {
    match denied.paths.is_empty() {
        true => Ok(()),
        false => hide_denied(denied),
    }
}

/// The paths `deny_read` names, settled: hidden in the mount namespace the sandbox or guard
/// enters, or in one of their own.
#[derive(Default)]
struct Denied {
    paths: Vec<PathBuf>,
    /// The user asked for them (`--deny-read`, or a `deny_read` written in a file): a run that
    /// cannot hide them is refused. The built-in install profile's `.env` files, which nobody
    /// asked for by name, are a warning, as the sandbox's other mounts are.
    asked: bool,
    /// How the paths are shown (relative to the current directory).
    shown: String,
    /// Set once a mount namespace hides them: where it could not and a warning said so, the
    /// run must not also say they are hidden.
    done: std::cell::Cell<bool>,
}

impl Denied {
    fn refusal(&self) -> String {
        format!("refusing to run with {} readable (deny_read)", self.shown)
    }

    fn readable_too(&self) -> String {
        match self.paths.is_empty() {
            true => String::new(),
            false => format!(", and read {}", self.shown),
        }
    }
}

/// Hides the denied paths when neither the sandbox nor guard enters a mount namespace.
#[cfg(target_os = "linux")]
fn hide_denied(denied: &Denied) -> Result<()> {
    match crate::isolate::mounts::enter(&[], &[], &denied.paths) {
        Ok(_) => {
            denied.done.set(true);
            Ok(())
        }
        Err(e) if denied.asked => Err(e).context(denied.refusal()),
        Err(e) => {
            eprintln!(
                "keyfence: warning: {e:#}\nkeyfence: warning: so the command can read {}",
                denied.shown
            );
            Ok(())
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn hide_denied(denied: &Denied) -> Result<()> {
    if denied.asked {
        bail!(
            "deny_read needs Linux (a mount namespace); {}",
            denied.refusal()
        )
    }
    eprintln!(
        "keyfence: warning: deny_read needs Linux (a mount namespace), so the command can \
         run{}",
        denied.readable_too()
    );
    Ok(())
}

#[cfg(target_os = "linux")]
fn list(paths: &[std::path::PathBuf]) -> String {
    if paths.is_empty() {
        return "nothing more".into();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(target_os = "linux")]
fn required_home<'a>(home: Option<&'a Path>, what: &str) -> Result<&'a Path> {
    home.ok_or_else(|| anyhow::anyhow!("{what} needs HOME to know which credential stores to deny"))
}

#[cfg(not(target_os = "linux"))]
fn prepare_sandbox(
    _args: &RunArgs,
    _home: Option<&Path>,
    _allow: &[String],
    _denied: &Denied,
) -> Result<Sandbox> {
    bail!("--sandbox needs Linux (Landlock); refusing to run unprotected")
}

/// Restricts this process, and so the command it starts, with the sandbox's Landlock domain.
#[cfg(target_os = "linux")]
fn enter_sandbox(s: &Settings) -> Result<()> {
    let Some(sb) = &s.sandbox else {
        return Ok(());
    };
    let applied = crate::isolate::sandbox::apply(&sb.policy)?;
    if s.verbose {
        eprintln!(
            "keyfence: sandbox: {} Landlock rules, {}; read-only mounts: {}",
            applied.rules,
            if applied.fully_enforced {
                "fully enforced"
            } else {
                "partly enforced (older kernel)"
            },
            list(&sb.kept)
        );
    }
    Ok(())
}

/// Seals the hidden paths with a Landlock domain of the command's own, when neither the
/// sandbox's nor guard's fence gives it one (`isolate::mounts::seal`).
#[cfg(target_os = "linux")]
fn seal_denied(s: &Settings) -> Result<()> {
    if !s.deny_read.seal {
        return Ok(());
    }
    let shown = crate::run::deny_read::shown(&s.deny_read.hidden, &std::env::current_dir()?);
    Ok(crate::isolate::mounts::seal(&shown)?)
}

#[cfg(not(target_os = "linux"))]
fn seal_denied(_s: &Settings) -> Result<()> {
    Ok(())
}

/// The sandbox's default rules for a user whose home is `home`, in the current directory: what
/// `--trace` calls sensitive (and, under the sandbox, blocked).
#[cfg(target_os = "linux")]
fn default_sandbox_policy(home: &Path) -> std::io::Result<crate::isolate::sandbox::Policy> {
    Ok(crate::isolate::sandbox::Policy::default_for(
        home,
        &std::env::current_dir()?,
        &store_dirs(),
    ))
}

/// keyfence's own store: the vault's directory and the key file's.
fn store_dirs() -> Vec<std::path::PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(p) = crate::store::Paths::from_env() {
        dirs.push(p.dir.clone());
        if let Some(k) = p.key.parent() {
            dirs.push(k.to_path_buf());
        }
    }
    dirs
}

#[cfg(target_os = "linux")]
fn restrict_network(s: &Settings) -> Result<()> {
    use crate::isolate::net;
    match &s.net {
        NetPolicy::Allow => Ok(()),
        NetPolicy::None => Ok(net::enter_none()?),
        NetPolicy::TcpPorts(ports) => Ok(net::restrict_tcp(ports)?),
    }
}

#[cfg(not(target_os = "linux"))]
fn restrict_network(s: &Settings) -> Result<()> {
    if s.net != NetPolicy::Allow {
        bail!(
            "--net {} needs Linux; refusing to run with the network on",
            s.net
        );
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn enter_sandbox(s: &Settings) -> Result<()> {
    if s.sandbox.is_none() {
        return Ok(());
    }
    bail!("--sandbox needs Linux (Landlock); refusing to run unprotected")
}

/// Settles everything `run` will do, from the arguments and the resolved profile: fetches
/// the values, and does what must happen while keyfence is still single-threaded (the sandbox's
/// and guard's mount namespace) or before the environment is planned (the phantom proxy, whose
/// address the command gets). Nothing here restricts keyfence itself (`enter`).
fn settle(g: &GlobalArgs, args: &RunArgs) -> Result<Settings> {
    let cwd = std::env::current_dir()?;
    let program = args
        .command
        .first()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let config = policy::Config::load(
        policy::project_file(&cwd).as_deref(),
        policy::user_file().as_deref(),
    )
    .map_err(|e| e.for_program(&program))?;
    for w in &config.warnings {
        eprintln!("keyfence: warning: {w}");
    }
    let command_line = args
        .command
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let chosen = match &args.profile {
        Some(name) => config.select(Some(name), &command_line)?,
        None => select_by_command(&config, &args.command, &command_line)?,
    };
    let p = &chosen.profile;
    let allow = [args.allow.as_slice(), p.allow.as_slice()].concat();
    // The OpenBao settings are credentials too: gone unless allowed.
    let bao_settings: Vec<String> = provider::openbao::SETTINGS_VARS
        .iter()
        .map(|v| v.to_string())
        .collect();
    let drop = [args.drop.as_slice(), p.drop.as_slice(), &bao_settings].concat();
    let rules = env::EnvRules::new(&allow, &drop)
        .map_err(|e| anyhow::anyhow!("bad --drop pattern: {e}"))?;
    // The store is opened once, and only when something is injected.
    let mut resolver = provider::Resolver::new(lease_warnings());
    let mut inject = resolve_injections(&mut resolver, &args.inject, &p.name, false)?;
    inject.extend(resolve_injections(
        &mut resolver,
        &p.inject,
        &p.name,
        chosen.origin == policy::Origin::Project,
    )?);
    // The user's agents (ssh-agent, the session bus, ...) act outside every sandbox: only the
    // user's own flags and config may let a sandboxed command reach them, not a project file.
    let agents_allowed: Vec<String> = match chosen.origin {
        policy::Origin::Project => args.allow.clone(),
        _ => allow.clone(),
    };
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    let sandboxed = args.sandbox || p.sandbox.unwrap_or(false);
    let guard = args.guard || p.guard.unwrap_or(false);
    let denied = settle_deny_read(args, p, &cwd, home.as_deref(), sandboxed, guard)?;
    let sandbox = match sandboxed {
        true => Some(prepare_sandbox(
            args,
            home.as_deref(),
            &agents_allowed,
            &denied,
        )?),
        false => None,
    };
    // Like the sandbox's, a guarded tree does not reach the user's session services: each runs
    // what it is asked outside every fence (before the phantom proxy's thread: unshare needs a
    // single-threaded process).
    if guard && sandbox.is_none() {
        hide_services(home.as_deref(), &agents_allowed, &denied)?;
    }
    // Neither puts the command in a Landlock domain: it gets one of its own in `enter`.
    let seal_denied = !sandboxed && !guard && !denied.paths.is_empty();
    if seal_denied {
        hide_denied(&denied)?;
    }
    if denied.done.get() && !denied.paths.is_empty() {
        let first = crate::run::deny_read::shown(&denied.paths[..1], &cwd);
        eprintln!(
            "keyfence: hidden from the command: {} (deny_read of profile '{}')\nhint: if it \
             needs one, show it to this run: {}",
            denied.shown,
            p.name,
            detect::redact(with_flag_added(
                std::env::args_os().skip(1),
                &["--deny-read", &format!("!{first}")],
            )),
        );
    }
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    if guard {
        crate::guard::fence::reserve_descriptor();
    }
    if p.name == "agent" {
        warn_of_agent_redirections(&program, &cwd, home.as_deref());
    }
    let mut phantom_specs = p.phantom.clone();
    if p.name == "agent" && chosen.origin != policy::Origin::Project {
        inject.extend(agent_direct_keys(&mut resolver, args, p, &program, &inject));
        phantom_specs.extend(agent_phantoms(&mut resolver, args, p, &program, &inject));
    }
    if p.name == "agent" && guard {
        let names: Vec<&str> = inject.iter().map(|(n, _)| n.as_str()).collect();
        say_agent_holds_keys(&program, &names);
    }
    let phantom_secrets = start_phantoms(
        &mut resolver,
        args,
        &p.name,
        &phantom_specs,
        chosen.origin == policy::Origin::Project,
        &mut inject,
    )?;
    let mask = !args.no_mask && p.mask.unwrap_or(true);
    let net = match &p.net {
        Some(profile_net) => args.net.stricter(profile_net),
        None => args.net.clone(),
    };
    if !phantom_secrets.is_empty() && net == NetPolicy::None {
        bail!("--phantom needs the network for its proxy; it cannot be combined with --net none");
    }
    let mut plan = env::plan(detect::detector(), std::env::vars_os(), &rules, inject);
    // The agents' sockets are hidden in the sandbox and under guard; their variables go too,
    // unless allowed.
    #[cfg(target_os = "linux")]
    if sandbox.is_some() || guard {
        use crate::isolate::sandbox::AGENT_VARS;
        plan.env.retain(|(k, _)| {
            !AGENT_VARS.iter().any(|v| k == v) || agents_allowed.iter().any(|a| k == a.as_str())
        });
    }
    if args.canary {
        plant_canaries(&mut plan)?;
    }
    let phantoms: Vec<String> = phantom_secrets.iter().map(|(n, _)| n.clone()).collect();
    // The real values behind phantoms never reach the command, but mask them anyway.
    plan.secrets.extend(phantom_secrets);
    // What the command itself gets decides whether it is a launcher (Gemini CLI told not to
    // relaunch is the agent itself).
    let guard = guard.then(|| {
        policy::launched_agent(p, &program, |v| {
            plan.env.iter().any(|(k, val)| k == v && !val.is_empty())
        })
    });
    // Guard and trace share the supervisor: a tracer of the whole tree.
    let tracer = match guard.is_some() || args.trace.is_some() {
        true => Some(Tracer {
            landlock_abi: crate::guard::available(if guard.is_some() {
                "--guard"
            } else {
                "--trace"
            })?,
            guard,
        }),
        false => None,
    };
    let leases = resolver.take_leases();
    // Leases and child tokens are revoked when the command ends, so keyfence stays to do it.
    // A sandbox that keeps part of the project read-only, or watches for a new .git,
    // stays to say so when the command ends.
    let mask = mask || !phantoms.is_empty();
    let supervise = (mask && !plan.secrets.is_empty())
        || tracer.is_some()
        || !leases.is_empty()
        || sandbox
            .as_ref()
            .is_some_and(|s| !s.kept.is_empty() || s.no_git.is_some());
    if !leases.is_empty() && net != NetPolicy::Allow {
        bail!(
            "short-lived credentials (openbao+lease://, openbao+token://) need keyfence to \
             reach OpenBao when the command ends, to revoke them; they cannot be combined \
             with --net {net}"
        );
    }
    let mut trace = match &args.trace {
        Some(file) => Some(trace_settings(file, home.as_deref(), sandbox.as_ref())?),
        None => None,
    };
    // What the profile hides is sensitive to the trace too: an open of it is reported.
    if let Some(t) = &mut trace {
        t.sensitive.extend(denied.paths.iter().cloned());
    }
    Ok(Settings {
        command: args.command.clone(),
        verbose: g.verbose,
        plan,
        protections: Protections {
            mask,
            canary: args.canary,
            phantoms,
            tracer,
        },
        net,
        trace,
        sandbox,
        deny_read: DenyRead {
            hidden: denied.paths,
            seal: seal_denied,
        },
        leases,
        supervise,
        home,
    })
}

/// The command line the user typed (a shell function may have typed it), with `flag` added
/// after `run`, quoted for the shell: the whole command for a hint, every other option kept.
fn with_flag_added(args: impl Iterator<Item = std::ffi::OsString>, flag: &[&str]) -> String {
    use crate::syntax::shell::sh_quote;
    let mut words = vec!["keyfence".to_string()];
    let mut added = false;
    for a in args {
        let a = a.to_string_lossy().into_owned();
        let at_run = !added && a == "run";
        words.push(sh_quote(&a));
        if at_run {
            words.extend(flag.iter().map(|f| sh_quote(f)));
            added = true;
        }
    }
    words.join(" ")
}

/// The paths the profile's `deny_read` and `--deny-read` name, and whether the user asked for
/// them. Refused as root without the sandbox: root (CAP_SYS_ADMIN) could unmount what hides
/// them, and under guard the agent itself is in no Landlock domain that forbids it.
fn settle_deny_read(
    args: &RunArgs,
    p: &policy::Profile,
    cwd: &Path,
    home: Option<&Path>,
    sandboxed: bool,
    guard: bool,
) -> Result<Denied> {
    use crate::run::deny_read;
    let from_profile = p.deny_read.clone().unwrap_or_default();
    // Most runs hide nothing: no walk up for the project's root, no read of mountinfo.
    if from_profile.is_empty() && args.deny_read.is_empty() {
        return Ok(Denied::default());
    }
    let project = deny_read::project_root(cwd, home);
    let bases = deny_read::Bases {
        project: &project,
        cwd,
        home,
    };
    let resolved = deny_read::resolve(&from_profile, &args.deny_read, &bases)?;
    if let Some(note) = resolved.incomplete {
        eprintln!("keyfence: warning: {note}");
    }
    let paths = resolved.paths;
    // The same files at another mount of their filesystem (a bind of the project elsewhere).
    #[cfg(target_os = "linux")]
    let paths = [paths.clone(), crate::isolate::mounts::also_at(&paths)].concat();
    let builtin = deny_read::INSTALL_DEFAULT.iter().map(|e| e.to_string());
    let asked = !args.deny_read.is_empty() || !from_profile.iter().cloned().eq(builtin);
    if !paths.is_empty() && guard && !sandboxed && nix::unistd::geteuid().is_root() {
        bail!(
            "as root, the command could unmount what hides {} (deny_read); refusing\nhint: add \
             --sandbox, whose Landlock domain forbids unmounting to root too, or run as your user",
            deny_read::shown(&paths, cwd)
        );
    }
    Ok(Denied {
        shown: deny_read::shown(&paths, cwd),
        paths,
        asked,
        done: Default::default(),
    })
}

/// What `--trace` (`file`: the trace file, or empty for the summary alone) calls sensitive
/// (the sandbox's list of credential stores) and, under the sandbox, where it lets the tree
/// write, so that what it refused is reported as blocked. Under the sandbox both come from the
/// rules it applies, not from a default computed again.
fn trace_settings(file: &str, home: Option<&Path>, sandbox: Option<&Sandbox>) -> Result<Trace> {
    #[cfg(target_os = "linux")]
    let (sensitive, sandbox_writable) = match sandbox {
        Some(sb) => (
            sb.policy.deny_read.clone(),
            Some(sb.policy.writable.clone()),
        ),
        None => (
            default_sandbox_policy(home.unwrap_or(Path::new("")))
                .context("--trace")?
                .deny_read,
            None,
        ),
    };
    #[cfg(not(target_os = "linux"))]
    let (sensitive, sandbox_writable) = {
        let _ = home;
        (store_dirs(), sandbox.map(|_| Vec::new()))
    };
    Ok(Trace {
        file: (!file.is_empty()).then(|| PathBuf::from(file)),
        sensitive,
        sandbox_writable,
    })
}

/// The profile for a command line when none is named: what its words match, raised to the
/// strongest profile any command it runs matches, read as the Claude Code hook reads a Bash
/// command (`audit::shell_command`). So `npm --prefix web install`, `pnpm -C web i` and
/// `bash -c 'cd web && npm ci'` run under `install` as `npm install` does. Only profiles that
/// restrict are raised to: one that hands out keys is for the program it was written for, not
/// for a word in another's arguments.
fn select_by_command(
    config: &policy::Config,
    argv: &[std::ffi::OsString],
    command_line: &str,
) -> Result<policy::Resolved> {
    use crate::syntax::shell::sh_quote;
    use crate::syntax::shell_command::analyse;
    let mut chosen = config.select(None, command_line)?;
    let script = argv
        .iter()
        .map(|w| sh_quote(&w.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let analysis = analyse(&script, &config.matched_programs());
    // What the lexer cannot read with confidence (`sh -c 'eval "$X"'`) is not raised here, as
    // the hook raises it: these words come from the user's own shell, already expanded, and an
    // agent's command line gets the hook's stricter reading first.
    let candidates = analysis
        .commands
        .iter()
        .flat_map(|s| &s.candidates)
        .filter(|c| c.line != command_line)
        .map(|c| config.select(None, &c.line));
    for r in candidates {
        let r = r?;
        if !r.profile.hands_out_keys() && r.profile.strength() > chosen.profile.strength() {
            chosen = r;
        }
    }
    Ok(chosen)
}

/// Says where Claude Code's settings send its requests past keyfence: a descendant fence does
/// not stop a command the agent ran from writing one for the next session (docs/security.md, "The
/// agent's tree"). Under the default phantom only the stand-in would go there; an injected key
/// or a login's token would go itself.
fn warn_of_agent_redirections(program: &str, cwd: &Path, home: Option<&Path>) {
    if Path::new(program).file_name() != Some("claude".as_ref()) {
        return;
    }
    let Some(home) = home else {
        return;
    };
    for (file, line, url) in crate::setup::claude::api_redirections(home, cwd) {
        eprintln!(
            "keyfence: warning: {}:{line} sets ANTHROPIC_BASE_URL to {}: Claude Code sends its \
             requests, and the credential it holds, there instead of where keyfence points it\n\
             hint: if you did not write that line, something rewrote the file (a command the \
             agent ran can): remove it before trusting this session",
            file.display(),
            detect::redact(url)
        );
    }
}

/// Says that the agent itself holds the real keys handed to it (`--inject`, or Codex's own):
/// guard keeps them from everything the agent starts, but not from a program of the user's
/// that runs outside the tree (an editor, a tmux server), which can read a same-user
/// process's environment and memory. keyfence does not make the agent non-dumpable: that
/// would also keep guard out of the memory of the agent's children before they exec, where
/// it reads what they run (docs/security.md, "The agent's tree"). A stand-in closes it where
/// the agent takes its base URL from the environment.
fn say_agent_holds_keys(program: &str, names: &[&str]) {
    let agent = program.rsplit('/').next().unwrap_or_default();
    if names.is_empty() || !policy::AGENT_PROGRAMS.contains(&agent) {
        return;
    }
    let list = names.join(", ");
    let direct = AGENT_DIRECT_KEYS
        .iter()
        .any(|(a, keys)| *a == agent && names.iter().all(|n| keys.contains(n)));
    let hint = if direct {
        format!(
            "{agent} takes no base URL from its environment, so keyfence cannot give it a \
             stand-in; a program you do not trust should not run as you beside it"
        )
    } else {
        format!(
            "without --inject {list}, the agent profile gives {agent} a stand-in and only \
             keyfence's proxy holds the key"
        )
    };
    eprintln!(
        "keyfence: note: {agent} holds {list} itself: the commands it runs cannot read it, but \
         a program of yours running outside this tree (an editor, a tmux server) can read \
         {agent}'s environment and memory\nhint: {hint}"
    );
}

/// The keys an agent's own API client needs, given as phantoms by default.
const AGENT_KEYS: &[&str] = &["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"];

/// Keys one agent alone takes, given as phantoms to it only: (agent, key, its base-URL
/// variable). Gemini CLI 0.61 in Vertex AI express mode (`GOOGLE_GENAI_USE_VERTEXAI=true`)
/// sends `GOOGLE_API_KEY` in `x-goog-api-key` to `GOOGLE_VERTEX_BASE_URL` (read in its bundle;
/// tests/it/guard/agent_fence_clis.rs drives it). Elsewhere `GOOGLE_API_KEY` is any Google API's key.
const AGENT_OWN_KEYS: &[(&str, &str, &str)] =
    &[("gemini", "GOOGLE_API_KEY", "GOOGLE_VERTEX_BASE_URL")];

/// The base-URL variable and default upstream of an `AGENT_OWN_KEYS` key. Vertex AI's express
/// mode uses the global endpoint, or the regional one Gemini CLI picks for
/// `GOOGLE_CLOUD_LOCATION` `us` or `eu`.
fn own_key_defaults(var: &str) -> Option<(&'static str, &'static str)> {
    let (_, _, base_url_var) = AGENT_OWN_KEYS.iter().find(|(_, k, _)| *k == var)?;
    let upstream = match std::env::var("GOOGLE_CLOUD_LOCATION").as_deref() {
        Ok("us") => "https://aiplatform.us.rep.googleapis.com",
        Ok("eu") => "https://aiplatform.eu.rep.googleapis.com",
        _ => "https://aiplatform.googleapis.com",
    };
    Some((base_url_var, upstream))
}

/// Agents whose API client does not take its base URL from the environment, so a stand-in
/// would reach the real API (or a custom provider's `env_key`) unswapped: they get the real
/// key instead, and guard keeps it from everything they start. Codex 0.171 reads
/// `openai_base_url` from its config only, and its built-in provider takes `CODEX_API_KEY` or
/// `auth.json`, not `OPENAI_API_KEY` (checked with the real CLI, tests/it/guard/agent_fence_clis.rs).
const AGENT_DIRECT_KEYS: &[(&str, &[&str])] = &[("codex", &["OPENAI_API_KEY", "CODEX_API_KEY"])];

/// The keys of `AGENT_DIRECT_KEYS` for this agent that keyfence's environment or the store has
/// and the user did not name: injected as they are.
fn agent_direct_keys(
    resolver: &mut provider::Resolver,
    args: &RunArgs,
    p: &policy::Profile,
    program: &str,
    inject: &[(String, SecretValue)],
) -> Vec<(String, SecretValue)> {
    let name = program.rsplit('/').next().unwrap_or_default();
    let Some((_, keys)) = AGENT_DIRECT_KEYS.iter().find(|(agent, _)| *agent == name) else {
        return Vec::new();
    };
    keys.iter()
        .filter(|k| !inject.iter().any(|(v, _)| v == *k) && !args.phantom.iter().any(|v| v == *k))
        .filter_map(|k| {
            let value = std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(|v| SecretValue::new(v.as_encoded_bytes()))
                .or_else(|| resolver.entry(k, provider::Access::Profile(&p.name)).ok())?;
            Some((k.to_string(), value))
        })
        .collect()
}

/// The agent profile's phantoms: each of `AGENT_KEYS` that the store holds for this profile, or
/// that keyfence's own environment has, and that the user did not choose to inject or already
/// configure. So the agent itself never holds the real key: the phantom proxy (in this process,
/// outside the tree) swaps it in on the way to the API. The upstream is the real API, or the
/// user's own `ANTHROPIC_BASE_URL` / `OPENAI_BASE_URL` / `GOOGLE_GEMINI_BASE_URL` (a gateway;
/// https, or http on loopback).
fn agent_phantoms(
    resolver: &mut provider::Resolver,
    args: &RunArgs,
    p: &policy::Profile,
    program: &str,
    inject: &[(String, SecretValue)],
) -> Vec<crate::policy::PhantomSpec> {
    let agent = program.rsplit('/').next().unwrap_or_default();
    let direct = |name: &str| {
        AGENT_DIRECT_KEYS
            .iter()
            .any(|(a, keys)| *a == agent && keys.contains(&name))
    };
    let chosen = |name: &str| {
        inject.iter().any(|(v, _)| v == name)
            || args.phantom.iter().any(|v| v == name)
            || p.phantom.iter().any(|s| s.var == name)
            || direct(name)
    };
    let own = AGENT_OWN_KEYS
        .iter()
        .filter(|(a, ..)| *a == agent)
        .map(|(_, key, _)| key);
    AGENT_KEYS
        .iter()
        .chain(own)
        .filter(|name| !chosen(name))
        .filter(|name| {
            std::env::var_os(name).is_some_and(|v| !v.is_empty())
                || resolver
                    .entry(name, provider::Access::Profile(&p.name))
                    .is_ok()
        })
        .map(|name| {
            let base_url_var = crate::phantom::provider_defaults(name)
                .or_else(|| own_key_defaults(name))
                .map(|(v, _)| v);
            crate::policy::PhantomSpec {
                var: name.to_string(),
                upstream: args.upstream.clone().or_else(|| {
                    base_url_var
                        .and_then(std::env::var_os)
                        .filter(|v| !v.is_empty())
                        .map(|v| v.to_string_lossy().into_owned())
                }),
                ..Default::default()
            }
        })
        .collect()
}

/// Starts the phantom proxy for `--phantom` names: each gets a stand-in (added to `inject`
/// with the provider's base-URL variable pointing at the proxy). Returns the real values, to
/// mask. The proxy lives in this (supervising) process.
fn start_phantoms(
    resolver: &mut provider::Resolver,
    args: &RunArgs,
    profile: &str,
    profile_phantoms: &[crate::policy::PhantomSpec],
    from_project: bool,
    inject: &mut Vec<(String, SecretValue)>,
) -> Result<Vec<(String, SecretValue)>> {
    use crate::phantom::{self, Phantom, Upstream};
    // From the command line (names, one --upstream for all), then the profile's entries.
    let mut specs: Vec<crate::policy::PhantomSpec> = args
        .phantom
        .iter()
        .map(|n| crate::policy::PhantomSpec {
            var: n.clone(),
            upstream: args.upstream.clone(),
            ..Default::default()
        })
        .collect();
    let from_cli = specs.len();
    for s in profile_phantoms {
        // A project's file comes with the code it configures: letting it choose where the
        // real key is sent would hand the key to whoever wrote the file.
        if from_project && s.upstream.is_some() {
            bail!(
                "phantom {}: a project's keyfence.toml may not set upstream (where the real key \
                 is sent); set it in ~/.config/keyfence/config.toml",
                s.var
            );
        }
        if !specs.iter().any(|c| c.var == s.var) {
            specs.push(s.clone());
        }
    }
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let mut phantoms = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let name = &spec.var;
        let project_entry = from_project && i >= from_cli;
        let defaults = phantom::provider_defaults(name).or_else(|| own_key_defaults(name));
        let base_url_var = match (&spec.base_url_var, defaults) {
            (Some(v), _) => v.clone(),
            (None, Some((v, _))) => v.to_string(),
            (None, None) => bail!(
                "phantom {name}: keyfence knows the API of ANTHROPIC_*, OPENAI_* and GEMINI_* \
                 keys and of GOOGLE_API_KEY (Vertex AI); for others give base_url_var and \
                 upstream in a [[profile.phantom]] entry"
            ),
        };
        let upstream_url = match (&spec.upstream, defaults) {
            (Some(u), _) => u.clone(),
            (None, Some((_, u))) => u.to_string(),
            (None, None) => bail!("phantom {name}: no upstream (set upstream in the profile)"),
        };
        let upstream =
            Upstream::parse(&upstream_url).map_err(|e| anyhow::anyhow!("phantom {name}: {e}"))?;
        let headers = match &spec.headers {
            Some(h) if h.is_empty() => bail!("phantom {name}: headers must name at least one"),
            Some(h) => h.iter().map(|h| h.to_ascii_lowercase()).collect(),
            None => phantom::default_headers(),
        };
        // The real key: the store's entry, else the variable in the current environment.
        let real = match resolver.entry(name, access(profile, project_entry)) {
            Ok(v) => v,
            Err(store_err) => match std::env::var_os(name).filter(|v| !v.is_empty()) {
                Some(v) => SecretValue::new(std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str())),
                None => bail!(
                    "--phantom {name}: not in the store ({store_err:#}) nor in the environment"
                ),
            },
        };
        let standin = phantom::standin(&real);
        phantoms.push(Phantom {
            var: name.clone(),
            real,
            standin,
            base_url_var,
            upstream,
            headers,
        });
    }
    let reals: Vec<(String, SecretValue)> = phantoms
        .iter()
        .map(|p| (p.var.clone(), p.real.clone()))
        .collect();
    let stand: Vec<(String, SecretValue, String)> = phantoms
        .iter()
        .map(|p| (p.var.clone(), p.standin.clone(), p.base_url_var.clone()))
        .collect();
    let limits = phantom::Limits::from_env()?;
    let addr = phantom::start(phantoms, limits).context("starting the phantom proxy")?;
    for (var, standin, base_var) in stand {
        inject.push((var, standin));
        inject.push((base_var, SecretValue::new(format!("http://{addr}"))));
    }
    Ok(reals)
}

/// `--canary`: each dropped secret comes back as a fresh registered canary of its kind.
fn plant_canaries(plan: &mut env::Plan) -> Result<()> {
    use crate::canary;
    let mut registered = Vec::new();
    for name in &plan.dropped {
        let Some((_, real)) = plan.secrets.iter().find(|(n, _)| n == name) else {
            continue;
        };
        let kind = detect::detector()
            .classify_var(name, real.expose())
            .and_then(|m| canary::kind_for_rule(m.rule.id));
        let bait = kind
            .and_then(canary::generate)
            .unwrap_or_else(|| canary::generic_like(real));
        registered.push(canary::Entry {
            fingerprint: bait.fingerprint(),
            kind: kind.unwrap_or("generic").to_string(),
            created: canary::now(),
            label: format!("keyfence run --canary, as {name}"),
            planted_in: Vec::new(),
            env_only: true,
        });
        plan.env.push((
            name.into(),
            std::ffi::OsStr::from_bytes(bait.expose()).to_os_string(),
        ));
    }
    canary::register(&registered).context("registering canaries")?;
    Ok(())
}

/// `NAME`, `VAR=NAME` or `VAR=REFERENCE` (see `provider`): (variable, value). `from_project`:
/// the request comes from a project's keyfence.toml, so only store entries that allow
/// `profile` by name are given, and no `cmd:` is run.
fn resolve_injections(
    resolver: &mut provider::Resolver,
    specs: &[String],
    profile: &str,
    from_project: bool,
) -> Result<Vec<(String, SecretValue)>> {
    let mut out = Vec::new();
    for spec in specs {
        // A key pasted where a name belongs must not be echoed back in an error message.
        if !detect::detector()
            .scan(spec.as_bytes(), detect::Mode::Text)
            .is_empty()
        {
            bail!(
                "--inject: that looks like a secret value, not a store entry name; it was not \
                 used\nhint: store it with `keyfence secret set NAME` (from stdin), then \
                 `--inject NAME`"
            );
        }
        // VAR is a variable name: no ':' or '/', which every reference with a '=' has first.
        let (var, name) = match spec.split_once('=') {
            Some((v, n)) if !v.contains([':', '/']) => (v, n),
            _ => (spec.as_str(), spec.as_str()),
        };
        if var.is_empty() || name.is_empty() || var.contains('\0') {
            bail!("--inject {spec}: expected NAME, VAR=NAME or VAR=REFERENCE");
        }
        let reference = provider::Reference::parse(name)?;
        let value = match &reference {
            provider::Reference::Store(name) => {
                resolver.entry(name, access(profile, from_project))?
            }
            _ if var == name => {
                bail!("--inject {spec}: name the variable to set, as in --inject VAR={spec}")
            }
            provider::Reference::Cmd { .. } if from_project => bail!(
                "profile '{profile}' in the project's keyfence.toml runs '{name}'; a project \
                 file may not run commands to fetch secrets\nhint: if you trust it, put the \
                 profile in ~/.config/keyfence/config.toml, or pass --inject {var}={name} yourself"
            ),
            provider::Reference::File { .. } if from_project => bail!(
                "profile '{profile}' in the project's keyfence.toml reads '{name}'; a project \
                 file may not choose files for keyfence to read into a command\nhint: if you \
                 trust it, put the profile in ~/.config/keyfence/config.toml, or pass --inject \
                 {var}={name} yourself"
            ),
            r => resolver
                .resolve(r, name, access(profile, from_project))
                .with_context(|| format!("fetching {var} from {name}"))?,
        };
        out.push((var.to_string(), value));
    }
    Ok(out)
}

/// A supervising keyfence holds the values it dropped and injected: make it non-dumpable and
/// blank them in its own initial environment block.
fn protect_supervisor(plan: &env::Plan) {
    // Blank first: once non-dumpable, /proc/self/mem belongs to root and a normal user can no
    // longer open it.
    let names: Vec<String> = plan.secrets.iter().map(|(n, _)| n.clone()).collect();
    if let Err(e) = protect::blank_initial_environ(&names) {
        eprintln!("keyfence: warning: cannot blank the supervisor's environment block: {e}");
    }
    if let Err(e) = protect::non_dumpable() {
        eprintln!("keyfence: warning: cannot make the supervisor non-dumpable: {e}");
    }
}

/// Runs the command as settled: in place when nothing needs keyfence to stay, else as its
/// supervisor (masking, guard, trace). The plan's environment is handed over, so the copies of
/// injected values keyfence holds are freed (and zeroed) as soon as the command has started.
fn start(s: &mut Settings, trace_file: Option<crate::trace::file::TraceFile>) -> Exit {
    if s.verbose {
        // Names only, never values.
        if !s.plan.dropped.is_empty() {
            eprintln!("keyfence: dropped {}", s.plan.dropped.join(", "));
        }
        if !s.plan.injected.is_empty() {
            eprintln!("keyfence: injected {}", s.plan.injected.join(", "));
        }
    }
    if !s.supervise {
        let e = process::exec_in_place(&s.command, &s.plan.env);
        eprintln!("keyfence: {e}");
        return e.exit();
    }
    let trace = s.trace.as_ref().map(|t| recorder(s, t, trace_file));
    let fence = match &s.protections.tracer {
        Some(Tracer {
            landlock_abi: abi,
            guard: Some(_),
        }) => match share_fence(*abi, s.home.as_deref()) {
            Ok(f) => {
                if *abi < 6 {
                    eprintln!(
                        "keyfence: guard: this kernel's Landlock (ABI {abi}, 6 came with Linux \
                         6.12) cannot stop what the command starts from signalling it or from \
                         reaching abstract unix sockets outside the tree; a signal can end the \
                         command, but not make it dump core (its core limit is 0)"
                    );
                }
                Some(f)
            }
            Err(e) => {
                eprintln!("keyfence: error: guard: {e}");
                return Exit::CannotRun;
            }
        },
        _ => None,
    };
    let guard = s.protections.tracer.as_ref().map(|t| process::Guard {
        protected: crate::guard::Protected::new(&s.plan.secrets)
            .launching(t.guard.as_ref().and_then(|l| l.as_ref())),
        fence,
        trace: std::sync::Mutex::new(trace),
        verbose: s.verbose,
    });
    let mask = s.protections.mask;
    if !mask {
        // Nothing to mask: the guard's list (if any) is the only copy the supervisor keeps.
        s.plan.secrets.clear();
    }
    let command_env = std::mem::take(&mut s.plan.env);
    let masked: &[(String, SecretValue)] = if mask { &s.plan.secrets } else { &[] };
    let supervised = if std::io::stdout().is_terminal() {
        process::supervise_pty(&s.command, command_env, masked, guard.as_ref())
    } else {
        process::supervise(&s.command, command_env, masked, guard.as_ref())
    };
    match supervised {
        Ok(done) => {
            for line in &done.guard {
                eprintln!("keyfence: guard: {line}");
            }
            for line in &done.trace {
                eprintln!("keyfence: trace: {line}");
            }
            match done.outcome {
                process::Outcome::Exited(code) => Exit::Code(code),
                process::Outcome::Signaled(sig) => Exit::Signal(sig),
            }
        }
        Err(e) => {
            eprintln!("keyfence: {e}");
            e.exit()
        }
    }
}

/// The providers' warnings about leases (a renewal or a revocation that failed), on stderr.
pub(super) fn lease_warnings() -> provider::Warn {
    std::sync::Arc::new(|w: &str| eprintln!("keyfence: warning: {w}"))
}

/// What a request may have from the store: a project's keyfence.toml only entries that list
/// its profile by name; the user's own flags and configuration any entry the profile is
/// allowed.
fn access(profile: &str, from_project: bool) -> provider::Access<'_> {
    match from_project {
        true => provider::Access::Listed(profile),
        false => provider::Access::Profile(profile),
    }
}

/// Builds the descendants' fence (guard/fence.rs) and leaves its ruleset open for the helper;
/// the fence and that descriptor. Core dumps go too: with a hard `RLIMIT_CORE` of 0 for
/// keyfence, and so for the command and everything it starts, no process of the tree can
/// raise it again (that needs `CAP_SYS_RESOURCE`), and no crash of the command, forced or
/// not, writes its memory to a file; systemd-coredump honours the limit too.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn share_fence(abi: u32, home: Option<&Path>) -> Result<(crate::guard::fence::Fence, i32)> {
    use nix::sys::resource::{Resource, setrlimit};
    setrlimit(Resource::RLIMIT_CORE, 0, 0).context("cannot turn core dumps off")?;
    let home = required_home(home, "--guard")?;
    let deny = crate::isolate::sandbox::credential_paths(home, &store_dirs());
    let fence = crate::guard::fence::Fence::new(&deny, abi);
    let fd = crate::guard::fence::share(&fence)?;
    Ok((fence, fd))
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn share_fence(_abi: u32, _home: Option<&Path>) -> Result<(crate::guard::fence::Fence, i32)> {
    bail!("--guard needs Linux on x86-64")
}

/// The trace recorder: which values to look for in outgoing data (every dropped or injected
/// secret, and the canaries and stand-ins given in their place, each stand-in labelled as one
/// whichever way it was asked for) and which paths are sensitive, as settled (`trace_settings`).
fn recorder(
    s: &Settings,
    trace: &Trace,
    file: Option<crate::trace::file::TraceFile>,
) -> crate::trace::Recorder {
    use crate::trace::{Recorder, Watched};
    let value_in_env = |name: &str| {
        s.plan
            .env
            .iter()
            .find(|(k, _)| k.as_bytes() == name.as_bytes())
            .map(|(_, v)| v.as_bytes())
    };
    // A phantom's variable holds its stand-in; the real key behind it is watched under the
    // same name, as the value itself.
    let is_standin = |name: &str, value: &SecretValue| {
        s.protections.phantoms.iter().any(|p| p == name)
            && value_in_env(name) == Some(value.expose())
    };
    let mut watched: Vec<Watched> = s
        .plan
        .secrets
        .iter()
        .map(|(n, v)| Watched {
            label: match is_standin(n, v) {
                true => format!("{n} (stand-in)"),
                false => n.clone(),
            },
            canary: false,
            value: v.clone(),
        })
        .collect();
    if s.protections.canary {
        for name in &s.plan.dropped {
            if let Some(value) = value_in_env(name) {
                watched.push(Watched {
                    label: name.clone(),
                    canary: true,
                    value: SecretValue::new(value),
                });
            }
        }
    }
    let mut rec = Recorder::new(file, watched, trace.sensitive.clone());
    rec.sandbox_writable = trace.sandbox_writable.clone();
    // The command as the user named it (`npm`, not the `/usr/bin/env node` its shebang runs).
    rec.top = Path::new(&s.command[0])
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    rec
}

/// `keyfence __guard-exec -- COMMAND...`: the helper `run --guard` starts.
pub fn guard_helper(command: &[std::ffi::OsString], trace: bool) -> Exit {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        let e = crate::guard::helper_exec(command, trace);
        eprintln!("keyfence: {e}");
        e.exit()
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    {
        let _ = (command, trace);
        eprintln!("keyfence: --guard needs Linux on x86-64");
        Exit::CannotRun
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_keeps_every_option_the_user_gave_and_adds_its_flag_after_run() {
        let argv = |s: &[&str]| s.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(
            with_flag_added(
                argv(&[
                    "-v",
                    "run",
                    "--net",
                    "none",
                    "--",
                    "sh",
                    "-c",
                    "cat .env; run"
                ])
                .into_iter(),
                &["--deny-read", "!.env"],
            ),
            "keyfence -v run --deny-read '!.env' --net none -- sh -c 'cat .env; run'"
        );
    }
}
