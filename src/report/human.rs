//! The human report: findings grouped into exposures (one secret, identified by fingerprint, in
//! every place it was seen), worst first, each with what to do. Colour codes are always written;
//! the caller's `anstream` writer strips them when colour is off.

use super::{location_text, short_path};
use crate::finding::{Finding, Report, Severity, Source};
use anstyle::{AnsiColor, Style};
use std::collections::BTreeMap;
use std::io::{self, Write};

pub struct Options {
    pub quiet: bool,
    pub verbose: bool,
    /// What the run looked at, for the summary line ("audit", "scan").
    pub what: &'static str,
}

fn style(s: Severity) -> Style {
    let c = match s {
        Severity::Critical => AnsiColor::Magenta,
        Severity::High => AnsiColor::Red,
        Severity::Medium => AnsiColor::Yellow,
        Severity::Low => AnsiColor::Cyan,
        Severity::Info => AnsiColor::Blue,
    };
    Style::new().fg_color(Some(c.into())).bold()
}

const BOLD: Style = Style::new().bold();
const DIM: Style = Style::new().dimmed();

/// One exposure: the findings that share a fingerprint, or a single finding without one.
struct Group<'a> {
    findings: Vec<&'a Finding>,
}

impl Group<'_> {
    fn worst(&self) -> Severity {
        self.findings
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Info)
    }
}

fn groups(report: &Report) -> Vec<Group<'_>> {
    let mut by_fp: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out: Vec<Group> = Vec::new();
    for f in &report.findings {
        match f.secret.as_ref().and_then(|s| s.fingerprint.as_deref()) {
            Some(fp) => match by_fp.get(fp) {
                Some(&i) => out[i].findings.push(f),
                None => {
                    by_fp.insert(fp, out.len());
                    out.push(Group { findings: vec![f] });
                }
            },
            None => out.push(Group { findings: vec![f] }),
        }
    }
    // Findings arrive sorted worst first, so groups are too, except that a group's later
    // members can raise it; sort once more by the group's worst severity (stable).
    out.sort_by_key(|g| std::cmp::Reverse(g.worst()));
    out
}

pub fn render(report: &Report, opts: &Options, w: &mut dyn Write) -> io::Result<()> {
    let home = report.home.as_deref();
    let groups = groups(report);
    for g in &groups {
        render_group(g, home, w)?;
    }
    if opts.verbose && !report.errors.is_empty() {
        writeln!(w, "{BOLD}could not check{BOLD:#}")?;
        for e in &report.errors {
            let at = match (&e.path, e.pid) {
                (Some(p), _) => format!("{}: ", short_path(home, p)),
                (None, Some(pid)) => format!("pid {pid}: "),
                _ => String::new(),
            };
            writeln!(w, "  {DIM}{}{DIM:#}  {at}{}", e.source.as_str(), e.message)?;
        }
        writeln!(w)?;
    }
    if !opts.quiet {
        summary(report, &groups, opts, w)?;
    }
    Ok(())
}

fn render_group(g: &Group, home: Option<&std::path::Path>, w: &mut dyn Write) -> io::Result<()> {
    let worst = g.worst();
    let st = style(worst);
    let first = g.findings[0];
    match &first.secret {
        Some(s) => {
            let places = g.findings.len();
            write!(
                w,
                "{st}{:<8}{st:#} {BOLD}{}{BOLD:#} {}",
                worst.as_str().to_uppercase(),
                s.kind,
                s.preview
            )?;
            if let Some(fp) = &s.fingerprint {
                write!(w, " {DIM}(fingerprint {fp}){DIM:#}")?;
            }
            if places > 1 {
                write!(w, ", exposed in {places} places")?;
            }
            writeln!(w)?;
        }
        // The id, dimmed, is what `--skip` and `keyfence:allow` take.
        None => writeln!(
            w,
            "{st}{:<8}{st:#} {BOLD}{}{BOLD:#} {DIM}({}){DIM:#}",
            worst.as_str().to_uppercase(),
            crate::finding::rule_title(&first.rule),
            first.rule
        )?,
    }
    // Processes holding the same secret are summarised on one line: there can be dozens. A
    // process finding about something else (an agent outside keyfence) keeps its message.
    let (procs, others): (Vec<&Finding>, Vec<&Finding>) = g
        .findings
        .iter()
        .partition(|f| f.source == Source::Proc && f.secret.is_some());
    for f in others {
        let fst = style(f.severity);
        writeln!(
            w,
            "  {fst}{:<8}{fst:#} {BOLD}{}{BOLD:#}  {DIM}[{}]{DIM:#}\n           {}",
            f.severity.as_str(),
            location_text(home, f),
            f.source.as_str(),
            f.message
        )?;
    }
    if !procs.is_empty() {
        let fst = style(
            procs
                .iter()
                .map(|f| f.severity)
                .max()
                .unwrap_or(Severity::High),
        );
        let mut names: Vec<String> = procs
            .iter()
            .filter_map(|f| match &f.location {
                crate::finding::Location::Process { pid, comm, .. } => {
                    Some(format!("{comm} {pid}"))
                }
                _ => None,
            })
            .collect();
        names.dedup();
        let n = names.len();
        let shown: Vec<String> = names.into_iter().take(6).collect();
        writeln!(
            w,
            "  {fst}{:<8}{fst:#} {BOLD}held by {n} running process{}{BOLD:#}: {}{}  {DIM}[proc]{DIM:#}",
            procs[0].severity.as_str(),
            if n == 1 { "" } else { "es" },
            shown.join(", "),
            if n > 6 { ", …" } else { "" }
        )?;
    }
    let mut fixes: Vec<&str> = Vec::new();
    for f in &g.findings {
        if !fixes.contains(&f.fix.as_str()) {
            fixes.push(&f.fix);
        }
    }
    for (i, fix) in fixes.iter().enumerate() {
        let label = if i == 0 { "fix:" } else { "    " };
        writeln!(
            w,
            "  {BOLD}{label}{BOLD:#} {}",
            fix.replace('\n', "\n       ")
        )?;
    }
    writeln!(w)
}

fn summary(report: &Report, groups: &[Group], opts: &Options, w: &mut dyn Write) -> io::Result<()> {
    if report.findings.is_empty() {
        writeln!(
            w,
            "{BOLD}keyfence {}: no exposed secrets found{BOLD:#}",
            opts.what
        )?;
    } else {
        let mut counts: BTreeMap<std::cmp::Reverse<Severity>, usize> = BTreeMap::new();
        for g in groups {
            *counts.entry(std::cmp::Reverse(g.worst())).or_default() += 1;
        }
        let parts: Vec<String> = counts
            .iter()
            .map(|(s, n)| format!("{n} {}", s.0.as_str()))
            .collect();
        writeln!(
            w,
            "{BOLD}keyfence {}: {} exposure{} ({}) in {} place{}{BOLD:#}",
            opts.what,
            groups.len(),
            if groups.len() == 1 { "" } else { "s" },
            parts.join(", "),
            report.findings.len(),
            if report.findings.len() == 1 { "" } else { "s" },
        )?;
    }
    let s = &report.skipped;
    let mut notes = Vec::new();
    if !report.errors.is_empty() && !opts.verbose {
        notes.push(format!(
            "{} place{} could not be checked (-v lists them)",
            report.errors.len(),
            if report.errors.len() == 1 { "" } else { "s" }
        ));
    }
    if s.binary_files > 0 {
        notes.push(format!("{} binary files skipped", s.binary_files));
    }
    if s.large_files > 0 {
        notes.push(format!(
            "{} files over --max-filesize skipped",
            s.large_files
        ));
    }
    if s.unreadable_processes > 0 {
        notes.push(format!(
            "{} process{} could not be read",
            s.unreadable_processes,
            if s.unreadable_processes == 1 {
                ""
            } else {
                "es"
            }
        ));
    }
    if !notes.is_empty() {
        writeln!(w, "{DIM}note: {}{DIM:#}", notes.join("; "))?;
    }
    Ok(())
}
