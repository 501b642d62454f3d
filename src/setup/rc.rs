//! The user's shell start-up file (`~/.bashrc`, `~/.zshrc`, fish's `config.fish`) loading
//! `keyfence shell-init`, so that typing `claude`, `codex` or `gemini` (or `npm install`) goes
//! through `keyfence run`. `setup claude|codex|gemini` adds one marked block; `audit` asks
//! whether the file loads shell-init at all.
//!
//! It edits one block between its own markers and nothing else: running it twice changes
//! nothing, a newer keyfence path replaces the block, and a line the user wrote that already
//! loads shell-init is left alone. Computes the change; writing goes through
//! `claude::write_atomically` (backup first), printing is the command's job.

use super::claude::SetupError;
use crate::syntax::shell::sh_quote;
use std::path::{Path, PathBuf};

pub const BEGIN: &str = "# >>> keyfence shell-init >>>";
pub const END: &str = "# <<< keyfence shell-init <<<";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    /// The shell named by a `$SHELL` value (`/usr/bin/zsh` → zsh).
    pub fn from_path(shell: &str) -> Option<Shell> {
        match shell.rsplit('/').next().unwrap_or_default() {
            "bash" => Some(Shell::Bash),
            "zsh" => Some(Shell::Zsh),
            "fish" => Some(Shell::Fish),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Shell::Bash => "bash",
            Shell::Zsh => "zsh",
            Shell::Fish => "fish",
        }
    }

    /// The file an interactive shell reads: bash reads `~/.bashrc` (a login shell only through
    /// `~/.bash_profile`, which distributions make source it), zsh `$ZDOTDIR/.zshrc`, fish
    /// `$XDG_CONFIG_HOME/fish/config.fish`. `var` looks a variable up in the user's environment.
    pub fn rc_file(self, home: &Path, var: impl Fn(&str) -> Option<String>) -> PathBuf {
        let dir = |name: &str, default: PathBuf| {
            var(name)
                .filter(|v| v.starts_with('/'))
                .map_or(default, PathBuf::from)
        };
        match self {
            Shell::Bash => home.join(".bashrc"),
            Shell::Zsh => dir("ZDOTDIR", home.to_path_buf()).join(".zshrc"),
            Shell::Fish => dir("XDG_CONFIG_HOME", home.join(".config")).join("fish/config.fish"),
        }
    }
}

/// The marked block for `shell`, running the keyfence at `exe`.
pub fn block(shell: Shell, exe: &Path) -> String {
    let exe = exe.to_string_lossy();
    let load = match shell {
        Shell::Bash | Shell::Zsh => {
            format!("eval \"$({} shell-init {})\"", sh_quote(&exe), shell.name())
        }
        Shell::Fish => format!(
            "'{}' shell-init fish | source",
            exe.replace('\\', "\\\\").replace('\'', "\\'")
        ),
    };
    format!(
        "{BEGIN}\n\
         # Added by `keyfence setup`: AI agents (claude, codex, gemini) run under keyfence's\n\
         # agent profile and package managers under theirs. Delete the block to undo;\n\
         # `command NAME` bypasses it.\n\
         {load}\n\
         {END}\n"
    )
}

/// Whether a start-up file's text loads `keyfence shell-init`: keyfence's block, or a line of
/// the user's own that runs it (`eval "$(keyfence shell-init bash)"`). A comment does not count.
pub fn loads_shell_init(text: &str) -> bool {
    loading_line(text).is_some()
}

/// The 0-based index of the last line that loads shell-init.
fn loading_line(text: &str) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim_start();
            !l.starts_with('#') && l.contains("keyfence") && l.contains("shell-init")
        })
        .map(|(i, _)| i)
        .last()
}

/// The 1-based line, after the one that loads shell-init, that defines `program` again (an
/// alias or a function): typing the name then runs that definition, not keyfence's function.
/// Claude Code's older local installer added `alias claude="~/.claude/local/claude"`. An alias
/// defined before shell-init is harmless: bash and zsh expand it in the function's own
/// definition, so the function takes the alias's name.
pub fn redefined_after(text: &str, program: &str) -> Option<u32> {
    let from = loading_line(text)?;
    text.lines()
        .enumerate()
        .skip(from + 1)
        .find(|(_, l)| defines(l, program))
        .map(|(i, _)| i as u32 + 1)
}

/// Whether a line defines `program` as an alias (`alias claude=...`, fish `alias claude ...`)
/// or a function (`claude() {`, `function claude`).
fn defines(line: &str, program: &str) -> bool {
    let l = line.trim_start();
    // What follows `program` in `rest`, when it is there as a whole word.
    let after = |rest: &str| -> Option<String> {
        let rest = rest.trim_start().strip_prefix(program)?;
        match rest.chars().next() {
            Some(c) if c.is_alphanumeric() || "_-.".contains(c) => None,
            _ => Some(rest.trim_start().to_string()),
        }
    };
    if let Some(rest) = l
        .strip_prefix("alias ")
        .or_else(|| l.strip_prefix("function "))
    {
        return after(rest).is_some();
    }
    after(l).is_some_and(|a| a.starts_with('('))
}

/// What `setup` does to the start-up file.
#[derive(Debug)]
pub struct RcChange {
    pub shell: Shell,
    /// The path as the user knows it (`~/.bashrc`).
    pub path: PathBuf,
    /// The file written: the link's target when `path` is a symbolic link (a dotfiles
    /// repository), else `path`.
    pub real: PathBuf,
    /// The file's bytes as read (`None`: it does not exist yet).
    pub original: Option<Vec<u8>>,
    pub new_text: Vec<u8>,
    pub state: RcState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RcState {
    /// The block is added.
    Add,
    /// keyfence's block is there with other text (an older keyfence path): replaced.
    Replace,
    /// keyfence's block is there as it would write it.
    Present,
    /// A line of the user's own loads shell-init: left alone.
    LoadedByUser,
}

impl RcChange {
    pub fn changes_anything(&self) -> bool {
        matches!(self.state, RcState::Add | RcState::Replace)
    }
}

/// Reads the start-up file of `shell` and computes it with keyfence's block in it.
pub fn plan(
    shell: Shell,
    home: &Path,
    var: impl Fn(&str) -> Option<String>,
    exe: &Path,
) -> Result<RcChange, SetupError> {
    let path = shell.rc_file(home, var);
    let real = match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::canonicalize(&path).map_err(|_| SetupError::DanglingLink {
                target: std::fs::read_link(&path).unwrap_or_default(),
                path: path.clone(),
            })?
        }
        _ => path.clone(),
    };
    let original = match std::fs::read(&real) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(SetupError::Read { path: real, source }),
    };
    let text = String::from_utf8_lossy(original.as_deref().unwrap_or_default()).into_owned();
    let ours = block(shell, exe);
    let (state, new) = match marked(&text) {
        Some((start, end)) if text[start..end] == ours => (RcState::Present, text.clone()),
        Some((start, end)) => (
            RcState::Replace,
            format!("{}{ours}{}", &text[..start], &text[end..]),
        ),
        None if loads_shell_init(&text) => (RcState::LoadedByUser, text.clone()),
        None => {
            let mut new = text.clone();
            if !new.is_empty() {
                if !new.ends_with('\n') {
                    new.push('\n');
                }
                new.push('\n');
            }
            new.push_str(&ours);
            (RcState::Add, new)
        }
    };
    Ok(RcChange {
        shell,
        path,
        real,
        original,
        new_text: new.into_bytes(),
        state,
    })
}

/// The byte range of keyfence's block, markers and final newline included.
fn marked(text: &str) -> Option<(usize, usize)> {
    let start = text
        .match_indices(BEGIN)
        .map(|(i, _)| i)
        .find(|&i| i == 0 || text.as_bytes()[i - 1] == b'\n')?;
    let end_at = start + text[start..].find(END)?;
    let mut end = end_at + END.len();
    if text.as_bytes().get(end) == Some(&b'\n') {
        end += 1;
    }
    Some((start, end))
}

/// The change as a diff that shows keyfence's lines only, never the user's: a start-up file
/// may export a key right above the block.
pub fn diff(change: &RcChange) -> String {
    let old = String::from_utf8_lossy(change.original.as_deref().unwrap_or_default());
    let new = String::from_utf8_lossy(&change.new_text);
    let name = change.path.display();
    let mut out = format!("--- {name}\n+++ {name}\n");
    let (removed, added) = match (marked(&old), marked(&new)) {
        (Some((a, b)), Some((c, d))) => (&old[a..b], &new[c..d]),
        (None, Some((c, d))) => ("", &new[c..d]),
        _ => return out,
    };
    let at = if removed.is_empty() {
        "@@ at the end of the file @@"
    } else {
        "@@ keyfence's block @@"
    };
    out.push_str(at);
    out.push('\n');
    for l in removed.lines() {
        out.push_str(&format!("-{l}\n"));
    }
    for l in added.lines() {
        out.push_str(&format!("+{l}\n"));
    }
    out
}

/// Writes the change (backup of the old file beside `path`, then the new text atomically to
/// the real file). Returns the backup's path.
pub fn apply(change: &RcChange) -> Result<Option<PathBuf>, SetupError> {
    super::claude::write_atomically(
        &change.path,
        &change.real,
        change.original.as_deref(),
        &change.new_text,
        0o644,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_in(home: &Path, shell: Shell) -> RcChange {
        plan(shell, home, |_| None, Path::new("/opt/key fence/keyfence")).unwrap()
    }

    #[test]
    fn adds_once_then_leaves_it() {
        let dir = tempfile::tempdir().unwrap();
        let rc = dir.path().join(".bashrc");
        std::fs::write(&rc, "alias ll='ls -l'").unwrap();
        let c = plan_in(dir.path(), Shell::Bash);
        assert_eq!(c.state, RcState::Add);
        let text = String::from_utf8(c.new_text.clone()).unwrap();
        assert!(
            text.starts_with("alias ll='ls -l'\n\n# >>> keyfence"),
            "{text}"
        );
        assert!(text.contains("eval \"$('/opt/key fence/keyfence' shell-init bash)\"\n"));
        apply(&c).unwrap();
        let again = plan_in(dir.path(), Shell::Bash);
        assert_eq!(again.state, RcState::Present);
        assert!(!again.changes_anything());
    }

    #[test]
    fn replaces_an_older_block_and_respects_the_users_own_line() {
        let dir = tempfile::tempdir().unwrap();
        let rc = dir.path().join(".zshrc");
        std::fs::write(
            &rc,
            format!("a=1\n{BEGIN}\neval \"$(/old/keyfence shell-init zsh)\"\n{END}\nb=2\n"),
        )
        .unwrap();
        let c = plan_in(dir.path(), Shell::Zsh);
        assert_eq!(c.state, RcState::Replace);
        let text = String::from_utf8(c.new_text).unwrap();
        assert!(
            text.starts_with("a=1\n# >>> keyfence") && text.ends_with(&format!("{END}\nb=2\n"))
        );
        assert!(!text.contains("/old/"));
        std::fs::write(&rc, "eval \"$(keyfence shell-init zsh)\"\n").unwrap();
        assert_eq!(plan_in(dir.path(), Shell::Zsh).state, RcState::LoadedByUser);
        std::fs::write(&rc, "# eval \"$(keyfence shell-init zsh)\"\n").unwrap();
        assert_eq!(plan_in(dir.path(), Shell::Zsh).state, RcState::Add);
    }

    #[test]
    fn definitions_after_shell_init_are_found() {
        let load = "eval \"$(keyfence shell-init bash)\"\n";
        for (text, line) in [
            (
                format!("{load}alias claude=~/.claude/local/claude\n"),
                Some(2),
            ),
            (format!("{load}x=1\nalias claude='claude --x'\n"), Some(3)),
            (format!("{load}claude() {{ :; }}\n"), Some(2)),
            (format!("{load}function claude {{ :; }}\n"), Some(2)),
            (format!("{load}alias claude ~/bin/claude\n"), Some(2)),
            (format!("alias claude=x\n{load}"), None),
            (format!("{load}alias claudette=x\nclaude_home=1\n"), None),
            ("alias claude=x\n".to_string(), None),
        ] {
            assert_eq!(redefined_after(&text, "claude"), line, "{text}");
        }
    }

    #[test]
    fn fish_and_rc_locations() {
        let home = Path::new("/h");
        assert_eq!(
            Shell::Fish.rc_file(home, |_| None),
            Path::new("/h/.config/fish/config.fish")
        );
        assert_eq!(
            Shell::Zsh.rc_file(home, |v| (v == "ZDOTDIR").then(|| "/z".to_string())),
            Path::new("/z/.zshrc")
        );
        assert!(
            block(Shell::Fish, Path::new("/k's/keyfence"))
                .contains("'/k\\'s/keyfence' shell-init fish | source")
        );
        assert_eq!(Shell::from_path("/usr/bin/zsh"), Some(Shell::Zsh));
        assert_eq!(Shell::from_path("/bin/tcsh"), None);
    }
}
