//! The embedded vault through the real binary: `init` and `secret set/get/list/rm/import`, file
//! modes, concurrent and killed writers, damaged vaults, passphrases and expiry. Every test runs
//! in a fresh temporary HOME with a cleared environment, with values generated from
//! /dev/urandom; every command's output is checked for the values planted so far (only `secret
//! get` may print one).

mod rotate;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_keyfence");

fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("/dev/urandom");
    buf
}

/// A random value: 40 characters from a mixed alphabet, never a real key.
fn random_value() -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-";
    random_bytes(40)
        .iter()
        .map(|b| A[*b as usize % A.len()] as char)
        .collect()
}

fn random_u64() -> u64 {
    u64::from_le_bytes(random_bytes(8).try_into().unwrap())
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    #[track_caller]
    fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    fn fails(self, needles: &[&str]) -> Self {
        assert_eq!(
            self.code, 2,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "stderr lacks {n:?}:\n{}",
                self.stderr
            );
        }
        self
    }
}

/// A temporary HOME, and every value stored in it so far.
struct Home {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    planted: RefCell<Vec<String>>,
}

impl Home {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        Home {
            env: vec![("HOME".into(), home.to_string_lossy().into_owned())],
            dir,
            planted: RefCell::new(Vec::new()),
        }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn data_dir(&self) -> PathBuf {
        self.home().join(".local/share/keyfence")
    }

    fn vault(&self) -> PathBuf {
        self.data_dir().join("vault")
    }

    fn key_file(&self) -> PathBuf {
        self.home().join(".local/state/keyfence/vault.key")
    }

    fn plant(&self) -> String {
        let v = random_value();
        self.planted.borrow_mut().push(v.clone());
        v
    }

    /// `keyfence ARGS` with only PATH, HOME and `extra` in the environment.
    fn command(&self, args: &[&str], extra: &[(&str, &str)]) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .args(args)
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        for (k, v) in extra {
            c.env(k, v);
        }
        c
    }

    fn run_with(&self, args: &[&str], stdin: Option<&[u8]>, extra: &[(&str, &str)]) -> Out {
        let mut c = self.command(args, extra);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            c.stdin(Stdio::piped());
        }
        let mut child = c.spawn().expect("spawn keyfence");
        if let Some(input) = stdin {
            // A command that fails before reading stdin closes the pipe: not the test's concern.
            let _ = child.stdin.take().unwrap().write_all(input);
        }
        let o = child.wait_with_output().unwrap();
        let out = Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        };
        let is_get = args.windows(2).any(|w| w == ["secret", "get"]);
        for v in self.planted.borrow().iter() {
            assert!(
                !out.stderr.contains(v.as_str()),
                "{args:?} printed a value on stderr"
            );
            if !is_get {
                assert!(
                    !out.stdout.contains(v.as_str()),
                    "{args:?} printed a value on stdout"
                );
            }
        }
        out
    }

    fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, None, &[])
    }

    fn set(&self, name: &str, value: &str) -> Out {
        self.run_with(
            &["secret", "set", name],
            Some(format!("{value}\n").as_bytes()),
            &[],
        )
        .ok()
    }

    #[track_caller]
    fn get(&self, name: &str) -> String {
        let out = self.run(&["secret", "get", name]).ok();
        out.stdout
            .strip_suffix('\n')
            .expect("get ends with a newline")
            .to_string()
    }

    fn list_json(&self) -> Vec<serde_json::Value> {
        let out = self.run(&["secret", "list", "--format", "json"]).ok();
        serde_json::from_str(&out.stdout).expect("list prints JSON")
    }

    /// Every regular file under `dir`, recursively.
    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
        out
    }

    /// No file in the home holds a planted value in plain text (raw or base64).
    #[track_caller]
    fn assert_no_plaintext_on_disk(&self) {
        use base64::Engine as _;
        let files = Self::files_under(&self.home());
        assert!(!files.is_empty());
        for f in files {
            let bytes = std::fs::read(&f).unwrap();
            for v in self.planted.borrow().iter() {
                let b64 = base64::engine::general_purpose::STANDARD.encode(v);
                for needle in [v.as_bytes(), b64.as_bytes()] {
                    assert!(
                        !bytes.windows(needle.len()).any(|w| w == needle),
                        "{} holds a value in plain text",
                        f.display()
                    );
                }
            }
        }
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn set_get_list_rm_round_trip() {
    let h = Home::new();
    let (a, b) = (h.plant(), h.plant());
    let out = h.set("SERVICE_API_KEY", &a);
    assert!(
        out.stderr.contains("stored SERVICE_API_KEY"),
        "{}",
        out.stderr
    );
    h.set("OTHER_TOKEN", &b);
    assert_eq!(h.get("SERVICE_API_KEY"), a);
    assert_eq!(h.get("OTHER_TOKEN"), b);

    let human = h.run(&["secret", "list"]).ok();
    let lines: Vec<&str> = human.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", human.stdout);
    for col in [
        "NAME",
        "KIND",
        "FINGERPRINT",
        "CREATED",
        "ROTATED",
        "EXPIRES",
        "PROFILES",
    ] {
        assert!(lines[0].contains(col), "{}", lines[0]);
    }
    assert!(lines[1].starts_with("OTHER_TOKEN") && lines[2].starts_with("SERVICE_API_KEY"));

    let rows = h.list_json();
    assert_eq!(rows.len(), 2);
    let row = &rows[1];
    assert_eq!(row["name"], "SERVICE_API_KEY");
    for field in [
        "kind",
        "fingerprint",
        "created",
        "rotated",
        "expires",
        "expired",
        "profiles",
    ] {
        assert!(row.get(field).is_some(), "{field} missing in {row}");
    }
    assert!(row.get("value").is_none());
    // The fingerprint is the first 12 hex characters of SHA-256 of the value (DESIGN.md §3).
    assert_eq!(row["fingerprint"].as_str().unwrap().len(), 12);

    h.run(&["secret", "rm", "SERVICE_API_KEY"]).ok();
    h.run(&["secret", "get", "SERVICE_API_KEY"])
        .fails(&["no secret named 'SERVICE_API_KEY'", "hint:"]);
    h.run(&["secret", "rm", "SERVICE_API_KEY"])
        .fails(&["no secret named 'SERVICE_API_KEY'"]);
    assert_eq!(h.list_json().len(), 1);
    h.assert_no_plaintext_on_disk();
}

#[test]
fn first_set_creates_vault_and_key_file_with_private_modes() {
    let h = Home::new();
    let v = h.plant();
    h.set("A", &v);
    h.set("A", &h.plant());
    let data = h.data_dir();
    let key_dir = h.key_file().parent().unwrap().to_path_buf();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&key_dir), 0o700);
    for f in [
        h.vault(),
        data.join("vault.bak"),
        data.join("vault.lock"),
        h.key_file(),
    ] {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    // The key is not beside the vault: a copy of the data directory alone is useless.
    assert!(!h.key_file().starts_with(&data));
    assert!(
        Home::files_under(&data)
            .iter()
            .all(|f| !f.ends_with("vault.key"))
    );
    h.assert_no_plaintext_on_disk();
}

#[test]
fn xdg_directories_are_honoured() {
    let mut h = Home::new();
    let data = h.dir.path().join("xdg-data");
    let state = h.dir.path().join("xdg-state");
    h.env
        .push(("XDG_DATA_HOME".into(), data.to_string_lossy().into()));
    h.env
        .push(("XDG_STATE_HOME".into(), state.to_string_lossy().into()));
    let v = h.plant();
    h.set("A", &v);
    assert!(data.join("keyfence/vault").is_file());
    assert!(state.join("keyfence/vault.key").is_file());
    assert!(!h.home().join(".local").exists());
    // Relative values are ignored, as the XDG spec requires.
    h.env.truncate(1);
    h.env.push(("XDG_DATA_HOME".into(), "relative".into()));
    h.set("B", &h.plant());
    assert!(h.vault().is_file());
}

#[test]
fn value_from_stdin_loses_one_trailing_newline_only() {
    let h = Home::new();
    let v = h.plant();
    let input = format!("{v}\nsecond line\n\n");
    h.run_with(&["secret", "set", "MULTI"], Some(input.as_bytes()), &[])
        .ok();
    let out = h.run(&["secret", "get", "MULTI"]).ok();
    assert_eq!(out.stdout, format!("{v}\nsecond line\n\n"));

    h.run_with(
        &["secret", "set", "CRLF"],
        Some(format!("{v}\r\n").as_bytes()),
        &[],
    )
    .ok();
    assert_eq!(h.get("CRLF"), v);

    for empty in [&b""[..], b"\n"] {
        h.run_with(&["secret", "set", "EMPTY"], Some(empty), &[])
            .fails(&["refusing to store an empty value for EMPTY"]);
    }
    h.run(&["secret", "get", "EMPTY"])
        .fails(&["no secret named"]);
}

#[test]
fn value_from_env() {
    let h = Home::new();
    let v = h.plant();
    h.run_with(
        &["secret", "set", "FROM_ENV", "--from-env", "SOURCE_VAR"],
        Some(b"ignored stdin\n"),
        &[("SOURCE_VAR", &v)],
    )
    .ok();
    assert_eq!(h.get("FROM_ENV"), v);
    h.run(&["secret", "set", "X", "--from-env", "NOT_SET"])
        .fails(&["NOT_SET is not set"]);
    h.run_with(
        &["secret", "set", "X", "--from-env", "E"],
        None,
        &[("E", "")],
    )
    .fails(&["empty"]);
}

#[test]
fn setting_again_rotates_and_keeps_created_and_profiles() {
    let h = Home::new();
    let v1 = h.plant();
    h.run_with(
        &[
            "secret",
            "set",
            "ROT",
            "--profile",
            "agent",
            "--profile",
            "ci",
        ],
        Some(v1.as_bytes()),
        &[],
    )
    .ok();
    let before = h.list_json()[0].clone();
    assert_eq!(before["rotated"], serde_json::Value::Null);
    assert_eq!(before["profiles"], serde_json::json!(["agent", "ci"]));

    let v2 = h.plant();
    let out = h.set("ROT", &v2);
    assert!(out.stderr.contains("rotated ROT"), "{}", out.stderr);
    assert_eq!(h.get("ROT"), v2);
    let after = h.list_json()[0].clone();
    assert_eq!(after["created"], before["created"]);
    assert!(after["rotated"].is_string());
    assert_ne!(after["fingerprint"], before["fingerprint"]);
    // Rotating without --profile keeps the restriction.
    assert_eq!(after["profiles"], serde_json::json!(["agent", "ci"]));
    let human = h.run(&["secret", "list"]).ok();
    assert!(human.stdout.contains("agent,ci"), "{}", human.stdout);
}

#[test]
fn import_dotenv_file() {
    let h = Home::new();
    let (a, b, c) = (h.plant(), h.plant(), h.plant());
    let env_file = h.dir.path().join("project.env");
    std::fs::write(
        &env_file,
        format!(
            "# comment\nALPHA_KEY={a}\nexport BETA_TOKEN=\"{b}\"\nEMPTY=\nthis line is junk\n\nGAMMA='{c}'\n"
        ),
    )
    .unwrap();
    let out = h
        .run(&["secret", "import", env_file.to_str().unwrap()])
        .ok();
    assert!(
        out.stderr.contains("imported 3 secrets from")
            && out.stderr.contains("ALPHA_KEY, BETA_TOKEN, GAMMA"),
        "{}",
        out.stderr
    );
    // Every line left out is named with its file and line; blank lines and comments are not.
    let skipped: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("skipped"))
        .collect();
    assert_eq!(skipped.len(), 2, "{}", out.stderr);
    assert!(
        skipped[0].ends_with("project.env:4: EMPTY: empty value"),
        "{}",
        out.stderr
    );
    assert!(
        skipped[1].ends_with("project.env:5: not NAME=value"),
        "{}",
        out.stderr
    );
    assert_eq!(h.get("ALPHA_KEY"), a);
    assert_eq!(h.get("BETA_TOKEN"), b);
    assert_eq!(h.get("GAMMA"), c);
    h.run(&["secret", "get", "EMPTY"])
        .fails(&["no secret named"]);

    let missing = h.dir.path().join("nope.env");
    h.run(&["secret", "import", missing.to_str().unwrap()])
        .fails(&["nope.env"]);
    h.assert_no_plaintext_on_disk_except(&env_file);
}

impl Home {
    /// Like `assert_no_plaintext_on_disk`, for a test that wrote a plain-text file on purpose.
    fn assert_no_plaintext_on_disk_except(&self, allowed: &Path) {
        let saved = std::fs::read(allowed).unwrap();
        std::fs::remove_file(allowed).unwrap();
        self.assert_no_plaintext_on_disk();
        std::fs::write(allowed, saved).unwrap();
    }
}

#[test]
fn import_from_env_is_all_or_nothing() {
    let h = Home::new();
    let (a, b) = (h.plant(), h.plant());
    h.run_with(
        &["secret", "import", "--from-env", "ONE", "TWO", "THREE"],
        None,
        &[("ONE", &a), ("TWO", &b)],
    )
    .fails(&["THREE is not set"]);
    assert!(
        !h.vault().exists(),
        "nothing may be stored when one variable is missing"
    );
    let out = h
        .run_with(
            &["secret", "import", "--from-env", "ONE", "TWO"],
            None,
            &[("ONE", &a), ("TWO", &b)],
        )
        .ok();
    assert!(
        out.stderr
            .contains("imported 2 secrets from the environment: ONE, TWO"),
        "{}",
        out.stderr
    );
    assert_eq!(h.get("ONE"), a);
    assert_eq!(h.get("TWO"), b);
}

#[test]
fn get_refuses_a_terminal_unless_revealed() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: util-linux `script` is not installed");
        return;
    }
    let h = Home::new();
    let v = h.plant();
    h.set("TTY_KEY", &v);
    // `script` runs the command on a pseudo-terminal, so stdout is a terminal.
    let via_pty = |extra: &str| {
        let cmd = format!("{BIN} secret get TTY_KEY{extra}");
        let mut c = Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("SHELL", "/bin/sh")
            .env("HOME", h.home())
            .stdin(Stdio::null());
        let o = c.output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let (code, shown) = via_pty("");
    assert_eq!(code, Some(2), "{shown}");
    assert!(
        shown.contains("refusing to print secret 'TTY_KEY' to a terminal"),
        "{shown}"
    );
    assert!(shown.contains("--reveal"), "{shown}");
    assert!(!shown.contains(&v));
    let (code, shown) = via_pty(" --reveal");
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains(&v));
}

#[test]
fn init_creates_an_empty_vault_and_refuses_an_existing_one() {
    let h = Home::new();
    let out = h.run(&["init"]).ok();
    assert!(out.stderr.contains("created"), "{}", out.stderr);
    assert!(h.vault().is_file() && h.key_file().is_file());
    assert!(h.list_json().is_empty());
    let before = std::fs::read(h.vault()).unwrap();
    h.run(&["init"])
        .fails(&["a vault already exists at", "vault"]);
    h.run(&["init", "--passphrase"])
        .fails(&["a vault already exists"]);
    assert_eq!(std::fs::read(h.vault()).unwrap(), before);
    let v = h.plant();
    h.set("A", &v);
    assert_eq!(h.get("A"), v);
}

#[test]
fn concurrent_sets_lose_nothing() {
    let h = Home::new();
    let values: Vec<String> = (0..20).map(|_| h.plant()).collect();
    let children: Vec<Child> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let name = format!("CONC_{i:02}");
            let mut c = h.command(&["secret", "set", &name], &[]);
            c.stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let mut child = c.spawn().unwrap();
            child.stdin.take().unwrap().write_all(v.as_bytes()).unwrap();
            child
        })
        .collect();
    for child in children {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let rows = h.list_json();
    assert_eq!(rows.len(), 20, "{rows:?}");
    for (i, v) in values.iter().enumerate() {
        assert_eq!(&h.get(&format!("CONC_{i:02}")), v);
    }
}

#[test]
fn writers_killed_mid_write_leave_a_readable_vault() {
    let h = Home::new();
    h.set("BASE", &h.plant());
    let mut completed: Vec<(String, String)> = Vec::new();
    let mut killed = 0;
    for round in 0..4 {
        let mut children = Vec::new();
        for i in 0..12 {
            let name = format!("K{round}_{i:02}");
            let value = h.plant();
            let mut c = h.command(&["secret", "set", &name], &[]);
            c.stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let mut child = c.spawn().unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(value.as_bytes())
                .unwrap();
            // Half of them get killed, at a random moment of their life (a set takes a few
            // milliseconds alone, longer while queued for the lock).
            let kill_after = (i % 2 == 0).then(|| Duration::from_micros(random_u64() % 150_000));
            children.push((name, value, child, kill_after));
        }
        let start = std::time::Instant::now();
        let mut pending: Vec<_> = children;
        // Killed ones first, in the order of their deadlines; then wait for the rest.
        pending.sort_by_key(|c| (c.3.is_none(), c.3));
        for (name, value, mut child, kill_after) in pending {
            if let Some(d) = kill_after {
                if let Some(rest) = d.checked_sub(start.elapsed()) {
                    std::thread::sleep(rest);
                }
                let _ = child.kill(); // SIGKILL
            }
            let status = child.wait().unwrap();
            if status.success() {
                completed.push((name, value));
            } else {
                killed += 1;
            }
        }
        // After each round the vault opens, and every set that reported success is in it.
        let rows = h.list_json();
        let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
        for (name, _) in &completed {
            assert!(
                names.contains(&name.as_str()),
                "{name} lost after round {round}"
            );
        }
    }
    assert!(killed > 0, "no writer was killed; the test proved nothing");
    for (name, value) in &completed {
        assert_eq!(&h.get(name), value);
    }
    // The next writer clears the temp files that killed writers left.
    h.set("AFTER", &h.plant());
    let leftovers: Vec<_> = Home::files_under(&h.data_dir())
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp.")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    h.assert_no_plaintext_on_disk();
}

#[test]
fn writer_killed_while_its_temp_file_exists_leaves_a_whole_vault() {
    let h = Home::new();
    // A large entry makes every write slow enough to catch a writer in the act.
    let big: String = (0..5000).map(|_| random_value()).collect();
    h.set("BIG", &big);
    let (mut caught, mut absent) = (0, 0);
    for attempt in 0..8 {
        let name = format!("T{attempt}");
        let value = h.plant();
        let mut c = h.command(&["secret", "set", &name], &[]);
        c.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(value.as_bytes())
            .unwrap();
        // Temp files are named after the writer's pid: once its file appears, kill it at once
        // (while it writes the new vault) or, every other time, at a random moment of the next
        // 3 ms (while it fsyncs, links the backup, renames, or just after).
        let prefix = format!(".tmp.{}.", child.id());
        loop {
            let writing = std::fs::read_dir(h.data_dir())
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(&prefix));
            if writing {
                if attempt % 2 == 1 {
                    std::thread::sleep(Duration::from_micros(random_u64() % 3000));
                }
                child.kill().unwrap();
                caught += 1;
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
        }
        let status = child.wait().unwrap();
        let rows = h.list_json();
        let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"BIG"));
        for earlier in 0..attempt {
            let n = format!("T{earlier}");
            assert!(names.contains(&n.as_str()), "{n} lost");
        }
        if names.contains(&name.as_str()) {
            assert_eq!(h.get(&name), value);
        } else {
            assert!(!status.success());
            absent += 1;
            // Stored again for the next rounds' checks.
            h.set(&name, &value);
        }
    }
    assert!(caught > 0 && absent > 0, "caught {caught}, absent {absent}");
    assert_eq!(h.get("BIG"), big);
}

#[test]
fn tampered_vault_is_reported_and_never_overwritten() {
    let h = Home::new();
    let (a, b) = (h.plant(), h.plant());
    h.set("A", &a);
    h.set("B", &b);
    let bak = h.data_dir().join("vault.bak");
    assert!(bak.is_file(), "vault.bak after two writes");
    let good = std::fs::read(h.vault()).unwrap();
    let good_bak = std::fs::read(&bak).unwrap();

    // One flipped bit anywhere: header, nonce, ciphertext or tag.
    let len = good.len();
    for at in [3, 9, 20, len / 2, len - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        std::fs::write(h.vault(), &bad).unwrap();
        let vault = h.vault().display().to_string();
        for args in [
            &["secret", "get", "A"][..],
            &["secret", "list"],
            &["secret", "rm", "A"],
        ] {
            h.run(args).fails(&[&vault]);
        }
        h.run_with(&["secret", "set", "C"], Some(b"new value"), &[])
            .fails(&[&vault]);
        assert_eq!(
            std::fs::read(h.vault()).unwrap(),
            bad,
            "byte {at}: overwritten"
        );
        assert_eq!(
            std::fs::read(&bak).unwrap(),
            good_bak,
            "byte {at}: backup replaced"
        );
    }
    let mut bad = good.clone();
    bad[len / 2] ^= 0x80;
    std::fs::write(h.vault(), &bad).unwrap();
    h.run(&["secret", "get", "A"]).fails(&[
        "is corrupted or was modified",
        "the last good version is in",
        "vault.bak",
    ]);

    // The backup is a whole vault: restoring it gives the state before the last write.
    std::fs::copy(&bak, h.vault()).unwrap();
    assert_eq!(h.get("A"), a);
    h.run(&["secret", "get", "B"])
        .fails(&["no secret named 'B'"]);
}

#[test]
fn truncated_vault_is_reported_and_never_overwritten() {
    let h = Home::new();
    h.set("A", &h.plant());
    h.set("B", &h.plant());
    let good = std::fs::read(h.vault()).unwrap();
    for n in [0, 5, 11, 30, good.len() / 2, good.len() - 1] {
        std::fs::write(h.vault(), &good[..n]).unwrap();
        let vault = h.vault().display().to_string();
        h.run(&["secret", "get", "A"])
            .fails(&[&vault, "is corrupted or was modified"]);
        h.run_with(&["secret", "set", "C"], Some(b"v"), &[])
            .fails(&[&vault]);
        assert_eq!(
            std::fs::read(h.vault()).unwrap(),
            &good[..n],
            "{n}: overwritten"
        );
    }
}

#[test]
fn missing_or_foreign_key_file_is_named() {
    let h = Home::new();
    let v = h.plant();
    h.set("A", &v);
    let key = h.key_file();
    let saved = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    h.run(&["secret", "get", "A"])
        .fails(&["key file", &key.display().to_string(), "is missing"]);
    h.run_with(&["secret", "set", "B"], Some(b"v"), &[])
        .fails(&["is missing"]);
    assert!(!key.exists(), "a new key must never replace a lost one");

    // Another vault's key.
    let other = Home::new();
    other.set("X", &other.plant());
    std::fs::copy(other.key_file(), &key).unwrap();
    h.run(&["secret", "get", "A"])
        .fails(&["cannot decrypt", "belongs to another vault"]);
    std::fs::write(&key, saved).unwrap();
    assert_eq!(h.get("A"), v);
}

#[test]
fn passphrase_mode() {
    let h = Home::new();
    let pass_file = h.dir.path().join("pass");
    let wrong_file = h.dir.path().join("wrong");
    std::fs::write(&pass_file, format!("{}\n", random_value())).unwrap();
    std::fs::write(&wrong_file, random_value()).unwrap();
    let right = [("KEYFENCE_PASSPHRASE_FILE", pass_file.to_str().unwrap())];
    let wrong = [("KEYFENCE_PASSPHRASE_FILE", wrong_file.to_str().unwrap())];

    h.run_with(&["init", "--passphrase"], None, &right).ok();
    assert!(h.vault().is_file());
    assert!(!h.key_file().exists(), "no key file in passphrase mode");

    let v = h.plant();
    h.run_with(&["secret", "set", "P"], Some(v.as_bytes()), &right)
        .ok();
    let vault = h.vault().display().to_string();
    let before = std::fs::read(h.vault()).unwrap();
    h.run_with(&["secret", "get", "P"], None, &wrong)
        .fails(&["wrong passphrase for", &vault]);
    h.run_with(&["secret", "set", "Q"], Some(b"v"), &wrong)
        .fails(&["wrong passphrase"]);
    assert_eq!(std::fs::read(h.vault()).unwrap(), before);
    // No passphrase file and no terminal: say how to provide one.
    h.run(&["secret", "get", "P"])
        .fails(&["no terminal", "KEYFENCE_PASSPHRASE_FILE"]);
    let out = h.run_with(&["secret", "get", "P"], None, &right).ok();
    assert_eq!(out.stdout, format!("{v}\n"));
    h.assert_no_plaintext_on_disk_except(&pass_file);
}

#[test]
fn ttl_expiry() {
    let h = Home::new();
    let v = h.plant();
    h.run_with(
        &["secret", "set", "SHORT", "--ttl", "1s"],
        Some(v.as_bytes()),
        &[],
    )
    .ok();
    h.run_with(
        &["secret", "set", "LONG", "--ttl", "90d"],
        Some(h.plant().as_bytes()),
        &[],
    )
    .ok();
    assert_eq!(h.get("SHORT"), v);
    std::thread::sleep(Duration::from_millis(2100));
    h.run(&["secret", "get", "SHORT"]).fails(&[
        "secret 'SHORT' expired at ",
        "set it again with `keyfence secret set SHORT`",
    ]);
    h.get("LONG");
    let rows = h.list_json();
    let short = rows.iter().find(|r| r["name"] == "SHORT").unwrap();
    assert_eq!(short["expired"], true);
    let long = rows.iter().find(|r| r["name"] == "LONG").unwrap();
    assert_eq!(long["expired"], false);
    assert!(h.run(&["secret", "list"]).ok().stdout.contains("(expired)"));
    // Setting it again restarts the same lifetime.
    h.set("SHORT", &h.plant());
    assert!(h.list_json()[1]["expires"].is_string());
    h.run_with(&["secret", "set", "X", "--ttl", "7 days"], Some(b"v"), &[])
        .fails(&["--ttl", "invalid duration"]);
}

#[test]
fn a_value_typed_as_the_name_is_refused_without_echo() {
    let h = Home::new();
    // A fresh fake in a known format, typed where the name goes.
    let fake = format!(
        "sk-ant-api03-{}AA",
        &random_value().replace(['+', '/'], "x").repeat(3)[..93]
    );
    h.planted.borrow_mut().push(fake.clone());
    h.run_with(&["secret", "set", &fake], Some(b"v"), &[])
        .fails(&["looks like a secret value"]);
    h.run_with(&["secret", "set", "A=B"], Some(b"v"), &[])
        .fails(&["invalid secret name"]);
    assert!(!h.vault().exists());
}

#[test]
fn list_on_a_fresh_machine_is_empty() {
    let h = Home::new();
    assert!(h.list_json().is_empty());
    let out = h.run(&["secret", "list"]).ok();
    assert_eq!(out.stdout, "");
    h.run(&["secret", "get", "A"])
        .fails(&["no vault at", "keyfence secret set"]);
    h.run(&["secret", "rm", "A"])
        .fails(&["no secret named 'A'"]);
    assert!(!h.home().join(".local").exists(), "reads create nothing");
}
