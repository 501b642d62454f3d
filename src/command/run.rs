//! `keyfence run [options] -- COMMAND [ARGS...]`
//!
//! Errors before the command starts exit 125 (not 2): `run`'s status space belongs to the
//! command, as for `env`, `sudo` and `op run`.

use super::Exit;
use crate::cli::{GlobalArgs, RunArgs};
use crate::detect;
use crate::run::{env, process, protect};
use crate::secret::SecretValue;
use anyhow::{Result, bail};

/// Built-in profiles (DESIGN.md §3). Both scrub for now; the isolation work gives `install`
/// its sandbox.
const BUILTIN_PROFILES: &[&str] = &["default", "install"];

pub fn run(g: &GlobalArgs, args: &RunArgs) -> Result<Exit> {
    match prepare(args) {
        Ok(plan) => Ok(start(g, args, plan)),
        Err(e) => {
            eprintln!("keyfence: error: {e:#}");
            Ok(Exit::Code(process::EXIT_CANNOT_RUN))
        }
    }
}

fn prepare(args: &RunArgs) -> Result<env::Plan> {
    if let Some(p) = &args.profile
        && !BUILTIN_PROFILES.contains(&p.as_str())
    {
        bail!(
            "unknown profile '{p}'\nhint: the built-in profiles are {}",
            BUILTIN_PROFILES.join(", ")
        );
    }
    let rules = env::EnvRules::new(&args.allow, &args.drop)
        .map_err(|e| anyhow::anyhow!("bad --drop pattern: {e}"))?;
    let inject = resolve_injections(&args.inject, args.profile.as_deref())?;
    Ok(env::plan(
        detect::detector(),
        std::env::vars_os(),
        &rules,
        inject,
    ))
}

/// `--inject NAME` or `--inject VAR=NAME`: (variable, value from the store).
fn resolve_injections(
    specs: &[String],
    profile: Option<&str>,
) -> Result<Vec<(String, SecretValue)>> {
    let mut out = Vec::new();
    for spec in specs {
        let (var, name) = spec.split_once('=').unwrap_or((spec, spec));
        if var.is_empty() || name.is_empty() || var.contains('\0') {
            bail!("--inject {spec}: expected NAME or VAR=NAME");
        }
        let value = fetch_for_run(name, profile.unwrap_or("default"))?;
        out.push((var.to_string(), value));
    }
    Ok(out)
}

fn start(g: &GlobalArgs, args: &RunArgs, plan: env::Plan) -> Exit {
    if g.verbose {
        // Names only, never values.
        if !plan.dropped.is_empty() {
            eprintln!("keyfence: dropped {}", plan.dropped.join(", "));
        }
        if !plan.injected.is_empty() {
            eprintln!("keyfence: injected {}", plan.injected.join(", "));
        }
    }
    let mask = !args.no_mask && !plan.secrets.is_empty();
    if !mask {
        let (code, msg) = process::exec_in_place(&args.command, &plan.env);
        eprintln!("keyfence: {msg}");
        return Exit::Code(code);
    }
    // Supervising: this process holds the values from here on.
    if let Err(e) = protect::non_dumpable() {
        eprintln!("keyfence: warning: cannot make the supervisor non-dumpable: {e}");
    }
    let names: Vec<String> = plan.secrets.iter().map(|(n, _)| n.clone()).collect();
    if let Err(e) = protect::blank_initial_environ(&names) {
        eprintln!("keyfence: warning: cannot blank the supervisor's environment block: {e}");
    }
    match process::supervise(&args.command, &plan.env, &plan.secrets) {
        Ok(code) => Exit::Code(code),
        Err((code, msg)) => {
            eprintln!("keyfence: {msg}");
            Exit::Code(code)
        }
    }
}

/// Placeholder until the store lands in this tree.
fn fetch_for_run(name: &str, _profile: &str) -> Result<SecretValue> {
    bail!("cannot inject {name}: the store is not available in this build")
}
