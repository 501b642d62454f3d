//! `--format json`: `{"version": 1, "findings": [...], "errors": [...]}` (DESIGN.md §3), plus a
//! `skipped` object with counts. Version 1 only grows fields; it never renames or removes one.

use crate::finding::Report;
use serde_json::json;
use std::io::{self, Write};

pub fn render(report: &Report, w: &mut dyn Write) -> io::Result<()> {
    let doc = json!({
        "version": 1,
        "findings": report.findings,
        "errors": report.errors,
        "skipped": report.skipped,
    });
    serde_json::to_writer_pretty(&mut *w, &doc)?;
    writeln!(w)
}
