//! The `proc` source: live processes' environments. Every planted exposure is reported at the right place with the right
//! severity, and no raw value is printed.

use super::audit_json;
use crate::common::*;

#[test]
fn proc_source_and_ps_see_a_real_child_process() {
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .env_clear()
        .env("ANTHROPIC_API_KEY", &key)
        .env("HARMLESS", "1")
        .spawn()
        .expect("sleep");
    let pid = u64::from(child.id());
    let f = audit_json(&fx, "proc", &[]);
    let held = f
        .iter()
        .find(|x| x["location"]["pid"] == pid)
        .unwrap_or_else(|| panic!("child {pid} not reported"));
    assert_eq!(held["rule"], "anthropic-api-key");
    assert_eq!(held["location"]["comm"], "sleep");
    assert_eq!(held["location"]["env"], "ANTHROPIC_API_KEY");
    assert_eq!(held["secret"]["fingerprint"], sha12(&key));

    let ps = fx.run(&["ps", "--format", "json"], &[]);
    assert_eq!(ps.code, 1, "{}", ps.stderr);
    let procs = ps.json()["processes"].as_array().cloned().unwrap();
    assert!(
        procs
            .iter()
            .any(|p| p["pid"] == pid && p["held"][0]["env"] == "ANTHROPIC_API_KEY")
    );
    let tree = fx.run(&["ps", "--color", "never"], &[]);
    assert!(
        tree.stdout.contains(&format!(
            "{pid} sleep  holds ANTHROPIC_API_KEY=sk-ant-api03-…"
        )),
        "{}",
        tree.stdout
    );
    // The count agrees with its verb: "1 process holds", "3 processes hold".
    let summary = tree.stdout.lines().last().unwrap_or_default();
    let n: usize = summary
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{summary}"));
    let said = if n == 1 {
        "1 process holds secrets; "
    } else {
        &format!("{n} processes hold secrets; ")
    };
    assert!(summary.starts_with(said), "{summary}");
    child.kill().ok();
    child.wait().ok();
}

/// Kernel threads have no environment: they are neither holders nor "could not be read"
/// (reading their `environ` fails, ESRCH for root). Told apart here by their parent, kthreadd
/// (pid 2), rather than by the flag keyfence reads.
#[test]
fn kernel_threads_are_not_counted_as_unreadable() {
    let fx = Fixture::new();
    let mut unreadable_kthreads = 0;
    let mut unreadable_others = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid: u32 = stat[stat.rfind(')').unwrap() + 2..]
            .split(' ')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if std::fs::read(entry.path().join("environ")).is_err() {
            if pid == 2 || ppid == 2 {
                unreadable_kthreads += 1;
            } else {
                unreadable_others += 1;
            }
        }
    }
    if unreadable_kthreads == 0 {
        // Not a missing tool: where no kernel thread shows, there is nothing to miscount.
        eprintln!("no kernel threads visible in /proc (a container?): nothing to check");
        return;
    }
    let ps = fx.run(&["ps", "--format", "json"], &[]);
    let unreadable = ps.json()["unreadable"].as_u64().unwrap() as usize;
    // Processes come and go between the two looks: a little slack, far below the kthreads.
    assert!(
        unreadable <= unreadable_others + 3,
        "ps counts {unreadable} unreadable; {unreadable_others} processes and \
         {unreadable_kthreads} kernel threads are"
    );
}
