//! The install sandbox against a real `npm install` whose dependency's postinstall attacks, run
//! as an ordinary user (nobody) with a home it owns outside /tmp (issue #14, part 3). Each test
//! runs the same attack under `--profile default` first (no sandbox), where it must work, so
//! the test can fail; then under `keyfence run -- npm install` (the built-in `install` profile
//! picked by the command line), where it must not.
//!
//! The attacks: read keys from shell start-up files, shell history and git's credential files;
//! plant code that runs later outside the sandbox (`core.fsmonitor` in `.git/config`, a git
//! hook, a `.git` swapped for another, a program in a `PATH` directory, also by renaming the
//! directory above it, a crate's `build.rs` in `~/.cargo/registry/src`, a line in `~/.bashrc`,
//! a package in npx's cache); use the user's ssh-agent and gpg-agent; read the project's own
//! `.env` files.

use crate::common::*;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The dependency's postinstall: tries each attack and writes one `name=outcome` line per
/// attempt to `probe.txt` in the project (read contents included: files are not masked).
const ATTACK: &str = r##"
const fs = require("fs"), path = require("path"), net = require("net"), os = require("os");
const home = os.homedir(), root = process.env.INIT_CWD, tools = process.env.KF_TOOLS;
const out = [];
const attempt = (name, f) => {
  try { const r = f(); out.push(`${name}=ok${r ? " " + r : ""}`); }
  catch (e) { out.push(`${name}=${e.code || e.message}`); }
};
for (const f of [".bashrc", ".zshrc", ".bash_history", ".local/share/fish/fish_history",
                 ".git-credentials", ".config/git/credentials"]) {
  attempt("read " + f, () => JSON.stringify(fs.readFileSync(path.join(home, f), "utf8")));
}
// The project's own keys, beside the package.json it installs.
for (const f of [".env", ".env.local", ".env.example", "apps/web/.env.production"]) {
  attempt("read project " + f, () => JSON.stringify(fs.readFileSync(path.join(root, f), "utf8")));
}
attempt("plant .git/config", () => fs.appendFileSync(path.join(root, ".git/config"),
  '[core]\n\tfsmonitor = "touch PLANTED-fsmonitor"\n'));
attempt("plant .git/hooks", () => fs.writeFileSync(path.join(root, ".git/hooks/post-checkout"),
  "#!/bin/sh\ntouch PLANTED-hook\n", { mode: 0o755 }));
attempt("swap .git", () => {
  fs.renameSync(path.join(root, ".git"), path.join(root, ".git-old"));
  fs.mkdirSync(path.join(root, ".git"));
});
attempt("plant ~/.bun/bin", () => fs.writeFileSync(path.join(home, ".bun/bin/git"), "#!/bin/sh\n"));
attempt("plant PATH dir in temp", () => fs.writeFileSync(path.join(tools, "git"), "#!/bin/sh\n"));
attempt("swap PATH dir in temp", () => {
  const top = path.dirname(tools);
  fs.renameSync(top, top + "-old");
  fs.mkdirSync(tools, { recursive: true });
  fs.writeFileSync(path.join(tools, "git"), "#!/bin/sh\n");
});
attempt("plant cargo src", () => fs.appendFileSync(
  path.join(home, ".cargo/registry/src/index-0/dep-1.0.0/build.rs"), "// planted\n"));
attempt("plant .bashrc", () => fs.appendFileSync(path.join(home, ".bashrc"), "touch PLANTED\n"));
attempt("plant .profile", () => fs.writeFileSync(path.join(home, ".profile"), "touch PLANTED\n"));
attempt("plant pip cache", () => fs.writeFileSync(path.join(home, ".cache/pip/wheels/x.whl"), "x"));
attempt("plant npx cache", () => fs.mkdirSync(path.join(home, ".npm/_npx/0123abcd/node_modules/x"),
  { recursive: true }));
for (const v of ["SSH_AUTH_SOCK", "DBUS_SESSION_BUS_ADDRESS", "TMUX"]) {
  out.push(v + "=" + (process.env[v] ? "set" : "unset"));
}
const connect = (name, p) => new Promise((done) => {
  const s = net.connect(p);
  s.on("connect", () => { out.push(`${name}=ok`); s.end(); done(); });
  s.on("error", (e) => { out.push(`${name}=${e.code}`); done(); });
});
(async () => {
  await connect("connect ssh-agent", path.join(home, "agent/ssh.sock"));
  await connect("connect gpg-agent", path.join(home, ".gnupg/S.gpg-agent"));
  await connect("connect session bus", path.join(process.env.XDG_RUNTIME_DIR, "bus"));
  await connect("connect tmux", process.env.KF_TMUX);
  fs.writeFileSync(path.join(root, "probe.txt"), out.join("\n") + "\n");
})();
"##;

/// Whether this test can run here: `tool` installed, and root with setpriv to run the install
/// as nobody. Otherwise `skip`, which fails under CI.
fn ready(tool: &str) -> bool {
    if Command::new(tool).arg("--version").output().is_err() {
        skip(&format!(
            "{tool} is needed for this test (.ci/run installs it)"
        ));
        return false;
    }
    if !Path::new(AS_UNPRIVILEGED[0]).exists() {
        skip("setpriv (util-linux) is needed to run the install as nobody");
        return false;
    }
    true
}

/// `npm pack` of a package whose postinstall runs `script`, from inside its directory.
fn package(dir: &Path, name: &str, scripts: &str, files: &[(&str, &str)]) -> PathBuf {
    let src = dir.join(name);
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("package.json"),
        format!(r#"{{"name": "{name}", "version": "1.0.0", "scripts": {scripts}}}"#),
    )
    .unwrap();
    for (f, text) in files {
        std::fs::write(src.join(f), text).unwrap();
    }
    npm_pack(&src, dir);
    dir.join(format!("{name}-1.0.0.tgz"))
}

/// A user's machine as the attack finds it, and what the attack wants.
struct Victim {
    fx: Fixture,
    tarball: PathBuf,
    /// A PATH directory beneath a writable temp directory ($TMPDIR).
    tools: PathBuf,
    tmpdir: PathBuf,
    path: String,
    ssh: PathBuf,
    /// $XDG_RUNTIME_DIR, with the session bus in it.
    runtime: PathBuf,
    /// A tmux server's socket.
    tmux: PathBuf,
    connects: Arc<AtomicUsize>,
    _listeners: Vec<UnixListener>,
}

fn victim() -> Victim {
    let mut fx = Fixture::outside_tmp();
    let in_rc = fx.key("openai");
    let in_history = fx.key("anthropic");
    let in_fish = fx.key("groq");
    let in_git = fx.key("github");
    let in_xdg_git = fx.key("gitlab");
    fx.home_file(".bashrc", &format!("export OPENAI_API_KEY={in_rc}\n"));
    fx.home_file(".zshrc", &format!("export OPENAI_API_KEY={in_rc}\n"));
    fx.home_file(
        ".bash_history",
        &format!("ANTHROPIC_API_KEY={in_history} claude\n"),
    );
    fx.home_file(
        ".local/share/fish/fish_history",
        &format!("- cmd: export GROQ_API_KEY={in_fish}\n  when: 1700000000\n"),
    );
    fx.home_file(
        ".git-credentials",
        &format!("https://u:{in_git}@github.com\n"),
    );
    fx.home_file(
        ".config/git/credentials",
        &format!("https://oauth2:{in_xdg_git}@gitlab.com\n"),
    );
    fx.home_file(
        ".cargo/registry/src/index-0/dep-1.0.0/build.rs",
        "fn main() {}\n",
    );
    std::fs::create_dir_all(fx.home.join(".cargo/registry/cache")).unwrap();
    std::fs::create_dir_all(fx.home.join(".bun/bin")).unwrap();
    std::fs::create_dir_all(fx.home.join(".bun/install/cache")).unwrap();
    std::fs::create_dir_all(fx.home.join(".cache/pip/wheels")).unwrap();
    let tmpdir = fx.dir.path().join("tmp");
    let tools = tmpdir.join("tools/bin");
    std::fs::create_dir_all(&tools).unwrap();
    let in_env = fx.key("stripe");
    let in_env_local = fx.key("openai");
    fx.project_file(".env", &format!("STRIPE_SECRET_KEY={in_env}\n"));
    fx.project_file(".env.local", &format!("OPENAI_API_KEY={in_env_local}\n"));
    // A monorepo's app keeps its own.
    let in_app_env = fx.key("anthropic");
    fx.project_file(
        "apps/web/.env.production",
        &format!("ANTHROPIC_API_KEY={in_app_env}\n"),
    );
    // A template: no key, and setup scripts copy it, so it stays readable.
    fx.project_file(".env.example", "STRIPE_SECRET_KEY=\n");
    fx.git(&["init", "-q"]);
    let pkgs = fx.dir.path().join("pkgs");
    let tarball = package(
        &pkgs,
        "evil-helper",
        r#"{"postinstall": "node install.js"}"#,
        &[("install.js", ATTACK)],
    );
    fx.project_file(
        "package.json",
        r#"{"name": "app", "version": "1.0.0", "allowScripts": {"evil-helper": true}}"#,
    );
    // The agents: listening sockets, counting who connects.
    let connects = Arc::new(AtomicUsize::new(0));
    let ssh = fx.home.join("agent/ssh.sock");
    let gpg = fx.home.join(".gnupg/S.gpg-agent");
    let runtime = fx.dir.path().join("run");
    let tmux = fx.dir.path().join("tmux/default");
    let mut listeners = Vec::new();
    for s in [&ssh, &gpg, &runtime.join("bus"), &tmux] {
        std::fs::create_dir_all(s.parent().unwrap()).unwrap();
        let l = UnixListener::bind(s).unwrap();
        let n = connects.clone();
        let accept = l.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in accept.incoming().flatten() {
                n.fetch_add(1, Ordering::SeqCst);
            }
        });
        listeners.push(l);
    }
    let path = format!(
        "{}:{}:{}",
        fx.home.join(".bun/bin").display(),
        tools.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Victim {
        fx,
        tarball,
        tools,
        tmpdir,
        path,
        ssh,
        runtime,
        tmux,
        connects,
        _listeners: listeners,
    }
}

impl Victim {
    /// `keyfence run OPTIONS -- npm install --offline TARBALL` as nobody; the probe's lines.
    fn install(&self, options: &[&str]) -> Option<(Run, String)> {
        let mut args = vec!["run"];
        args.extend(options);
        args.extend([
            "--",
            "npm",
            "install",
            "--offline",
            "--no-audit",
            "--no-fund",
            self.tarball.to_str().unwrap(),
        ]);
        let bus = format!("unix:path={}/bus", self.runtime.display());
        let tmux = format!("{},4242,0", self.tmux.display());
        let r = self.fx.run_unprivileged(
            &args,
            &[
                ("PATH", &self.path),
                ("TMPDIR", self.tmpdir.to_str().unwrap()),
                ("KF_TOOLS", self.tools.to_str().unwrap()),
                ("SSH_AUTH_SOCK", self.ssh.to_str().unwrap()),
                ("XDG_RUNTIME_DIR", self.runtime.to_str().unwrap()),
                ("DBUS_SESSION_BUS_ADDRESS", &bus),
                ("TMUX", &tmux),
                ("KF_TMUX", self.tmux.to_str().unwrap()),
                // npm's cache is the default, ~/.npm, which this fresh home does not have.
                ("npm_config_update_notifier", "false"),
            ],
        )?;
        let probe = std::fs::read_to_string(self.fx.project.join("probe.txt")).unwrap_or_default();
        Some((r, probe))
    }

    fn leaked(&self, probe: &str) -> Vec<usize> {
        (0..self.fx.planted.len())
            .filter(|&i| probe.contains(&self.fx.planted[i]))
            .collect()
    }

    /// What the attack left behind that runs later, by name.
    fn planted_anywhere(&self) -> Vec<&'static str> {
        let has =
            |p: PathBuf, what: &str| std::fs::read_to_string(p).is_ok_and(|t| t.contains(what));
        let p = &self.fx.project;
        let h = &self.fx.home;
        [
            // A swapped .git keeps the planted config and hook in the old one.
            (
                ".git/config",
                has(p.join(".git/config"), "fsmonitor")
                    || has(p.join(".git-old/config"), "fsmonitor"),
            ),
            (
                ".git/hooks",
                p.join(".git/hooks/post-checkout").exists()
                    || p.join(".git-old/hooks/post-checkout").exists(),
            ),
            (".git swapped", p.join(".git-old").exists()),
            ("~/.bun/bin/git", h.join(".bun/bin/git").exists()),
            ("temp PATH dir", self.tools.join("git").exists()),
            ("npx cache", h.join(".npm/_npx/0123abcd").exists()),
            ("pip cache", h.join(".cache/pip/wheels/x.whl").exists()),
            (
                "build.rs",
                has(
                    h.join(".cargo/registry/src/index-0/dep-1.0.0/build.rs"),
                    "planted",
                ),
            ),
            (".bashrc", has(h.join(".bashrc"), "PLANTED")),
            (".profile", has(h.join(".profile"), "PLANTED")),
        ]
        .into_iter()
        .filter_map(|(name, planted)| planted.then_some(name))
        .collect()
    }
}

const EVERY_AGENT: [&str; 4] = [
    "connect ssh-agent",
    "connect gpg-agent",
    "connect session bus",
    "connect tmux",
];

const EVERY_PLANT: [&str; 10] = [
    ".git/config",
    ".git/hooks",
    ".git swapped",
    "~/.bun/bin/git",
    "temp PATH dir",
    "npx cache",
    "pip cache",
    "build.rs",
    ".bashrc",
    ".profile",
];

/// The probe's lines without what was read: for failure messages (fake keys are still not
/// printed).
fn outcomes(probe: &str) -> String {
    probe
        .lines()
        .map(|l| l.split(" \"").next().unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

fn line<'a>(probe: &'a str, name: &str) -> &'a str {
    probe
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name} in probe:\n{}", outcomes(probe)))
}

#[test]
fn without_the_sandbox_every_attack_works() {
    if !ready("npm") {
        return;
    }
    let v = victim();
    let Some((r, probe)) = v.install(&["--profile", "default"]) else {
        return;
    };
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        v.leaked(&probe).len(),
        v.fx.planted.len(),
        "{}",
        outcomes(&probe)
    );
    assert_eq!(v.planted_anywhere(), EVERY_PLANT, "{}", outcomes(&probe));
    for a in ["SSH_AUTH_SOCK", "DBUS_SESSION_BUS_ADDRESS", "TMUX"] {
        assert_eq!(line(&probe, a), "set", "{}", outcomes(&probe));
    }
    for a in EVERY_AGENT {
        assert_eq!(line(&probe, a), "ok", "{}", outcomes(&probe));
    }
    assert_eq!(v.connects.load(Ordering::SeqCst), 4);
}

#[test]
fn the_install_sandbox_leaves_nothing_to_read_and_nowhere_to_plant() {
    if !ready("npm") {
        return;
    }
    let v = victim();
    let Some((r, probe)) = v.install(&[]) else {
        return;
    };
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        probe.contains("connect tmux="),
        "probe did not finish: {}\n{}",
        outcomes(&probe),
        r.stderr
    );
    assert!(
        v.leaked(&probe).is_empty(),
        "keys leaked:\n{}",
        outcomes(&probe)
    );
    for f in [
        ".bashrc",
        ".zshrc",
        ".bash_history",
        ".local/share/fish/fish_history",
        ".git-credentials",
        ".config/git/credentials",
    ] {
        assert_eq!(
            line(&probe, &format!("read {f}")),
            "EACCES",
            "{}",
            outcomes(&probe)
        );
    }
    // The project's .env files are hidden (the install profile's deny_read); the template is not.
    for f in [".env", ".env.local", "apps/web/.env.production"] {
        assert_eq!(
            line(&probe, &format!("read project {f}")),
            "EACCES",
            "{}",
            outcomes(&probe)
        );
    }
    assert!(line(&probe, "read project .env.example").starts_with("ok"));
    // The whole command to type (the user may have typed only `npm install`), every option kept
    // (the harness gives keyfence a hidden `--etc`).
    assert!(
        r.stderr
            .contains("run --deny-read '!.env' -- npm install --offline"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(
            "keyfence: hidden from the command: .env, .env.local, apps/web/.env.production \
             (deny_read of profile 'install')"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(
        v.planted_anywhere(),
        Vec::<&str>::new(),
        "{}",
        outcomes(&probe)
    );
    // Beneath the writable project and temp: a read-only mount, which cannot be moved away.
    assert_eq!(line(&probe, "plant .git/config"), "EROFS");
    assert_eq!(line(&probe, "plant .git/hooks"), "EROFS");
    assert_eq!(line(&probe, "swap .git"), "EBUSY");
    assert_eq!(line(&probe, "plant PATH dir in temp"), "EROFS");
    assert_eq!(line(&probe, "swap PATH dir in temp"), "EBUSY");
    // Elsewhere Landlock alone.
    for a in [
        "plant pip cache",
        "plant ~/.bun/bin",
        "plant cargo src",
        "plant .bashrc",
        "plant .profile",
    ] {
        assert_eq!(line(&probe, a), "EACCES", "{a}: {}", outcomes(&probe));
    }
    for a in ["SSH_AUTH_SOCK", "DBUS_SESSION_BUS_ADDRESS", "TMUX"] {
        assert_eq!(line(&probe, a), "unset", "{}", outcomes(&probe));
    }
    for a in EVERY_AGENT {
        assert_eq!(line(&probe, a), "ECONNREFUSED", "{}", outcomes(&probe));
    }
    assert_eq!(v.connects.load(Ordering::SeqCst), 0);
    // A fresh home: keyfence created npm's cache for it (private), so the install could run.
    use std::os::unix::fs::PermissionsExt;
    let npm_cache = std::fs::metadata(v.fx.home.join(".npm")).expect("~/.npm created");
    assert_eq!(npm_cache.permissions().mode() & 0o777, 0o700);
    // The install itself worked, and the repository is still usable.
    assert!(v.fx.project.join("node_modules/evil-helper").is_dir());
    let st = Command::new("git")
        .args([
            "-c",
            "safe.directory=*",
            "-C",
            v.fx.project.to_str().unwrap(),
        ])
        .args(["status", "--short"])
        .output()
        .unwrap();
    assert!(st.status.success());
}

/// The real bun (`target/test-tools`, pinned in scripts/test-all) loads the project's `.env`
/// into its own environment for `bun install`, so a trusted dependency's postinstall gets
/// every key in it: found while adding `deny_read`. Under the install profile bun cannot read
/// the file, installs all the same, and the script gets nothing.
#[test]
fn bun_hands_the_projects_env_to_install_scripts_unless_it_is_hidden() {
    let bun = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-tools/node_modules/.bin/bun");
    if !bun.exists() {
        skip(&format!(
            "bun not found at {}: run `npm install --prefix target/test-tools bun@1.4.5` (.ci/run does)",
            bun.display()
        ));
        return;
    }
    if !ready("node") {
        return;
    }
    let mut fx = Fixture::outside_tmp();
    let key = fx.key("stripe");
    fx.project_file(".env", &format!("STRIPE_SECRET_KEY={key}\n"));
    let pkgs = fx.dir.path().join("pkgs");
    let tarball = package(
        &pkgs,
        "evil-helper",
        r#"{"postinstall": "node got.js"}"#,
        &[(
            "got.js",
            "require('fs').writeFileSync(process.env.KF_PROBE, \
             process.env.STRIPE_SECRET_KEY ? 'got a key' : 'nothing');",
        )],
    );
    fx.project_file(
        "package.json",
        &format!(
            r#"{{"name": "app", "version": "1.0.0", "dependencies": {{"evil-helper": "file:{}"}},
                "trustedDependencies": ["evil-helper"]}}"#,
            tarball.display()
        ),
    );
    fx.git(&["init", "-q"]);
    let probe = fx.project.join("probe.txt");
    let install = |profile: &[&str]| {
        let _ = std::fs::remove_dir_all(fx.project.join("node_modules"));
        let _ = std::fs::remove_file(fx.project.join("bun.lock"));
        let _ = std::fs::remove_file(&probe);
        let mut args = vec!["run"];
        args.extend(profile);
        args.extend(["--", bun.to_str().unwrap(), "install", "--no-progress"]);
        let r = fx.run_unprivileged(
            &args,
            &[
                ("KF_PROBE", probe.to_str().unwrap()),
                ("PATH", &std::env::var("PATH").unwrap_or_default()),
            ],
        )?;
        Some((r, std::fs::read_to_string(&probe).unwrap_or_default()))
    };
    let Some((plain, got)) = install(&["--profile", "default"]) else {
        skip("setpriv (util-linux) is needed to run the install as nobody");
        return;
    };
    assert_eq!(plain.code, 0, "{}\n{}", plain.stdout, plain.stderr);
    assert_eq!(got, "got a key", "the control: {}", plain.stderr);
    let (r, got) = install(&[]).unwrap();
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(got, "nothing", "{}", r.stderr);
    assert!(fx.project.join("node_modules/evil-helper").is_dir());
    assert!(
        r.stderr.contains("hidden from the command: .env"),
        "{}",
        r.stderr
    );
}

/// The user's own flag shows a hidden `.env` to one install (an install script that needs it),
/// and nothing else: the other stays hidden, and the keys stay out of keyfence's output.
#[test]
fn the_user_may_show_one_env_file_to_an_install() {
    if !ready("npm") {
        return;
    }
    let v = victim();
    let Some((r, probe)) = v.install(&["--deny-read", "!.env"]) else {
        return;
    };
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        line(&probe, "read project .env").starts_with("ok"),
        "{}",
        outcomes(&probe)
    );
    assert_eq!(
        line(&probe, "read project .env.local"),
        "EACCES",
        "{}",
        outcomes(&probe)
    );
    // What was shown is read: the key of .env, and only that one.
    let env = std::fs::read_to_string(v.fx.project.join(".env")).unwrap();
    let env_key =
        v.fx.planted
            .iter()
            .find(|k| env.contains(k.as_str()))
            .expect("the key planted in .env");
    assert!(probe.contains(env_key.as_str()));
    assert_eq!(v.leaked(&probe).len(), 1, "{}", outcomes(&probe));
    r.assert_no_secret(&v.fx.planted);
}

/// The real husky (v9, `target/test-tools`, installed by .ci/run): its `prepare` runs
/// `git config core.hooksPath .husky/_`. A project install may not write `.git/config`, so
/// the sandbox refuses, and keyfence says what it kept and how to allow it; `--allow-write .git`
/// (the user's own flag: a project file cannot grant it) lets it through.
#[test]
fn husky_prepare_is_refused_and_told_how_to_allow_it() {
    let husky = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-tools/node_modules/husky");
    if !ready("npm") {
        return;
    }
    if !husky.join("package.json").exists() {
        skip(&format!(
            "husky not found at {}: .ci/run installs it",
            husky.display()
        ));
        return;
    }
    let fx = Fixture::outside_tmp();
    let pkgs = fx.dir.path().join("pkgs");
    std::fs::create_dir_all(&pkgs).unwrap();
    npm_pack(&husky, &pkgs);
    let tarball = std::fs::read_dir(&pkgs)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "tgz"))
        .expect("husky tarball");
    fx.project_file(
        "package.json",
        &format!(
            r#"{{"name": "app", "version": "1.0.0", "scripts": {{"prepare": "husky"}},
                "devDependencies": {{"husky": "file:{}"}}}}"#,
            tarball.display()
        ),
    );
    fx.git(&["init", "-q"]);
    let hooks_path = |fx: &Fixture| {
        let o = Command::new("git")
            .args(["-c", "safe.directory=*", "config", "core.hooksPath"])
            .current_dir(&fx.project)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let install = |extra: &[&str]| {
        let mut args = vec!["run"];
        args.extend(extra);
        args.extend([
            "--",
            "npm",
            "install",
            "--offline",
            "--no-audit",
            "--no-fund",
        ]);
        fx.run_unprivileged(&args, &[("npm_config_update_notifier", "false")])
    };
    let Some(r) = install(&[]) else { return };
    let output = format!("{}{}", r.stdout, r.stderr);
    assert_eq!(r.code, 0, "{output}");
    assert_eq!(hooks_path(&fx), "", "husky set core.hooksPath: {output}");
    // husky reports git's refusal; keyfence says what it kept and how to allow it.
    assert!(
        output.contains(".git/config: Read-only file system"),
        "{output}"
    );
    assert!(
        r.stderr
            .contains("keyfence: note: the sandbox kept .git read-only"),
        "{output}"
    );
    assert!(r.stderr.contains("husky"), "{output}");
    assert!(
        r.stderr
            .contains("keyfence run --allow-write .git -- npm install --offline"),
        "{output}"
    );

    let Some(r) = install(&["--allow-write", ".git"]) else {
        return;
    };
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(hooks_path(&fx), ".husky/_", "{}{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains("note:"), "{}", r.stderr);
}

/// A worktree's `.git` is a file naming its git directory: rewritten, the user's next git
/// command there would run a planted repository's config. It stays as it was.
#[test]
fn a_worktree_git_file_cannot_be_pointed_elsewhere() {
    if !ready("git") {
        return;
    }
    let fx = Fixture::outside_tmp();
    let main = fx.dir.path().join("main");
    std::fs::create_dir_all(&main).unwrap();
    let git = |dir: &Path, args: &[&str]| {
        let o = Command::new("git")
            .current_dir(dir)
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
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    git(&main, &["init", "-q"]);
    git(&main, &["commit", "-q", "--allow-empty", "-m", "x"]);
    git(
        &main,
        &["worktree", "add", "-q", fx.project.to_str().unwrap()],
    );
    let before = std::fs::read_to_string(fx.project.join(".git")).unwrap();
    assert!(before.starts_with("gitdir:"), "{before}");
    let attack = "printf 'gitdir: /var/tmp/planted\\n' > .git; echo write=$?; \
                  mv .git .git-old; echo mv=$?; \
                  echo x >> ../main/.git/config; echo common=$?";
    let Some(r) = fx.run_unprivileged(&["run", "--sandbox", "--", "sh", "-c", attack], &[]) else {
        return;
    };
    assert_eq!(r.code, 0, "{}", r.stderr);
    for (what, _) in [("write", 0), ("mv", 0), ("common", 0)] {
        assert!(
            !r.stdout.contains(&format!("{what}=0")),
            "{what} worked: {}{}",
            r.stdout,
            r.stderr
        );
    }
    assert_eq!(
        std::fs::read_to_string(fx.project.join(".git")).unwrap(),
        before
    );
    // Without the sandbox the same attack works (baseline), so the test can fail.
    let r = fx
        .run_unprivileged(
            &[
                "run",
                "--",
                "sh",
                "-c",
                "printf 'gitdir: x\\n' > .git; echo write=$?",
            ],
            &[],
        )
        .unwrap();
    assert!(r.stdout.contains("write=0"), "{}{}", r.stdout, r.stderr);
}

/// `--allow SSH_AUTH_SOCK` (or `allow` in the user's profile) keeps the agent for a command
/// that needs it, git over ssh say: the variable and its socket both.
#[test]
fn an_allowed_agent_stays_reachable() {
    if !ready("node") {
        return;
    }
    let fx = Fixture::outside_tmp();
    let sock = fx.home.join("agent/ssh.sock");
    std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
    let listener = UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || for _ in listener.incoming() {});
    let probe = "const s = require('net').connect(process.env.SSH_AUTH_SOCK || 'unset'); \
                 s.on('connect', () => { console.log('connect=ok'); s.end(); }); \
                 s.on('error', (e) => console.log('connect=' + e.code));";
    let env = [("SSH_AUTH_SOCK", sock.to_str().unwrap())];
    let Some(r) = fx.run_unprivileged(
        &[
            "run",
            "--sandbox",
            "--allow",
            "SSH_AUTH_SOCK",
            "--",
            "node",
            "-e",
            probe,
        ],
        &env,
    ) else {
        return;
    };
    assert!(r.stdout.contains("connect=ok"), "{}{}", r.stdout, r.stderr);
    // Not allowed: the variable is gone, and the path, given by other means, is refused.
    let by_path = probe.replace("process.env.SSH_AUTH_SOCK || 'unset'", &format!("{sock:?}"));
    let r = fx
        .run_unprivileged(&["run", "--sandbox", "--", "node", "-e", &by_path], &env)
        .unwrap();
    assert!(
        r.stdout.contains("connect=ECONNREFUSED"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    // A project's keyfence.toml cannot hand the user's agent to its own scripts.
    fx.project_file(
        "keyfence.toml",
        "[[profile]]\nname = \"mine\"\nmatch = [\"node *\"]\nsandbox = true\nallow = [\"SSH_AUTH_SOCK\"]\n",
    );
    let r = fx
        .run_unprivileged(&["run", "--", "node", "-e", probe], &env)
        .unwrap();
    assert!(
        // Dropped, so node tries a file named "unset" (or a stricter keyfence refuses the
        // project file outright); never the agent.
        r.stdout.contains("connect=ENOENT") || (r.code == 125 && r.stdout.is_empty()),
        "{}{}",
        r.stdout,
        r.stderr
    );
}

/// `npm install -g` is a global install the user asked for: it may write npm's prefix (a
/// directory on PATH). A project install may not write there.
#[test]
fn a_global_install_writes_its_prefix_and_a_project_install_does_not() {
    if !ready("npm") {
        return;
    }
    let fx = Fixture::outside_tmp();
    let pkgs = fx.dir.path().join("pkgs");
    let tool = package(
        &pkgs,
        "some-tool",
        r#"{}, "bin": {"some-tool": "cli.js"}"#,
        &[("cli.js", "#!/usr/bin/env node\nconsole.log('tool ran')\n")],
    );
    let prefix = fx.home.join(".npm-global");
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::create_dir_all(prefix.join("lib")).unwrap();
    fx.project_file("package.json", r#"{"name": "app", "version": "1.0.0"}"#);
    let path = format!(
        "{}:{}",
        prefix.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = [
        ("PATH", path.as_str()),
        ("NPM_CONFIG_PREFIX", prefix.to_str().unwrap()),
        ("npm_config_update_notifier", "false"),
    ];
    let npm = |args: &[&str]| {
        let mut a = vec!["run", "--", "npm"];
        a.extend(args);
        a.extend([
            "--offline",
            "--no-audit",
            "--no-fund",
            tool.to_str().unwrap(),
        ]);
        fx.run_unprivileged(&a, &env)
    };
    let Some(r) = npm(&["install", "-g"]) else {
        return;
    };
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(prefix.join("bin/some-tool").exists(), "{}", r.stderr);
    std::fs::remove_file(prefix.join("bin/some-tool")).unwrap();
    // The same PATH directory, from a postinstall of a project install.
    let planter = package(
        &pkgs,
        "planter",
        r#"{"postinstall": "node plant.js"}"#,
        &[(
            "plant.js",
            "try { require('fs').writeFileSync(require('path').join(process.env.NPM_CONFIG_PREFIX, 'bin/git'), 'x'); console.log('plant=ok') } catch (e) { console.log('plant=' + e.code) }",
        )],
    );
    fx.project_file(
        "package.json",
        r#"{"name": "app", "version": "1.0.0", "allowScripts": {"planter": true}}"#,
    );
    let mut a = vec![
        "run",
        "--",
        "npm",
        "install",
        "--offline",
        "--no-audit",
        "--no-fund",
    ];
    a.extend(["--foreground-scripts", planter.to_str().unwrap()]);
    let r = fx.run_unprivileged(&a, &env).unwrap();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("plant=EACCES"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(!prefix.join("bin/git").exists());
}

// Broke once: the sandbox's user namespace came first, and `--net none` then failed to map the
// user into a second one ("cannot map this user into its namespace").
#[test]
fn the_sandbox_and_net_none_combine_for_an_ordinary_user() {
    if !ready("git") {
        return;
    }
    let fx = Fixture::outside_tmp();
    fx.git(&["init", "-q"]);
    let probe = "grep -c : /proc/net/dev; (echo x >> .git/config) 2>/dev/null; echo write=$?";
    let Some(r) = fx.run_unprivileged(
        &["run", "--sandbox", "--net", "none", "--", "sh", "-c", probe],
        &[],
    ) else {
        return;
    };
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Only the loopback interface, and .git stayed read-only.
    assert_eq!(r.stdout, "1\nwrite=2\n", "{}", r.stderr);
}

/// Another way to the same files: the mount namespace is keyfence's, but the user's shell
/// outside it sees `.git` writable, and `/proc/PID/root` and `/proc/PID/cwd` lead into its
/// view. Landlock forbids them (they need ptrace access to a process outside the domain).
#[test]
fn git_is_out_of_reach_through_an_outside_process_view() {
    if !ready("git") {
        return;
    }
    let fx = Fixture::outside_tmp();
    fx.git(&["init", "-q"]);
    if !fx.hand_to_unprivileged() {
        return;
    }
    // The user's shell ($$ of the outer sh) starts keyfence and waits.
    let attack = r#"(echo x >> /proc/$OUTER/root$PWD/.git/config) 2>/dev/null; echo root=$?
        (echo x >> /proc/$OUTER/cwd/.git/config) 2>/dev/null; echo cwd=$?"#;
    let run = |sandbox: &str| {
        let outer = format!(
            "OUTER=$$ {BIN} run {sandbox} -- sh -c '{}'; true",
            attack.replace('\'', "'\\''")
        );
        let o = Command::new(AS_UNPRIVILEGED[0])
            .args(&AS_UNPRIVILEGED[1..])
            .args(["sh", "-c", &outer])
            .current_dir(&fx.project)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &fx.home)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    };
    let out = run("--sandbox");
    assert!(out.contains("root=2") && out.contains("cwd=2"), "{out}");
    let config = std::fs::read_to_string(fx.project.join(".git/config")).unwrap();
    assert!(!config.lines().any(|l| l == "x"), "{config}");
    // Baseline: without the sandbox the same writes land.
    let out = run("--profile default");
    assert!(out.contains("root=0") && out.contains("cwd=0"), "{out}");
}

/// Where there is no `.git` (a project that is not a repository, or `web/` inside one), the
/// command could create one, and the user's next git command there would run its config's
/// `core.fsmonitor`. keyfence moves it aside when the command ends, and says so.
#[test]
fn a_git_directory_planted_where_there_was_none_is_moved_aside() {
    if !ready("git") {
        return;
    }
    let fx = Fixture::outside_tmp();
    fx.git(&["init", "-q"]);
    std::fs::create_dir_all(fx.project.join("web")).unwrap();
    if !fx.hand_to_unprivileged() {
        return;
    }
    let plant = "mkdir .git && printf '[core]\\n\\tfsmonitor = \"touch PLANTED\"\\n' > .git/config \
                 && echo planted";
    let run = |profile: &[&str]| {
        let o = Command::new(AS_UNPRIVILEGED[0])
            .args(&AS_UNPRIVILEGED[1..])
            .arg(BIN)
            .arg("run")
            .args(profile)
            .args(["--", "sh", "-c", plant])
            .current_dir(fx.project.join("web"))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &fx.home)
            .output()
            .unwrap();
        Run::from(o)
    };
    let r = run(&["--sandbox"]);
    assert_eq!(r.stdout, "planted\n", "{}", r.stderr);
    assert!(!fx.project.join("web/.git").exists(), "{}", r.stderr);
    assert!(
        r.stderr.contains("web/.git, which git would use"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint: if you expected it"),
        "{}",
        r.stderr
    );
    let aside: Vec<_> = std::fs::read_dir(fx.project.join("web"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".git.keyfence-")
        })
        .collect();
    assert_eq!(aside.len(), 1);
    // git in web/ uses the repository above again, not the planted one.
    let top = Command::new("git")
        .args(["-c", "safe.directory=*", "rev-parse", "--show-toplevel"])
        .current_dir(fx.project.join("web"))
        .output()
        .unwrap();
    assert_eq!(
        Path::new(String::from_utf8_lossy(&top.stdout).trim()),
        fx.project.canonicalize().unwrap()
    );
    // Baseline: without the sandbox the planted repository stays.
    let r = run(&["--profile", "default"]);
    assert_eq!(r.stdout, "planted\n", "{}", r.stderr);
    assert!(fx.project.join("web/.git/config").exists());
}

/// The Claude Code hook runs an install as `keyfence run --profile install -- bash -c
/// 'COMMAND'`: the package manager named inside the script gets its cache created in a fresh
/// home as well (here npm's, which does not exist yet).
#[test]
fn a_fresh_home_installs_through_a_shell_as_the_hook_runs_it() {
    if !ready("npm") {
        return;
    }
    let fx = Fixture::outside_tmp();
    let tarball = package(
        &fx.dir.path().join("pkgs"),
        "plain",
        "{}",
        &[("index.js", "module.exports = 1;\n")],
    );
    fx.project_file("package.json", r#"{"name": "app", "version": "1.0.0"}"#);
    let script = format!(
        "cd . && npm install --offline --no-audit --no-fund {}",
        tarball.display()
    );
    let Some(r) = fx.run_unprivileged(
        &["run", "--profile", "install", "--", "bash", "-c", &script],
        &[("npm_config_update_notifier", "false")],
    ) else {
        return;
    };
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(fx.home.join(".npm").is_dir());
    assert!(fx.project.join("node_modules/plain").is_dir());
}
