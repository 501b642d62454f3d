//! Renderers: one `Report` model, three formats (human, JSON v1, SARIF 2.1.0), plus the process
//! tree of `keyfence ps`. Renderers write to the writer they are given; they never decide where
//! output goes, and only data goes to it.

pub mod human;
pub mod json;
pub mod sarif;
pub mod tree;

use crate::finding::{Finding, Location};
use std::path::Path;

/// `~/x` for paths under `home`.
pub fn short_path(home: Option<&Path>, path: &Path) -> String {
    if let Some(home) = home.filter(|h| !h.as_os_str().is_empty())
        && let Ok(rest) = path.strip_prefix(home)
    {
        return format!("~/{}", rest.display());
    }
    path.display().to_string()
}

/// A one-line description of where a finding is.
pub fn location_text(home: Option<&Path>, f: &Finding) -> String {
    match &f.location {
        Location::File { path, line, .. } => format!("{}:{line}", short_path(home, path)),
        Location::Env { env } => format!("${env}"),
        Location::Process { pid, comm, env } => match env {
            Some(v) => format!("{comm} (pid {pid}) ${v}"),
            None => format!("{comm} (pid {pid})"),
        },
    }
}
