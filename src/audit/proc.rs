//! `proc`: which running processes hold secrets in their environment (`/proc/PID/environ`).
//! Each holder passes the secret to its children, and any process of the same user can read it
//! (P2). Processes of other users are counted, not read; processes that exit mid-scan are skipped.
//!
//! It also reports a running AI agent (`policy::AGENT_PROGRAMS`) that keyfence does not
//! supervise ([`AGENT_OUTSIDE_KEYFENCE`]): every command the agent runs can reach whatever the
//! user can, whether or not a key shows in the agent's environment.

use super::{Context, Output};
use crate::detect::Detector;
use crate::finding::{Location, SecretInfo, Severity, Source};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Rule `agent-outside-keyfence` (high): an AI agent (`claude`, `codex`, `gemini`, also when
/// `node` runs it) is running and no keyfence
/// supervisor traces it (its `TracerPid` is 0, or its tracer is not keyfence), so it was not
/// started under the `agent` profile (`keyfence run --profile agent`, which guards with ptrace).
/// The commands it runs can read its environment, every credential file of the user
/// and keyfence's store. Fix: `keyfence setup AGENT`, then restart the agent.
pub const AGENT_OUTSIDE_KEYFENCE: &str = "agent-outside-keyfence";

/// One running process and the secrets its environment holds.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    /// (variable, rule id, secret) for each secret-holding variable.
    pub held: Vec<(String, String, SecretInfo)>,
    /// Whether the environment could be read.
    pub readable: bool,
}

/// Reads every process under `proc_root` (normally `/proc`). Skips keyfence itself.
pub fn processes(detector: &'static Detector, proc_root: &Path) -> std::io::Result<Vec<Process>> {
    let me = std::process::id();
    // Many processes share one environment (a shell and its children): classify each distinct
    // environment once.
    let mut cache: HashMap<Vec<u8>, Vec<(String, String, SecretInfo)>> = HashMap::new();
    let mut procs = Vec::new();
    for entry in std::fs::read_dir(proc_root)? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let dir = entry.path();
        // The process may have exited since read_dir listed it: skip it quietly.
        let Ok(stat) = std::fs::read(dir.join("stat")) else {
            continue;
        };
        let Some((comm, ppid, flags)) = parse_stat(&stat) else {
            continue;
        };
        // A kernel thread has no environment, and reading it fails (ESRCH for root, EACCES
        // for others): it is neither a holder nor a process that could not be read.
        if flags & PF_KTHREAD != 0 {
            continue;
        }
        let (held, readable) = match std::fs::read(dir.join("environ")) {
            Ok(environ) => {
                let held = cache
                    .entry(environ)
                    .or_insert_with_key(|environ| classify_environ(detector, environ))
                    .clone();
                (held, true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => (Vec::new(), false),
        };
        procs.push(Process {
            pid,
            ppid,
            comm,
            held,
            readable,
        });
    }
    procs.sort_by_key(|p| p.pid);
    Ok(procs)
}

fn classify_environ(
    detector: &'static Detector,
    environ: &[u8],
) -> Vec<(String, String, SecretInfo)> {
    let mut held = Vec::new();
    for var in environ.split(|&b| b == 0) {
        let Some(eq) = var.iter().position(|&b| b == b'=') else {
            continue;
        };
        let name = String::from_utf8_lossy(&var[..eq]);
        if let Some(m) = detector.classify_var(&name, &var[eq + 1..]) {
            held.push((name.into_owned(), m.rule.id.to_string(), m.info()));
        }
    }
    held
}

/// `/proc/PID/stat` is `pid (comm) state ppid ...`; comm may contain spaces and parentheses, so
/// split at the last `)`.
/// `PF_KTHREAD` in the flags of `/proc/PID/stat` (include/linux/sched.h).
const PF_KTHREAD: u32 = 0x0020_0000;

/// The command name, parent pid and flags from `/proc/PID/stat` (proc(5): fields 2, 4 and 9).
fn parse_stat(stat: &[u8]) -> Option<(String, u32, u32)> {
    let open = stat.iter().position(|&b| b == b'(')?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let comm = String::from_utf8_lossy(stat.get(open + 1..close)?).into_owned();
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let _state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    // pgrp, session, tty_nr, tpgid, then flags.
    let flags = fields.nth(4)?.parse().ok()?;
    Some((comm, ppid, flags))
}

pub fn audit(ctx: &Context, out: &mut Output) {
    let procs = match processes(ctx.detector, Path::new("/proc")) {
        Ok(p) => p,
        Err(e) => {
            out.error(
                Source::Proc,
                Some(Path::new("/proc")),
                format!("cannot list processes: {e}"),
            );
            return;
        }
    };
    let me = std::env::current_exe().ok();
    let proc_root = Path::new("/proc");
    let agents: HashMap<u32, String> = procs
        .iter()
        .filter_map(|p| agent_of(proc_root, p).map(|a| (p.pid, a)))
        .collect();
    for p in &procs {
        if !p.readable {
            out.skipped.unreadable_processes += 1;
            continue;
        }
        // One finding per agent: not again for the process a launcher started (the npm `codex`
        // starts the native binary, Gemini CLI relaunches itself in a second node).
        if let Some(agent) = agents.get(&p.pid)
            && !agents.contains_key(&p.ppid)
            && !under_keyfence(proc_root, p.pid, me.as_deref())
        {
            out.findings.push(agent_outside_keyfence(p, agent));
        }
        for (var, rule, info) in &p.held {
            out.findings.push(crate::finding::Finding {
                rule: rule.clone(),
                severity: Severity::High,
                source: Source::Proc,
                location: Location::Process {
                    pid: p.pid,
                    comm: p.comm.clone(),
                    env: Some(var.clone()),
                },
                secret: Some(info.clone()),
                message: format!(
                    "running process {} ({}) holds {} in {var}: its children inherit it and any \
                     process of the same user can read /proc/{}/environ",
                    p.comm, p.pid, info.kind, p.pid
                ),
                fix: format!(
                    "restart {} without {var} in its environment (start it with `keyfence run`), \
                     after removing the export that put it there",
                    p.comm
                ),
            });
        }
    }
}

/// Whether a process name is one of `AGENT_PROGRAMS` (the npm package's native binary is
/// `claude.exe` when started by that name).
fn is_agent(comm: &str) -> bool {
    let name = comm.strip_suffix(".exe").unwrap_or(comm);
    crate::policy::AGENT_PROGRAMS.contains(&name)
}

/// The agent of `AGENT_PROGRAMS` a process is, by its name or, for a script interpreter
/// (`node`, `bun`: Gemini CLI and the npm `codex` launcher run as `node`), by the script its
/// command line names (`.../bin/gemini`, `.../bundle/gemini.js`).
fn agent_of(proc_root: &Path, p: &Process) -> Option<String> {
    if is_agent(&p.comm) {
        return Some(p.comm.strip_suffix(".exe").unwrap_or(&p.comm).to_string());
    }
    if !matches!(p.comm.as_str(), "node" | "nodejs" | "bun" | "MainThread") {
        return None;
    }
    let cmdline = std::fs::read(proc_root.join(format!("{}/cmdline", p.pid))).ok()?;
    script_agent(&cmdline)
}

/// The agent named by the first argument after the interpreter that is not an option.
fn script_agent(cmdline: &[u8]) -> Option<String> {
    let script = cmdline
        .split(|&b| b == 0)
        .skip(1)
        .find(|a| !a.is_empty() && !a.starts_with(b"-"))?;
    let script = String::from_utf8_lossy(script);
    let name = script.rsplit('/').next().unwrap_or_default();
    let name = name
        .strip_suffix(".js")
        .or_else(|| name.strip_suffix(".mjs"))
        .unwrap_or(name);
    is_agent(name).then(|| name.to_string())
}

/// Whether a keyfence process traces `pid` (guard traces every process of the tree it runs,
/// the command included). The tracer counts as keyfence when its executable is this keyfence or
/// is named `keyfence`; when its executable cannot be read (another user's), by its name.
fn under_keyfence(proc_root: &Path, pid: u32, me: Option<&Path>) -> bool {
    let Ok(status) = std::fs::read_to_string(proc_root.join(format!("{pid}/status"))) else {
        // Exited since it was listed: nothing to report either way.
        return true;
    };
    let tracer = status
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(0);
    if tracer == 0 {
        return false;
    }
    let dir = proc_root.join(tracer.to_string());
    match std::fs::read_link(dir.join("exe")) {
        Ok(exe) => {
            let exe = PathBuf::from(
                exe.to_string_lossy()
                    .trim_end_matches(" (deleted)")
                    .to_string(),
            );
            Some(exe.as_path()) == me || exe.file_name().is_some_and(|n| n == "keyfence")
        }
        Err(_) => std::fs::read_to_string(dir.join("comm")).is_ok_and(|c| c.trim() == "keyfence"),
    }
}

fn agent_outside_keyfence(p: &Process, agent: &str) -> crate::finding::Finding {
    let held: Vec<&str> = p.held.iter().map(|(v, _, _)| v.as_str()).collect();
    let env = if held.is_empty() {
        "its environment".to_string()
    } else {
        format!("{} from its environment", held.join(", "))
    };
    crate::finding::Finding {
        rule: AGENT_OUTSIDE_KEYFENCE.into(),
        severity: Severity::High,
        source: Source::Proc,
        location: Location::Process {
            pid: p.pid,
            comm: p.comm.clone(),
            env: None,
        },
        secret: None,
        message: format!(
            "{} runs outside keyfence's agent profile: every command it runs can read {env}, \
             every credential file you can read (~/.claude/.credentials.json, \
             ~/.codex/auth.json, ~/.gemini/oauth_creds.json, ~/.aws, ~/.ssh, ...) and \
             keyfence's store through `keyfence secret get`",
            if p.comm.strip_suffix(".exe").unwrap_or(&p.comm) == agent {
                format!("{} ({})", p.comm, p.pid)
            } else {
                format!("{agent} ({} {})", p.comm, p.pid)
            }
        ),
        fix: format!(
            "quit it and start it as `keyfence run --profile agent -- {agent}`; `keyfence setup \
             {agent}` makes typing `{agent}` do that"
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stat_with_spaces_in_comm() {
        assert_eq!(
            super::parse_stat(b"42 (tmux: server) S 1 42 42 0 -1 4194560 85 0"),
            Some(("tmux: server".to_string(), 1, 4194560))
        );
        // A kernel thread as /proc/2/stat shows it.
        let (_, _, flags) = super::parse_stat(b"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0").unwrap();
        assert_ne!(flags & super::PF_KTHREAD, 0);
        assert_eq!(super::parse_stat(b"garbage"), None);
    }

    #[test]
    fn agent_names() {
        assert!(super::is_agent("claude") && super::is_agent("claude.exe"));
        assert!(super::is_agent("codex") && super::is_agent("gemini"));
        assert!(!super::is_agent("claude-helper") && !super::is_agent("node"));
    }

    #[test]
    fn agents_run_by_node() {
        for (cmdline, agent) in [
            (&b"node\0/usr/bin/gemini\0-p\0hi\0"[..], Some("gemini")),
            (
                b"/usr/bin/node\0--max-old-space-size=8192\0/x/@google/gemini-cli/bundle/gemini.js\0",
                Some("gemini"),
            ),
            (b"node\0/x/@openai/codex/bin/codex.js\0exec\0", Some("codex")),
            (b"node\0/x/server.js\0gemini\0", None),
            (b"node\0", None),
        ] {
            assert_eq!(super::script_agent(cmdline).as_deref(), agent);
        }
    }
}
