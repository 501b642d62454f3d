//! `run --phantom NAME`: the command gets a stand-in key (same format as the real one, new for
//! every run) and a base URL pointing at this loopback proxy; the proxy swaps the stand-in for
//! the real key in the authentication header of requests it forwards to the configured
//! upstream, and streams responses back as they arrive (server-sent events included). The real
//! key never enters the command's process tree. Requests that do not carry the stand-in are
//! refused.
//!
//! The HTTP handling is deliberately small and hand-written over `httparse` and blocking
//! sockets: one request per connection (`Connection: close` upstream), request bodies by
//! `Content-Length` or relayed chunk by chunk, responses copied byte for byte. That is what
//! API clients send, and it keeps an async runtime out of a tool whose other paths start in a
//! millisecond. Because its clients are the command keyfence does not trust, the proxy forwards
//! only requests with one reading of where they go and where they end ([`request`]), and holds
//! every client to time limits and a cap on connections ([`limits`]); and it takes the real
//! key out of responses, should the upstream echo it ([`scrub`]).

mod limits;
mod request;
mod scrub;

pub use limits::{BadTimeout, Limits};

use crate::secret::SecretValue;
use limits::{Paced, Slots, UPSTREAM_TIMEOUT};
use request::Body;
use scrub::Scrub;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Where a provider's API lives and how its key is sent.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub scheme_tls: bool,
    pub host: String,
    pub port: u16,
    /// Path prefix of the base URL, without a trailing slash.
    pub base_path: String,
}

impl Upstream {
    /// Parses `https://host[:port][/path]`, or `http://` for loopback hosts only (tests and
    /// local gateways): a plain-text upstream anywhere else would send the real key in clear.
    pub fn parse(url: &str) -> Result<Upstream, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("{url}: the upstream must be an https:// URL"));
        };
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse().map_err(|_| format!("{url}: bad port"))?,
            ),
            None => (authority.to_string(), if tls { 443 } else { 80 }),
        };
        if host.is_empty() {
            return Err(format!("{url}: no host"));
        }
        if !tls && !matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]") {
            return Err(format!(
                "{url}: plain http is allowed only to a loopback upstream; use https://"
            ));
        }
        let base_path = if path.is_empty() {
            String::new()
        } else {
            format!("/{}", path.trim_end_matches('/'))
        };
        Ok(Upstream {
            scheme_tls: tls,
            host,
            port,
            base_path,
        })
    }
}

/// One phantom: the variable, its real value and stand-in, and where requests go.
#[derive(Debug, Clone)]
pub struct Phantom {
    pub var: String,
    pub real: SecretValue,
    pub standin: SecretValue,
    /// Variable that tells the client where the API is (`ANTHROPIC_BASE_URL`).
    pub base_url_var: String,
    pub upstream: Upstream,
    /// Request headers that carry the key (lowercase); the stand-in is swapped only there.
    pub headers: Vec<String>,
}

/// The headers API clients send keys in, for phantoms not configured otherwise.
pub fn default_headers() -> Vec<String> {
    AUTH_HEADERS.iter().map(|h| h.to_string()).collect()
}

/// The provider defaults for a variable name: base-URL variable and upstream.
pub fn provider_defaults(var: &str) -> Option<(&'static str, &'static str)> {
    if var.starts_with("ANTHROPIC") {
        Some(("ANTHROPIC_BASE_URL", "https://api.anthropic.com"))
    } else if var.starts_with("OPENAI") {
        Some(("OPENAI_BASE_URL", "https://api.openai.com/v1"))
    } else if var.starts_with("GEMINI") {
        // Gemini CLI (and Google's genai SDK) read this; the key goes in `x-goog-api-key`.
        Some((
            "GOOGLE_GEMINI_BASE_URL",
            "https://generativelanguage.googleapis.com",
        ))
    } else {
        None
    }
}

/// A stand-in of the same shape as `real`: the same public prefix and fixed suffix markers
/// kept, every other character replaced at random from the same character class, so clients
/// that check the format accept it and it is unique to this run.
pub fn standin(real: &SecretValue) -> SecretValue {
    let bytes = real.expose();
    let keep_prefix = bytes
        .iter()
        .take(24)
        .rposition(|&b| b == b'-' || b == b'_')
        .map_or(0, |i| i + 1);
    // Anthropic keys end in a literal "AA"; OpenAI keys carry T3BlbkFJ in the middle.
    let marker = memchr::memmem::find(bytes, b"T3BlbkFJ");
    let keep_suffix = if bytes.ends_with(b"AA") && bytes.starts_with(b"sk-ant-") {
        2
    } else {
        0
    };
    let mut random = vec![0u8; bytes.len()];
    if getrandom::fill(&mut random).is_err() {
        // Without randomness the stand-in could collide with the real key's shape only;
        // fall back to a fixed but obviously fake body.
        random.fill(7);
    }
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let out: Vec<u8> = bytes
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            let fixed = i < keep_prefix
                || i >= bytes.len() - keep_suffix
                || marker.is_some_and(|m| i >= m && i < m + 8);
            if fixed || !b.is_ascii_alphanumeric() {
                b
            } else {
                ALNUM[random[i] as usize % ALNUM.len()]
            }
        })
        .collect();
    SecretValue::new(out)
}

/// Header names that carry an API key.
const AUTH_HEADERS: &[&str] = &["x-api-key", "authorization", "api-key", "x-goog-api-key"];

/// Starts the proxy on a loopback port; it runs until the process exits. Each connection gets
/// a thread, up to `limits.max_connections`; past that a client is told 503 and closed at once.
pub fn start(phantoms: Vec<Phantom>, limits: Limits) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let phantoms = Arc::new(phantoms);
    let tls = Arc::new(tls_config());
    let slots = Slots::new(limits.max_connections);
    std::thread::Builder::new()
        .name("phantom-proxy".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let conn = match conn {
                    Ok(c) => c,
                    Err(_) => {
                        // Out of descriptors or memory: let serving connections finish rather
                        // than spin on accept.
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                let Some(slot) = slots.take() else {
                    turn_away(conn);
                    continue;
                };
                let phantoms = phantoms.clone();
                let tls = tls.clone();
                // A thread that cannot be created drops the closure, and with it the
                // connection and its slot.
                let _ = std::thread::Builder::new()
                    .name("phantom-conn".into())
                    .spawn(move || {
                        let _slot = slot;
                        let _ = serve(conn, &phantoms, &tls, limits);
                    });
            }
        })?;
    Ok(addr)
}

/// A connection past the cap: 503 and closed, without reading from it, so the accepting
/// thread never waits on a client.
fn turn_away(mut conn: TcpStream) {
    let _ = conn.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = respond(
        &mut conn,
        "503 Service Unavailable",
        "too many connections to the phantom proxy",
    );
}

fn tls_config() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .unwrap_or_else(|_| {
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        })
}

fn respond(conn: &mut TcpStream, status: &str, msg: &str) -> io::Result<()> {
    let body = format!(
        "{{\"type\":\"error\",\"error\":{{\"type\":\"keyfence_phantom\",\"message\":\"{msg}\"}}}}"
    );
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(response.as_bytes())
}

/// Answers a request that will not be forwarded, and closes the connection. What the client
/// sent after the head is drained first, briefly: a socket closed with unread data sends a
/// reset, which can destroy the answer before the client reads it.
fn refuse(conn: &mut TcpStream, status: &str, msg: &str) -> io::Result<()> {
    respond(conn, status, msg)?;
    conn.shutdown(Shutdown::Write)?;
    let deadline = Instant::now() + LINGER;
    let mut sink = [0u8; 4096];
    let mut drained = 0usize;
    while drained < 256 * 1024 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        conn.set_read_timeout(Some(left))?;
        match conn.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
    Ok(())
}

/// How long a refused connection is drained before it is closed.
const LINGER: Duration = Duration::from_millis(500);
/// The longest request head read; API clients send a few KiB.
const MAX_HEAD: u64 = 64 * 1024;

/// Handles one client connection: one request, forwarded with the real key, its response
/// relayed, then closed.
fn serve(
    conn: TcpStream,
    phantoms: &[Phantom],
    tls: &Arc<rustls::ClientConfig>,
    limits: Limits,
) -> io::Result<()> {
    let mut client = conn;
    // A client that does not read its response holds the proxy no longer than this.
    client.set_write_timeout(Some(limits.timeout))?;
    let mut reader = BufReader::new(Paced::head(client.try_clone()?, limits.timeout));
    // The request head, whole within the time limit and the size limit.
    let mut head = Vec::new();
    loop {
        let room = MAX_HEAD - head.len() as u64;
        let n = match (&mut reader).take(room).read_until(b'\n', &mut head) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                return respond(
                    &mut client,
                    "408 Request Timeout",
                    "the request head did not arrive in time",
                );
            }
            Err(e) => return Err(e),
        };
        if n == 0 && head.len() as u64 >= MAX_HEAD {
            return refuse(
                &mut client,
                "431 Request Header Fields Too Large",
                "headers too large",
            );
        }
        if n == 0 {
            return Ok(());
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            break;
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(&head), Ok(httparse::Status::Complete(_))) {
        return refuse(&mut client, "400 Bad Request", "malformed request");
    }
    let body = match request::check(&req) {
        Ok(b) => b,
        Err(r) => return refuse(&mut client, r.status, r.message),
    };
    let method = req.method.unwrap_or("GET");
    let path = req.path.unwrap_or("/");
    // Which phantom does this request authenticate with?
    let mut chosen: Option<&Phantom> = None;
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let v = h.value.strip_prefix(b"Bearer ").unwrap_or(h.value);
        if let Some(p) = phantoms
            .iter()
            .find(|p| p.headers.contains(&name) && p.standin.expose() == v)
        {
            chosen = Some(p);
        }
    }
    let Some(phantom) = chosen else {
        return refuse(
            &mut client,
            "403 Forbidden",
            "this proxy forwards only requests that carry the stand-in key it issued",
        );
    };
    // Rebuild the head for the upstream: the stand-in swapped for the real key, Host, the
    // path and the framing set by the proxy, one request per connection.
    let up = &phantom.upstream;
    // Room for everything added, so that no reallocation leaves a copy of the key behind.
    let mut out = Zeroizing::new(Vec::with_capacity(
        head.len() + up.base_path.len() + up.host.len() + 256,
    ));
    out.extend_from_slice(format!("{method} {}{path} HTTP/1.1\r\n", up.base_path).as_bytes());
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        if request::NOT_FORWARDED.contains(&name.as_str()) {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        let carries_standin = phantom.headers.contains(&name)
            && h.value.strip_prefix(b"Bearer ").unwrap_or(h.value) == phantom.standin.expose();
        if carries_standin {
            if h.value.starts_with(b"Bearer ") {
                out.extend_from_slice(b"Bearer ");
            }
            out.extend_from_slice(phantom.real.expose());
        } else {
            out.extend_from_slice(h.value);
        }
        out.extend_from_slice(b"\r\n");
    }
    match body {
        // A request without a body gets no framing header, as the client sent it.
        Body::Length(0)
            if !req
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("content-length")) => {}
        Body::Length(n) => out.extend_from_slice(format!("content-length: {n}\r\n").as_bytes()),
        Body::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    let host = if (up.scheme_tls && up.port == 443) || (!up.scheme_tls && up.port == 80) {
        up.host.clone()
    } else {
        format!("{}:{}", up.host, up.port)
    };
    out.extend_from_slice(format!("host: {host}\r\nconnection: close\r\n\r\n").as_bytes());
    let tcp = match connect(up, limits.timeout.max(UPSTREAM_CONNECT_TIMEOUT)) {
        Ok(t) => t,
        Err(e) => {
            return refuse(
                &mut client,
                "502 Bad Gateway",
                &format!("cannot reach the upstream: {e}"),
            );
        }
    };
    let _ = tcp.set_nodelay(true);
    tcp.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
    tcp.set_write_timeout(Some(UPSTREAM_TIMEOUT))?;
    let mut upstream: Box<dyn ReadWrite> = if up.scheme_tls {
        let name = rustls::pki_types::ServerName::try_from(up.host.clone())
            .map_err(|e| io::Error::other(e.to_string()))?;
        let conn = rustls::ClientConnection::new(tls.clone(), name).map_err(io::Error::other)?;
        Box::new(rustls::StreamOwned::new(conn, tcp))
    } else {
        Box::new(tcp)
    };
    upstream.write_all(&out)?;
    drop(out);
    // The body, streamed: chunk by chunk as the client sends it, or by Content-Length; a
    // client that stops sending loses the request (the upstream sees it cut short).
    reader.get_mut().body();
    match body {
        Body::Chunked => request::relay_chunked(&mut reader, &mut upstream)?,
        Body::Length(n) => {
            let copied = io::copy(&mut (&mut reader).take(n), &mut upstream)?;
            if copied != n {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
    upstream.flush()?;
    // The response, byte for byte as it arrives (server-sent events stay live), but for the
    // real key, which never comes back ([`scrub`]). With a Content-Length, stop after that
    // many body bytes (a server may keep the connection open despite `connection: close`);
    // otherwise the server's close ends it.
    let mut buf = [0u8; 16 * 1024];
    let mut scrub = Scrub::new(phantom.real.expose(), phantom.standin.expose());
    let mut seen: Vec<u8> = Vec::new();
    let mut remaining: Option<usize> = None;
    loop {
        let n = match upstream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        };
        client.write_all(&scrub.feed(&buf[..n]))?;
        client.flush()?;
        match remaining.as_mut() {
            Some(r) => *r = r.saturating_sub(n),
            None => {
                seen.extend_from_slice(&buf[..n]);
                let mut hs = [httparse::EMPTY_HEADER; 128];
                let mut resp = httparse::Response::new(&mut hs);
                match resp.parse(&seen) {
                    Ok(httparse::Status::Complete(head_len)) => {
                        let len = resp
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                            .and_then(|h| {
                                std::str::from_utf8(h.value)
                                    .ok()?
                                    .trim()
                                    .parse::<usize>()
                                    .ok()
                            });
                        match len {
                            Some(l) => remaining = Some(l.saturating_sub(seen.len() - head_len)),
                            // Chunked or until close: read to the end.
                            None => remaining = Some(usize::MAX),
                        }
                        seen = Vec::new();
                    }
                    // An unparsable or endless head: relay until the upstream closes.
                    Err(_) => remaining = Some(usize::MAX),
                    Ok(httparse::Status::Partial) if seen.len() as u64 > MAX_HEAD => {
                        remaining = Some(usize::MAX)
                    }
                    Ok(httparse::Status::Partial) => {}
                }
            }
        }
        if remaining == Some(0) {
            break;
        }
    }
    client.write_all(&scrub.finish())?;
    // The upstream closed after one response; so does this connection, which clients
    // handle as the end of a keep-alive connection.
    Ok(())
}

/// How long connecting to the upstream may take at least.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A TCP connection to the upstream, trying each of its addresses within `timeout`.
fn connect(up: &Upstream, timeout: Duration) -> io::Result<TcpStream> {
    let host = up.host.trim_matches(|c| c == '[' || c == ']');
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    for addr in (host, up.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(t) => return Ok(t),
            Err(e) => last = e,
        }
    }
    Err(last)
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standin_keeps_the_shape() {
        let real = SecretValue::new(format!(
            "sk-ant-api03-{}AA",
            &"Zq8yR2vN0kT5mW7pL3xB9cF6hJ1dG4sA".repeat(3)[..93]
        ));
        let s = standin(&real);
        assert_eq!(s.len(), real.len());
        assert!(s.expose().starts_with(b"sk-ant-api03-") && s.expose().ends_with(b"AA"));
        assert_ne!(s, real);
        let m = crate::detect::detector()
            .classify_var("ANTHROPIC_API_KEY", s.expose())
            .unwrap();
        assert_eq!(m.rule.id, "anthropic-api-key");
    }

    #[test]
    fn upstream_urls() {
        assert!(Upstream::parse("http://api.example.com").is_err());
        let u = Upstream::parse("http://127.0.0.1:8080/base/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.base_path.as_str(), u.scheme_tls),
            ("127.0.0.1", 8080, "/base", false)
        );
        assert_eq!(
            Upstream::parse("https://api.anthropic.com").unwrap().port,
            443
        );
    }
}
