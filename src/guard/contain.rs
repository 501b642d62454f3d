//! Containment: what the tracer makes a stopped process do so that it and everything it
//! starts live under the descendant fence, and what it changes in an exec below the command.
//!
//! - `rewrite_env`: the exec gets a new environment array without the protected variables
//!   (`Protected::drops`), written below the caller's stack pointer — never compacting the
//!   caller's own array, which a vfork child shares with its parent.
//! - `contain_at_start`: a new process, at its first stop, runs `landlock_restrict_self` on the
//!   fence's shared ruleset under a single step.
//! - `contain`: at an exec, the same by injected calls, or by building the ruleset inside the
//!   caller (`build_and_restrict`) when the shared one is gone; then the exec is issued again.
//!
//! The event loop that decides when (tracer.rs) waits for the tracee through `wait_for`, which
//! keeps other tracees' statuses for it.

use super::Protected;
use super::fence::Fence;
use super::filter::nr;
use super::memory::{self, Fault};
use super::tracer::wait_for;
use nix::errno::Errno;
use nix::libc;
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

const LANDLOCK_RULE_PATH_BENEATH: u64 = 1;

/// Writes a filtered copy of the environment array below the stack pointer and points the
/// exec at it. Returns whether anything was removed.
pub(super) fn rewrite_env(
    pid: Pid,
    mut regs: libc::user_regs_struct,
    envp: usize,
    protected: &Protected,
    tag: u32,
) -> Result<bool, Fault> {
    let pointers = memory::read_pointers(pid, envp)?;
    let strings = memory::Strings::read(pid, &pointers);
    let Some(mut kept) = kept_entries(&pointers, |p| {
        strings.get(pid, p).map(|entry| protected.drops(&entry))
    })?
    else {
        return Ok(false);
    };
    kept.push(0);
    let bytes: Vec<u8> = kept.iter().flat_map(|p| p.to_ne_bytes()).collect();
    // Below the 128-byte red zone, 16-byte aligned. The kernel copies the strings before the
    // old image goes, so this scratch space only has to live until then.
    let at = (regs.rsp as usize - 128 - bytes.len()) & !15;
    memory::write_all(pid, at, &bytes)?;
    if tag == nr::EXECVE {
        regs.rdx = at as u64;
    } else {
        regs.r10 = at as u64;
    }
    ptrace::setregs(pid, regs).map_err(|_| Fault)?;
    Ok(true)
}

/// Puts the stopped tracee (at an exec's seccomp stop: a process `contain_at_start` could not
/// contain) into the fence's nested Landlock domain (fence.rs) by making it run system calls,
/// then rewinds it to issue the exec again: one call with the ruleset the supervisor shared,
/// one per rule and three more when that is gone. The descriptors are close-on-exec, so the
/// exec that follows closes them.
pub(super) fn contain(
    pid: Pid,
    saved: libc::user_regs_struct,
    fence: &Fence,
    ruleset_fd: i32,
) -> Result<(), String> {
    // The exec must have come from a two-byte `syscall` instruction, which is re-executed.
    let mut insn = [0u8; 2];
    memory::read_exact(pid, saved.rip as usize - 2, &mut insn)
        .map_err(|_| "cannot read its code".to_string())?;
    if insn != [0x0f, 0x05] {
        return Err("the exec did not come from a syscall instruction".into());
    }
    // Scratch space below the red zone: the ruleset attribute at +0, the path-beneath
    // attribute (packed: u64 access, i32 fd) at +32, a path at +64.
    let scratch = (saved.rsp as usize - 128 - 64 - libc::PATH_MAX as usize) & !15;
    let write = |at: usize, bytes: &[u8]| {
        memory::write_all(pid, at, bytes).map_err(|_| "cannot write to its stack".to_string())
    };
    let mut pending = Vec::new();
    let mut call = |first: bool, number: i64, args: [u64; 4]| {
        inject(pid, &mut pending, saved, first, number, args)
    };
    // The first call replaces the exec at its seccomp stop; the next ones re-enter the kernel
    // from the same instruction. Usually the ruleset the supervisor shared is still there, and
    // one call is enough. A descriptor that is not a ruleset fails it with EBADFD or EBADF.
    // One that is some other ruleset is possible only if the command itself replaced it (each
    // process below is contained before its own code runs), and the command is trusted.
    let shared = call(
        true,
        libc::SYS_landlock_restrict_self,
        [ruleset_fd as u64, 0, 0, 0],
    )?;
    let result = if shared == 0 {
        Ok(())
    } else {
        build_and_restrict(&mut call, scratch, fence, write)
    };
    match &result {
        Ok(()) => restore(pid, saved)?,
        // What cannot be contained does not run: the exec fails with EPERM.
        Err(_) => {
            let mut r = saved;
            r.rax = (-(libc::EPERM as i64)) as u64;
            ptrace::setregs(pid, r).map_err(|e| format!("setregs: {e}"))?;
            ptrace::cont(pid, None).map_err(|e| format!("resume: {e}"))?;
        }
    }
    // Signals that arrived meanwhile were held back; they are delivered now.
    for sig in pending {
        let _ = nix::sys::signal::kill(pid, sig);
    }
    result
}

/// Puts a new process, at its first stop (just back from the `fork`, `vfork` or `clone` that made
/// it), into the nested domain with the ruleset the helper shared: rewound to that call's
/// `syscall` instruction, it runs `landlock_restrict_self` under a single step, which stops once,
/// right after the call, and then goes on with every register as it was. `Ok(false)`: it was
/// left as it was (no two-byte `syscall` instruction behind it, or no shared ruleset any more).
///
/// Why single-step: resuming with `PTRACE_SYSCALL` would stop at the call's entry and exit;
/// letting it run on without a stop would hand its code `rdi`/`rsi` changed across a system
/// call, which the ABI promises not to do.
pub(super) fn contain_at_start(pid: Pid, ruleset_fd: i32) -> Result<bool, String> {
    let saved = ptrace::getregs(pid).map_err(|e| format!("getregs: {e}"))?;
    let mut insn = [0u8; 2];
    if memory::read_exact(pid, saved.rip as usize - 2, &mut insn).is_err() || insn != [0x0f, 0x05] {
        return Ok(false);
    }
    let mut r = saved;
    r.rip = saved.rip - 2;
    r.rax = libc::SYS_landlock_restrict_self as u64;
    // Not in a system call: no restart logic applies on the way back to user space.
    r.orig_rax = u64::MAX;
    r.rdi = ruleset_fd as u64;
    r.rsi = 0;
    ptrace::setregs(pid, r).map_err(|e| format!("setregs: {e}"))?;
    let mut pending = Vec::new();
    ptrace::step(pid, None).map_err(|e| format!("step: {e}"))?;
    let after = loop {
        match wait_for(pid) {
            Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) => {
                return Err("the process ended".into());
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(format!("wait: {e}")),
            Ok(status) => {
                if let WaitStatus::Stopped(_, sig) = status {
                    // The trap after the instruction: the call has run.
                    if sig == Signal::SIGTRAP {
                        let now = ptrace::getregs(pid).map_err(|e| format!("getregs: {e}"))?;
                        if now.rip == saved.rip {
                            break now;
                        }
                    }
                    // A signal that came first is held back, and the step tried again.
                    pending.push(sig);
                }
                ptrace::step(pid, None).map_err(|e| format!("step: {e}"))?;
            }
        }
    };
    ptrace::setregs(pid, saved).map_err(|e| format!("setregs: {e}"))?;
    for sig in pending {
        let _ = nix::sys::signal::kill(pid, sig);
    }
    Ok(after.rax == 0)
}

/// The slow way into the fence's domain: create the ruleset, then for each rule open its path,
/// add the rule and close the path again, then restrict — each an injected call re-entering the
/// kernel from the exec's instruction. A path that no longer opens gets no rule, which denies
/// it: fails closed, as `fence::share` does.
pub(super) fn build_and_restrict(
    call: &mut impl FnMut(bool, i64, [u64; 4]) -> Result<i64, String>,
    scratch: usize,
    fence: &Fence,
    write: impl Fn(usize, &[u8]) -> Result<(), String>,
) -> Result<(), String> {
    let failed = |what: &str, r: i64| format!("{what} failed: {}", Errno::from_raw(-r as i32));
    let attr = fence.attr();
    write(scratch, &attr)?;
    let ruleset = call(
        false,
        libc::SYS_landlock_create_ruleset,
        [scratch as u64, attr.len() as u64, 0, 0],
    )?;
    if ruleset < 0 {
        return Err(failed("landlock_create_ruleset", ruleset));
    }
    for (path, access) in &fence.rules {
        write(scratch + 64, path.as_bytes_with_nul())?;
        let fd = call(
            false,
            libc::SYS_openat,
            [
                libc::AT_FDCWD as u64,
                (scratch + 64) as u64,
                (libc::O_PATH | libc::O_CLOEXEC) as u64,
                0,
            ],
        )?;
        if fd < 0 {
            continue;
        }
        let mut beneath = access.to_ne_bytes().to_vec();
        beneath.extend_from_slice(&(fd as i32).to_ne_bytes());
        write(scratch + 32, &beneath)?;
        let added = call(
            false,
            libc::SYS_landlock_add_rule,
            [
                ruleset as u64,
                LANDLOCK_RULE_PATH_BENEATH,
                (scratch + 32) as u64,
                0,
            ],
        )?;
        call(false, libc::SYS_close, [fd as u64, 0, 0, 0])?;
        if added < 0 {
            return Err(failed("landlock_add_rule", added));
        }
    }
    let restricted = call(
        false,
        libc::SYS_landlock_restrict_self,
        [ruleset as u64, 0, 0, 0],
    )?;
    if restricted < 0 {
        return Err(failed("landlock_restrict_self", restricted));
    }
    // The ruleset's descriptor is close-on-exec: the exec that follows closes it.
    Ok(())
}

/// Runs one system call in the tracee and returns its result (negative errno on failure).
/// `at_entry`: the tracee is at a seccomp stop, so changing the number replaces the call;
/// otherwise it is at a syscall-exit stop and is rewound to the `syscall` instruction.
pub(super) fn inject(
    pid: Pid,
    pending: &mut Vec<Signal>,
    saved: libc::user_regs_struct,
    at_entry: bool,
    number: i64,
    args: [u64; 4],
) -> Result<i64, String> {
    let mut r = saved;
    r.rdi = args[0];
    r.rsi = args[1];
    r.rdx = args[2];
    r.r10 = args[3];
    if at_entry {
        r.orig_rax = number as u64;
    } else {
        r.rax = number as u64;
        r.rip = saved.rip - 2;
    }
    ptrace::setregs(pid, r).map_err(|e| format!("setregs: {e}"))?;
    let stops = if at_entry { 1 } else { 2 };
    for _ in 0..stops {
        ptrace::syscall(pid, None).map_err(|e| format!("resume: {e}"))?;
        wait_syscall_stop(pid, pending)?;
    }
    let after = ptrace::getregs(pid).map_err(|e| format!("getregs: {e}"))?;
    Ok(after.rax as i64)
}

fn wait_syscall_stop(pid: Pid, pending: &mut Vec<Signal>) -> Result<(), String> {
    loop {
        match wait_for(pid) {
            Ok(WaitStatus::PtraceSyscall(_)) => return Ok(()),
            // A signal arriving meanwhile is held back until the calls are done.
            Ok(WaitStatus::Stopped(_, sig)) => {
                pending.push(sig);
                ptrace::syscall(pid, None).map_err(|e| format!("resume: {e}"))?;
            }
            Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) => {
                return Err("the process ended".into());
            }
            Ok(_) => {
                ptrace::syscall(pid, None).map_err(|e| format!("resume: {e}"))?;
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("wait: {e}")),
        }
    }
}

/// Rewinds the tracee (at a syscall-exit stop) to issue its original call again.
pub(super) fn restore(pid: Pid, saved: libc::user_regs_struct) -> Result<(), String> {
    let mut r = saved;
    r.rax = saved.orig_rax;
    r.rip = saved.rip - 2;
    ptrace::setregs(pid, r).map_err(|e| format!("setregs: {e}"))?;
    ptrace::cont(pid, None).map_err(|e| format!("resume: {e}"))
}

/// Which entries of an environment array (`pointers`) an exec keeps: `None` when it keeps them
/// all; `drops` says whether the entry at a pointer is a protected variable.
fn kept_entries<E>(
    pointers: &[usize],
    mut drops: impl FnMut(usize) -> Result<bool, E>,
) -> Result<Option<Vec<usize>>, E> {
    let mut kept = Vec::with_capacity(pointers.len() + 1);
    for &p in pointers {
        if !drops(p)? {
            kept.push(p);
        }
    }
    Ok((kept.len() != pointers.len()).then_some(kept))
}

/// Makes the tracee (at a seccomp stop, of a call issued by a two-byte `syscall`) install
/// `fd_program(fd, calls)` with `SECCOMP_FILTER_FLAG_TSYNC`, so all its threads get it, then
/// rewinds it to issue its own call again. Returns whether the tracee was resumed (if not, it
/// is still at its stop, unchanged), and whether the filter is in place.
pub(crate) fn install_fd_filter(
    pid: Pid,
    saved: libc::user_regs_struct,
    fd: u32,
    calls: &[u32],
) -> (bool, Result<(), String>) {
    let mut insn = [0u8; 2];
    if memory::read_exact(pid, saved.rip as usize - 2, &mut insn).is_err() {
        return (false, Err("cannot read its code".into()));
    }
    if insn != [0x0f, 0x05] {
        return (
            false,
            Err("the call did not come from a syscall instruction".into()),
        );
    }
    let prog = super::filter::fd_program(fd, calls);
    let mut bytes: Vec<u8> = Vec::with_capacity(16 + prog.len() * 8);
    // struct sock_fprog (len, padding, pointer) first, the instructions right after it.
    let size = 16 + prog.len() * 8;
    // Below the red zone, 16-byte aligned; the kernel copies the program during the call.
    let at = (saved.rsp as usize - 128 - size) & !15;
    bytes.extend_from_slice(&(prog.len() as u16).to_ne_bytes());
    bytes.extend_from_slice(&[0u8; 6]);
    bytes.extend_from_slice(&((at + 16) as u64).to_ne_bytes());
    for i in &prog {
        bytes.extend_from_slice(&i.code.to_ne_bytes());
        bytes.push(i.jt);
        bytes.push(i.jf);
        bytes.extend_from_slice(&i.k.to_ne_bytes());
    }
    if memory::write_all(pid, at, &bytes).is_err() {
        return (false, Err("cannot write to its stack".into()));
    }
    let mut pending = Vec::new();
    const SECCOMP_SET_MODE_FILTER: u64 = 1;
    const SECCOMP_FILTER_FLAG_TSYNC: u64 = 1;
    let result = inject(
        pid,
        &mut pending,
        saved,
        true,
        libc::SYS_seccomp,
        [
            SECCOMP_SET_MODE_FILTER,
            SECCOMP_FILTER_FLAG_TSYNC,
            at as u64,
            0,
        ],
    );
    // The original call runs in any case, once the tracee is back at its instruction. If the
    // injection itself failed, the tracee has ended or was resumed: either way not ours to
    // resume again.
    let ret = match result {
        Ok(ret) => ret,
        Err(why) => return (true, Err(why)),
    };
    let restored = restore(pid, saved);
    for sig in pending {
        let _ = nix::sys::signal::kill(pid, sig);
    }
    if let Err(why) = restored {
        return (true, Err(why));
    }
    let installed = match ret {
        0 => Ok(()),
        // TSYNC names a thread it could not synchronise; the filter is not installed.
        r if r > 0 => Err(format!("thread {r} has other filters")),
        r => Err(format!("seccomp: {}", Errno::from_raw(-r as i32))),
    };
    (true, installed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretValue;

    /// The environment at fake addresses, filtered as an exec below the command is.
    fn filtered(env: &[&str], protected: &Protected) -> Option<Vec<String>> {
        let pointers: Vec<usize> = (0..env.len()).map(|i| 0x1000 + i * 0x100).collect();
        let at = |p: usize| env[(p - 0x1000) / 0x100];
        kept_entries(&pointers, |p| {
            Ok::<_, ()>(protected.drops(at(p).as_bytes()))
        })
        .unwrap()
        .map(|kept| kept.into_iter().map(|p| at(p).to_string()).collect())
    }

    #[test]
    fn protected_variables_leave_by_name_and_by_value() {
        // Made at run time: a literal would be a key in the checkout (cli's clean audit).
        let key = format!("sk-proj-{}", "0123456789abcdefghijklmnopqrstuvwxyzABCD");
        let protected =
            Protected::new(&[("OPENAI_API_KEY".to_string(), SecretValue::new(key.as_str()))]);
        let kept = filtered(
            &[
                "PATH=/usr/bin",
                &format!("OPENAI_API_KEY={key}"),
                "HOME=/home/u",
                // The same value under another name, as a tool might copy it.
                &format!("MY_COPY={key}"),
            ],
            &protected,
        )
        .expect("something dropped");
        assert_eq!(kept, ["PATH=/usr/bin", "HOME=/home/u"]);
        // Nothing protected: the array is left as it is (no rewrite, no write to the tracee).
        assert_eq!(filtered(&["PATH=/usr/bin", "TERM=xterm"], &protected), None);
    }

    #[test]
    fn an_unreadable_entry_fails_the_whole_filter() {
        let r = kept_entries(&[1, 2, 3], |p| if p == 2 { Err(Fault) } else { Ok(false) });
        assert!(
            r.is_err(),
            "an entry that cannot be read must not pass unchecked"
        );
    }
}
