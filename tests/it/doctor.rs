//! `keyfence doctor` against independent probes of the same kernel features.

use crate::common::*;
use std::process::Command;

fn doctor(as_nobody: bool) -> serde_json::Value {
    let mut c = if as_nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        c
    } else {
        Command::new(BIN)
    };
    let out = c
        .args(["doctor", "--format", "json"])
        .env_clear()
        .output()
        .expect("doctor");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn doctor_agrees_with_the_kernel() {
    let d = doctor(false);
    let k = &d["kernel"];
    // Landlock: ask the kernel the same question from Python (syscall 444 on x86_64 is
    // landlock_create_ruleset; flag 1 asks for the ABI version).
    if cfg!(target_arch = "x86_64") {
        let py = Command::new("python3")
            .args([
                "-c",
                "import ctypes; print(max(0, ctypes.CDLL(None).syscall(444, None, 0, 1)))",
            ])
            .output()
            .expect("python3");
        let abi: u64 = String::from_utf8_lossy(&py.stdout).trim().parse().unwrap();
        assert_eq!(k["landlock_abi"], abi);
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(k["seccomp_filter"], status.contains("Seccomp_filters:"));
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .map(|s| s.trim().parse::<u64>().unwrap());
    assert_eq!(k["ptrace_scope"].as_u64(), scope);
    let root = nix::unistd::geteuid().is_root();
    assert_eq!(k["root"], root);
    let modes = d["modes"].as_array().unwrap();
    assert!(modes.iter().any(|m| m["name"] == "guard"));
    assert_eq!(modes.iter().any(|m| m["name"] == "note"), root);

    // Namespaces, as an ordinary user, against util-linux's unshare.
    if root && std::path::Path::new("/usr/bin/setpriv").exists() {
        let d = doctor(true);
        let unshare = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "unshare",
                "-Urn",
                "true",
            ])
            .status()
            .is_ok_and(|s| s.success());
        assert_eq!(d["kernel"]["user_namespaces"], unshare);
        // deny_read needs the namespace, and Landlock to seal it.
        let deny = d["modes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| {
                m["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("deny-read"))
            })
            .expect("a deny-read mode");
        let landlock = d["kernel"]["landlock_abi"].as_u64().is_some_and(|v| v >= 1);
        assert_eq!(deny["works"], unshare && landlock, "{deny}");
        assert_eq!(d["kernel"]["root"], false);
    }
}

#[test]
fn doctor_human_output_names_every_mode() {
    let fx = Fixture::new();
    let r = fx.run(&["doctor"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for word in [
        "Landlock ABI",
        "seccomp",
        "ptrace",
        "namespaces",
        "guard",
        "sandbox",
        "deny-read",
        "phantom",
    ] {
        assert!(r.stdout.contains(word), "{word}: {}", r.stdout);
    }
}
