//! Python: dependencies that would be built from source (`uv.lock` sdists without a wheel,
//! requirement lines naming VCS or archive URLs, `--no-binary`): a PEP 517 build runs their code.

use crate::audit::{Context, Output};
use crate::tree::walk;
use crate::finding::{Finding, Location, Severity, Source};
use std::path::{Path, PathBuf};

/// Python: dependencies that would be built from source (a PEP 517 build runs arbitrary code):
/// `uv.lock` packages with an sdist and no wheel, requirement lines naming VCS or archive URLs
/// or `--no-binary`.
pub(super) fn python(ctx: &Context, out: &mut Output, root: &Path) {
    let lock = root.join("uv.lock");
    if let Some(bytes) = crate::audit::read_optional(ctx, out, Source::Package, &lock) {
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
        let Some(bytes) = crate::audit::read_optional(ctx, out, Source::Package, &req) else {
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
