//! The package managers' rules for install scripts in one project: npm's `allowScripts` policy
//! and `ignore-scripts` in `.npmrc`; pnpm's `allowBuilds`, `onlyBuiltDependencies`,
//! `ignoredBuiltDependencies`, `neverBuiltDependencies` and `.pnpmfile.*`; Yarn Berry's
//! `enableScripts` and `dependenciesMeta.*.built`; Bun's `trustedDependencies`.

use super::{Manager, Pkg, State};
use crate::audit::{Context, Output};
use crate::tree::walk;
use crate::finding::Source;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// The package manager's decision rules for one project.
pub(super) struct Policy {
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
    pub(super) fn load(
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
                                crate::audit::display_path(ctx.home(), &walk::clean(&rc))
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
            if let Some(bytes) = crate::audit::read_optional(ctx, out, Source::Package, &ws) {
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
            if let Some(bytes) = crate::audit::read_optional(ctx, out, Source::Package, &rc) {
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

    pub(super) fn state(&self, root: &Path, p: &Pkg) -> State {
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

    proptest! {
        #[test]
        fn policy_keys_never_panic(key in "\\PC{0,40}", name in "[@a-z/]{1,10}", version in "[0-9.]{1,6}") {
            let p = pkg(&name, &version, Some("file:../x.tgz"));
            let _ = npm_verdict(Some(&[(key, true)]), Path::new("/p"), &p);
        }
    }
}
