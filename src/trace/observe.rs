//! What the trace sees of a traced tree: the tracer's handlers for the stops the trace asked
//! for (an exec, an open, a connect, a send or write on a watched socket, a network tool's
//! piped standard input), the decoding of a stopped call's data (a `sendmsg` header, an iovec
//! array, a DNS query), the events recorded from it, and the files the tree wrote, looked into
//! at the end. The event loop (guard/tracer.rs) decides which stop is whose and calls in here;
//! the opens it does not stop for come through the seccomp listener (notify.rs). The pure
//! pieces are free functions, unit-tested below.

use super::{Event, Recorder, dns_query_name, what};
use crate::guard::filter::nr;
use crate::guard::memory;
use crate::guard::tracer::Tracer;
use nix::libc;
use nix::sys::ptrace;
use nix::unistd::Pid;
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

// The tracer's observation handlers, called from its event loop (guard/tracer.rs) at the
// stops the trace asked for: they read the tracee's memory and /proc, and record.

impl Tracer<'_> {
    pub(crate) fn group_of(&self, pid: Pid) -> String {
        self.tasks
            .get(&pid)
            .map(|t| t.group.to_string())
            .unwrap_or_default()
    }

    /// An exec that succeeded (the new program is loaded, not yet running): record it from
    /// /proc, and name the group its process belongs to from here on (a package manager's
    /// lifecycle script, or the command itself).
    pub(crate) fn trace_exec(&mut self, pid: Pid) {
        let Some(rec) = &self.trace else { return };
        let split = |b: Vec<u8>| -> Vec<String> {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        // Looked for in the raw bytes (every argument, not only the 64 recorded). The
        // arguments, the program and the group are masked where the event is recorded.
        let in_argv: Vec<String> = rec
            .find_watched(&cmdline)
            .into_iter()
            .map(|(l, c)| crate::trace::what(l, c))
            .collect();
        let argv: Vec<String> = split(cmdline).into_iter().take(64).collect();
        // keyfence's own helper, caught finishing its exec when the tracer attached: not part
        // of the command's story.
        if pid == self.command && argv.get(1).map(String::as_str) == Some(crate::guard::HELPER) {
            return;
        }
        let program = std::fs::read_link(format!("/proc/{pid}/exe"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let env = split(std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default());
        let var = |name: &str| {
            env.iter()
                .find_map(|e| e.strip_prefix(name)?.strip_prefix('=').map(str::to_string))
        };
        let task = self.tasks.get(&pid).cloned();
        let mut group = task
            .as_ref()
            .map(|t| t.group.to_string())
            .unwrap_or_default();
        if let (Some(name), Some(event)) = (var("npm_package_name"), var("npm_lifecycle_event")) {
            group = match var("npm_package_version") {
                Some(v) => format!("{name}@{v} {event}"),
                None => format!("{name} {event}"),
            };
        } else if group.is_empty() {
            group = argv.first().cloned().unwrap_or_else(|| program.clone());
        }
        if let Some(t) = self.tasks.get_mut(&pid) {
            t.group = group.as_str().into();
        }
        let ppid = task.map_or(0, |t| t.ppid.as_raw());
        let name = argv
            .first()
            .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
            .unwrap_or_else(|| program.rsplit('/').next().unwrap_or("").to_string());
        if let Some(rec) = &mut self.trace {
            rec.record(crate::trace::Event::Exec {
                pid: pid.as_raw(),
                ppid,
                program,
                argv,
                cwd,
                group: group.clone(),
            });
            for what in in_argv {
                rec.record(crate::trace::Event::SecretInArgv {
                    pid: pid.as_raw(),
                    what,
                    program: name.clone(),
                    group: group.clone(),
                });
            }
        }
    }

    /// One open by `pid` of `full` (absolute when it could be resolved), seen at a stop or
    /// through the listener.
    pub(crate) fn saw_open(&mut self, pid: Pid, full: std::path::PathBuf, flags: i32) {
        let tgid = self.tasks.get(&pid).map_or(pid, |t| t.tgid);
        let write = flags & (libc::O_WRONLY | libc::O_RDWR) != 0;
        if (write || flags & libc::O_CREAT != 0) && full.is_absolute() {
            self.note_written(&full, pid, tgid);
        }
        let Some(rec) = &self.trace else { return };
        if let Some(why) = rec.sensitive(&full, pid.as_raw()) {
            let blocked = rec.blocked_open(&full, write, why);
            let group = self.group_of(pid);
            let Some(rec) = &mut self.trace else { return };
            rec.record(crate::trace::Event::Open {
                pid: pid.as_raw(),
                path: full.display().to_string(),
                write,
                why,
                blocked,
                group,
            });
        }
    }

    /// The opens the listener thread has heard since the last look.
    pub(crate) fn drain_opens(&mut self) {
        let Some(opens) = &self.opens else { return };
        let seen: Vec<super::notify::OpenSeen> = opens.seen.try_iter().collect();
        for o in seen {
            self.saw_open(o.pid, o.path, o.flags);
        }
    }

    /// An open, connect or send the trace filter stopped.
    pub(crate) fn observe(&mut self, pid: Pid, tag: u32, r: libc::user_regs_struct) {
        use crate::trace::sockaddr;
        if self.trace.is_none() {
            return;
        }
        // The group (a String) is only looked up for what gets recorded: opens are many.
        let tgid = self.tasks.get(&pid).map_or(pid, |t| t.tgid);
        let read = |at: u64, len: u64| {
            memory::read_upto(pid, at as usize, len.min(MAX_PAYLOAD as u64) as usize)
        };
        match tag {
            nr::OPEN | nr::OPENAT => {
                let (dirfd, path_at, flags) = if tag == nr::OPEN {
                    (libc::AT_FDCWD as i64, r.rdi, r.rsi)
                } else {
                    (r.rdi as i32 as i64, r.rsi, r.rdx)
                };
                let Ok(raw) = memory::read_cstring(pid, path_at as usize) else {
                    return;
                };
                let path = std::path::PathBuf::from(
                    <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(raw),
                );
                let full = if path.is_absolute() {
                    path
                } else if dirfd == libc::AT_FDCWD as i64 {
                    // Looked up once per process and directory change, not at every open.
                    match self.cwds.get(&tgid) {
                        Some(cwd) => cwd.join(&path),
                        None => match std::fs::read_link(format!("/proc/{pid}/cwd")) {
                            Ok(cwd) => {
                                let full = cwd.join(&path);
                                self.cwds.insert(tgid, cwd);
                                full
                            }
                            Err(_) => path,
                        },
                    }
                } else {
                    std::fs::read_link(format!("/proc/{pid}/fd/{dirfd}"))
                        .map(|b| b.join(&path))
                        .unwrap_or(path)
                };
                self.saw_open(pid, full, flags as i32);
            }
            nr::SENDTO | nr::SENDMSG => {
                let group = self.group_of(pid);
                let (data, dest) = if tag == nr::SENDTO {
                    let dest = (r.r8 != 0).then(|| sockaddr(&read(r.r8, r.r9))).flatten();
                    (read(r.rsi, r.rdx), dest)
                } else {
                    let Some([name, namelen, iov, iovlen]) = msghdr(&read(r.rsi, 32)) else {
                        return;
                    };
                    let dest = (name != 0)
                        .then(|| sockaddr(&read(name, namelen)))
                        .flatten();
                    (read_iov(pid, iov, iovlen), dest)
                };
                let dest = dest.or_else(|| self.connected.get(&(tgid, r.rdi)).cloned());
                let (destination, port) = dest.unwrap_or_else(|| ("a socket".into(), None));
                let Some(rec) = &mut self.trace else { return };
                record_send(rec, pid.as_raw(), &data, (&destination, port), &group);
            }
            _ => {}
        }
    }

    /// A connect at its entry: remembered for the sends on that socket, and returned as the event
    /// to record when the call returns (`connect_done`).
    pub(crate) fn connect_seen(
        &mut self,
        pid: Pid,
        r: libc::user_regs_struct,
    ) -> Option<crate::trace::Event> {
        self.trace.as_ref()?;
        let raw = memory::read_upto(pid, r.rsi as usize, (r.rdx as usize).min(MAX_PAYLOAD));
        let (address, port) = crate::trace::sockaddr(&raw)?;
        let tgid = self.tasks.get(&pid).map_or(pid, |t| t.tgid);
        self.connected
            .insert((tgid, r.rdi), (address.clone(), port));
        Some(crate::trace::Event::Connect {
            pid: pid.as_raw(),
            address,
            blocked: false,
            group: self.group_of(pid),
        })
    }

    /// Records a connect, refused or not, once it has returned (`result`: the call's return
    /// value, or `None` when the process ended first).
    pub(crate) fn connect_done(&mut self, mut event: crate::trace::Event, result: Option<i64>) {
        if let crate::trace::Event::Connect { blocked, .. } = &mut event {
            *blocked = connect_blocked(result);
        }
        if let Some(rec) = &mut self.trace {
            rec.record(event);
        }
    }

    /// Remembers a file opened for writing, to look into at the end (`check_written`).
    pub(crate) fn note_written(&mut self, path: &std::path::Path, pid: Pid, tgid: Pid) {
        let tasks = &self.tasks;
        self.written.note(path, pid.as_raw(), || {
            tasks
                .get(&pid)
                .or_else(|| tasks.get(&tgid))
                .map(|t| t.group.clone())
                .unwrap_or_else(|| "".into())
        });
    }

    /// At the end of the run, every regular file the tree wrote that is still there
    /// (`Written::check`).
    pub(crate) fn check_written(&mut self) {
        let Some(rec) = &mut self.trace else { return };
        if let Some(notice) = std::mem::take(&mut self.written).check(rec) {
            self.summary.notices.push(notice);
        }
    }

    /// At an inet connect's seccomp stop: makes the process stop from now on at `write`,
    /// `writev` and `sendfile` on that descriptor (Node and curl send TCP data with those, not
    /// `sendto`), by installing a second filter. Returns whether the tracee was resumed to
    /// issue the connect again.
    pub(crate) fn watch_sends(&mut self, pid: Pid, regs: libc::user_regs_struct) -> bool {
        use crate::trace::sockaddr;
        if self.trace.is_none() {
            return false;
        }
        let raw = memory::read_upto(pid, regs.rsi as usize, (regs.rdx as usize).min(128));
        // Only inet sockets: a unix socket's peer is on this machine.
        if !matches!(sockaddr(&raw), Some((_, Some(_)))) {
            return false;
        }
        let Ok(fd) = u32::try_from(regs.rdi) else {
            return false;
        };
        self.add_fd_filter(pid, regs, (false, fd), crate::guard::filter::SENDS_ON_FD)
    }

    /// At the exec seccomp stop of a network tool whose standard input is a pipe: makes it stop
    /// at reads of descriptor 0 (the filter outlives the exec), so what it is fed can be
    /// checked. Returns whether the tracee was resumed to issue the exec again.
    pub(crate) fn watch_stdin(&mut self, pid: Pid, tag: u32, regs: libc::user_regs_struct) -> bool {
        let at = if tag == nr::EXECVE {
            regs.rdi
        } else {
            regs.rsi
        };
        let Ok(path) = memory::read_cstring(pid, at as usize) else {
            return false;
        };
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or(&path);
        let Some(tool) = NETWORK_TOOLS.iter().find(|t| t.as_bytes() == name).copied() else {
            return false;
        };
        let piped = std::fs::read_link(format!("/proc/{pid}/fd/0"))
            .is_ok_and(|l| l.as_os_str().as_encoded_bytes().starts_with(b"pipe:"));
        if !piped {
            return false;
        }
        let tgid = self.tasks.get(&pid).map_or(pid, |t| t.tgid);
        self.stdin_tools.insert(tgid, tool.into());
        self.add_fd_filter(pid, regs, (true, 0), crate::guard::filter::READS_ON_FD)
    }

    /// Installs `fd_program` in the stopped tracee unless it already has that one; on success
    /// the tracee is rewound to issue its call again (and `true` returned).
    pub(crate) fn add_fd_filter(
        &mut self,
        pid: Pid,
        regs: libc::user_regs_struct,
        key: (bool, u32),
        calls: &[u32],
    ) -> bool {
        let tgid = self.tasks.get(&pid).map_or(pid, |t| t.tgid);
        let have = self.fd_filters.entry(tgid).or_default();
        // Each filter runs on every system call the process makes afterwards, and the kernel
        // caps a process's filters at 32768 instructions in all: a few per process at most.
        if have.contains(&key) || have.len() >= MAX_FD_FILTERS {
            return false;
        }
        have.push(key);
        let (resumed, result) = crate::guard::contain::install_fd_filter(pid, regs, key.1, calls);
        if let Err(why) = result {
            self.summary.notices.push(format!(
                "trace: {} (pid {pid}): cannot watch its descriptor {}: {why}",
                self.comm_of(pid),
                key.1
            ));
        }
        resumed
    }

    /// A `write`, `writev` or `sendfile` on a descriptor `watch_sends` chose.
    pub(crate) fn observe_write(&mut self, pid: Pid, tag: u32, r: libc::user_regs_struct) {
        let Some(rec) = &self.trace else { return };
        let data = match tag {
            nr::WRITE => memory::read_upto(pid, r.rsi as usize, (r.rdx as usize).min(MAX_PAYLOAD)),
            nr::WRITEV => read_iov(pid, r.rsi, r.rdx),
            _ => sendfile_data(pid, r),
        };
        if rec.find_watched(&data).is_empty() {
            return;
        }
        // The descriptor may have been closed and its number reused for a file or pipe since
        // the connect: only a socket counts (files are checked at the end).
        let socket = std::fs::read_link(format!("/proc/{pid}/fd/{}", r.rdi))
            .is_ok_and(|l| l.as_os_str().as_encoded_bytes().starts_with(b"socket:"));
        if !socket {
            return;
        }
        let group = self.group_of(pid);
        let tgid = self.tasks.get(&pid).map_or(pid, |t| t.tgid);
        let destination = self
            .connected
            .get(&(tgid, r.rdi))
            .map_or_else(|| "a socket".to_string(), |d| d.0.clone());
        if let Some(rec) = &mut self.trace {
            record_sent(rec, pid.as_raw(), &data, &destination, &group);
        }
    }

    /// The exit of a network tool's read of its piped standard input.
    pub(crate) fn stdin_read(&mut self, pid: Pid, buf: u64) {
        let Ok(regs) = ptrace::getregs(pid) else {
            return;
        };
        let n = regs.rax as i64;
        if n <= 0 {
            return;
        }
        let data = memory::read_upto(pid, buf as usize, (n as usize).min(MAX_PAYLOAD));
        let tgid = self.tasks.get(&pid).map_or(pid, |t| t.tgid);
        let tool = self
            .stdin_tools
            .get(&tgid)
            .map_or_else(|| self.comm_of(pid), |t| t.to_string());
        let group = self.group_of(pid);
        if let Some(rec) = &mut self.trace {
            let destination = format!("the standard input of {tool}");
            record_sent(rec, pid.as_raw(), &data, &destination, &group);
        }
    }
}

/// Filters the tracer adds to one process, at most.
const MAX_FD_FILTERS: usize = 16;

/// The data of an iovec array in the tracee (`writev`, `sendmsg`), up to `MAX_PAYLOAD`.
fn read_iov(pid: Pid, at: u64, count: u64) -> Vec<u8> {
    let raw = memory::read_upto(pid, at as usize, (count.min(64) * 16) as usize);
    let mut data = Vec::new();
    for (base, len) in iovecs(&raw) {
        let room = MAX_PAYLOAD - data.len();
        data.extend(memory::read_upto(
            pid,
            base as usize,
            (len as usize).min(room),
        ));
        if data.len() >= MAX_PAYLOAD {
            break;
        }
    }
    data
}

/// What a `sendfile(out, in, offset, count)` is about to send: read from the source file
/// through /proc (a new open file description, so the tracee's offset does not move), at the
/// given offset or the descriptor's own position.
fn sendfile_data(pid: Pid, r: libc::user_regs_struct) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let offset = if r.rdx != 0 {
        let mut b = [0u8; 8];
        if memory::read_exact(pid, r.rdx as usize, &mut b).is_err() {
            return Vec::new();
        }
        i64::from_ne_bytes(b) as u64
    } else {
        std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", r.rsi))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("pos:")?.trim().parse().ok())
            })
            .unwrap_or(0)
    };
    let Ok(f) = std::fs::File::open(format!("/proc/{pid}/fd/{}", r.rsi)) else {
        return Vec::new();
    };
    let mut buf = vec![0u8; (r.r10 as usize).min(MAX_PAYLOAD)];
    let n = f.read_at(&mut buf, offset).unwrap_or(0);
    buf.truncate(n);
    buf
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
