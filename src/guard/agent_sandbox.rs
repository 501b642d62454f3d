//! An agent's own sandbox inside a guarded tree: Codex CLI's, which is bubblewrap.
//!
//! Codex runs each command of its sandbox through a chain of its own processes (traced with
//! Codex 0.171): the agent starts its own executable as `codex-linux-sandbox` (the helper),
//! directly or through its process set-up step (`/proc/self/exe --codex-run-as-process-setup
//! ... EXE codex-linux-sandbox ARGS`, which prepares the command's terminal and then execs);
//! the helper, or a child of it, executes bubblewrap (`bwrap`, from a memfd holding the copy
//! Codex bundles); bubblewrap's child in the new namespaces, after mounting, starts the helper
//! again (`--apply-seccomp-then-exec`, the inner helper), which applies its seccomp filter and
//! runs the command in a child. bubblewrap must mount, and a process in a Landlock domain may
//! not; with every child of the agent contained at its first stop, Codex's sandbox failed, and
//! every command of it.
//!
//! So the chain stays outside the fence, one step at a time (`Stage`), and the first exec off
//! it is contained like any other exec below the agent: a process of the chain may exec only
//! the next link, and anything the inner helper starts leaves the chain, whatever it is (the
//! agent's own executable under the helper's name too). Only a child of the agent starts a
//! chain, and a contained process can never be in one. Every link still has the protected
//! variables taken out of its environment at its exec: the helpers need no key.
//!
//! Why bubblewrap's arguments are checked (`check_bubblewrap`): Landlock's rules bind to
//! inodes but are checked along the path a file is reached by, so a bind mount that shows a
//! denied file's directory under another path (`--bind ~/.codex /tmp/x`, with `--ro-bind / /`
//! underneath) reaches it through directories the fence grants whole. Codex chooses those
//! arguments, but from its configuration (the workspace, writable roots, which a repository's
//! `.codex/config.toml` can set) and from paths the tree can change (a `.git` replaced by a
//! symbolic link). So a bind whose source holds a denied path must be made in place: source
//! and destination the same path, with no symbolic link on it. A bind of a tree that holds no
//! denied path may go anywhere: it shows nothing the fence denies. What bubblewrap would do
//! with anything but paths (arguments from a descriptor, binds of descriptors, overlays,
//! joining namespaces made elsewhere) cannot be checked, and is refused: the exec is then
//! contained, so bubblewrap fails to mount and the command does not run.

use std::path::{Path, PathBuf};

/// The agents whose own sandbox runs this way, by their executable's file name.
pub const AGENTS: &[&str] = &["codex"];

/// The name (`argv[0]`) the agent's executable runs under as its sandbox helper.
pub const HELPER: &[u8] = b"codex-linux-sandbox";

/// The first argument of the agent's executable as its process set-up step.
pub const SETUP: &[u8] = b"--codex-run-as-process-setup";

/// Where a process stands in the chain from the agent to the command its sandbox runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// A child of the agent, not yet past its exec: running the agent's code.
    Spawned,
    /// The agent's executable as its process set-up step, which execs the helper (or, when
    /// the command runs outside Codex's sandbox, the command).
    Setup,
    /// The agent's executable as the helper, or a child of it not yet past its exec.
    Helper,
    /// bubblewrap, or its child in the new namespaces, not yet past its exec.
    Bubblewrap,
    /// The helper again, inside the sandbox: whatever it starts leaves the chain.
    Inner,
}

impl Stage {
    /// The stage a child (or thread) of a process at this stage starts at: the same, except
    /// below the inner helper, where the chain ends.
    pub fn of_child(self) -> Option<Stage> {
        match self {
            Stage::Inner => None,
            s => Some(s),
        }
    }
}

/// An exec by a process of the chain, as the tracer sees it.
pub struct Exec<'a> {
    /// The file executed is the agent's own executable (same device and inode).
    pub runs_agent: bool,
    pub argv: &'a [Vec<u8>],
}

/// What an exec makes of a process of the chain.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// It stays in the chain, at this stage.
    Chain(Stage),
    /// It leaves the chain: contained at this exec.
    Off,
    /// It would be the next link, but cannot be let through (why): contained at this exec.
    Refused(Refusal),
}

/// The next step of a process at `stage` executing `exec`. `bubblewrap_ok` checks bubblewrap's
/// arguments (`check_bubblewrap`, with the fence's denied paths).
pub fn next(
    stage: Stage,
    exec: &Exec,
    bubblewrap_ok: impl FnOnce(&[Vec<u8>]) -> Result<(), Refusal>,
) -> Next {
    let argv0 = exec.argv.first().map(Vec::as_slice).unwrap_or_default();
    // Codex names the helper by a link in ~/.codex/tmp/arg0-linux/ (its full path is argv[0])
    // when it could make one, or by argv[0] alone; bubblewrap's `--argv0` gives the name.
    let helper = exec.runs_agent && file_name(argv0) == HELPER;
    let setup = exec.runs_agent && exec.argv.get(1).map(Vec::as_slice) == Some(SETUP);
    match stage {
        Stage::Spawned if helper => Next::Chain(Stage::Helper),
        Stage::Spawned if setup => Next::Chain(Stage::Setup),
        Stage::Setup if helper => Next::Chain(Stage::Helper),
        Stage::Helper if file_name(argv0) == b"bwrap" => match bubblewrap_ok(exec.argv) {
            Ok(()) => Next::Chain(Stage::Bubblewrap),
            Err(why) => Next::Refused(why),
        },
        Stage::Bubblewrap if helper => Next::Chain(Stage::Inner),
        _ => Next::Off,
    }
}

fn file_name(path: &[u8]) -> &[u8] {
    path.rsplit(|&c| c == b'/').next().unwrap_or(path)
}

/// bubblewrap's options that take no argument, one, or two and touch no path of the host
/// (`bwrap --help`, 0.11).
const NO_ARGUMENT: &[&str] = &[
    "--unshare-all",
    "--share-net",
    "--unshare-user",
    "--unshare-user-try",
    "--unshare-ipc",
    "--unshare-pid",
    "--unshare-net",
    "--unshare-uts",
    "--unshare-cgroup",
    "--unshare-cgroup-try",
    "--disable-userns",
    "--assert-userns-disabled",
    "--clearenv",
    "--new-session",
    "--die-with-parent",
    "--as-pid-1",
    "--level-prefix",
];
const ONE_ARGUMENT: &[&str] = &[
    "--argv0",
    "--uid",
    "--gid",
    "--hostname",
    "--chdir",
    "--unsetenv",
    "--lock-file",
    "--sync-fd",
    "--remount-ro",
    "--exec-label",
    "--file-label",
    "--proc",
    "--dev",
    "--tmpfs",
    "--mqueue",
    "--dir",
    "--seccomp",
    "--add-seccomp-fd",
    "--block-fd",
    "--userns-block-fd",
    "--info-fd",
    "--json-status-fd",
    "--cap-add",
    "--cap-drop",
    "--perms",
    "--size",
];
/// Two arguments: data from a descriptor written to a new file, a symbolic link (Landlock
/// checks where it leads), a variable, a mode.
const TWO_ARGUMENTS: &[&str] = &[
    "--setenv",
    "--file",
    "--bind-data",
    "--ro-bind-data",
    "--symlink",
    "--chmod",
];
/// Binds of a host path (source, destination).
const BINDS: &[&str] = &[
    "--bind",
    "--bind-try",
    "--dev-bind",
    "--dev-bind-try",
    "--ro-bind",
    "--ro-bind-try",
];

/// What bubblewrap was asked for that keyfence does not let through (said in guard's summary:
/// "bubblewrap was asked for ...").
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}: an option keyfence cannot check (it lets through only binds of paths)")]
    Unchecked(String),
    #[error("{0} without its argument")]
    MissingArgument(String),
    #[error("{0} without its two paths")]
    MissingPaths(String),
    /// A bind (option, source, destination) that would show a denied file elsewhere.
    #[error("{0} {1} {2}: {3}")]
    Bind(String, String, String, BadBind),
    #[error("mounts from another mount namespace")]
    OtherNamespace,
}

/// Why a bind of a tree holding a denied path is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadBind {
    /// Resolved against bubblewrap's directory, which the tracer does not follow.
    #[error("a relative path")]
    Relative,
    #[error("it would show files keyfence denies under another path")]
    Elsewhere,
    #[error("its path goes through a symbolic link to files keyfence denies")]
    ThroughLink,
}

/// Whether bubblewrap run with `argv` shows no path the fence denies (`denied`) under another
/// path than its own. `canonical` resolves a host path as the tracer sees it (`None`: it does
/// not resolve). `Err`: what it would do that cannot be let through.
pub fn check_bubblewrap(
    argv: &[Vec<u8>],
    denied: &[PathBuf],
    canonical: impl Fn(&Path) -> Option<PathBuf>,
) -> Result<(), Refusal> {
    let mut args = argv.iter().skip(1).map(|a| String::from_utf8_lossy(a));
    while let Some(arg) = args.next() {
        let arg = arg.as_ref();
        if arg == "--" || !arg.starts_with("--") {
            // The command: nothing after it is bubblewrap's.
            return Ok(());
        }
        let takes = if NO_ARGUMENT.contains(&arg) {
            0
        } else if ONE_ARGUMENT.contains(&arg) {
            1
        } else if TWO_ARGUMENTS.contains(&arg) {
            2
        } else if BINDS.contains(&arg) {
            let (Some(source), Some(dest)) = (args.next(), args.next()) else {
                return Err(Refusal::MissingPaths(arg.into()));
            };
            check_bind(
                Path::new(source.as_ref()),
                Path::new(dest.as_ref()),
                denied,
                &canonical,
            )
            .map_err(|why| Refusal::Bind(arg.into(), source.to_string(), dest.to_string(), why))?;
            0
        } else {
            return Err(Refusal::Unchecked(arg.into()));
        };
        for _ in 0..takes {
            if args.next().is_none() {
                return Err(Refusal::MissingArgument(arg.into()));
            }
        }
    }
    Ok(())
}

fn check_bind(
    source: &Path,
    dest: &Path,
    denied: &[PathBuf],
    canonical: &impl Fn(&Path) -> Option<PathBuf>,
) -> Result<(), BadBind> {
    if source.is_relative() || dest.is_relative() {
        return Err(BadBind::Relative);
    }
    let resolved = canonical(source);
    if let Some(r) = &resolved
        && !denied.iter().any(|d| d.starts_with(r))
    {
        // Nothing the fence denies is in it: wherever it shows, it shows nothing denied.
        return Ok(());
    }
    if source != dest {
        return Err(BadBind::Elsewhere);
    }
    // Not resolving now, it may resolve by the time bubblewrap mounts it: in place, with no
    // symbolic link, it is the same path on both sides then too.
    if resolved.as_deref().is_some_and(|r| r != source) {
        return Err(BadBind::ThroughLink);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    fn denied() -> Vec<PathBuf> {
        vec![
            PathBuf::from("/home/u/.codex/auth.json"),
            PathBuf::from("/home/u/.config/keyfence"),
        ]
    }

    /// The host as the tests see it: `/bin` and `/home/u/proj/link` are symbolic links, and
    /// `/gone` does not exist.
    fn canonical(p: &Path) -> Option<PathBuf> {
        let s = p.to_str()?;
        if s == "/gone" || !s.starts_with('/') {
            return None;
        }
        if let Some(rest) = s.strip_prefix("/bin") {
            return Some(PathBuf::from(format!("/usr/bin{rest}")));
        }
        if let Some(rest) = s.strip_prefix("/home/u/proj/link") {
            return Some(PathBuf::from(format!("/home/u/.codex{rest}")));
        }
        Some(p.to_path_buf())
    }

    fn check(words: &[&str]) -> Result<(), Refusal> {
        check_bubblewrap(&argv(words), &denied(), canonical)
    }

    #[test]
    fn codex_bubblewrap_arguments_pass() {
        // As Codex 0.171 runs it (the preflight, then a command with the workspace writable).
        check(&[
            "bwrap",
            "--as-pid-1",
            "--new-session",
            "--die-with-parent",
            "--tmpfs",
            "/",
            "--dev",
            "/dev",
            "--ro-bind",
            "/bin",
            "/bin",
            "--ro-bind",
            "/usr",
            "/usr",
            "--unshare-user",
            "--unshare-pid",
            "--proc",
            "/proc",
            "--",
            "/usr/bin/true",
        ])
        .unwrap();
        check(&[
            "bwrap",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--perms",
            "000",
            "--tmpfs",
            "/tmp/codex-daemon-1",
            "--remount-ro",
            "/tmp/codex-daemon-1",
            "--bind",
            "/home/u/proj",
            "/home/u/proj",
            "--ro-bind",
            "/home/u/proj/.git",
            "/home/u/proj/.git",
            "--cap-drop",
            "ALL",
            "--argv0",
            "codex-linux-sandbox",
            "--",
            "/opt/codex",
            "--bind",
            "/home/u",
            "/x",
        ])
        .unwrap();
    }

    #[test]
    fn a_denied_tree_shown_elsewhere_is_refused() {
        for (source, dest) in [
            ("/home/u/.codex", "/tmp/x"),
            ("/home/u", "/tmp/x"),
            ("/", "/mnt"),
            ("/home/u/.codex/auth.json", "/tmp/a"),
            // Through a symbolic link the tree could have made, even "in place".
            ("/home/u/proj/link", "/home/u/proj/link"),
            ("/home/u/proj/link/", "/tmp/y"),
        ] {
            for bind in ["--bind", "--ro-bind", "--dev-bind-try", "--ro-bind-try"] {
                let r = check(&[
                    "bwrap",
                    "--ro-bind",
                    "/",
                    "/",
                    bind,
                    source,
                    dest,
                    "--",
                    "sh",
                ]);
                assert!(r.is_err(), "{bind} {source} {dest} passed");
            }
        }
        // A source that does not resolve now may by the time bubblewrap mounts it.
        assert!(check(&["bwrap", "--bind", "/gone", "/tmp/x", "sh"]).is_err());
        assert!(check(&["bwrap", "--bind", "/gone", "/gone", "sh"]).is_ok());
        // Relative: resolved against bubblewrap's directory, never the same path.
        assert!(check(&["bwrap", "--bind", "home/u", "home/u", "sh"]).is_err());
    }

    #[test]
    fn what_cannot_be_checked_is_refused() {
        for words in [
            &["bwrap", "--args", "3", "sh"][..],
            &["bwrap", "--bind-fd", "3", "/tmp/x", "sh"],
            &["bwrap", "--ro-bind-fd", "3", "/tmp/x", "sh"],
            &[
                "bwrap",
                "--overlay-src",
                "/home/u",
                "--tmp-overlay",
                "/tmp/x",
                "sh",
            ],
            &["bwrap", "--userns", "3", "sh"],
            &["bwrap", "--pidns", "3", "sh"],
            &["bwrap", "--some-future-option", "sh"],
            &["bwrap", "--bind", "/home/u"],
        ] {
            assert!(check(words).is_err(), "{words:?} passed");
        }
        // An option's argument is not read as an option, nor the command's arguments.
        assert!(check(&["bwrap", "--setenv", "--bind-fd", "x", "sh", "--args", "3"]).is_ok());
    }

    #[test]
    fn the_chain_goes_one_link_at_a_time() {
        let helper = argv(&["codex-linux-sandbox", "--", "sh"]);
        let setup = argv(&["/proc/self/exe", "--codex-run-as-process-setup", "44", "1"]);
        let alias = argv(&["/home/u/.codex/tmp/arg0-linux/codex-arg0X/codex-linux-sandbox"]);
        let bwrap = argv(&["bwrap", "--ro-bind", "/", "/", "--", "codex"]);
        let bash = argv(&["bash", "-lc", "cat x"]);
        let ok = |_: &[Vec<u8>]| Ok(());
        let at = |stage, runs_agent, argv: &[Vec<u8>]| next(stage, &Exec { runs_agent, argv }, ok);
        assert_eq!(
            at(Stage::Spawned, true, &helper),
            Next::Chain(Stage::Helper)
        );
        assert_eq!(at(Stage::Spawned, true, &alias), Next::Chain(Stage::Helper));
        assert_eq!(at(Stage::Spawned, true, &setup), Next::Chain(Stage::Setup));
        assert_eq!(at(Stage::Setup, true, &helper), Next::Chain(Stage::Helper));
        assert_eq!(at(Stage::Setup, false, &bash), Next::Off);
        assert_eq!(at(Stage::Setup, true, &setup), Next::Off);
        assert_eq!(at(Stage::Spawned, false, &setup), Next::Off);
        assert_eq!(
            at(Stage::Helper, false, &bwrap),
            Next::Chain(Stage::Bubblewrap)
        );
        assert_eq!(
            at(Stage::Bubblewrap, true, &helper),
            Next::Chain(Stage::Inner)
        );
        // The inner helper's command leaves the chain, even the agent under the helper's name.
        assert_eq!(at(Stage::Inner, true, &helper), Next::Off);
        assert_eq!(Stage::Inner.of_child(), None);
        // No link skipped, none taken twice, no other program.
        assert_eq!(at(Stage::Spawned, false, &bwrap), Next::Off);
        assert_eq!(at(Stage::Spawned, false, &bash), Next::Off);
        assert_eq!(at(Stage::Spawned, false, &helper), Next::Off);
        assert_eq!(at(Stage::Helper, true, &helper), Next::Off);
        assert_eq!(at(Stage::Bubblewrap, false, &bwrap), Next::Off);
        assert_eq!(at(Stage::Bubblewrap, false, &bash), Next::Off);
        let refused = next(
            Stage::Helper,
            &Exec {
                runs_agent: false,
                argv: &bwrap,
            },
            |_| Err(Refusal::OtherNamespace),
        );
        assert_eq!(refused, Next::Refused(Refusal::OtherNamespace));
    }
}
