//! `run --trace[=FILE]`: what a command's tree did that matters for keys — every exec, opens of
//! sensitive paths, network connects, DNS queries, and any send of a secret, stand-in or
//! canary value — as JSON lines, and a summary grouped by package (npm and pnpm put
//! `npm_package_name` and `npm_lifecycle_event` in a lifecycle script's environment) or by
//! top-level command.
//!
//! The events come from the guard's tracer (`crate::guard::tracer`), whose seccomp filter then
//! also stops `open`, `openat`, `connect`, `sendto`, `sendmsg` (and the rare `chdir`/`fchdir`)
//! — never every `read` or `write`, so the cost stays small. Plain `write`/`writev`/`sendfile`
//! are inspected only on a descriptor the process connected to an IP address, and `read` only
//! on the piped standard input of a network tool: the tracer makes that one process add a
//! second filter for that one descriptor. Values are also looked for in each program's
//! arguments and, at the end, in the regular files the tree wrote. TLS payloads are opaque;
//! connects and DNS queries are always seen.
//!
//! No watched value is ever written out in clear: every string of every event (paths, program
//! names, addresses, group labels — all chosen by the tree) is masked at the one place events
//! go in (`Recorder::record`), before the JSON line and the summary are made from it.

pub mod file;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub(crate) mod notify;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub(crate) mod observe;

use crate::secret::SecretValue;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One JSON line of the trace file (schema in docs/run.md, "--trace").
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    Exec {
        pid: i32,
        ppid: i32,
        program: String,
        argv: Vec<String>,
        cwd: String,
        group: String,
    },
    Open {
        pid: i32,
        path: String,
        write: bool,
        why: &'static str,
        /// The sandbox refused it (present only then).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        blocked: bool,
        group: String,
    },
    Connect {
        pid: i32,
        address: String,
        /// The kernel refused it by policy: EACCES or EPERM (Landlock's network rules under
        /// `--net tcp:...`, a seccomp filter). Present only then.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        blocked: bool,
        group: String,
    },
    Dns {
        pid: i32,
        name: String,
        group: String,
    },
    /// A protected value seen in data leaving through a socket (`sendto`, `sendmsg`, or
    /// `write`/`writev`/`sendfile` on a connected inet socket), or read from a pipe by a
    /// network tool (`destination`: "the standard input of curl").
    SecretSent {
        pid: i32,
        /// "the value of NAME" or "the canary for NAME" (NAME may say "(stand-in)").
        what: String,
        destination: String,
        group: String,
    },
    /// A protected value in the argument vector of a program the tree started: anyone on the
    /// machine can read it from /proc/PID/cmdline, and the program may send it anywhere.
    SecretInArgv {
        pid: i32,
        what: String,
        program: String,
        group: String,
    },
    /// A protected value in a regular file the tree opened for writing, as the file stood when
    /// the command ended (`pid`/`group`: the first process that opened it for writing).
    SecretWritten {
        pid: i32,
        what: String,
        path: String,
        group: String,
    },
}

impl Event {
    /// Every string the event carries. The patterns name every field (no `..`), so a field
    /// added later fails to compile until it is listed here, and so masked.
    fn for_each_text(&mut self, mut f: impl FnMut(&mut String)) {
        match self {
            Event::Exec {
                pid: _,
                ppid: _,
                program,
                argv,
                cwd,
                group,
            } => {
                argv.iter_mut().for_each(&mut f);
                [program, cwd, group].into_iter().for_each(f);
            }
            Event::Open {
                pid: _,
                path,
                write: _,
                why: _,
                blocked: _,
                group,
            } => [path, group].into_iter().for_each(f),
            Event::Connect {
                pid: _,
                address,
                blocked: _,
                group,
            } => [address, group].into_iter().for_each(f),
            Event::Dns {
                pid: _,
                name,
                group,
            } => [name, group].into_iter().for_each(f),
            Event::SecretSent {
                pid: _,
                what,
                destination,
                group,
            } => [what, destination, group].into_iter().for_each(f),
            Event::SecretInArgv {
                pid: _,
                what,
                program,
                group,
            } => [what, program, group].into_iter().for_each(f),
            Event::SecretWritten {
                pid: _,
                what,
                path,
                group,
            } => [what, path, group].into_iter().for_each(f),
        }
    }
}

/// How an event names a watched value.
pub fn what(label: &str, canary: bool) -> String {
    if canary {
        format!("the canary for {label}")
    } else {
        format!("the value of {label}")
    }
}

/// A value to look for in outgoing data.
pub struct Watched {
    pub label: String,
    pub canary: bool,
    pub value: SecretValue,
}

/// The credential stores, and the rules for `.env` files and other processes' `/proc` entries,
/// that make an open worth recording.
#[derive(Clone)]
pub struct SensitivePaths(std::sync::Arc<Vec<PathBuf>>);

impl SensitivePaths {
    pub const CREDENTIAL_STORE: &'static str = "credential store";

    pub fn why(&self, path: &Path, own_pid: i32) -> Option<&'static str> {
        if self.0.iter().any(|s| path.starts_with(s)) {
            return Some(Self::CREDENTIAL_STORE);
        }
        let name = path.file_name()?.to_string_lossy();
        if name == ".env" || name.starts_with(".env.") {
            return Some(".env file");
        }
        let mut parts = path.components().map(|c| c.as_os_str().to_string_lossy());
        if parts.next().as_deref() == Some("/")
            && parts.next().as_deref() == Some("proc")
            && let Some(pid) = parts.next()
            && (name == "environ" || name == "mem")
            && parts.next().is_some()
            && parts.next().is_none()
            && pid != "self"
            && pid != own_pid.to_string()
        {
            return Some("another process's environment or memory");
        }
        None
    }
}

pub struct Recorder {
    out: Option<Out>,
    watched: Vec<Watched>,
    sensitive: SensitivePaths,
    /// Per group, what it did, in first-seen order, without repeats.
    summary: BTreeMap<String, Vec<String>>,
    pub alerts: Vec<String>,
    /// The name the command's own events are grouped under (what the user typed).
    pub top: String,
    /// Under the sandbox: where it lets the tree write.
    pub sandbox_writable: Option<Vec<PathBuf>>,
}

impl Recorder {
    /// `file`: where the JSON lines go, opened by `file::open` (before keyfence restricted
    /// itself).
    pub fn new(
        file: Option<file::TraceFile>,
        watched: Vec<Watched>,
        sensitive: Vec<PathBuf>,
    ) -> Recorder {
        Recorder {
            out: file.map(Out::new),
            watched,
            sensitive: SensitivePaths(std::sync::Arc::new(sensitive)),
            summary: BTreeMap::new(),
            alerts: Vec::new(),
            top: String::new(),
            sandbox_writable: None,
        }
    }

    /// Replaces watched values in a string (argv, paths, DNS names, socket addresses) with
    /// `<keyfence:LABEL>`, also when a DNS name has split the value across labels.
    pub fn mask(&self, s: &str) -> String {
        let mut s = s.to_string();
        self.mask_in_place(&mut s);
        s
    }

    /// `mask`, without a copy of a string that holds no value (most of them): every string of
    /// every event goes through it.
    fn mask_in_place(&self, text: &mut String) {
        for w in &self.watched {
            let v = w.value.expose();
            if v.is_empty() {
                continue;
            }
            if memchr::memmem::find(text.as_bytes(), v).is_some() {
                *text = replace_bytes(text, v, &format!("<keyfence:{}>", w.label));
            } else if v.len() >= 8 && contains_skipping_dots(text.as_bytes(), v) {
                // Split by dots (DNS labels hold at most 63 bytes): say so, keep no piece.
                *text = format!("<keyfence:{} split across labels>", w.label);
                return;
            }
        }
    }

    /// The values looked for.
    pub fn watched(&self) -> &[Watched] {
        &self.watched
    }

    /// Why a path is sensitive, if it is.
    pub fn sensitive(&self, path: &Path, own_pid: i32) -> Option<&'static str> {
        self.sensitive.why(path, own_pid)
    }

    /// Whether the sandbox refuses an open of `path` that `sensitive` called `why`. Landlock's
    /// answer follows from the rules keyfence gave it: nothing at all beneath a credential
    /// store, and writes only beneath the writable directories. (The call's own result is not
    /// seen: opens go through the listener, which lets them run on unwatched.)
    pub fn blocked_open(&self, path: &Path, write: bool, why: &str) -> bool {
        let Some(writable) = &self.sandbox_writable else {
            return false;
        };
        // A read of a file that is not there fails with ENOENT, sandbox or not.
        (why == SensitivePaths::CREDENTIAL_STORE && (write || path.symlink_metadata().is_ok()))
            || (write && !writable.iter().any(|w| path.starts_with(w)))
    }

    /// The test of `sensitive`, for the thread that hears opens (`notify.rs`).
    pub fn sensitive_paths(&self) -> SensitivePaths {
        self.sensitive.clone()
    }

    /// Watched values a DNS query name carries, whole or split across labels (the dots taken
    /// out), in any case: resolvers lower the case of names or randomise it (DNS 0x20), and
    /// the name still carries the value. (label, canary).
    pub fn find_watched_in_name(&self, name: &str) -> Vec<(&str, bool)> {
        let joined = name.replace('.', "").to_ascii_lowercase();
        self.watched
            .iter()
            .filter(|w| {
                let v = w.value.expose();
                v.len() >= 8
                    && memchr::memmem::find(joined.as_bytes(), &v.to_ascii_lowercase()).is_some()
            })
            .map(|w| (w.label.as_str(), w.canary))
            .collect()
    }

    /// Watched values in `data`: (label, canary).
    pub fn find_watched(&self, data: &[u8]) -> Vec<(&str, bool)> {
        self.watched
            .iter()
            .filter(|w| {
                !w.value.expose().is_empty()
                    && memchr::memmem::find(data, w.value.expose()).is_some()
            })
            .map(|w| (w.label.as_str(), w.canary))
            .collect()
    }

    pub fn record(&mut self, mut e: Event) {
        e.for_each_text(|t| self.mask_in_place(t));
        let (group, line) = match &e {
            Event::Exec { group, argv, .. } => (
                group,
                format!(
                    "ran {}",
                    argv.join(" ").chars().take(80).collect::<String>()
                ),
            ),
            Event::Open {
                group,
                path,
                write,
                blocked: false,
                ..
            } => (
                group,
                format!("{} {}", if *write { "wrote" } else { "read" }, tilde(path)),
            ),
            Event::Open {
                group,
                path,
                write,
                blocked: true,
                ..
            } => (
                group,
                format!(
                    "tried to {} {} (blocked)",
                    if *write { "write" } else { "read" },
                    tilde(path)
                ),
            ),
            Event::Connect {
                group,
                address,
                blocked,
                ..
            } => (
                group,
                if *blocked {
                    format!("tried to connect to {address} (blocked)")
                } else {
                    format!("connected to {address}")
                },
            ),
            Event::Dns { group, name, .. } => (group, format!("looked up {name}")),
            Event::SecretSent {
                group,
                what,
                destination,
                ..
            } => (group, format!("sent {what} to {destination}")),
            Event::SecretInArgv {
                group,
                what,
                program,
                ..
            } => (
                group,
                format!("passed {what} on the command line of {program}"),
            ),
            Event::SecretWritten {
                group, what, path, ..
            } => (group, format!("wrote {what} to {}", tilde(path))),
        };
        // A canary is never given to anything that should use it: wherever it turns up, the
        // tree has harvested it.
        if let Event::SecretSent { pid, what, .. }
        | Event::SecretInArgv { pid, what, .. }
        | Event::SecretWritten { pid, what, .. } = &e
            && what.starts_with("the canary")
        {
            self.alerts.push(format!(
                "{group} (pid {pid}) {line}: something in this tree harvests keys"
            ));
        }
        let lines = self.summary.entry(group.clone()).or_default();
        // Execs are many and dull: the summary keeps what touched keys, files and network.
        if !matches!(e, Event::Exec { .. }) && !lines.contains(&line) {
            lines.push(line);
        }
        if let Some(out) = &mut self.out
            && let Ok(json) = serde_json::to_string(&e)
        {
            out.line(&json);
        }
    }

    /// The summary: one paragraph per group that did something worth telling.
    pub fn finish(mut self) -> Vec<String> {
        let mut lines = Vec::new();
        match self.out.take().map(Out::finish) {
            Some(Err(e)) => lines.push(format!("error: the trace file is incomplete: {e}")),
            Some(Ok(false)) => lines.push(
                "ALERT: something other than keyfence wrote to, moved or replaced the trace \
                 file during the run (the command runs as the same user, and may write where \
                 it was allowed to): its events cannot be trusted; keep it where the command \
                 may not write, such as the home under --sandbox"
                    .to_string(),
            ),
            Some(Ok(true)) | None => {}
        }
        lines.extend(self.alerts.iter().map(|a| format!("ALERT: {a}")));
        for (group, did) in &self.summary {
            if !did.is_empty() {
                lines.push(format!("{group}: {}", did.join(", ")));
            }
        }
        lines
    }
}

/// The trace file, and a digest of what keyfence wrote to it: the command runs as the same
/// user, so wherever it may write it can also rewrite the record of what it did (or delete it
/// and leave another in its place), and the end of the run reads the file back to tell.
struct Out {
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    digest: sha2::Sha256,
    len: u64,
    /// The first write that failed (a full disk): the file is missing events from there on.
    failed: Option<std::io::Error>,
}

impl Out {
    fn new(file: file::TraceFile) -> Out {
        use sha2::Digest;
        Out {
            file: std::io::BufWriter::new(file.file),
            path: file.path,
            digest: sha2::Sha256::new(),
            len: 0,
            failed: None,
        }
    }

    fn line(&mut self, json: &str) {
        use sha2::Digest;
        if self.failed.is_some() {
            return;
        }
        for part in [json.as_bytes(), b"\n"] {
            if let Err(e) = self.file.write_all(part) {
                self.failed = Some(e);
                return;
            }
            self.digest.update(part);
            self.len += part.len() as u64;
        }
    }

    /// Flushes; whether the file is still at its path and holds exactly what keyfence wrote.
    fn finish(self) -> std::io::Result<bool> {
        use sha2::Digest;
        use std::io::{Read, Seek};
        use std::os::unix::fs::MetadataExt;
        if let Some(e) = self.failed {
            return Err(e);
        }
        let mut f = self.file.into_inner().map_err(|e| e.into_error())?;
        let (ours, there) = (f.metadata()?, std::fs::symlink_metadata(&self.path).ok());
        if there.is_none_or(|t| (t.dev(), t.ino()) != (ours.dev(), ours.ino())) {
            return Ok(false);
        }
        f.rewind()?;
        let mut back = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut len = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            back.update(&buf[..n]);
            len += n as u64;
        }
        Ok(len == self.len && back.finalize() == self.digest.finalize())
    }
}

/// `text` with every `value` replaced by `with`; by bytes, so that a value that is not UTF-8
/// by itself is still found.
fn replace_bytes(text: &str, value: &[u8], with: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some(i) = memchr::memmem::find(rest, value) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(with.as_bytes());
        rest = &rest[i + value.len()..];
    }
    out.extend_from_slice(rest);
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `hay` holds `needle` once its dots are taken out, without making that copy.
fn contains_skipping_dots(hay: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return true;
    };
    // Most strings are shorter than a value: no scan at all.
    if hay.iter().filter(|&&b| b != b'.').count() < needle.len() {
        return false;
    }
    (0..hay.len()).any(|start| {
        hay[start] == first && {
            let mut undotted = hay[start..].iter().filter(|&&b| b != b'.');
            needle.iter().all(|n| undotted.next() == Some(n))
        }
    })
}

fn tilde(path: &str) -> String {
    match std::env::var("HOME") {
        Ok(h) if !h.is_empty() && path.starts_with(&format!("{h}/")) => {
            format!("~{}", &path[h.len()..])
        }
        _ => path.to_string(),
    }
}

/// A socket address as the kernel gives it to `connect`/`sendto`: "ip:port", "[ip6]:port",
/// "unix:PATH"; with the port, for DNS detection.
pub fn sockaddr(raw: &[u8]) -> Option<(String, Option<u16>)> {
    let family = u16::from_ne_bytes(raw.get(..2)?.try_into().ok()?);
    match family as i32 {
        nix::libc::AF_INET => {
            let port = u16::from_be_bytes(raw.get(2..4)?.try_into().ok()?);
            let ip = std::net::Ipv4Addr::from(<[u8; 4]>::try_from(raw.get(4..8)?).ok()?);
            Some((format!("{ip}:{port}"), Some(port)))
        }
        nix::libc::AF_INET6 => {
            let port = u16::from_be_bytes(raw.get(2..4)?.try_into().ok()?);
            let ip = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(raw.get(8..24)?).ok()?);
            Some((format!("[{ip}]:{port}"), Some(port)))
        }
        nix::libc::AF_UNIX => {
            let path = raw.get(2..)?;
            let path = match path.first() {
                // Abstract socket: a leading NUL.
                Some(0) => format!(
                    "@{}",
                    String::from_utf8_lossy(&path[1..]).trim_end_matches('\0')
                ),
                _ => String::from_utf8_lossy(path.split(|&b| b == 0).next()?).into_owned(),
            };
            Some((format!("unix:{path}"), None))
        }
        _ => None,
    }
}

/// The query name of a DNS query datagram, if it is one.
pub fn dns_query_name(p: &[u8]) -> Option<String> {
    // Header: id, flags (QR bit clear = query), qdcount >= 1.
    if p.len() < 17 || p[2] & 0x80 != 0 || u16::from_be_bytes([p[4], p[5]]) == 0 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *p.get(i)? as usize;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(p.get(i + 1..i + 1 + len)?).into_owned());
        i += 1 + len;
    }
    (!labels.is_empty()).then(|| labels.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_dns_query() {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in ["exfil", "example", "com"] {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(dns_query_name(&q).as_deref(), Some("exfil.example.com"));
        q[2] |= 0x80; // a response
        assert_eq!(dns_query_name(&q), None);
        assert_eq!(dns_query_name(b"GET / HTTP/1.1\r\n\r\n"), None);
    }

    #[test]
    fn masks_values_whole_or_split_across_dns_labels() {
        let value = "sk-test-0123456789abcdefghij";
        let rec = Recorder::new(
            None,
            vec![Watched {
                label: "OPENAI_API_KEY".into(),
                canary: true,
                value: SecretValue::new(value),
            }],
            Vec::new(),
        );
        assert_eq!(
            rec.mask(&format!("--key={value}")),
            "--key=<keyfence:OPENAI_API_KEY>"
        );
        let split = format!("{}.{}.exfil.example", &value[..10], &value[10..]);
        let masked = rec.mask(&split);
        assert!(
            !masked.contains(&value[..10]) && masked.contains("split"),
            "{masked}"
        );
        assert_eq!(rec.mask("registry.npmjs.org"), "registry.npmjs.org");
    }

    /// #14: a value in a path, a program name or a group label reached the trace in clear.
    #[test]
    fn record_masks_every_string_of_every_event() {
        let value = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let mut rec = Recorder::new(
            Some(file::open(&path).unwrap()),
            vec![Watched {
                label: "GITHUB_TOKEN".into(),
                canary: true,
                value: SecretValue::new(value),
            }],
            Vec::new(),
        );
        let t = |s: &str| s.replace('V', value);
        let group = t("V postinstall");
        let events = [
            Event::Exec {
                pid: 1,
                ppid: 0,
                program: t("/d/V"),
                argv: vec![t("./V"), t("--k=V")],
                cwd: t("/dV"),
                group: group.clone(),
            },
            Event::Open {
                pid: 1,
                path: t("/dV/.env"),
                write: true,
                why: ".env file",
                blocked: false,
                group: group.clone(),
            },
            Event::Connect {
                pid: 1,
                address: t("unix:/run/V"),
                blocked: true,
                group: group.clone(),
            },
            Event::Dns {
                pid: 1,
                name: t("V.example"),
                group: group.clone(),
            },
            Event::SecretSent {
                pid: 1,
                what: what("GITHUB_TOKEN", true),
                destination: t("unix:/run/V"),
                group: group.clone(),
            },
            Event::SecretInArgv {
                pid: 1,
                what: what("GITHUB_TOKEN", true),
                program: t("V"),
                group: group.clone(),
            },
            Event::SecretWritten {
                pid: 1,
                what: what("GITHUB_TOKEN", true),
                path: t("/dV/.env"),
                group,
            },
        ];
        for e in events {
            rec.record(e);
        }
        let summary = rec.finish().join("\n");
        let text = std::fs::read_to_string(&path).unwrap();
        for out in [&text, &summary] {
            assert!(!out.contains(&value[4..]), "{out}");
        }
        assert_eq!(text.lines().count(), 7);
        assert!(
            summary.contains(
                "<keyfence:GITHUB_TOKEN> postinstall: wrote /d<keyfence:GITHUB_TOKEN>/.env"
            ),
            "{summary}"
        );
    }

    /// A command that rewrites the trace file during the run is found out at the end.
    #[test]
    fn tells_when_something_else_wrote_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        for tamper in [false, true] {
            let mut out = Out::new(file::open(&path).unwrap());
            out.line("{\"event\":\"exec\"}");
            out.file.flush().unwrap();
            if tamper {
                // The same length, other content: only the bytes tell.
                std::fs::write(&path, "{\"event\":\"true\"}\n").unwrap();
            }
            out.line("{\"event\":\"dns\"}");
            assert_eq!(out.finish().unwrap(), !tamper);
        }
        // Deleted, and another file left in its place.
        let out = Out::new(file::open(&path).unwrap());
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "").unwrap();
        assert!(!out.finish().unwrap());
    }

    #[test]
    fn finds_a_value_with_dots_in_it() {
        assert!(contains_skipping_dots(b"ab.cd.ef", b"abcdef"));
        assert!(contains_skipping_dots(b"x.abc.d", b"abcd"));
        assert!(!contains_skipping_dots(b"ab.cd", b"abcde"));
        assert!(!contains_skipping_dots(b"abxcd", b"abcd"));
        assert_eq!(replace_bytes("aVbV", b"V", "<m>"), "a<m>b<m>");
    }

    #[test]
    fn parses_socket_addresses() {
        let mut v4 = vec![0u8; 16];
        v4[..2].copy_from_slice(&(nix::libc::AF_INET as u16).to_ne_bytes());
        v4[2..4].copy_from_slice(&8443u16.to_be_bytes());
        v4[4..8].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(sockaddr(&v4), Some(("127.0.0.1:8443".into(), Some(8443))));
        let mut un = (nix::libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        un.extend_from_slice(b"/run/x.sock\0\0\0");
        assert_eq!(sockaddr(&un), Some(("unix:/run/x.sock".into(), None)));
    }
}
