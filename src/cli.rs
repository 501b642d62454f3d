//! Every subcommand and flag, and nothing else (clap derive). `command/` turns these into
//! settings; nothing here does work.

use crate::finding::{Severity, Source};
use clap::error::ErrorKind;
use clap::{Args, FromArgMatches, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
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

impl Cli {
    /// The command line, parsed; exits on errors and for `--help` and `--version`, as clap does.
    pub fn parse_args() -> Cli {
        let args: Vec<OsString> = std::env::args_os().collect();
        if let Some(cli) = Cli::try_parse_run_only(&args) {
            return cli;
        }
        match Cli::try_parse_from(&args) {
            Ok(cli) => cli,
            Err(e) => {
                // `keyfence run npm install`: the command's words were read as keyfence's.
                let run_without_dashes = args.iter().skip(1).any(|a| a == "run")
                    && !args.iter().any(|a| a == "--")
                    && e.kind() == ErrorKind::UnknownArgument;
                if run_without_dashes {
                    let _ = e.print();
                    eprintln!(
                        "\nhint: put `--` before the command, so that its words are not read as \
                         keyfence's: keyfence run [OPTIONS] -- COMMAND [ARGS...]"
                    );
                    std::process::exit(i32::from(crate::exit::CANNOT_RUN));
                }
                // `run` says it failed before the command started with 125, as `env` does for
                // its own usage errors: 2 could be the command's own status.
                let asked_for_text = matches!(
                    e.kind(),
                    ErrorKind::DisplayHelp
                        | ErrorKind::DisplayVersion
                        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                );
                if names_run(&args) && !asked_for_text {
                    let _ = e.print();
                    std::process::exit(i32::from(crate::exit::CANNOT_RUN));
                }
                e.exit()
            }
        }
    }

    /// `keyfence run ...` parsed by a tree that holds only `run`, or `None` for anything else.
    ///
    /// Why: `run` execs the command in place on a start-up budget (DESIGN.md §4), and clap copies
    /// each of the nine global options into each of the 17 subcommands before it parses (153
    /// `Arg` clones, about a third of clap's work). A `run` tree takes the same arguments with the
    /// same meaning, since the whole tree would descend into `run` at the first argument too.
    /// Whatever it rejects, `--help` and `--version` included, is parsed again by the whole tree,
    /// so every message stays the one clap gives for the whole (tests check both agree).
    pub fn try_parse_run_only(args: &[OsString]) -> Option<Cli> {
        if args.get(1).is_none_or(|a| a != "run") {
            return None;
        }
        let tree = GlobalArgs::augment_args(clap::Command::new("keyfence"))
            .subcommand_required(true)
            .subcommand(RunArgs::augment_args(clap::Command::new("run")));
        let mut matches = tree.try_get_matches_from(args).ok()?;
        Cli::from_arg_matches_mut(&mut matches).ok()
    }
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The invoked command's `--format` (`Cli::settle`): each command offers only the formats
    /// it writes, SARIF only where the output is findings.
    #[arg(skip = Format::Human)]
    pub format: Format,

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

/// `--format` of the commands whose output is findings (`audit`, `scan`).
#[derive(Debug, Args)]
pub struct ReportFormat {
    /// Output format (SARIF for code-scanning upload)
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// `--format` of the commands that print a listing or a status, not findings.
#[derive(Debug, Args)]
pub struct DataFormat {
    /// Output format
    #[arg(long, value_enum, default_value_t = HumanOrJson::Human)]
    pub format: HumanOrJson,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HumanOrJson {
    Human,
    Json,
}

impl From<HumanOrJson> for Format {
    fn from(f: HumanOrJson) -> Format {
        match f {
            HumanOrJson::Human => Format::Human,
            HumanOrJson::Json => Format::Json,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

/// Each subcommand's arguments are built only when it is the one invoked (`defer`): building
/// all of them was a fifth of `keyfence run`'s own start-up.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
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
gitconfig tokens in git's configuration: remote URLs, http.extraheader\n  \
agent     Claude Code and Codex settings and MCP server definitions\n  \
proc      environments of running processes (/proc/PID/environ)\n  \
file      secrets in the project's files\n  \
store     entries of keyfence's vault due for rotation\n  \
ci        GitHub Actions workflows and actions, GitLab CI: where secrets reach steps\n  \
package   dependencies that run code at install time, and whether secrets reach them\n\n\
The same key found in several places is one exposure, grouped by its fingerprint."
    )]
    Audit(AuditArgs),
    /// Scan files and directories for secrets (a plain tree scan, like gitleaks `dir`)
    Scan(ScanArgs),
    /// Show running processes that hold secrets in their environment, as a tree
    Ps(DataFormat),
    /// Create the embedded vault (a random data key in a separate file, or --passphrase)
    Init(InitArgs),
    /// Store, read, list and remove secrets in the embedded vault
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Run a command with secrets scrubbed from its environment and only the named ones injected
    #[command(
        long_about = "Run COMMAND with every variable that looks like a secret removed from its \
environment, except those kept with --allow, and the secrets named with --inject added (store \
entries, or references to OpenBao/Vault and to other programs: see --inject).\n\n\
With nothing to supervise keyfence replaces itself with the command (same pid, signals and exit \
status). Exit status: the command's; 128+N when it dies of signal N; 125 when keyfence fails \
before starting it (a usage error too), 126 when it cannot be executed, 127 when it is not found."
    )]
    Run(RunArgs),
    /// Set up an integration: `claude`, `codex`, `gemini` make your shell start the agent under
    /// the agent profile; `cursor` moves MCP servers' keys into the store
    #[command(subcommand)]
    Setup(SetupCommand),
    /// Move keys exported in shell start-up files, agent settings or the project's .env files
    /// into the store
    #[command(
        long_about = "For each key exported in a shell start-up file, held in an agent settings \
`env` block or written in the project's .env files: import it into the store, check that it \
reads back, then remove the line (or the JSON entry; a .env line keeps NAME=store:NAME as a \
reference), keeping a backup of each edited file. Nothing is edited before the value is safely \
stored, and a file that changed since it was read is left alone.\n\n\
Also: chmod 600 of credential files others can read, and deleting the backups an earlier run \
left once their change is checked (every key in them is stored and gone from the file). Each \
is asked on the terminal; --yes does all, --dry-run shows all and changes nothing."
    )]
    Fix(FixArgs),
    /// Report what the kernel offers for isolation (Landlock, seccomp, ptrace, namespaces) and
    /// which protection modes will therefore work
    Doctor(DataFormat),
    /// Internal: the child process `doctor` starts to try creating namespaces
    #[command(name = "__probe-namespaces", hide = true)]
    ProbeNamespaces,
    /// Internal: Claude Code's PreToolUse hook (reads the hook's JSON on stdin)
    #[command(name = "__hook-claude", hide = true)]
    HookClaude,
    /// Internal: the helper `run --guard` starts, which execs the command under its supervisor
    #[command(name = "__guard-exec", hide = true)]
    GuardExec {
        #[arg(long)]
        trace: bool,
        #[arg(required = true, last = true)]
        command: Vec<std::ffi::OsString>,
    },
    /// Make realistic fake keys that reveal a harvester, and keep their registry
    #[command(subcommand)]
    Canary(CanaryCommand),
    /// Print shell functions that route package-manager commands through `keyfence run`, which
    /// picks the profile by command line (installs get the `install` profile's sandbox). Use
    /// `eval "$(keyfence shell-init bash)"` in ~/.bashrc (zsh alike; fish: `keyfence shell-init
    /// fish | source`)
    ShellInit {
        #[arg(value_enum)]
        shell: InitShell,
    },
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

    /// Run only these audit sources (comma-separated)
    #[arg(long, value_enum, value_delimiter = ',', value_name = "SOURCE,...")]
    pub only: Vec<Source>,

    /// Skip these audit sources (comma-separated)
    #[arg(long, value_enum, value_delimiter = ',', value_name = "SOURCE,...")]
    pub skip: Vec<Source>,

    #[command(flatten)]
    pub fail_on: FailOn,

    #[command(flatten)]
    pub home: HomeArg,

    #[command(flatten)]
    pub walk: WalkArgs,

    #[command(flatten)]
    pub format: ReportFormat,
}

// `--fail-on`, for the commands that report findings (`audit`, `scan`); not a doc comment, as
// for `HomeArg`.
#[derive(Debug, Args)]
pub struct FailOn {
    /// Exit with status 1 when a finding is at least this severe
    #[arg(long, value_enum, default_value_t = Severity::High, value_name = "SEVERITY")]
    pub fail_on: Severity,
}

// `--home`, for the commands that read or change a home directory (`audit`, `fix`, `setup`).
// A plain comment: clap takes a flattened struct's doc comment as the command's own about.
#[derive(Debug, Args)]
pub struct HomeArg {
    /// Use this home directory instead of $HOME (for administrators and tests)
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or directories to scan
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,

    #[command(flatten)]
    pub fail_on: FailOn,

    #[command(flatten)]
    pub walk: WalkArgs,

    #[command(flatten)]
    pub format: ReportFormat,
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

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Derive the data key from a passphrase (asked on the terminal, or read from the file in
    /// KEYFENCE_PASSPHRASE_FILE) instead of keeping it in a key file
    #[arg(long)]
    pub passphrase: bool,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum SecretCommand {
    /// Store a secret: the value comes from a no-echo prompt, from stdin when it is not a
    /// terminal, or from --from-env; never from the command line
    Set {
        name: String,
        /// Read the value from this environment variable
        #[arg(long, value_name = "VAR")]
        from_env: Option<String>,
        /// Expire the entry after this long (90s, 30m, 12h, 7d, 2w; `never` removes an expiry);
        /// expired entries are never injected
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
        /// Profiles allowed to receive this secret (repeatable; default: any)
        #[arg(long = "profile", value_name = "PROFILE")]
        profiles: Vec<String>,
        /// `keyfence audit` reports the value as due for rotation this long after it was last
        /// set (default 90d; `never` turns it off)
        #[arg(long, value_name = "DURATION")]
        rotate_after: Option<String>,
    },
    /// Record a new value for an existing secret (read like `set`: prompt, stdin or
    /// --from-env, never the command line); its rotation time restarts
    Rotate {
        name: String,
        /// Read the new value from this environment variable
        #[arg(long, value_name = "VAR")]
        from_env: Option<String>,
        /// Also change the rotation age (30d, 12w, `never`)
        #[arg(long, value_name = "DURATION")]
        rotate_after: Option<String>,
    },
    /// Change which profiles may receive a secret, without typing its value again: an entry
    /// open to every profile of yours stays open when a project's profile is listed on it
    Profiles {
        name: String,
        /// List this profile on the entry (repeatable); a project's profile gets only entries
        /// that list it
        #[arg(long = "add", value_name = "PROFILE")]
        add: Vec<String>,
        /// Unlist this profile (repeatable)
        #[arg(long = "remove", value_name = "PROFILE")]
        remove: Vec<String>,
        /// Every profile of yours may receive it, besides the listed ones
        #[arg(long, conflicts_with = "only_listed")]
        open: bool,
        /// Only the listed profiles may receive it
        #[arg(long)]
        only_listed: bool,
    },
    /// Print a secret's value (only when stdout is not a terminal, unless --reveal): a store
    /// entry, or a reference (openbao://MOUNT/PATH#FIELD, cmd:PROGRAM ARGS, file:PATH; see
    /// `run --help`)
    Get {
        #[arg(value_name = "NAME|REFERENCE")]
        name: String,
        /// Print even to a terminal
        #[arg(long)]
        reveal: bool,
    },
    /// List secrets: names, kinds, fingerprints and dates, never values
    List(DataFormat),
    /// Remove a secret
    Rm { name: String },
    /// Import secrets from a .env file, or from environment variables
    Import {
        /// The .env file to import
        #[arg(required_unless_present = "from_env", conflicts_with = "from_env")]
        file: Option<PathBuf>,
        /// Import these environment variables instead
        #[arg(long, value_name = "NAME", num_args = 1..)]
        from_env: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Use this profile from keyfence.toml or the user configuration
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<String>,
    /// Keep this variable even if it looks like a secret (repeatable)
    #[arg(long, value_name = "VAR")]
    pub allow: Vec<String>,
    /// Also drop variables with this name or glob (repeatable)
    #[arg(long, value_name = "VAR|GLOB")]
    pub drop: Vec<String>,
    /// Add a secret to the environment: NAME (a store entry), VAR=NAME to rename, or
    /// VAR=REFERENCE (repeatable). References: store:NAME; openbao://MOUNT/PATH#FIELD (KV v2;
    /// vault:// too); openbao+lease://PATH#FIELD (a dynamic secret such as
    /// database/creds/ROLE, revoked when the command ends);
    /// openbao+token://POLICY[,POLICY][?ttl=1h] (a child token, revoked when the command
    /// ends); cmd:PROGRAM ARGS (its stdout,
    /// no shell, KEYFENCE_CMD_TIMEOUT seconds at most, default 30); file:PATH (the file's
    /// content less its last line break: /run/secrets/NAME, ~/...). OpenBao is found through
    /// BAO_ADDR, BAO_TOKEN or ~/.vault-token or an AppRole (KEYFENCE_BAO_ROLE_ID_FILE,
    /// KEYFENCE_BAO_SECRET_ID_FILE), BAO_NAMESPACE, BAO_CACERT (VAULT_* too); these are
    /// dropped from the command's environment unless allowed
    #[arg(long, value_name = "[VAR=]NAME|VAR=REF")]
    pub inject: Vec<String>,
    /// Give the command a stand-in for this key (from the store, or the current environment)
    /// and a loopback proxy that swaps in the real key on requests to the provider (repeatable;
    /// ANTHROPIC_* and OPENAI_* keys know their provider)
    #[arg(long, value_name = "NAME")]
    pub phantom: Vec<String>,
    /// The upstream the phantom proxy forwards to (https://..., or http:// on loopback only)
    #[arg(long, value_name = "URL", requires = "phantom")]
    pub upstream: Option<String>,
    /// Give the command a fresh registered canary of the same kind in place of every secret
    /// that would be dropped, so whatever harvests it takes the bait
    #[arg(long)]
    pub canary: bool,
    /// Do not replace secret values in the command's output
    #[arg(long)]
    pub no_mask: bool,
    /// Run in a Landlock sandbox: no reading of credential stores (~/.aws, ~/.ssh, ~/.npmrc,
    /// keyfence's own store, ...), writes only in the project, temp and cache directories
    #[arg(long)]
    pub sandbox: bool,
    /// With the sandbox: let the command write beneath PATH too, even where the sandbox keeps
    /// it read-only (the project's .git, a directory on PATH), for this run only; e.g.
    /// `--allow-write .git` for husky's `prepare`, which sets core.hooksPath (repeatable)
    #[arg(long, value_name = "PATH")]
    pub allow_write: Vec<std::path::PathBuf>,
    /// Hide PATH (a file or a directory, from the current directory or ~/; a pattern such as
    /// `.env.*` in its last part, `**/NAME` at any depth) from the command's whole tree: opening
    /// the file fails with "permission denied", the directory shows empty. `!PATH` shows one
    /// the profile hides: the built-in install profile hides the project's .env files, e.g.
    /// `--deny-read '!.env'` for an install script that needs it (repeatable; Linux)
    #[arg(long, value_name = "PATH")]
    pub deny_read: Vec<String>,
    /// The command gets its secrets, nothing it starts does: every program started below it
    /// runs without the protected variables and cannot read the command's environment or
    /// memory (seccomp + ptrace + Landlock; Linux x86-64). Setuid programs and debuggers do
    /// not work inside a guarded tree
    #[arg(long)]
    pub guard: bool,
    /// Record what the command's tree does with keys: execs, opens of credential files and
    /// .env files, connects, DNS queries, and secret, stand-in or canary values sent out. A
    /// summary by package goes to stderr; with =FILE every event as JSON lines too (Linux x86-64)
    #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    pub trace: Option<String>,
    /// Network for the command: allow (default), none (no TCP, UDP or DNS: a new network
    /// namespace), or tcp:PORT,... (TCP connections to those ports only; UDP is not limited)
    #[arg(
        long,
        value_name = "allow|none|tcp:PORTS",
        default_value = "allow",
        value_parser = parse_net
    )]
    pub net: crate::policy::NetPolicy,
    /// The command and its arguments
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum SetupCommand {
    /// Store an exported ANTHROPIC_API_KEY (not needed after `claude auth login`) and make your
    /// shell start `claude` under keyfence's agent profile: your shell's start-up file loads
    /// `keyfence shell-init` (one marked block, backup kept)
    Claude {
        /// Show what would change, change nothing
        #[arg(long)]
        dry_run: bool,
        /// Instead: add a PreToolUse hook for the Bash tool that runs every command matching a
        /// profile (installs, and your own profiles' `match`) under `keyfence run --profile P`
        #[arg(long, conflicts_with_all = ["api_key_helper", "shell"])]
        hook: bool,
        /// Also make `keyfence secret get` Claude Code's apiKeyHelper in
        /// ~/.claude/settings.json, for claude started without your shell (an IDE). Any command
        /// claude runs can run the helper too
        #[arg(long)]
        api_key_helper: bool,
        /// The shell whose start-up file loads shell-init (default: from $SHELL)
        #[arg(long, value_enum)]
        shell: Option<InitShell>,
        #[command(flatten)]
        home: HomeArg,
    },
    /// Store an exported OPENAI_API_KEY (not needed after `codex login`), make your shell start
    /// `codex` under keyfence's agent profile, and give Codex a shell_environment_policy in
    /// ~/.codex/config.toml under which the commands it runs inherit no secrets (backups kept)
    Codex {
        /// Show what would change, change nothing
        #[arg(long)]
        dry_run: bool,
        /// The shell whose start-up file loads shell-init (default: from $SHELL)
        #[arg(long, value_enum)]
        shell: Option<InitShell>,
        #[command(flatten)]
        home: HomeArg,
    },
    /// Store an exported GEMINI_API_KEY (not needed after a Google login), make your shell start
    /// `gemini` under keyfence's agent profile, and turn on Gemini CLI's redaction of secret
    /// variables in ~/.gemini/settings.json (backups kept)
    Gemini {
        /// Show what would change, change nothing
        #[arg(long)]
        dry_run: bool,
        /// The shell whose start-up file loads shell-init (default: from $SHELL)
        #[arg(long, value_enum)]
        shell: Option<InitShell>,
        #[command(flatten)]
        home: HomeArg,
    },
    /// Move the keys in Cursor's MCP server definitions (~/.cursor/mcp.json and the project's
    /// .cursor/mcp.json) into the store: each server then starts through `keyfence run
    /// --inject`, which hands it its key alone (backups kept)
    Cursor {
        /// Show what would change, change nothing
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        home: HomeArg,
    },
}

#[derive(Debug, Args)]
pub struct FixArgs {
    /// Print the edits as unified diffs, change nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub home: HomeArg,
    /// Do not ask before each edit
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub format: DataFormat,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum CanaryCommand {
    /// Print a new canary of KIND (anthropic, openai, github, npm, aws, ...) and register its
    /// fingerprint
    New {
        kind: String,
        /// Where you plant it, for the registry (e.g. "ci secrets of repo X")
        #[arg(long, default_value = "")]
        label: String,
        /// The file you plant it in (repeatable): `keyfence audit` then reports it anywhere
        /// else as a sign that something copied it
        #[arg(long, value_name = "FILE")]
        planted_in: Vec<std::path::PathBuf>,
    },
    /// List registered canaries: fingerprint, kind, date, label
    List(DataFormat),
    /// Forget a canary
    Rm { fingerprint: String },
}

impl Command {
    /// The `--format` given to this command; human for the commands that have none.
    pub fn format(&self) -> Format {
        match self {
            Command::Audit(a) => a.format.format,
            Command::Scan(a) => a.format.format,
            Command::Ps(f) | Command::Doctor(f) => f.format.into(),
            Command::Fix(a) => a.format.format.into(),
            Command::Secret(SecretCommand::List(f)) | Command::Canary(CanaryCommand::List(f)) => {
                f.format.into()
            }
            _ => Format::Human,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum InitShell {
    Bash,
    Zsh,
    Fish,
}

/// `--net`'s value, parsed by clap like every other flag's, so a bad one is a usage error.
fn parse_net(s: &str) -> Result<crate::policy::NetPolicy, String> {
    // clap names the value itself.
    s.parse().map_err(|e: String| {
        e.strip_prefix(&format!("'{s}': "))
            .map(str::to_string)
            .unwrap_or(e)
    })
}

/// Whether the command line's subcommand is `run`: its first word that is neither an option
/// nor a global option's value.
fn names_run(args: &[OsString]) -> bool {
    let mut words = args.iter().skip(1);
    while let Some(w) = words.next() {
        match w.to_str() {
            Some("--color" | "--etc") => {
                words.next();
            }
            Some(o) if o.starts_with('-') => {}
            Some(word) => return word == "run",
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<OsString> {
        std::iter::once("keyfence")
            .chain(line.split(' ').filter(|w| !w.is_empty()))
            .map(OsString::from)
            .collect()
    }

    /// The `run`-only tree takes what the whole tree takes, to the same values, and leaves the
    /// rest (errors, help, version, other subcommands) to the whole tree.
    #[test]
    fn run_only_tree_parses_as_the_whole_tree() {
        let taken = [
            "run -- true",
            "run -v -- env",
            "run --quiet -- env",
            "run --profile install --allow A --allow B --drop 'X_*' -- npm ci",
            "run --inject K --inject VAR=NAME --no-mask --guard -- sh -c x",
            "run --phantom ANTHROPIC_API_KEY --upstream http://127.0.0.1:9 -- claude -p hi",
            "run --trace --canary --sandbox --net none -- npm install",
            "run --trace=/tmp/t.jsonl --net tcp:443,80 -- curl",
            "run --color never -- x",
            "run --etc /e -- -- --help",
            "run -- --version",
        ];
        for line in taken {
            let args = argv(line);
            let whole = Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{line}: {e}"));
            let fast =
                Cli::try_parse_run_only(&args).unwrap_or_else(|| panic!("{line}: not taken"));
            assert_eq!(format!("{fast:?}"), format!("{whole:?}"), "{line}");
        }
        let left = [
            "run",
            "run --help",
            "run -h",
            "run --version",
            "run true",
            "run --guard",
            "run --quiet --verbose -- x",
            "run --verbose --quiet -- env",
            "run --upstream http://127.0.0.1:9 -- x",
            "run --no-such-flag -- x",
            "run --trace /tmp/t -- x",
            "--format json run -- x",
            "run --format json -- x",
            "run --home /h -- x",
            "audit",
            "help run",
            "",
        ];
        for line in left {
            assert!(Cli::try_parse_run_only(&argv(line)).is_none(), "{line}");
        }
    }
}
