//! The finding model shared by every audit source and every renderer (DESIGN.md §3).
//!
//! A finding is a value: where a secret (or a configuration that leaks secrets) is exposed, how
//! bad that is, and one concrete next step. Failures to look somewhere are `AuditError`s, not
//! findings. Nothing here prints.

use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// Where a finding came from: declared with the audit sources themselves (`audit::sources!`).
pub use crate::audit::Source;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum Location {
    File {
        path: PathBuf,
        line: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        column: Option<u32>,
    },
    Env {
        env: String,
    },
    Process {
        pid: u32,
        comm: String,
        /// The variable inside the process environment that holds the secret.
        #[serde(skip_serializing_if = "Option::is_none")]
        env: Option<String>,
    },
}

impl Location {
    pub fn file(path: impl Into<PathBuf>, line: u32) -> Self {
        Location::File {
            path: path.into(),
            line,
            column: None,
        }
    }

    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Location::File { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// The public face of a secret: never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretInfo {
    pub kind: String,
    /// Absent for low-entropy values (passwords): a short hash of those can be brute-forced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    pub preview: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: String,
    pub severity: Severity,
    pub source: Source,
    pub location: Location,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretInfo>,
    pub message: String,
    pub fix: String,
}

/// Somewhere the audit could not look. The audit goes on; the report says what it missed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditError {
    pub source: Source,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub message: String,
}

/// Things skipped on purpose, counted rather than listed one by one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub binary_files: u64,
    pub large_files: u64,
    pub unreadable_processes: u64,
}

impl Skipped {
    pub fn add(&mut self, other: &Skipped) {
        self.binary_files += other.binary_files;
        self.large_files += other.large_files;
        self.unreadable_processes += other.unreadable_processes;
    }
}

/// What an audit or scan produced: the input of every renderer.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub errors: Vec<AuditError>,
    pub skipped: Skipped,
    /// Home directory, so renderers can show `~/.bashrc` instead of the full path.
    pub home: Option<PathBuf>,
}

impl Report {
    /// Stable order: by severity (worst first), then source, then location.
    pub fn sort(&mut self) {
        self.findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.source.cmp(&b.source))
                .then(a.location.cmp(&b.location))
                .then(a.rule.cmp(&b.rule))
        });
        self.findings.dedup();
        self.errors.sort_by(|a, b| {
            (a.source, &a.path, a.pid, &a.message).cmp(&(b.source, &b.path, b.pid, &b.message))
        });
    }

    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

/// What a finding that is not a found secret is about, for headings written for people
/// (`audit`'s human report, SARIF's short description). The id stays the contract (JSON,
/// `--skip`, `keyfence:allow`); a rule missing here is shown by its id with spaces.
pub fn rule_title(rule: &str) -> std::borrow::Cow<'static, str> {
    let title = match rule {
        "agent-outside-keyfence" => "AI agent running outside keyfence",
        "agent-starts-outside-keyfence" => "AI agent starts outside keyfence",
        "claude-api-key-without-helper" => "Claude Code takes its key from the environment",
        "claude-subprocess-env-scrub-off" => "Claude Code's subprocess scrub is off",
        "codex-env-policy-passes-secrets" => "Codex hands secrets to its shell commands",
        "codex-requirements-policy-ignored" => "Codex ignores this pinned policy",
        "gemini-env-redaction-off" => "Gemini CLI hands secrets to its shell tool",
        "credential-file-permissions" => "Credential file others can read",
        "store-rotation-due" => "Stored secret due for rotation",
        "global-install-script" => "Global package runs code at install",
        "install-script" => "Dependency runs code at install",
        "install-script-gyp" => "Dependency compiles native code at install",
        "pnpmfile" => "pnpmfile runs code at every install",
        "cargo-build-code" => "Dependency runs code at build",
        "python-source-build" => "Python package built from source at install",
        "gitlab-global-secret-variable" => "GitLab secret given to every job",
        "ci-all-secrets" => "Workflow hands out every secret",
        "ci-secret-fromjson" => "Secret field the runner cannot mask",
        "ci-workflow-env-secret" => "Secret in the workflow's env",
        "ci-job-env-secret" => "Secret in a job's env",
        "ci-secrets-inherit" => "Job passes every secret on",
        "ci-secret-to-unpinned-action" => "Secret given to an unpinned action",
        "ci-secret-in-run" => "Secret expanded into a script",
        "ci-pr-target-checkout" => "Untrusted code runs with the repository's secrets",
        other => return std::borrow::Cow::Owned(other.replace('-', " ")),
    };
    std::borrow::Cow::Borrowed(title)
}
