//! GitLab CI: `.gitlab-ci.yml` at a project's root and its local `include:`s. Plaintext values
//! in `variables:`, secret-named variables defined for every job, and keys written anywhere else
//! in the file.

use super::{Doc, Output, load};
use crate::audit::Context;
use crate::detect::{Mode, names};
use crate::finding::{Finding, Location, Severity, Source};
use crate::syntax::yaml::{self, Node};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Jobs' keys in `.gitlab-ci.yml` that are not jobs.
const GITLAB_GLOBAL_KEYS: &[&str] = &[
    "stages",
    "variables",
    "include",
    "default",
    "workflow",
    "image",
    "services",
    "before_script",
    "after_script",
    "cache",
    "spec",
];

pub(super) fn gitlab(ctx: &Context, out: &mut Output, root_dir: &Path, path: &Path) {
    let mut queue = vec![path.to_path_buf()];
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    while let Some(p) = queue.pop() {
        if !seen.insert(p.clone()) || seen.len() > 100 {
            continue;
        }
        let Some((text, docs)) = load(ctx, out, &p) else {
            continue;
        };
        let doc = Doc::new(&p, &text);
        let before = out.findings.len();
        // Which lines the variable rules already reported, so the text scan adds only the rest.
        for root in &docs {
            gitlab_doc(ctx, out, &doc, root);
            for inc in local_includes(root) {
                let rel = inc.trim_start_matches('/');
                if rel.contains('*') || rel.is_empty() {
                    continue;
                }
                let target = root_dir.join(rel);
                if !target.is_file() {
                    out.error(
                        Source::Ci,
                        Some(&p),
                        format!("local include {inc} not found"),
                    );
                    continue;
                }
                queue.push(target);
            }
        }
        let reported: BTreeSet<u32> = out.findings[before..]
            .iter()
            .filter_map(|f| match f.location {
                Location::File { line, .. } => Some(line),
                _ => None,
            })
            .collect();
        for m in ctx.detector.scan(text.as_bytes(), Mode::Text) {
            if reported.contains(&yaml::line_col(&text, m.start).0) {
                continue;
            }
            out.secret(
                Source::Ci,
                &m,
                Severity::Critical,
                doc.at(m.start),
                format!(
                    "{} written into {}: every job and everyone who can read the repository has it",
                    m.rule.kind,
                    doc.shown()
                ),
                "rotate it now, store it as a masked and protected CI/CD variable, and give it \
                 only to the jobs that need it"
                    .to_string(),
            );
        }
    }
}

fn local_includes(root: &Node) -> Vec<String> {
    let Some(inc) = root.get("include") else {
        return Vec::new();
    };
    let one = |n: &Node| -> Option<String> {
        if let Some(s) = n.as_str() {
            return (!s.starts_with("http://") && !s.starts_with("https://"))
                .then(|| s.to_string());
        }
        n.get("local").and_then(Node::as_str).map(str::to_string)
    };
    if inc.items().is_empty() {
        one(inc).into_iter().collect()
    } else {
        inc.items().iter().filter_map(|n| one(n)).collect()
    }
}

pub(super) fn gitlab_doc(ctx: &Context, out: &mut Output, doc: &Doc, root: &Node) {
    if let Some(vars) = root.get("variables") {
        gitlab_variables(ctx, out, doc, vars, None);
    }
    for (k, v) in root.entries() {
        let Some(name) = k.as_str() else { continue };
        if GITLAB_GLOBAL_KEYS.contains(&name) || name.starts_with('.') && !v.is_map() {
            continue;
        }
        if let Some(vars) = v.get("variables") {
            gitlab_variables(ctx, out, doc, vars, Some(name));
        }
    }
}

fn gitlab_variables(ctx: &Context, out: &mut Output, doc: &Doc, vars: &Node, job: Option<&str>) {
    for (k, v) in vars.entries() {
        let Some(name) = k.as_str() else { continue };
        let value_node = if v.is_map() {
            v.get("value")
        } else {
            Some(&**v)
        };
        let Some(value_node) = value_node else {
            continue;
        };
        let Some(value) = value_node.as_str() else {
            continue;
        };
        if let Some(m) = ctx.detector.classify_var(name, value.as_bytes()) {
            let where_ = match job {
                None => "the top-level variables: (every job gets it)".to_string(),
                Some(j) => format!("the variables: of job {j}"),
            };
            out.secret(
                Source::Ci,
                &m,
                Severity::Critical,
                Location::File {
                    path: doc.path.clone(),
                    line: value_node.start.line,
                    column: Some(value_node.start.column),
                },
                format!(
                    "{} written as {name} in {where_} of {}: everyone who can read the repository \
                     has it",
                    m.rule.kind,
                    doc.shown()
                ),
                format!(
                    "rotate it now, delete the line, and define {name} as a masked, protected \
                     CI/CD variable scoped to the environment that needs it"
                ),
            );
            continue;
        }
        if job.is_none() && names::name_kind(name).is_some() && !value.trim().is_empty() {
            out.findings.push(Finding {
                rule: "gitlab-global-secret-variable".into(),
                severity: Severity::Medium,
                source: Source::Ci,
                location: Location::File {
                    path: doc.path.clone(),
                    line: k.start.line,
                    column: Some(k.start.column),
                },
                secret: None,
                message: format!(
                    "{name} is defined in the top-level variables: of {}, so every job gets it, \
                     including jobs that install dependencies or run tests",
                    doc.shown()
                ),
                fix: format!("move {name} into the variables: of the jobs that need it"),
            });
        }
    }
}
