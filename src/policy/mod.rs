//! Profiles: which secrets a command gets and under which rules (DESIGN.md §3). Read from the
//! project's `keyfence.toml` (committed, shared by the team) and the user's
//! `$XDG_CONFIG_HOME/keyfence/config.toml`; a command picks one with `--profile` or by matching
//! its command line. Unknown keys and bad values are errors naming the file and line.
//!
//! A project file comes with the code it configures, so it is not trusted to hand out the
//! user's secrets: `inject` in a project profile only reaches store entries that list that
//! profile among their allowed profiles (`keyfence secret set NAME --profile P`).

pub mod patterns;

use patterns::Patterns;
use serde::Deserialize;
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
    /// (`openbao://...`, `openbao+lease://...`, `openbao+token://...`, `cmd:...`; see `provider`).
    #[serde(default)]
    pub inject: Vec<String>,
    /// Mask secret values in the command's output (default true).
    #[serde(default)]
    pub mask: Option<bool>,
    /// Run in the Landlock sandbox (default false; true for the built-in `install`).
    #[serde(default)]
    pub sandbox: Option<bool>,
    /// Guard the command's descendants: they never receive its secrets nor read them from it
    /// (default false; true for the built-in `agent`).
    #[serde(default)]
    pub guard: Option<bool>,
    /// Keys given to the command as stand-ins, swapped for the real key by a loopback proxy.
    #[serde(default)]
    pub phantom: Vec<PhantomSpec>,
}

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
    pub origin: Origin,
    pub file: Option<PathBuf>,
}

#[derive(Debug, Default)]
pub struct Config {
    /// In precedence order: project profiles first, then the user's.
    profiles: Vec<Resolved>,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
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
        "unknown profile '{0}'\nhint: define it in keyfence.toml or \
         ~/.config/keyfence/config.toml; built-in profiles are default, install, agent"
    )]
    Unknown(String),
}

/// The project configuration: `keyfence.toml` in `dir` or the nearest parent that has one.
pub fn project_file(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .map(|d| d.join("keyfence.toml"))
        .find(|p| p.is_file())
}

/// The user configuration file.
pub fn user_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("keyfence/config.toml"))
}

fn load_file(path: &Path, origin: Origin) -> Result<Vec<Resolved>, PolicyError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        // A directory on the way cannot be searched (another user's home as HOME): the file
        // cannot be seen at all, which is the same as absent. A visible but unreadable file
        // is still an error below.
        Err(e)
            if e.kind() == std::io::ErrorKind::PermissionDenied
                && std::fs::symlink_metadata(path).is_err() =>
        {
            return Ok(Vec::new());
        }
        Err(source) => {
            return Err(PolicyError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    // toml's errors carry the line, the column and the offending text.
    let file: ConfigFile = toml::from_str(&text).map_err(|e| {
        let mut message = e.to_string().trim_end().to_string();
        // `[profile.npm]` reads naturally (cargo's `[profile.release]`), but profiles are a list.
        let at = e.span().and_then(|s| text.get(s)).unwrap_or_default();
        if at.starts_with("profile") && e.message().contains("expected a sequence") {
            message.push_str(
                "\nhint: each profile is a table of the `profile` list: write `[[profile]]` \
                 and then `name = \"...\"`",
            );
        }
        PolicyError::Parse {
            path: path.to_path_buf(),
            message,
        }
    })?;
    for p in &file.profile {
        for pattern in &p.matches {
            if let Err(e) = globset::Glob::new(pattern) {
                return Err(PolicyError::Pattern {
                    path: path.to_path_buf(),
                    name: p.name.clone(),
                    pattern: pattern.clone(),
                    message: e.kind().to_string(),
                });
            }
        }
    }
    Ok(file
        .profile
        .into_iter()
        .map(|profile| Resolved {
            profile,
            origin,
            file: Some(path.to_path_buf()),
        })
        .collect())
}

impl Config {
    /// The programs whose command lines some profile matches (the first word of each `match`
    /// pattern, built-in ones included), for `keyfence shell-init`.
    pub fn matched_programs(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let patterns = self
            .profiles
            .iter()
            .flat_map(|r| r.profile.matches.iter().map(String::as_str))
            .chain(INSTALL_MATCHES.iter().copied());
        for m in patterns {
            let word = m.split(' ').next().unwrap_or("");
            let plain = !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c));
            if plain && !out.iter().any(|w| w == word) {
                out.push(word.to_string());
            }
        }
        out
    }

    pub fn load(project: Option<&Path>, user: Option<&Path>) -> Result<Config, PolicyError> {
        let mut profiles = Vec::new();
        if let Some(p) = project {
            profiles.extend(load_file(p, Origin::Project)?);
        }
        if let Some(u) = user {
            profiles.extend(load_file(u, Origin::User)?);
        }
        Ok(Config { profiles })
    }

    /// The profile for a command: the one named by `--profile`, else the first whose `match`
    /// fits the command line, else `default`.
    pub fn select(&self, name: Option<&str>, command_line: &str) -> Result<Resolved, PolicyError> {
        if let Some(n) = name {
            if let Some(r) = self.profiles.iter().find(|r| r.profile.name == n) {
                return Ok(r.clone());
            }
            if BUILTIN.contains(&n) {
                return Ok(builtin(n));
            }
            return Err(PolicyError::Unknown(n.to_string()));
        }
        // The patterns were checked when the file was loaded.
        let matches =
            |patterns: &[String]| Patterns::new(patterns).is_ok_and(|p| p.is_match(command_line));
        for r in &self.profiles {
            if matches(&r.profile.matches) {
                return Ok(r.clone());
            }
        }
        let install = Patterns::new(INSTALL_MATCHES).is_ok_and(|p| p.is_match(command_line));
        if install && !self.profiles.iter().any(|r| r.profile.name == "install") {
            return Ok(builtin("install"));
        }
        Ok(self
            .profiles
            .iter()
            .find(|r| r.profile.name == "default")
            .cloned()
            .unwrap_or_else(|| builtin("default")))
    }
}

fn builtin(name: &str) -> Resolved {
    Resolved {
        profile: Profile {
            name: name.to_string(),
            // Installs run other people's code: keep it away from credential stores.
            sandbox: (name == "install").then_some(true),
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

    fn config(text: &str) -> Result<Config, PolicyError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keyfence.toml");
        std::fs::write(&p, text).unwrap();
        Config::load(Some(&p), None)
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
    fn unknown_keys_name_file_and_line() {
        let err = config("[[profile]]\nname = \"a\"\n\ninjekt = [\"X\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("keyfence.toml"), "{err}");
        assert!(err.contains("line 4"), "{err}");
        assert!(err.contains("injekt"), "{err}");
        let err = config("[[profile]]\nname = \"a\"\nmask = \"yes\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
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
        assert!(!err.contains("hint"), "{err}");
    }
}
