//! `--format sarif`: SARIF 2.1.0 for GitHub code scanning. One rule per rule id seen, results
//! with `partialFingerprints` so the same key is tracked across runs without its value.
//! Findings with no file (environment, processes) carry a logical location only.

use crate::finding::{Finding, Location, Report, Severity};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// GitHub's `security-severity` scale (0–10).
fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "1.0",
    }
}

fn artifact(path: &Path) -> Value {
    if path.is_absolute() {
        json!({ "uri": format!("file://{}", uri_escape(&path.to_string_lossy())) })
    } else {
        json!({ "uri": uri_escape(&path.to_string_lossy()), "uriBaseId": "%SRCROOT%" })
    }
}

/// Percent-encodes what a URI path may not hold (RFC 3986 unreserved and `/` stay).
fn uri_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn location(f: &Finding) -> Value {
    match &f.location {
        Location::File { path, line, column } => {
            let mut region = json!({ "startLine": line });
            if let Some(c) = column {
                region["startColumn"] = json!(c);
            }
            json!({ "physicalLocation": { "artifactLocation": artifact(path), "region": region } })
        }
        Location::Env { env } => json!({
            "logicalLocations": [{ "name": env, "kind": "variable", "fullyQualifiedName": format!("env:{env}") }]
        }),
        Location::Process { pid, comm, env } => json!({
            "logicalLocations": [{
                "name": comm,
                "kind": "process",
                "fullyQualifiedName": match env {
                    Some(v) => format!("pid:{pid}/env:{v}"),
                    None => format!("pid:{pid}"),
                },
            }]
        }),
    }
}

pub fn render(report: &Report, w: &mut dyn Write) -> io::Result<()> {
    // Rules in order of first appearance in a sorted id list, so indexes are stable.
    let mut rules: BTreeMap<&str, &Finding> = BTreeMap::new();
    for f in &report.findings {
        rules.entry(f.rule.as_str()).or_insert(f);
    }
    let index: BTreeMap<&str, usize> = rules.keys().enumerate().map(|(i, k)| (*k, i)).collect();
    let rule_objs: Vec<Value> = rules
        .values()
        .map(|f| {
            let name = f.secret.as_ref().map_or_else(
                || crate::finding::rule_title(&f.rule).into_owned(),
                |s| format!("exposed {}", s.kind),
            );
            json!({
                "id": f.rule,
                "name": f.rule,
                "shortDescription": { "text": name },
                "help": { "text": f.fix },
                "defaultConfiguration": { "level": level(f.severity) },
                "properties": {
                    "tags": ["security", "secret"],
                    "security-severity": security_severity(f.severity),
                },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let mut r = json!({
                "ruleId": f.rule,
                "ruleIndex": index[f.rule.as_str()],
                "level": level(f.severity),
                "message": { "text": format!("{}\nFix: {}", f.message, f.fix) },
                "locations": [location(f)],
                "properties": {
                    "severity": f.severity.as_str(),
                    "source": f.source.as_str(),
                    "security-severity": security_severity(f.severity),
                },
            });
            if let Some(s) = &f.secret {
                r["properties"]["kind"] = json!(s.kind);
                r["properties"]["preview"] = json!(s.preview);
                if let Some(fp) = &s.fingerprint {
                    r["partialFingerprints"] = json!({ "keyfence/secret/v1": fp });
                }
            }
            r
        })
        .collect();
    let notifications: Vec<Value> = report
        .errors
        .iter()
        .map(|e| {
            let mut n = json!({
                "level": "warning",
                "message": { "text": format!("{}: {}", e.source.as_str(), e.message) },
            });
            if let Some(p) = &e.path {
                n["locations"] =
                    json!([{ "physicalLocation": { "artifactLocation": artifact(p) } }]);
            }
            n
        })
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "keyfence",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/keyfence/keyfence",
                "rules": rule_objs,
            }},
            "invocations": [{
                "executionSuccessful": true,
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }],
    });
    serde_json::to_writer_pretty(&mut *w, &doc)?;
    writeln!(w)
}
