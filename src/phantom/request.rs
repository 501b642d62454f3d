//! Which requests the proxy forwards, and how their bodies are framed. The proxy adds the real
//! key to what it forwards, so it must agree with the upstream, byte for byte, on where a
//! request goes and where it ends:
//!
//! - the target must be in origin form (`/path?query`): an absolute-form target overrides
//!   `Host` at the upstream (RFC 9112 §3.2.2), so a front-end routing by it would take the key
//!   to another host; `CONNECT host:port` and `OPTIONS *` are not API calls; dot segments and a
//!   leading `//` would move the request out of the path the proxy set;
//! - the method must be one an API client sends: `TRACE` (and IIS's `TRACK`) echo the request,
//!   real key included, back to the client;
//! - the body's length must have one reading (RFC 9112 §6.3): one `Content-Length` of digits
//!   only, or `Transfer-Encoding: chunked` alone, never both, never another coding. The proxy
//!   then writes the framing headers itself, so the upstream reads exactly what the proxy read;
//!   any other reading lets a client hide a second request (unchecked, and able to capture the
//!   next request and its key at a front-end that reuses connections) inside the first.
//!
//! Everything refused gets a status and a message for the client; the caller closes the
//! connection, so nothing that follows a refused head is ever read as a request.

use std::io::{self, BufRead, Read, Write};

/// How the request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Body {
    Length(u64),
    Chunked,
}

/// Why a request is not forwarded: the status line and the message for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refusal {
    pub status: &'static str,
    pub message: &'static str,
}

const fn refuse(status: &'static str, message: &'static str) -> Refusal {
    Refusal { status, message }
}

const BAD: &str = "400 Bad Request";

/// The methods API clients use; anything else is refused.
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Headers the proxy never passes on: it sets `Host` and `Connection` itself, writes the
/// framing from [`Body`], and relays no upgrade or trailer (hop-by-hop, RFC 9110 §7.6.1).
pub(super) const NOT_FORWARDED: &[&str] = &[
    "host",
    "connection",
    "proxy-connection",
    "keep-alive",
    "content-length",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
];

/// Checks a parsed request head; the body's framing when it may be forwarded.
pub(super) fn check(req: &httparse::Request) -> Result<Body, Refusal> {
    let target = req.path.unwrap_or("");
    if !origin_form(target) {
        return Err(refuse(
            BAD,
            "only origin-form request targets (/path?query) are forwarded",
        ));
    }
    let method = req.method.unwrap_or("");
    if !METHODS.contains(&method) {
        return Err(refuse(
            "405 Method Not Allowed",
            "this method is not forwarded",
        ));
    }
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            if length.is_some() {
                return Err(refuse(BAD, "more than one content-length"));
            }
            length =
                Some(digits(h.value).ok_or(refuse(BAD, "content-length must be digits only"))?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if chunked {
                return Err(refuse(BAD, "more than one transfer-encoding"));
            }
            let value = h.value.trim_ascii();
            if !value.eq_ignore_ascii_case(b"chunked") {
                // Chunked must come last (RFC 9112 §6.3): without it the length is unknown.
                let last = value
                    .rsplit(|&b| b == b',')
                    .next()
                    .unwrap_or(b"")
                    .trim_ascii();
                return Err(if last.eq_ignore_ascii_case(b"chunked") {
                    refuse(
                        "501 Not Implemented",
                        "transfer codings other than chunked are not supported",
                    )
                } else {
                    refuse(BAD, "a transfer-encoding must end in chunked")
                });
            }
            chunked = true;
        }
    }
    match (length, chunked) {
        (Some(_), true) => Err(refuse(
            BAD,
            "a request may not carry both content-length and transfer-encoding",
        )),
        // An HTTP/1.0 recipient cannot know chunked (RFC 9112 §6.1).
        (None, true) if req.version != Some(1) => {
            Err(refuse(BAD, "transfer-encoding in an HTTP/1.0 request"))
        }
        (None, true) => Ok(Body::Chunked),
        (Some(n), false) => Ok(Body::Length(n)),
        (None, false) => Ok(Body::Length(0)),
    }
}

/// `1*DIGIT`, within u64 (RFC 9110 §8.6): no sign, no list, nothing around it but the
/// whitespace the header syntax allows.
fn digits(value: &[u8]) -> Option<u64> {
    let v = value.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// `absolute-path [ "?" query ]`, and a path that stays where it is put: no dot segment
/// (percent-encoded or not), no backslash, no leading `//`.
fn origin_form(target: &str) -> bool {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if !path.starts_with('/')
        || path.starts_with("//")
        || path.contains('\\')
        || target.contains('#')
    {
        return false;
    }
    !path.split('/').any(|segment| {
        let s = segment.to_ascii_lowercase().replace("%2e", ".");
        s == "." || s == ".."
    })
}

/// Relays a chunked body (RFC 9112 §7.1) as it arrives, each chunk as soon as it is complete,
/// so a streaming upload stays a stream. The framing is written anew, not copied: chunk sizes
/// in plain hex, extensions and trailer fields dropped, every line ended by CRLF, so that no
/// reading of it differs from the proxy's. A body that breaks the syntax is an error, and the
/// caller drops both connections.
pub(super) fn relay_chunked(from: &mut impl BufRead, to: &mut impl Write) -> io::Result<()> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    loop {
        let line = read_line(from, 4096).ok_or_else(|| bad("malformed chunk size line"))??;
        let size_part = line.split(|&b| b == b';').next().unwrap_or(b"");
        // Whitespace may precede a chunk extension (BWS), never the size itself.
        let hex = size_part.trim_ascii_end();
        if hex.is_empty() || hex.len() > 15 || !hex.iter().all(u8::is_ascii_hexdigit) {
            return Err(bad("malformed chunk size"));
        }
        let size = u64::from_str_radix(std::str::from_utf8(hex).unwrap_or("x"), 16)
            .map_err(|_| bad("malformed chunk size"))?;
        write!(to, "{size:x}\r\n")?;
        if size == 0 {
            // Trailer fields are read and dropped, up to the empty line that ends the message.
            let mut total = 0usize;
            loop {
                let t = read_line(from, 8192).ok_or_else(|| bad("malformed trailer section"))??;
                if t.is_empty() {
                    to.write_all(b"\r\n")?;
                    return to.flush();
                }
                total += t.len();
                if total > 64 * 1024 {
                    return Err(bad("trailer section too large"));
                }
            }
        }
        let copied = io::copy(&mut (&mut *from).take(size), to)?;
        if copied != size {
            return Err(bad("body ended inside a chunk"));
        }
        let mut crlf = [0u8; 2];
        from.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(bad("chunk data not followed by CRLF"));
        }
        to.write_all(b"\r\n")?;
        to.flush()?;
    }
}

/// One line ended by CRLF, without it; `None` when the line is longer than `max`, ends
/// without CRLF, or holds a bare CR or LF.
fn read_line(from: &mut impl BufRead, max: u64) -> Option<io::Result<Vec<u8>>> {
    let mut line = Vec::new();
    if let Err(e) = (&mut *from).take(max).read_until(b'\n', &mut line) {
        return Some(Err(e));
    }
    let body = line.strip_suffix(b"\r\n")?;
    if body.contains(&b'\r') || body.contains(&b'\n') {
        return None;
    }
    Some(Ok(body.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_raw(raw: &str) -> Result<Body, Refusal> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(raw.as_bytes()) {
            Ok(httparse::Status::Complete(_)) => check(&req),
            _ => Err(refuse(BAD, "unparsed")),
        }
    }

    #[test]
    fn framing_has_one_reading() {
        let ok = [
            ("", Body::Length(0)),
            ("content-length: 12\r\n", Body::Length(12)),
            ("Content-Length:  7 \r\n", Body::Length(7)),
            ("transfer-encoding: chunked\r\n", Body::Chunked),
            ("Transfer-Encoding: CHUNKED\r\n", Body::Chunked),
        ];
        for (h, want) in ok {
            let raw = format!("POST /v1/messages HTTP/1.1\r\n{h}\r\n");
            assert_eq!(check_raw(&raw), Ok(want), "{h:?}");
        }
        let refused = [
            "content-length: 1\r\ntransfer-encoding: chunked\r\n",
            "transfer-encoding: chunked\r\ncontent-length: 1\r\n",
            "content-length: 1\r\ncontent-length: 1\r\n",
            "content-length: 1, 1\r\n",
            "content-length: +1\r\n",
            "content-length: -1\r\n",
            "content-length: 0x10\r\n",
            "content-length: 1 1\r\n",
            "content-length: \r\n",
            "content-length: 99999999999999999999\r\n",
            "transfer-encoding: gzip, chunked\r\n",
            "transfer-encoding: chunked, gzip\r\n",
            "transfer-encoding: xchunked\r\n",
            "transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n",
            "transfer-encoding: \r\n",
            // Folded and malformed lines: httparse refuses them in requests.
            "x: a\r\n transfer-encoding: chunked\r\n",
            "transfer-encoding : chunked\r\n",
            "x: a\rtransfer-encoding: chunked\r\n",
            "x: a\0b\r\n",
        ];
        for h in refused {
            let raw = format!("POST /v1/messages HTTP/1.1\r\n{h}\r\n");
            assert!(check_raw(&raw).is_err(), "{h:?}");
        }
        assert!(check_raw("POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
        assert_eq!(
            check_raw("POST / HTTP/1.0\r\ncontent-length: 3\r\n\r\n"),
            Ok(Body::Length(3))
        );
    }

    #[test]
    fn targets_and_methods() {
        for t in [
            "/v1/messages",
            "/",
            "/v1/models?limit=5&after=x",
            "/a/b.c/..d/...",
            "/v1/x?next=../../y",
        ] {
            assert!(
                check_raw(&format!("GET {t} HTTP/1.1\r\n\r\n")).is_ok(),
                "{t}"
            );
        }
        for t in [
            "http://evil.example/x",
            "HTTP://evil.example/x",
            "evil.example:443",
            "*",
            "//evil.example/x",
            "v1/messages",
            "/v1/../x",
            "/v1/./x",
            "/..",
            "/v1/%2e%2E/x",
            "/v1/.%2e/x",
            "/v1\\..\\x",
            "/v1/messages#x",
        ] {
            assert!(
                check_raw(&format!("GET {t} HTTP/1.1\r\n\r\n")).is_err(),
                "{t}"
            );
        }
        for m in ["TRACE", "TRACK", "CONNECT", "PRI", "get", "FOO"] {
            let r = check_raw(&format!("{m} / HTTP/1.1\r\n\r\n"));
            assert_eq!(
                r.map_err(|r| r.status),
                Err("405 Method Not Allowed"),
                "{m}"
            );
        }
    }

    #[test]
    fn relays_a_chunked_body_in_canonical_framing() {
        let body = b"004\r\nWiki\r\n7 ;ext=\"1\"\r\npedia i\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        let mut from = std::io::BufReader::new(&body[..]);
        let mut to = Vec::new();
        relay_chunked(&mut from, &mut to).unwrap();
        assert_eq!(&to[..], b"4\r\nWiki\r\n7\r\npedia i\r\n0\r\n\r\n");
        let mut rest = String::new();
        from.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "NEXT");
        for broken in [
            &b"zz\r\n"[..],
            b"5\r\nabc",
            b"0\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5\r\nhello\r\n0\r\nx: 1\n\r\n",
            b"1000000000000000\r\n",
        ] {
            let mut from = std::io::BufReader::new(broken);
            assert!(
                relay_chunked(&mut from, &mut Vec::new()).is_err(),
                "{}",
                String::from_utf8_lossy(broken)
            );
        }
    }
}
