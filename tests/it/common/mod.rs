//! Test harness: fixture homes and projects in temp directories, fake keys generated per run,
//! and a runner for the real `keyfence` binary with a cleared environment.
#![allow(dead_code)]

pub mod agent_api_stub;
pub mod chatgpt_auth;
pub mod claude_stub;
pub mod http_request;
pub mod probe;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_keyfence");

/// The command prefix that runs the rest as an ordinary user, for the tests whose attack the
/// kernel's checks stop only for one (root passes them, DESIGN.md §5): nobody when the tests
/// run as root, else the tests' own user, which is ordinary already (`env` runs the rest as
/// it is). Index it like a slice: `AS_UNPRIVILEGED[0]`, `&AS_UNPRIVILEGED[1..]`.
pub static AS_UNPRIVILEGED: std::sync::LazyLock<Vec<&'static str>> =
    std::sync::LazyLock::new(|| {
        if nix_is_root() {
            vec![
                "/usr/bin/setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ]
        } else {
            vec!["/usr/bin/env"]
        }
    });

/// The uid `AS_UNPRIVILEGED` runs as.
pub fn unprivileged_uid() -> u32 {
    if nix_is_root() {
        65534
    } else {
        effective_uid()
    }
}

/// `npm pack` of the package in `src` into `dest` (npm 11 reads `a/b` as a GitHub shorthand,
/// so it runs from inside the directory), with its cache in `dest` and no update check.
pub fn npm_pack(src: &Path, dest: &Path) {
    let out = Command::new("npm")
        .args(["pack", "--silent", "--pack-destination"])
        .arg(dest)
        .current_dir(src)
        .env("npm_config_cache", dest.join("npm-cache"))
        .env("npm_config_update_notifier", "false")
        .output()
        .expect("npm pack");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test that cannot run on this machine: a failure under CI, where `.ci/run` installs
/// everything the tests need, and a loud note elsewhere — never a silent pass.
pub fn skip(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{why}: CI must run this test (.ci/run installs what it needs)"
    );
    eprintln!("SKIPPED: {why}");
    // libtest shows a passing test's output to no one: the skip goes to a list as well, which
    // `scripts/test-all` prints after the run.
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let line = format!("{}::{test}: {why}\n", env!("CARGO_CRATE_NAME"));
    let list = Path::new(env!("CARGO_TARGET_TMPDIR")).join(SKIPPED_LIST);
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(list)
        .and_then(|mut f| f.write_all(line.as_bytes()));
}

/// The file under `CARGO_TARGET_TMPDIR` that lists the skipped tests of a run.
pub const SKIPPED_LIST: &str = "skipped-tests.txt";

/// Random bytes from the kernel: fixtures get fresh, format-valid, never-real keys every run.
fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("/dev/urandom");
    buf
}

pub fn random_from(alphabet: &str, n: usize) -> String {
    let a = alphabet.as_bytes();
    loop {
        let s: String = random_bytes(n)
            .iter()
            .map(|b| a[*b as usize % a.len()] as char)
            .collect();
        let l = s.to_ascii_lowercase();
        // Keep placeholder words out of random values, as real keys would.
        if ![
            "xxxx", "example", "your", "test", "fake", "dummy", "insert", "replace", "todo",
        ]
        .iter()
        .any(|w| l.contains(w))
        {
            return s;
        }
    }
}

const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const URLSAFE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

fn crc_token(prefix: &str) -> String {
    let body = random_from(ALNUM, 30);
    let check = keyfence::detect::checksum::base62_6(crc32fast_hash(body.as_bytes()));
    format!("{prefix}{body}{}", String::from_utf8_lossy(&check))
}

fn crc32fast_hash(b: &[u8]) -> u32 {
    // IEEE CRC32, bit by bit: the tests must not share the implementation they check.
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in b {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A fresh fake key of `kind`.
pub fn fake(kind: &str) -> String {
    match kind {
        "anthropic" => format!("sk-ant-api03-{}AA", random_from(URLSAFE, 93)),
        "anthropic-admin" => format!("sk-ant-admin01-{}AA", random_from(URLSAFE, 93)),
        "claude-oauth" => format!("sk-ant-oat01-{}", random_from(URLSAFE, 95)),
        "openai" => format!(
            "sk-proj-{}T3BlbkFJ{}",
            random_from(URLSAFE, 74),
            random_from(URLSAFE, 74)
        ),
        "google" => format!("AIza{}", random_from(URLSAFE, 35)),
        "groq" => format!(
            "gsk_{}WGdyb3FY{}",
            random_from(ALNUM, 20),
            random_from(ALNUM, 24)
        ),
        "xai" => format!("xai-{}", random_from(ALNUM, 80)),
        "perplexity" => format!("pplx-{}", random_from(ALNUM, 48)),
        "huggingface" => format!("hf_{}", random_from(&ALNUM[..52], 34)),
        "mistral" => random_from(ALNUM, 32),
        "cohere" => random_from(ALNUM, 40),
        "aws-id" => format!(
            "AKIA{}",
            random_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
        ),
        "aws-secret" => random_from(&format!("{ALNUM}/+"), 40),
        "github" => crc_token("ghp_"),
        "github-oauth" => crc_token("gho_"),
        "npm" => crc_token("npm_"),
        "gitlab" => format!("glpat-{}", random_from(URLSAFE, 20)),
        "stripe" => format!("sk_live_{}", random_from(ALNUM, 24)),
        "slack" => format!(
            "xoxb-{}-{}-{}",
            random_from("0123456789", 12),
            random_from("0123456789", 12),
            random_from(ALNUM, 24)
        ),
        "token" => random_from(ALNUM, 32),
        "password" => format!("{}7!", random_from(ALNUM, 10)),
        other => panic!("unknown fake kind {other}"),
    }
}

/// A temporary home and project.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub project: PathBuf,
    pub etc: PathBuf,
    /// Every raw secret planted, so tests can check none is ever printed.
    pub planted: Vec<String>,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with_dir(tempfile::tempdir().expect("tempdir"))
    }

    /// A fixture outside /tmp, for tests where /tmp's own permissions would blur the result
    /// (the sandbox lets commands write in /tmp and /var/tmp; the guard's fence lists the
    /// directories on the way to the home entry by entry): in the target directory, or, for a
    /// checkout that is itself under /tmp, in `/var/cache` when root (tests hand the fixture to
    /// nobody, who cannot enter a 0700 /root) or the user's own cache.
    pub fn outside_tmp() -> Self {
        let writable = |p: &Path| p.starts_with("/tmp") || p.starts_with("/var/tmp");
        let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let base = if !writable(&target) {
            target
        } else if nix_is_root() {
            let cache = PathBuf::from("/var/cache/keyfence-test-fixtures");
            std::fs::create_dir_all(&cache).expect("mkdir");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
            cache
        } else {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            let cache = home.join(".cache/keyfence-test-fixtures");
            assert!(
                home.is_absolute() && !writable(&cache),
                "the checkout and HOME are both under /tmp: the sandbox tests need a fixture \
                 outside it (set CARGO_TARGET_DIR elsewhere)"
            );
            cache
        };
        std::fs::create_dir_all(&base).expect("mkdir");
        Self::with_dir(tempfile::tempdir_in(&base).expect("tempdir"))
    }

    fn with_dir(dir: tempfile::TempDir) -> Self {
        let home = dir.path().join("home");
        let project = dir.path().join("project");
        let etc = dir.path().join("etc");
        for d in [&home, &project, &etc] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        Fixture {
            dir,
            home,
            project,
            etc,
            planted: Vec::new(),
        }
    }

    /// A fresh fake key, remembered as planted.
    /// A new registered canary: `keyfence canary new KIND ARGS...` run directly (printing it
    /// is the point, and `run` forbids planted values in output).
    pub fn new_canary(&self, kind: &str, args: &[&std::ffi::OsStr]) -> String {
        let out = Command::new(BIN)
            .args(["canary", "new", kind])
            .args(args)
            .env_clear()
            .env("HOME", &self.home)
            .output()
            .expect("keyfence canary new");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    pub fn key(&mut self, kind: &str) -> String {
        let k = fake(kind);
        self.planted.push(k.clone());
        k
    }

    pub fn write(&self, path: &Path, content: &str) {
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).expect("mkdir");
        }
        std::fs::write(path, content).expect("write");
    }

    /// An executable script at `path` (a stand-in program for a test's PATH).
    pub fn script(&self, path: &Path, content: &str) {
        use std::os::unix::fs::PermissionsExt;
        self.write(path, content);
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    pub fn home_file(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.home.join(rel);
        self.write(&p, content);
        p
    }

    pub fn project_file(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.project.join(rel);
        self.write(&p, content);
        p
    }

    /// `keyfence ARGS` in the project directory, with only PATH, HOME and `env` set.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.run_command(Command::new(BIN), args, env)
    }

    /// Like `run`, as the unprivileged user nobody (root passes kernel checks keyfence relies
    /// on, DESIGN.md §5). The fixture tree is handed to nobody first. None when setpriv is
    /// missing.
    pub fn run_unprivileged(&self, args: &[&str], env: &[(&str, &str)]) -> Option<Run> {
        if !self.hand_to_unprivileged() {
            return None;
        }
        let mut c = Command::new(AS_UNPRIVILEGED[0]);
        c.args(&AS_UNPRIVILEGED[1..]).arg(BIN);
        Some(self.run_command(c, args, env))
    }

    /// Gives the fixture tree to the user `AS_UNPRIVILEGED` runs as: to nobody when the tests
    /// run as root (false, nothing done, when setpriv is missing); an ordinary user owns it
    /// already.
    pub fn hand_to_unprivileged(&self) -> bool {
        if !nix_is_root() {
            return true;
        }
        if !Path::new(AS_UNPRIVILEGED[0]).exists() {
            return false;
        }
        let st = Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(self.dir.path())
            .status()
            .expect("chown");
        assert!(st.success());
        // The binaries stay root's, in the checkout: a checkout under /root (mode 0700) is out
        // of nobody's reach, and every such test would fail with a bare "permission denied".
        let reachable = Command::new(AS_UNPRIVILEGED[0])
            .args(&AS_UNPRIVILEGED[1..])
            .args(["test", "-x", BIN])
            .status()
            .expect("setpriv");
        assert!(
            reachable.success(),
            "nobody (uid 65534) cannot execute {BIN}: put the checkout where every user can \
             reach it (not under a 0700 home such as /root)"
        );
        true
    }

    fn run_command(&self, mut c: Command, args: &[&str], env: &[(&str, &str)]) -> Run {
        c.current_dir(&self.project)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .arg("--etc")
            .arg(&self.etc)
            .args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().expect("run keyfence");
        let run = Run::from(out);
        run.assert_no_secret(&self.planted);
        run
    }

    /// `keyfence secret set NAME` in this fixture's home, the value through stdin.
    pub fn store_secret(&self, name: &str, value: &str) {
        use std::io::Write;
        let mut c = Command::new(BIN)
            .args(["secret", "set", name])
            .env_clear()
            .env("HOME", &self.home)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("keyfence secret set");
        // A keyfence that ended before reading says why in its status and stderr, below.
        if let Err(e) = c.stdin.take().expect("stdin").write_all(value.as_bytes()) {
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe,
                "write the value: {e}"
            );
        }
        let out = c.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "secret set {name}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn git(&self, args: &[&str]) {
        let st = Command::new("git")
            .current_dir(&self.project)
            .env("HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .output()
            .expect("git");
        assert!(
            st.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&st.stderr)
        );
    }
}

pub struct Run {
    /// The exit status, or minus the signal that ended the process.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or_else(|| {
                -std::os::unix::process::ExitStatusExt::signal(&o.status).unwrap_or(1)
            }),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }

    pub fn findings(&self) -> Vec<serde_json::Value> {
        self.json()["findings"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// No planted secret, nor any 16-character piece of one, appears in stdout or stderr.
    pub fn assert_no_secret(&self, planted: &[String]) {
        for s in planted {
            for out in [&self.stdout, &self.stderr] {
                assert!(!out.contains(s.as_str()), "raw secret printed:\n{out}");
                let tail = &s[s.len().saturating_sub(16)..];
                let mid = &s[s.len() / 2 - 8.min(s.len() / 2)..(s.len() / 2 + 8).min(s.len())];
                if s.len() >= 24 {
                    assert!(!out.contains(tail), "part of a secret printed:\n{out}");
                    assert!(!out.contains(mid), "part of a secret printed:\n{out}");
                }
            }
        }
    }
}

/// The finding with `rule` at `path` (suffix match) and `line`, if any.
pub fn find_at<'a>(
    findings: &'a [serde_json::Value],
    rule: &str,
    path_suffix: &str,
    line: u64,
) -> Option<&'a serde_json::Value> {
    findings.iter().find(|f| {
        f["rule"] == rule
            && f["location"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with(path_suffix))
            && f["location"]["line"] == line
    })
}

pub fn sha12(s: &str) -> String {
    keyfence::secret::fingerprint(s.as_bytes())
}

pub fn nix_is_root() -> bool {
    effective_uid() == 0
}

/// The effective uid, from /proc (the tests do not link nix).
pub fn effective_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1)?.parse().ok())
        })
        .expect("the effective uid in /proc/self/status")
}

/// Copies the tree `from` (directories and regular files) into `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}
