//! `keyfence doctor`

use super::Exit;
use crate::cli::{Format, GlobalArgs};
use crate::isolate;
use anyhow::{Result, bail};

pub fn run(g: &GlobalArgs) -> Result<Exit> {
    let caps = isolate::probe();
    let modes = caps.modes();
    match g.format {
        Format::Json => {
            let doc = serde_json::json!({ "version": 1, "kernel": caps, "modes": modes });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Format::Human => {
            let yes_no = |b: bool| if b { "yes" } else { "no" };
            println!(
                "Landlock ABI       {}{}",
                caps.landlock_abi,
                caps.landlock_note
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            );
            println!("seccomp filters    {}", yes_no(caps.seccomp_filter));
            println!(
                "ptrace             {}",
                match caps.ptrace_scope {
                    Some(s) => format!(
                        "Yama ptrace_scope {s}, children traceable: {}",
                        yes_no(caps.ptrace_children)
                    ),
                    None => "no Yama; classic ptrace rules".into(),
                }
            );
            println!("user namespaces    {}", yes_no(caps.user_namespaces));
            println!("network namespaces {}", yes_no(caps.network_namespaces));
            println!();
            for m in &modes {
                let mark = if m.name == "note" {
                    "!"
                } else if m.works {
                    "✓"
                } else {
                    "✗"
                };
                println!("{mark} {:<46} {}", m.name, m.why);
            }
        }
        Format::Sarif => bail!("`keyfence doctor` prints human or json"),
    }
    Ok(Exit::Clean)
}
