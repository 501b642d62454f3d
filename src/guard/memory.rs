//! Reading and writing a stopped tracee's memory with `process_vm_readv`/`writev`. Reads stop
//! at page boundaries so a string or array that ends just before an unmapped page still reads.

use nix::sys::uio::{RemoteIoVec, process_vm_readv, process_vm_writev};
use nix::unistd::Pid;
use std::io::{IoSlice, IoSliceMut};

const PAGE: usize = 4096;

/// The longest environment or argument vector keyfence will read (the kernel's own limit for
/// all strings together is a quarter of the stack limit; this is a generous cap).
const MAX_ENTRIES: usize = 1 << 17;
const MAX_STRING: usize = 1 << 21;

#[derive(Debug)]
pub struct Fault;

fn read_some(pid: Pid, addr: usize, buf: &mut [u8]) -> Result<usize, Fault> {
    let remote = [RemoteIoVec {
        base: addr,
        len: buf.len(),
    }];
    match process_vm_readv(pid, &mut [IoSliceMut::new(buf)], &remote) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(Fault),
    }
}

/// Up to the end of the page holding `addr`, at most `max` bytes.
fn chunk_len(addr: usize, max: usize) -> usize {
    (PAGE - addr % PAGE).min(max)
}

pub fn read_exact(pid: Pid, mut addr: usize, out: &mut [u8]) -> Result<(), Fault> {
    let mut done = 0;
    while done < out.len() {
        let n = read_some(pid, addr, &mut out[done..])?;
        done += n;
        addr += n;
    }
    Ok(())
}

/// As many bytes as can be read from `addr` on, up to `len` (stops at the first unmapped page).
pub fn read_upto(pid: Pid, addr: usize, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut done = 0;
    while done < len {
        // Up to a page boundary at a time after the first short read, so a fault ends it.
        match read_some(pid, addr + done, &mut out[done..]) {
            Ok(n) => done += n,
            Err(Fault) => break,
        }
    }
    out.truncate(done);
    out
}

/// A NULL-terminated array of pointers (argv, envp).
pub fn read_pointers(pid: Pid, mut addr: usize) -> Result<Vec<usize>, Fault> {
    if addr == 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut buf = [0u8; PAGE];
    loop {
        let len = chunk_len(addr, PAGE) & !7;
        let len = if len == 0 { 8 } else { len };
        let n = read_some(pid, addr, &mut buf[..len])?;
        for word in buf[..n - n % 8].chunks_exact(8) {
            let p = usize::from_ne_bytes(word.try_into().map_err(|_| Fault)?);
            if p == 0 {
                return Ok(out);
            }
            out.push(p);
            if out.len() > MAX_ENTRIES {
                return Err(Fault);
            }
        }
        addr += n - n % 8;
    }
}

/// A NUL-terminated string, without the NUL.
pub fn read_cstring(pid: Pid, mut addr: usize) -> Result<Vec<u8>, Fault> {
    let mut out = Vec::new();
    let mut buf = [0u8; PAGE];
    loop {
        let len = chunk_len(addr, PAGE);
        let n = read_some(pid, addr, &mut buf[..len])?;
        if let Some(end) = memchr::memchr(0, &buf[..n]) {
            out.extend_from_slice(&buf[..end]);
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        if out.len() > MAX_STRING {
            return Err(Fault);
        }
        addr += n;
    }
}

/// The NUL-terminated strings an array of pointers points at, read a cluster at a time.
///
/// An environment's strings sit in a few places: a process's initial environment is one block on
/// its stack, and a shell keeps the variables it set in its heap. Reading each cluster in one
/// call, instead of each string in its own, cut guard's reads per exec from about 40 to 2 or 3.
pub struct Strings {
    /// Start address and bytes of each cluster, by address.
    blocks: Vec<(usize, Vec<u8>)>,
}

/// Pointers closer than this to the previous one join its cluster...
const CLUSTER_GAP: usize = 64 * 1024;
/// ...unless the cluster would span more than this.
const CLUSTER_SPAN: usize = 1 << 20;

impl Strings {
    pub fn read(pid: Pid, pointers: &[usize]) -> Strings {
        let mut sorted = pointers.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut blocks = Vec::new();
        let mut i = 0;
        while i < sorted.len() {
            let lo = sorted[i];
            let mut hi = lo;
            while i < sorted.len() && sorted[i] - hi < CLUSTER_GAP && sorted[i] - lo < CLUSTER_SPAN
            {
                hi = sorted[i];
                i += 1;
            }
            // To the end of the last string's page: a string that runs past it is read alone.
            blocks.push((lo, read_upto(pid, lo, hi - lo + PAGE - hi % PAGE)));
        }
        Strings { blocks }
    }

    /// The string at `addr` (without its NUL), read now if no cluster holds all of it.
    pub fn get(&self, pid: Pid, addr: usize) -> Result<std::borrow::Cow<'_, [u8]>, Fault> {
        let i = self.blocks.partition_point(|(lo, _)| *lo <= addr);
        if let Some((lo, bytes)) = i.checked_sub(1).map(|i| &self.blocks[i])
            && let Some(rest) = bytes.get(addr - lo..)
            && let Some(end) = memchr::memchr(0, rest)
        {
            return Ok(std::borrow::Cow::Borrowed(&rest[..end]));
        }
        read_cstring(pid, addr).map(std::borrow::Cow::Owned)
    }
}

pub fn write_all(pid: Pid, addr: usize, data: &[u8]) -> Result<(), Fault> {
    let remote = [RemoteIoVec {
        base: addr,
        len: data.len(),
    }];
    match process_vm_writev(pid, &[IoSlice::new(data)], &remote) {
        Ok(n) if n == data.len() => Ok(()),
        _ => Err(Fault),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strings in two places of one buffer half a mebibyte apart (as an environment's sit in a
    /// shell's heap and on its stack), one of them running three pages past its cluster's read:
    /// two reads, and each string back whole, from this process's own memory.
    #[test]
    fn strings_read_by_cluster_come_back_whole() {
        let mut buf = vec![b'x'; 1 << 20];
        let mut put = |at: usize, s: &[u8]| {
            buf[at..at + s.len()].copy_from_slice(s);
            buf[at + s.len()] = 0;
            at
        };
        let mut offsets: Vec<(usize, Vec<u8>)> = (0..50)
            .map(|i| format!("VAR_{i}=value {i}").into_bytes())
            .scan(0, |at, s| {
                let here = *at;
                *at += s.len() + 1;
                Some((here, s))
            })
            .collect();
        for (at, s) in &offsets {
            put(*at, s);
        }
        offsets.push((put(512 * 1024, b"FAR=1"), b"FAR=1".to_vec()));
        // Starts last in the second cluster, ends three pages on.
        let long = vec![b'y'; 3 * PAGE];
        offsets.push((put(512 * 1024 + 64, &long), long));
        let base = buf.as_ptr() as usize;
        let pointers: Vec<usize> = offsets.iter().map(|(at, _)| base + at).collect();
        let pid = nix::unistd::getpid();
        let strings = Strings::read(pid, &pointers);
        assert_eq!(strings.blocks.len(), 2);
        for ((_, s), p) in offsets.iter().zip(&pointers) {
            assert_eq!(&*strings.get(pid, *p).unwrap(), &s[..]);
        }
    }
}
