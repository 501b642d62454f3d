//! Glue between the CLI and the capabilities: build settings from arguments, run, render, and
//! choose the exit status. The only layer (with `main`) that writes to stdout or stderr.

mod audit;
mod canary;
mod doctor;
mod fix;
mod ps;
mod run;
mod scan;
mod secret;
mod setup;
mod shell_init;

use crate::cli::{Cli, ColorWhen, Command, Format, GlobalArgs};
use crate::finding::{Report, Source};
use crate::report;
use anyhow::{Context as _, Result, bail};
use clap::CommandFactory;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub use crate::exit::Exit;

/// How files keyfence writes for later (shell-init's functions, the rc block, Claude Code's
/// hook) name keyfence: `keyfence` when that name on `PATH` is this very binary, so the line
/// survives a reinstall elsewhere on PATH; the binary's path inside an npm package (npm's
/// `keyfence` is a Node launcher); else this binary's absolute path, with a warning that it
/// stops working when the binary moves (a build directory after `cargo clean`).
pub fn keyfence_path() -> Result<(PathBuf, Option<String>)> {
    let exe = std::env::current_exe().context("finding keyfence's own path")?;
    let real = exe.canonicalize().unwrap_or_else(|_| exe.clone());
    let on_path = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("keyfence"))
        .find(|c| c.is_file());
    if on_path.as_ref().and_then(|c| c.canonicalize().ok()) == Some(real.clone()) {
        return Ok((PathBuf::from("keyfence"), None));
    }
    // npm's `keyfence` on PATH is its Node launcher, which finds this binary in its platform
    // package: a path npm keeps (an update rewrites the file in place), and the one to write,
    // since a Node start-up in front of every wrapped command is what the native path avoids.
    if real.components().any(|c| c.as_os_str() == "node_modules") {
        return Ok((exe, None));
    }
    let why = match on_path {
        Some(other) => format!(
            "the `keyfence` on PATH is another one ({})",
            other.display()
        ),
        None => "keyfence is not on PATH".to_string(),
    };
    let warning = format!(
        "{why}, so this names keyfence by its full path, {}, which stops working if that file \
         moves (a build directory after `cargo clean`)\nhint: install keyfence on your PATH \
         (`pip install keyfence`, `npm i -g keyfence`, or `cargo install --path .` in a \
         checkout) and run this again",
        exe.display()
    );
    Ok((exe, Some(warning)))
}

/// Ends keyfence by `sig`, as the command it ran ended, so that the shell sees what it would
/// have seen without keyfence (bash stops a loop when its child dies of SIGINT). Without a
/// core file: the command's crash is not keyfence's. Returns if the signal does not end the
/// process (then the caller exits 128+N).
pub fn die_by(sig: i32) {
    use nix::sys::resource::{Resource, setrlimit};
    let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
    let _ = std::io::stdout().flush();
    let _ = signal_hook::low_level::emulate_default_handler(sig);
}

pub fn run(cli: Cli) -> Result<Exit> {
    let Cli {
        mut global,
        command,
    } = cli;
    global.format = command.format();
    let cli = Cli { global, command };
    match &cli.command {
        Command::Audit(args) => audit::run(&cli.global, args),
        Command::Scan(args) => scan::run(&cli.global, args),
        Command::Ps(_) => ps::run(&cli.global),
        Command::Init(args) => secret::init(&cli.global, args),
        Command::Secret(cmd) => secret::run(&cli.global, cmd),
        Command::Run(args) => run::run(&cli.global, args),
        Command::Setup(cmd) => setup::run(&cli.global, cmd),
        Command::Fix(args) => fix::run(&cli.global, args),
        Command::Doctor(_) => doctor::run(&cli.global),
        Command::Canary(cmd) => canary::run(&cli.global, cmd),
        Command::ProbeNamespaces => Ok(Exit::Code(crate::isolate::namespace_probe_child() as u8)),
        Command::GuardExec { command, trace } => Ok(run::guard_helper(command, *trace)),
        Command::ShellInit { shell } => shell_init::run(*shell),
        Command::HookClaude => setup::hook_claude(),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "keyfence", &mut std::io::stdout());
            Ok(Exit::Clean)
        }
    }
}

/// The sources selected by `--only` and `--skip`, in their canonical order.
fn selected_sources(only: &[Source], skip: &[Source]) -> Vec<Source> {
    Source::ALL
        .iter()
        .copied()
        .filter(|s| only.is_empty() || only.contains(s))
        .filter(|s| !skip.contains(s))
        .collect()
}

fn home_dir(home: &crate::cli::HomeArg) -> Result<PathBuf> {
    match &home.home {
        Some(h) => {
            if !h.is_dir() {
                bail!("--home {}: not a directory", h.display());
            }
            Ok(std::path::absolute(h)?)
        }
        None => match std::env::var_os("HOME") {
            Some(h) if !h.is_empty() => Ok(PathBuf::from(h)),
            _ => bail!("HOME is not set\nhint: pass the home directory to audit with --home DIR"),
        },
    }
}

fn threads(n: Option<usize>) -> usize {
    n.filter(|&n| n > 0).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    })
}

fn color_choice(when: ColorWhen) -> anstream::ColorChoice {
    match when {
        // anstream's Auto honours NO_COLOR, CLICOLOR(_FORCE) and whether stdout is a terminal.
        ColorWhen::Auto => anstream::ColorChoice::Auto,
        ColorWhen::Always => anstream::ColorChoice::Always,
        ColorWhen::Never => anstream::ColorChoice::Never,
    }
}

/// Writes the report in the chosen format to stdout and returns the exit status.
fn emit(
    g: &GlobalArgs,
    fail_on: crate::finding::Severity,
    report: &Report,
    what: &'static str,
) -> Result<Exit> {
    let stdout = std::io::stdout().lock();
    let mut out = anstream::AutoStream::new(stdout, color_choice(g.color));
    match g.format {
        Format::Human => report::human::render(
            report,
            &report::human::Options {
                quiet: g.quiet,
                verbose: g.verbose,
                what,
            },
            &mut out,
        ),
        Format::Json => report::json::render(report, &mut out),
        Format::Sarif => report::sarif::render(report, &mut out),
    }
    .context("writing the report")?;
    out.flush().context("writing the report")?;
    Ok(match report.worst() {
        Some(s) if s >= fail_on => Exit::Findings,
        _ => Exit::Clean,
    })
}

/// Runs `work`, showing a spinner with the number of files seen on stderr if it is a terminal
/// and the work takes longer than half a second.
fn with_progress<R>(g: &GlobalArgs, files_seen: &AtomicU64, work: impl FnOnce() -> R) -> R {
    if g.quiet || !std::io::stderr().is_terminal() {
        return work();
    }
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let start = std::time::Instant::now();
            let mut bar: Option<indicatif::ProgressBar> = None;
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if bar.is_none() && start.elapsed() > Duration::from_millis(500) {
                    let b = indicatif::ProgressBar::with_draw_target(
                        None,
                        indicatif::ProgressDrawTarget::stderr(),
                    );
                    b.set_style(
                        indicatif::ProgressStyle::with_template("{spinner} {msg}")
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                    );
                    bar = Some(b);
                }
                if let Some(b) = &bar {
                    b.set_message(format!(
                        "{} files checked",
                        files_seen.load(Ordering::Relaxed)
                    ));
                    b.tick();
                }
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
        });
        let r = work();
        done.store(true, Ordering::Relaxed);
        r
    })
}
