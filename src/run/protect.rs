//! Self-protection of the supervising keyfence process (P2): while it supervises, it holds the
//! secrets it dropped and injected, so it makes itself non-dumpable (no `/proc/PID/mem`, no
//! ptrace, no core file for same-user processes) and blanks those values in its own initial
//! environment block, which `/proc/PID/environ` shows for the process's whole life.

use std::io::{Read, Seek, SeekFrom, Write};

#[cfg(target_os = "linux")]
pub fn non_dumpable() -> nix::Result<()> {
    nix::sys::prctl::set_dumpable(false)
}

/// Elsewhere there is no dumpable flag to clear (macOS's analogue, `PT_DENY_ATTACH`, is not
/// ported): the caller says at run time that the supervisor is not protected.
#[cfg(not(target_os = "linux"))]
pub fn non_dumpable() -> nix::Result<()> {
    Err(nix::errno::Errno::ENOSYS)
}

/// Overwrites the values of `names` in the process's initial environment block with `*`.
/// Writing to `/proc/self/mem` needs no unsafe code and no pointer into the block.
pub fn blank_initial_environ(names: &[String]) -> std::io::Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which may contain spaces) start at `state` (field 3);
    // env_start and env_end are fields 50 and 51 (proc(5)).
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let (Some(start), Some(end)) = (field(50), field(51)) else {
        return Err(std::io::Error::other("cannot find the environment block"));
    };
    let mut mem = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/proc/self/mem")?;
    let mut block = vec![0u8; (end - start) as usize];
    mem.seek(SeekFrom::Start(start))?;
    mem.read_exact(&mut block)?;
    let mut offset = 0usize;
    for var in block.split(|&b| b == 0) {
        if let Some(eq) = var.iter().position(|&b| b == b'=') {
            let name = &var[..eq];
            if names.iter().any(|n| n.as_bytes() == name) {
                let value_at = start + (offset + eq + 1) as u64;
                mem.seek(SeekFrom::Start(value_at))?;
                mem.write_all(&vec![b'*'; var.len() - eq - 1])?;
            }
        }
        offset += var.len() + 1;
    }
    block.fill(0);
    Ok(())
}
