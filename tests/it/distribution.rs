//! The release artifacts as users install them (issue #19): `scripts/package` builds every one
//! once per run of this file (or `KEYFENCE_DIST` names a directory it already filled, as the
//! release workflow does), and each test installs one into a fresh place, offline, and runs it:
//! the tarballs' static binaries, the wheel in a new venv (pip and uvx), the npm packages in a
//! new project (npx, and what `shell-init` and the Claude hook write), the aarch64 build under
//! qemu-user, and the crate's contents.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The directory of artifacts, packaged once for all tests of this file; None (after the
/// skip note, in each test) when a packaging tool is missing.
fn dist() -> Option<&'static Path> {
    static DIST: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match DIST.get_or_init(package) {
        Ok(d) => Some(d),
        Err(why) => {
            skip(why);
            None
        }
    }
}

fn package() -> Result<PathBuf, String> {
    if let Some(d) = std::env::var_os("KEYFENCE_DIST") {
        let d = PathBuf::from(d);
        return Ok(d
            .canonicalize()
            .unwrap_or_else(|e| panic!("KEYFENCE_DIST={}: {e}", d.display())));
    }
    for tool in ["musl-gcc", "cargo-zigbuild", "npm", "python3"] {
        if !on_path(tool) {
            return Err(format!(
                "{tool} is not installed (scripts/test-all installs what scripts/package needs)"
            ));
        }
    }
    // cargo-zigbuild runs the zig on PATH, or else python3's ziglang package.
    let zig = on_path("zig")
        || Command::new("python3")
            .args(["-c", "import ziglang"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !zig {
        return Err("zig is not installed (scripts/test-all installs ziglang with pip)".into());
    }
    let targets = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for t in ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"] {
        if !targets.lines().any(|l| l == t) {
            return Err(format!(
                "the rustup target {t} is not installed (scripts/test-all adds it)"
            ));
        }
    }
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dist");
    let st = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/package"))
        .arg(&out)
        .status()
        .expect("scripts/package");
    assert!(st.success(), "scripts/package failed");
    Ok(out)
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .any(|d| d.join(tool).is_file())
}

fn artifact(dist: &Path, name: &str) -> PathBuf {
    let p = dist.join(name);
    assert!(p.is_file(), "scripts/package did not write {name}");
    p
}

fn wheel_name(arch: &str) -> String {
    format!(
        "keyfence-{VERSION}-py3-none-manylinux_2_17_{arch}.manylinux2014_{arch}.musllinux_1_1_{arch}.whl"
    )
}

/// `program args` with `env` over a cleared environment (PATH and HOME kept), in `dir`.
fn run_in(dir: &Path, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = Command::new(program);
    c.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in env {
        c.env(k, v);
    }
    Run::from(
        c.output()
            .unwrap_or_else(|e| panic!("{}: {e}", program.display())),
    )
}

fn ok(o: Output, what: &str) -> Output {
    assert!(
        o.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The tarball of `triple` unpacked into `into`; the binary in it.
fn unpack(dist: &Path, triple: &str, into: &Path) -> PathBuf {
    let tarball = artifact(dist, &format!("keyfence-{VERSION}-{triple}.tar.gz"));
    ok(
        Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(into)
            .output()
            .unwrap(),
        "tar",
    );
    into.join(format!("keyfence-{VERSION}-{triple}/keyfence"))
}

/// What the ELF header and tables say: machine, whether a loader is named (dynamic), whether
/// a symbol table or debug information is left.
struct Elf {
    machine: u16,
    interp: bool,
    symtab: bool,
    debug: bool,
}

fn elf(path: &Path) -> Elf {
    let b = std::fs::read(path).unwrap();
    assert_eq!(
        &b[..5],
        b"\x7fELF\x02",
        "{} is not a 64-bit ELF",
        path.display()
    );
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phsize, phnum) = (u64_at(32), u16_at(54) as usize, u16_at(56) as usize);
    let (shoff, shsize, shnum, shstrndx) = (
        u64_at(40),
        u16_at(58) as usize,
        u16_at(60) as usize,
        u16_at(62) as usize,
    );
    // PT_INTERP = 3, SHT_SYMTAB = 2.
    let interp = (0..phnum).any(|i| u32_at(phoff + i * phsize) == 3);
    let section = |i: usize| shoff + i * shsize;
    let strtab = u64_at(section(shstrndx) + 24);
    let name = |i: usize| {
        let start = strtab + u32_at(section(i)) as usize;
        let end = start + b[start..].iter().position(|&c| c == 0).unwrap();
        String::from_utf8_lossy(&b[start..end]).into_owned()
    };
    Elf {
        machine: u16_at(18),
        interp,
        symtab: (0..shnum).any(|i| u32_at(section(i) + 4) == 2),
        // Not `.debug_gdb_scripts`: a loaded section (rustc's pointer to pretty-printers),
        // which strip keeps.
        debug: (0..shnum).any(|i| matches!(name(i).as_str(), ".debug_info" | ".debug_line")),
    }
}

#[test]
fn release_tarballs_hold_static_stripped_binaries_that_the_checksums_cover() {
    let Some(dist) = dist() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // EM_X86_64 = 62, EM_AARCH64 = 183.
    for (triple, machine) in [
        ("x86_64-unknown-linux-musl", 62),
        ("aarch64-unknown-linux-musl", 183),
    ] {
        let bin = unpack(dist, triple, tmp.path());
        let e = elf(&bin);
        assert_eq!(e.machine, machine, "{triple}");
        assert!(!e.interp, "{triple}: dynamically linked (names a loader)");
        assert!(!e.symtab && !e.debug, "{triple}: not stripped");
        for f in ["README.md", "LICENSE-MIT", "LICENSE-APACHE"] {
            assert!(bin.with_file_name(f).is_file(), "{triple}: {f} missing");
        }
    }
    let native = unpack(dist, "x86_64-unknown-linux-musl", tmp.path());
    let r = run_in(tmp.path(), &native, &["--version"], &[]);
    assert_eq!(r.stdout, format!("keyfence {VERSION}\n"), "{}", r.stderr);

    // Every artifact is listed, and every listed file matches.
    let sums = std::fs::read_to_string(artifact(dist, "SHA256SUMS")).unwrap();
    let listed: Vec<&str> = sums
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(_, f)| f)
        .collect();
    for entry in std::fs::read_dir(dist).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name != "SHA256SUMS" {
            assert!(
                listed.contains(&name.as_str()),
                "{name} is not in SHA256SUMS"
            );
        }
    }
    ok(
        Command::new("sha256sum")
            .args(["--check", "--strict", "SHA256SUMS"])
            .current_dir(dist)
            .output()
            .unwrap(),
        "sha256sum --check",
    );
}

/// A home with a fake key exported in `.bashrc`, which `audit` must find (by fingerprint;
/// the raw value never printed).
fn home_with_exported_key(fx: &mut Fixture) -> String {
    let key = fx.key("anthropic");
    fx.home_file(".bashrc", &format!("export ANTHROPIC_API_KEY={key}\n"));
    key
}

fn assert_audit_finds(r: &Run, key: &str, planted: &[String]) {
    r.assert_no_secret(planted);
    assert_eq!(
        r.code, 1,
        "audit should report the exported key: {}",
        r.stderr
    );
    let found = r.findings();
    assert!(
        found
            .iter()
            .any(|f| f["secret"]["fingerprint"] == sha12(key) && f["source"] == "shell"),
        "the key in .bashrc was not reported: {}",
        r.stdout
    );
}

#[test]
fn wheel_installs_into_a_fresh_venv_offline_and_its_command_is_the_binary_itself() {
    let Some(dist) = dist() else { return };
    let wheel = artifact(dist, &wheel_name("x86_64"));
    let mut fx = Fixture::new();
    let key = home_with_exported_key(&mut fx);
    let venv = fx.dir.path().join("venv");
    ok(
        Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .output()
            .unwrap(),
        "python3 -m venv",
    );
    ok(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--no-index", "--no-deps", "--quiet"])
            .arg(&wheel)
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .output()
            .unwrap(),
        "pip install WHEEL",
    );
    // No Python in front of keyfence: the installed command is the static binary, byte for byte.
    let installed = venv.join("bin/keyfence");
    let tmp = tempfile::tempdir().unwrap();
    let native = unpack(dist, "x86_64-unknown-linux-musl", tmp.path());
    assert!(
        std::fs::read(&installed).unwrap() == std::fs::read(&native).unwrap(),
        "{} is not the release binary",
        installed.display()
    );
    let r = run_in(&fx.project, &installed, &["--version"], &[]);
    assert_eq!(r.stdout, format!("keyfence {VERSION}\n"), "{}", r.stderr);
    let home = fx.home.to_str().unwrap();
    let etc = fx.etc.to_str().unwrap();
    let audit = ["--etc", etc, "audit", "--format", "json", "--skip", "proc"];
    let r = run_in(&fx.project, &installed, &audit, &[("HOME", home)]);
    assert_audit_finds(&r, &key, &fx.planted);

    // uvx: run from the wheel without installing it, offline, with a cache of its own.
    if !on_path("uvx") {
        skip("uv is not installed (scripts/test-all installs it with pip)");
        return;
    }
    let cache = fx.dir.path().join("uv-cache");
    let mut args = vec!["--offline", "--from", wheel.to_str().unwrap(), "keyfence"];
    args.extend(audit);
    let r = run_in(
        &fx.project,
        Path::new("uvx"),
        &args,
        &[("HOME", home), ("UV_CACHE_DIR", cache.to_str().unwrap())],
    );
    assert_audit_finds(&r, &key, &fx.planted);
}

/// A fresh npm project with the packed packages installed offline, as npm would install them
/// from the registry: `keyfence` from its tarball, and its optional platform dependencies
/// resolved (through `overrides`) to theirs, so npm itself picks the one for this machine by
/// `os`/`cpu`. Install scripts are ignored: the packages must not need any.
fn npm_project(dist: &Path, fx: &Fixture) -> PathBuf {
    let project = fx.dir.path().join("npm-project");
    std::fs::create_dir_all(&project).unwrap();
    let tgz = |n: &str| artifact(dist, n).display().to_string();
    let manifest = serde_json::json!({
        "name": "uses-keyfence",
        "version": "1.0.0",
        "private": true,
        "dependencies": { "keyfence": format!("file:{}", tgz(&format!("keyfence-{VERSION}.tgz"))) },
        "overrides": {
            "@keyfence/linux-x64": format!("file:{}", tgz(&format!("keyfence-linux-x64-{VERSION}.tgz"))),
            "@keyfence/linux-arm64": format!("file:{}", tgz(&format!("keyfence-linux-arm64-{VERSION}.tgz"))),
        },
    });
    std::fs::write(project.join("package.json"), manifest.to_string()).unwrap();
    ok(
        Command::new("npm")
            .args([
                "install",
                "--offline",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
            ])
            .current_dir(&project)
            .env("npm_config_cache", fx.dir.path().join("npm-cache"))
            .env("npm_config_update_notifier", "false")
            .output()
            .unwrap(),
        "npm install",
    );
    project
}

#[test]
fn npm_packages_install_offline_and_shell_init_names_the_native_binary() {
    let Some(dist) = dist() else { return };
    // No install script in any package: npm 12 blocks them, and keyfence tells users to.
    for name in [
        format!("keyfence-{VERSION}.tgz"),
        format!("keyfence-linux-x64-{VERSION}.tgz"),
        format!("keyfence-linux-arm64-{VERSION}.tgz"),
    ] {
        let o = ok(
            Command::new("tar")
                .args(["-xzOf"])
                .arg(artifact(dist, &name))
                .arg("package/package.json")
                .output()
                .unwrap(),
            "tar",
        );
        let manifest: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        for script in ["preinstall", "install", "postinstall", "prepare"] {
            assert!(
                manifest["scripts"][script].is_null(),
                "{name} has a {script} script"
            );
        }
        assert_eq!(manifest["version"], VERSION, "{name}");
    }

    let mut fx = Fixture::new();
    let key = home_with_exported_key(&mut fx);
    let project = npm_project(dist, &fx);
    let modules = project.join("node_modules");
    let native = modules.join("@keyfence/linux-x64/bin/keyfence");
    assert!(
        native.is_file(),
        "npm did not install the x64 platform package"
    );
    assert!(
        !modules.join("@keyfence/linux-arm64").exists(),
        "npm installed the arm64 package on x64: os/cpu did not select"
    );

    let npx = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["--offline", "keyfence"];
        all.extend(args);
        let mut env = env.to_vec();
        let cache = fx.dir.path().join("npm-cache");
        env.push(("HOME", fx.home.to_str().unwrap()));
        env.push(("npm_config_cache", cache.to_str().unwrap()));
        env.push(("npm_config_update_notifier", "false"));
        run_in(&project, Path::new("npx"), &all, &env)
    };
    let r = npx(&["--version"], &[]);
    assert_eq!(r.stdout, format!("keyfence {VERSION}\n"), "{}", r.stderr);
    let etc = fx.etc.to_str().unwrap();
    let r = npx(
        &["--etc", etc, "audit", "--format", "json", "--skip", "proc"],
        &[],
    );
    assert_audit_finds(&r, &key, &fx.planted);

    // What keyfence writes into the shell and Claude Code's settings names the native binary:
    // the `keyfence` on npx's PATH is the JS launcher, whose Node start-up each wrapped
    // command would pay.
    let native = native.canonicalize().unwrap();
    let r = npx(&["shell-init", "bash"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("'{}'", native.display())),
        "shell-init does not name {}:\n{}",
        native.display(),
        r.stdout
    );
    assert!(!r.stdout.contains("keyfence.js"), "{}", r.stdout);
    let r = npx(&["setup", "claude", "--hook"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // npm keeps the binary where it is: no warning that the path may stop working.
    assert!(!r.stderr.contains("stops working"), "{}", r.stderr);
    let settings = std::fs::read_to_string(fx.home.join(".claude/settings.json")).unwrap();
    assert!(
        settings.contains(&format!("{} __hook-claude", native.display()))
            || settings.contains(&format!("'{}' __hook-claude", native.display())),
        "the hook does not run {}:\n{settings}",
        native.display()
    );
    assert!(!settings.contains("keyfence.js"), "{settings}");

    // The launcher gives back keyfence's exit code, and dies of the signal keyfence died of.
    let launcher = modules.join(".bin/keyfence");
    let r = run_in(
        &project,
        &launcher,
        &["run", "--", "sh", "-c", "exit 7"],
        &[],
    );
    assert_eq!(r.code, 7, "{}", r.stderr);
    let r = run_in(
        &project,
        &launcher,
        &["run", "--", "sh", "-c", "kill -TERM $$"],
        &[],
    );
    assert_eq!(r.code, -15, "{}", r.stderr);
}

/// The aarch64 binary under qemu-user, with the command it starts (a host `sh`) run natively.
struct Arm {
    qemu: PathBuf,
    bin: PathBuf,
    _tmp: tempfile::TempDir,
}

fn arm(dist: &Path) -> Option<Arm> {
    let Some(qemu) = ["/usr/bin/qemu-aarch64", "/usr/bin/qemu-aarch64-static"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
    else {
        skip("qemu-user is not installed (scripts/test-all installs it with apt)");
        return None;
    };
    let tmp = tempfile::tempdir().unwrap();
    let bin = unpack(dist, "aarch64-unknown-linux-musl", tmp.path());
    Some(Arm {
        qemu,
        bin,
        _tmp: tmp,
    })
}

impl Arm {
    fn run(&self, fx: &Fixture, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Run {
        use std::io::Write;
        let mut c = Command::new(&self.qemu);
        c.arg(&self.bin)
            .arg("--etc")
            .arg(&fx.etc)
            .args(args)
            .current_dir(&fx.project)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &fx.home)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("qemu-aarch64");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let r = Run::from(child.wait_with_output().unwrap());
        r.assert_no_secret(&fx.planted);
        r
    }
}

#[test]
fn aarch64_binary_audits_scrubs_injects_masks_and_stores_under_qemu() {
    let Some(dist) = dist() else { return };
    let Some(arm) = arm(dist) else { return };
    let mut fx = Fixture::new();
    let r = arm.run(&fx, &["--version"], &[], "");
    assert_eq!(r.stdout, format!("keyfence {VERSION}\n"), "{}", r.stderr);

    let exported = home_with_exported_key(&mut fx);
    let r = arm.run(
        &fx,
        &["audit", "--format", "json", "--skip", "proc"],
        &[],
        "",
    );
    assert_audit_finds(&r, &exported, &fx.planted);

    // Scrub: the command does not get the key keyfence was started with.
    let key = fx.key("openai");
    let r = arm.run(
        &fx,
        &[
            "run",
            "--",
            "sh",
            "-c",
            "echo \"key:${OPENAI_API_KEY:-none}\"",
        ],
        &[("OPENAI_API_KEY", &key)],
        "",
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "key:none\n"),
        "{}",
        r.stderr
    );

    // The store: set through stdin, listed, injected into the command, and masked in what it
    // prints.
    let stored = fx.key("anthropic");
    let r = arm.run(&fx, &["secret", "set", "ANTHROPIC_API_KEY"], &[], &stored);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = arm.run(&fx, &["secret", "list"], &[], "");
    assert!(r.stdout.contains("ANTHROPIC_API_KEY"), "{}", r.stdout);
    let r = arm.run(
        &fx,
        &[
            "run",
            "--inject",
            "ANTHROPIC_API_KEY",
            "--",
            "sh",
            "-c",
            "printf '%s' \"$ANTHROPIC_API_KEY\" | sha256sum; echo \"got $ANTHROPIC_API_KEY\"",
        ],
        &[],
        "",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let digest = {
        use sha2::Digest;
        let d = sha2::Sha256::digest(stored.as_bytes());
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    assert!(
        r.stdout.contains(&digest),
        "the injected value differs: {}",
        r.stdout
    );
    assert!(
        r.stdout.contains("got <keyfence:ANTHROPIC_API_KEY>"),
        "{}",
        r.stdout
    );
}

#[test]
fn aarch64_refuses_guard_and_trace_with_a_clear_message_and_runs_nothing() {
    let Some(dist) = dist() else { return };
    let Some(arm) = arm(dist) else { return };
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    let ran = fx.dir.path().join("ran");
    let touch = ran.to_str().unwrap();
    for (flags, named) in [
        (&["--guard"][..], "--guard"),
        (&["--trace"][..], "--trace"),
        (&["--profile", "agent"][..], "--guard"),
    ] {
        let mut args = vec!["run"];
        args.extend(flags);
        args.extend(["--", "touch", touch]);
        let r = arm.run(&fx, &args, &[("ANTHROPIC_API_KEY", &key)], "");
        assert_eq!(r.code, 125, "{flags:?}: {}", r.stderr);
        assert!(
            r.stderr.contains(&format!(
                "{named} needs Linux on x86-64, and this keyfence runs on aarch64"
            )) && r.stderr.contains("\nhint: "),
            "{flags:?}: {}",
            r.stderr
        );
        assert!(!ran.exists(), "{flags:?}: the command ran unprotected");
    }
    // doctor says so too, instead of promising guard.
    let r = arm.run(&fx, &["doctor", "--format", "json"], &[], "");
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).expect("doctor json");
    let guard = doc["modes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "guard")
        .cloned()
        .unwrap();
    assert_eq!(guard["works"], false, "{guard}");
    assert!(
        guard["why"].as_str().unwrap().contains("aarch64"),
        "{guard}"
    );
}

#[test]
fn crate_holds_only_what_the_build_needs() {
    let Some(dist) = dist() else { return };
    let krate = dist.join(format!("keyfence-{VERSION}.crate"));
    if std::env::var_os("KEYFENCE_PACKAGE_NO_CRATE").is_some() && !krate.exists() {
        skip("KEYFENCE_PACKAGE_NO_CRATE left the crate out");
        return;
    }
    let o = ok(
        Command::new("tar")
            .arg("-tzf")
            .arg(artifact(dist, &format!("keyfence-{VERSION}.crate")))
            .output()
            .unwrap(),
        "tar -t",
    );
    let prefix = format!("keyfence-{VERSION}/");
    let files: Vec<String> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            l.strip_prefix(&prefix)
                .expect("one top directory")
                .to_string()
        })
        .collect();
    let allowed = |f: &str| {
        matches!(
            f,
            "Cargo.toml"
                | "Cargo.toml.orig"
                | "Cargo.lock"
                | ".cargo_vcs_info.json"
                | "README.md"
                | "LICENSE-MIT"
                | "LICENSE-APACHE"
                | "build.rs"
        ) || (f.starts_with("src/") && f.ends_with(".rs"))
            || (f.starts_with("rules/") && f.ends_with(".toml"))
    };
    for f in &files {
        assert!(
            allowed(f),
            "the crate holds {f}, which the build does not need"
        );
    }
    for needed in [
        "build.rs",
        "src/main.rs",
        "rules/anthropic.toml",
        "LICENSE-MIT",
    ] {
        assert!(
            files.iter().any(|f| f == needed),
            "the crate lacks {needed}"
        );
    }
    let o = ok(
        Command::new("tar")
            .arg("-xzOf")
            .arg(&krate)
            .arg(format!("{prefix}Cargo.toml"))
            .output()
            .unwrap(),
        "tar -x",
    );
    let manifest: toml::Value = toml::from_str(&String::from_utf8(o.stdout).unwrap()).unwrap();
    for field in [
        "description",
        "license",
        "repository",
        "readme",
        "keywords",
        "categories",
        "rust-version",
    ] {
        assert!(
            manifest["package"].get(field).is_some(),
            "Cargo.toml lacks package.{field}"
        );
    }
}

/// The release workflow holds publishing credentials and an OIDC token: keyfence's own CI
/// audit and zizmor (actions pinned by hash, tokens only in the steps that use them, no
/// template injection) find nothing in it.
#[test]
fn release_workflow_passes_keyfences_ci_audit_and_zizmor() {
    let workflow = Path::new(env!("CARGO_MANIFEST_DIR")).join(".github/workflows/release.yml");
    let fx = Fixture::new();
    fx.project_file(
        ".github/workflows/release.yml",
        &std::fs::read_to_string(&workflow).unwrap(),
    );
    let r = fx.run(&["audit", "--only", "ci", "--format", "json"], &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.findings().is_empty(), "{}", r.stdout);
    if !on_path("zizmor") {
        skip("zizmor is not installed (scripts/test-all installs it with pip)");
        return;
    }
    let o = Command::new("zizmor")
        .arg("--offline")
        .arg(&workflow)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "zizmor: {}",
        String::from_utf8_lossy(&o.stdout)
    );
}
