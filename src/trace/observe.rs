//! What the trace makes of what the tracer sees: the decoding of a stopped call's data (a
//! `sendmsg` header, an iovec array, a DNS query) and the events recorded from it, and the
//! files the tree wrote, looked into at the end. The tracer (guard/tracer.rs) owns the ptrace
//! side — which stop, whose memory, which descriptor — and hands the bytes here; the opens
//! it does not stop for come through the seccomp listener (notify.rs).

use super::{Event, Recorder, dns_query_name, what};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// How much of one send the trace inspects.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// Programs whose standard input, when it is a pipe, is likely on its way to the network.
pub const NETWORK_TOOLS: &[&str] = &[
    "curl", "wget", "nc", "ncat", "netcat", "socat", "openssl", "ssh", "scp", "telnet",
];

/// Written files the trace remembers, and how much of them it reads at the end.
const MAX_WRITTEN_FILES: usize = 65536;
const MAX_WRITTEN_FILE: u64 = 16 << 20;
const MAX_WRITTEN_TOTAL: u64 = 256 << 20;

/// Records each watched value found in `data` on its way to `destination`.
pub fn record_sent(rec: &mut Recorder, pid: i32, data: &[u8], destination: &str, group: &str) {
    let found: Vec<String> = rec
        .find_watched(data)
        .into_iter()
        .map(|(l, c)| what(l, c))
        .collect();
    for what in found {
        rec.record(Event::SecretSent {
            pid,
            what,
            destination: destination.to_string(),
            group: group.to_string(),
        });
    }
}

/// A datagram or message sent to `destination` (`port`, when an inet one): a DNS query to
/// port 53 is recorded as the lookup it is, with a value carried in its labels; any other
/// data is searched for watched values.
pub fn record_send(
    rec: &mut Recorder,
    pid: i32,
    data: &[u8],
    (destination, port): (&str, Option<u16>),
    group: &str,
) {
    if port == Some(53)
        && let Some(name) = dns_query_name(data)
    {
        // A harvester may put the key itself in the labels: the query then sends it (the
        // datagram holds it split by length bytes, which a search of the data cannot see).
        let found = rec.find_watched_in_name(&name);
        // A name that carries a value is not kept at all: even lower-cased it holds most of
        // the value.
        let masked = match found.first() {
            Some((label, _)) => format!("<keyfence:{label} in the labels>"),
            None => rec.mask(&name),
        };
        let carried: Vec<String> = found.into_iter().map(|(l, c)| what(l, c)).collect();
        rec.record(Event::Dns {
            pid,
            name: masked.clone(),
            group: group.to_string(),
        });
        for what in carried {
            rec.record(Event::SecretSent {
                pid,
                what,
                destination: format!("{destination} in the DNS query {masked}"),
                group: group.to_string(),
            });
        }
        // A query carries nothing but its name.
        return;
    }
    record_sent(rec, pid, data, destination, group);
}

/// `struct msghdr`'s first four fields: the name and its length, the iovec array and its
/// length. `None` when fewer than 32 bytes could be read.
pub fn msghdr(hdr: &[u8]) -> Option<[u64; 4]> {
    let word = |i: usize| {
        Some(u64::from_ne_bytes(
            hdr.get(i * 8..i * 8 + 8)?.try_into().ok()?,
        ))
    };
    Some([word(0)?, word(1)? & 0xffff_ffff, word(2)?, word(3)?])
}

/// An iovec array's (base, length) pairs.
pub fn iovecs(raw: &[u8]) -> impl Iterator<Item = (u64, u64)> + '_ {
    raw.chunks_exact(16).map(|iov| {
        (
            u64::from_ne_bytes(iov[..8].try_into().unwrap_or([0; 8])),
            u64::from_ne_bytes(iov[8..].try_into().unwrap_or([0; 8])),
        )
    })
}

/// Whether a connect's return value (`None`: the process ended first) is the network policy's
/// refusal.
pub fn connect_blocked(result: Option<i64>) -> bool {
    matches!(result, Some(r) if r == -(nix::libc::EACCES as i64) || r == -(nix::libc::EPERM as i64))
}

/// The regular files the tree opened for writing, each with who opened it first, looked into
/// at the end of the run (`check`).
#[derive(Default)]
pub struct Written {
    files: HashMap<PathBuf, (i32, Rc<str>)>,
    dropped: u64,
}

impl Written {
    /// Remembers `path`, opened for writing by `pid` of `group`. Device, proc and sys files
    /// are not data at rest.
    pub fn note(&mut self, path: &Path, pid: i32, group: impl FnOnce() -> Rc<str>) {
        if ["/dev/", "/proc/", "/sys/"].iter().any(|p| {
            path.as_os_str()
                .as_encoded_bytes()
                .starts_with(p.as_bytes())
        }) || self.files.contains_key(path)
        {
            return;
        }
        if self.files.len() >= MAX_WRITTEN_FILES {
            self.dropped += 1;
            return;
        }
        self.files.insert(path.to_path_buf(), (pid, group()));
    }

    /// Every file still there: a watched value in it is recorded against the process that
    /// first opened it for writing. What was written and then deleted or renamed away is not
    /// seen (a rename's new name is, when the tree opened it for writing too). Returns the
    /// notice for the files it could not check.
    pub fn check(self, rec: &mut Recorder) -> Option<String> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let mut paths: Vec<_> = self.files.into_iter().collect();
        paths.sort_by(|a, b| a.0.cmp(&b.0));
        let mut budget = MAX_WRITTEN_TOTAL;
        let mut skipped = self.dropped;
        let mut buf = Vec::new();
        for (path, (pid, group)) in paths {
            // No symbolic links followed: a link made to point at a credential file is not the
            // tree writing the credential.
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.file_type().is_file() || meta.len() == 0 {
                continue;
            }
            let len = meta.len().min(MAX_WRITTEN_FILE);
            if len > budget {
                skipped += 1;
                continue;
            }
            budget -= len;
            buf.clear();
            // Opened without following a link or blocking (a FIFO put there since the check
            // would otherwise hang the report), and checked again once open.
            let Ok(f) = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
                .open(&path)
            else {
                continue;
            };
            if !f.metadata().is_ok_and(|m| m.file_type().is_file())
                || f.take(len).read_to_end(&mut buf).is_err()
            {
                continue;
            }
            let found: Vec<String> = rec
                .find_watched(&buf)
                .into_iter()
                .map(|(l, c)| what(l, c))
                .collect();
            for what in found {
                rec.record(Event::SecretWritten {
                    pid,
                    what,
                    path: path.display().to_string(),
                    group: group.to_string(),
                });
            }
        }
        (skipped > 0).then(|| {
            format!(
                "trace: {skipped} written file(s) not checked for secrets (more than \
                 {MAX_WRITTEN_FILES} files or {} MiB in all)",
                MAX_WRITTEN_TOTAL >> 20
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretValue;
    use crate::trace::Watched;

    const KEY: &str = "sk-proj-TESTONLYabcdefghijklmnopqrstuvwxyz012345";

    fn recorder() -> Recorder {
        Recorder::new(
            None,
            vec![Watched {
                label: "OPENAI_API_KEY".into(),
                canary: false,
                value: SecretValue::new(KEY),
            }],
            Vec::new(),
        )
    }

    /// What the recorder kept for the user: every line, in order.
    fn said(rec: &Recorder) -> String {
        let mut out: Vec<String> = rec.summary.values().flatten().cloned().collect();
        out.extend(rec.alerts.iter().cloned());
        out.join("\n")
    }

    /// A DNS query for `name` as it goes on the wire.
    fn query(name: &str) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        q
    }

    #[test]
    fn a_key_in_a_dns_querys_labels_is_a_send_and_is_not_kept() {
        let mut rec = recorder();
        // Split into labels of at most 63 bytes, as a harvester must.
        let (a, b) = KEY.split_at(20);
        let name = format!("{a}.{b}.x.example");
        record_send(
            &mut rec,
            7,
            &query(&name),
            ("10.0.0.53:53", Some(53)),
            "npm install",
        );
        let out = said(&rec);
        assert!(out.contains("the value of OPENAI_API_KEY"), "{out}");
        assert!(out.contains("in the labels"), "{out}");
        assert!(
            !out.contains(a) && !out.contains(b),
            "a piece of the key was kept: {out}"
        );
    }

    #[test]
    fn a_plain_query_is_a_lookup_and_other_data_is_searched() {
        let mut rec = recorder();
        record_send(
            &mut rec,
            7,
            &query("registry.npmjs.org"),
            ("dns", Some(53)),
            "g",
        );
        assert!(said(&rec).contains("looked up registry.npmjs.org"));
        assert!(!said(&rec).contains("sent"));
        let body = format!("POST /collect HTTP/1.1\r\n\r\n{{\"k\":\"{KEY}\"}}");
        record_send(
            &mut rec,
            7,
            body.as_bytes(),
            ("1.2.3.4:443", Some(443)),
            "g",
        );
        let out = said(&rec);
        assert!(
            out.contains("sent the value of OPENAI_API_KEY to 1.2.3.4:443"),
            "{out}"
        );
        assert!(!out.contains(KEY));
    }

    #[test]
    fn message_headers_and_iovecs_decode() {
        let mut hdr = Vec::new();
        for w in [0x1000u64, 0xdead_0000_0010, 0x2000, 3] {
            hdr.extend_from_slice(&w.to_ne_bytes());
        }
        // The name's length is a 32-bit field: the padding above it is not part of it.
        assert_eq!(msghdr(&hdr), Some([0x1000, 0x10, 0x2000, 3]));
        assert_eq!(msghdr(&hdr[..31]), None);
        let mut iov = Vec::new();
        for w in [0x10u64, 5, 0x20, 7, 0x30] {
            iov.extend_from_slice(&w.to_ne_bytes());
        }
        // A trailing half entry is not an entry.
        assert_eq!(iovecs(&iov).collect::<Vec<_>>(), [(0x10, 5), (0x20, 7)]);
        assert!(connect_blocked(Some(-(nix::libc::EACCES as i64))));
        assert!(!connect_blocked(Some(0)) && !connect_blocked(None));
    }

    #[test]
    fn written_files_are_looked_into_once_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        let dumped = dir.path().join("env.txt");
        std::fs::write(&dumped, format!("OPENAI_API_KEY={KEY}\n")).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&dumped, &link).unwrap();
        let mut w = Written::default();
        w.note(&dumped, 9, || "npm install".into());
        w.note(&dumped, 10, || "other".into());
        w.note(&link, 11, || "linker".into());
        w.note(Path::new("/proc/self/environ"), 12, || "proc".into());
        let mut rec = recorder();
        assert_eq!(w.check(&mut rec), None);
        let out = said(&rec);
        assert_eq!(
            out.matches("wrote the value of OPENAI_API_KEY").count(),
            1,
            "{out}"
        );
        assert!(!out.contains(KEY));
    }
}
