//! `keyfence ps`: the live leak map as a process tree. Only processes that hold a secret, and
//! their ancestors (for context), are shown.

use crate::audit::proc::Process;
use anstyle::{AnsiColor, Style};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Write};

const RED: Style = Style::new()
    .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red)))
    .bold();
const DIM: Style = Style::new().dimmed();

pub fn render(procs: &[Process], w: &mut dyn Write) -> io::Result<()> {
    let by_pid: HashMap<u32, &Process> = procs.iter().map(|p| (p.pid, p)).collect();
    // Keep holders and every ancestor of a holder.
    let mut keep: HashSet<u32> = HashSet::new();
    for p in procs.iter().filter(|p| !p.held.is_empty()) {
        let mut cur = Some(p.pid);
        while let Some(pid) = cur {
            if !keep.insert(pid) {
                break;
            }
            cur = by_pid
                .get(&pid)
                .map(|p| p.ppid)
                .filter(|pp| *pp != 0 && *pp != pid);
        }
    }
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let mut roots = Vec::new();
    for &pid in &keep {
        let Some(p) = by_pid.get(&pid) else { continue };
        if keep.contains(&p.ppid) && p.ppid != pid {
            children.entry(p.ppid).or_default().push(pid);
        } else {
            roots.push(pid);
        }
    }
    roots.sort_unstable();
    for v in children.values_mut() {
        v.sort_unstable();
    }
    if roots.is_empty() {
        writeln!(
            w,
            "no running process you can read holds a secret in its environment"
        )?;
    }
    for r in roots {
        node(r, "", true, true, &by_pid, &children, w)?;
    }
    let holders = procs.iter().filter(|p| !p.held.is_empty()).count();
    let unreadable = procs.iter().filter(|p| !p.readable).count();
    if holders > 0 || unreadable > 0 {
        writeln!(
            w,
            "{DIM}{holders} process{} secrets; {unreadable} could not be read{DIM:#}",
            if holders == 1 { " holds" } else { "es hold" }
        )?;
    }
    Ok(())
}

fn node(
    pid: u32,
    prefix: &str,
    last: bool,
    root: bool,
    by_pid: &HashMap<u32, &Process>,
    children: &BTreeMap<u32, Vec<u32>>,
    w: &mut dyn Write,
) -> io::Result<()> {
    let Some(p) = by_pid.get(&pid) else {
        return Ok(());
    };
    let branch = if root {
        ""
    } else if last {
        "└─ "
    } else {
        "├─ "
    };
    write!(w, "{prefix}{branch}{pid} {}", p.comm)?;
    if p.held.is_empty() {
        writeln!(w)?;
    } else {
        let held: Vec<String> = p
            .held
            .iter()
            .map(|(var, _, s)| match &s.fingerprint {
                Some(fp) => format!("{var}={} {fp}", s.preview),
                None => format!("{var}={}", s.preview),
            })
            .collect();
        writeln!(w, "  {RED}holds {}{RED:#}", held.join(", "))?;
    }
    let kids = children.get(&pid).map(Vec::as_slice).unwrap_or(&[]);
    let child_prefix = if root {
        String::new()
    } else if last {
        format!("{prefix}   ")
    } else {
        format!("{prefix}│  ")
    };
    for (i, &c) in kids.iter().enumerate() {
        node(
            c,
            &child_prefix,
            i + 1 == kids.len(),
            false,
            by_pid,
            children,
            w,
        )?;
    }
    Ok(())
}
