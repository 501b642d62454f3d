//! Profiles: which secrets a command gets and under which rules (DESIGN.md §3). Read from the
//! user's `$XDG_CONFIG_HOME/keyfence/config.toml` and the project's `keyfence.toml`; a command
//! picks one with `--profile` or by matching its command line.
//!
//! The two files are not equal. The user's file is the user's word: a profile there may say
//! anything, and one named like a built-in (`default`, `install`, `agent`) starts from the
//! built-in's protections. A project's file comes with the code it configures — a cloned
//! repository can hold anything — so it may only narrow (the merge rule, docs/run.md "What a project's keyfence.toml may say"):
//!
//! - it may add restrictions to a profile the user owns (a built-in, or one in the user's
//!   file): more `drop`, `sandbox`/`guard`/`mask = true`, a stricter `net`; never `match`,
//!   `allow`, `inject` or `phantom`, and never turn a protection off;
//! - it may add profiles of its own; each starts from the restrictions of the user's `default`
//!   and adds its own, its `inject` reaches only store entries that list that profile
//!   (`keyfence secret profiles NAME --add P`), and it may not `allow` a variable or set a
//!   phantom's `upstream`;
//! - its `match` patterns count only for command lines that nothing of the user's (their own
//!   profiles' patterns, the built-in `install` patterns) matches.
//!
//! A refused setting is left out with a warning naming the file and line. Unknown keys in a
//! project's file are warnings too (a file written for a newer keyfence must work with an older
//! one); in the user's file they are errors. The project file is looked for from the current
//! directory up to the repository root or the home directory, and used only when the user (or
//! root) owns it and no one else can write it.

pub mod net;
pub mod patterns;

pub use net::NetPolicy;
use patterns::Patterns;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Profiles every installation has, before any file is read.
pub const BUILTIN: &[&str] = &["default", "install", "agent"];

/// Command lines the built-in `install` profile applies to when no profile file matches first:
/// package managers' steps that fetch packages and run their code (lifecycle scripts, builds,
/// `dlx`-style runners). Every alias the tools accept is listed, bare forms included (`npm i`,
/// `yarn`); a word-prefix glob such as `npm i*` also takes in harmless neighbours (`npm info`),
/// which then run sandboxed too. npm resolves unique abbreviations (`npm inst`, `npm upd`).
/// Sources: npm's `lib/utils/cmd-list.js` (11.x), `pnpm help --all` (12.x), yarn 1 and berry,
/// bun, pip, uv and cargo docs. Only literals and literal prefixes (`...*`): anything else
/// costs a globset build on every `keyfence run` (see `patterns`).
pub const INSTALL_MATCHES: &[&str] = &[
    // npm: install, i, in..instal, isnt*, install-test/it, install-ci-test/cit, install-clean,
    // install-scripts, ci, ic, clean-install(-test), sit, add, update/u/up/upgrade/udpate,
    // rebuild/rb, dedupe/ddp, link/ln, exec/x, init/create with an initializer, audit fix.
    "npm i",
    "npm i*",
    "npm add",
    "npm add *",
    "npm ci*",
    "npm cit*",
    "npm cl*",
    "npm sit*",
    "npm u",
    "npm u *",
    "npm up*",
    "npm ud*",
    "npm reb*",
    "npm rb",
    "npm rb *",
    "npm ded*",
    "npm ddp*",
    "npm lin*",
    "npm ln",
    "npm ln *",
    "npm exe*",
    "npm x *",
    "npm cr*",
    "npm audit fix*",
    "npx *",
    // pnpm (and its `pn`, `pnpx`, `pnx` entry points): install/i, add, install-test/it,
    // update/up/upgrade, rebuild/rb, ci/clean-install/ic/install-clean, dedupe, link/ln,
    // unlink/dislink (reinstalls), import, patch-commit, deploy, dlx, create, approve-builds,
    // approve, pipeline (frozen install), recursive/multi/m.
    "pnpm i",
    "pnpm i *",
    "pnpm install*",
    "pnpm it",
    "pnpm it *",
    "pnpm add*",
    "pnpm up*",
    "pnpm update*",
    "pnpm rebuild*",
    "pnpm rb",
    "pnpm rb *",
    "pnpm ci*",
    "pnpm clean-install*",
    "pnpm ic",
    "pnpm ic *",
    "pnpm dedupe*",
    "pnpm link*",
    "pnpm ln",
    "pnpm ln *",
    "pnpm unlink*",
    "pnpm dislink*",
    "pnpm import*",
    "pnpm patch-commit*",
    "pnpm deploy*",
    "pnpm dlx *",
    "pnpm create *",
    "pnpm approve*",
    "pnpm pipeline*",
    "pnpm recursive *",
    "pnpm multi *",
    "pnpm m *",
    "pnpm -r *",
    "pnpm --recursive *",
    // `pn` is pnpm's short entry point: its install steps.
    "pn i",
    "pn i *",
    "pn install*",
    "pn add*",
    "pn up*",
    "pn update*",
    "pn ci*",
    "pn rb",
    "pn rb *",
    "pn rebuild*",
    "pn dlx *",
    "pn create *",
    "pnpx *",
    "pnx *",
    // yarn 1 and berry: bare `yarn` installs; add, up/upgrade(-interactive), dlx, create,
    // global add, rebuild, link, import, workspace(s).
    "yarn",
    "yarn install*",
    "yarn add*",
    "yarn up*",
    "yarn dlx *",
    "yarn create *",
    "yarn global *",
    "yarn rebuild*",
    "yarn link*",
    "yarn import*",
    "yarn workspace *",
    "yarn workspaces focus*",
    "yarn workspaces foreach *",
    // bun: install/i, add/a, update, x, bunx, create/c, link, pm trust (runs the scripts it
    // had blocked).
    "bun install*",
    "bun i",
    "bun i *",
    "bun add*",
    "bun a",
    "bun a *",
    "bun update*",
    "bun x *",
    "bunx *",
    "bun create *",
    "bun c *",
    "bun link*",
    "bun pm trust*",
    // pip builds sdists (running setup.py) for install, download and wheel alike. Not
    // `python -m pip`: shell-init would then route every `python` through keyfence; the hook
    // reads `python -m pip` as `pip` itself.
    "pip install*",
    "pip download*",
    "pip wheel*",
    "pip3 install*",
    "pip3 download*",
    "pip3 wheel*",
    "pipx install*",
    "pipx run *",
    "pipx inject*",
    "pipx upgrade*",
    // uv: every command that syncs an environment may build packages (`uv run` syncs first).
    "uv pip install*",
    "uv pip sync*",
    "uv pip compile*",
    "uv sync*",
    "uv add*",
    "uv lock*",
    "uv run*",
    "uv tool install*",
    "uv tool run *",
    "uvx *",
    // cargo: install builds the crate and its dependencies' build scripts.
    "cargo install*",
    "cargo binstall*",
];

/// The programs `INSTALL_MATCHES` names (the first word of each pattern), written out so that
/// `keyfence run` does not derive them from 120 patterns at every start; a test checks that the
/// two agree.
pub const INSTALL_PROGRAMS: &[&str] = &[
    "npm", "npx", "pnpm", "pn", "pnpx", "pnx", "yarn", "bun", "bunx", "pip", "pip3", "pipx", "uv",
    "uvx", "cargo",
];

/// The AI coding agents the built-in `agent` profile is for: a command line whose first word
/// (its file name, so `/usr/local/bin/claude` too) is one of these runs under `agent` when no
/// profile is named, and `shell-init` wraps them.
pub const AGENT_PROGRAMS: &[&str] = &["claude", "codex", "gemini"];

/// An agent whose command is a launcher: while the command runs `launcher` (the file name of
/// its executable), the first child it starts whose exec names `program` is the agent itself
/// (guard/tracer.rs). Codex's npm command is a Node script that starts the native `codex` from
/// its platform package as a child (on Node with `process.execve`, 22.15 and later, it
/// replaces itself instead: then the command is no longer `node`, and no child qualifies);
/// Gemini CLI's first Node process starts `node` again with more memory, unless one of
/// `in_place_when` is set in its environment (then it is the agent itself, and a `node` it
/// starts is a tool, an MCP server, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub launcher: Option<String>,
    pub program: String,
}

/// The agents of `AGENT_PROGRAMS` that are launchers: (command name, launcher, program,
/// variables that make the command the agent itself). A user's profile overrides it with
/// `launches` (and `launcher`).
pub const AGENT_LAUNCHES: &[(&str, &str, &str, &[&str])] = &[
    ("codex", "node", "codex", &[]),
    (
        "gemini",
        "node",
        "node",
        &["GEMINI_CLI_NO_RELAUNCH", "SANDBOX"],
    ),
];

/// The agent the command `program` (its first word) launches, under guard: the profile's
/// `launches` (`""`: none) and `launcher`, else `AGENT_LAUNCHES` unless `env_has` one of its
/// in-place variables.
pub fn launched_agent(
    profile: &Profile,
    program: &str,
    env_has: impl Fn(&str) -> bool,
) -> Option<Launch> {
    let name = program.rsplit('/').next().unwrap_or_default();
    match &profile.launches {
        Some(p) if p.is_empty() => None,
        Some(p) => Some(Launch {
            launcher: profile.launcher.clone(),
            program: p.clone(),
        }),
        None => AGENT_LAUNCHES
            .iter()
            .find(|(agent, ..)| *agent == name)
            .filter(|(.., in_place)| !in_place.iter().any(|v| env_has(v)))
            .map(|(_, launcher, program, _)| Launch {
                launcher: Some(launcher.to_string()),
                program: program.to_string(),
            }),
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    /// Command lines this profile applies to (globs over the words joined by spaces).
    #[serde(default, rename = "match")]
    pub matches: Vec<String>,
    /// Variables kept even if they look like secrets.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Variables (names or globs) dropped in addition to detected secrets.
    #[serde(default)]
    pub drop: Vec<String>,
    /// Secrets to inject: `NAME` or `VAR=NAME` (store entries), or `VAR=REFERENCE`
    /// (`openbao://...`, `openbao+lease://...`, `openbao+token://...`, `cmd:...`, `file:...`;
    /// see `provider`).
    #[serde(default)]
    pub inject: Vec<String>,
    /// Mask secret values in the command's output (default true).
    #[serde(default)]
    pub mask: Option<bool>,
    /// Files and directories the command's tree may not read (`run/deny_read.rs`: paths from
    /// the project's root or `~/`, a pattern in the last component, `**/NAME` at any depth, `!`
    /// to keep one). Default: none; the built-in `install` hides the project's dotenv files. A user's `install` may set
    /// `deny_read = []`; a project's file may only add entries.
    #[serde(default)]
    pub deny_read: Option<Vec<String>>,
    /// Run in the Landlock sandbox (default false; true for the built-in `install`).
    #[serde(default)]
    pub sandbox: Option<bool>,
    /// Guard the command's descendants: they never receive its secrets nor read them from it
    /// (default false; true for the built-in `agent`).
    #[serde(default)]
    pub guard: Option<bool>,
    /// The network the command may use; the stricter of this and `--net` applies.
    #[serde(default)]
    pub net: Option<NetPolicy>,
    /// Keys given to the command as stand-ins, swapped for the real key by a loopback proxy.
    #[serde(default)]
    pub phantom: Vec<PhantomSpec>,
    /// Under guard, when the command is a launcher: the file name of the program it starts
    /// as the agent itself, which keeps the command's secrets and its own credential files
    /// (default: `AGENT_LAUNCHES` for codex and gemini; `""`: none). Only the user's file may
    /// set it.
    #[serde(default)]
    pub launches: Option<String>,
    /// With `launches`: the file name of the launcher's executable (`node`); only while the
    /// command runs it may a child become the agent. Default: any.
    #[serde(default)]
    pub launcher: Option<String>,
}

impl Profile {
    /// How much a profile protects, compared field by field in this order: a sandbox, then
    /// guard, then phantom keys, then a limited network, then handing out no injected secrets.
    /// The Claude Code hook wraps a whole command line under the strongest profile any of its
    /// parts matches (ties: the first in the line), and `run` reads a command the same way.
    pub fn strength(&self) -> impl Ord + use<> {
        (
            self.sandbox.unwrap_or(false),
            self.guard.unwrap_or(false),
            !self.phantom.is_empty(),
            matches!(self.net, Some(NetPolicy::None | NetPolicy::TcpPorts(_))),
            self.inject.is_empty(),
        )
    }

    /// Whether the profile gives the command a secret, or a stand-in that spends one through
    /// the phantom proxy: such a profile must reach only the command it was written for.
    pub fn hands_out_keys(&self) -> bool {
        !self.inject.is_empty() || !self.phantom.is_empty()
    }
}

/// The keys a `[[profile]]` table may hold, for "did you mean" on the others.
const PROFILE_KEYS: &[&str] = &[
    "name",
    "match",
    "allow",
    "drop",
    "inject",
    "mask",
    "deny_read",
    "sandbox",
    "guard",
    "net",
    "phantom",
    "launches",
    "launcher",
];

/// The keys a `[[profile.phantom]]` table may hold.
const PHANTOM_KEYS: &[&str] = &["var", "base_url_var", "upstream", "headers"];

/// One `[[profile.phantom]]`: which key, where its API is, and which headers carry it.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PhantomSpec {
    /// The variable (and store entry) holding the key, e.g. `MISTRAL_API_KEY`.
    pub var: String,
    /// The variable telling the client where the API is (default for ANTHROPIC_*/OPENAI_*).
    #[serde(default)]
    pub base_url_var: Option<String>,
    /// The real API's base URL (https://, or http:// on loopback only).
    #[serde(default)]
    pub upstream: Option<String>,
    /// Request headers that carry the key (default: x-api-key, authorization, api-key).
    #[serde(default)]
    pub headers: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    profile: Vec<Profile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Builtin,
    User,
    Project,
}

#[derive(Debug, Clone)]
pub struct Resolved {
    pub profile: Profile,
    /// Who owns the profile. A profile the user owns keeps `User`/`Builtin` when a project's
    /// file added restrictions to it: only what the owner wrote injects secrets.
    pub origin: Origin,
    pub file: Option<PathBuf>,
}

/// What may only make a profile stricter: the part of a profile a project's file may add to
/// one the user owns, and what a project's own profile inherits from the user's `default`.
#[derive(Debug, Clone, Default)]
struct Restrictions {
    drop: Vec<String>,
    deny_read: Vec<String>,
    sandbox: bool,
    guard: bool,
    mask: bool,
    net: Option<NetPolicy>,
}

impl Restrictions {
    /// The protections `p` turns on (an `Option<bool>` left unset turns nothing on).
    fn of(p: &Profile) -> Restrictions {
        Restrictions {
            drop: p.drop.clone(),
            deny_read: p.deny_read.clone().unwrap_or_default(),
            sandbox: p.sandbox == Some(true),
            guard: p.guard == Some(true),
            mask: p.mask == Some(true),
            net: p.net.clone(),
        }
    }

    fn merge(&mut self, other: Restrictions) {
        self.drop.extend(other.drop);
        self.deny_read.extend(other.deny_read);
        self.sandbox |= other.sandbox;
        self.guard |= other.guard;
        self.mask |= other.mask;
        self.net = stricter_net(self.net.take(), other.net);
    }

    fn apply(&self, p: &mut Profile) {
        for d in &self.drop {
            if !p.drop.contains(d) {
                p.drop.push(d.clone());
            }
        }
        if !self.deny_read.is_empty() {
            let denied = p.deny_read.get_or_insert_with(Vec::new);
            for d in &self.deny_read {
                if !denied.contains(d) {
                    denied.push(d.clone());
                }
            }
        }
        for (on, field) in [
            (self.sandbox, &mut p.sandbox),
            (self.guard, &mut p.guard),
            (self.mask, &mut p.mask),
        ] {
            if on {
                *field = Some(true);
            }
        }
        p.net = stricter_net(p.net.take(), self.net.clone());
    }
}

/// Whether the built-in `install` profile's patterns match: each is a literal or a literal
/// followed by `*` (a test in `setup::claude` keeps them so), compared in place, since building
/// `Patterns` of all of them was a tenth of `keyfence run`'s start-up.
fn is_install(command_line: &str) -> bool {
    INSTALL_MATCHES.iter().any(|p| match p.strip_suffix('*') {
        Some(head) => command_line.starts_with(head),
        None => command_line == *p,
    })
}

/// Whether the command line starts an agent of `AGENT_PROGRAMS`.
fn is_agent(command_line: &str) -> bool {
    let first = command_line.split(' ').next().unwrap_or_default();
    let name = first.rsplit('/').next().unwrap_or_default();
    AGENT_PROGRAMS.contains(&name)
}

fn stricter_net(a: Option<NetPolicy>, b: Option<NetPolicy>) -> Option<NetPolicy> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.stricter(&b)),
        (a, b) => a.or(b),
    }
}

#[derive(Debug, Default)]
pub struct Config {
    /// The user's profiles in file order; one named like a built-in starts from the built-in.
    user: Vec<Resolved>,
    /// What the project's file adds to profiles the user owns, by name.
    narrowing: BTreeMap<String, Restrictions>,
    /// The project's own profiles, refused settings left out.
    project: Vec<Resolved>,
    /// Settings refused and keys not understood ("FILE:LINE: what"), for the command layer to
    /// show; nothing below `command/` prints.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// The project's file does not parse: nothing in it can be trusted to mean what it says,
    /// so keyfence stops, and says how to run the one command without it.
    #[error(
        "{path}: {message}\nthis keyfence.toml came with the project, not from your own \
         configuration; keyfence will not guess what it meant\nhint: fix the file, or run this \
         one command without keyfence: `command {program} ...` skips the shell function"
    )]
    ProjectParse {
        path: PathBuf,
        message: String,
        /// The program about to run, for the hint (`npm` when unknown).
        program: String,
    },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: profile '{name}': bad match pattern '{pattern}': {message}")]
    Pattern {
        path: PathBuf,
        name: String,
        pattern: String,
        message: String,
    },
    #[error(
        "{at}: profile name {name:?} is not allowed\nhint: use letters, digits, '_', '-' and \
         '.', starting with a letter or digit (at most 64)"
    )]
    Name { at: String, name: String },
    #[error(
        "unknown profile '{0}'\nhint: define it in keyfence.toml or \
         ~/.config/keyfence/config.toml; built-in profiles are default, install, agent"
    )]
    Unknown(String),
}

impl PolicyError {
    /// Names the program about to run in a project-file hint.
    pub fn for_program(self, name: &str) -> PolicyError {
        match self {
            PolicyError::ProjectParse { path, message, .. } => PolicyError::ProjectParse {
                path,
                message,
                program: name.to_string(),
            },
            e => e,
        }
    }
}

/// A profile name is pasted into command lines (the Claude Code hook's rewrite) and file
/// names; keep it to characters no shell treats specially.
pub fn valid_name(name: &str) -> bool {
    name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

/// The project configuration: `keyfence.toml` in `dir` or the nearest parent that has one,
/// searching no higher than the repository's root or the home directory, whichever comes
/// first (only `dir` itself when it is in neither). A file higher up — `/tmp/keyfence.toml`,
/// written by anyone — is not the project's.
pub fn project_file(dir: &Path) -> Option<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    project_file_under(dir, home.as_deref())
}

fn project_file_under(dir: &Path, home: Option<&Path>) -> Option<PathBuf> {
    let bounded = home.is_some_and(|h| dir.starts_with(h)) || in_repository(dir);
    for d in dir.ancestors() {
        let candidate = d.join("keyfence.toml");
        if candidate.is_file() {
            return Some(candidate);
        }
        let repo_root = d.join(".git").symlink_metadata().is_ok();
        if repo_root || home == Some(d) || !bounded {
            return None;
        }
    }
    None
}

fn in_repository(dir: &Path) -> bool {
    dir.ancestors()
        .any(|d| d.join(".git").symlink_metadata().is_ok())
}

/// The user configuration file.
pub fn user_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("keyfence/config.toml"))
}

/// One profile as a file wrote it, with the line of each of its keys.
struct Written {
    profile: Profile,
    path: PathBuf,
    header: usize,
    lines: BTreeMap<String, usize>,
}

impl Written {
    /// `FILE:LINE` of `key`, or of the profile's table when the key is absent.
    fn at(&self, key: &str) -> String {
        let line = self.lines.get(key).copied().unwrap_or(self.header);
        format!("{}:{line}", self.path.display())
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Why a project's file must not be used, if it must not: like git's `safe.directory`, a file
/// someone else owns or can write is someone else's word.
fn untrusted(meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Some(format!("it belongs to uid {}, not to you", meta.uid()));
    }
    if meta.mode() & 0o002 != 0 {
        return Some("every user can write it".into());
    }
    if meta.mode() & 0o020 != 0 && meta.gid() != nix::unistd::getegid().as_raw() {
        return Some(format!("group {} can write it", meta.gid()));
    }
    None
}

/// The file's text, or None when it is absent (or, for a project's file, not to be trusted).
fn read_text(
    path: &Path,
    origin: Origin,
    warnings: &mut Vec<String>,
) -> Result<Option<String>, PolicyError> {
    use std::io::Read;
    let read_error = |source| PolicyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // A directory on the way cannot be searched (another user's home as HOME): the file
        // cannot be seen at all, which is the same as absent. A visible but unreadable file
        // is still an error below.
        Err(e)
            if e.kind() == std::io::ErrorKind::PermissionDenied
                && std::fs::symlink_metadata(path).is_err() =>
        {
            return Ok(None);
        }
        Err(e) => return Err(read_error(e)),
    };
    if origin == Origin::Project {
        // The open file's own metadata: the name may be swapped after a check by name.
        let meta = file.metadata().map_err(read_error)?;
        if let Some(why) = untrusted(&meta) {
            warnings.push(format!(
                "{}: ignored, because {why}\nhint: keyfence reads a project's keyfence.toml only \
                 when you (or root) own it and no one else can write it, as git does with \
                 safe.directory; `chown` it or `chmod go-w` it if you trust it",
                path.display()
            ));
            return Ok(None);
        }
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(read_error)?;
    Ok(Some(text))
}

fn parse_error(path: &Path, origin: Origin, text: &str, mut e: toml::de::Error) -> PolicyError {
    e.set_input(Some(text));
    let mut message = e.to_string().trim_end().to_string();
    // `[profile.npm]` reads naturally (cargo's `[profile.release]`), but profiles are a list.
    let at = e.span().and_then(|s| text.get(s)).unwrap_or_default();
    if at.starts_with("profile") && e.message().contains("expected a sequence") {
        message.push_str(
            "\nhint: each profile is a table of the `profile` list: write `[[profile]]` and then \
             `name = \"...\"`",
        );
    }
    // It quotes the line it stopped at and the value it could not take: a key pasted into the
    // file (`inject = ["sk-ant-..."]`) must not reach stderr or, through the hook, the model.
    let message = crate::detect::redact(message);
    let path = path.to_path_buf();
    match origin {
        Origin::Project => PolicyError::ProjectParse {
            path,
            message,
            program: "npm".into(),
        },
        _ => PolicyError::Parse { path, message },
    }
}

/// The closest known key to a misspelt one, for a hint.
fn did_you_mean(key: &str, known: &[&str]) -> String {
    known
        .iter()
        .map(|k| (strsim::jaro(key, k), k))
        .filter(|(score, _)| *score > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

/// Drops the keys of `table` that keyfence does not know, with a warning each.
fn drop_unknown_keys(
    table: &mut toml::de::DeTable<'_>,
    known: &[&str],
    what: &str,
    path: &Path,
    text: &str,
    warnings: &mut Vec<String>,
) {
    let lines: BTreeMap<String, usize> = table
        .iter()
        .map(|(k, _)| (k.get_ref().to_string(), line_of(text, k.span().start)))
        .collect();
    for (key, line) in lines {
        if known.contains(&key.as_str()) {
            continue;
        }
        table.remove(key.as_str());
        warnings.push(format!(
            "{}:{line}: unknown key `{key}` in {what}, ignored{} (written for a newer keyfence?)",
            path.display(),
            did_you_mean(&key, known)
        ));
    }
}

/// Reads the profiles of one file. In a project's file, unknown keys are warnings and profiles
/// with unsafe names are left out; in the user's, both are errors.
fn read(
    path: &Path,
    origin: Origin,
    warnings: &mut Vec<String>,
) -> Result<Vec<Written>, PolicyError> {
    use toml::de::{DeTable, DeValue};
    let Some(text) = read_text(path, origin, warnings)? else {
        return Ok(Vec::new());
    };
    let text = text.as_str();
    let project = origin == Origin::Project;
    let mut root = DeTable::parse(text).map_err(|e| parse_error(path, origin, text, e))?;
    if project {
        drop_unknown_keys(
            root.get_mut(),
            &["profile"],
            "the file",
            path,
            text,
            warnings,
        );
    }
    // Where each profile and each of its keys is written, in file order.
    let mut places: Vec<(usize, BTreeMap<String, usize>)> = Vec::new();
    if let Some(DeValue::Array(items)) = root.get_mut().get_mut("profile").map(|v| v.get_mut()) {
        for item in items.iter_mut() {
            let header = line_of(text, item.span().start);
            let DeValue::Table(table) = item.get_mut() else {
                continue;
            };
            if project {
                drop_unknown_keys(table, PROFILE_KEYS, "a profile", path, text, warnings);
                if let Some(DeValue::Array(phantoms)) =
                    table.get_mut("phantom").map(|v| v.get_mut())
                {
                    for p in phantoms.iter_mut() {
                        if let DeValue::Table(t) = p.get_mut() {
                            drop_unknown_keys(t, PHANTOM_KEYS, "a phantom", path, text, warnings);
                        }
                    }
                }
            }
            let lines = table
                .iter()
                .map(|(k, _)| (k.get_ref().to_string(), line_of(text, k.span().start)))
                .collect();
            places.push((header, lines));
        }
    }
    let file = ConfigFile::deserialize(toml::de::Deserializer::from(root))
        .map_err(|e| parse_error(path, origin, text, e))?;
    let mut out = Vec::new();
    for (profile, (header, lines)) in file.profile.into_iter().zip(places) {
        let w = Written {
            profile,
            path: path.to_path_buf(),
            header,
            lines,
        };
        if !valid_name(&w.profile.name) {
            let e = PolicyError::Name {
                at: w.at("name"),
                name: w.profile.name.clone(),
            };
            if project {
                warnings.push(format!("{e}; the profile is ignored"));
                continue;
            }
            return Err(e);
        }
        for pattern in &w.profile.matches {
            if let Err(e) = globset::Glob::new(pattern) {
                return Err(PolicyError::Pattern {
                    path: path.to_path_buf(),
                    name: w.profile.name.clone(),
                    pattern: pattern.clone(),
                    message: e.kind().to_string(),
                });
            }
        }
        out.push(w);
    }
    Ok(out)
}

/// Leaves out of a project's profile every setting that would turn a protection off, with a
/// warning each: a project's file may only turn protections on.
fn refuse_switching_off(w: &mut Written, warnings: &mut Vec<String>) {
    let mut off = Vec::new();
    for (key, value) in [
        ("mask", &mut w.profile.mask),
        ("sandbox", &mut w.profile.sandbox),
        ("guard", &mut w.profile.guard),
    ] {
        if *value == Some(false) {
            *value = None;
            off.push((key, format!("{key} = false")));
        }
    }
    if w.profile.net == Some(NetPolicy::Allow) {
        w.profile.net = None;
        off.push(("net", "net = \"allow\"".to_string()));
    }
    // `deny_read = []` is no entry, and adds nothing; a `!` entry would show what the user's
    // profile hides.
    if let Some(denied) = &mut w.profile.deny_read {
        for kept in denied.extract_if(.., |d| d.starts_with('!')) {
            off.push(("deny_read", format!("deny_read = [\"{kept}\"]")));
        }
    }
    for (key, setting) in off {
        warnings.push(format!(
            "{}: the project's profile '{}' sets `{setting}`, which turns a protection off; \
             ignored: a project's keyfence.toml may only turn protections on",
            w.at(key),
            w.profile.name
        ));
    }
}

/// What a project's file may add to a profile the user owns (see the module doc), with a
/// warning for each setting it may not make.
fn narrowing_of(mut w: Written, warnings: &mut Vec<String>) -> Restrictions {
    refuse_switching_off(&mut w, warnings);
    let p = &w.profile;
    let owner = if BUILTIN.contains(&p.name.as_str()) {
        "is built into keyfence"
    } else {
        "is yours (~/.config/keyfence/config.toml)"
    };
    for (key, set, why) in [
        (
            "match",
            !p.matches.is_empty(),
            "it would change which profile your commands get",
        ),
        (
            "allow",
            !p.allow.is_empty(),
            "it would keep secrets in the commands' environment",
        ),
        (
            "inject",
            !p.inject.is_empty(),
            "it would hand your secrets to commands the project chooses",
        ),
        (
            "phantom",
            !p.phantom.is_empty(),
            "it would hand your keys' stand-ins to commands the project chooses",
        ),
        (
            "launches",
            p.launches.is_some() || p.launcher.is_some(),
            "it would let a program the command starts keep its secrets",
        ),
    ] {
        if set {
            warnings.push(format!(
                "{}: the project may not set `{key}` for profile '{}', which {owner}: {why}; \
                 ignored\nhint: a project's keyfence.toml may add `drop`, `deny_read`, `sandbox = \
                 true`, `guard = true`, `mask = true` and a stricter `net` to such a profile, or \
                 define a profile of its own",
                w.at(key),
                p.name
            ));
        }
    }
    Restrictions::of(p)
}

/// A project's own profile, with the settings a project may not make left out.
fn project_profile_of(mut w: Written, warnings: &mut Vec<String>) -> Profile {
    refuse_switching_off(&mut w, warnings);
    if !w.profile.allow.is_empty() {
        warnings.push(format!(
            "{}: the project's profile '{}' may not `allow` variables (every variable that is \
             not a secret is kept anyway; a secret is not the project's to hand out); \
             ignored\nhint: to keep a variable for this profile, define it in \
             ~/.config/keyfence/config.toml",
            w.at("allow"),
            w.profile.name
        ));
        w.profile.allow.clear();
    }
    if w.profile.launches.take().is_some() | w.profile.launcher.take().is_some() {
        warnings.push(format!(
            "{}: the project's profile '{}' may not set `launches` or `launcher` (it would let a \
             program the command starts keep the command's secrets under guard); ignored\nhint: \
             to name an agent's launcher, set it in ~/.config/keyfence/config.toml",
            w.at("launches"),
            w.profile.name
        ));
    }
    w.profile
}

impl Config {
    /// The programs whose command lines some profile matches (the first word of each `match`
    /// pattern, built-in ones included), for `keyfence shell-init`.
    pub fn matched_programs(&self) -> Vec<String> {
        let mut out: Vec<String> = INSTALL_PROGRAMS
            .iter()
            .chain(AGENT_PROGRAMS)
            .map(|p| p.to_string())
            .collect();
        let words = self
            .user
            .iter()
            .chain(&self.project)
            .flat_map(|r| r.profile.matches.iter())
            .filter_map(|m| m.split(' ').next());
        for word in words {
            let plain = !word.is_empty()
                && word
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.+".contains(&c));
            if plain && !out.iter().any(|w| w == word) {
                out.push(word.to_string());
            }
        }
        out
    }

    pub fn load(project: Option<&Path>, user: Option<&Path>) -> Result<Config, PolicyError> {
        let mut c = Config::default();
        if let Some(path) = user {
            for w in read(path, Origin::User, &mut c.warnings)? {
                if c.user.iter().any(|r| r.profile.name == w.profile.name) {
                    continue;
                }
                let profile = match BUILTIN.contains(&w.profile.name.as_str()) {
                    true => over_builtin(w.profile),
                    false => w.profile,
                };
                c.user.push(Resolved {
                    profile,
                    origin: Origin::User,
                    file: Some(path.to_path_buf()),
                });
            }
        }
        if let Some(path) = project {
            for w in read(path, Origin::Project, &mut c.warnings)? {
                let name = w.profile.name.clone();
                if BUILTIN.contains(&name.as_str()) || c.user.iter().any(|r| r.profile.name == name)
                {
                    let added = narrowing_of(w, &mut c.warnings);
                    c.narrowing.entry(name).or_default().merge(added);
                } else if c.project.iter().any(|r| r.profile.name == name) {
                    c.warnings.push(format!(
                        "{}: a second profile named '{name}'; ignored",
                        w.at("name")
                    ));
                } else {
                    c.project.push(Resolved {
                        profile: project_profile_of(w, &mut c.warnings),
                        origin: Origin::Project,
                        file: Some(path.to_path_buf()),
                    });
                }
            }
        }
        // A warning quotes what the file says (an unknown key, a name); a key pasted there
        // must not reach stderr or, through the hook, the model.
        c.warnings = c.warnings.into_iter().map(crate::detect::redact).collect();
        Ok(c)
    }

    /// The profile for a command: the one named by `--profile`; else the first of the user's
    /// profiles whose `match` fits the command line; else the built-in `install` for an
    /// install, `agent` for an agent (`AGENT_PROGRAMS`); else the first of the project's profiles that matches; else `default`.
    pub fn select(&self, name: Option<&str>, command_line: &str) -> Result<Resolved, PolicyError> {
        // The patterns were checked when the file was loaded.
        let matches =
            |p: &Profile| Patterns::new(&p.matches).is_ok_and(|m| m.is_match(command_line));
        if let Some(n) = name {
            if let Some(r) = self.owned(n) {
                return Ok(r);
            }
            if let Some(r) = self.project.iter().find(|r| r.profile.name == n) {
                return Ok(self.on_default(r));
            }
            return Err(PolicyError::Unknown(n.to_string()));
        }
        if let Some(r) = self.user.iter().find(|r| matches(&r.profile)) {
            return Ok(self.narrowed(r.clone()));
        }
        if is_install(command_line) {
            return Ok(self.owned("install").unwrap_or_else(|| builtin("install")));
        }
        if is_agent(command_line) {
            return Ok(self.owned("agent").unwrap_or_else(|| builtin("agent")));
        }
        if let Some(r) = self.project.iter().find(|r| matches(&r.profile)) {
            return Ok(self.on_default(r));
        }
        Ok(self.owned("default").unwrap_or_else(|| builtin("default")))
    }

    /// A profile the user owns (theirs, or a built-in), with the project's restrictions added.
    fn owned(&self, name: &str) -> Option<Resolved> {
        let r = self
            .user
            .iter()
            .find(|r| r.profile.name == name)
            .cloned()
            .or_else(|| BUILTIN.contains(&name).then(|| builtin(name)))?;
        Some(self.narrowed(r))
    }

    fn narrowed(&self, mut r: Resolved) -> Resolved {
        if let Some(n) = self.narrowing.get(&r.profile.name) {
            n.apply(&mut r.profile);
        }
        r
    }

    /// A project's profile on top of what the command would get without it: the restrictions
    /// of the user's `default`.
    fn on_default(&self, r: &Resolved) -> Resolved {
        let mut out = r.clone();
        if let Some(d) = self.owned("default") {
            Restrictions::of(&d.profile).apply(&mut out.profile);
        }
        out
    }
}

/// A user's profile named like a built-in: what it leaves unset keeps the built-in's value, so
/// `[[profile]] name = "agent"` with an `inject` list still guards.
fn over_builtin(user: Profile) -> Profile {
    let base = builtin(&user.name).profile;
    Profile {
        sandbox: user.sandbox.or(base.sandbox),
        guard: user.guard.or(base.guard),
        mask: user.mask.or(base.mask),
        net: user.net.or(base.net),
        deny_read: user.deny_read.or(base.deny_read),
        ..user
    }
}

fn builtin(name: &str) -> Resolved {
    Resolved {
        profile: Profile {
            name: name.to_string(),
            // Installs run other people's code: keep it away from credential stores.
            sandbox: (name == "install").then_some(true),
            // Nor the project's own keys, which an install script has no use for.
            deny_read: (name == "install").then(|| {
                crate::run::deny_read::INSTALL_DEFAULT
                    .iter()
                    .map(|e| e.to_string())
                    .collect()
            }),
            // An agent gets its key; the commands it runs must not.
            guard: (name == "agent").then_some(true),
            ..Profile::default()
        },
        origin: Origin::Builtin,
        file: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A fake key of the right shape, from a fixed pseudo-random sequence.
    fn fake_anthropic_key() -> String {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let body: String = (0..93)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                alphabet[(x >> 58) as usize] as char
            })
            .collect();
        format!("sk-ant-api03-{body}AA")
    }

    fn config(text: &str) -> Result<Config, PolicyError> {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "keyfence.toml", text);
        Config::load(Some(&p), None)
    }

    /// A user's file and a project's file, in that order of trust.
    fn both(user: &str, project: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let u = write(dir.path(), "config.toml", user);
        let p = write(dir.path(), "keyfence.toml", project);
        Config::load(Some(&p), Some(&u)).unwrap()
    }

    #[test]
    fn a_launchers_agent_comes_from_the_table_or_the_users_profile_only() {
        let c = Config::default();
        let launch = |l: &str, p: &str| {
            Some(Launch {
                launcher: Some(l.to_string()),
                program: p.to_string(),
            })
        };
        let none = |_: &str| false;
        // Issue #18: codex and gemini are launchers; claude is the agent itself.
        for (line, launched) in [
            ("/usr/local/bin/codex exec hi", launch("node", "codex")),
            ("gemini -p hi", launch("node", "node")),
            ("claude -p hi", None),
        ] {
            let p = c.select(None, line).unwrap().profile;
            assert_eq!(p.name, "agent", "{line}");
            let program = line.split(' ').next().unwrap();
            assert_eq!(launched_agent(&p, program, none), launched);
        }
        // Told not to relaunch, Gemini CLI is the agent itself.
        let p = c.select(None, "gemini").unwrap().profile;
        assert_eq!(
            launched_agent(&p, "gemini", |v| v == "GEMINI_CLI_NO_RELAUNCH"),
            None
        );
        let both = both(
            "[[profile]]\nname = \"agent\"\nlaunches = \"\"\n\n[[profile]]\nname = \"mine\"\n\
             launches = \"my-agent-native\"\n",
            "[[profile]]\nname = \"agent\"\nlaunches = \"sh\"\n\n[[profile]]\nname = \"proj\"\n\
             guard = true\nlaunches = \"sh\"\nlauncher = \"sh\"\n",
        );
        let user_agent = both.select(Some("agent"), "codex").unwrap().profile;
        assert_eq!(
            launched_agent(&user_agent, "codex", none),
            None,
            "\"\" turns it off"
        );
        let mine = both.select(Some("mine"), "my-agent").unwrap().profile;
        assert_eq!(
            launched_agent(&mine, "my-agent", none),
            Some(Launch {
                launcher: None,
                program: "my-agent-native".into()
            })
        );
        // A project may not name a program that keeps the command's secrets.
        let proj = both.select(Some("proj"), "x").unwrap().profile;
        assert_eq!(launched_agent(&proj, "x", none), None);
        assert_eq!(
            both.warnings
                .iter()
                .filter(|w| w.contains("`launches`"))
                .count(),
            2,
            "{:?}",
            both.warnings
        );
    }

    #[test]
    fn install_programs_are_the_first_words_of_the_install_patterns() {
        let mut derived: Vec<&str> = INSTALL_MATCHES
            .iter()
            .filter_map(|m| m.split(' ').next())
            .collect();
        derived.sort_unstable();
        derived.dedup();
        let mut written = INSTALL_PROGRAMS.to_vec();
        written.sort_unstable();
        assert_eq!(derived, written);
    }

    #[test]
    fn selects_by_name_match_and_default() {
        let c = config(
            "[[profile]]\nname = \"publish\"\nmatch = [\"npm publish*\"]\ninject = [\"NPM_TOKEN\"]\n",
        )
        .unwrap();
        assert_eq!(
            c.select(None, "npm publish --tag next")
                .unwrap()
                .profile
                .name,
            "publish"
        );
        assert_eq!(c.select(None, "npm test").unwrap().profile.name, "default");
        assert_eq!(
            c.select(Some("install"), "x").unwrap().origin,
            Origin::Builtin
        );
        assert!(matches!(
            c.select(Some("nope"), "x"),
            Err(PolicyError::Unknown(_))
        ));
    }

    #[test]
    fn an_agent_runs_under_the_agent_profile_unless_the_user_says_otherwise() {
        let c = Config::default();
        for line in ["claude", "claude -p hi", "/usr/local/bin/claude --resume"] {
            assert_eq!(
                c.select(None, line).unwrap().profile.name,
                "agent",
                "{line}"
            );
        }
        assert_eq!(c.select(None, "claudette").unwrap().profile.name, "default");
        assert!(c.matched_programs().iter().any(|p| p == "claude"));
        // A project's profile cannot claim the agent: the built-in comes first.
        let c = config("[[profile]]\nname = \"mine\"\nmatch = [\"claude*\"]\n").unwrap();
        assert_eq!(c.select(None, "claude").unwrap().profile.name, "agent");
    }

    // A cloned repository's keyfence.toml redefined `agent` with guard off and `install` with
    // the sandbox off and a key allowed, and keyfence used them as written.
    #[test]
    fn a_project_cannot_weaken_a_built_in_profile() {
        let c = config(
            "[[profile]]\nname = \"agent\"\nguard = false\n\n[[profile]]\nname = \"install\"\n\
             sandbox = false\nmask = false\nallow = [\"OPENAI_API_KEY\"]\ninject = [\"NPM_TOKEN\"]\n\
             match = [\"make*\"]\nnet = \"allow\"\n",
        )
        .unwrap();
        let agent = c.select(Some("agent"), "claude").unwrap();
        assert_eq!(agent.profile.guard, Some(true));
        assert_eq!(agent.origin, Origin::Builtin);
        let install = c.select(None, "npm install").unwrap().profile;
        assert_eq!(install.name, "install");
        assert_eq!(install.sandbox, Some(true));
        assert_ne!(install.mask, Some(false));
        assert!(install.allow.is_empty() && install.inject.is_empty());
        assert!(install.net.is_none());
        // Its `match` does not pull other commands into the profile.
        assert_eq!(c.select(None, "make all").unwrap().profile.name, "default");
        let w = c.warnings.join("\n");
        for needle in [
            "keyfence.toml:3: the project's profile 'agent' sets `guard = false`",
            "keyfence.toml:7: the project's profile 'install' sets `sandbox = false`",
            "keyfence.toml:8: the project's profile 'install' sets `mask = false`",
            "keyfence.toml:9: the project may not set `allow` for profile 'install'",
            "keyfence.toml:10: the project may not set `inject`",
            "keyfence.toml:11: the project may not set `match`",
            "keyfence.toml:12: the project's profile 'install' sets `net = \"allow\"`",
        ] {
            assert!(w.contains(needle), "missing {needle:?} in:\n{w}");
        }
    }

    #[test]
    fn a_project_may_add_restrictions_to_a_profile_the_user_owns() {
        let c = both(
            "[[profile]]\nname = \"mine\"\nmatch = [\"npm test*\"]\nallow = [\"CI\"]\nnet = \"tcp:443,80\"\n",
            "[[profile]]\nname = \"install\"\nnet = \"none\"\ndrop = [\"CORP_*\"]\nguard = true\n\n\
             [[profile]]\nname = \"mine\"\nnet = \"tcp:443\"\nsandbox = true\n",
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let install = c.select(None, "npm ci").unwrap().profile;
        assert_eq!(install.net, Some(NetPolicy::None));
        assert_eq!(install.drop, ["CORP_*"]);
        assert_eq!((install.sandbox, install.guard), (Some(true), Some(true)));
        let mine = c.select(None, "npm test").unwrap();
        assert_eq!(mine.origin, Origin::User);
        assert_eq!(mine.profile.allow, ["CI"]);
        assert_eq!(mine.profile.net, Some(NetPolicy::TcpPorts(vec![443])));
        assert_eq!(mine.profile.sandbox, Some(true));
    }

    // A cloned repository's keyfence.toml showed the install profile's hidden `.env` again
    // with a `!` entry, or emptied the list.
    #[test]
    fn a_project_may_hide_more_but_never_show_what_is_hidden() {
        let c = both(
            "[[profile]]\nname = \"mine\"\nmatch = [\"make*\"]\ndeny_read = [\"~/clients\"]\n",
            "[[profile]]\nname = \"install\"\ndeny_read = [\"!.env\", \"secrets\"]\n\n\
             [[profile]]\nname = \"mine\"\ndeny_read = []\n\n\
             [[profile]]\nname = \"proj\"\nmatch = [\"cargo *\"]\ndeny_read = [\"!x\", \"y\"]\n",
        );
        let install = c.select(None, "npm ci").unwrap().profile;
        let mut expected: Vec<String> = crate::run::deny_read::INSTALL_DEFAULT
            .iter()
            .map(|e| e.to_string())
            .collect();
        expected.push("secrets".into());
        assert_eq!(install.deny_read.as_ref(), Some(&expected));
        let mine = c.select(None, "make").unwrap().profile;
        assert_eq!(mine.deny_read, Some(vec!["~/clients".to_string()]));
        let proj = c.select(None, "cargo build").unwrap().profile;
        assert_eq!(proj.deny_read, Some(vec!["y".to_string()]));
        let w = c.warnings.join("\n");
        for needle in [
            "keyfence.toml:3: the project's profile 'install' sets `deny_read = [\"!.env\"]`",
            "keyfence.toml:12: the project's profile 'proj' sets `deny_read = [\"!x\"]`",
        ] {
            assert!(w.contains(needle), "missing {needle:?} in:\n{w}");
        }
    }

    #[test]
    fn the_users_install_profile_may_hide_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let u = write(
            dir.path(),
            "config.toml",
            "[[profile]]\nname = \"install\"\ndeny_read = []\n",
        );
        let c = Config::load(None, Some(&u)).unwrap();
        let install = c.select(None, "npm install").unwrap().profile;
        assert_eq!(install.deny_read, Some(vec![]));
        assert_eq!(install.sandbox, Some(true));
        let default = Config::default()
            .select(None, "npm install")
            .unwrap()
            .profile;
        assert!(
            default
                .deny_read
                .is_some_and(|d| d.contains(&"**/.env".to_string()))
        );
    }

    #[test]
    fn a_project_profile_never_takes_a_command_line_the_user_or_a_built_in_matches() {
        let c = both(
            "[[profile]]\nname = \"mine\"\nmatch = [\"npm test*\"]\n",
            "[[profile]]\nname = \"proj\"\nmatch = [\"npm *\", \"npm\"]\n",
        );
        assert_eq!(c.select(None, "npm test").unwrap().profile.name, "mine");
        assert_eq!(
            c.select(None, "npm install").unwrap().profile.name,
            "install"
        );
        let proj = c.select(None, "npm run build").unwrap();
        assert_eq!(
            (proj.profile.name.as_str(), proj.origin),
            ("proj", Origin::Project)
        );
    }

    #[test]
    fn a_project_profile_starts_from_the_users_default_restrictions() {
        let c = both(
            "[[profile]]\nname = \"default\"\ndrop = [\"CORP_*\"]\nsandbox = true\nallow = [\"GH_TOKEN\"]\n",
            "[[profile]]\nname = \"proj\"\nmatch = [\"make*\"]\nallow = [\"OPENAI_API_KEY\"]\ndrop = [\"X\"]\n",
        );
        let p = c.select(None, "make").unwrap().profile;
        assert_eq!(p.name, "proj");
        assert_eq!(p.sandbox, Some(true));
        assert!(p.drop.contains(&"CORP_*".to_string()) && p.drop.contains(&"X".to_string()));
        assert!(p.allow.is_empty(), "{:?}", p.allow);
        assert!(c.warnings.iter().any(|w| w.contains("may not `allow`")));
    }

    #[test]
    fn the_users_own_profile_named_like_a_built_in_keeps_what_it_leaves_unset() {
        let c = both(
            "[[profile]]\nname = \"agent\"\ninject = [\"ANTHROPIC_API_KEY\"]\n\n\
             [[profile]]\nname = \"install\"\nsandbox = false\nmatch = [\"make*\"]\n",
            "",
        );
        let agent = c.select(Some("agent"), "x").unwrap();
        assert_eq!(agent.profile.guard, Some(true));
        assert_eq!(agent.origin, Origin::User);
        // The user's word: their install runs unsandboxed, and the built-in patterns still
        // lead to it.
        assert_eq!(
            c.select(None, "npm install").unwrap().profile.sandbox,
            Some(false)
        );
        assert_eq!(c.select(None, "make").unwrap().profile.name, "install");
    }

    #[test]
    fn unknown_keys_warn_in_a_project_file_and_fail_in_the_users() {
        let c = config(
            "ver = 2\n[[profile]]\nname = \"a\"\n\ninjekt = [\"X\"]\n[[profile.phantom]]\n\
             var = \"K\"\nupstrem = \"x\"\n",
        )
        .unwrap();
        let w = c.warnings.join("\n");
        assert!(w.contains("keyfence.toml:5: unknown key `injekt`"), "{w}");
        assert!(w.contains("did you mean `inject`?"), "{w}");
        assert!(w.contains("keyfence.toml:8: unknown key `upstrem`"), "{w}");
        assert!(w.contains("did you mean `upstream`?"), "{w}");
        assert!(w.contains("keyfence.toml:1: unknown key `ver`"), "{w}");
        assert_eq!(c.select(Some("a"), "x").unwrap().profile.name, "a");

        let dir = tempfile::tempdir().unwrap();
        let u = write(
            dir.path(),
            "config.toml",
            "[[profile]]\nname = \"a\"\n\ninjekt = [\"X\"]\n",
        );
        let err = Config::load(None, Some(&u)).unwrap_err().to_string();
        assert!(
            err.contains("config.toml") && err.contains("line 4"),
            "{err}"
        );
        assert!(err.contains("injekt"), "{err}");
        let u = write(
            dir.path(),
            "config.toml",
            "[[profile]]\nname = \"a\"\nmask = \"yes\"\n",
        );
        let err = Config::load(None, Some(&u)).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn a_malformed_project_file_is_an_error_that_says_how_to_bypass() {
        let err = config("[[profile]\nname = \"a\"\n")
            .unwrap_err()
            .for_program("pnpm")
            .to_string();
        assert!(
            err.contains("keyfence.toml") && err.contains("line 1"),
            "{err}"
        );
        assert!(err.contains("came with the project"), "{err}");
        assert!(err.contains("`command pnpm ...`"), "{err}");
        // A bad value is as malformed as bad syntax.
        let err = config("[[profile]]\nname = \"a\"\nnet = \"some\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 3") && err.contains("expected allow, none"),
            "{err}"
        );
    }

    // A project profile named `x; touch /tmp/pwned #` was pasted into the hook's shell command.
    #[test]
    fn profile_names_are_safe_words() {
        for ok in ["publish", "npm-ci", "a_b.c", "X1"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-x",
            ".x",
            "x; touch /tmp/pwned #",
            "a b",
            "a'b",
            "$(id)",
            "é",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
        let c =
            config("[[profile]]\nname = \"x; touch /tmp/pwned #\"\nmatch = [\"make*\"]\n").unwrap();
        assert_eq!(c.select(None, "make").unwrap().profile.name, "default");
        assert!(
            c.warnings[0].contains("keyfence.toml:2: profile name"),
            "{:?}",
            c.warnings
        );
        let dir = tempfile::tempdir().unwrap();
        let u = write(dir.path(), "config.toml", "[[profile]]\nname = \"a b\"\n");
        assert!(matches!(
            Config::load(None, Some(&u)),
            Err(PolicyError::Name { .. })
        ));
    }

    #[test]
    fn a_parse_error_does_not_quote_a_pasted_key() {
        let key = fake_anthropic_key();
        let err = config(&format!("[[profile]]\nname = \"a\"\ninject = [\"{key}\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3") || err.contains("line 4"), "{err}");
        assert!(!err.contains(&key[..30]), "{err}");
        let err = config(&format!("[[profile]]\nname = \"a\"\nmask = \"{key}\"\n"))
            .unwrap_err()
            .to_string();
        assert!(!err.contains(&key[..30]), "{err}");
    }

    #[test]
    fn a_warning_does_not_quote_a_pasted_key() {
        let key = fake_anthropic_key();
        let c = config(&format!("[[profile]]\nname = \"a\"\n{key} = 1\n")).unwrap();
        let w = c.warnings.join("\n");
        assert!(w.contains("keyfence.toml:3: unknown key"), "{w}");
        assert!(!w.contains(&key[..30]), "{w}");
    }

    #[test]
    fn a_profile_written_as_a_single_table_gets_a_hint() {
        let err = config("[profile.npm]\nmatch = [\"npm *\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1"), "{err}");
        assert!(err.contains("[[profile]]"), "{err}");
        // Other type errors get no such hint.
        let err = config("[[profile]]\nname = 3\n").unwrap_err().to_string();
        assert!(!err.contains("[[profile]]"), "{err}");
    }

    #[test]
    fn the_project_file_is_searched_up_to_the_repository_or_home_only() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().canonicalize().unwrap();
        let home = top.join("home");
        let deep = |p: &Path| {
            std::fs::create_dir_all(p).unwrap();
            p.to_path_buf()
        };
        // Above a directory that is neither in a repository nor under the home: not read.
        write(&top, "keyfence.toml", "");
        let loose = deep(&top.join("loose/sub"));
        assert_eq!(project_file_under(&loose, Some(&home)), None);
        write(&loose, "keyfence.toml", "");
        assert_eq!(
            project_file_under(&loose, Some(&home)),
            Some(loose.join("keyfence.toml"))
        );
        // In a repository: up to its root, not above.
        let repo = deep(&top.join("repo"));
        deep(&repo.join(".git"));
        let web = deep(&repo.join("web/src"));
        assert_eq!(project_file_under(&web, Some(&home)), None);
        write(&repo, "keyfence.toml", "");
        assert_eq!(
            project_file_under(&web, Some(&home)),
            Some(repo.join("keyfence.toml"))
        );
        // Under the home: up to it.
        let notes = deep(&home.join("notes/x"));
        assert_eq!(project_file_under(&notes, Some(&home)), None);
        write(&home, "keyfence.toml", "");
        assert_eq!(
            project_file_under(&notes, Some(&home)),
            Some(home.join("keyfence.toml"))
        );
    }

    #[test]
    fn a_project_file_others_can_write_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "keyfence.toml",
            "[[profile]]\nname = \"p\"\nmatch = [\"make*\"]\n",
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        let c = Config::load(Some(&p), None).unwrap();
        assert_eq!(c.select(None, "make").unwrap().profile.name, "default");
        assert!(
            c.warnings[0].contains("every user can write it"),
            "{:?}",
            c.warnings
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = Config::load(Some(&p), None).unwrap();
        assert_eq!(c.select(None, "make").unwrap().profile.name, "p");
    }
}
