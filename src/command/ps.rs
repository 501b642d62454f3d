//! `keyfence ps`: the live leak map.

use super::{Exit, color_choice};
use crate::audit::proc;
use crate::cli::{Format, GlobalArgs};
use crate::{detect, report};
use anyhow::{Context as _, Result, bail};
use serde_json::json;
use std::io::Write;

pub fn run(g: &GlobalArgs) -> Result<Exit> {
    let procs = proc::processes(detect::detector(), std::path::Path::new("/proc"))
        .context("listing processes in /proc")?;
    let stdout = std::io::stdout().lock();
    let mut out = anstream::AutoStream::new(stdout, color_choice(g.color));
    match g.format {
        Format::Human => report::tree::render(&procs, &mut out)?,
        Format::Json => {
            let list: Vec<_> = procs
                .iter()
                .filter(|p| !p.held.is_empty())
                .map(|p| {
                    json!({
                        "pid": p.pid,
                        "ppid": p.ppid,
                        "comm": p.comm,
                        "held": p.held.iter().map(|(var, rule, s)| json!({
                            "env": var, "rule": rule, "secret": s,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let unreadable = procs.iter().filter(|p| !p.readable).count();
            serde_json::to_writer_pretty(
                &mut out,
                &json!({ "version": 1, "processes": list, "unreadable": unreadable }),
            )?;
            writeln!(out)?;
        }
        Format::Sarif => bail!(
            "`keyfence ps` prints human or json; use `keyfence audit --only proc --format sarif`"
        ),
    }
    out.flush()?;
    Ok(if procs.iter().any(|p| !p.held.is_empty()) {
        Exit::Findings
    } else {
        Exit::Clean
    })
}
