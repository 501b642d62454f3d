//! Issue #15: under the built-in `agent` profile, the real Claude Code CLI (2.1.332, against the
//! loopback stub of the Messages API) gets its credential — an injected key, a phantom
//! stand-in, or its own OAuth login — and the command its Bash tool runs gets none, through
//! any channel: its environment, an ancestor's environ, memory or ptrace, keyfence's store
//! (`secret get`, the vault, its key file, the canary registry, a copy of both), every
//! credential file (read, hard-linked or renamed into /tmp), signals and a forced core dump of
//! an ancestor, and same-uid services outside the tree (a helper on tmux's socket path, a real
//! tmux server, the D-Bus session bus).
//!
//! The attacked tree runs as nobody: root passes the kernel's ptrace checks (DESIGN.md §5).
//! Each protected run has a baseline without keyfence in which every channel leaks, so a
//! protected run that finds nothing proves something.

use crate::common::claude_stub;
use crate::common::claude_stub::{Stub, claude_bin};
use crate::common::probe;
use crate::common::probe::{ALL, EXPECTED, OUTSIDE, Seeded, Verdict, World};
use crate::common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Everything one attacked run needs; None (after saying why) when this machine cannot run it.
struct Attack {
    // Dropped in this order: the services stop before their fixture goes.
    world: World,
    seeded: Seeded,
    _shared: probe::SharedTmp,
}

impl Attack {
    /// A seeded home (keyfence's store also holding `store`), handed to nobody, the outside
    /// services started, and the probe written with `channels`.
    fn new(store: &[(&str, &str)], channels: &[&str]) -> Option<Attack> {
        if let Some(why) = World::missing() {
            skip(&why);
            return None;
        }
        let shared = probe::shared_tmp();
        let seeded = Seeded::new(store);
        // The config names the outside services' addresses, known before they start.
        let placeholder = World::addresses(&seeded);
        seeded.write_probe(channels, &placeholder);
        if !seeded.fx.hand_to_unprivileged() {
            skip("setpriv (util-linux) is needed to drop from root to nobody");
            return None;
        }
        let world = World::start(&seeded, placeholder);
        Some(Attack {
            world,
            seeded,
            _shared: shared,
        })
    }

    /// `claude -p` as nobody behind `wrap` (keyfence's arguments, or none), its Bash tool
    /// running the probe.
    fn run(&self, stub: &Stub, wrap: &[&str], env: &[(&str, &str)]) -> Run {
        let bin_dir = Path::new(BIN).parent().expect("bin dir");
        let mut c = Command::new(AS_UNPRIVILEGED[0]);
        c.args(&AS_UNPRIVILEGED[1..])
            .args(wrap)
            .arg(claude_bin())
            .args([
                "-p",
                "run the command",
                "--allowedTools",
                "Bash",
                "--output-format",
                "json",
            ]);
        c.current_dir(&self.seeded.fx.project)
            .env_clear()
            // keyfence on the tree's PATH, as it is for a user; besides it only directories
            // nobody can search (root's PATH has some it cannot).
            .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
            .env("HOME", &self.seeded.fx.home)
            .env("ANTHROPIC_BASE_URL", &stub.url)
            .env("DISABLE_AUTOUPDATER", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("DISABLE_TELEMETRY", "1");
        for (k, v) in self.world.env() {
            c.env(k, v);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().expect("run claude");
        let r = Run::from(out);
        r.assert_no_secret(&self.seeded.fx.planted);
        r
    }

    /// What the probe got. It finishes before the agent does unless an attack killed the
    /// agent, so a short wait is enough unless `killed`.
    fn verdict(&self, killed: bool) -> Verdict {
        let wait = if killed { 30 } else { 3 };
        Verdict::judge(&self.seeded, Duration::from_secs(wait))
    }
}

/// The tool result came back (so the agent survived every attack), and nothing the API
/// received, headers aside, holds a planted value.
fn assert_round_trip(stub: &Stub, a: &Attack, r: &Run) {
    let msgs = stub.messages();
    assert!(
        msgs.len() >= 2
            && msgs
                .iter()
                .any(|m| m.body.contains(claude_stub::TOOL_RESULT)),
        "the tool result never reached the API ({} requests): did the agent die? stdout: {}\nstderr: {}",
        msgs.len(),
        r.stdout,
        r.stderr
    );
    for m in stub.requests.lock().unwrap().iter() {
        for (what, v) in &a.seeded.secrets {
            assert!(!m.body.contains(v.as_str()), "{what} reached the API");
        }
    }
}

/// Every channel tried, none gave the tree anything, and `keyfence secret get` said why it
/// refused. (What the outside helper reads on its own is `agent_is_unreadable_from_outside`'s.)
fn assert_fenced(a: &Attack, v: &Verdict, expect_also: &[&str]) {
    let untried = v.untried(&[EXPECTED, expect_also].concat());
    let leaks: Vec<&String> = v
        .leaks
        .iter()
        .filter(|l| !l.starts_with("outside-"))
        .collect();
    assert!(
        untried.is_empty() && leaks.is_empty(),
        "not tried: {untried:?}\nthe agent's tree obtained credentials:\n  {}\nprobe report:\n{}",
        leaks
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        v.report
    );
    for name in &a.seeded.stored {
        // No leak above, so what secret get printed holds no secret.
        let said = std::fs::read_to_string(a.seeded.loot().join(format!("secret-get-{name}")))
            .unwrap_or_default();
        assert!(
            said.contains("out of reach") && said.contains("hint:"),
            "secret get {name} below the agent did not say why it failed: {said}"
        );
    }
}

/// Under keyfence, its supervisor is attacked too: it holds the key (phantom's proxy, inject's
/// store read).
const KEYFENCE_TOO: &[&str] = &[
    "environ-keyfence",
    "mem-keyfence",
    "ptrace-keyfence",
    "signal-0-keyfence",
    "core-keyfence",
    "helper-environ-keyfence",
];

#[test]
fn agent_profile_with_inject_keeps_every_credential_from_the_tree() {
    let key = fake("anthropic");
    let Some(mut a) = Attack::new(&[("ANTHROPIC_API_KEY", &key)], ALL) else {
        return;
    };
    a.seeded.fx.planted.push(key.clone());
    let stub = Stub::start(&a.seeded.probe_command());
    let r = a.run(
        &stub,
        &[
            BIN,
            "run",
            "--profile",
            "agent",
            "--inject",
            "ANTHROPIC_API_KEY",
            "--",
        ],
        &[],
    );
    let v = a.verdict(false);
    assert_fenced(&a, &v, KEYFENCE_TOO);
    assert_round_trip(&stub, &a, &r);
    for m in stub.messages() {
        assert!(
            m.header("x-api-key") == Some(key.as_str()),
            "claude did not send the injected key"
        );
    }
}

/// Phantom is the agent profile's default for a stored Anthropic key: nothing but
/// `--profile agent` on the command line, and the user's ANTHROPIC_BASE_URL (the stub) as the
/// proxy's upstream.
#[test]
fn agent_profile_with_phantom_keeps_every_credential_from_the_tree() {
    let key = fake("anthropic");
    let Some(mut a) = Attack::new(&[("ANTHROPIC_API_KEY", &key)], ALL) else {
        return;
    };
    a.seeded.fx.planted.push(key.clone());
    let stub = Stub::start(&a.seeded.probe_command());
    let r = a.run(&stub, &[BIN, "run", "--profile", "agent", "--"], &[]);
    let v = a.verdict(false);
    assert_fenced(&a, &v, KEYFENCE_TOO);
    assert_round_trip(&stub, &a, &r);
    // The proxy swapped the stand-in for the real key on the way out.
    for m in stub.messages() {
        assert!(
            m.header("x-api-key") == Some(key.as_str()),
            "upstream did not get the real key"
        );
    }
    // And Claude Code held only the stand-in, where its environment can be read at all (from
    // outside the tree, while it is not made non-dumpable).
    for e in std::fs::read_dir(a.seeded.loot()).expect("loot").flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .starts_with("outside-environ-claude")
        {
            continue;
        }
        let env = std::fs::read(e.path()).unwrap_or_default();
        if env.starts_with(b"refused") {
            continue;
        }
        assert!(
            memchr::memmem::find(&env, key.as_bytes()).is_none(),
            "Claude Code holds the real key: no phantom by default"
        );
        assert!(
            memchr::memmem::find(&env, b"ANTHROPIC_API_KEY=sk-ant-api03-").is_some(),
            "Claude Code holds no stand-in"
        );
    }
}

/// A user logged in with `claude auth login`: no API key anywhere, Claude Code reads its
/// OAuth token from ~/.claude/.credentials.json and sends it as a bearer token; the tree
/// cannot read that file (nor any other).
#[test]
fn agent_profile_keeps_a_claude_login_working_and_from_the_tree() {
    let Some(a) = Attack::new(&[], ALL) else {
        return;
    };
    let stub = Stub::start(&a.seeded.probe_command());
    let r = a.run(&stub, &[BIN, "run", "--profile", "agent", "--"], &[]);
    let v = a.verdict(false);
    assert_fenced(&a, &v, KEYFENCE_TOO);
    assert_round_trip(&stub, &a, &r);
    let bearer = format!("Bearer {}", a.seeded.oauth);
    for m in stub.messages() {
        assert!(
            m.header("authorization") == Some(bearer.as_str()),
            "claude did not log in with its OAuth token"
        );
        assert!(m.header("x-api-key").is_none());
    }
}

/// "With nothing else on the command line": `keyfence run -- claude` picks the agent profile
/// itself, for a user logged in with `claude auth login`.
#[test]
fn keyfence_run_claude_alone_fences_the_tree() {
    let Some(a) = Attack::new(&[], ALL) else {
        return;
    };
    let stub = Stub::start(&a.seeded.probe_command());
    let r = a.run(&stub, &[BIN, "run", "--"], &[]);
    let v = a.verdict(false);
    assert_fenced(&a, &v, KEYFENCE_TOO);
    assert_round_trip(&stub, &a, &r);
    let bearer = format!("Bearer {}", a.seeded.oauth);
    assert!(
        stub.messages()
            .iter()
            .all(|m| m.header("authorization") == Some(bearer.as_str())),
        "claude did not log in with its OAuth token"
    );
}

/// Persistence (DESIGN.md P10), which the fence does not stop: the tree rewrites
/// ~/.claude/settings.json so that the agent's next run talks to another server. What the
/// default phantom still promises is that the server gets only the stand-in. The baseline, the
/// same under `--inject`: it gets the real key.
#[test]
fn a_settings_takeover_gets_only_the_stand_in_under_phantom() {
    for (mode, inject) in [("inject", true), ("phantom", false)] {
        let key = fake("anthropic");
        let Some(mut a) = Attack::new(&[("ANTHROPIC_API_KEY", &key)], &["persist"]) else {
            return;
        };
        a.seeded.fx.planted.push(key.clone());
        let attacker = Stub::start("true");
        a.seeded.configure("attacker", &attacker.url);
        let mut wrap = vec![BIN, "run", "--profile", "agent"];
        if inject {
            wrap.extend(["--inject", "ANTHROPIC_API_KEY"]);
        }
        wrap.push("--");
        let stub = Stub::start(&a.seeded.probe_command());
        a.run(&stub, &wrap, &[]);
        let v = a.verdict(false);
        assert!(v.tried.contains("persist-claude-settings"), "{}", v.report);
        // The next session, started as the first one was.
        let next = Stub::start("true");
        a.run(&next, &wrap, &[]);
        let redirected = attacker.messages();
        assert!(
            !redirected.is_empty(),
            "{mode}: the takeover did not redirect the agent (the attack proves nothing)"
        );
        let got_key = redirected
            .iter()
            .any(|m| m.header("x-api-key") == Some(key.as_str()));
        assert_eq!(
            got_key, inject,
            "{mode}: the redirected agent sent the real key: {got_key}"
        );
    }
}

/// What every protected test above must stop, done without keyfence: each channel leaks here,
/// or the protected tests would prove nothing about it.
#[test]
fn baseline_without_keyfence_every_channel_leaks() {
    let key = fake("anthropic");
    let channels: Vec<&str> = ALL.iter().copied().filter(|c| *c != "core").collect();
    let Some(mut a) = Attack::new(&[("ANTHROPIC_API_KEY", &key)], &channels) else {
        return;
    };
    a.seeded.fx.planted.push(key.clone());
    a.seeded
        .secrets
        .push(("the exported key".into(), key.clone()));
    let stub = Stub::start(&a.seeded.probe_command());
    let r = a.run(&stub, &[], &[("ANTHROPIC_API_KEY", &key)]);
    let v = a.verdict(false);
    // Names only, never values: what a reader of the test log wants to see.
    eprintln!("leaks: {:#?}\nreport:\n{}", v.leaks, v.report);
    assert_round_trip_ignoring_leaks(&stub, &r);
    let expected: Vec<&str> = EXPECTED
        .iter()
        .chain(OUTSIDE)
        .copied()
        .filter(|c| !c.starts_with("core"))
        .collect();
    let untried = v.untried(&expected);
    assert!(untried.is_empty(), "not tried: {untried:?}\n{}", v.report);
    let mut quiet = Vec::new();
    for channel in expected {
        // `secret list` shows names and fingerprints only: it is tried, never a leak.
        if channel == "secret-list" {
            continue;
        }
        if v.leaks_through(channel).is_empty() {
            quiet.push(channel);
        }
    }
    assert!(
        quiet.is_empty(),
        "without keyfence these channels gave nothing, so their protected tests prove nothing: \
         {quiet:?}\nleaks: {:#?}\nreport:\n{}",
        v.leaks,
        v.report
    );
}

/// The crash channel, alone because it works: the tree raises the agent's core limit and
/// kills it with SIGSEGV; the agent dies, and its core file in the project holds the key.
#[test]
fn baseline_a_forced_core_dump_of_the_agent_leaks_its_key() {
    let key = fake("anthropic");
    let Some(mut a) = Attack::new(&[], &["core"]) else {
        return;
    };
    a.seeded.fx.planted.push(key.clone());
    a.seeded
        .secrets
        .push(("the exported key".into(), key.clone()));
    let stub = Stub::start(&a.seeded.probe_command());
    a.run(&stub, &[], &[("ANTHROPIC_API_KEY", &key)]);
    let v = a.verdict(true);
    eprintln!("leaks: {:#?}", v.leaks);
    assert!(
        v.tried.iter().any(|t| t.starts_with("core-claude")),
        "{}",
        v.report
    );
    assert!(
        v.leaks
            .iter()
            .any(|l| l.starts_with("core") && l.contains("the exported key")),
        "no core file with the key: {:#?}\n{}",
        v.leaks,
        v.report
    );
    // The agent died: no tool result ever reached the API.
    assert!(
        !stub
            .messages()
            .iter()
            .any(|m| m.body.contains(claude_stub::TOOL_RESULT))
    );
}

/// The baseline's tool result may carry nothing secret either (the probe prints none), but
/// the run must have completed.
fn assert_round_trip_ignoring_leaks(stub: &Stub, r: &Run) {
    let msgs = stub.messages();
    assert!(
        msgs.iter()
            .any(|m| m.body.contains(claude_stub::TOOL_RESULT)),
        "the tool result never reached the API: {}\n{}",
        r.stdout,
        r.stderr
    );
}
