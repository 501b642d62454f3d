//! The agent-tree attack probe (issue #15) and the world around it: a fixture home seeded with
//! every credential file an agent's descendants could read, keyfence's store and canary
//! registry, and the same-uid services outside the tree that could act for them (a stand-in
//! helper on a unix socket, a real tmux server, a D-Bus session bus), all run as nobody.
//!
//! The probe (`tests/fixtures/agent_probe.py`) is never given a secret: it writes what each
//! channel gave into its loot directory, and [`Verdict::judge`] looks for the planted values
//! there, so no assertion ever prints one.
#![allow(dead_code)]

use crate::common::{AS_UNPRIVILEGED, BIN, Fixture, fake, random_from};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const PROBE: &str = include_str!("../../fixtures/agent_probe.py");
pub const HELPER: &str = include_str!("../../fixtures/same_uid_helper.py");

/// The credential files the probe reads, relative to HOME, by channel name.
pub const FILES: &[(&str, &str)] = &[
    ("claude", ".claude/.credentials.json"),
    ("codex", ".codex/auth.json"),
    ("gemini", ".gemini/oauth_creds.json"),
    ("aws", ".aws/credentials"),
    ("npmrc", ".npmrc"),
    ("gh", ".config/gh/hosts.yml"),
    ("git-credentials", ".git-credentials"),
    ("ssh", ".ssh/id_ed25519"),
];

/// Channel families, as the probe's config names them.
pub const ALL: &[&str] = &[
    "proc", "store", "files", "signals", "helper", "tmux", "dbus", "core",
];

/// Serialises the tests that use the shared tmux socket directory of the unprivileged uid.
pub static SHARED_TMP: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The shared tmux socket directory held, by this test (`SHARED_TMP`) and by this process
/// (a lock on a file beside it): two test binaries, or two checkouts' suites, would otherwise
/// start their outside services (`World`) in it at the same time, and each keyfence hides only
/// the sockets there when it starts.
pub struct SharedTmp {
    _in_process: std::sync::MutexGuard<'static, ()>,
    _across: std::fs::File,
}

pub fn shared_tmp() -> SharedTmp {
    let in_process = SHARED_TMP
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let path = "/tmp/keyfence-tests-shared-tmp.lock";
    // Another user's file (root's, made by an earlier run) is locked as well read-only.
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .or_else(|_| std::fs::File::open(path))
        .expect("open the shared-tmp lock file");
    file.lock().expect("lock the shared-tmp lock file");
    SharedTmp {
        _in_process: in_process,
        _across: file,
    }
}

/// A fixture home holding every credential, and what each value is.
pub struct Seeded {
    pub fx: Fixture,
    /// Claude Code's OAuth access token (also in `fx.planted`).
    pub oauth: String,
    /// (what, value) for every planted credential, to name a leak without printing it.
    pub secrets: Vec<(String, String)>,
    /// Names stored in keyfence's store.
    pub stored: Vec<String>,
    /// Where the probe may write outside the fixture (same filesystem as HOME: /tmp).
    pub scratch: PathBuf,
}

/// Milliseconds since the epoch, an hour on: a token Claude Code will not try to refresh.
fn in_an_hour_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        + 3_600_000
}

const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const LOWER: &str = "abcdefghijklmnopqrstuvwxyz0123456789";

impl Seeded {
    /// A home with every credential file of [`FILES`], keyfence's store holding `store`
    /// (name, value) pairs besides a GitHub token, and a registered canary.
    pub fn new(store: &[(&str, &str)]) -> Seeded {
        Seeded::in_fixture(Fixture::new(), store)
    }

    /// `new`, with the home outside /tmp, as a user's is: some agents treat a home under /tmp
    /// differently (Codex makes no links for its helpers there).
    pub fn outside_tmp(store: &[(&str, &str)]) -> Seeded {
        Seeded::in_fixture(Fixture::outside_tmp(), store)
    }

    fn in_fixture(mut fx: Fixture, store: &[(&str, &str)]) -> Seeded {
        let mut secrets: Vec<(String, String)> = Vec::new();
        let mut plant = |fx: &mut Fixture, what: &str, v: String| -> String {
            fx.planted.push(v.clone());
            secrets.push((what.to_string(), v.clone()));
            v
        };
        let oauth = plant(&mut fx, "claude oauth access token", fake("claude-oauth"));
        let refresh = plant(
            &mut fx,
            "claude oauth refresh token",
            format!("sk-ant-ort01-{}", random_from(LOWER, 90)),
        );
        fx.home_file(
            ".claude/.credentials.json",
            &serde_json::json!({"claudeAiOauth": {
                "accessToken": oauth, "refreshToken": refresh, "expiresAt": in_an_hour_ms() as u64,
                "scopes": ["user:inference", "user:profile", "user:sessions:claude_code"],
                "subscriptionType": "max"}})
            .to_string(),
        );
        let openai = plant(&mut fx, "codex key", fake("openai"));
        fx.home_file(
            ".codex/auth.json",
            &serde_json::json!({"OPENAI_API_KEY": openai, "tokens": null}).to_string(),
        );
        let gemini = plant(
            &mut fx,
            "gemini refresh token",
            format!("1//0{}", random_from(LOWER, 60)),
        );
        fx.home_file(
            ".gemini/oauth_creds.json",
            &serde_json::json!({"access_token": format!("ya29.{}", random_from(LOWER, 80)),
                "refresh_token": gemini, "token_type": "Bearer", "expiry_date": in_an_hour_ms() as u64})
            .to_string(),
        );
        let aws = plant(&mut fx, "aws secret key", fake("aws-secret"));
        fx.home_file(
            ".aws/credentials",
            &format!(
                "[default]\naws_access_key_id = {}\naws_secret_access_key = {aws}\n",
                fake("aws-id")
            ),
        );
        let npm = plant(&mut fx, "npm token", fake("npm"));
        fx.home_file(
            ".npmrc",
            &format!("//registry.npmjs.org/:_authToken={npm}\n"),
        );
        let gh = plant(&mut fx, "gh token", fake("github-oauth"));
        fx.home_file(
            ".config/gh/hosts.yml",
            &format!(
                "github.com:\n    oauth_token: {gh}\n    user: someone\n    git_protocol: https\n"
            ),
        );
        let git = plant(&mut fx, "git credential", fake("github"));
        fx.home_file(
            ".git-credentials",
            &format!("https://someone:{git}@github.com\n"),
        );
        let ssh = plant(&mut fx, "ssh private key", random_from(B64, 70));
        fx.home_file(
            ".ssh/id_ed25519",
            &format!(
                "-----BEGIN OPENSSH PRIVATE KEY-----\n{ssh}\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
                random_from(B64, 70)
            ),
        );
        let github = plant(&mut fx, "stored github token", fake("github"));
        fx.store_secret("GITHUB_TOKEN", &github);
        let mut stored = vec!["GITHUB_TOKEN".to_string()];
        for (name, value) in store {
            secrets.push((format!("stored {name}"), value.to_string()));
            fx.planted.push(value.to_string());
            fx.store_secret(name, value);
            stored.push(name.to_string());
        }
        fx.new_canary("aws", &[]);
        let scratch = PathBuf::from(format!("/tmp/kf-agent-probe-{}", random_from(LOWER, 12)));
        Seeded {
            fx,
            oauth,
            secrets,
            stored,
            scratch,
        }
    }

    pub fn vault(&self) -> PathBuf {
        self.fx.home.join(".local/share/keyfence/vault")
    }

    pub fn vault_key(&self) -> PathBuf {
        self.fx.home.join(".local/state/keyfence/vault.key")
    }

    pub fn canaries(&self) -> PathBuf {
        self.fx.home.join(".local/share/keyfence/canaries.json")
    }

    pub fn loot(&self) -> PathBuf {
        self.fx.project.join("loot")
    }

    /// Writes the probe and its config (channel families in `channels`) into the project; the
    /// Bash tool's command is then [`Seeded::probe_command`].
    pub fn write_probe(&self, channels: &[&str], world: &World) {
        self.fx.project_file("probe.py", PROBE);
        let files: serde_json::Map<String, serde_json::Value> = FILES
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        let cfg = serde_json::json!({
            "loot": self.loot(),
            "scratch": self.scratch,
            "keyfence": BIN,
            "secret_names": self.stored,
            "channels": channels,
            "files": files,
            "helper": world.helper_socket,
            "tmux": world.tmux_socket,
            "dbus": world.dbus_address,
        });
        self.fx.project_file("probe.json", &cfg.to_string());
    }

    /// Adds `key: value` to the probe's config (after `write_probe`).
    pub fn configure(&self, key: &str, value: &str) {
        let path = self.fx.project.join("probe.json");
        let mut cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("probe.json")).expect("json");
        cfg[key] = value.into();
        std::fs::write(&path, cfg.to_string()).expect("write probe.json");
    }

    pub fn probe_command(&self) -> String {
        format!(
            "python3 {}/probe.py {}/probe.json",
            self.fx.project.display(),
            self.fx.project.display()
        )
    }
}

impl Drop for Seeded {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// The same-uid services outside the tree, started as nobody; stopped on drop.
pub struct World {
    pub helper_socket: PathBuf,
    pub tmux_socket: PathBuf,
    pub runtime: PathBuf,
    pub dbus_address: String,
    children: Vec<Child>,
    tmux_up: bool,
}

/// `program args` as nobody, with a minimal environment.
fn as_nobody(home: &Path, program: &str) -> Command {
    let mut c = Command::new(AS_UNPRIVILEGED[0]);
    c.args(&AS_UNPRIVILEGED[1..])
        .arg(program)
        .env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/bin:/bin")
        .env("SHELL", "/bin/sh");
    c
}

/// The first line a started service prints, within 20 s.
fn first_line(child: &mut Child, what: &str) -> String {
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(std::time::Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{what} did not start"))
}

impl World {
    /// Missing tools, in words, for `common::skip`.
    pub fn missing() -> Option<String> {
        let need = [
            "/usr/bin/setpriv",
            "/usr/bin/python3",
            "/usr/bin/tmux",
            "/usr/bin/dbus-daemon",
            "/usr/bin/dbus-send",
            "/usr/bin/prlimit",
        ];
        let missing: Vec<&str> = need
            .iter()
            .filter(|p| !Path::new(p).exists())
            .copied()
            .collect();
        (!missing.is_empty()).then(|| format!("needs {}", missing.join(", ")))
    }

    /// Where the services will listen, before they start (the probe's config names them).
    pub fn addresses(s: &Seeded) -> World {
        let dir = PathBuf::from(format!("/tmp/tmux-{}", crate::common::unprivileged_uid()));
        let runtime = s.fx.dir.path().join("run");
        World {
            helper_socket: dir.join("default"),
            tmux_socket: dir.join(format!("keyfence-test-{}", random_from(LOWER, 8))),
            dbus_address: format!("unix:path={}/bus", runtime.display()),
            runtime,
            children: Vec::new(),
            tmux_up: false,
        }
    }

    /// Starts the helper at tmux's default socket path for nobody, a real tmux server, and a
    /// session bus, all as nobody and outside keyfence, at `addresses`. The fixture must
    /// already be nobody's.
    pub fn start(s: &Seeded, addresses: World) -> World {
        let fx = &s.fx;
        let mut world = addresses;
        let dir = world
            .helper_socket
            .parent()
            .expect("socket dir")
            .to_path_buf();
        let st = as_nobody(&fx.home, "mkdir")
            .args(["-p", "-m", "0700"])
            .arg(&dir)
            .status()
            .expect("mkdir");
        assert!(st.success(), "cannot make {}", dir.display());
        let helper_script = fx.dir.path().join("same_uid_helper.py");
        std::fs::write(&helper_script, HELPER).expect("write helper");

        let mut helper = as_nobody(&fx.home, "/usr/bin/python3")
            .arg(&helper_script)
            .arg(&world.helper_socket)
            .arg(s.loot())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the helper");
        let ready = first_line(&mut helper, "the same-uid helper");
        world.children.push(helper);
        assert_eq!(ready.trim(), "ready");

        let st = as_nobody(&fx.home, "tmux")
            .arg("-S")
            .arg(&world.tmux_socket)
            .args(["new-session", "-d", "-s", "outside", "sleep 600"])
            .status()
            .expect("tmux");
        assert!(st.success(), "tmux did not start");
        world.tmux_up = true;

        let st = as_nobody(&fx.home, "mkdir")
            .args(["-p", "-m", "0700"])
            .arg(&world.runtime)
            .status()
            .expect("mkdir");
        assert!(st.success());
        let mut bus = as_nobody(&fx.home, "dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .arg(format!("--address={}", world.dbus_address))
            .stdout(Stdio::piped())
            .spawn()
            .expect("start dbus-daemon");
        let addr = first_line(&mut bus, "dbus-daemon");
        world.children.push(bus);
        assert!(addr.starts_with("unix:path="), "dbus-daemon said {addr}");
        world
    }

    /// What the tree gets to find the session bus, as a desktop session would give it.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "XDG_RUNTIME_DIR".to_string(),
                self.runtime.display().to_string(),
            ),
            (
                "DBUS_SESSION_BUS_ADDRESS".to_string(),
                self.dbus_address.clone(),
            ),
        ]
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if self.tmux_up {
            let _ = Command::new(AS_UNPRIVILEGED[0])
                .args(&AS_UNPRIVILEGED[1..])
                .args(["tmux", "-S"])
                .arg(&self.tmux_socket)
                .arg("kill-server")
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .status();
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.helper_socket);
        let _ = std::fs::remove_file(&self.tmux_socket);
    }
}

/// The planted values found in a large `bytes` (a core file): grep, since the tests' own
/// unoptimised search takes minutes over a gigabyte. The values go to grep in a file, never
/// on its command line; what grep prints comes back through a pipe.
fn grep(s: &Seeded, hay: &Path) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let patterns = dir.path().join("patterns");
    let list: String = s.secrets.iter().map(|(_, v)| format!("{v}\n")).collect();
    std::fs::write(&patterns, list).expect("write patterns");
    let out = Command::new("grep")
        .args(["-a", "-o", "-F", "-f"])
        .arg(&patterns)
        .arg(hay)
        .output()
        .expect("grep");
    let found = String::from_utf8_lossy(&out.stdout);
    s.secrets
        .iter()
        .filter(|(_, v)| found.lines().any(|l| l == v))
        .map(|(what, _)| what.clone())
        .collect()
}

/// What the probe tried and what it got, judged against the planted values.
#[derive(Debug)]
pub struct Verdict {
    /// Channels the probe reported `tried`.
    pub tried: BTreeSet<String>,
    /// "channel: what leaked" — never the value itself.
    pub leaks: BTreeSet<String>,
    /// The probe's own report (tried/got/refused/LEAK lines, no secrets).
    pub report: String,
}

impl Verdict {
    /// Reads the loot directory and any core file in the project. Waits up to `wait` for the
    /// probe's `done` (it may outlive an agent a core-dump attack killed).
    pub fn judge(s: &Seeded, wait: std::time::Duration) -> Verdict {
        let loot = s.loot();
        let start = std::time::Instant::now();
        let report = loop {
            let r = std::fs::read_to_string(loot.join("report")).unwrap_or_default();
            if r.lines().any(|l| l == "done") || start.elapsed() > wait {
                break r;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        let mut tried = BTreeSet::new();
        let mut leaks = BTreeSet::new();
        for line in report.lines() {
            if let Some(ch) = line.strip_prefix("tried ") {
                tried.insert(ch.to_string());
            }
            if let Some(ch) = line.strip_prefix("LEAK ") {
                leaks.insert(format!("{ch}: succeeded"));
            }
        }
        let whole = |p: &Path| std::fs::read(p).ok().filter(|b| b.len() >= 16);
        let store_files = [
            ("the vault", whole(&s.vault())),
            ("the vault's key", whole(&s.vault_key())),
            ("the canary registry", whole(&s.canaries())),
        ];
        let mut hay: Vec<(String, PathBuf)> = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&loot) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                // The outside helper's own reads of the agent's /proc entries.
                if name.starts_with("outside-") {
                    tried.insert(name.clone());
                }
                if name != "report" {
                    hay.push((name, e.path()));
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(&s.fx.project) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("core") {
                    let mib = e.metadata().map_or(0, |m| m.len()) >> 20;
                    leaks.insert(format!("{name}: a core file was written ({mib} MiB)"));
                    hay.push((name, e.path()));
                }
            }
        }
        for (channel, path) in &hay {
            let size = std::fs::metadata(path).map_or(0, |m| m.len());
            let bytes = if size > 8 << 20 {
                Vec::new()
            } else {
                std::fs::read(path).unwrap_or_default()
            };
            let found: Vec<String> = if size > 8 << 20 {
                grep(s, path)
            } else {
                s.secrets
                    .iter()
                    .filter(|(_, value)| memchr::memmem::find(&bytes, value.as_bytes()).is_some())
                    .map(|(what, _)| what.clone())
                    .collect()
            };
            for what in found {
                leaks.insert(format!("{channel}: {what}"));
            }
            for (what, content) in &store_files {
                if let Some(c) = content
                    && memchr::memmem::find(&bytes, c).is_some()
                {
                    leaks.insert(format!("{channel}: {what}"));
                }
            }
        }
        Verdict {
            tried,
            leaks,
            report,
        }
    }

    /// Channels (by prefix) the probe did not try.
    pub fn untried(&self, expected: &[&str]) -> Vec<String> {
        expected
            .iter()
            .filter(|p| !self.tried.iter().any(|t| t.starts_with(*p)))
            .map(|p| p.to_string())
            .collect()
    }

    /// Leaks through channels whose name starts with `prefix`.
    pub fn leaks_through(&self, prefix: &str) -> Vec<&String> {
        self.leaks
            .iter()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }
}

/// What the helper outside the tree reads of the agent on its own (not asked by the tree):
/// the agent's /proc entries, which only a non-dumpable agent keeps from a same-uid process.
pub const OUTSIDE: &[&str] = &["outside-environ-claude", "outside-mem-claude"];

/// The channel prefixes every full probe must have tried, for `Verdict::untried`.
pub const EXPECTED: &[&str] = &[
    "env",
    "environ-claude",
    "mem-claude",
    "ptrace-claude",
    "secret-get-",
    "secret-list",
    "vault",
    "vault-key",
    "vault-copied",
    "canaries",
    "file-claude",
    "file-codex",
    "file-gemini",
    "file-aws",
    "file-npmrc",
    "file-gh",
    "file-git-credentials",
    "file-ssh",
    "link-aws",
    "rename-git-credentials",
    "signal-0-claude",
    "signal-18-claude",
    "helper-file-claude",
    "helper-environ-claude",
    "tmux",
    "dbus",
    "core-claude",
];
