//! Audit sources, each against fixture trees (a file per source id), and the reports they make.

mod agent;
mod ci;
mod credfile;
mod dotenv;
mod env;
mod file;
mod gitconfig;
mod history;
mod package;
mod proc;
mod shell;
mod sources;

use crate::common::*;
use serde_json::Value;

/// `keyfence audit --format json --only ONLY`: the findings (exit 0 or 1, nothing else).
pub(crate) fn audit_json(fx: &Fixture, only: &str, env: &[(&str, &str)]) -> Vec<Value> {
    let run = fx.run(&["audit", "--format", "json", "--only", only], env);
    assert!(
        run.code == 0 || run.code == 1,
        "exit {}: {}",
        run.code,
        run.stderr
    );
    run.findings()
}

/// The finding `rule` at `path:line`, with this severity.
pub(crate) fn expect(
    findings: &[Value],
    rule: &str,
    path: &str,
    line: u64,
    severity: &str,
) -> Value {
    let f = find_at(findings, rule, path, line).unwrap_or_else(|| {
        panic!(
            "no {rule} at {path}:{line} in {}",
            serde_json::to_string_pretty(findings).unwrap()
        )
    });
    assert_eq!(f["severity"], severity, "{f}");
    f.clone()
}
