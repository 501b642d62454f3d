//! `run --deny-read` and a profile's `deny_read`: a file or directory hidden from the command's
//! whole tree. Each attack runs first where it works (no `--deny-read`, or the bare mount that
//! hides without keyfence's seal), then under keyfence, where it must not: read the file, list
//! the directory, unmount what hides them (directly, and from a user namespace of the
//! command's own), link or rename the file, and go round the mount namespace through another
//! process's `/proc/PID/root`.

use crate::common::*;
use std::path::Path;
use std::process::{Child, Command};

/// The command: tries each way to the hidden paths, prints `name=outcome` lines (what it read
/// included: the test then checks keyfence's output for the key).
const PROBE: &str = r#"
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
file, folder, outside = sys.argv[1], sys.argv[2], sys.argv[3]
def attempt(name, f):
    try:
        got = repr(f())
        print(f"{name}=ok" + (" secret" if "OPENAI_API_KEY" in got or "stripe" in got else f" {got}"))
    except OSError as e:
        print(f"{name}={errno.errorcode.get(e.errno, e.errno)}")
def call(fn, *args):
    if fn(*args) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return ""
attempt("read", lambda: open(file).read())
attempt("list", lambda: sorted(os.listdir(folder)))
attempt("read in folder", lambda: open(os.path.join(folder, "prod.json")).read())
attempt("read round", lambda: open(f"/proc/{outside}/root{os.path.abspath(file)}").read())
attempt("link", lambda: (os.link(file, "copy"), open("copy").read()))
attempt("rename", lambda: (os.rename(file, "moved"), open("moved").read()))
attempt("umount", lambda: (call(libc.umount2, file.encode(), 2), open(file).read()))
attempt("umount folder", lambda: (call(libc.umount2, folder.encode(), 2), os.listdir(folder)))
# A user namespace and mount namespace of the command's own, where it is root.
uid, gid = os.geteuid(), os.getegid()
def own_namespace():
    call(libc.unshare, 0x10000000 | 0x00020000)
    for f, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{f}", "w") as w:
            w.write(text)
    call(libc.umount2, file.encode(), 2)
    return open(file).read()
attempt("umount in own namespace", own_namespace)
"#;

struct Setup {
    fx: Fixture,
    key: String,
    probe: String,
}

fn setup() -> Option<Setup> {
    if Command::new("python3").arg("--version").output().is_err() {
        skip("python3 is needed for the deny-read probe (.ci/run installs it)");
        return None;
    }
    let mut fx = Fixture::outside_tmp();
    let key = fx.key("openai");
    let folder_key = fx.key("stripe");
    fx.project_file("notes.txt", &format!("OPENAI_API_KEY={key}\n"));
    fx.project_file(
        "secrets/prod.json",
        &format!("{{\"stripe\": \"{folder_key}\"}}\n"),
    );
    let probe = fx.project_file("probe.py", PROBE);
    Some(Setup {
        key,
        probe: probe.to_str().unwrap().to_string(),
        fx,
    })
}

/// A process of the same user outside keyfence's tree (an editor, a shell): its
/// `/proc/PID/root` is the filesystem as the user sees it, without the command's mounts.
struct Outside(Child);

impl Outside {
    fn start(unprivileged: bool) -> Outside {
        let mut c = match unprivileged && nix_is_root() {
            true => {
                let mut c = Command::new(AS_UNPRIVILEGED[0]);
                c.args(&AS_UNPRIVILEGED[1..]).arg("sleep");
                c
            }
            false => Command::new("sleep"),
        };
        Outside(c.arg("60").spawn().expect("sleep"))
    }

    fn pid(&self) -> String {
        self.0.id().to_string()
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn outcome<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name} in the probe's output:\n{out}"))
}

/// What the probe got (it prints no key).
fn outcomes(out: &str) -> String {
    out.to_string()
}

fn probe_args<'a>(s: &'a Setup, outside: &'a str, before: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run"];
    args.extend(before);
    args.extend(["--", "python3", &s.probe, "notes.txt", "secrets", outside]);
    args
}

/// Each way to the hidden paths fails, for an ordinary user; keyfence says what it hid.
fn assert_hidden(s: &Setup, r: &Run) {
    let out = &r.stdout;
    assert!(
        out.contains("umount in own namespace="),
        "{}\n{}",
        outcomes(out),
        r.stderr
    );
    assert!(!out.contains("secret"), "{}", outcomes(out));
    assert_eq!(outcome(out, "read"), "EACCES", "{}", outcomes(out));
    assert_eq!(outcome(out, "list"), "ok []", "{}", outcomes(out));
    assert_eq!(
        outcome(out, "read in folder"),
        "ENOENT",
        "{}",
        outcomes(out)
    );
    assert_eq!(outcome(out, "read round"), "EACCES", "{}", outcomes(out));
    // The file under the mount is /dev/null's: another filesystem.
    assert_eq!(outcome(out, "link"), "EXDEV", "{}", outcomes(out));
    assert_eq!(outcome(out, "rename"), "EBUSY", "{}", outcomes(out));
    assert_eq!(outcome(out, "umount"), "EPERM", "{}", outcomes(out));
    assert_eq!(outcome(out, "umount folder"), "EPERM", "{}", outcomes(out));
    assert_ne!(
        outcome(out, "umount in own namespace"),
        "ok",
        "{}",
        outcomes(out)
    );
    assert!(
        r.stderr
            .contains("keyfence: hidden from the command: notes.txt, secrets"),
        "{}",
        r.stderr
    );
    r.assert_no_secret(&s.fx.planted);
}

#[test]
fn a_hidden_file_and_folder_stay_hidden_every_way_round() {
    let Some(s) = setup() else { return };
    let outside = Outside::start(true);
    // Without the flag every attack that needs no privilege works: the probe can succeed.
    let Some(r) =
        s.fx.run_unprivileged(&probe_args(&s, &outside.pid(), &[]), &[])
    else {
        skip("setpriv (util-linux) is needed to run the command as nobody");
        return;
    };
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(outcome(&r.stdout, "read") == "ok secret");
    assert!(outcome(&r.stdout, "read round") == "ok secret");
    assert!(outcome(&r.stdout, "read in folder") == "ok secret");
    // The link and the rename moved the file: put it back.
    std::fs::write(
        s.fx.project.join("notes.txt"),
        format!("OPENAI_API_KEY={}\n", s.key),
    )
    .unwrap();
    let _ = std::fs::remove_file(s.fx.project.join("copy"));
    let _ = std::fs::remove_file(s.fx.project.join("moved"));
    s.fx.hand_to_unprivileged();

    let hide = ["--deny-read", "notes.txt", "--deny-read", "secrets"];
    let r =
        s.fx.run_unprivileged(&probe_args(&s, &outside.pid(), &hide), &[])
            .unwrap();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_hidden(&s, &r);
    // Nothing was lost: the files are there, as they were.
    let text = std::fs::read_to_string(s.fx.project.join("notes.txt")).unwrap();
    assert!(text.contains(&s.key));
}

/// Root could unmount what hides the paths, and read them through another process's root,
/// where a mount namespace alone hides them (the control); keyfence's Landlock seal forbids
/// both, to root too.
#[test]
fn as_root_the_seal_keeps_what_a_mount_alone_would_not() {
    let Some(s) = setup() else { return };
    if !nix_is_root() {
        skip("this test checks what root can do; run the suite as root (CI does)");
        return;
    }
    let outside = Outside::start(false);
    let notes = s.fx.project.join("notes.txt");
    let bare = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount --bind /dev/null {n} && mount -o remount,bind,ro,nodev {n} && \
             python3 {p} notes.txt secrets {o}",
            n = notes.display(),
            p = s.probe,
            o = outside.pid()
        ))
        .current_dir(&s.fx.project)
        .output()
        .expect("unshare");
    let out = String::from_utf8_lossy(&bare.stdout);
    assert_eq!(outcome(&out, "read"), "EACCES", "{}", outcomes(&out));
    assert!(
        outcome(&out, "read round") == "ok secret",
        "{}",
        outcomes(&out)
    );
    // Unmounted: the last attempts read the file again.
    assert!(outcome(&out, "umount") == "ok secret", "{}", outcomes(&out));

    let r = s.fx.run(
        &probe_args(
            &s,
            &outside.pid(),
            &["--deny-read", "notes.txt", "--deny-read", "secrets"],
        ),
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_hidden(&s, &r);
}

/// Under guard the hidden paths are hidden from the whole tree: the agent and what it runs.
#[test]
fn under_guard_a_hidden_file_is_hidden_from_the_agents_commands() {
    let Some(s) = setup() else { return };
    let outside = Outside::start(true);
    let Some(r) = s.fx.run_unprivileged(
        &[
            "run",
            "--guard",
            "--deny-read",
            "notes.txt",
            "--deny-read",
            "secrets",
            "--",
            "sh",
            "-c",
            &format!("python3 {} notes.txt secrets {}", s.probe, outside.pid()),
        ],
        &[],
    ) else {
        skip("setpriv (util-linux) is needed to run the command as nobody");
        return;
    };
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_hidden(&s, &r);
}

#[test]
fn as_root_guard_without_the_sandbox_refuses_to_hide() {
    let Some(s) = setup() else { return };
    if !nix_is_root() {
        skip("this test checks what root can do; run the suite as root (CI does)");
        return;
    }
    let r = s.fx.run(
        &[
            "run",
            "--guard",
            "--deny-read",
            "notes.txt",
            "--",
            "cat",
            "notes.txt",
        ],
        &[],
    );
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("as root, the command could unmount what hides notes.txt"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--sandbox"), "{}", r.stderr);
    r.assert_no_secret(&s.fx.planted);
}

#[test]
fn a_path_that_is_not_there_is_an_error_not_a_silent_nothing() {
    let Some(s) = setup() else { return };
    let r = s.fx.run(
        &["run", "--deny-read", "note.txt", "--", "echo", "ran"],
        &[],
    );
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(!r.stdout.contains("ran"));
    assert!(
        r.stderr
            .contains("--deny-read note.txt: no such file or directory"),
        "{}",
        r.stderr
    );
    // A pattern that matches nothing here is not a typo: a profile's apply everywhere.
    let r =
        s.fx.run(&["run", "--deny-read", "*.pem", "--", "echo", "ran"], &[]);
    assert_eq!((r.code, r.stdout.trim()), (0, "ran"), "{}", r.stderr);
}

/// A cloned repository's keyfence.toml tries to show the install profile's `.env` again: it
/// may add to what is hidden, never take away.
#[test]
fn a_projects_file_cannot_show_what_the_install_profile_hides() {
    let Some(s) = setup() else { return };
    let mut fx = s.fx;
    // A repository of its own: the profile's entries start at its root.
    std::fs::create_dir_all(fx.project.join(".git")).unwrap();
    let env_key = fx.key("anthropic");
    fx.project_file(".env", &format!("ANTHROPIC_API_KEY={env_key}\n"));
    fx.project_file(
        "keyfence.toml",
        "[[profile]]\nname = \"install\"\ndeny_read = [\"!.env\", \"notes.txt\"]\n",
    );
    let Some(r) = fx.run_unprivileged(
        &[
            "run",
            "--profile",
            "install",
            "--",
            "sh",
            "-c",
            "cat .env; cat notes.txt; echo done",
        ],
        &[],
    ) else {
        skip("setpriv (util-linux) is needed to run the command as nobody");
        return;
    };
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("done"), "{}", r.stderr);
    assert!(r.stderr.contains(".env: Permission denied"), "{}", r.stderr);
    assert!(
        r.stderr.contains("notes.txt: Permission denied"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(
            "the project's profile 'install' sets `deny_read = [\"!.env\"]`, which turns a \
             protection off; ignored"
        ),
        "{}",
        r.stderr
    );
    r.assert_no_secret(&fx.planted);
}

/// The project bound at a second place (as dev containers do): hiding the file at one mount
/// point would leave it readable at the other (the control, a bare mount), so keyfence hides
/// it at both.
#[test]
fn a_file_is_hidden_at_every_place_its_filesystem_shows_it() {
    let Some(s) = setup() else { return };
    if !nix_is_root() || !Path::new(AS_UNPRIVILEGED[0]).exists() {
        skip("binding the project at a second place needs root, and setpriv to run as nobody");
        return;
    }
    let second = s.fx.dir.path().join("workspace");
    std::fs::create_dir_all(&second).unwrap();
    s.fx.hand_to_unprivileged();
    let in_namespace = |then: &str| {
        let out = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind {} {} && {then}",
                s.fx.project.display(),
                second.display()
            ))
            .current_dir(&s.fx.project)
            .output()
            .expect("unshare");
        Run::from(out)
    };
    let at_second = second.join("notes.txt");
    let read_both = format!(
        "python3 -c 'for p in (\"notes.txt\", \"{}\"):\n try: print(p, \"secret\" if \"OPENAI\" in open(p).read() else \"other\")\n except OSError as e: print(p, e.strerror)'",
        at_second.display()
    );
    let bare = in_namespace(&format!("mount --bind /dev/null notes.txt && {read_both}"));
    // The bare mount hides the file where it is mounted only.
    assert!(
        bare.stdout.lines().any(|l| l == "notes.txt other"),
        "{}\n{}",
        bare.stdout,
        bare.stderr
    );
    assert!(
        bare.stdout
            .contains(&format!("{} secret", at_second.display())),
        "the control read nothing at the second place:\n{}\n{}",
        bare.stdout,
        bare.stderr
    );
    let r = in_namespace(&format!(
        "{} {} run --deny-read notes.txt -- sh -c {}",
        AS_UNPRIVILEGED.join(" "),
        BIN,
        shell_quote(&read_both)
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.contains("secret"), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains(&format!("{} Permission denied", at_second.display())),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!(
            "hidden from the command: notes.txt, {}",
            at_second.display()
        )),
        "{}",
        r.stderr
    );
    r.assert_no_secret(&s.fx.planted);
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// An install run from a package of a monorepo: the install profile hides the repository's
/// `.env` above it and the other packages' beside it, not only the current directory's.
#[test]
fn an_install_in_a_package_hides_the_whole_repositorys_env_files() {
    let mut fx = Fixture::outside_tmp();
    std::fs::create_dir_all(fx.project.join(".git")).unwrap();
    for f in [".env", "packages/web/.env.local", "packages/api/.env"] {
        let key = fx.key("openai");
        fx.project_file(f, &format!("OPENAI_API_KEY={key}\n"));
    }
    fx.project_file("packages/web/.env.example", "OPENAI_API_KEY=\n");
    let web = fx.project.join("packages/web");
    let read_each = "for f in ../../.env .env.local ../api/.env .env.example; do \
                     if cat \"$f\" >/dev/null 2>&1; then echo \"$f read\"; \
                     else echo \"$f denied\"; fi; done";
    if !fx.hand_to_unprivileged() {
        skip("setpriv (util-linux) is needed to run the command as nobody");
        return;
    }
    let run = |profile: &str| {
        let out = Command::new(AS_UNPRIVILEGED[0])
            .args(&AS_UNPRIVILEGED[1..])
            .arg(BIN)
            .args(["run", "--profile", profile, "--", "sh", "-c", read_each])
            .env_clear()
            .env("HOME", &fx.home)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .current_dir(&web)
            .output()
            .expect("keyfence");
        let r = Run::from(out);
        r.assert_no_secret(&fx.planted);
        r
    };
    // The control: every file is there to read.
    let plain = run("default");
    for f in ["../../.env", ".env.local", "../api/.env", ".env.example"] {
        assert!(
            plain.stdout.contains(&format!("{f} read")),
            "{}\n{}",
            plain.stdout,
            plain.stderr
        );
    }
    let r = run("install");
    assert_eq!(r.code, 0, "{}", r.stderr);
    for f in ["../../.env", ".env.local", "../api/.env"] {
        assert!(
            r.stdout.contains(&format!("{f} denied")),
            "{}\n{}",
            r.stdout,
            r.stderr
        );
    }
    assert!(r.stdout.contains(".env.example read"), "{}", r.stdout);
}

/// Where no mount namespace can be made (user namespaces off: here a user namespace of the
/// test's own whose limits are 0), the install profile's default `.env` is a warning that
/// says it stays readable, never a claim that it is hidden; a path the user asked for refuses
/// the run.
#[test]
fn where_nothing_can_be_hidden_a_default_warns_and_a_typed_path_refuses() {
    let Some(s) = setup() else { return };
    let mut fx = s.fx;
    std::fs::create_dir_all(fx.project.join(".git")).unwrap();
    let env_key = fx.key("anthropic");
    fx.project_file(".env", &format!("ANTHROPIC_API_KEY={env_key}\n"));
    let without_namespaces = |keyfence: &str| {
        let out = Command::new("unshare")
            .args(["-Ur", "sh", "-c"])
            .arg(format!(
                "echo 0 > /proc/sys/user/max_user_namespaces && \
                 echo 0 > /proc/sys/user/max_mnt_namespaces && {BIN} --etc {} {keyfence}",
                fx.etc.display()
            ))
            .current_dir(&fx.project)
            .env_clear()
            .env("HOME", &fx.home)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .expect("unshare");
        let r = Run::from(out);
        r.assert_no_secret(&fx.planted);
        r
    };
    let probe = Command::new("unshare").args(["-Ur", "true"]).status();
    if !probe.is_ok_and(|s| s.success()) {
        skip("this test needs a user namespace of its own (unshare -Ur)");
        return;
    }
    let r =
        without_namespaces("run --profile install -- sh -c 'cat .env >/dev/null && echo readable'");
    assert_eq!((r.code, r.stdout.trim()), (0, "readable"), "{}", r.stderr);
    assert!(r.stderr.contains("and read .env"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("hidden from the command"),
        "{}",
        r.stderr
    );
    let r = without_namespaces("run --deny-read notes.txt -- echo ran");
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(!r.stdout.contains("ran"));
    assert!(
        r.stderr
            .contains("refusing to run with notes.txt readable (deny_read)"),
        "{}",
        r.stderr
    );
}
