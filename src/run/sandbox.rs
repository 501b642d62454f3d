//! The install sandbox as `run` settled it (its Landlock policy, what its mount namespace kept
//! read-only), and what it has to say when the command ends: a `.git` the command created,
//! moved aside, and how to let a trusted command write where the sandbox refused. Entering it
//! is `isolate/`'s; this returns its messages and prints nothing.

/// The sandbox, decided while settling (command/run.rs): its mount namespace is entered there, before any thread
/// starts (unshare needs a single-threaded process; the phantom proxy is a thread), and its
/// Landlock domain just before the command starts.
pub struct Sandbox {
    #[cfg(target_os = "linux")]
    pub policy: crate::isolate::sandbox::Policy,
    /// What the mount namespace keeps read-only beneath the writable roots (`.git`).
    pub kept: Vec<std::path::PathBuf>,
    /// The project's `.git` when there was none: one the command creates would be the
    /// repository of the user's next git command here (its config and hooks run code), so it
    /// is moved aside when the command ends.
    pub no_git: Option<std::path::PathBuf>,
}

impl Sandbox {
    /// A `.git` the command created in the project, moved aside (renamed, nothing deleted).
    pub fn quarantine_new_git(&self) -> Option<String> {
        let git = self.no_git.as_ref()?;
        std::fs::symlink_metadata(git).ok()?;
        let aside = git.with_file_name(format!(".git.keyfence-{}", std::process::id()));
        Some(match std::fs::rename(git, &aside) {
            Ok(()) => format!(
                "keyfence: warning: the command created {}, which git would use for every \
                 command run here (its config and hooks run code outside the sandbox); it was \
                 moved to {}\nhint: if you expected it (a project generator's `git init`), \
                 move it back: mv {} {}",
                git.display(),
                aside.display(),
                aside.display(),
                git.display()
            ),
            Err(e) => format!(
                "keyfence: warning: the command created {}, which git would use for every \
                 command run here (its config and hooks run code outside the sandbox), and it \
                 could not be moved aside ({e})\nhint: look at it before running git here; \
                 remove it unless you expected it",
                git.display()
            ),
        })
    }

    /// After the command: what the sandbox kept read-only and how to let a command the user
    /// trusts write there in this project, when the command failed or the project's scripts
    /// set up git hooks (husky and the like report the refused write and still succeed).
    pub fn note(&self, command: &[std::ffi::OsString], code: u8) -> Option<String> {
        // What the project's own scripts may have wanted to write: its .git.
        let cwd = std::env::current_dir().unwrap_or_default();
        let shown: Vec<String> = self
            .kept
            .iter()
            .filter_map(|p| Some(p.strip_prefix(&cwd).ok()?.display().to_string()))
            .collect();
        if shown.is_empty() {
            return None;
        }
        let installer = hook_installer(&cwd);
        if (code == 0 || code >= 125) && installer.is_none() {
            return None;
        }
        // The user's own words, but a key typed among them stays off stderr.
        let cmd = crate::detect::redact(
            command
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
        );
        let why = match installer {
            Some(tool) => format!(
                "so this project's scripts could not set up git hooks ({tool} writes \
                 core.hooksPath to .git/config)"
            ),
            None => "so a write there, if that is why the command failed, was refused".into(),
        };
        Some(format!(
            "keyfence: note: the sandbox kept {} read-only (what is there runs later, outside \
             the sandbox), {why}\nhint: if you trust this project's scripts with that, run \
             `keyfence run --allow-write {} -- {cmd}` here",
            shown.join(", "),
            shown[0],
        ))
    }
}

/// The git-hook installer the project's package.json runs at install time, if any: husky,
/// simple-git-hooks, lefthook, yorkie, or a plain `git config`.
fn hook_installer(project: &std::path::Path) -> Option<&'static str> {
    let text = std::fs::read_to_string(project.join("package.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let scripts = json.get("scripts")?.as_object()?;
    let at_install = ["preinstall", "install", "postinstall", "prepare"]
        .iter()
        .filter_map(|k| scripts.get(*k)?.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    [
        "husky",
        "simple-git-hooks",
        "lefthook",
        "yorkie",
        "git config",
    ]
    .into_iter()
    .find(|tool| at_install.contains(tool))
}
