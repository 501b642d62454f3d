//! `run --guard`: the command gets its key; no process below it can get it — not from its own
//! environment (T1), not from an ancestor's /proc/PID/environ (T2), not from an ancestor's
//! memory or by ptrace (T3), and not by escaping supervision (T8: clone3, CLONE_UNTRACED,
//! unshare, double fork + setsid). Every probe writes what it got to a file, which masking does
//! not touch, and runs as the unprivileged user nobody: root passes the kernel checks guard
//! relies on (DESIGN.md §5).

mod agent_fence;
mod agent_fence_clis;
mod agent_files;
mod agent_sandbox;
mod hang;
mod launcher;

use crate::common::*;

/// The untrusted descendant: tries every path and writes what it got to `loot`.
const PROBE: &str = r#"
import ctypes, os, sys
loot = open(sys.argv[1], "w")
def say(*a):
    loot.write(" ".join(str(x) for x in a) + "\n"); loot.flush()
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

say("T1", dict(os.environ))

def ancestors():
    p = os.getppid()
    while p > 1:
        yield p
        with open(f"/proc/{p}/stat") as f:
            p = int(f.read().rsplit(")", 1)[1].split()[1])

for p in ancestors():
    try:
        with open(f"/proc/{p}/environ", "rb") as f:
            say("T2", p, f.read())
    except OSError as e:
        say("T2", p, "refused", e.strerror)
    try:
        with open(f"/proc/{p}/maps") as f:
            stack = [l.split()[0] for l in f if "[stack]" in l][0]
        lo, hi = (int(x, 16) for x in stack.split("-"))
        with open(f"/proc/{p}/mem", "rb") as f:
            f.seek(lo)
            say("T3 mem", p, f.read(hi - lo))
    except (OSError, IndexError, ValueError) as e:
        say("T3 mem", p, "refused", getattr(e, "strerror", e))
    # PTRACE_SEIZE: attaches without stopping the process (an ATTACH would leave it stopped).
    r = libc.ptrace(0x4206, p, 0, 0)
    say("T3 ptrace", p, r, os.strerror(ctypes.get_errno()) if r != 0 else "attached")

# T8: escape supervision, then look again.
r = libc.syscall(435, 0, 0)  # clone3
say("T8 clone3", r, os.strerror(ctypes.get_errno()))
CLONE_UNTRACED, SIGCHLD = 0x00800000, 17
r = libc.syscall(56, CLONE_UNTRACED | SIGCHLD, 0, 0, 0, 0)
if r == 0:
    os.execv("/bin/sh", ["sh", "-c", f"env >> {sys.argv[1]}.untraced"])
say("T8 untraced", r, os.strerror(ctypes.get_errno()) if r < 0 else "child started")
if r > 0:
    os.waitpid(r, 0)
if libc.unshare(0x10000000) == 0:  # CLONE_NEWUSER
    for p in ancestors():
        try:
            with open(f"/proc/{p}/environ", "rb") as f:
                say("T8 unshare", p, f.read())
        except OSError as e:
            say("T8 unshare", p, "refused", e.strerror)
else:
    say("T8 unshare", "not allowed", os.strerror(ctypes.get_errno()))
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sh", ["sh", "-c", f"env > {sys.argv[1]}.daemon; tr '\\0' '\\n' < /proc/{os.getppid()}/environ >> {sys.argv[1]}.daemon 2>&1"])
    os._exit(0)
os.wait()
import time; time.sleep(0.3)
say("done")
"#;

struct Attack {
    fx: Fixture,
    key: String,
}

fn setup() -> Attack {
    let (fx, key) = with_stored_key();
    fx.project_file("probe.py", PROBE);
    Attack { fx, key }
}

impl Attack {
    /// Runs the probe as a grandchild of the command (command -> sh -> python3) under `mode`;
    /// returns the command's report and everything the probe collected.
    fn run(&self, mode: &[&str]) -> Option<(Run, String)> {
        self.run_after(mode, "")
    }

    /// The same, with `first` run by the command (bash) before anything else.
    fn run_after(&self, mode: &[&str], first: &str) -> Option<(Run, String)> {
        let loot = self.fx.project.join("loot");
        let mut args = vec!["run"];
        args.extend_from_slice(mode);
        let target = format!(
            "{first} echo command-sees-key:${{#ANTHROPIC_API_KEY}}; sh -c 'python3 {}/probe.py {}'",
            self.fx.project.display(),
            loot.display()
        );
        args.extend(["--inject", "ANTHROPIC_API_KEY", "--", "bash", "-c", &target]);
        let r = self.fx.run_unprivileged(&args, &[])?;
        let mut got = String::new();
        for suffix in ["", ".untraced", ".daemon"] {
            let p = format!("{}{suffix}", loot.display());
            got.push_str(&String::from_utf8_lossy(
                &std::fs::read(&p).unwrap_or_default(),
            ));
        }
        Some((r, got))
    }
}

#[test]
fn without_guard_every_descendant_gets_the_injected_key() {
    let a = setup();
    let Some((r, loot)) = a.run(&[]) else {
        skipped();
        return;
    };
    assert!(
        loot.contains("done"),
        "probe did not finish: {loot}\n{}",
        r.stderr
    );
    // The baseline the guard changes: T1 and T2 both see the key.
    assert!(loot.contains(&a.key), "expected a leak without --guard");
}

#[test]
fn guard_keeps_the_key_from_every_descendant() {
    let a = setup();
    let Some((r, loot)) = a.run(&["--guard"]) else {
        skipped();
        return;
    };
    assert_guard_held(&a, &r, &loot);
}

/// Descendants are contained with a ruleset the helper leaves open at a fixed descriptor. A
/// command that closes it, or puts another file there, must not open a way around the domain:
/// the tracer then builds the ruleset inside each child.
#[test]
fn guard_holds_when_the_command_closes_or_reuses_the_shared_ruleset() {
    let a = setup();
    for first in ["exec 1000>&-;", "exec 1000</dev/null;"] {
        let Some((r, loot)) = a.run_after(&["--guard"], first) else {
            skipped();
            return;
        };
        assert_guard_held(&a, &r, &loot);
    }
}

fn assert_guard_held(a: &Attack, r: &Run, loot: &str) {
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The command itself got its key (its length, masked output aside).
    assert!(
        r.stdout.contains("command-sees-key:108"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    assert!(
        loot.contains("done"),
        "probe did not finish: {loot}\n{}",
        r.stderr
    );
    assert!(
        !loot.contains(&a.key),
        "the key leaked to a descendant under --guard:\n{loot}"
    );
    assert!(
        !loot.contains("ANTHROPIC_API_KEY"),
        "the variable reached a descendant:\n{loot}"
    );
    // Each path was really tried, and refused by the kernel.
    assert!(
        loot.contains("T2") && loot.contains("refused Permission denied"),
        "{loot}"
    );
    assert!(loot.contains("T3 mem"), "{loot}");
    assert!(loot.contains("T3 ptrace"), "{loot}");
    assert!(!loot.contains("attached"), "{loot}");
    assert!(
        loot.contains("T8 clone3 -1 Function not implemented"),
        "{loot}"
    );
    assert!(
        loot.contains("T8 untraced -1 Operation not permitted"),
        "{loot}"
    );
    // The double-forked, setsid daemon still ran, without the key.
    assert!(loot.contains("PATH="), "the daemon did not run: {loot}");
}

/// The command itself starting programs in every way a runtime does: fork+exec, posix_spawn
/// (vfork: the child shares the command's memory, so the environment array must be replaced,
/// never edited in place), and from a second thread. The command keeps its key throughout.
#[test]
fn guard_scrubs_every_kind_of_child_and_leaves_the_command_intact() {
    let (fx, key) = with_stored_key();
    let out = fx.project.join("children");
    fx.project_file(
        "target.py",
        &format!(
            r#"
import os, subprocess, threading
k = os.environ["ANTHROPIC_API_KEY"]
out = "{out}"
def env_to(path, how):
    if how == "posix_spawn":
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        pid = os.posix_spawn("/usr/bin/env", ["env"], os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, fd, 1)])
        os.waitpid(pid, 0)
        os.close(fd)
    elif how == "fork":
        pid = os.fork()
        if pid == 0:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, 1)
            os.execve("/usr/bin/env", ["env"], os.environ)
        os.waitpid(pid, 0)
    else:
        with open(path, "wb") as f:
            f.write(subprocess.run(["env"], capture_output=True).stdout)
env_to(out + ".spawn", "posix_spawn")
env_to(out + ".fork", "fork")
t = threading.Thread(target=env_to, args=(out + ".thread", "subprocess"))
t.start(); t.join()
print("intact", os.environ["ANTHROPIC_API_KEY"] == k and len(k))
"#,
            out = out.display()
        ),
    );
    let target = fx.project.join("target.py");
    let Some(r) = fx.run_unprivileged(
        &[
            "run",
            "--guard",
            "-v",
            "--inject",
            "ANTHROPIC_API_KEY",
            "--",
            "python3",
            target.to_str().unwrap(),
        ],
        &[],
    ) else {
        skipped();
        return;
    };
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("intact 108"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    for how in ["spawn", "fork", "thread"] {
        let got = std::fs::read_to_string(format!("{}.{how}", out.display())).unwrap();
        assert!(
            got.contains("PATH="),
            "{how}: no environment captured: {got}"
        );
        assert!(
            !got.contains("ANTHROPIC_API_KEY") && !got.contains(&key),
            "{how}: the key reached the child"
        );
    }
    assert!(
        r.stderr.contains("environment(s) rewritten"),
        "{}",
        r.stderr
    );
}

/// The variable is removed by value too: a child given the key under another name gets
/// neither.
#[test]
fn guard_removes_the_value_under_any_name() {
    let (fx, _key) = with_stored_key();
    let Some(r) = guarded_sh(
        &fx,
        "COPY=\"x $ANTHROPIC_API_KEY\" env | grep -c -e COPY -e ANTHROPIC; true",
        &[],
    ) else {
        skipped();
        return;
    };
    assert_eq!(r.stdout.trim(), "0", "{}\n{}", r.stdout, r.stderr);
}

#[test]
fn guard_says_why_a_debugger_fails_and_a_setuid_program_loses_privileges() {
    let (fx, _key) = with_stored_key();
    let Some(r) = guarded_sh(
        &fx,
        &format!(
            "python3 -c 'import ctypes; ctypes.CDLL(None).ptrace(0, 0, 0, 0)'; {} && echo ok",
            setuid_true().display()
        ),
        &[],
    ) else {
        skipped();
        return;
    };
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("used ptrace") && r.stderr.contains("debugger"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("ok"), "{}", r.stdout);
    assert!(
        r.stderr.contains("setuid-true is setuid/setgid") && r.stderr.contains("no_new_privs"),
        "{}",
        r.stderr
    );
}

/// A root-owned setuid copy of `true`, outside the fixture (which is handed to nobody, and
/// chown clears setuid bits).
fn setuid_true() -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("setuid-true");
    if !p.exists() {
        let tmp = dir.join(format!("setuid-true.{}", std::process::id()));
        std::fs::copy("/bin/true", &tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o4755)).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
    }
    p
}

#[test]
fn guard_ends_the_tree_with_the_command() {
    let (fx, _key) = with_stored_key();
    let marker = fx.project.join("survived");
    let script = format!("(sleep 1; touch {}) & exit 3", marker.display());
    let Some(r) = guarded_sh(&fx, &script, &[]) else {
        skipped();
        return;
    };
    // The command's own status comes back, and what it left behind was stopped.
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("left running"), "{}", r.stderr);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        !marker.exists(),
        "a background process outlived the guarded command"
    );
}

#[test]
fn guard_exit_status_and_signals_are_the_commands() {
    let (fx, _key) = with_stored_key();
    let Some(r) = guarded_sh(&fx, "kill -TERM $$", &[]) else {
        skipped();
        return;
    };
    // keyfence dies of the signal that ended the command.
    assert_eq!(r.code, -15, "{}", r.stderr);
    let r = fx
        .run_unprivileged(
            &["run", "--guard", "--", "no-such-program-here"],
            // Only directories nobody can search: root's PATH has some it cannot.
            &[("PATH", "/usr/bin:/bin")],
        )
        .unwrap();
    assert_eq!(r.code, 127, "{}", r.stderr);
    assert!(r.stderr.contains("command not found"), "{}", r.stderr);
}

/// Fail closed: when the supervisor dies, the tree dies with it (PTRACE_O_EXITKILL), and no
/// process can start a program without it (the filter's exec stops fail with ENOSYS).
#[test]
fn guard_tree_dies_with_its_supervisor() {
    let (fx, _key) = with_stored_key();
    if !fx.hand_to_unprivileged() {
        skipped();
        return;
    }
    let pidfile = fx.project.join("pid");
    let mut kf = std::process::Command::new(AS_UNPRIVILEGED[0])
        .args(&AS_UNPRIVILEGED[1..])
        .arg(BIN)
        .args([
            "run",
            "--guard",
            "--inject",
            "ANTHROPIC_API_KEY",
            "--",
            "sh",
            "-c",
        ])
        .arg(format!("echo $$ > {}; exec sleep 60", pidfile.display()))
        .current_dir(&fx.project)
        .env_clear()
        .env("HOME", &fx.home)
        .env("PATH", "/usr/bin:/bin")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let pid = loop {
        if let Ok(s) = std::fs::read_to_string(&pidfile)
            && let Ok(p) = s.trim().parse::<u32>()
        {
            break p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the command never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    assert!(proc_dir.exists());
    kf.kill().unwrap();
    kf.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    // Gone, or a zombie waiting for its reaper.
    while proc_dir.exists()
        && !std::fs::read_to_string(proc_dir.join("stat"))
            .unwrap_or_default()
            .contains(") Z")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the command outlived its supervisor"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Guard keeps the key out of the tree's processes, and the store and the credential files out
/// of what the command starts (the descendant fence); the sandbox on top changes nothing of
/// that. Without guard, the same descendant reads all three.
#[test]
fn guard_leaves_a_descendant_no_path_to_the_key() {
    let (mut fx, key) = with_stored_key();
    let aws = fx.key("aws-secret");
    fx.home_file(
        ".aws/credentials",
        &format!("[default]\naws_secret_access_key = {aws}\n"),
    );
    let loot = fx.project.join("loot");
    let probe =
        format!("env; cat ~/.aws/credentials; {BIN} secret get ANTHROPIC_API_KEY; echo done",);
    let target = |first: &str| {
        format!(
            "{first} sh -c '{}' > {} 2>&1",
            probe.replace('\'', "'\\''"),
            loot.display()
        )
    };
    let run = |mode: &[&str], first: &str| {
        let mut args = vec!["run"];
        args.extend_from_slice(mode);
        let target = target(first);
        args.extend(["--inject", "ANTHROPIC_API_KEY", "--", "sh", "-c", &target]);
        fx.run_unprivileged(&args, &[("PATH", "/usr/bin:/bin")])
            .map(|r| (r, std::fs::read_to_string(&loot).unwrap_or_default()))
    };
    let Some((_, open)) = run(&[], "") else {
        skipped();
        return;
    };
    // The baseline: every way works.
    assert!(open.contains("done"), "{open}");
    assert!(open.contains(&format!("ANTHROPIC_API_KEY={key}")), "{open}");
    assert!(open.contains(&aws), "{open}");
    assert_eq!(open.matches(key.as_str()).count(), 2, "{open}");
    // Also where the command closed the ruleset it was handed: the tracer then builds the
    // fence inside each child, rule by rule.
    for (mode, first) in [
        (&["--guard"][..], ""),
        (&["--guard"], "exec 1000>&-;"),
        (&["--guard", "--sandbox"], ""),
    ] {
        let (r, fenced) = run(mode, first).unwrap();
        assert!(fenced.contains("done"), "{mode:?} {first}: {fenced}");
        // `secret get` says why it cannot answer.
        assert!(
            fenced.contains("the store is out of reach here"),
            "{mode:?} {first}: {fenced}"
        );
        assert!(
            !fenced.contains(&key) && !fenced.contains(&aws),
            "{mode:?} {first} leaked:\n{fenced}"
        );
        assert!(!r.stdout.contains(&key) && !r.stderr.contains(&key));
    }
}

/// The command itself keeps its credential file, reading and rewriting it as Claude Code does
/// when it refreshes its login (a new file renamed over the old one), while what it starts can
/// read neither the old file nor the new one.
#[test]
fn guard_leaves_the_command_its_own_credential_file() {
    let (mut fx, _key) = with_stored_key();
    let old = fx.key("anthropic");
    let new = fx.key("anthropic");
    fx.home_file(
        ".claude/.credentials.json",
        &format!("{{\"t\": \"{old}\"}}\n"),
    );
    let loot = fx.project.join("loot");
    let script = format!(
        "sh -c 'cat ~/.claude/.credentials.json' > {loot} 2>&1; \
         read -r line < ~/.claude/.credentials.json; case \"$line\" in *{old}*) echo read-own;; esac; \
         printf '{{\"t\": \"{new}\"}}\\n' > ~/.claude/.tmp-cred && \
         mv ~/.claude/.tmp-cred ~/.claude/.credentials.json && echo rewrote-own; \
         sh -c 'cat ~/.claude/.credentials.json' >> {loot} 2>&1; true",
        loot = loot.display()
    );
    let Some(r) = guarded_sh(&fx, &script, &[("PATH", "/usr/bin:/bin")]) else {
        skipped();
        return;
    };
    assert!(
        r.stdout.contains("read-own\nrewrote-own"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    let written = std::fs::read_to_string(fx.home.join(".claude/.credentials.json")).unwrap();
    assert!(written.contains(&new));
    let loot = std::fs::read_to_string(&loot).unwrap();
    assert!(!loot.contains(&old) && !loot.contains(&new), "{loot}");
    assert_eq!(loot.matches("Permission denied").count(), 2, "{loot}");
}

/// A descendant tries to plant a way to the credential file: a hard link beside it in the home,
/// in a directory it makes (which the next fence, made again for the new directory or by the
/// next run, grants whole), a move there. The kernel refuses each: the file would gain rights
/// (Landlock's "refer"; the fence grants it only with the directories it grants whole). A
/// symlink can be made, and so can a hard link beside the file by a process outside any fence
/// (here the test itself): the next fence's listing of the home grants neither, while the
/// command itself reads through both.
#[test]
fn guard_fence_ignores_links_planted_by_an_earlier_run() {
    let (mut fx, _key) = with_stored_key();
    let aws = fx.key("aws-secret");
    let creds = fx.home_file(
        ".aws/credentials",
        &format!("[default]\naws_secret_access_key = {aws}\n"),
    );
    let plant = "sh -c 'ln ~/.aws/credentials ~/notes; ln -s ~/.aws ~/sl; \
                 mkdir ~/stash; ln ~/.aws/credentials ~/stash/c; \
                 mv ~/.aws/credentials ~/stash/m' 2>&1; true";
    let Some(r) = guarded_sh(&fx, plant, &[("PATH", "/usr/bin:/bin")]) else {
        skipped();
        return;
    };
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(fx.home.join("sl").exists() && fx.home.join("stash").is_dir());
    for refused in ["notes", "stash/c", "stash/m"] {
        assert!(!fx.home.join(refused).exists(), "{refused}: {}", r.stdout);
    }
    assert_eq!(
        r.stdout.matches("Invalid cross-device link").count(),
        2,
        "{}",
        r.stdout
    );
    std::fs::hard_link(&creds, fx.home.join("notes")).unwrap();
    let loot = fx.project.join("loot");
    let read = format!(
        "read -r a < ~/notes; read -r b < ~/sl/credentials; echo \"command: $a $b\"; \
         sh -c 'cat ~/notes ~/sl/credentials' > {} 2>&1",
        loot.display()
    );
    let r = guarded_sh(&fx, &read, &[("PATH", "/usr/bin:/bin")]).unwrap();
    assert!(
        r.stdout.contains("command: [default] [default]"),
        "{}",
        r.stdout
    );
    let loot = std::fs::read_to_string(&loot).unwrap();
    assert!(
        !loot.contains(&aws),
        "leaked through a planted link:\n{loot}"
    );
    assert_eq!(loot.matches("Permission denied").count(), 2, "{loot}");
}

/// The fence lists the home entry by entry (to leave out `~/.aws` and the rest), so a directory
/// created there during the run has no rule: a process that already runs under the fence cannot
/// read it, but the next process the command starts gets a fence made again, which can — a new
/// project directory made by one command the agent runs is readable by the next.
#[test]
fn guard_fence_is_made_again_for_a_directory_created_in_the_home() {
    let (mut fx, _key) = with_stored_key();
    let aws = fx.key("aws-secret");
    fx.home_file(
        ".aws/credentials",
        &format!("[default]\naws_secret_access_key = {aws}\n"),
    );
    let script = "sh -c 'mkdir ~/newproj && echo hello > ~/newproj/f && \
                  { cat ~/newproj/f || echo same-process-tree-denied; }' 2>&1; \
                  sh -c 'cat ~/newproj/f; cat ~/.aws/credentials' 2>&1; true";
    let Some(r) = guarded_sh(&fx, script, &[("PATH", "/usr/bin:/bin")]) else {
        skipped();
        return;
    };
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("same-process-tree-denied"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("\nhello\n"), "{}", r.stdout);
    assert!(!r.stdout.contains(&aws), "{}", r.stdout);
    assert!(
        r.stdout.ends_with("credentials: Permission denied\n"),
        "{}",
        r.stdout
    );
}

/// A descendant makes the command dump core (`prlimit` it, then `SIGSEGV` it) and reads the
/// injected key from the core file. Under guard the command's hard core limit is 0, which no
/// process of the tree may raise, and (Landlock ABI 6) the signal is refused.
#[test]
fn guard_keeps_a_descendant_from_making_the_command_dump_core() {
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    if pattern.starts_with('|') || !pattern.trim_start().starts_with("core") {
        skip(&format!(
            "core_pattern is {:?}: the baseline needs core files written to the crashing \
             process's directory",
            pattern.trim()
        ));
        return;
    }
    let (fx, key) = with_stored_key();
    let attack = "grep 'core file' /proc/$$/limits; \
        sh -c 'prlimit --pid $PPID --core=unlimited:unlimited; kill -SEGV $PPID; sleep 1'; \
        echo survived";
    let cores = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&fx.project)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("core"))
            .collect()
    };
    let env = [("PATH", "/usr/bin:/bin")];
    let Some(open) = injected_sh(&fx, &[], attack, &env) else {
        skipped();
        return;
    };
    // The baseline: the command dies of the signal and leaves its memory, key and all.
    assert_eq!(open.code, -11, "{}{}", open.stdout, open.stderr);
    let dumped = cores();
    assert_eq!(dumped.len(), 1, "no core file: {dumped:?}");
    let core = std::fs::read(&dumped[0]).unwrap();
    assert!(memchr::memmem::find(&core, key.as_bytes()).is_some());
    std::fs::remove_file(&dumped[0]).unwrap();

    let r = guarded_sh(&fx, attack, &env).unwrap();
    assert!(r.stdout.contains("survived"), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("Max core file size        0                    0"),
        "{}",
        r.stdout
    );
    assert!(cores().is_empty(), "{:?}", cores());
    assert!(!r.stdout.contains(&key) && !r.stderr.contains(&key));
}

/// A same-user server outside the tree, standing in for tmux: it reads whatever file it is
/// asked for. Started by the test, as nobody, outside keyfence, at a tmux socket path.
const OUTSIDE_HELPER: &str = r#"
import os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX)
s.bind(path)
s.listen(4)
open(path + ".ready", "w").close()
while True:
    c, _ = s.accept()
    want = c.recv(4096).decode()
    try:
        c.sendall(open(want, "rb").read())
    except OSError as e:
        c.sendall(str(e).encode())
    c.close()
"#;

/// A descendant asks a same-user process outside the tree (a tmux server) to read the
/// credential file for it: the fence does not bind that process. Guard hides the socket (a
/// mount namespace over the tree), so the connect fails; without guard the file comes back.
#[test]
fn guard_hides_a_same_user_server_outside_the_tree() {
    let (mut fx, _key) = with_stored_key();
    let aws = fx.key("aws-secret");
    let creds = fx.home_file(
        ".aws/credentials",
        &format!("[default]\naws_secret_access_key = {aws}\n"),
    );
    if !fx.hand_to_unprivileged() {
        skipped();
        return;
    }
    let uid = unprivileged_uid();
    let dir = std::path::PathBuf::from(format!("/tmp/tmux-{uid}"));
    let _ = std::fs::create_dir(&dir);
    if nix_is_root() {
        std::os::unix::fs::chown(&dir, Some(uid), Some(uid)).unwrap();
    }
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let sock = dir.join(format!("keyfence-guard-{}", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    // Killed and removed however the test ends.
    struct Server(std::process::Child, std::path::PathBuf);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
            let _ = std::fs::remove_file(&self.1);
            let _ = std::fs::remove_file(self.1.with_extension("ready"));
        }
    }
    let server = Server(
        std::process::Command::new(AS_UNPRIVILEGED[0])
            .args(&AS_UNPRIVILEGED[1..])
            .args(["/usr/bin/python3", "-c", OUTSIDE_HELPER])
            .arg(&sock)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
        sock.clone(),
    );
    let ready = sock.with_extension("ready");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ready.exists() {
        assert!(std::time::Instant::now() < deadline, "helper did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let loot = fx.project.join("loot");
    let ask = format!(
        "python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); \
         s.sendall(sys.argv[2].encode()); print(s.recv(4096).decode())' {} {} > {} 2>&1; true",
        sock.display(),
        creds.display(),
        loot.display()
    );
    let script = format!("sh -c \"{ask}\"; true");
    let env = [("PATH", "/usr/bin:/bin")];
    let open = injected_sh(&fx, &[], &script, &env).unwrap();
    let opened = std::fs::read_to_string(&loot).unwrap_or_default();
    let fenced = guarded_sh(&fx, &script, &env).unwrap();
    let got = std::fs::read_to_string(&loot).unwrap_or_default();
    drop(server);
    // The baseline: the server outside reads the file the fence denies.
    assert_eq!(open.code, 0, "{}", open.stderr);
    assert!(opened.contains(&aws), "{opened}");
    assert!(!got.contains(&aws), "leaked through the server");
    assert!(
        got.contains("Connection refused"),
        "{got}\n{}",
        fenced.stderr
    );
    assert!(
        fenced.stderr.contains("hidden from the command's tree")
            && fenced.stderr.contains(&sock.display().to_string()),
        "{}",
        fenced.stderr
    );
}

/// The nested Landlock domain restricts nothing a program does with files: moving a file
/// across directories (which every Landlock domain forbids unless it grants "refer") works.
#[test]
fn guard_lets_descendants_rename_across_directories() {
    let (fx, _key) = with_stored_key();
    let Some(r) = guarded_sh(
        &fx,
        "mkdir -p a b && touch a/f && sh -c 'mv a/f b/f && ln b/f a/g' && ls b a",
        &[("PATH", "/usr/bin:/bin")],
    ) else {
        skipped();
        return;
    };
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains('f') && r.stdout.contains('g'),
        "{}",
        r.stdout
    );
}

/// A child of the command is in the nested domain from its fork, not only from its first exec
/// (so that its exec then costs one stop, as a grandchild's does): a subshell, a fork that runs
/// no program, cannot open the command's environment, which it can without guard.
#[test]
fn guard_contains_the_commands_children_from_their_fork() {
    let (fx, _key) = with_stored_key();
    let script =
        "( if { true; } < /proc/$$/environ; then echo OPENED; else echo DENIED; fi ) 2>/dev/null";
    let env = [("PATH", "/usr/bin:/bin")];
    let Some(guarded) = guarded_sh(&fx, script, &env) else {
        skipped();
        return;
    };
    assert_eq!(guarded.stdout.trim(), "DENIED", "{}", guarded.stderr);
    let open = injected_sh(&fx, &[], script, &env).unwrap();
    assert_eq!(open.stdout.trim(), "OPENED", "{}", open.stderr);
}

/// A fixture outside /tmp with a fresh fake Anthropic key in its store.
fn with_stored_key() -> (Fixture, String) {
    let mut fx = Fixture::outside_tmp();
    let key = fx.key("anthropic");
    fx.store_secret("ANTHROPIC_API_KEY", &key);
    (fx, key)
}

fn skipped() {
    skip("setpriv (util-linux) is needed to drop from root to nobody");
}

/// The 32-bit system call ABI (`int 0x80` from a 64-bit process) cannot exec under guard: its
/// registers are not rewritten, so the filter refuses it (EPERM) instead of letting a program
/// start with the protected environment.
const INT80_EXEC: &str = r#"
import ctypes, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
# Read, write, execute; private, anonymous, below 4 GiB (MAP_32BIT) so 32-bit pointers reach it.
base = libc.mmap(None, 4096, 7, 0x22 | 0x40, -1, 0)
path, argv = base + 0x100, base + 0x200
ctypes.memmove(path, b"/usr/bin/env\0", 13)
ctypes.memmove(argv, struct.pack("<II", path, 0), 8)
code = (b"\x53" + b"\xb8\x0b\x00\x00\x00" + b"\xbb" + struct.pack("<I", path)
        + b"\xb9" + struct.pack("<I", argv) + b"\x31\xd2" + b"\xcd\x80" + b"\x5b\xc3")
ctypes.memmove(base, code, len(code))
f = ctypes.CFUNCTYPE(ctypes.c_int)(base)
print("int80 execve returned", f(), flush=True)
"#;

#[test]
fn guard_refuses_32_bit_execs() {
    let (fx, _key) = with_stored_key();
    fx.project_file("int80.py", INT80_EXEC);
    let script = format!("sh -c 'python3 {}/int80.py'", fx.project.display());
    let Some(r) = guarded_sh(&fx, &script, &[("PATH", "/usr/bin:/bin")]) else {
        skipped();
        return;
    };
    assert!(
        r.stdout.contains("int80 execve returned -1"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    assert!(!r.stdout.contains("ANTHROPIC_API_KEY"), "{}", r.stdout);
    // Without guard the same call is not refused (it runs env, or the kernel lacks the 32-bit
    // ABI and says ENOSYS): the -1 above is the filter's doing.
    let r = fx
        .run_unprivileged(
            &["run", "--", "sh", "-c", &script],
            &[("PATH", "/usr/bin:/bin")],
        )
        .unwrap();
    assert!(!r.stdout.contains("returned -1"), "{}", r.stdout);
}

/// `keyfence run --guard --inject ANTHROPIC_API_KEY -- sh -c SCRIPT` as nobody.
fn guarded_sh(fx: &Fixture, script: &str, env: &[(&str, &str)]) -> Option<Run> {
    injected_sh(fx, &["--guard"], script, env)
}

/// `keyfence run OPTIONS --inject ANTHROPIC_API_KEY -- sh -c SCRIPT` as nobody.
fn injected_sh(fx: &Fixture, options: &[&str], script: &str, env: &[(&str, &str)]) -> Option<Run> {
    let mut args = vec!["run"];
    args.extend(options);
    args.extend(["--inject", "ANTHROPIC_API_KEY", "--", "sh", "-c", script]);
    fx.run_unprivileged(&args, env)
}

/// Counts copies of a value (read from a file) in the writable memory of the parent process.
const COUNT_COPIES: &str = r#"
import os, sys
needle = open(sys.argv[1], "rb").read()
pid = os.getppid()
total = 0
with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
    for line in maps:
        f = line.split()
        if "w" not in f[1]:
            continue
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        try:
            mem.seek(lo)
            total += mem.read(hi - lo).count(needle)
        except OSError:
            pass
print("copies", total)
"#;

/// The supervisor keeps an injected value only where it must. The standard library copies the
/// command's environment for execve and frees the copies plainly; keyfence's allocator zeroes
/// them, and the supervisor drops its own list once the command has started. The command
/// (root here, so the supervisor being non-dumpable does not stop it) finds one copy in its
/// parent's writable memory: guard's list of what to remove at each exec.
#[test]
fn supervisor_memory_holds_no_stray_copy_of_the_value() {
    if !nix_is_root() {
        skipped();
        return;
    }
    let (fx, key) = with_stored_key();
    let needle = fx.project_file("needle", &key);
    let script = fx.project_file("count.py", COUNT_COPIES);
    let r = fx.run(
        &[
            "run",
            "--guard",
            "--no-mask",
            "--inject",
            "ANTHROPIC_API_KEY",
            "--",
            "python3",
            script.to_str().unwrap(),
            needle.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "copies 1", "{}", r.stderr);
}
