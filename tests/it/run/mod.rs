//! `keyfence run`: scrubbing, masking, exit statuses, signals, exec in place.

mod deny_read;
mod pty;

use crate::common::*;
use std::process::{Command, Stdio};

fn run_cmd(fx: &Fixture, args: &[&str], env: &[(&str, &str)]) -> Run {
    fx.run(args, env)
}

#[test]
fn scrubs_a_planted_mix_and_keeps_harmless_variables() {
    let mut fx = Fixture::new();
    let ant = fx.key("anthropic");
    let oai = fx.key("openai");
    let gh = fx.key("github");
    let aws_id = fx.key("aws-id");
    let aws_secret = fx.key("aws-secret");
    let tok = fx.key("token");
    let pw = random_from("ABCDEFGHJKMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz23456789", 14);
    fx.planted.push(pw.clone());
    let db = format!("postgres://app:{pw}@db.internal:5432/app");
    let r = run_cmd(
        &fx,
        &["run", "-v", "--", "env"],
        &[
            ("ANTHROPIC_API_KEY", &ant),
            ("OPENAI_API_KEY", &oai),
            ("GITHUB_TOKEN", &gh),
            ("AWS_ACCESS_KEY_ID", &aws_id),
            ("AWS_SECRET_ACCESS_KEY", &aws_secret),
            ("INTERNAL_SERVICE_TOKEN", &tok),
            ("DATABASE_URL", &db),
            ("TOKENIZERS_PARALLELISM", "false"),
            ("KEYTIMEOUT", "1"),
            ("LANG", "C.UTF-8"),
            ("EDITOR", "vim"),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    for gone in [
        "ANTHROPIC_API_KEY=",
        "OPENAI_API_KEY=",
        "GITHUB_TOKEN=",
        "AWS_ACCESS_KEY_ID=",
        "AWS_SECRET_ACCESS_KEY=",
        "INTERNAL_SERVICE_TOKEN=",
        "DATABASE_URL=",
    ] {
        assert!(
            !r.stdout.lines().any(|l| l.starts_with(gone)),
            "{gone} survived:\n{}",
            r.stdout
        );
    }
    for kept in [
        "TOKENIZERS_PARALLELISM=false",
        "KEYTIMEOUT=1",
        "LANG=C.UTF-8",
        "EDITOR=vim",
        "HOME=",
    ] {
        assert!(
            r.stdout.lines().any(|l| l.starts_with(kept)),
            "{kept} missing:\n{}",
            r.stdout
        );
    }
    // -v names what was dropped, never the values (checked by the harness for every run).
    assert!(
        r.stderr.contains("dropped") && r.stderr.contains("DATABASE_URL"),
        "{}",
        r.stderr
    );
}

#[test]
fn allow_and_drop() {
    let fx = Fixture::new();
    // Not registered as planted: `env` prints an allowed variable, as it should.
    let tok = fake("token");
    let r = run_cmd(
        &fx,
        &[
            "run",
            "--allow",
            "CI_DEPLOY_TOKEN",
            "--drop",
            "CORP_*",
            "--no-mask",
            "--",
            "env",
        ],
        &[
            ("CI_DEPLOY_TOKEN", &tok),
            ("CORP_PROXY", "http://proxy:3128"),
            ("KEEPME", "1"),
        ],
    );
    // The allowed token is printed by `env` itself: that is the point of --allow.
    assert!(r.stdout.contains("CI_DEPLOY_TOKEN="), "{}", r.stdout);
    assert!(!r.stdout.contains("CORP_PROXY"), "{}", r.stdout);
    assert!(r.stdout.contains("KEEPME=1"));
}

#[test]
fn masks_values_split_across_writes_and_buffer_boundaries() {
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    let (a, b) = key.split_at(40);
    // Split across two writes with a pause, on stdout and on stderr.
    let script = format!(
        "printf '%s' 'start {a}'; sleep 0.2; printf '%s\\n' '{b} end'; printf '%s' '{a}' >&2; sleep 0.1; printf '%s' '{b}' >&2"
    );
    let r = run_cmd(
        &fx,
        &["run", "--", "sh", "-c", &script],
        &[("ANTHROPIC_API_KEY", &key)],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "start <keyfence:ANTHROPIC_API_KEY> end\n");
    assert_eq!(r.stderr, "<keyfence:ANTHROPIC_API_KEY>");
    // Straddling the 256 KiB read buffer: 262,100 bytes of filler, then the key.
    let script = format!(
        "head -c 262100 /dev/zero | tr '\\0' x; printf '%s' '{key}'; head -c 70000 /dev/zero | tr '\\0' y"
    );
    let r = run_cmd(
        &fx,
        &["run", "--", "sh", "-c", &script],
        &[("ANTHROPIC_API_KEY", &key)],
    );
    assert_eq!(
        r.stdout.len(),
        262100 + "<keyfence:ANTHROPIC_API_KEY>".len() + 70000
    );
    assert!(r.stdout.contains("x<keyfence:ANTHROPIC_API_KEY>y"));
}

#[test]
fn no_mask_execs_in_place() {
    let fx = Fixture::new();
    // Nothing dropped or injected: keyfence replaces itself, so the shell's pid is keyfence's.
    let child = Command::new(BIN)
        .args(["run", "--", "sh", "-c", "echo $$"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .current_dir(&fx.project)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), pid.to_string());
}

#[test]
fn exit_statuses() {
    let mut fx = Fixture::new();
    let tok = fx.key("token");
    std::fs::write(fx.project.join("not-exec"), "#!/bin/sh\n").unwrap();
    for (env, killed) in [
        (vec![], None),
        (vec![("SERVICE_TOKEN", tok.as_str())], Some(())),
    ] {
        // Without secrets keyfence execs in place; with one it supervises. Same statuses.
        let code = |args: &[&str]| {
            let mut a = vec!["run", "--"];
            a.extend_from_slice(args);
            run_cmd(&fx, &a, &env).code
        };
        assert_eq!(code(&["true"]), 0);
        assert_eq!(code(&["false"]), 1);
        assert_eq!(code(&["sh", "-c", "exit 42"]), 42);
        assert_eq!(code(&["no-such-command-kf"]), 127);
        assert_eq!(code(&["./not-exec"]), 126);
        // The command's death by signal is keyfence's own, as when run directly: in place
        // trivially, supervised because keyfence dies of the same signal (no status code).
        let _ = killed;
        assert_eq!(code(&["sh", "-c", "kill -KILL $$"]), -9);
        assert_eq!(code(&["sh", "-c", "kill -TERM $$"]), -15);
    }
    let r = run_cmd(&fx, &["run", "--profile", "nope", "--", "true"], &[]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("unknown profile 'nope'"), "{}", r.stderr);
}

/// `keyfence run ... -- yes | head -1` and `... > /dev/full`: once keyfence cannot write the
/// command's output, the command's next write fails as it would have without keyfence (EPIPE,
/// SIGPIPE), and both end. The control runs the same pipeline without keyfence.
#[test]
fn a_closed_or_failing_output_ends_the_command() {
    let mut fx = Fixture::new();
    let tok = fx.key("token");
    let bin = std::path::Path::new(BIN);
    let run = |pipeline: &str| {
        let out = Command::new("timeout")
            .args(["20", "bash", "-c", pipeline])
            .current_dir(&fx.project)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &fx.home)
            .env("SERVICE_TOKEN", &tok)
            .env("KF", bin)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    for kf in ["", "\"$KF\" run --", "\"$KF\" run --guard --"] {
        let (code, out) = run(&format!("{kf} yes | head -1; echo \"${{PIPESTATUS[0]}}\""));
        assert_eq!(code, Some(0), "{kf}: hung or failed: {out}");
        assert_eq!(out, "y\n141\n", "{kf}");
        // The command goes on after the failed write and sees SIGPIPE's status.
        let (code, out) = run(&format!(
            "{kf} sh -c 'seq 100000000; echo seq=$? >&2' 2>&1 | head -1"
        ));
        assert_eq!((code, out.as_str()), (Some(0), "1\n"), "{kf}");
        let (code, _) = run(&format!("{kf} yes > /dev/full"));
        assert!(code != Some(124) && code != Some(0), "{kf}: {code:?}");
    }
}

/// Ctrl-C in `for i in 1 2 3; do keyfence run ... -- sleep 100; done` stops the loop, as it
/// does without keyfence: bash goes on after a child that exits 130, and stops after one that
/// dies of SIGINT, so keyfence dies of the signal that ended the command.
#[test]
fn ctrl_c_stops_a_shell_loop_as_without_keyfence() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let mut fx = Fixture::new();
    let tok = fx.key("token");
    for kf in ["", "\"$KF\" run --", "\"$KF\" run --guard --"] {
        let mut child = Command::new("bash")
            .args([
                "-c",
                &format!("for i in 1 2 3; do {kf} sleep 100; echo round$i; done"),
            ])
            .current_dir(&fx.project)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &fx.home)
            .env("SERVICE_TOKEN", &tok)
            .env("KF", BIN)
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(700));
        // What a terminal's Ctrl-C does: SIGINT to the whole foreground group.
        nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let start = std::time::Instant::now();
        let out = loop {
            if let Some(st) = child.try_wait().unwrap() {
                let mut s = String::new();
                use std::io::Read;
                child.stdout.take().unwrap().read_to_string(&mut s).unwrap();
                break (st, s);
            }
            if start.elapsed() > std::time::Duration::from_secs(10) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                panic!("{kf}: the loop went on after Ctrl-C");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert_eq!(out.0.signal(), Some(2), "{kf}: {:?} {}", out.0, out.1);
        assert_eq!(out.1, "", "{kf}");
    }
}

#[test]
fn forwards_sigterm_once_and_returns_the_childs_status() {
    let mut fx = Fixture::new();
    let tok = fx.key("token");
    let marker = fx.project.join("got-term");
    let script = format!(
        "trap 'echo term >> {m}; exit 7' TERM; echo ready; while :; do sleep 0.05; done",
        m = marker.display()
    );
    let mut child = Command::new(BIN)
        .args(["run", "--", "sh", "-c", &script])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("SERVICE_TOKEN", &tok)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(7));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "term\n");
}

#[test]
fn supervisor_hides_values_and_leaks_no_descriptor() {
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    // Descriptors: the same set as the command run directly from this test (the test harness
    // itself passes some, such as cargo's jobserver).
    let direct = Command::new("sh")
        .args(["-c", "ls /proc/self/fd | tr '\\n' ' '"])
        .output()
        .unwrap();
    let direct = String::from_utf8_lossy(&direct.stdout).trim().to_string();
    // The command looks at its parent (the supervisor): its environ must not hold the key.
    // As root this read succeeds regardless of dumpability, so it tests the blanking itself.
    let r = run_cmd(
        &fx,
        &[
            "run",
            "--",
            "sh",
            "-c",
            "tr '\\0' '\\n' < /proc/$PPID/environ | grep -c '^ANTHROPIC_API_KEY=\\*\\**$'; ls /proc/self/fd | tr '\\n' ' '",
        ],
        &[("ANTHROPIC_API_KEY", &key)],
    );
    let mut lines = r.stdout.lines();
    // An ordinary user may not read the supervisor's environ at all (it is not dumpable): 0
    // lines, and the shell's "Permission denied".
    let (want, refused) = if nix_is_root() {
        ("1", true)
    } else {
        ("0", r.stderr.contains("Permission denied"))
    };
    assert!(refused, "{}", r.stderr);
    assert_eq!(
        lines.next(),
        Some(want),
        "value not blanked in the supervisor: {}",
        r.stdout
    );
    assert_eq!(
        lines.next().map(str::trim),
        Some(direct.as_str()),
        "{}",
        r.stdout
    );
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    assert!(status.contains("TracerPid"), "sanity");
}

#[test]
fn profiles_from_the_users_config_and_the_projects() {
    let fx = Fixture::new();
    let profile = "[[profile]]\nname = \"tests\"\nmatch = [\"sh -c *\"]\ndrop = [\"CORP_*\"]\n\
                   allow = [\"CI_TOKEN\"]\nmask = false\n";
    fx.home_file(".config/keyfence/config.toml", profile);
    let tok = fake("token");
    let env = [("CORP_X", "1"), ("CI_TOKEN", tok.as_str()), ("PLAIN", "ok")];
    // The user's: matched by command line: CORP_* dropped, CI_TOKEN allowed, no masking
    // (exec in place).
    let r = run_cmd(&fx, &["run", "--", "sh", "-c", "env; echo $$"], &env);
    assert!(!r.stdout.contains("CORP_X"), "{}", r.stdout);
    assert!(
        r.stdout.contains("CI_TOKEN=") && r.stdout.contains("PLAIN=ok"),
        "{}",
        r.stdout
    );
    // Not matched: the default profile keeps CORP_X (not a secret) and drops CI_TOKEN.
    let r = run_cmd(&fx, &["run", "--", "env"], &env);
    assert!(
        r.stdout.contains("CORP_X=1") && !r.stdout.contains("CI_TOKEN"),
        "{}",
        r.stdout
    );

    // The same profile in the project's file: its restriction holds, its `allow` and
    // `mask = false` do not (tests/it/policy.rs has the attacks).
    std::fs::remove_file(fx.home.join(".config/keyfence/config.toml")).unwrap();
    fx.project_file("keyfence.toml", profile);
    let r = run_cmd(&fx, &["run", "--", "sh", "-c", "env"], &env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.contains("CORP_X"), "{}", r.stdout);
    assert!(!r.stdout.contains("CI_TOKEN"), "{}", r.stdout);
    assert!(r.stderr.contains("may not `allow`"), "{}", r.stderr);

    // A typo in the user's file: exit 125 with the file and line, the command not started.
    fx.home_file(
        ".config/keyfence/config.toml",
        "[[profile]]\nname = \"x\"\ndorp = [\"A\"]\n",
    );
    let r = run_cmd(&fx, &["run", "--", "sh", "-c", "echo started"], &[]);
    assert_eq!(r.code, 125);
    assert!(!r.stdout.contains("started"));
    assert!(
        r.stderr.contains("config.toml")
            && r.stderr.contains("line 3")
            && r.stderr.contains("dorp"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_key_pasted_as_an_inject_name_is_not_echoed() {
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    // With a vault present, an unknown name would be quoted in "no secret named ...".
    fx.store_secret("OTHER", "Hq3vT9xLm2Zr8WbK5nYp4Jc7");
    // The harness checks the key appears nowhere in stdout or stderr.
    let r = run_cmd(
        &fx,
        &[
            "run",
            "--inject",
            &format!("ANTHROPIC_API_KEY={key}"),
            "--",
            "true",
        ],
        &[],
    );
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains("looks like a secret value"),
        "{}",
        r.stderr
    );
}

/// Following the hint for a project profile that does not get a stored secret must not close
/// the entry to the user's own profiles (it used to be `secret set NAME --profile P`, which
/// replaced "any" with "P"): `secret profiles NAME --add P` lists P and keeps the entry open,
/// without the value typed again; `--only-listed` closes it, and closing it to everyone is
/// refused (an empty list means open).
#[test]
fn listing_a_project_profile_on_a_secret_keeps_it_for_the_users_profiles() {
    let mut fx = Fixture::new();
    let tok = fx.key("token");
    fx.store_secret("SERVICE_TOKEN", &tok);
    fx.project_file(
        "keyfence.toml",
        "[[profile]]\nname = \"deploy\"\ninject = [\"SERVICE_TOKEN\"]\n",
    );
    let has_token = "test -n \"$SERVICE_TOKEN\" && echo has-token";
    let project = |fx: &Fixture| {
        run_cmd(
            fx,
            &["run", "--profile", "deploy", "--", "sh", "-c", has_token],
            &[],
        )
    };
    let own = |fx: &Fixture| {
        run_cmd(
            fx,
            &[
                "run",
                "--inject",
                "SERVICE_TOKEN",
                "--",
                "env",
                "sh",
                "-c",
                has_token,
            ],
            &[],
        )
    };
    let r = project(&fx);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr
            .contains("`keyfence secret profiles SERVICE_TOKEN --add deploy`"),
        "{}",
        r.stderr
    );
    let r = run_cmd(
        &fx,
        &["secret", "profiles", "SERVICE_TOKEN", "--add", "deploy"],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("every profile of yours may receive it, and it is listed for deploy"),
        "{}",
        r.stderr
    );
    assert!(project(&fx).stdout.contains("has-token"));
    assert!(own(&fx).stdout.contains("has-token"), "{}", own(&fx).stderr);

    let r = run_cmd(
        &fx,
        &["secret", "profiles", "SERVICE_TOKEN", "--only-listed"],
        &[],
    );
    assert!(
        r.stderr.contains("only deploy may receive it"),
        "{}",
        r.stderr
    );
    assert_eq!(own(&fx).code, 125);
    let r = run_cmd(
        &fx,
        &["secret", "profiles", "SERVICE_TOKEN", "--remove", "deploy"],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("would be given to no profile"),
        "{}",
        r.stderr
    );
    assert!(project(&fx).stdout.contains("has-token"));
}
