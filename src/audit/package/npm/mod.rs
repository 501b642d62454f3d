//! npm, pnpm, Yarn and Bun: `package-lock.json` v2/v3 `hasInstallScript` (v1 records none, so
//! `node_modules` is read too), installed `node_modules/**/package.json` (`preinstall`,
//! `install`, `postinstall`, and `prepare` for git dependencies), `binding.gyp` without an
//! install script (npm runs `node-gyp rebuild` for it), what the project's package manager
//! decides for each (`policy.rs`), and the packages installed globally with `npm install -g`.

mod policy;

use super::super::{Context, Output};
use crate::tree::walk;
use crate::finding::{Finding, Location, Severity, Source};
use policy::Policy;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `package.json` deeper than this under `node_modules` is not read (real trees stay far below).
const MAX_DEPTH: usize = 12;
/// At most this many installed packages are read per project.
const MAX_PACKAGES: usize = 50_000;

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
pub(super) fn global_npm(ctx: &Context, out: &mut Output, exposed: &[String]) {
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
                    "global package {}@{} runs {} at install time: it ran when installed and runs \
                     again on `npm install -g` or `npm update -g`{why}",
                    p.name,
                    if p.version.is_empty() { "?" } else { &p.version },
                    p.events.join(", ")
                ),
                fix: format!(
                    "update global packages as `keyfence run --profile install -- npm install -g \
                     {}` so their scripts get no secrets",
                    p.name
                ),
            });
        }
    }
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
    let bytes = crate::audit::read_optional(ctx, out, Source::Package, path)?;
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

pub(super) fn node(ctx: &Context, out: &mut Output, root: &Path, exposed: &[String]) {
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

    // bun loads the project's dotenv files into its own environment, so its install scripts
    // inherit their keys too.
    let exposed: Vec<String> = match manager {
        Manager::Bun => [exposed, &bun_env_keys(ctx, root)].concat(),
        _ => exposed.to_vec(),
    };
    let exposed = exposed.as_slice();

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

/// The secrets in the dotenv files `bun install` loads into its own environment, and so into
/// every install script it runs: `.env`, `.env.local` and `.env.$NODE_ENV` (production when
/// unset), as bun 1.4 was seen to do (`tests/it/isolate/install.rs` runs the real bun).
fn bun_env_keys(ctx: &Context, root: &Path) -> Vec<String> {
    let node_env = ctx
        .settings
        .env
        .iter()
        .find(|(k, v)| k == "NODE_ENV" && !v.is_empty())
        .map_or_else(|| "production".into(), |(_, v)| v.to_string_lossy().into_owned());
    let mut names = Vec::new();
    let mut files = vec![".env".to_string(), ".env.local".into(), format!(".env.{node_env}")];
    files.dedup();
    for file in files {
        let path = root.join(&file);
        let Ok(text) = std::fs::read(&path) else {
            continue;
        };
        let text = zeroize::Zeroizing::new(text);
        for e in crate::audit::dotenv::parse(&text) {
            let value = zeroize::Zeroizing::new(e.value);
            if ctx.detector.classify_var(&e.name, &value).is_some() {
                names.push(format!(
                    "{} ({}:{}, which bun loads)",
                    e.name,
                    super::super::display_path(ctx.home(), &path),
                    e.line
                ));
            }
        }
    }
    names
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
            "; it would inherit {} secret{}: {}{}",
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
    }
}
