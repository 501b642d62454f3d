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
