//! The `package` source: a real npm project built from local tarballs (npm packs them and
//! installs them offline), then fixture trees for lockfile versions, pnpm, Yarn, Bun, Cargo and
//! Python, and bad input.

use crate::common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn npm(fx: &Fixture, dir: &Path, args: &[&str]) -> String {
    let out = Command::new("npm")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &fx.home)
        .env("npm_config_cache", fx.dir.path().join("npm-cache"))
        .env("npm_config_update_notifier", "false")
        .env("npm_config_fund", "false")
        .env("npm_config_audit", "false")
        .output()
        .expect("npm is installed (.ci/run installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "npm {args:?}: {text}");
    text
}

fn audit(fx: &Fixture, env: &[(&str, &str)]) -> Vec<Value> {
    let r = fx.run(&["audit", "--only", "package", "--format", "json"], env);
    assert!(r.code == 0 || r.code == 1, "exit {}: {}", r.code, r.stderr);
    r.findings()
}

/// (rule, package name prefix of the message, severity), sorted.
fn brief(findings: &[Value]) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = findings
        .iter()
        .map(|f| {
            let msg = f["message"].as_str().unwrap();
            (
                f["rule"].as_str().unwrap().to_string(),
                msg.split(' ').next().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn message_of<'a>(findings: &'a [Value], pkg: &str) -> &'a str {
    findings
        .iter()
        .find(|f| f["message"].as_str().unwrap().starts_with(pkg))
        .and_then(|f| f["message"].as_str())
        .unwrap_or_else(|| panic!("no finding for {pkg}: {findings:?}"))
}

#[test]
fn real_npm_project_with_local_tarballs() {
    let mut fx = Fixture::new();
    let pkgs = fx.dir.path().join("pkgs");
    let write_pkg = |name: &str, manifest: &str, gyp: bool| {
        let d = pkgs.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("package.json"), manifest).unwrap();
        std::fs::write(d.join("index.js"), "module.exports = 1;\n").unwrap();
        if gyp {
            std::fs::write(d.join("binding.gyp"), "{\"targets\": []}\n").unwrap();
        }
        d
    };
    // The postinstall leaves a mark in the project, so the test can tell whether npm ran it.
    let post = write_pkg(
        "withpost",
        r#"{"name":"withpost","version":"1.0.0","scripts":{"postinstall":"node -e \"require('fs').writeFileSync(process.env.INIT_CWD+'/post-ran','1')\""}}"#,
        false,
    );
    let gyp = write_pkg("withgyp", r#"{"name":"withgyp","version":"1.0.0"}"#, true);
    let plain = write_pkg("plain", r#"{"name":"plain","version":"1.0.0"}"#, false);
    // `npm pack DIR` takes `a/b` for a GitHub shorthand: pack from inside (DESIGN.md §5).
    for d in [&post, &gyp, &plain] {
        npm(&fx, d, &["pack", "--pack-destination", "..", "-q"]);
    }
    fx.project_file(
        "package.json",
        r#"{"name":"proj","version":"1.0.0","dependencies":{
  "withpost":"file:../pkgs/withpost-1.0.0.tgz",
  "withgyp":"file:../pkgs/withgyp-1.0.0.tgz",
  "plain":"file:../pkgs/plain-1.0.0.tgz"}}
"#,
    );
    npm(
        &fx,
        &fx.project,
        &["install", "--offline", "--ignore-scripts"],
    );
    assert!(fx.project.join("node_modules/plain/package.json").is_file());
    assert!(!fx.project.join("post-ran").exists());

    // No policy: both will run; no secrets around, so medium.
    let f = audit(&fx, &[]);
    assert_eq!(
        brief(&f),
        vec![
            (
                "install-script".into(),
                "withpost@1.0.0".into(),
                "medium".into()
            ),
            (
                "install-script-gyp".into(),
                "withgyp@1.0.0".into(),
                "medium".into()
            ),
        ],
        "{f:#?}"
    );
    assert!(message_of(&f, "withpost").contains("postinstall"));
    assert!(message_of(&f, "withgyp").contains("node-gyp rebuild"));
    // Located in the lockfile, at the package's key.
    let lock = std::fs::read_to_string(fx.project.join("package-lock.json")).unwrap();
    for x in &f {
        assert_eq!(x["location"]["path"], "package-lock.json");
        let line = x["location"]["line"].as_u64().unwrap() as usize;
        let col = x["location"]["column"].as_u64().unwrap() as usize;
        let name = x["message"].as_str().unwrap().split('@').next().unwrap();
        let l = lock.lines().nth(line - 1).unwrap();
        assert!(
            l[col - 1..].starts_with(&format!("\"node_modules/{name}\"")),
            "{l}"
        );
    }

    // With a key in the environment and one exported from ~/.bashrc: high, naming both.
    let env_key = fx.key("anthropic");
    let rc_key = fx.key("openai");
    fx.home_file(".bashrc", &format!("export OPENAI_API_KEY={rc_key}\n"));
    let f = audit(&fx, &[("ANTHROPIC_API_KEY", &env_key)]);
    assert!(f.iter().all(|x| x["severity"] == "high"), "{f:#?}");
    let m = message_of(&f, "withpost");
    assert!(
        m.contains("$ANTHROPIC_API_KEY") && m.contains("OPENAI_API_KEY (~/.bashrc:1)"),
        "{m}"
    );
    assert!(
        f[0]["fix"]
            .as_str()
            .unwrap()
            .contains("keyfence run --profile install -- npm install")
    );
    std::fs::remove_file(fx.home.join(".bashrc")).unwrap();

    // npm's own approval commands write allowScripts; keyfence reads the same decision.
    npm(
        &fx,
        &fx.project,
        &["install-scripts", "approve", "withpost"],
    );
    npm(&fx, &fx.project, &["install-scripts", "deny", "withgyp"]);
    let f = audit(&fx, &[]);
    assert_eq!(
        brief(&f),
        vec![
            (
                "install-script".into(),
                "withpost@1.0.0".into(),
                "low".into()
            ),
            (
                "install-script-gyp".into(),
                "withgyp@1.0.0".into(),
                "info".into()
            ),
        ],
        "{f:#?}"
    );
    assert!(message_of(&f, "withpost").contains("allowed: approved"));
    assert!(message_of(&f, "withgyp").contains("blocked: denied"));
    // And npm agrees: a real install now runs the postinstall and skips node-gyp (which would
    // fail on an empty binding.gyp).
    std::fs::remove_dir_all(fx.project.join("node_modules")).unwrap();
    npm(&fx, &fx.project, &["install", "--offline"]);
    assert!(fx.project.join("post-ran").exists());

    // ignore-scripts in the project's .npmrc blocks both.
    fx.project_file(".npmrc", "ignore-scripts=true\n");
    let f = audit(&fx, &[]);
    assert_eq!(f.len(), 2, "{f:#?}");
    for x in &f {
        assert_eq!(x["severity"], "info", "{x}");
        assert!(
            x["message"]
                .as_str()
                .unwrap()
                .contains("ignore-scripts=true in .npmrc"),
            "{x}"
        );
    }
}

fn pkg_json(fx: &Fixture, dir: &str, json: &str) {
    fx.project_file(&format!("{dir}/package.json"), json);
}

#[test]
fn npm_tree_without_lockfile_v2_git_prepare_scoped_and_gypfile_false() {
    let fx = Fixture::new();
    fx.project_file("package.json", r#"{"name":"p","version":"1.0.0"}"#);
    // A v1 lockfile records no install flag: node_modules decides, and locations point there.
    fx.project_file(
        "package-lock.json",
        r#"{"name":"p","lockfileVersion":1,"dependencies":{"a":{"version":"1.0.0"}}}"#,
    );
    pkg_json(
        &fx,
        "node_modules/a",
        "{\n  \"name\": \"a\",\n  \"version\": \"1.0.0\",\n  \"scripts\": {\n    \"test\": \"x\",\n    \"preinstall\": \"node pre.js\"\n  }\n}\n",
    );
    pkg_json(
        &fx,
        "node_modules/@scope/b",
        r#"{"name":"@scope/b","version":"2.0.0","scripts":{"install":"node i.js"}}"#,
    );
    // Nested dependency with only a binding.gyp.
    pkg_json(
        &fx,
        "node_modules/a/node_modules/native",
        r#"{"name":"native","version":"0.1.0"}"#,
    );
    fx.project_file("node_modules/a/node_modules/native/binding.gyp", "{}\n");
    // gypfile: false turns the implicit build off.
    pkg_json(
        &fx,
        "node_modules/nogyp",
        r#"{"name":"nogyp","version":"1.0.0","gypfile":false}"#,
    );
    fx.project_file("node_modules/nogyp/binding.gyp", "{}\n");
    // `prepare` of a registry package does not run at install.
    pkg_json(
        &fx,
        "node_modules/prep",
        r#"{"name":"prep","version":"1.0.0","scripts":{"prepare":"tsc"}}"#,
    );
    let f = audit(&fx, &[]);
    assert_eq!(
        brief(&f),
        vec![
            (
                "install-script".into(),
                "@scope/b@2.0.0".into(),
                "medium".into()
            ),
            ("install-script".into(), "a@1.0.0".into(), "medium".into()),
            (
                "install-script-gyp".into(),
                "native@0.1.0".into(),
                "medium".into()
            ),
        ],
        "{f:#?}"
    );
    // Located at the v1 lockfile's entry; packages missing from it at their package.json.
    let a = f
        .iter()
        .find(|x| x["message"].as_str().unwrap().starts_with("a@"))
        .unwrap();
    assert_eq!(a["location"]["path"], "package-lock.json");
    assert_eq!(a["location"]["column"], 49, "{a}");
    let b = f
        .iter()
        .find(|x| x["message"].as_str().unwrap().starts_with("@scope/b@"))
        .unwrap();
    assert_eq!(b["location"]["path"], "node_modules/@scope/b/package.json");
    let n = f
        .iter()
        .find(|x| x["message"].as_str().unwrap().starts_with("native@"))
        .unwrap();
    assert_eq!(
        n["location"]["path"],
        "node_modules/a/node_modules/native/binding.gyp"
    );

    // A git dependency's `prepare` does run: the v3 lockfile says where it came from.
    fx.project_file(
        "package-lock.json",
        "{\n  \"lockfileVersion\": 3,\n  \"packages\": {\n    \"\": {},\n    \"node_modules/prep\": {\n      \"version\": \"1.0.0\",\n      \"resolved\": \"git+ssh://git@github.invalid/o/prep.git#0123456789abcdef0123456789abcdef01234567\"\n    }\n  }\n}\n",
    );
    let f = audit(&fx, &[]);
    let p = f
        .iter()
        .find(|x| x["message"].as_str().unwrap().starts_with("prep@"))
        .expect("git prepare");
    assert!(p["message"].as_str().unwrap().contains("prepare"));
    assert_eq!(p["location"]["path"], "package-lock.json");
    assert_eq!(p["location"]["line"], 5);
}

#[test]
fn bad_input_is_an_error_with_file_and_position() {
    let fx = Fixture::new();
    fx.project_file(
        "package.json",
        "{\"name\": \"p\",\n  \"version\": 1.0.0\n}\n",
    );
    fx.project_file(
        "package-lock.json",
        "{\n  \"name\": \"p\",\n  \"lockfileVersion\": 9,\n  \"packages\": {}\n}\n",
    );
    pkg_json(&fx, "node_modules/x", "not json at all");
    fx.project_file("Cargo.lock", "[[package]]\nname = \"a\"\nversion = \n");
    let r = fx.run(&["audit", "--only", "package", "--format", "json"], &[]);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let errors = r.json()["errors"].as_array().cloned().unwrap();
    let msg = |suffix: &str| -> String {
        errors
            .iter()
            .find(|e| e["path"] == suffix)
            .and_then(|e| e["message"].as_str())
            .unwrap_or_else(|| panic!("no error for {suffix}: {errors:?}"))
            .to_string()
    };
    assert!(
        msg("package.json").contains("line 2 column"),
        "{}",
        msg("package.json")
    );
    assert!(
        msg("package-lock.json").contains("unknown lockfileVersion 9 at line 3 column 3"),
        "{}",
        msg("package-lock.json")
    );
    assert!(msg("node_modules/x/package.json").contains("not valid JSON at line 1 column"));
    assert!(
        msg("Cargo.lock").contains("line 3"),
        "{}",
        msg("Cargo.lock")
    );
}

#[test]
fn pnpm_yarn_and_bun_decide_for_their_projects() {
    // pnpm: allowBuilds in pnpm-workspace.yaml; the store layout under node_modules/.pnpm.
    let fx = Fixture::new();
    fx.project_file("package.json", r#"{"name":"p","version":"1.0.0"}"#);
    fx.project_file("pnpm-lock.yaml", "lockfileVersion: '9.0'\n");
    fx.project_file(
        "pnpm-workspace.yaml",
        "allowBuilds:\n  esbuild: true\n  core-js: false\n",
    );
    fx.project_file(".pnpmfile.cjs", "module.exports = { hooks: {} };\n");
    for (name, v) in [
        ("esbuild", "0.25.0"),
        ("core-js", "3.0.0"),
        ("unknown", "1.0.0"),
    ] {
        pkg_json(
            &fx,
            &format!("node_modules/.pnpm/{name}@{v}/node_modules/{name}"),
            &format!(r#"{{"name":"{name}","version":"{v}","scripts":{{"postinstall":"node x"}}}}"#),
        );
    }
    let f = audit(&fx, &[]);
    assert_eq!(
        brief(&f),
        vec![
            (
                "install-script".into(),
                "core-js@3.0.0".into(),
                "info".into()
            ),
            (
                "install-script".into(),
                "esbuild@0.25.0".into(),
                "low".into()
            ),
            (
                "install-script".into(),
                "unknown@1.0.0".into(),
                "info".into()
            ),
            ("pnpmfile".into(), "pnpm".into(), "medium".into()),
        ],
        "{f:#?}"
    );

    // Yarn Berry: dependenciesMeta, then enableScripts: false.
    let fx = Fixture::new();
    fx.project_file(
        "package.json",
        r#"{"name":"p","version":"1.0.0","dependenciesMeta":{"a":{"built":false}}}"#,
    );
    fx.project_file(".yarnrc.yml", "nodeLinker: node-modules\n");
    for n in ["a", "b"] {
        pkg_json(
            &fx,
            &format!("node_modules/{n}"),
            &format!(r#"{{"name":"{n}","version":"1.0.0","scripts":{{"install":"node x"}}}}"#),
        );
    }
    let f = audit(&fx, &[]);
    assert_eq!(
        brief(&f),
        vec![
            ("install-script".into(), "a@1.0.0".into(), "info".into()),
            ("install-script".into(), "b@1.0.0".into(), "medium".into()),
        ]
    );
    fx.project_file(".yarnrc.yml", "enableScripts: false\n");
    assert!(audit(&fx, &[]).iter().all(|x| x["severity"] == "info"));

    // Bun: trustedDependencies.
    let fx = Fixture::new();
    fx.project_file(
        "package.json",
        r#"{"name":"p","version":"1.0.0","trustedDependencies":["a"]}"#,
    );
    fx.project_file("bun.lock", "{}\n");
    for n in ["a", "b"] {
        pkg_json(
            &fx,
            &format!("node_modules/{n}"),
            &format!(r#"{{"name":"{n}","version":"1.0.0","scripts":{{"postinstall":"node x"}}}}"#),
        );
    }
    let f = audit(&fx, &[]);
    assert_eq!(
        brief(&f),
        vec![
            ("install-script".into(), "a@1.0.0".into(), "low".into()),
            ("install-script".into(), "b@1.0.0".into(), "info".into()),
        ]
    );
}

/// bun loads the project's `.env`, `.env.local` and `.env.$NODE_ENV` (production when unset)
/// into its own environment, so its install scripts inherit their keys
/// (`tests/it/isolate/install.rs` shows it with the real bun). npm does not: the control.
#[test]
fn a_bun_projects_env_keys_reach_its_install_scripts() {
    let mut fx = Fixture::new();
    let key = fx.key("stripe");
    let unloaded = fx.key("openai");
    fx.project_file(
        "package.json",
        r#"{"name":"p","version":"1.0.0","trustedDependencies":["a"]}"#,
    );
    pkg_json(
        &fx,
        "node_modules/a",
        r#"{"name":"a","version":"1.0.0","scripts":{"postinstall":"node x"}}"#,
    );
    fx.project_file(
        ".env.production",
        &format!("# prod\nSTRIPE_SECRET_KEY={key}\n"),
    );
    // Not loaded by bun install unless NODE_ENV says development.
    fx.project_file(".env.development", &format!("OPENAI_API_KEY={unloaded}\n"));
    // The control first: an npm project with the same files.
    let f = audit(&fx, &[]);
    assert_eq!(
        brief(&f),
        [("install-script".into(), "a@1.0.0".into(), "medium".into())]
    );
    fx.project_file("bun.lock", "{}\n");
    let f = audit(&fx, &[]);
    assert_eq!(
        brief(&f),
        [("install-script".into(), "a@1.0.0".into(), "high".into())]
    );
    let msg = f[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("STRIPE_SECRET_KEY (./.env.production:2, which bun loads)"),
        "{msg}"
    );
    assert!(!msg.contains("OPENAI_API_KEY"), "{msg}");
    let f = audit(&fx, &[("NODE_ENV", "development")]);
    let msg = f[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("OPENAI_API_KEY (./.env.development:1, which bun loads)"),
        "{msg}"
    );
    assert!(!msg.contains("STRIPE_SECRET_KEY"), "{msg}");
}

#[test]
fn cargo_and_python_build_time_code_is_an_inventory() {
    let fx = Fixture::new();
    fx.project_file(
        "Cargo.lock",
        "version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n\n[[package]]\nname = \"withbuild\"\nversion = \"1.0.0\"\nsource = \"registry+https://index.crates.invalid/\"\n\n[[package]]\nname = \"macros\"\nversion = \"2.0.0\"\nsource = \"registry+https://index.crates.invalid/\"\n\n[[package]]\nname = \"plain\"\nversion = \"1.0.0\"\nsource = \"registry+https://index.crates.invalid/\"\n",
    );
    let src = "home/.cargo/registry/src/index.crates.invalid-0000000000000000";
    fx.write(
        &fx.dir
            .path()
            .join(format!("{src}/withbuild-1.0.0/Cargo.toml")),
        "[package]\nname = \"withbuild\"\n",
    );
    fx.write(
        &fx.dir
            .path()
            .join(format!("{src}/withbuild-1.0.0/build.rs")),
        "fn main() {}\n",
    );
    fx.write(
        &fx.dir.path().join(format!("{src}/macros-2.0.0/Cargo.toml")),
        "[package]\nname = \"macros\"\n[lib]\nproc-macro = true\n",
    );
    fx.write(
        &fx.dir.path().join(format!("{src}/plain-1.0.0/Cargo.toml")),
        "[package]\nname = \"plain\"\n",
    );
    fx.project_file(
        "uv.lock",
        "version = 1\n\n[[package]]\nname = \"wheelonly\"\nversion = \"1.0\"\nsource = { registry = \"https://pypi.invalid/simple\" }\nwheels = [{ url = \"https://files.invalid/w.whl\" }]\n\n[[package]]\nname = \"sdistonly\"\nversion = \"1.0\"\nsource = { registry = \"https://pypi.invalid/simple\" }\nsdist = { url = \"https://files.invalid/s.tar.gz\" }\n",
    );
    fx.project_file(
        "requirements.txt",
        "requests==2.0\nmylib @ git+https://git.invalid/o/mylib.git\n# a comment git+x\n",
    );
    let f = audit(&fx, &[]);
    let mut got: Vec<(String, String, u64)> = f
        .iter()
        .map(|x| {
            (
                x["rule"].as_str().unwrap().to_string(),
                x["location"]["path"].as_str().unwrap().to_string(),
                x["location"]["line"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("cargo-build-code".into(), "Cargo.lock".into(), 8),
            ("cargo-build-code".into(), "Cargo.lock".into(), 13),
            ("python-source-build".into(), "requirements.txt".into(), 2),
            ("python-source-build".into(), "uv.lock".into(), 10),
        ],
        "{f:#?}"
    );
    assert!(f.iter().all(|x| x["severity"] == "info"));
}

#[test]
fn global_installs_in_the_home_are_an_inventory() {
    let mut fx = Fixture::new();
    fx.home_file(
        ".npm-global/lib/node_modules/gtool/package.json",
        "{\"name\": \"gtool\", \"version\": \"3.0.0\",\n \"scripts\": {\"postinstall\": \"node setup.js\"}}\n",
    );
    fx.home_file(
        ".npm-global/lib/node_modules/quiet/package.json",
        r#"{"name": "quiet", "version": "1.0.0"}"#,
    );
    let f = audit(&fx, &[]);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["rule"], "global-install-script");
    assert_eq!(f[0]["severity"], "info");
    assert!(
        f[0]["location"]["path"]
            .as_str()
            .unwrap()
            .ends_with(".npm-global/lib/node_modules/gtool/package.json")
    );
    assert_eq!(f[0]["location"]["line"], 2);
    // With a secret exported, the next `npm update -g` hands it over: low.
    let k = fx.key("github");
    let f = audit(&fx, &[("GITHUB_TOKEN", &k)]);
    assert_eq!(f[0]["severity"], "low", "{f:#?}");
    assert!(f[0]["message"].as_str().unwrap().contains("$GITHUB_TOKEN"));
}

/// The secrets an install script would inherit from start-up files are those the `shell`
/// source reports as exported, case by case: one answer to "which keys do the shells export".
/// Broke: a key in systemd's `environment.d` (exported without `export`) was exported for
/// `shell` but not counted for install scripts.
#[test]
fn install_scripts_inherit_what_the_shell_source_says_is_exported() {
    // (file, what it says with @ for the key, the variable, exported by the shells)
    let cases: &[(&str, &str, &str, bool)] = &[
        (
            ".bashrc",
            "export OPENAI_API_KEY=@\n",
            "OPENAI_API_KEY",
            true,
        ),
        (".bashrc", "OPENAI_API_KEY=@\n", "OPENAI_API_KEY", false),
        (
            ".bashrc",
            "OPENAI_API_KEY=@\nexport OPENAI_API_KEY\n",
            "OPENAI_API_KEY",
            true,
        ),
        (
            ".config/fish/config.fish",
            "set -gx OPENAI_API_KEY @\n",
            "OPENAI_API_KEY",
            true,
        ),
        (
            ".config/fish/config.fish",
            "set -g OPENAI_API_KEY @\n",
            "OPENAI_API_KEY",
            false,
        ),
        (
            ".cshrc",
            "setenv OPENAI_API_KEY @\n",
            "OPENAI_API_KEY",
            true,
        ),
        (
            ".config/environment.d/50-keys.conf",
            "OPENAI_API_KEY=@\n",
            "OPENAI_API_KEY",
            true,
        ),
        (
            "../etc/environment",
            "OPENAI_API_KEY=@\n",
            "OPENAI_API_KEY",
            true,
        ),
        (
            "../etc/profile.d/keys.sh",
            "export OPENAI_API_KEY=@\n",
            "OPENAI_API_KEY",
            true,
        ),
    ];
    for (file, text, name, exported) in cases {
        let mut fx = Fixture::new();
        fx.home_file(
            ".npm-global/lib/node_modules/gtool/package.json",
            r#"{"name": "gtool", "version": "3.0.0", "scripts": {"postinstall": "node setup.js"}}"#,
        );
        let key = fx.key("openai");
        let path = if let Some(rel) = file.strip_prefix("../etc/") {
            let p = fx.etc.join(rel);
            fx.write(&p, &text.replace('@', &key));
            p
        } else {
            fx.home_file(file, &text.replace('@', &key))
        };
        let r = fx.run(&["audit", "--only", "shell", "--format", "json"], &[]);
        let shell = r.findings();
        assert_eq!(shell.len(), 1, "{file}: {shell:#?}");
        let says = shell[0]["message"].as_str().unwrap();
        assert_eq!(
            says.contains(&format!("exported as {name}")),
            *exported,
            "{file} {text:?}: the shell source says {says}"
        );
        let r = fx.run(&["audit", "--only", "package", "--format", "json"], &[]);
        assert!(!r.stdout.contains(&key) && !r.stderr.contains(&key));
        let package = r.findings();
        assert_eq!(package.len(), 1, "{file}: {package:#?}");
        let msg = package[0]["message"].as_str().unwrap();
        // The message once carried a source line's indentation.
        assert!(!msg.contains("  "), "{msg}");
        let shown = path.strip_prefix(&fx.home).map_or_else(
            |_| path.display().to_string(),
            |rel| format!("~/{}", rel.display()),
        );
        assert_eq!(
            msg.contains(&format!("{name} ({shown}:")),
            *exported,
            "{file} {text:?}: the package source says {msg}"
        );
        let severity = if *exported { "low" } else { "info" };
        assert_eq!(package[0]["severity"], severity, "{file} {text:?}: {msg}");
    }
}
