//! `run --sandbox`: a Landlock domain that keeps a command away from credential stores and lets
//! it write only where the profile says (DESIGN.md §1, P3).
//!
//! Landlock only allows; it cannot say "everything except ~/.aws". So the read rules are
//! computed: walking from `/` towards each denied path, every sibling off that path is allowed
//! whole, and the directories on the path get only `ReadDir` (their listings stay visible, their
//! files do not). Limits, said plainly: a file created later directly inside such a directory
//! (say a new file in `~`) is not readable inside the sandbox, and names under a denied
//! directory can still be listed. Keyfence applies the domain to itself just before it starts
//! the command, so the command and everything it starts inherit it and no `unsafe` `pre_exec`
//! is needed; the supervisor needs no file access afterwards.

use landlock::{
    ABI, Access, AccessFs, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The newest ABI this code asks for; older kernels get the best they offer.
const ABI_WANTED: ABI = ABI::V6;

#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Paths the command may not read (files or whole directories).
    pub deny_read: Vec<PathBuf>,
    /// Paths the command may write beneath.
    pub writable: Vec<PathBuf>,
    /// Paths that hold code run later outside the sandbox (`.git`, `PATH` directories, npx's
    /// cache): readable, never writable. Outside the writable roots Landlock alone keeps them
    /// so; beneath one, a read-only bind mount does (`mounts`).
    pub read_only: Vec<PathBuf>,
    /// Unix sockets of agents that act for the user (ssh-agent, gpg-agent), hidden under
    /// `/dev/null`: Landlock (ABI 7) does not stop a connect to a socket path, even in a denied
    /// directory.
    pub hidden: Vec<PathBuf>,
}

/// Credential stores under a home directory denied by default beyond the files the audit
/// sources read for keys (`audit::credfile`, `audit::shell`, `audit::history`): whole
/// directories of keys and cloud CLIs, and keyfence's own store and key file.
pub const DENIED_IN_HOME: &[&str] = &[
    ".aws",
    ".ssh",
    ".gnupg",
    ".kube",
    ".azure",
    ".config/gcloud",
    ".config/gh",
    ".config/hub",
    ".cargo/credentials",
    ".vault-token",
    ".local/share/keyfence",
    ".local/state/keyfence",
];

/// Package managers' download caches under a home directory: where an install may write
/// besides the project and temp. Only the caches: not the directories beside them whose
/// contents run later (`~/.bun/bin`, `~/.cargo/registry/src`, pnpm's global bin directory).
/// Keyed by the program that uses them: a known package manager may write its own only (an
/// npm postinstall cannot poison pip's wheel cache), and gets it created if missing (a fresh
/// home); any other command may write them all. The JavaScript ones include node-gyp's, where
/// native addons' builds fetch headers.
pub const CACHES_IN_HOME: &[(&str, &[&str])] = &[
    ("npm", &[".npm", ".cache/node-gyp"]),
    ("npx", &[".npm", ".cache/node-gyp"]),
    (
        "pnpm",
        &[".cache/pnpm", ".local/share/pnpm/store", ".cache/node-gyp"],
    ),
    (
        "yarn",
        &[".cache/yarn", ".yarn/berry/cache", ".cache/node-gyp"],
    ),
    ("bun", &[".bun/install/cache", ".cache/node-gyp"]),
    ("bunx", &[".bun/install/cache", ".cache/node-gyp"]),
    ("pip", &[".cache/pip"]),
    ("pip3", &[".cache/pip"]),
    ("uv", &[".cache/uv"]),
    ("uvx", &[".cache/uv"]),
    (
        "cargo",
        &[
            ".cargo/registry/cache",
            ".cargo/registry/index",
            ".cargo/git/db",
        ],
    ),
];

/// npx's installs, run again by a later `npx NAME` without a download: read-only unless the
/// command is npx itself (`npm exec`, `npm x`).
const NPX_CACHE: &str = ".npm/_npx";

/// Variables that lead to an agent or session service which signs, authenticates or runs
/// commands for the user, outside the sandbox. Dropped from a sandboxed command's environment,
/// and their sockets hidden (`agent_sockets`), unless allowed by name.
pub const AGENT_VARS: &[&str] = &[
    "SSH_AUTH_SOCK",
    "GPG_AGENT_INFO",
    "DBUS_SESSION_BUS_ADDRESS",
    "TMUX",
];

/// What the default policy depends on besides the home directory.
#[derive(Debug)]
pub struct Request<'a> {
    pub home: &'a Path,
    /// The current directory: the project, writable.
    pub project: &'a Path,
    /// keyfence's own store and key directories.
    pub store_dirs: &'a [PathBuf],
    /// The command line, for a global install's prefix and the package manager's cache.
    pub command: &'a [std::ffi::OsString],
    /// Variables kept by `--allow` or the profile (an agent variable here keeps its socket).
    pub allow: &'a [String],
    /// `--allow-write`: made writable even where the default keeps them read-only.
    pub allow_write: &'a [PathBuf],
}

impl Policy {
    /// The default policy for a command run in `project` by a user whose home is `home`.
    pub fn default_for(home: &Path, project: &Path, store_dirs: &[PathBuf]) -> Policy {
        Policy::for_request(&Request {
            home,
            project,
            store_dirs,
            command: &[],
            allow: &[],
            allow_write: &[],
        })
    }

    /// The policy for `r`, reading the environment (`PATH`, `HISTFILE`, `TMPDIR`, the agents'
    /// variables, package managers' prefixes).
    pub fn for_request(r: &Request) -> Policy {
        let home = r.home;
        let var = |n: &str| std::env::var_os(n).filter(|v| !v.is_empty());
        let deny_read = credential_paths(home, r.store_dirs);

        let managers = package_managers(r.command);
        let mut writable = vec![
            r.project.to_path_buf(),
            PathBuf::from("/tmp"),
            PathBuf::from("/var/tmp"),
            PathBuf::from("/dev"),
        ];
        writable.extend(var("TMPDIR").map(PathBuf::from));
        writable.extend(cache_dirs(
            home,
            CACHES_IN_HOME
                .iter()
                .filter(|(p, _)| managers.is_empty() || managers.contains(p))
                .flat_map(|(_, d)| d.iter()),
        ));
        // npm's cache where the user moved it.
        writable.extend(
            var("npm_config_cache")
                .or_else(|| var("NPM_CONFIG_CACHE"))
                .map(PathBuf::from),
        );
        let global = global_prefixes(home, r.command);
        writable.extend(global.iter().cloned());
        writable.extend(r.allow_write.iter().cloned());
        writable.sort();
        writable.dedup();

        let mut read_only = git_dirs(r.project);
        // A PATH directory inside the project stays writable: the project's files are already
        // code the user runs (package.json scripts, node_modules/.bin), so it adds nothing.
        if let Some(path) = var("PATH") {
            read_only.extend(
                std::env::split_paths(&path)
                    .filter(|d| d.is_absolute() && !normal(d).starts_with(normal(r.project))),
            );
        }
        let words = words(r.command);
        let npx = managers.contains(&"npx")
            || (managers.contains(&"npm") && words.iter().any(|w| w == "exec" || w == "x"));
        if !npx {
            read_only.push(home.join(NPX_CACHE));
        }
        // What the user asked for wins: a global install's prefix, and --allow-write.
        let granted: Vec<PathBuf> = global
            .iter()
            .chain(r.allow_write)
            .map(|p| normal(p))
            .collect();
        read_only.retain(|p| !granted.iter().any(|g| normal(p).starts_with(g)));
        read_only.sort();
        read_only.dedup();

        let allowed = |v: &str| r.allow.iter().any(|a| a == v);
        let hidden = agent_sockets(home, &allowed);
        Policy {
            deny_read,
            writable,
            read_only,
            hidden,
        }
    }

    /// The caches to create before the sandbox starts, so that the first install in a fresh
    /// home works (the home itself is not writable inside).
    pub fn caches_to_create(home: &Path, command: &[std::ffi::OsString]) -> Vec<PathBuf> {
        let managers = package_managers(command);
        let mut dirs = cache_dirs(
            home,
            CACHES_IN_HOME
                .iter()
                .filter(|(p, _)| managers.contains(p))
                .flat_map(|(_, dirs)| dirs.iter()),
        );
        let npm = managers.contains(&"npm") || managers.contains(&"npx");
        if npm || home.join(".npm").is_dir() {
            // So the read-only mount over it has something to cover.
            dirs.push(home.join(NPX_CACHE));
        }
        dirs
    }

    /// A global install's prefix directories, to create before the sandbox starts if missing
    /// (a rule needs an existing directory); where this user cannot, the package manager fails
    /// as it would without keyfence.
    pub fn prefixes_to_create(home: &Path, command: &[std::ffi::OsString]) -> Vec<PathBuf> {
        global_prefixes(home, command)
    }
}

/// Cache directories relative to the home, `.cache/...` under `$XDG_CACHE_HOME` when set.
fn cache_dirs<'a>(home: &Path, rel: impl Iterator<Item = &'a &'a str>) -> Vec<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    rel.map(|r| match (r.strip_prefix(".cache/"), &xdg) {
        (Some(rest), Some(x)) => x.join(rest),
        _ => home.join(r),
    })
    .collect()
}

/// The package managers a command runs, by their `CACHES_IN_HOME` names: its program, or,
/// for another program (a shell, `env`, `time`: the Claude Code hook runs `bash -c
/// 'COMMAND'`), every known one named among its words. Empty: none known, so any.
fn package_managers(command: &[std::ffi::OsString]) -> Vec<&'static str> {
    let known = |w: &str| CACHES_IN_HOME.iter().map(|(p, _)| *p).find(|p| *p == w);
    if let Some(p) = known(&program_name(command)) {
        return vec![p];
    }
    let mut found: Vec<&'static str> = words(command)
        .iter()
        .filter_map(|w| known(Path::new(w).file_name()?.to_str()?))
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// The command's words, its arguments split where a shell would separate them too (a script
/// handed to `sh -c` is one argument).
fn words(command: &[std::ffi::OsString]) -> Vec<String> {
    command
        .iter()
        .flat_map(|a| {
            a.to_string_lossy()
                .split(|c: char| !(c.is_alphanumeric() || "._-/".contains(c)))
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The command's program, without its directory: what picks the package manager's cache.
fn program_name(command: &[std::ffi::OsString]) -> String {
    command
        .first()
        .and_then(|c| Path::new(c).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Where a global install the user asked for writes: `npm install -g` (npm's prefix, from
/// `NPM_CONFIG_PREFIX`, else `prefix=` in `~/.npmrc`, else the directory above node's),
/// `cargo install` (`CARGO_HOME`, `CARGO_INSTALL_ROOT`), `pip install --user`
/// (`PYTHONUSERBASE`, else `~/.local`). A project install gets none of these.
fn global_prefixes(home: &Path, command: &[std::ffi::OsString]) -> Vec<PathBuf> {
    let args: Vec<String> = command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let var = |n: &str| {
        std::env::var_os(n)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let has = |flags: &[&str]| args.iter().skip(1).any(|a| flags.contains(&a.as_str()));
    let installs = |verbs: &[&str]| {
        args.iter()
            .skip(1)
            .find(|a| !a.starts_with('-'))
            .is_some_and(|v| verbs.contains(&v.as_str()))
    };
    match program_name(command).as_str() {
        "npm"
            if has(&["-g", "--global", "--location=global"])
                && installs(&[
                    "install",
                    "i",
                    "add",
                    "ci",
                    "update",
                    "up",
                    "uninstall",
                    "rm",
                ]) =>
        {
            let prefix = var("NPM_CONFIG_PREFIX")
                .or_else(|| var("npm_config_prefix"))
                .or_else(|| npmrc_prefix(&home.join(".npmrc")))
                .or_else(|| {
                    // npm's default: the directory above the one node is in.
                    let node = std::env::split_paths(&std::env::var_os("PATH")?)
                        .map(|d| d.join("node"))
                        .find(|n| n.is_file())?;
                    Some(normal(&node).parent()?.parent()?.to_path_buf())
                });
            prefix
                .map(|p| vec![p.join("lib/node_modules"), p.join("bin")])
                .unwrap_or_default()
        }
        "cargo" if installs(&["install", "uninstall"]) => {
            let mut dirs = vec![var("CARGO_HOME").unwrap_or_else(|| home.join(".cargo"))];
            dirs.extend(var("CARGO_INSTALL_ROOT"));
            dirs
        }
        "pip" | "pip3" if installs(&["install", "uninstall"]) && has(&["--user"]) => {
            vec![var("PYTHONUSERBASE").unwrap_or_else(|| home.join(".local"))]
        }
        _ => Vec::new(),
    }
}

/// `prefix=` in an npmrc (read before the sandbox, which denies the file: it holds tokens).
fn npmrc_prefix(npmrc: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(npmrc).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "prefix").then(|| PathBuf::from(v.trim()))
    })
}

/// The nearest repository's `.git` (directory, or the file a worktree or submodule has) and,
/// for a `.git` file, the git directory and common directory it leads to: the config, hooks
/// and `info/` git reads and runs from on the user's next git command.
pub fn git_dirs(project: &Path) -> Vec<PathBuf> {
    let Some(dotgit) = project
        .ancestors()
        .map(|d| d.join(".git"))
        .find(|g| std::fs::symlink_metadata(g).is_ok())
    else {
        return Vec::new();
    };
    let mut out = vec![dotgit.clone()];
    let base = dotgit.parent().unwrap_or(project).to_path_buf();
    let gitdir = match std::fs::read_to_string(&dotgit) {
        Ok(text) => match text.trim().strip_prefix("gitdir:") {
            Some(p) => base.join(p.trim()),
            None => return out,
        },
        Err(_) => dotgit,
    };
    if let Ok(common) = std::fs::read_to_string(gitdir.join("commondir")) {
        out.push(gitdir.join(common.trim()));
    }
    if !out.contains(&gitdir) {
        out.push(gitdir);
    }
    out
}

/// The sockets present now of agents and session services that act for the user, by the
/// variable that allows them: ssh-agent's (`SSH_AUTH_SOCK`, `/tmp/ssh-*/agent.*`,
/// `$XDG_RUNTIME_DIR/ssh-agent.socket`, gnome-keyring's and gcr's); gpg-agent's
/// (`GPG_AGENT_INFO`: every socket in `$GNUPGHOME` or `~/.gnupg` and `$XDG_RUNTIME_DIR/gnupg`,
/// which also serve ssh); the session's (`DBUS_SESSION_BUS_ADDRESS`: the bus, through which
/// `systemd-run --user` starts any command outside the sandbox, and every other socket
/// directly in `$XDG_RUNTIME_DIR`, systemd's and podman's, docker's); a tmux server's
/// (`TMUX`: `tmux new-window CMD` runs CMD outside too).
pub fn agent_sockets(home: &Path, allowed: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let var = |n: &str| {
        std::env::var_os(n)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let is_socket = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket());
    let sockets_in = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| is_socket(p))
                    .collect()
            })
            .unwrap_or_default()
    };
    let uid = nix::unistd::geteuid().as_raw();
    let runtime = var("XDG_RUNTIME_DIR");
    let in_runtime = |rel: &[&str]| -> Vec<PathBuf> {
        runtime
            .iter()
            .flat_map(|rt| rel.iter().map(move |r| rt.join(r)))
            .collect()
    };

    let mut ssh: Vec<PathBuf> = var("SSH_AUTH_SOCK").into_iter().collect();
    ssh.extend(in_runtime(&[
        "ssh-agent.socket",
        "openssh_agent",
        "keyring/ssh",
        "gcr/ssh",
        // gnome-keyring's own: its control socket and PKCS#11 hand out what it holds.
        "keyring/control",
        "keyring/pkcs11",
    ]));
    if let Ok(rd) = std::fs::read_dir("/tmp") {
        for d in rd.filter_map(|e| e.ok()) {
            let owned = d.metadata().is_ok_and(|m| m.is_dir() && m.uid() == uid);
            if owned && d.file_name().to_string_lossy().starts_with("ssh-") {
                ssh.extend(sockets_in(&d.path()));
            }
        }
    }

    let mut gpg: Vec<PathBuf> = var("GPG_AGENT_INFO")
        .and_then(|v| v.to_str()?.split(':').next().map(PathBuf::from))
        .into_iter()
        .collect();
    let mut dirs = vec![var("GNUPGHOME").unwrap_or_else(|| home.join(".gnupg"))];
    if let Some(rt) = &runtime {
        let g = rt.join("gnupg");
        // gpgconf puts a non-default home's sockets in d.HASH below it.
        if let Ok(rd) = std::fs::read_dir(&g) {
            dirs.extend(
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_dir()),
            );
        }
        dirs.push(g);
    }
    for d in &dirs {
        gpg.extend(sockets_in(d));
    }

    // `unix:path=/run/user/1000/bus,guid=...`; abstract addresses are Landlock's (ABI 6 scope).
    let mut session: Vec<PathBuf> = var("DBUS_SESSION_BUS_ADDRESS")
        .and_then(|v| {
            let v = v.to_str()?.to_string();
            let path = v.split(';').find_map(|a| {
                a.strip_prefix("unix:")?
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("path="))
            })?;
            Some(PathBuf::from(path))
        })
        .into_iter()
        .collect();
    if let Some(rt) = &runtime {
        session.extend(sockets_in(rt));
    }
    session.extend(in_runtime(&["systemd/private", "podman/podman.sock"]));
    session.extend(["/run/docker.sock", "/var/run/docker.sock"].map(PathBuf::from));

    let mut tmux: Vec<PathBuf> = var("TMUX")
        .and_then(|v| v.to_str()?.split(',').next().map(PathBuf::from))
        .into_iter()
        .collect();
    let tmux_base = var("TMUX_TMPDIR").unwrap_or_else(|| PathBuf::from("/tmp"));
    tmux.extend(sockets_in(&tmux_base.join(format!("tmux-{uid}"))));

    let groups = [
        ("SSH_AUTH_SOCK", ssh),
        ("GPG_AGENT_INFO", gpg),
        ("DBUS_SESSION_BUS_ADDRESS", session),
        ("TMUX", tmux),
    ];
    // An allowed group's socket stays, even where another group's scan found it too.
    let kept: Vec<&PathBuf> = groups
        .iter()
        .filter(|(v, _)| allowed(v))
        .flat_map(|(_, s)| s)
        .collect();
    let mut out: Vec<PathBuf> = groups
        .iter()
        .filter(|(v, _)| !allowed(v))
        .flat_map(|(_, s)| s.iter().cloned())
        .filter(|p| !kept.contains(&p) && is_socket(p))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What neither a sandboxed command nor the descendants of a guarded one may read: every file
/// an audit source reads for keys (so a new audit file extends both), the credential
/// directories of `DENIED_IN_HOME`, the shell's history file, and keyfence's store.
pub fn credential_paths(home: &Path, store_dirs: &[PathBuf]) -> Vec<PathBuf> {
    let audited = crate::audit::credfile::HOME_FILES
        .iter()
        .copied()
        .chain(crate::audit::shell::HOME_FILES.iter().map(|(f, _)| *f))
        .chain(crate::audit::shell::HOME_DIRS.iter().map(|(d, _, _)| *d))
        .chain(crate::audit::history::HOME_FILES.iter().map(|(f, _)| *f));
    let mut deny: Vec<PathBuf> = audited
        .chain(DENIED_IN_HOME.iter().copied())
        .map(|r| home.join(r))
        .collect();
    deny.extend(
        std::env::var_os("HISTFILE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
    );
    deny.extend(store_dirs.iter().cloned());
    deny
}

/// Normalises a path for comparison: absolute, symlinks resolved where it exists.
fn normal(p: &Path) -> PathBuf {
    p.canonicalize()
        .unwrap_or_else(|_| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
}

/// A cover of a directory tree minus some denied paths: `whole` are roots granted entirely,
/// `partial` the directories on the way to a denied path, which cannot be granted without
/// granting what is beneath them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cover {
    pub whole: Vec<PathBuf>,
    pub partial: Vec<PathBuf>,
}

fn denied_set(deny: &[PathBuf]) -> BTreeSet<PathBuf> {
    // A symlink's target is denied too: ~/.aws may point into a dotfiles checkout.
    deny.iter()
        .flat_map(|p| {
            [
                std::path::absolute(p).unwrap_or_else(|_| p.clone()),
                normal(p),
            ]
        })
        .collect()
}

/// Covers `root` except `deny` (see module doc): every sibling off the way to a denied path is
/// granted whole.
pub fn cover(root: &Path, deny: &[PathBuf]) -> Cover {
    let denied = denied_set(deny);
    let mut c = Cover::default();
    let root = normal(root);
    if denied.iter().any(|d| root.starts_with(d)) {
        return c;
    }
    if denied.iter().any(|d| d.starts_with(&root)) {
        walk(&root, &denied, &mut c, &mut DeniedInodes::default());
    } else {
        c.whole.push(root);
    }
    c
}

fn walk(dir: &Path, denied: &BTreeSet<PathBuf>, c: &mut Cover, links: &mut DeniedInodes) {
    use std::os::unix::fs::MetadataExt;
    c.partial.push(dir.to_path_buf());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    for child in children {
        if denied.contains(&child) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&child) else {
            continue;
        };
        // A rule binds to the inode its path opens to. A symlink would hand its target's
        // rights over (`~/notes -> ~/.aws`, planted by an earlier run); its target gets
        // whatever its own place in the cover gives it, so the link itself needs no rule.
        if meta.file_type().is_symlink() {
            continue;
        }
        // Likewise a second hard link to a denied file (`ln ~/.aws/credentials ~/notes`):
        // a rule on it would be a rule on the credential file itself.
        if meta.is_file() && meta.nlink() > 1 && links.contains(denied, meta.dev(), meta.ino()) {
            continue;
        }
        let leads_to_denied = denied.iter().any(|d| d.starts_with(&child));
        if leads_to_denied && meta.is_dir() {
            walk(&child, denied, c, links);
        } else {
            c.whole.push(child);
        }
    }
}

/// The inodes of the files beneath the denied paths, gathered only when a file with more
/// than one link needs checking (rare), and then once.
#[derive(Default)]
struct DeniedInodes(Option<std::collections::HashSet<(u64, u64)>>);

impl DeniedInodes {
    fn contains(&mut self, denied: &BTreeSet<PathBuf>, dev: u64, ino: u64) -> bool {
        use std::os::unix::fs::MetadataExt;
        let set = self.0.get_or_insert_with(|| {
            let mut set = std::collections::HashSet::new();
            for d in denied {
                for entry in walkdir::WalkDir::new(d)
                    .follow_links(false)
                    .into_iter()
                    .filter_map(|e| e.ok())
                {
                    if let Ok(m) = entry.metadata()
                        && m.is_file()
                    {
                        set.insert((m.dev(), m.ino()));
                    }
                }
            }
            set
        });
        set.contains(&(dev, ino))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("Landlock: {0}")]
    Landlock(#[from] landlock::RulesetError),
    #[error(
        "the kernel does not enforce Landlock, so --sandbox cannot protect anything; refusing to \
         run unprotected\nhint: `keyfence doctor` shows what the kernel offers"
    )]
    NotEnforced,
}

/// What was enforced.
#[derive(Debug)]
pub struct Applied {
    pub fully_enforced: bool,
    pub rules: usize,
}

/// Restricts the current process (and so everything it starts) with `policy`.
pub fn apply(policy: &Policy) -> Result<Applied, SandboxError> {
    let read = cover(Path::new("/"), &policy.deny_read);
    let all = AccessFs::from_all(ABI_WANTED);
    let read_access = AccessFs::from_read(ABI_WANTED);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)?
        .scope(Scope::from_all(ABI_WANTED))?
        .create()?;
    let mut n = 0;
    let mut add = |ruleset: landlock::RulesetCreated, path: &Path, access: BitFlags<AccessFs>| {
        // Files get file rights only: directory rights on a file rule are an error. A path
        // that vanished since the walk gets no rule, and is then denied: fails closed.
        let access = if path.is_dir() {
            access
        } else {
            access & AccessFs::from_file(ABI_WANTED)
        };
        match PathFd::new(path) {
            Ok(fd) => {
                n += 1;
                ruleset.add_rule(PathBeneath::new(fd, access))
            }
            Err(_) => Ok(ruleset),
        }
    };
    // Directories on the way to a denied path: their listings stay visible.
    for p in &read.partial {
        ruleset = add(ruleset, p, AccessFs::ReadDir.into())?;
    }
    for p in &read.whole {
        ruleset = add(ruleset, p, read_access)?;
    }
    // Writable roots are covered the same way, so a denied path beneath one (a home under
    // /tmp, a credential file inside the project) stays denied.
    for root in policy.writable.iter().filter(|p| p.exists()) {
        for p in cover(root, &policy.deny_read).whole {
            ruleset = add(ruleset, &p, all)?;
        }
    }
    let status = ruleset.restrict_self()?;
    match status.ruleset {
        RulesetStatus::NotEnforced => Err(SandboxError::NotEnforced),
        s => Ok(Applied {
            fully_enforced: s == RulesetStatus::FullyEnforced,
            rules: n,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cover_leaves_everything_but_the_denied_paths() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().canonicalize().unwrap();
        for d in [".aws", ".config/gh", ".config/other", "src"] {
            std::fs::create_dir_all(home.join(d)).unwrap();
        }
        std::fs::write(home.join(".bashrc"), "").unwrap();
        std::fs::write(home.join(".aws/credentials"), "").unwrap();
        let deny = [home.join(".aws"), home.join(".config/gh")];
        for root in [Path::new("/"), home.as_path()] {
            let c = cover(root, &deny);
            for allowed in [".bashrc", "src", ".config/other"] {
                assert!(
                    c.whole.contains(&home.join(allowed)),
                    "{allowed} not covered"
                );
            }
            for denied in [".aws", ".aws/credentials", ".config/gh"] {
                let p = home.join(denied);
                assert!(
                    !c.whole.iter().any(|w| p.starts_with(w)),
                    "{denied} reachable"
                );
            }
            assert!(c.partial.contains(&home.join(".config")));
        }
        assert_eq!(cover(&home.join("src"), &deny).whole, [home.join("src")]);
        assert!(cover(&home.join(".aws"), &deny).whole.is_empty());
    }

    #[test]
    fn cover_never_grants_a_link_into_a_denied_path() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(home.join(".aws")).unwrap();
        std::fs::write(home.join(".aws/credentials"), "x").unwrap();
        std::fs::write(home.join("plain"), "x").unwrap();
        std::fs::hard_link(home.join(".aws/credentials"), home.join("notes")).unwrap();
        std::fs::write(home.join("shared"), "x").unwrap();
        std::fs::hard_link(home.join("shared"), home.join("shared2")).unwrap();
        std::os::unix::fs::symlink(home.join(".aws"), home.join("sl")).unwrap();
        let c = cover(&home, &[home.join(".aws")]);
        // A rule binds to the inode: on `notes` or `sl` it would be a rule on the credentials.
        assert_eq!(
            c.whole,
            [
                home.join("plain"),
                home.join("shared"),
                home.join("shared2")
            ]
        );
    }

    #[test]
    fn every_file_an_audit_source_reads_is_denied() {
        let home = Path::new("/home/u");
        let p = Policy::default_for(home, Path::new("/home/u/proj"), &[]);
        let denied = |rel: &str| p.deny_read.contains(&home.join(rel));
        for (f, _) in crate::audit::shell::HOME_FILES {
            assert!(denied(f), "{f}");
        }
        for (d, _, _) in crate::audit::shell::HOME_DIRS {
            assert!(denied(d), "{d}");
        }
        for (f, _) in crate::audit::history::HOME_FILES {
            assert!(denied(f), "{f}");
        }
        for f in crate::audit::credfile::HOME_FILES {
            assert!(denied(f), "{f}");
        }
        for f in [
            ".bashrc",
            ".bash_history",
            ".git-credentials",
            ".config/git/credentials",
        ] {
            assert!(denied(f), "{f}");
        }
    }

    #[test]
    fn only_an_explicit_global_install_gets_a_prefix() {
        let home = Path::new("/home/u");
        let argv = |s: &str| -> Vec<std::ffi::OsString> { s.split(' ').map(Into::into).collect() };
        for project in [
            "npm install",
            "npm i left-pad",
            "npm ci",
            "cargo build",
            "pip install x",
        ] {
            assert!(
                global_prefixes(home, &argv(project)).is_empty(),
                "{project}"
            );
        }
        assert!(!global_prefixes(home, &argv("npm i -g left-pad")).is_empty());
        assert!(!global_prefixes(home, &argv("/usr/bin/npm install --global x")).is_empty());
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".cargo"));
        assert!(global_prefixes(home, &argv("cargo install ripgrep")).contains(&cargo_home));
        assert!(!global_prefixes(home, &argv("pip install --user x")).is_empty());
        // A flag alone is not an install.
        assert!(global_prefixes(home, &argv("npm -g ls")).is_empty());
    }

    #[test]
    fn git_dirs_follow_a_worktree_to_its_common_directory() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        std::fs::create_dir_all(base.join("main/.git/worktrees/wt")).unwrap();
        std::fs::create_dir_all(base.join("wt/sub")).unwrap();
        std::fs::write(
            base.join("wt/.git"),
            format!(
                "gitdir: {}\n",
                base.join("main/.git/worktrees/wt").display()
            ),
        )
        .unwrap();
        std::fs::write(base.join("main/.git/worktrees/wt/commondir"), "../..\n").unwrap();
        let dirs = git_dirs(&base.join("wt/sub"));
        assert_eq!(dirs[0], base.join("wt/.git"));
        assert!(dirs.contains(&base.join("main/.git/worktrees/wt")));
        assert!(dirs.contains(&base.join("main/.git/worktrees/wt/../..")));
        assert_eq!(git_dirs(&base.join("main")), [base.join("main/.git")]);
        assert!(git_dirs(Path::new("/")).is_empty() || Path::new("/.git").exists());
    }

    #[test]
    fn package_managers_are_found_through_a_shell() {
        let argv = |a: &[&str]| -> Vec<std::ffi::OsString> { a.iter().map(Into::into).collect() };
        assert_eq!(package_managers(&argv(&["/usr/bin/npm", "ci"])), ["npm"]);
        assert_eq!(
            package_managers(&argv(&["bash", "-c", "cd web && npm install; uv sync"])),
            ["npm", "uv"]
        );
        assert!(package_managers(&argv(&["make", "all"])).is_empty());
        let home = Path::new("/home/u");
        let created = Policy::caches_to_create(home, &argv(&["bash", "-c", "pnpm i"]));
        assert!(
            created.contains(&home.join(".local/share/pnpm/store")),
            "{created:?}"
        );
    }
}
