//! Every subcommand and flag, and nothing else (clap derive). `command/` turns these into
//! settings; nothing here does work.

use crate::finding::{Severity, Source};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "keyfence",
    version,
    about = "Find where your API keys are exposed, and keep them out of processes that should not have them",
    long_about = "keyfence finds every place an API key or other secret is exposed on this machine \
and in this project: the environment, shell start-up files and history, .env files, credential \
files, AI agent configurations, running processes and project files.\n\n\
Start with `keyfence audit` in a project directory.",
    after_help = "Exit status: 0 nothing at or above --fail-on, 1 findings, 2 usage or runtime error.",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Output format
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// Exit with status 1 when a finding is at least this severe
    #[arg(long, global = true, value_enum, default_value_t = Severity::High, value_name = "SEVERITY")]
    pub fail_on: Severity,

    /// Audit this home directory instead of $HOME (for administrators and tests)
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// Run only these audit sources (comma-separated)
    #[arg(
        long,
        global = true,
        value_enum,
        value_delimiter = ',',
        value_name = "SOURCE,..."
    )]
    pub only: Vec<Source>,

    /// Skip these audit sources (comma-separated)
    #[arg(
        long,
        global = true,
        value_enum,
        value_delimiter = ',',
        value_name = "SOURCE,..."
    )]
    pub skip: Vec<Source>,

    /// When to use colours; NO_COLOR in the environment turns them off under `auto`
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,

    /// Print only findings, no summary or notes
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Also print errors and skipped files in detail
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// Read system-wide start-up files from this directory instead of /etc
    #[arg(
        long,
        global = true,
        hide = true,
        value_name = "DIR",
        default_value = "/etc"
    )]
    pub etc: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
    Sarif,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Find every place a key is exposed: environment, shell files and history, .env files,
    /// credential files, agent configurations, running processes and project files
    #[command(
        long_about = "Find every place a key is exposed, and say what to do about each.\n\n\
Sources (select with --only/--skip):\n  \
env       variables of the current environment\n  \
shell     shell start-up files in the home and /etc, and files they source\n  \
history   bash, zsh and fish history\n  \
dotenv    .env, .env.*, .envrc in the project (also ones .gitignore ignores)\n  \
credfile  credential files: ~/.aws/credentials, ~/.npmrc, ~/.netrc, ...\n  \
agent     Claude Code and Codex settings and MCP server definitions\n  \
proc      environments of running processes (/proc/PID/environ)\n  \
file      secrets in the project's files\n\n\
The same key found in several places is one exposure, grouped by its fingerprint."
    )]
    Audit(AuditArgs),
    /// Scan files and directories for secrets (a plain tree scan, like gitleaks `dir`)
    Scan(ScanArgs),
    /// Show running processes that hold secrets in their environment, as a tree
    Ps,
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Project directories to audit (default: the current directory)
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    #[command(flatten)]
    pub walk: WalkArgs,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or directories to scan
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,

    #[command(flatten)]
    pub walk: WalkArgs,
}

#[derive(Debug, Args)]
pub struct WalkArgs {
    /// Skip files larger than this many bytes (suffixes K, M, G)
    #[arg(long, default_value = "10M", value_parser = parse_size, value_name = "SIZE")]
    pub max_filesize: u64,

    /// Number of threads for the tree walk (default: one per core)
    #[arg(short = 'j', long, value_name = "N")]
    pub threads: Option<usize>,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| n.saturating_mul(mult))
        .map_err(|_| format!("invalid size '{s}': use a number with an optional K, M or G suffix"))
}
