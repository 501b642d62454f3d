//! `ci`: where CI configuration hands secrets to code that should not have them (P7).
//!
//! One file per platform: `github.rs` (GitHub Actions workflows and composite actions) and
//! `gitlab.rs` (`.gitlab-ci.yml` and its local `include:`s). This file finds their files in each
//! project, reads them, and gives the platforms positions in them.
//!
//! Files are parsed with positions (`crate::syntax::yaml`), and every finding points at the line
//! and column of the expression or key it is about. Nothing here prints; a file that does not
//! parse is an error entry with its position.

mod github;
mod gitlab;

use crate::tree::walk::{self, WalkOptions};
use super::{Context, Output};
use crate::finding::{Finding, Location, Severity, Source};
use crate::syntax::yaml::{self, Node};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Workflow,
    Action,
    GitLab,
}

fn kind_of(path: &Path) -> Option<Kind> {
    let name = path.file_name()?.to_str()?;
    let parent = path.parent();
    let in_workflows = parent.is_some_and(|p| p.ends_with(".github/workflows"));
    if in_workflows && (name.ends_with(".yml") || name.ends_with(".yaml")) {
        Some(Kind::Workflow)
    } else if name == "action.yml" || name == "action.yaml" {
        Some(Kind::Action)
    } else if name == ".gitlab-ci.yml" {
        Some(Kind::GitLab)
    } else {
        None
    }
}

/// Files this source reads, so `file` does not report their plaintext secrets a second time.
pub fn is_ci_file(path: &Path) -> bool {
    kind_of(path).is_some()
}

pub fn audit(ctx: &Context, out: &mut Output) {
    let found = Mutex::new(Vec::<(PathBuf, PathBuf, Kind)>::new());
    for root in &ctx.settings.projects {
        let opts = WalkOptions {
            skip_dirs: walk::AUDIT_SKIP_DIRS,
            respect_gitignore: true,
            max_filesize: ctx.settings.max_filesize,
            threads: ctx.settings.threads,
        };
        let errors = walk::each_file(
            std::slice::from_ref(root),
            &opts,
            Source::Ci,
            &|p: &Path| {
                if let Some(k) = kind_of(p) {
                    // GitLab reads only the project root's .gitlab-ci.yml.
                    if k == Kind::GitLab && p.parent() != Some(root.as_path()) {
                        return;
                    }
                    found.lock().unwrap_or_else(|e| e.into_inner()).push((
                        root.clone(),
                        p.to_path_buf(),
                        k,
                    ));
                }
            },
        );
        out.errors.extend(errors);
    }
    let mut files = found.into_inner().unwrap_or_default();
    files.sort_by(|a, b| a.1.cmp(&b.1));
    for (root, path, kind) in files {
        match kind {
            Kind::GitLab => gitlab::gitlab(ctx, out, &root, &path),
            _ => {
                if let Some((text, docs)) = load(ctx, out, &path) {
                    let doc = Doc::new(&path, &text);
                    github::plaintext(ctx, out, &doc);
                    if let Some(root) = docs.first() {
                        if kind == Kind::Workflow {
                            github::workflow(out, &doc, root);
                        } else {
                            github::action(out, &doc, root);
                        }
                    }
                }
            }
        }
    }
}

/// Reads and parses one YAML file; an error entry (with the position) when it cannot.
fn load(ctx: &Context, out: &mut Output, path: &Path) -> Option<(String, Vec<std::rc::Rc<Node>>)> {
    let bytes = crate::audit::read_optional(ctx, out, Source::Ci, path)?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let (line, col) = crate::detect::line_col(e.as_bytes(), at);
            out.error(
                Source::Ci,
                Some(path),
                format!("not UTF-8 at line {line} column {col}; YAML files must be UTF-8"),
            );
            return None;
        }
    };
    match yaml::parse(&text) {
        Ok(docs) => Some((text, docs)),
        Err(e) => {
            out.error(
                Source::Ci,
                Some(&walk::clean(path)),
                format!("{e}; the CI system will reject this file too"),
            );
            None
        }
    }
}

/// One parsed file: its shown path and text, for locations.
struct Doc<'a> {
    path: PathBuf,
    text: &'a str,
    /// Byte offset where each line starts, for positions in O(log n).
    line_starts: Vec<usize>,
}

impl<'a> Doc<'a> {
    fn new(path: &Path, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1))
            .collect();
        Doc {
            path: walk::clean(path),
            text,
            line_starts,
        }
    }

    fn at(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let i = self.line_starts.partition_point(|&s| s <= offset).max(1) - 1;
        let start = self.line_starts[i];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        let (line, column) = (i as u32 + 1, column as u32);
        Location::File {
            path: self.path.clone(),
            line,
            column: Some(column),
        }
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    fn finding(
        &self,
        out: &mut Output,
        rule: &str,
        severity: Severity,
        offset: usize,
        message: String,
        fix: String,
    ) {
        out.findings.push(Finding {
            rule: rule.to_string(),
            severity,
            source: Source::Ci,
            location: self.at(offset),
            secret: None,
            message,
            fix,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(super) fn run_rules(text: &str) -> Output {
        let settings = crate::audit::Settings {
            home: PathBuf::from("/nonexistent-home"),
            etc: PathBuf::from("/nonexistent-etc"),
            projects: vec![PathBuf::from("/nonexistent-project")],
            sources: vec![Source::Ci],
            env: Vec::new(),
            max_filesize: 1 << 20,
            threads: 1,
        };
        let ctx = Context::new(&settings);
        let mut out = Output::default();
        let doc = Doc::new(Path::new("w.yml"), text);
        github::plaintext(&ctx, &mut out, &doc);
        if let Ok(docs) = yaml::parse(text) {
            for root in &docs {
                github::workflow(&mut out, &doc, root);
                github::action(&mut out, &doc, root);
                gitlab::gitlab_doc(&ctx, &mut out, &doc, root);
            }
        }
        out
    }

    proptest! {
        #[test]
        fn rules_never_panic_on_arbitrary_text(s in "\\PC{0,400}") {
            let out = run_rules(&s);
            let lines = s.lines().count().max(1) as u32 + 1;
            for f in out.findings {
                if let Location::File { line, .. } = f.location {
                    prop_assert!(line >= 1 && line <= lines);
                }
            }
        }

        #[test]
        fn rules_never_panic_on_workflow_shaped_text(
            s in "on: (push|pull_request_target|\\[workflow_run\\])\n(env:\n  [A-Z]{1,4}: \\$\\{\\{ (secrets\\.[A-Z]{1,3}|toJSON\\(secrets\\)|fromJSON\\(secrets\\.X\\)\\.y) \\}\\}\n)?jobs:\n(  j[a-z]{0,2}:\n(    (uses|secrets|env): [a-z./@\\$\\{\\} ]{0,12}\n)?    steps:\n(      - (run|uses): [a-zé\\$\\{\\}. @/]{0,20}\n(        with:\n          ref: \\$\\{\\{ github\\.head_ref \\}\\}\n)?)*)*"
        ) {
            let _ = run_rules(&s);
        }
    }
}
