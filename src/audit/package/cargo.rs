//! Cargo: crates with a build script or a proc macro, an inventory of code that runs at build
//! time by design.

use crate::audit::{Context, Output};
use crate::tree::walk;
use crate::finding::{Finding, Location, Severity, Source};
use std::path::{Path, PathBuf};

/// Cargo: crates in `Cargo.lock` whose sources (when in the local registry cache) have a build
/// script or are proc macros. Info: they run at build time by design.
pub(super) fn cargo(ctx: &Context, out: &mut Output, root: &Path) {
    let lock = root.join("Cargo.lock");
    let Some(bytes) = crate::audit::read_optional(ctx, out, Source::Package, &lock) else {
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
