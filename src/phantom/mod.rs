//! `run --phantom NAME`: the command gets a stand-in key (same format as the real one, new for
//! every run) and a base URL pointing at this loopback proxy; the proxy swaps the stand-in for
//! the real key in the authentication header of requests it forwards to the configured
//! upstream, and streams responses back as they arrive (server-sent events included). The real
//! key never enters the command's process tree. Requests that do not carry the stand-in are
//! refused.
//!
//! The HTTP handling is deliberately small and hand-written over `httparse` and blocking
//! sockets: one request per connection (`Connection: close` upstream), request bodies by
//! `Content-Length` or relayed chunk by chunk, responses copied byte for byte. That is what API clients send, and it
//! keeps an async runtime out of a tool whose other paths start in a millisecond.

use crate::secret::SecretValue;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;

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
const AUTH_HEADERS: &[&str] = &["x-api-key", "authorization", "api-key"];

/// Starts the proxy on a loopback port; it runs until the process exits.
pub fn start(phantoms: Vec<Phantom>) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let phantoms = Arc::new(phantoms);
    let tls = Arc::new(tls_config());
    std::thread::Builder::new()
        .name("phantom-proxy".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let phantoms = phantoms.clone();
                let tls = tls.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &phantoms, &tls);
                });
            }
        })?;
    Ok(addr)
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
    write!(
        conn,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Handles the requests of one client connection, one at a time.
fn serve(conn: TcpStream, phantoms: &[Phantom], tls: &Arc<rustls::ClientConfig>) -> io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut client = conn;
    // One request per connection: the upstream is asked to close after its response.
    {
        // Read the request head.
        let mut head = Vec::new();
        loop {
            let n = reader.read_until(b'\n', &mut head)?;
            if n == 0 {
                return Ok(());
            }
            if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
                break;
            }
            if head.len() > 256 * 1024 {
                return respond(
                    &mut client,
                    "431 Request Header Fields Too Large",
                    "headers too large",
                );
            }
        }
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        if !matches!(req.parse(&head), Ok(httparse::Status::Complete(_))) {
            return respond(&mut client, "400 Bad Request", "malformed request");
        }
        let method = req.method.unwrap_or("GET").to_string();
        let path = req.path.unwrap_or("/").to_string();
        // Which phantom does this request authenticate with?
        let mut chosen: Option<&Phantom> = None;
        let mut content_length = 0usize;
        let mut chunked = false;
        for h in req.headers.iter() {
            let name = h.name.to_ascii_lowercase();
            if name == "content-length" {
                content_length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
            }
            if name == "transfer-encoding" && h.value.eq_ignore_ascii_case(b"chunked") {
                chunked = true;
            }
            let v = h.value.strip_prefix(b"Bearer ").unwrap_or(h.value);
            if let Some(p) = phantoms
                .iter()
                .find(|p| p.headers.contains(&name) && p.standin.expose() == v)
            {
                chosen = Some(p);
            }
        }
        let Some(phantom) = chosen else {
            return respond(
                &mut client,
                "403 Forbidden",
                "this proxy forwards only requests that carry the stand-in key it issued",
            );
        };
        // Rebuild the head for the upstream: the stand-in swapped for the real key, Host and
        // the path set for the upstream, one request per connection.
        let up = &phantom.upstream;
        let mut out = Vec::with_capacity(head.len() + 128);
        out.extend_from_slice(format!("{method} {}{path} HTTP/1.1\r\n", up.base_path).as_bytes());
        for h in req.headers.iter() {
            let name = h.name.to_ascii_lowercase();
            if matches!(
                name.as_str(),
                "host" | "connection" | "proxy-connection" | "keep-alive"
            ) {
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
        let host = if (up.scheme_tls && up.port == 443) || (!up.scheme_tls && up.port == 80) {
            up.host.clone()
        } else {
            format!("{}:{}", up.host, up.port)
        };
        out.extend_from_slice(format!("host: {host}\r\nconnection: close\r\n\r\n").as_bytes());
        let tcp =
            match TcpStream::connect((up.host.trim_matches(|c| c == '[' || c == ']'), up.port)) {
                Ok(t) => t,
                Err(e) => {
                    return respond(
                        &mut client,
                        "502 Bad Gateway",
                        &format!("cannot reach the upstream: {e}"),
                    );
                }
            };
        let _ = tcp.set_nodelay(true);
        let mut upstream: Box<dyn ReadWrite> = if up.scheme_tls {
            let name = rustls::pki_types::ServerName::try_from(up.host.clone())
                .map_err(|e| io::Error::other(e.to_string()))?;
            let conn =
                rustls::ClientConnection::new(tls.clone(), name).map_err(io::Error::other)?;
            Box::new(rustls::StreamOwned::new(conn, tcp))
        } else {
            Box::new(tcp)
        };
        upstream.write_all(&out)?;
        out.fill(0);
        // The body, streamed: chunk by chunk as the client sends it, or by Content-Length.
        if chunked {
            relay_chunked(&mut reader, &mut upstream)?;
        } else {
            io::copy(
                &mut (&mut reader).take(content_length as u64),
                &mut upstream,
            )?;
        }
        upstream.flush()?;
        // The response, byte for byte as it arrives (server-sent events stay live). With a
        // Content-Length, stop after that many body bytes (a server may keep the connection
        // open despite `connection: close`); otherwise the server's close ends it.
        let mut buf = [0u8; 16 * 1024];
        let mut seen: Vec<u8> = Vec::new();
        let mut remaining: Option<usize> = None;
        loop {
            let n = match upstream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e),
            };
            client.write_all(&buf[..n])?;
            client.flush()?;
            match remaining.as_mut() {
                Some(r) => *r = r.saturating_sub(n),
                None => {
                    seen.extend_from_slice(&buf[..n]);
                    let mut hs = [httparse::EMPTY_HEADER; 128];
                    let mut resp = httparse::Response::new(&mut hs);
                    if let Ok(httparse::Status::Complete(head_len)) = resp.parse(&seen) {
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
                }
            }
            if remaining == Some(0) {
                break;
            }
        }
        // The upstream closed after one response; so does this connection, which clients
        // handle as the end of a keep-alive connection.
        Ok(())
    }
}

/// Copies a chunked body (RFC 9112 §7.1) as it arrives, framing included, up to and with the
/// last chunk and its trailer section. Each chunk is forwarded as soon as it is complete, so a
/// streaming upload stays a stream.
fn relay_chunked(from: &mut impl BufRead, to: &mut impl Write) -> io::Result<()> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    loop {
        let mut line = Vec::new();
        from.read_until(b'\n', &mut line)?;
        if line.len() > 4096 || !line.ends_with(b"\n") {
            return Err(bad("malformed chunk size line"));
        }
        let text = std::str::from_utf8(&line).map_err(|_| bad("malformed chunk size line"))?;
        let hex = text.trim_end().split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(hex, 16).map_err(|_| bad("malformed chunk size"))?;
        to.write_all(&line)?;
        if size == 0 {
            // Trailer fields, then the empty line that ends the message.
            loop {
                let mut t = Vec::new();
                from.read_until(b'\n', &mut t)?;
                if t.is_empty() {
                    return Err(bad("body ended inside the trailer section"));
                }
                to.write_all(&t)?;
                if t == b"\r\n" || t == b"\n" {
                    return to.flush();
                }
            }
        }
        // The chunk's data and its CRLF.
        let copied = io::copy(&mut from.take(size + 2), to)?;
        if copied != size + 2 {
            return Err(bad("body ended inside a chunk"));
        }
        to.flush()?;
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_a_chunked_body_with_its_framing() {
        let body = b"4\r\nWiki\r\n7;ext=1\r\npedia i\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        let mut from = std::io::BufReader::new(&body[..]);
        let mut to = Vec::new();
        relay_chunked(&mut from, &mut to).unwrap();
        assert_eq!(&to[..], &body[..body.len() - 4]);
        let mut rest = String::new();
        from.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "NEXT");
        for broken in [&b"zz\r\n"[..], b"5\r\nabc", b"0\r\n"] {
            let mut from = std::io::BufReader::new(broken);
            assert!(
                relay_chunked(&mut from, &mut Vec::new()).is_err(),
                "{broken:?}"
            );
        }
    }

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
