//! `package`: dependencies that run code at install or build time, whether the package manager
//! lets them, and whether secrets would be in their environment (P1 at install time).
//!
//! npm: `package-lock.json` v2/v3 `hasInstallScript` (v1 records none, so `node_modules` is read
//! too), installed `node_modules/**/package.json` (`preinstall`, `install`, `postinstall`, and
//! `prepare` for git dependencies), `binding.gyp` without an install script (npm runs
//! `node-gyp rebuild` for it), the project's `allowScripts` policy and `ignore-scripts` in
//! `.npmrc`. pnpm (`allowBuilds`, `onlyBuiltDependencies`, `ignoredBuiltDependencies`,
//! `neverBuiltDependencies`, `.pnpmfile.*`), Yarn Berry (`enableScripts`,
//! `dependenciesMeta.*.built`) and Bun (`trustedDependencies`) decide for their own projects.
//! Cargo crates with `build.rs` or proc macros, and Python dependencies built from source, are an
//! inventory (info): they run code at build time by design.
//!
//! Lockfiles are parsed with serde_json / toml for their meaning; positions come from locating
//! the key in the text, so findings land on the lockfile line of the package.

use super::{Context, Output, walk};
use crate::finding::{Finding, Location, Severity, Source};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// `package.json` deeper than this under `node_modules` is not read (real trees stay far below).
const MAX_DEPTH: usize = 12;
/// At most this many installed packages are read per project.
const MAX_PACKAGES: usize = 50_000;

pub fn audit(ctx: &Context, out: &mut Output) {
    let exposed = exposed_secrets(ctx);
    for root in &ctx.settings.projects {
        node(ctx, out, root, &exposed);
        cargo(ctx, out, root);
        python(ctx, out, root);
    }
    global_npm(ctx, out, &exposed);
}

/// npm prefixes in the home where `npm install -g` puts packages: the user's `prefix=` in
/// `~/.npmrc`, and the usual user-level prefixes (nvm's per-version ones included).
fn global_prefixes(ctx: &Context) -> Vec<PathBuf> {
    let home = ctx.home();
    let mut v = Vec::new();
    if let Ok(rc) = std::fs::read_to_string(home.join(".npmrc")) {
        for l in rc.lines() {
            if let Some((k, val)) = l.split_once('=')
                && k.trim() == "prefix"
            {
                let val = val.trim();
                let p = match val.strip_prefix("~/") {
                    Some(rest) => home.join(rest),
                    None => PathBuf::from(val),
                };
                v.push(p);
            }
        }
    }
    v.push(home.join(".npm-global"));
    v.push(home.join(".local"));
    if let Ok(rd) = std::fs::read_dir(home.join(".nvm/versions/node")) {
        let mut versions: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        versions.sort();
        v.extend(versions);
    }
    v.dedup();
    v
}

/// Globally installed packages with install-time code: their scripts ran when they were
/// installed and run again on every `npm install -g` / `npm update -g`.
fn global_npm(ctx: &Context, out: &mut Output, exposed: &[String]) {
    for prefix in global_prefixes(ctx) {
        let lib = prefix.join("lib");
        if !lib.join("node_modules").is_dir() {
            continue;
        }
        let mut pkgs: BTreeMap<String, Pkg> = BTreeMap::new();
        read_installed(ctx, out, &lib, &mut pkgs);
        for p in pkgs.values().filter(|p| !p.events.is_empty()) {
            let (severity, why) = match severity_for(&State::Runs(String::new()), exposed) {
                (Severity::High, why) => (Severity::Low, why),
                (_, why) => (Severity::Info, why),
            };
            let location = p
                .location
                .clone()
                .unwrap_or_else(|| Location::file(lib.join("node_modules"), 1));
            out.findings.push(Finding {
                rule: "global-install-script".into(),
                severity,
                source: Source::Package,
                location,
                secret: None,
                message: format!(
                    "global package {}@{} runs {} at install time: it ran when installed and runs                      again on `npm install -g` or `npm update -g`{why}",
                    p.name,
                    if p.version.is_empty() { "?" } else { &p.version },
                    p.events.join(", ")
                ),
                fix: format!(
                    "update global packages as `keyfence run --profile install -- npm install -g                      {}` so their scripts get no secrets",
                    p.name
                ),
            });
        }
    }
}

/// Secrets an install started from here would inherit: the environment's, and those exported
/// by shell start-up files (every new terminal has them).
fn exposed_secrets(ctx: &Context) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (k, v) in &ctx.settings.env {
        use std::os::unix::ffi::OsStrExt;
        let k = k.to_string_lossy();
        if ctx.detector.classify_var(&k, v.as_bytes()).is_some() {
            names.push(format!("${k}"));
        }
    }
    super::shell::walk_start_up_files(ctx, 2, |path, dialect| {
        let text = std::fs::read(&path).ok()?;
        let parsed = crate::syntax::shell::parse(&text, dialect);
        let all = path.ends_with("environment");
        for a in parsed.assignments {
            if (a.exported || all) && ctx.detector.classify_var(&a.name, &a.value).is_some() {
                names.push(format!(
                    "{} ({}:{})",
                    a.name,
                    super::display_path(ctx.home(), &path),
                    a.line
                ));
            }
        }
        Some(parsed.sources)
    });
    names.sort();
    names.dedup();
    names
}

/// Byte offset of `"key"` used as an object key (followed by `:`), at or after `from`.
fn find_key(text: &str, key: &str, from: usize) -> Option<usize> {
    let quoted = serde_json::to_string(key).ok()?;
    let mut i = from;
    while let Some(p) = text.get(i..)?.find(&quoted) {
        let at = i + p;
        let rest = text[at + quoted.len()..].trim_start();
        if rest.starts_with(':') {
            return Some(at);
        }
        i = at + quoted.len();
    }
    None
}

fn json_error(out: &mut Output, path: &Path, e: &serde_json::Error, what: &str) {
    out.error(
        Source::Package,
        Some(&walk::clean(path)),
        format!(
            "not valid JSON at line {} column {}: {}; {what}",
            e.line(),
            e.column(),
            e.to_string().split(" at line").next().unwrap_or("")
        ),
    );
}

fn read_json(ctx: &Context, out: &mut Output, path: &Path) -> Option<(String, Value)> {
    let bytes = super::read_optional(ctx, out, Source::Package, path)?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    match serde_json::from_str::<Value>(&text) {
        Ok(v) => Some((text, v)),
        Err(e) => {
            json_error(out, path, &e, "npm cannot read it either");
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Manager {
    Npm,
    Pnpm,
    Yarn,
    Bun,
}

impl Manager {
    fn name(self) -> &'static str {
        match self {
            Manager::Npm => "npm",
            Manager::Pnpm => "pnpm",
            Manager::Yarn => "yarn",
            Manager::Bun => "bun",
        }
    }
}

/// One dependency that runs code at install time.
#[derive(Debug, Default, Clone)]
struct Pkg {
    name: String,
    version: String,
    resolved: Option<String>,
    /// Lifecycle events it runs (`postinstall`, `install (node-gyp rebuild)`, ...).
    events: Vec<String>,
    /// Only a `binding.gyp`, no install script of its own.
    gyp_only: bool,
    location: Option<Location>,
}

/// What the package manager will do with a package's install scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Runs(String),
    Allowed(String),
    Blocked(String),
}

fn node(ctx: &Context, out: &mut Output, root: &Path, exposed: &[String]) {
    let manifest_path = root.join("package.json");
    let manifest = read_json(ctx, out, &manifest_path).map(|(_, v)| v);
    let has_modules = root.join("node_modules").is_dir();
    let lock_names = ["package-lock.json", "npm-shrinkwrap.json"];
    let lock = lock_names
        .iter()
        .map(|n| root.join(n))
        .find(|p| p.is_file());
    if manifest.is_none() && lock.is_none() && !has_modules {
        return;
    }
    let manager =
        if root.join("pnpm-lock.yaml").is_file() || root.join("pnpm-workspace.yaml").is_file() {
            Manager::Pnpm
        } else if root.join("bun.lock").is_file() || root.join("bun.lockb").is_file() {
            Manager::Bun
        } else if root.join(".yarnrc.yml").is_file() {
            Manager::Yarn
        } else {
            Manager::Npm
        };

    // Path key (`node_modules/a/node_modules/b`) → package.
    let mut pkgs: BTreeMap<String, Pkg> = BTreeMap::new();
    let lock = lock.or_else(|| {
        let hidden = root.join("node_modules/.package-lock.json");
        hidden.is_file().then_some(hidden)
    });
    if let Some(lock) = &lock {
        read_lockfile(ctx, out, lock, &mut pkgs);
    }
    read_installed(ctx, out, root, &mut pkgs);

    if manager == Manager::Pnpm {
        for f in [".pnpmfile.cjs", ".pnpmfile.mjs"] {
            let p = root.join(f);
            if p.is_file() {
                let (sev, why) = severity_for(&State::Runs(String::new()), exposed);
                out.findings.push(Finding {
                    rule: "pnpmfile".into(),
                    severity: sev,
                    source: Source::Package,
                    location: Location::File {
                        path: walk::clean(&p),
                        line: 1,
                        column: Some(1),
                    },
                    secret: None,
                    message: format!(
                        "pnpm runs {f} on every install, even with ignore-scripts: it is code from \
                         the repository that gets the installing shell's environment{why}"
                    ),
                    fix: "review it, and run installs as `keyfence run --profile install -- pnpm \
                          install` so it gets no secrets"
                        .into(),
                });
            }
        }
    }

    let policy = Policy::load(ctx, out, root, manager, manifest.as_ref());
    for (key, p) in &pkgs {
        if p.events.is_empty() {
            continue;
        }
        let state = policy.state(root, p);
        let (severity, why) = severity_for(&state, exposed);
        let what = if p.gyp_only {
            "has a binding.gyp and no install script, so it runs `node-gyp rebuild` (a native \
             build that executes its gyp files and compiler) at install time"
                .to_string()
        } else {
            format!("runs {} at install time", p.events.join(", "))
        };
        let (state_text, fix) = match &state {
            State::Blocked(why) => (
                format!("blocked: {why}"),
                format!(
                    "nothing to do now; if you ever allow it, run installs as `keyfence run \
                     --profile install -- {} install` so it gets no secrets",
                    manager.name()
                ),
            ),
            State::Allowed(why) => (
                format!("allowed: {why}"),
                format!(
                    "run installs as `keyfence run --profile install -- {} install`, so the \
                     script runs without your secrets and cannot read credential files",
                    manager.name()
                ),
            ),
            State::Runs(why) => (
                format!("will run: {why}"),
                format!(
                    "review it, then {}; and run installs as `keyfence run --profile install -- \
                     {} install` so it gets no secrets",
                    match manager {
                        Manager::Npm => format!(
                            "`npm install-scripts approve {0}` or `npm install-scripts deny {0}`",
                            p.name
                        ),
                        Manager::Pnpm =>
                            format!("`pnpm approve-builds` (allow or deny {})", p.name),
                        Manager::Yarn => format!(
                            "set `dependenciesMeta.{}.built: false` in package.json if it need not run",
                            p.name
                        ),
                        Manager::Bun => format!("leave {} out of trustedDependencies", p.name),
                    },
                    manager.name()
                ),
            ),
        };
        let location = p.location.clone().unwrap_or_else(|| {
            Location::file(walk::clean(&root.join(key).join("package.json")), 1)
        });
        out.findings.push(Finding {
            rule: if p.gyp_only {
                "install-script-gyp".into()
            } else {
                "install-script".into()
            },
            severity,
            source: Source::Package,
            location,
            secret: None,
            message: format!(
                "{}@{} {what} ({state_text}){why}",
                p.name,
                if p.version.is_empty() {
                    "?"
                } else {
                    &p.version
                }
            ),
            fix,
        });
    }
}

/// Severity and the "secrets it would get" part of the message.
fn severity_for(state: &State, exposed: &[String]) -> (Severity, String) {
    if let State::Blocked(_) = state {
        return (Severity::Info, String::new());
    }
    if exposed.is_empty() {
        let base = match state {
            State::Allowed(_) => Severity::Low,
            _ => Severity::Medium,
        };
        return (base, String::new());
    }
    let list: Vec<&str> = exposed.iter().take(3).map(String::as_str).collect();
    (
        Severity::High,
        format!(
            "; it would inherit {} secret{} from this environment and your shell start-up files: \
             {}{}",
            exposed.len(),
            if exposed.len() == 1 { "" } else { "s" },
            list.join(", "),
            if exposed.len() > 3 { ", ..." } else { "" }
        ),
    )
}

fn name_from_key(key: &str) -> String {
    match key.rfind("node_modules/") {
        Some(i) => key[i + "node_modules/".len()..].to_string(),
        None => key.to_string(),
    }
}

fn is_git(resolved: &str) -> bool {
    resolved.starts_with("git+") || resolved.starts_with("git:") || resolved.starts_with("github:")
}

fn read_lockfile(ctx: &Context, out: &mut Output, path: &Path, pkgs: &mut BTreeMap<String, Pkg>) {
    let Some((text, lock)) = read_json(ctx, out, path) else {
        return;
    };
    let shown = walk::clean(path);
    let version = lock.get("lockfileVersion").and_then(Value::as_u64);
    match version {
        Some(2 | 3) => {}
        // v1 records no install-script flag (node_modules tells), but where each package is
        // and where it came from (`prepare` runs for git dependencies).
        Some(1) => {
            if let Some(deps) = lock.get("dependencies").and_then(Value::as_object) {
                let base = find_key(&text, "dependencies", 0).unwrap_or(0);
                lockfile_v1(&text, &shown, deps, "node_modules", base, 0, pkgs);
            }
            return;
        }
        other => {
            let at = find_key(&text, "lockfileVersion", 0).unwrap_or(0);
            let (line, col) = crate::detect::line_col(text.as_bytes(), at);
            out.error(
                Source::Package,
                Some(&shown),
                format!(
                    "unknown lockfileVersion {} at line {line} column {col}; keyfence reads \
                     versions 1 to 3, so install scripts are taken from node_modules only",
                    other.map_or_else(|| "(missing)".to_string(), |v| v.to_string())
                ),
            );
            return;
        }
    }
    let Some(packages) = lock.get("packages").and_then(Value::as_object) else {
        return;
    };
    let base = find_key(&text, "packages", 0).unwrap_or(0);
    for (key, entry) in packages {
        if key.is_empty() || !key.contains("node_modules/") {
            continue;
        }
        let has = entry
            .get("hasInstallScript")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let resolved = entry
            .get("resolved")
            .and_then(Value::as_str)
            .map(str::to_string);
        let p = pkgs.entry(key.clone()).or_default();
        p.name = entry
            .get("name")
            .and_then(Value::as_str)
            .map_or_else(|| name_from_key(key), str::to_string);
        p.version = entry
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        p.resolved = resolved;
        if has && p.events.is_empty() {
            // Which event, node_modules tells when it is there.
            p.events.push("an install script (hasInstallScript)".into());
        }
        let at = find_key(&text, key, base).unwrap_or(base);
        let (line, column) = crate::detect::line_col(text.as_bytes(), at);
        p.location = Some(Location::File {
            path: shown.clone(),
            line,
            column: Some(column),
        });
    }
}

/// One level of a v1 lockfile's nested `dependencies`, keyed like v2 paths.
fn lockfile_v1(
    text: &str,
    shown: &Path,
    deps: &serde_json::Map<String, Value>,
    prefix: &str,
    from: usize,
    depth: usize,
    pkgs: &mut BTreeMap<String, Pkg>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    for (name, entry) in deps {
        let key = format!("{prefix}/{name}");
        let at = find_key(text, name, from).unwrap_or(from);
        let (line, column) = crate::detect::line_col(text.as_bytes(), at);
        let p = pkgs.entry(key.clone()).or_default();
        p.name = name.clone();
        p.version = entry
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        p.resolved = entry
            .get("resolved")
            .or_else(|| {
                entry
                    .get("version")
                    .filter(|v| v.as_str().is_some_and(is_git))
            })
            .and_then(Value::as_str)
            .map(str::to_string);
        p.location = Some(Location::File {
            path: shown.to_path_buf(),
            line,
            column: Some(column),
        });
        if let Some(sub) = entry.get("dependencies").and_then(Value::as_object) {
            let sub_from = find_key(text, "dependencies", at).unwrap_or(at);
            lockfile_v1(
                text,
                shown,
                sub,
                &format!("{key}/node_modules"),
                sub_from,
                depth + 1,
                pkgs,
            );
        }
    }
}

/// Installed packages under `node_modules` (and pnpm's `.pnpm` store), with their scripts.
fn read_installed(ctx: &Context, out: &mut Output, root: &Path, pkgs: &mut BTreeMap<String, Pkg>) {
    let mut stack: Vec<(PathBuf, String, usize)> =
        vec![(root.join("node_modules"), "node_modules".into(), 0)];
    let mut count = 0;
    while let Some((dir, key_prefix, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            let is_link = e.file_type().is_ok_and(|t| t.is_symlink());
            if name == ".pnpm" && depth == 0 {
                // pnpm's store: .pnpm/<id>/node_modules/<pkg> (the real directories).
                if let Ok(ids) = std::fs::read_dir(&path) {
                    for id in ids.filter_map(Result::ok) {
                        let nm = id.path().join("node_modules");
                        let k = format!(
                            "node_modules/.pnpm/{}/node_modules",
                            id.file_name().to_string_lossy()
                        );
                        stack.push((nm, k, depth + 1));
                    }
                }
                continue;
            }
            if name.starts_with('.') || !path.is_dir() {
                continue;
            }
            if name.starts_with('@') && !is_link {
                if let Ok(scoped) = std::fs::read_dir(&path) {
                    let mut scoped: Vec<_> = scoped.filter_map(Result::ok).collect();
                    scoped.sort_by_key(|e| e.file_name());
                    for s in scoped {
                        let sname = format!("{name}/{}", s.file_name().to_string_lossy());
                        let slink = s.file_type().is_ok_and(|t| t.is_symlink());
                        installed_pkg(
                            ctx,
                            out,
                            &s.path(),
                            &format!("{key_prefix}/{sname}"),
                            slink,
                            pkgs,
                        );
                        if !slink && depth < MAX_DEPTH {
                            stack.push((
                                s.path().join("node_modules"),
                                format!("{key_prefix}/{sname}/node_modules"),
                                depth + 1,
                            ));
                        }
                    }
                }
                continue;
            }
            count += 1;
            if count > MAX_PACKAGES {
                out.error(
                    Source::Package,
                    Some(&walk::clean(&root.join("node_modules"))),
                    format!("more than {MAX_PACKAGES} installed packages; the rest were not read"),
                );
                return;
            }
            let key = format!("{key_prefix}/{name}");
            installed_pkg(ctx, out, &path, &key, is_link, pkgs);
            // pnpm links direct dependencies into node_modules; their real place is in .pnpm.
            if !is_link && depth < MAX_DEPTH {
                stack.push((
                    path.join("node_modules"),
                    format!("{key}/node_modules"),
                    depth + 1,
                ));
            }
        }
    }
}

fn installed_pkg(
    ctx: &Context,
    out: &mut Output,
    dir: &Path,
    key: &str,
    is_link: bool,
    pkgs: &mut BTreeMap<String, Pkg>,
) {
    if is_link && !key.contains("/.pnpm/") {
        // A symlink (pnpm's top level, npm links of local directories): the real directory is
        // read where it lives, in pnpm's store or in the project itself.
        return;
    }
    let pj = dir.join("package.json");
    let Some((text, v)) = read_json(ctx, out, &pj) else {
        return;
    };
    let scripts = v.get("scripts").and_then(Value::as_object);
    let p = pkgs.entry(key.to_string()).or_default();
    if p.name.is_empty() {
        p.name = v
            .get("name")
            .and_then(Value::as_str)
            .map_or_else(|| name_from_key(key), str::to_string);
    }
    if p.version.is_empty() {
        p.version = v
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
    }
    let git = p.resolved.as_deref().is_some_and(is_git);
    let mut events = Vec::new();
    let mut first: Option<usize> = None;
    for ev in ["preinstall", "install", "postinstall", "prepare"] {
        if ev == "prepare" && !git {
            continue;
        }
        if scripts.is_some_and(|s| {
            s.get(ev)
                .and_then(Value::as_str)
                .is_some_and(|x| !x.is_empty())
        }) {
            events.push(ev.to_string());
            if first.is_none() {
                let sc = find_key(&text, "scripts", 0).unwrap_or(0);
                first = find_key(&text, ev, sc);
            }
        }
    }
    let has_install = events.iter().any(|e| e == "install" || e == "preinstall");
    let gyp = dir.join("binding.gyp").is_file() && v.get("gypfile") != Some(&Value::Bool(false));
    let mut gyp_only = false;
    if gyp && !has_install {
        gyp_only = events.is_empty();
        events.push("install (node-gyp rebuild, for binding.gyp)".into());
    }
    if events.is_empty() {
        // The lockfile may claim a script the installed copy does not have: trust what is here.
        if p.events.iter().any(|e| e.contains("hasInstallScript")) {
            p.events.clear();
        }
        return;
    }
    p.events = events;
    p.gyp_only = gyp_only;
    if p.location.is_none() {
        let (path, at) = if gyp_only {
            (dir.join("binding.gyp"), None)
        } else {
            (pj, first)
        };
        let (line, column) = at.map_or((1, 1), |a| crate::detect::line_col(text.as_bytes(), a));
        p.location = Some(Location::File {
            path: walk::clean(&path),
            line,
            column: Some(column),
        });
    }
}

/// The package manager's decision rules for one project.
struct Policy {
    manager: Manager,
    /// `ignore-scripts=true`, and where.
    ignore_scripts: Option<String>,
    /// npm `allowScripts` (key → allowed).
    allow_scripts: Option<Vec<(String, bool)>>,
    /// pnpm: name → allowed, and whether all builds are allowed.
    pnpm_builds: BTreeMap<String, bool>,
    pnpm_allow_all: bool,
    /// yarn: `enableScripts: false`; `dependenciesMeta.<name>.built`.
    yarn_scripts_off: bool,
    yarn_built: BTreeMap<String, bool>,
    /// bun: `trustedDependencies`.
    bun_trusted: Vec<String>,
}

impl Policy {
    fn load(
        ctx: &Context,
        out: &mut Output,
        root: &Path,
        manager: Manager,
        manifest: Option<&Value>,
    ) -> Self {
        let mut p = Policy {
            manager,
            ignore_scripts: None,
            allow_scripts: None,
            pnpm_builds: BTreeMap::new(),
            pnpm_allow_all: false,
            yarn_scripts_off: false,
            yarn_built: BTreeMap::new(),
            bun_trusted: Vec::new(),
        };
        // The environment beats .npmrc files; the project's beats the user's.
        for (k, v) in &ctx.settings.env {
            if k.to_string_lossy()
                .eq_ignore_ascii_case("npm_config_ignore_scripts")
            {
                let v = v.to_string_lossy();
                if v == "true" || v == "1" {
                    p.ignore_scripts = Some("npm_config_ignore_scripts in the environment".into());
                }
            }
        }
        if p.ignore_scripts.is_none() {
            for rc in [root.join(".npmrc"), ctx.home().join(".npmrc")] {
                if let Ok(text) = std::fs::read_to_string(&rc) {
                    let setting = text.lines().rev().find_map(|l| {
                        let (k, v) = l.split_once('=')?;
                        (k.trim() == "ignore-scripts").then(|| v.trim().to_string())
                    });
                    if let Some(v) = setting {
                        if v == "true" {
                            p.ignore_scripts = Some(format!(
                                "ignore-scripts=true in {}",
                                super::display_path(ctx.home(), &walk::clean(&rc))
                            ));
                        }
                        break;
                    }
                }
            }
        }
        if let Some(m) = manifest {
            if let Some(a) = m.get("allowScripts").and_then(Value::as_object) {
                p.allow_scripts = Some(
                    a.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_bool()?)))
                        .collect(),
                );
            }
            if let Some(pn) = m.get("pnpm") {
                p.read_pnpm_json(pn);
            }
            if let Some(meta) = m.get("dependenciesMeta").and_then(Value::as_object) {
                for (name, v) in meta {
                    if let Some(b) = v.get("built").and_then(Value::as_bool) {
                        p.yarn_built.insert(name.clone(), b);
                    }
                }
            }
            if let Some(t) = m.get("trustedDependencies").and_then(Value::as_array) {
                p.bun_trusted = t
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect();
            }
        }
        if manager == Manager::Pnpm {
            let ws = root.join("pnpm-workspace.yaml");
            if let Some(bytes) = super::read_optional(ctx, out, Source::Package, &ws) {
                let text = String::from_utf8_lossy(&bytes);
                match crate::syntax::yaml::parse(&text) {
                    Ok(docs) => {
                        if let Some(d) = docs.first() {
                            p.read_pnpm_yaml(d);
                        }
                    }
                    Err(e) => out.error(Source::Package, Some(&walk::clean(&ws)), e.to_string()),
                }
            }
        }
        if manager == Manager::Yarn {
            let rc = root.join(".yarnrc.yml");
            if let Some(bytes) = super::read_optional(ctx, out, Source::Package, &rc) {
                let text = String::from_utf8_lossy(&bytes);
                match crate::syntax::yaml::parse(&text) {
                    Ok(docs) => {
                        p.yarn_scripts_off = docs
                            .first()
                            .and_then(|d| d.get("enableScripts"))
                            .and_then(|n| n.as_str())
                            == Some("false");
                    }
                    Err(e) => out.error(Source::Package, Some(&walk::clean(&rc)), e.to_string()),
                }
            }
        }
        p
    }

    fn read_pnpm_json(&mut self, pn: &Value) {
        let list = |k: &str| -> Vec<String> {
            pn.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let allow = pn
            .get("allowBuilds")
            .and_then(Value::as_object)
            .map(|a| {
                a.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_bool()?)))
                    .collect()
            })
            .unwrap_or_default();
        let allow_all = pn.get("dangerouslyAllowAllBuilds") == Some(&Value::Bool(true));
        self.apply_pnpm_policy(list, allow, allow_all);
    }

    fn read_pnpm_yaml(&mut self, d: &crate::syntax::yaml::Node) {
        let list = |k: &str| -> Vec<String> {
            d.get(k)
                .map(|n| {
                    n.items()
                        .iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let allow = d
            .get("allowBuilds")
            .map(|a| {
                a.entries()
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()? == "true")))
                    .collect()
            })
            .unwrap_or_default();
        let allow_all = d.get("dangerouslyAllowAllBuilds").and_then(|n| n.as_str()) == Some("true");
        self.apply_pnpm_policy(list, allow, allow_all);
    }

    /// pnpm's build policy, the same from package.json's `pnpm` field or pnpm-workspace.yaml.
    fn apply_pnpm_policy(
        &mut self,
        list: impl Fn(&str) -> Vec<String>,
        allow_builds: Vec<(String, bool)>,
        allow_all: bool,
    ) {
        for n in list("onlyBuiltDependencies") {
            self.pnpm_builds.insert(n, true);
        }
        for n in list("ignoredBuiltDependencies")
            .into_iter()
            .chain(list("neverBuiltDependencies"))
        {
            self.pnpm_builds.insert(n, false);
        }
        self.pnpm_builds.extend(allow_builds);
        self.pnpm_allow_all |= allow_all;
    }

    fn state(&self, root: &Path, p: &Pkg) -> State {
        if let Some(why) = &self.ignore_scripts
            && self.manager != Manager::Bun
        {
            return State::Blocked(why.clone());
        }
        match self.manager {
            Manager::Npm => match npm_verdict(self.allow_scripts.as_deref(), root, p) {
                Some(false) => State::Blocked("denied in package.json allowScripts".into()),
                Some(true) => State::Allowed("approved in package.json allowScripts".into()),
                None if self.allow_scripts.is_some() => State::Runs(
                    "not listed in allowScripts: npm 11 runs it with a warning, npm 12 will block \
                     it"
                    .into(),
                ),
                None => State::Runs(
                    "no allowScripts policy in package.json and ignore-scripts is off".into(),
                ),
            },
            Manager::Pnpm => match self.pnpm_builds.get(&p.name) {
                Some(false) => State::Blocked("denied in pnpm's build settings".into()),
                Some(true) => State::Allowed("allowed in pnpm's build settings".into()),
                None if self.pnpm_allow_all => {
                    State::Runs("dangerouslyAllowAllBuilds is set".into())
                }
                None => State::Blocked(
                    "not approved, and pnpm 10 and later build only approved dependencies".into(),
                ),
            },
            Manager::Yarn => {
                if self.yarn_scripts_off {
                    State::Blocked("enableScripts: false in .yarnrc.yml".into())
                } else {
                    match self.yarn_built.get(&p.name) {
                        Some(false) => State::Blocked("dependenciesMeta built: false".into()),
                        Some(true) => State::Allowed("dependenciesMeta built: true".into()),
                        None => State::Runs(
                            "yarn runs dependency scripts unless enableScripts is false".into(),
                        ),
                    }
                }
            }
            Manager::Bun => {
                if self.bun_trusted.contains(&p.name) {
                    State::Allowed("listed in trustedDependencies".into())
                } else {
                    State::Blocked(
                        "not in trustedDependencies (bun still runs scripts of the packages on its \
                         built-in trusted list)"
                            .into(),
                    )
                }
            }
        }
    }
}

/// npm's `allowScripts` decision for a package: keys are `name`, `name@1.2.3 || 1.2.4`, or a
/// resolved spec (`file:/abs/pkg.tgz`, `git+https://...`); a denial wins (npm RFC 0054).
fn npm_verdict(policy: Option<&[(String, bool)]>, root: &Path, p: &Pkg) -> Option<bool> {
    let policy = policy?;
    let resolved = p.resolved.as_deref().map(|r| normalize_spec(root, r));
    let mut verdict = None;
    for (key, allowed) in policy {
        let hit = if is_spec(key) {
            resolved.as_deref() == Some(normalize_spec(root, key).as_str())
        } else {
            // `@scope/name@1.2.3`: the version's `@` is any but a leading one.
            let (name, versions) = match key.char_indices().skip(1).find(|&(_, c)| c == '@') {
                Some((i, _)) => (&key[..i], Some(&key[i + 1..])),
                None => (key.as_str(), None),
            };
            name == p.name
                && versions.is_none_or(|vs| vs.split("||").any(|v| v.trim() == p.version))
        };
        if hit {
            if !allowed {
                return Some(false);
            }
            verdict = Some(true);
        }
    }
    verdict
}

fn is_spec(key: &str) -> bool {
    [
        "file:", "git+", "git:", "github:", "http:", "https:", "link:",
    ]
    .iter()
    .any(|p| key.starts_with(p))
}

/// `file:` specs relative to the project made absolute and normalised, so lockfile and policy
/// spellings compare.
fn normalize_spec(root: &Path, spec: &str) -> String {
    let Some(rest) = spec.strip_prefix("file:") else {
        return spec.to_string();
    };
    let p = Path::new(rest);
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::path::absolute(root)
            .unwrap_or_else(|_| root.to_path_buf())
            .join(p)
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    format!("file:{}", out.display())
}

/// Cargo: crates in `Cargo.lock` whose sources (when in the local registry cache) have a build
/// script or are proc macros. Info: they run at build time by design.
fn cargo(ctx: &Context, out: &mut Output, root: &Path) {
    let lock = root.join("Cargo.lock");
    let Some(bytes) = super::read_optional(ctx, out, Source::Package, &lock) else {
        return;
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let parsed: toml::Table = match toml::from_str(&text) {
        Ok(t) => t,
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start);
            let (line, col) = crate::detect::line_col(text.as_bytes(), at);
            out.error(
                Source::Package,
                Some(&walk::clean(&lock)),
                format!(
                    "not valid TOML at line {line} column {col}: {}",
                    e.message()
                ),
            );
            return;
        }
    };
    let cargo_home = ctx
        .settings
        .env
        .iter()
        .find(|(k, _)| k == "CARGO_HOME")
        .map(|(_, v)| PathBuf::from(v))
        .unwrap_or_else(|| ctx.home().join(".cargo"));
    let src_dirs: Vec<PathBuf> = std::fs::read_dir(cargo_home.join("registry/src"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    let Some(packages) = parsed.get("package").and_then(|p| p.as_array()) else {
        return;
    };
    let mut search_from = 0;
    for pkg in packages {
        let (Some(name), Some(version)) = (
            pkg.get("name").and_then(|v| v.as_str()),
            pkg.get("version").and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        let needle = format!("name = \"{name}\"\nversion = \"{version}\"");
        let at = text[search_from..].find(&needle).map(|i| i + search_from);
        if let Some(a) = at {
            search_from = a;
        }
        if pkg.get("source").is_none() {
            continue;
        }
        let Some(dir) = src_dirs
            .iter()
            .map(|d| d.join(format!("{name}-{version}")))
            .find(|d| d.is_dir())
        else {
            continue;
        };
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
        let manifest: toml::Table = toml::from_str(&manifest).unwrap_or_default();
        let proc_macro = manifest
            .get("lib")
            .and_then(|l| l.get("proc-macro"))
            .and_then(|v| v.as_bool())
            == Some(true);
        let build = match manifest.get("package").and_then(|p| p.get("build")) {
            Some(toml::Value::Boolean(false)) => false,
            Some(toml::Value::String(_)) => true,
            _ => dir.join("build.rs").is_file(),
        };
        if !proc_macro && !build {
            continue;
        }
        let what = match (build, proc_macro) {
            (true, true) => "a build script and a proc macro",
            (true, false) => "a build script (build.rs)",
            _ => "a proc macro",
        };
        let (line, column) = crate::detect::line_col(text.as_bytes(), at.unwrap_or(0));
        out.findings.push(Finding {
            rule: "cargo-build-code".into(),
            severity: Severity::Info,
            source: Source::Package,
            location: Location::File {
                path: walk::clean(&lock),
                line,
                column: Some(column),
            },
            secret: None,
            message: format!(
                "{name} {version} has {what}: it runs at build time with cargo's environment"
            ),
            fix:
                "build with `keyfence run --profile install -- cargo build` so build code gets no \
                  secrets"
                    .into(),
        });
    }
}

/// Python: dependencies that would be built from source (a PEP 517 build runs arbitrary code):
/// `uv.lock` packages with an sdist and no wheel, requirement lines naming VCS or archive URLs
/// or `--no-binary`.
fn python(ctx: &Context, out: &mut Output, root: &Path) {
    let lock = root.join("uv.lock");
    if let Some(bytes) = super::read_optional(ctx, out, Source::Package, &lock) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match toml::from_str::<toml::Table>(&text) {
            Ok(t) => {
                let mut from = 0;
                for pkg in t
                    .get("package")
                    .and_then(|p| p.as_array())
                    .into_iter()
                    .flatten()
                {
                    let Some(name) = pkg.get("name").and_then(|v| v.as_str()) else {
                        continue;
                    };
                    let needle = format!("name = \"{name}\"");
                    let at = text[from..].find(&needle).map(|i| i + from);
                    if let Some(a) = at {
                        from = a;
                    }
                    let wheels = pkg
                        .get("wheels")
                        .and_then(|w| w.as_array())
                        .is_some_and(|w| !w.is_empty());
                    let source = pkg.get("source");
                    let from_vcs = source.and_then(|s| s.get("git")).is_some();
                    if (pkg.get("sdist").is_some() && !wheels) || from_vcs {
                        let (line, column) =
                            crate::detect::line_col(text.as_bytes(), at.unwrap_or(0));
                        python_finding(out, &lock, line, column, name);
                    }
                }
            }
            Err(e) => {
                let at = e.span().map_or(0, |s| s.start);
                let (line, col) = crate::detect::line_col(text.as_bytes(), at);
                out.error(
                    Source::Package,
                    Some(&walk::clean(&lock)),
                    format!(
                        "not valid TOML at line {line} column {col}: {}",
                        e.message()
                    ),
                );
            }
        }
    }
    let Ok(rd) = std::fs::read_dir(root) else {
        return;
    };
    let mut reqs: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("requirements") && n.ends_with(".txt"))
        })
        .collect();
    reqs.sort();
    for req in reqs {
        let Some(bytes) = super::read_optional(ctx, out, Source::Package, &req) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        for (i, line) in text.lines().enumerate() {
            let l = line.split(" #").next().unwrap_or("").trim();
            let sdist = l.contains("git+")
                || l.starts_with("-e ")
                || l.starts_with("--editable")
                || l.contains("--no-binary")
                || [".tar.gz", ".zip", ".tar.bz2"]
                    .iter()
                    .any(|s| l.ends_with(s));
            if sdist && !l.starts_with('#') {
                let name = l
                    .split(['=', '<', '>', ' ', '@', ';', '['])
                    .next()
                    .unwrap_or(l)
                    .to_string();
                let col = line.len() - line.trim_start().len() + 1;
                python_finding(out, &req, i as u32 + 1, col as u32, &name);
            }
        }
    }
}

fn python_finding(out: &mut Output, path: &Path, line: u32, column: u32, name: &str) {
    out.findings.push(Finding {
        rule: "python-source-build".into(),
        severity: Severity::Info,
        source: Source::Package,
        location: Location::File {
            path: walk::clean(path),
            line,
            column: Some(column),
        },
        secret: None,
        message: format!(
            "{name} is built from source at install time: its build backend and setup code run \
             with the installing shell's environment"
        ),
        fix:
            "prefer wheels (`pip install --only-binary :all:`, `uv --no-build`), and install with \
              `keyfence run --profile install -- pip install ...` so build code gets no secrets"
                .into(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pkg(name: &str, version: &str, resolved: Option<&str>) -> Pkg {
        Pkg {
            name: name.into(),
            version: version.into(),
            resolved: resolved.map(str::to_string),
            ..Pkg::default()
        }
    }

    #[test]
    fn allow_scripts_keys() {
        let root = Path::new("/p/proj");
        let pol = |v: &[(&str, bool)]| -> Vec<(String, bool)> {
            v.iter().map(|(k, b)| (k.to_string(), *b)).collect()
        };
        type Case<'a> = (&'a [(&'a str, bool)], Pkg, Option<bool>);
        let cases: &[Case] = &[
            (&[("sharp", true)], pkg("sharp", "1.0.0", None), Some(true)),
            (
                &[("sharp@1.0.0 || 1.0.1", true)],
                pkg("sharp", "1.0.1", None),
                Some(true),
            ),
            (&[("sharp@1.0.0", true)], pkg("sharp", "2.0.0", None), None),
            (
                &[("@s/x@2.0.0", true)],
                pkg("@s/x", "2.0.0", None),
                Some(true),
            ),
            (&[("@s/x", true)], pkg("@s/y", "2.0.0", None), None),
            // A denial wins over an approval.
            (
                &[("core-js", true), ("core-js@3.0.0", false)],
                pkg("core-js", "3.0.0", None),
                Some(false),
            ),
            // Resolved specs, relative in the lockfile, absolute in the policy.
            (
                &[("file:/p/pkgs/a-1.0.0.tgz", true)],
                pkg("a", "1.0.0", Some("file:../pkgs/a-1.0.0.tgz")),
                Some(true),
            ),
            (
                &[("file:/p/pkgs/a-1.0.0.tgz", true)],
                pkg("a", "1.0.0", None),
                None,
            ),
        ];
        for (policy, p, want) in cases {
            assert_eq!(
                npm_verdict(Some(&pol(policy)), root, p),
                *want,
                "{policy:?} {p:?}"
            );
        }
        assert_eq!(npm_verdict(None, root, &pkg("a", "1", None)), None);
    }

    #[test]
    fn keys_are_located() {
        let text = "{\n  \"packages\": {\n    \"node_modules/a\": {\"x\": \"node_modules/b\"},\n    \"node_modules/b\": {}\n  }\n}";
        let at = find_key(text, "node_modules/b", 0).unwrap();
        assert_eq!(crate::detect::line_col(text.as_bytes(), at), (4, 5));
    }

    proptest! {
        #[test]
        fn lockfile_reader_never_panics(
            lock in prop_oneof![
                "\\PC{0,300}",
                "\\{\"lockfileVersion\": [0-9]{1,2}, \"packages\": \\{(\"(node_modules/[a-z]{1,3})?\": \\{\"hasInstallScript\": (true|false|1), \"version\": \"[0-9.]{0,5}\"\\},? ?){0,4}\\}\\}",
            ],
            manifest in "\\PC{0,100}",
        ) {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().to_path_buf();
            std::fs::write(root.join("package-lock.json"), &lock).unwrap();
            std::fs::create_dir_all(root.join("node_modules/a")).unwrap();
            std::fs::write(root.join("node_modules/a/package.json"), &manifest).unwrap();
            std::fs::write(root.join("package.json"), &manifest).unwrap();
            let settings = crate::audit::Settings {
                home: root.join("home"),
                etc: root.join("etc"),
                projects: vec![root.clone()],
                sources: vec![Source::Package],
                env: Vec::new(),
                max_filesize: 1 << 20,
                threads: 1,
            };
            let ctx = Context::new(&settings);
            let mut out = Output::default();
            node(&ctx, &mut out, &root, &[]);
            for f in &out.findings {
                if let Location::File { line, .. } = f.location {
                    prop_assert!(line >= 1);
                }
            }
            if serde_json::from_str::<Value>(&manifest).is_err() {
                prop_assert!(out.errors.iter().any(|e| e.message.contains("line")));
            }
        }

        #[test]
        fn policy_keys_never_panic(key in "\\PC{0,40}", name in "[@a-z/]{1,10}", version in "[0-9.]{1,6}") {
            let p = pkg(&name, &version, Some("file:../x.tgz"));
            let _ = npm_verdict(Some(&[(key, true)]), Path::new("/p"), &p);
        }
    }
}
