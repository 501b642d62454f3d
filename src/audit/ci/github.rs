//! GitHub Actions: workflows (`.github/workflows/*.yml|yaml`) and composite actions
//! (`action.yml|yaml`). Secrets in workflow- or job-level `env:` (every step gets them,
//! including `npm ci` and third-party actions), `secrets: inherit`, `toJSON(secrets)`,
//! `fromJSON(secrets.X)`, `${{ secrets.X }}` expanded inside `run:` scripts, secrets passed to
//! actions not pinned to a commit, `pull_request_target`/`workflow_run` jobs that check out the
//! pull request's code with secrets in scope, and plaintext secrets written into the file.

use super::{Doc, Output};
use crate::audit::Context;
use crate::detect::{Mode, names};
use crate::finding::{Severity, Source};
use crate::syntax::yaml::{self, Node};
use std::collections::BTreeSet;
use std::sync::OnceLock;

struct Expr<'a> {
    /// Byte offset of `${{` in the file.
    offset: usize,
    body: &'a str,
}

impl<'a> Doc<'a> {
    /// The `${{ ... }}` expressions written in a scalar node, with their byte offsets.
    fn exprs(&self, n: &Node) -> Vec<Expr<'a>> {
        let n = match &n.kind {
            yaml::Kind::Scalar { .. } => n,
            _ => return Vec::new(),
        };
        let end = n.end.offset.max(n.start.offset).min(self.text.len());
        let Some(src) = self.text.get(n.start.offset..end) else {
            return Vec::new();
        };
        let mut v = Vec::new();
        let mut i = 0;
        while let Some(p) = src[i..].find("${{") {
            let s = i + p;
            let body_start = s + 3;
            let Some(q) = src[body_start..].find("}}") else {
                break;
            };
            v.push(Expr {
                offset: n.start.offset + s,
                body: &src[body_start..body_start + q],
            });
            i = body_start + q + 2;
        }
        v
    }

    /// Every expression in every scalar at or below `n`.
    fn all_exprs(&self, n: &Node) -> Vec<Expr<'a>> {
        let mut scalars = Vec::new();
        n.scalars(&mut scalars);
        scalars.into_iter().flat_map(|s| self.exprs(s)).collect()
    }
}

/// A workflow pattern, matched over ASCII: GitHub's expression syntax and the shell words looked
/// for are ASCII, and building regex without its Unicode tables halves the relocations every
/// keyfence process pays at start-up (DESIGN.md §4: `run` execs in place within 1 ms).
struct Pattern(regex::bytes::Regex);

impl Pattern {
    fn new(src: &str) -> Result<Pattern, regex::Error> {
        regex::bytes::Regex::new(&format!("(?-u){src}")).map(Pattern)
    }

    fn is_match(&self, s: &str) -> bool {
        self.0.is_match(s.as_bytes())
    }

    /// Where the first match starts.
    fn find_start(&self, s: &str) -> Option<usize> {
        self.0.find(s.as_bytes()).map(|m| m.start())
    }

    /// Capture group 1 of each match.
    fn group1_iter<'s>(&'s self, s: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.0
            .captures_iter(s.as_bytes())
            .filter_map(move |c| c.get(1).and_then(|m| s.get(m.range())))
    }
}

struct Patterns {
    secret_dot: Pattern,
    secret_index: Pattern,
    dynamic_index: Pattern,
    to_json: Pattern,
    from_json: Pattern,
    input_dot: Pattern,
    install: Pattern,
    pr_code: Pattern,
    pr_checkout_cmd: Pattern,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let re = |s: &str| Pattern::new(s).expect("built-in pattern");
        Patterns {
            // GitHub expressions are case-insensitive in context and function names.
            secret_dot: re(r"(?i)(?:^|[^.\w])secrets\s*\.\s*([A-Za-z_][A-Za-z0-9_-]*)"),
            secret_index: re(r#"(?i)(?:^|[^.\w])secrets\s*\[\s*['"]([^'"]+)['"]\s*\]"#),
            dynamic_index: re(r#"(?i)(?:^|[^.\w])secrets\s*\[\s*[^'"\s]"#),
            to_json: re(r"(?i)\btojson\s*\(\s*secrets\s*\)"),
            from_json: re(r"(?i)\bfromjson\s*\(\s*secrets\s*\.\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\)"),
            input_dot: re(r"(?i)(?:^|[^.\w])inputs\s*\.\s*([A-Za-z_][A-Za-z0-9_-]*)"),
            install: re(concat!(
                r"(?m)\b(?:npm|pnpm|bun)\s+(?:install|i|ci|add|rebuild|update)\b",
                r"|\byarn(?:\s+(?:install|add))?\s*(?:$|[;&|])",
                r"|\bnpx\s|\bpnpm\s+dlx\b|\bbunx\s",
                r"|\bpip3?\s+install\b|\bpython3?\s+-m\s+pip\s+install\b",
                r"|\buv\s+(?:sync|add|pip\s+install|tool\s+install)\b|\b(?:poetry|pipenv)\s+install\b",
                r"|\bcargo\s+(?:build|test|run|install|check|clippy|bench)\b",
                r"|\bmake\b|\bgo\s+(?:build|test|generate|install|run)\b",
                r"|\b(?:bundle|gem|composer)\s+install\b|\bmvn\b|\bgradlew?\b",
            )),
            pr_code: re(concat!(
                r"(?i)github\.event\.pull_request\.head\.|github\.head_ref",
                r"|github\.event\.workflow_run\.head_|refs/pull/|github\.event\.number",
            )),
            pr_checkout_cmd: re(concat!(
                r"\bgh\s+pr\s+checkout\b|\bgit\s+fetch\b[^\n]*\bpull/",
                r"|\bgit\s+checkout\b[^\n]*\$\{\{\s*github\.(?:event\.pull_request\.head|head_ref|event\.workflow_run\.head)",
            )),
        }
    })
}

/// The secrets an expression reads by name (`secrets.X`, `secrets['X']`).
fn secret_refs(body: &str) -> Vec<String> {
    let p = patterns();
    let mut v: Vec<String> = p
        .secret_dot
        .group1_iter(body)
        .chain(p.secret_index.group1_iter(body))
        .map(str::to_string)
        .collect();
    v.dedup();
    v
}

/// Whether an expression hands over a secret: by name, or the whole context.
fn reads_secrets(body: &str) -> bool {
    let p = patterns();
    !secret_refs(body).is_empty() || p.to_json.is_match(body) || p.dynamic_index.is_match(body)
}

/// An expression as messages may quote it: as written when it holds no string literal (which
/// could be a key written inline), else rebuilt from the secrets it names.
fn shown_expr(body: &str) -> String {
    if body.contains(['\'', '"', '`']) || body.len() > 120 {
        let refs = secret_refs(body);
        return match refs.first() {
            Some(r) => format!(" secrets.{r} "),
            None => " secrets ".to_string(),
        };
    }
    body.to_string()
}

/// A short name for a secret reference in messages: `secrets.X`, or `secrets` for the lot.
fn refs_text(body: &str) -> String {
    let refs = secret_refs(body);
    if refs.is_empty() {
        "the secrets context".to_string()
    } else {
        refs.iter()
            .map(|r| format!("secrets.{r}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Plaintext secrets written into the file, through the detection engine.
pub(super) fn plaintext(ctx: &Context, out: &mut Output, doc: &Doc) {
    for m in ctx.detector.scan(doc.text.as_bytes(), Mode::Text) {
        let shown = doc.shown();
        out.secret(
            Source::Ci,
            &m,
            Severity::Critical,
            doc.at(m.start),
            format!(
                "{} written into {shown}: everyone who can read the repository has it, and every \
                 job and fork's workflow run can print it",
                m.rule.kind
            ),
            format!(
                "rotate it now, store it as an encrypted CI secret{} and reference it from the \
                 env: of the one step that uses it",
                m.name
                    .as_deref()
                    .map(|n| format!(" named {n} (`${{{{ secrets.{n} }}}}`)"))
                    .unwrap_or_default()
            ),
        );
    }
}

/// A step of a job or a composite action.
struct Step<'n> {
    node: &'n Node,
    /// `name:`, else `uses:`, else the first line of `run:`, for messages.
    label: String,
    uses: Option<&'n str>,
    run: Option<&'n Node>,
}

impl<'n> Step<'n> {
    fn new(node: &'n Node, index: usize) -> Self {
        let uses = node.get("uses").and_then(Node::as_str);
        let run = node.get("run");
        let label = node
            .get("name")
            .and_then(Node::as_str)
            .or(uses)
            .or_else(|| {
                run.and_then(Node::as_str)
                    .map(|r| r.lines().next().unwrap_or(""))
            })
            .map(str::trim)
            // A label goes into messages: never one that holds a secret (a key inline in the
            // script's first line).
            .filter(|l| {
                !l.is_empty()
                    && crate::detect::detector()
                        .scan(l.as_bytes(), Mode::Text)
                        .is_empty()
            })
            .map(|l| l.chars().take(40).collect())
            .unwrap_or_else(|| format!("#{}", index + 1));
        Step {
            node,
            label,
            uses,
            run,
        }
    }

    fn describe(&self) -> String {
        format!("step \"{}\" (line {})", self.label, self.node.start.line)
    }

    fn installs(&self) -> bool {
        self.run
            .and_then(Node::as_str)
            .is_some_and(|r| patterns().install.is_match(r))
    }

    fn third_party(&self) -> bool {
        self.uses.is_some_and(is_third_party)
    }

    /// Whether this step refers to the environment variable `var` (in its script, its inputs
    /// or an `env.VAR` expression).
    fn uses_var(&self, doc: &Doc, var: &str, word: &Pattern) -> bool {
        if self
            .run
            .and_then(Node::as_str)
            .is_some_and(|r| word.is_match(r))
        {
            return true;
        }
        let env_ref = format!("env.{}", var.to_ascii_lowercase());
        doc.all_exprs(self.node)
            .iter()
            .any(|e| e.body.to_ascii_lowercase().contains(&env_ref))
            // A third-party action reads what it wants from its environment: it may be the user.
            || self.third_party()
    }
}

fn is_third_party(uses: &str) -> bool {
    !(uses.starts_with("./")
        || uses.starts_with("actions/")
        || uses.starts_with("github/")
        || uses.starts_with("docker://") && uses.contains("@sha256:"))
}

/// `owner/repo@<40 hex>` (or a local action, or a docker image by digest).
fn is_pinned(uses: &str) -> bool {
    if uses.starts_with("./") {
        return true;
    }
    if let Some(image) = uses.strip_prefix("docker://") {
        return image.contains("@sha256:");
    }
    match uses.rsplit_once('@') {
        Some((_, r)) => r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit()),
        None => false,
    }
}

fn steps_of(node: Option<&Node>) -> Vec<Step<'_>> {
    node.map(|s| {
        s.items()
            .iter()
            .enumerate()
            .map(|(i, n)| Step::new(n, i))
            .collect()
    })
    .unwrap_or_default()
}

fn triggers(root: &Node) -> BTreeSet<String> {
    let Some(on) = root.get("on") else {
        return BTreeSet::new();
    };
    if let Some(s) = on.as_str() {
        return [s.to_string()].into();
    }
    if on.is_map() {
        return on
            .entries()
            .iter()
            .filter_map(|(k, _)| k.as_str().map(str::to_string))
            .collect();
    }
    on.items()
        .iter()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect()
}

pub(super) fn workflow(out: &mut Output, doc: &Doc, root: &Node) {
    whole_context(out, doc, root);
    let jobs: Vec<(&str, &Node)> = root
        .get("jobs")
        .map(|j| {
            j.entries()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?, &**v)))
                .collect()
        })
        .unwrap_or_default();
    let job_steps: Vec<Vec<Step>> = jobs.iter().map(|(_, j)| steps_of(j.get("steps"))).collect();

    // Workflow-level env: every step of every job.
    if let Some(env) = root.get("env") {
        let all: Vec<&Step> = job_steps.iter().flatten().collect();
        env_block(out, doc, env, Scope::Workflow, &all);
    }
    let trig = triggers(root);
    let dangerous = trig
        .iter()
        .find(|t| *t == "pull_request_target" || *t == "workflow_run")
        .cloned();
    let workflow_env_secrets = root
        .get("env")
        .is_some_and(|e| doc.all_exprs(e).iter().any(|x| reads_secrets(x.body)));

    for ((job_id, job), steps) in jobs.iter().zip(&job_steps) {
        let refs: Vec<&Step> = steps.iter().collect();
        if let Some(env) = job.get("env") {
            env_block(out, doc, env, Scope::Job(job_id), &refs);
        }
        reusable_call(out, doc, job_id, job);
        for step in steps {
            step_rules(out, doc, step, false);
        }
        if let Some(trigger) = &dangerous {
            let secrets_in_scope = workflow_env_secrets
                || job.get("secrets").is_some()
                || doc.all_exprs(job).iter().any(|x| reads_secrets(x.body));
            if secrets_in_scope {
                pr_checkout(out, doc, trigger, job_id, steps);
            }
        }
    }
}

pub(super) fn action(out: &mut Output, doc: &Doc, root: &Node) {
    whole_context(out, doc, root);
    let Some(runs) = root.get("runs") else { return };
    for step in steps_of(runs.get("steps")) {
        step_rules(out, doc, &step, true);
    }
}

/// `toJSON(secrets)`, `secrets[expr]` and `fromJSON(secrets.X)` anywhere in the file.
fn whole_context(out: &mut Output, doc: &Doc, root: &Node) {
    let p = patterns();
    for e in doc.all_exprs(root) {
        if p.to_json.is_match(e.body) || p.dynamic_index.is_match(e.body) {
            doc.finding(
                out,
                "ci-all-secrets",
                Severity::Critical,
                e.offset,
                format!(
                    "`${{{{{}}}}}` hands every secret of the repository and organisation to this \
                     step at once, not just the ones it needs",
                    shown_expr(e.body)
                ),
                "name the secrets the step needs one by one (`${{ secrets.NAME }}`), in the env: \
                 of that step"
                    .into(),
            );
        }
        for field in p.from_json.group1_iter(e.body) {
            doc.finding(
                out,
                "ci-secret-fromjson",
                Severity::Medium,
                e.offset,
                format!(
                    "fields taken out of secrets.{} with fromJSON are new strings the runner does \
                     not know to mask: they are printed in clear in logs",
                    field
                ),
                format!(
                    "store each field as its own secret (`secrets.{}_FIELD`) so the runner masks it",
                    field.to_ascii_uppercase()
                ),
            );
        }
    }
}

#[derive(Clone, Copy)]
enum Scope<'a> {
    Workflow,
    Job(&'a str),
}

/// Secrets in a workflow- or job-level `env:`, which every step of its scope inherits.
fn env_block(out: &mut Output, doc: &Doc, env: &Node, scope: Scope, steps: &[&Step]) {
    for (k, v) in env.entries() {
        let Some(var) = k.as_str() else { continue };
        let Some(e) = doc.exprs(v).into_iter().find(|e| reads_secrets(e.body)) else {
            continue;
        };
        let risky: Vec<&&Step> = steps
            .iter()
            .filter(|s| s.installs() || s.third_party())
            .collect();
        let (rule, severity, where_) = match scope {
            Scope::Workflow => (
                "ci-workflow-env-secret",
                Severity::High,
                "the workflow's env:, so every step of every job".to_string(),
            ),
            Scope::Job(id) => (
                "ci-job-env-secret",
                if risky.is_empty() {
                    Severity::Medium
                } else {
                    Severity::High
                },
                format!("the env: of job {id}, so every step of that job"),
            ),
        };
        let reached = if risky.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = risky.iter().take(3).map(|s| s.describe()).collect();
            format!(
                ", including code it did not write: {}{}",
                list.join(", "),
                if risky.len() > 3 { ", ..." } else { "" }
            )
        };
        let word = Pattern::new(&format!(
            r"(?:^|[^A-Za-z0-9_]){}(?:$|[^A-Za-z0-9_])",
            regex::escape(var)
        ));
        let users: Vec<&&Step> = match &word {
            Ok(word) => steps
                .iter()
                .filter(|s| s.uses_var(doc, var, word))
                .collect(),
            Err(_) => Vec::new(),
        };
        let snippet = format!("{var}: ${{{{{}}}}}", shown_expr(e.body));
        let from = match scope {
            Scope::Workflow => "the workflow's env:".to_string(),
            Scope::Job(id) => format!("the env: of job {id}"),
        };
        let fix = match users.as_slice() {
            [one] => format!(
                "move `{snippet}` from {from} to the env: of {}, the one step that uses it",
                one.describe()
            ),
            [] => format!(
                "no step refers to {var}: remove it from {from}, or move `{snippet}` to the env: \
                 of the step that needs it"
            ),
            many => format!(
                "move `{snippet}` from {from} to the env: of each step that uses it: {}",
                many.iter()
                    .take(4)
                    .map(|s| s.describe())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        doc.finding(
            out,
            rule,
            severity,
            e.offset,
            format!(
                "{} is set as {var} in {where_} gets it in its environment{reached}",
                refs_text(e.body)
            ),
            fix,
        );
    }
}

/// A job that calls a reusable workflow: `secrets: inherit`, or secrets to an unpinned one.
fn reusable_call(out: &mut Output, doc: &Doc, job_id: &str, job: &Node) {
    let Some(uses) = job.get("uses").and_then(Node::as_str) else {
        return;
    };
    let Some((_, secrets)) = job.get_entry("secrets") else {
        return;
    };
    if secrets.as_str() == Some("inherit") {
        doc.finding(
            out,
            "ci-secrets-inherit",
            Severity::High,
            secrets.start.offset,
            format!(
                "job {job_id} passes every secret of the caller to the reusable workflow {uses} \
                 (`secrets: inherit`), whether it needs them or not"
            ),
            "list the secrets the called workflow declares under `secrets:` instead of `inherit`"
                .into(),
        );
        return;
    }
    if is_pinned(uses) {
        return;
    }
    for (_, v) in secrets.entries() {
        for e in doc.exprs(v) {
            if reads_secrets(e.body) {
                unpinned_finding(
                    out,
                    doc,
                    &e,
                    uses,
                    &format!("job {job_id}"),
                    &refs_text(e.body),
                );
            }
        }
    }
}

fn unpinned_finding(out: &mut Output, doc: &Doc, e: &Expr, uses: &str, who: &str, what: &str) {
    doc.finding(
        out,
        "ci-secret-to-unpinned-action",
        Severity::Medium,
        e.offset,
        format!(
            "{who} gives {what} to {uses}, which is not pinned to a commit: whoever can move \
             that tag or branch decides what code receives the secret"
        ),
        format!(
            "pin it to a full commit SHA (`{}@<40-hex-sha> # tag`) after reviewing that commit",
            uses.split('@').next().unwrap_or(uses)
        ),
    );
}

/// Rules about one step: secrets expanded in `run:`, secrets to unpinned actions.
fn step_rules(out: &mut Output, doc: &Doc, step: &Step, composite: bool) {
    let p = patterns();
    if let Some(run) = step.run {
        for e in doc.exprs(run) {
            let mut names: Vec<String> = secret_refs(e.body)
                .into_iter()
                .map(|s| format!("secrets.{s}"))
                .collect();
            if composite {
                names.extend(
                    p.input_dot
                        .group1_iter(e.body)
                        .filter(|n| names::name_kind(n).is_some())
                        .map(|n| format!("inputs.{n}")),
                );
            }
            if names.is_empty() {
                continue;
            }
            let var = names[0]
                .rsplit('.')
                .next()
                .unwrap_or("SECRET")
                .to_ascii_uppercase()
                .replace('-', "_");
            doc.finding(
                out,
                "ci-secret-in-run",
                Severity::Medium,
                e.offset,
                format!(
                    "{} is expanded into the script of {} before the shell runs it: the value \
                     becomes script text, can break out of quoting, and lands in the shell's \
                     arguments and the script file other processes can read",
                    names.join(", "),
                    step.describe()
                ),
                format!(
                    "pass it through the step's env: (`{var}: ${{{{ {} }}}}`) and use \"${var}\" \
                     in the script",
                    names[0]
                ),
            );
        }
    }
    if let Some(uses) = step.uses
        && !is_pinned(uses)
        && let Some(with) = step.node.get("with")
    {
        for (_, v) in with.entries() {
            for e in doc.exprs(v) {
                let secret_input = if composite {
                    p.input_dot
                        .group1_iter(e.body)
                        .find(|n| names::name_kind(n).is_some())
                        .map(|n| format!("inputs.{n}"))
                } else {
                    None
                };
                if reads_secrets(e.body) {
                    unpinned_finding(out, doc, &e, uses, &step.describe(), &refs_text(e.body));
                } else if let Some(input) = secret_input {
                    unpinned_finding(out, doc, &e, uses, &step.describe(), &input);
                }
            }
        }
    }
}

/// `pull_request_target` / `workflow_run` jobs that check out the pull request's code.
fn pr_checkout(out: &mut Output, doc: &Doc, trigger: &str, job_id: &str, steps: &[Step]) {
    let p = patterns();
    for step in steps {
        let mut at = None;
        if step
            .uses
            .is_some_and(|u| u.to_ascii_lowercase().starts_with("actions/checkout@"))
            && let Some(with) = step.node.get("with")
        {
            for key in ["ref", "repository"] {
                if let Some(v) = with.get(key)
                    && doc.exprs(v).iter().any(|e| p.pr_code.is_match(e.body))
                {
                    at = Some(v.start.offset);
                    break;
                }
            }
        }
        if at.is_none()
            && let Some(run) = step.run
            && let Some(src) = doc
                .text
                .get(run.start.offset..run.end.offset.max(run.start.offset))
            && let Some(start) = p.pr_checkout_cmd.find_start(src)
        {
            at = Some(run.start.offset + start);
        }
        let Some(offset) = at else { continue };
        doc.finding(
            out,
            "ci-pr-target-checkout",
            Severity::Critical,
            offset,
            format!(
                "job {job_id} runs on {trigger}, which has the base repository's secrets even for \
                 pull requests from forks, and {} checks out the pull request's code: its build \
                 scripts and dependencies run with those secrets",
                step.describe()
            ),
            format!(
                "build untrusted code in a `pull_request` workflow (no secrets), and keep {trigger} \
                 jobs to steps that never run the pull request's code"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::run_rules;
    use super::*;

    #[test]
    fn quoted_literals_in_expressions_are_not_echoed() {
        assert_eq!(shown_expr(" secrets.A "), " secrets.A ");
        assert_eq!(shown_expr(" secrets.A || 'sk-live-x' "), " secrets.A ");
        assert_eq!(shown_expr(" toJSON(secrets) "), " toJSON(secrets) ");
        let out = run_rules(
            "on: push\nenv:\n  K: ${{ secrets.K || 'zq8Vw3Rt6Yp1Lm4Nx7Bc2Df5Gh9Jk0Qs' }}\njobs: {}\n", // keyfence:allow (made-up fake)
        );
        assert_eq!(out.findings.len(), 1, "{:?}", out.findings);
        let f = &out.findings[0];
        assert!(
            !format!("{}{}", f.message, f.fix).contains("zq8Vw3Rt6Yp1"),
            "{f:?}"
        );
    }

    #[test]
    fn step_labels_never_hold_a_secret() {
        let text = "steps:\n  - run: ANTHROPIC_API_KEY=sk-ant-api03-zq8Vw3Rt6Yp1Lm4Nx7Bc2Df5Gh9Jk0QszQ8vW3rT6yP1lM4nX7bC2dF5gH9jK0qSzq8Vw3Rt6Yp1Lm4Nx7Bc2Df5Gh9Jk0QsAA ./x\n  - run: make\n"; // keyfence:allow (made-up fake)
        let docs = yaml::parse(text).unwrap();
        let steps = steps_of(docs[0].get("steps"));
        assert_eq!(steps[0].label, "#1");
        assert_eq!(steps[1].label, "make");
    }

    #[test]
    fn pinning_and_third_party() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        for (uses, pinned, third) in [
            ("actions/checkout@v4", false, false),
            (&*format!("actions/checkout@{sha}"), true, false),
            ("some/action@main", false, true),
            (&*format!("some/action/sub@{sha}"), true, true),
            ("./local", true, false),
            ("docker://alpine:3", false, true),
            ("docker://alpine@sha256:abc", true, false),
            ("some/action", false, true),
        ] {
            assert_eq!(is_pinned(uses), pinned, "{uses}");
            assert_eq!(is_third_party(uses), third, "{uses}");
        }
    }

    #[test]
    fn expressions_that_read_secrets() {
        for (body, refs, all) in [
            (" secrets.A ", vec!["A"], false),
            (" SECRETS.b_c-d ", vec!["b_c-d"], false),
            (" secrets['X'] ", vec!["X"], false),
            (" toJSON(secrets) ", vec![], true),
            (" secrets[format('{0}', inputs.n)] ", vec![], true),
            (" inputs.secrets.A ", vec![], false),
            (" github.token ", vec![], false),
        ] {
            assert_eq!(secret_refs(body), refs, "{body}");
            let p = patterns();
            assert_eq!(
                p.to_json.is_match(body) || p.dynamic_index.is_match(body),
                all,
                "{body}"
            );
        }
    }
}
