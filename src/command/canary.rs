//! `keyfence canary new|list|rm`

use super::Exit;
use crate::canary::{self, Entry, KINDS};
use crate::cli::{CanaryCommand, Format, GlobalArgs};
use anyhow::{Context as _, Result, bail};

pub fn run(g: &GlobalArgs, cmd: &CanaryCommand) -> Result<Exit> {
    let path = canary::registry_path().context("finding the data directory")?;
    match cmd {
        CanaryCommand::New {
            kind,
            label,
            planted_in,
        } => {
            let planted_in = planted_in
                .iter()
                .map(std::path::absolute)
                .collect::<std::io::Result<Vec<_>>>()
                .context("--planted-in")?;
            let Some(value) = canary::generate(kind) else {
                let kinds: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
                bail!(
                    "unknown canary kind '{kind}'\nhint: kinds are {}",
                    kinds.join(", ")
                );
            };
            canary::register(&[Entry {
                fingerprint: value.fingerprint(),
                kind: kind.clone(),
                created: canary::now(),
                label: label.clone(),
                planted_in,
                env_only: false,
            }])
            .with_context(|| format!("writing {}", path.display()))?;
            // The one place keyfence prints a key: a canary is bait, meant to be planted.
            println!("{}", String::from_utf8_lossy(value.expose()));
            if !g.quiet {
                eprintln!(
                    "keyfence: registered canary {} ({kind}); `keyfence audit` reports it as a canary wherever it appears",
                    value.fingerprint()
                );
            }
        }
        CanaryCommand::List(_) => {
            let all = canary::load(&path).with_context(|| format!("reading {}", path.display()))?;
            if g.format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!("no canaries registered");
            } else {
                for e in &all {
                    println!(
                        "{}  {:<16} {}  {}",
                        e.fingerprint, e.kind, e.created, e.label
                    );
                }
            }
        }
        CanaryCommand::Rm { fingerprint } => {
            let mut all =
                canary::load(&path).with_context(|| format!("reading {}", path.display()))?;
            let before = all.len();
            all.retain(|e| e.fingerprint != *fingerprint);
            if all.len() == before {
                bail!(
                    "no canary with fingerprint {fingerprint}\nhint: `keyfence canary list` shows them"
                );
            }
            canary::save(&path, &all).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(Exit::Clean)
}
