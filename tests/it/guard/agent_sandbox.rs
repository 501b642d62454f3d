//! Issue #18: Codex CLI's own sandbox under guard (src/guard/agent_sandbox.rs). bubblewrap must
//! mount, which a process in the fence's Landlock domain may not, so keyfence lets the chain
//! from the agent to its sandbox's command run outside the fence, one link at a time, and
//! checks what bubblewrap is asked to mount. tests/it/guard/agent_fence_clis.rs runs the real Codex in
//! its sandbox; here a stand-in plays Codex so that each attack on the chain is exact: a copy of
//! Python named `codex` is the agent, runs itself as `codex-linux-sandbox` (the helper), which
//! runs Codex's bundled bubblewrap, whose command is the helper again (the inner helper), which
//! runs the attacker: the agent's own program under the helper's name once more, which tries
//! the agent's key (its environment), the agent's credential file (where the sandbox shows it),
//! and the inner helper's environ. The tree runs as nobody: root passes the kernel's checks.

use crate::common::*;
use std::path::{Path, PathBuf};

/// The agent: holds the key and reads its file, then starts its sandbox helper.
const AGENT: &str = r#"
import os, subprocess, sys
if os.environ.get("OPENAI_API_KEY"):
    print("agent holds the key")
open(os.environ["HOME"] + "/.codex/auth.json").read() and print("agent reads its file")
here = os.path.dirname(os.path.abspath(__file__))
r = subprocess.run(["codex-linux-sandbox", here + "/helper.py", sys.argv[1]],
                   executable=os.environ["AGENT_EXE"])
print("helper done", r.returncode)
"#;

/// The helper: runs bubblewrap, with the mounts of `mode`, and the inner helper in it.
const HELPER: &str = r#"
import os, sys
mode, home, loot = sys.argv[1], os.environ["HOME"], os.environ["LOOT"]
here = os.path.dirname(os.path.abspath(__file__))
mounts = ["--ro-bind", "/", "/", "--bind", loot, loot]
if mode == "elsewhere":
    # The agent's credential directory shown under another path, below one the fence grants.
    mounts += ["--tmpfs", "/mnt", "--ro-bind", home + "/.codex", "/mnt/x"]
os.execv(os.environ["BWRAP"], ["bwrap", *mounts, "--dev", "/dev", "--unshare-user",
         "--unshare-pid", "--proc", "/proc", "--die-with-parent", "--argv0",
         "codex-linux-sandbox", "--", os.environ["AGENT_EXE"], here + "/inner.py", mode])
"#;

/// The inner helper (pid 1 in the sandbox): runs the command, here the attacker, as the
/// agent's own program under the helper's name.
const INNER: &str = r#"
import os, subprocess, sys
print("inner ran")
here = os.path.dirname(os.path.abspath(__file__))
subprocess.run(["codex-linux-sandbox", here + "/attack.py", sys.argv[1]],
               executable=os.environ["AGENT_EXE"])
"#;

/// The attacker: what this process itself can read.
const ATTACK: &str = r#"
import os, sys
loot = os.environ["LOOT"]
def take(name, f):
    try:
        data = f()
    except Exception as e:
        data = "refused " + type(e).__name__
    open(f"{loot}/{name}", "w").write(data)
take("attack-env", lambda: os.environ.get("OPENAI_API_KEY", ""))
path = "/mnt/x/auth.json" if sys.argv[1] == "elsewhere" else os.environ["HOME"] + "/.codex/auth.json"
take("attack-file", lambda: open(path).read())
take("attack-helper", lambda: open(f"/proc/{os.getppid()}/environ").read())
print("attacker ran")
"#;

const BWRAP: &str = "target/test-tools/node_modules/@openai/codex-linux-x64/vendor/\
                     x86_64-unknown-linux-musl/codex-resources/bwrap";

struct Setup {
    fx: Fixture,
    /// The stored key, and the one in the agent's credential file.
    key: String,
    login: String,
    agent_exe: PathBuf,
    bwrap: PathBuf,
}

/// The stand-in's home and programs; None (after saying why) when a tool is missing.
fn setup() -> Option<Setup> {
    let bwrap = Path::new(env!("CARGO_MANIFEST_DIR")).join(BWRAP);
    if !bwrap.exists() {
        skip(&format!(
            "Codex's bundled bubblewrap not found at {} (scripts/test-all installs Codex)",
            bwrap.display()
        ));
        return None;
    }
    let Ok(python) = std::fs::canonicalize("/usr/bin/python3") else {
        skip("needs python3 (the stand-in Codex is a copy of it)");
        return None;
    };
    let mut fx = Fixture::outside_tmp();
    let key = fx.key("openai");
    fx.store_secret("OPENAI_API_KEY", &key);
    let login = fx.key("openai");
    fx.home_file(
        ".codex/auth.json",
        &format!("{{\"OPENAI_API_KEY\": \"{login}\"}}\n"),
    );
    // The agent's executable is named `codex`, as keyfence knows Codex by it.
    let agent_exe = fx.project.join("bin/codex");
    std::fs::create_dir_all(agent_exe.parent().unwrap()).unwrap();
    std::fs::copy(&python, &agent_exe).expect("copy python");
    for (name, text) in [
        ("agent.py", AGENT),
        ("helper.py", HELPER),
        ("inner.py", INNER),
        ("attack.py", ATTACK),
    ] {
        fx.project_file(name, text);
    }
    std::fs::create_dir_all(fx.project.join("loot")).unwrap();
    Some(Setup {
        fx,
        key,
        login,
        agent_exe,
        bwrap,
    })
}

/// `keyfence run --profile agent --inject OPENAI_API_KEY -- codex agent.py MODE` as nobody.
fn run(s: &Setup, mode: &str) -> Option<Run> {
    let loot = s.fx.project.join("loot");
    let agent_py = s.fx.project.join("agent.py");
    let args = [
        "run",
        "--profile",
        "agent",
        "--inject",
        "OPENAI_API_KEY",
        "--",
        s.agent_exe.to_str().unwrap(),
        agent_py.to_str().unwrap(),
        mode,
    ];
    let env = [
        ("PATH", "/usr/bin:/bin"),
        ("LOOT", loot.to_str().unwrap()),
        ("AGENT_EXE", s.agent_exe.to_str().unwrap()),
        ("BWRAP", s.bwrap.to_str().unwrap()),
    ];
    let r = s.fx.run_unprivileged(&args, &env);
    if r.is_none() {
        skip("setpriv missing or not running as root (needed to drop to nobody)");
    }
    r
}

fn loot(s: &Setup, name: &str) -> String {
    std::fs::read_to_string(s.fx.project.join("loot").join(name)).unwrap_or_default()
}

/// Codex's chain with its mounts in place: the agent keeps its key and file, the sandbox runs
/// (outside the fence, which it could not otherwise set up), and its command, even as the
/// agent's own program under the helper's name, is fenced: no key in its environment, the
/// credential file and the inner helper's environ refused.
#[test]
fn the_sandbox_runs_and_its_command_is_fenced() {
    let Some(s) = setup() else { return };
    let Some(r) = run(&s, "in-place") else { return };
    for said in [
        "agent holds the key",
        "agent reads its file",
        "inner ran",
        "attacker ran",
        "helper done 0",
    ] {
        assert!(
            r.stdout.contains(said),
            "missing {said:?}\nstdout: {}\nstderr: {}",
            r.stdout,
            r.stderr
        );
    }
    assert_eq!(loot(&s, "attack-env").trim(), "", "the command got the key");
    for taken in ["attack-file", "attack-helper"] {
        let got = loot(&s, taken);
        assert!(
            got.starts_with("refused PermissionError"),
            "{taken}: not refused (holds the key: {})",
            got.contains(&s.login) || got.contains(&s.key)
        );
    }
    r.assert_no_secret(&s.fx.planted);
}

/// The attack on the chain: bubblewrap asked to show the agent's credential directory under
/// another path, below directories the fence grants whole (Landlock checks the path a file is
/// reached by). With the check disabled the attacker read the file at /mnt/x; now bubblewrap
/// is contained like any other program, cannot mount, and keyfence says why.
#[test]
fn a_bind_that_shows_a_denied_file_elsewhere_is_refused() {
    let Some(s) = setup() else { return };
    let Some(r) = run(&s, "elsewhere") else {
        return;
    };
    assert!(
        r.stdout.contains("agent holds the key"),
        "stdout: {}\nstderr: {}",
        r.stdout,
        r.stderr
    );
    let got = loot(&s, "attack-file");
    assert!(
        !got.contains(&s.login),
        "the attacker read the agent's credential file through the bind"
    );
    assert!(!r.stdout.contains("inner ran"), "the sandbox was set up");
    assert!(
        r.stderr.contains("Codex's sandbox refused")
            && r.stderr.contains("/mnt/x")
            && r.stderr.contains("another path"),
        "keyfence did not say why: {}",
        r.stderr
    );
    r.assert_no_secret(&s.fx.planted);
}
