//! The seccomp filter every process in a guarded tree carries (installed once, before the
//! command's first exec, and inherited). It stops the tree only where the tracer must act, so
//! everything else runs at full speed:
//!
//! - `execve`/`execveat` return `SECCOMP_RET_TRACE` (the tracer rewrites the environment);
//!   without a tracer the kernel fails them with `ENOSYS`, so a tree whose supervisor died
//!   cannot start new programs (fail closed, on top of `PTRACE_O_EXITKILL`);
//! - `clone3` fails with `ENOSYS` (its flags sit in a struct the filter cannot read, and libc
//!   falls back to `clone`), and `clone` with `CLONE_UNTRACED` fails with `EPERM`: no child
//!   escapes the tracer;
//! - `ptrace` is traced only so keyfence can say why a debugger inside the tree fails;
//! - the 32-bit ABI may not exec (`EPERM`: its registers are not rewritten) nor clone untraced;
//!   x32 calls fail; any other architecture is killed.
//!
//! The BPF is written by hand (a few dozen instructions) because seccompiler's filter builder
//! has one action for all matches; seccompiler still installs it.

use seccompiler::sock_filter;

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const CLONE_UNTRACED: u32 = 0x0080_0000;

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;

// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARG0: u32 = 16;

const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

/// The x86-64 system calls the tracer stops on; the tag in `SECCOMP_RET_DATA` is the number.
pub mod nr {
    pub const EXECVE: u32 = 59;
    pub const EXECVEAT: u32 = 322;
    pub const PTRACE: u32 = 101;
    pub const CLONE: u32 = 56;
    pub const CLONE3: u32 = 435;
    pub const OPEN: u32 = 2;
    pub const OPENAT: u32 = 257;
    pub const CONNECT: u32 = 42;
    pub const SENDTO: u32 = 44;
    pub const SENDMSG: u32 = 46;
    pub const READ: u32 = 0;
    pub const WRITE: u32 = 1;
    pub const WRITEV: u32 = 20;
    pub const SENDFILE: u32 = 40;
    pub const SECCOMP: u32 = 317;
    pub const CHDIR: u32 = 80;
    pub const FCHDIR: u32 = 81;
    /// What `--trace` adds to the filter (most frequent first: the filter tests them in
    /// order). `chdir`/`fchdir` are rare, and let the tracer keep each process's working
    /// directory instead of looking it up at every relative open.
    pub const TRACED: &[u32] = &[OPENAT, CONNECT, SENDTO, SENDMSG, OPEN, CHDIR, FCHDIR];
    /// The opens, which `--trace` watches through a seccomp listener where it can (`trace/notify.rs`).
    pub const OPENS: &[u32] = &[OPENAT, OPEN];
    /// What `--trace` stops on with the opens on the listener.
    pub const TRACED_WITHOUT_OPENS: &[u32] = &[CONNECT, SENDTO, SENDMSG];
}

mod nr_i386 {
    pub const EXECVE: u32 = 11;
    pub const EXECVEAT: u32 = 358;
    pub const CLONE: u32 = 120;
    pub const CLONE3: u32 = 435;
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Instructions for one architecture, the syscall number already loaded: each `(nr, action)`
/// pair, then the `clone` flag check, then allow.
fn section(pairs: &[(u32, u32)], clone_nr: u32, x32_check: bool) -> Vec<sock_filter> {
    let mut p = vec![stmt(LD_W_ABS, OFF_NR)];
    if x32_check {
        p.push(jump(JGE_K, X32_SYSCALL_BIT, 0, 1));
        p.push(stmt(RET_K, RET_ERRNO | nix::libc::EPERM as u32));
    }
    for &(n, action) in pairs {
        p.push(jump(JEQ_K, n, 0, 1));
        p.push(stmt(RET_K, action));
    }
    p.push(jump(JEQ_K, clone_nr, 0, 3));
    p.push(stmt(LD_W_ABS, OFF_ARG0));
    p.push(jump(JSET_K, CLONE_UNTRACED, 0, 1));
    p.push(stmt(RET_K, RET_ERRNO | nix::libc::EPERM as u32));
    p.push(stmt(RET_K, RET_ALLOW));
    p
}

/// The filter for a guarded tree. `extra` are further x86-64 syscalls to stop on (tracing),
/// `notify` ones to report to a seccomp listener.
pub fn program(extra: &[u32], notify: &[u32]) -> Vec<sock_filter> {
    let trace = |n: u32| (n, RET_TRACE | n);
    let mut native = vec![
        trace(nr::EXECVE),
        trace(nr::EXECVEAT),
        (nr::CLONE3, RET_ERRNO | nix::libc::ENOSYS as u32),
        trace(nr::PTRACE),
    ];
    native.extend(extra.iter().map(|&n| trace(n)));
    native.extend(notify.iter().map(|&n| (n, RET_USER_NOTIF)));
    let native = section(&native, nr::CLONE, true);
    let eperm = RET_ERRNO | nix::libc::EPERM as u32;
    let compat = section(
        &[
            (nr_i386::EXECVE, eperm),
            (nr_i386::EXECVEAT, eperm),
            (nr_i386::CLONE3, RET_ERRNO | nix::libc::ENOSYS as u32),
        ],
        nr_i386::CLONE,
        false,
    );
    let mut p = vec![stmt(LD_W_ABS, OFF_ARCH)];
    p.push(jump(JEQ_K, AUDIT_ARCH_X86_64, 0, native.len() as u8));
    p.extend(native);
    p.push(jump(JEQ_K, AUDIT_ARCH_I386, 0, compat.len() as u8));
    p.extend(compat);
    p.push(stmt(RET_K, RET_KILL_PROCESS));
    p
}

/// A filter the tracer adds to one process (`fd_program`) stops these calls on one descriptor.
pub const SENDS_ON_FD: &[u32] = &[nr::WRITE, nr::WRITEV, nr::SENDFILE];
pub const READS_ON_FD: &[u32] = &[nr::READ];

/// A second filter, which the tracer makes a process install on itself (an injected
/// `seccomp(SECCOMP_SET_MODE_FILTER)`): `SECCOMP_RET_TRACE` for `calls` on descriptor `fd`
/// (first argument), allow for everything else. The kernel runs every filter of a process and
/// takes the action of highest precedence (kill > trap > errno > user notification > trace >
/// log > allow; seccomp(2)), so this only turns some of the first filter's "allow" into
/// "trace" and never weakens it. Only the x86-64 ABI is watched: a 32-bit write is let through
/// (the first filter already keeps such programs from being exec'd).
pub fn fd_program(fd: u32, calls: &[u32]) -> Vec<sock_filter> {
    let n = calls.len() as u8;
    let mut p = vec![
        stmt(LD_W_ABS, OFF_ARCH),
        jump(JEQ_K, AUDIT_ARCH_X86_64, 0, 3 + 2 * n),
        // The low 32 bits of the first argument: a descriptor is an int.
        stmt(LD_W_ABS, OFF_ARG0),
        jump(JEQ_K, fd, 0, 1 + 2 * n),
        stmt(LD_W_ABS, OFF_NR),
    ];
    for &c in calls {
        p.push(jump(JEQ_K, c, 0, 1));
        p.push(stmt(RET_K, RET_TRACE | c));
    }
    p.push(stmt(RET_K, RET_ALLOW));
    p
}

/// Sets no_new_privs (seccompiler does) and installs the filter on the calling thread.
pub fn install(extra: &[u32]) -> Result<(), seccompiler::Error> {
    seccompiler::apply_filter(&program(extra, &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter for the instructions the filter uses, to check its decisions
    /// without installing it.
    fn eval(p: &[sock_filter], arch: u32, nr: u32, arg0: u32) -> u32 {
        let mut pc = 0usize;
        let mut a = 0u32;
        loop {
            let i = &p[pc];
            match i.code {
                LD_W_ABS => {
                    a = match i.k {
                        OFF_NR => nr,
                        OFF_ARCH => arch,
                        OFF_ARG0 => arg0,
                        k => panic!("load of offset {k}"),
                    };
                    pc += 1;
                }
                RET_K => return i.k,
                JEQ_K | JGE_K | JSET_K => {
                    let taken = match i.code {
                        JEQ_K => a == i.k,
                        JGE_K => a >= i.k,
                        _ => a & i.k != 0,
                    };
                    pc += 1 + if taken { i.jt } else { i.jf } as usize;
                }
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn decisions() {
        let p = program(&[42], &[nr::OPENAT]);
        let x = AUDIT_ARCH_X86_64;
        assert_eq!(eval(&p, x, 59, 0), RET_TRACE | 59);
        assert_eq!(eval(&p, x, 322, 0), RET_TRACE | 322);
        assert_eq!(eval(&p, x, 42, 0), RET_TRACE | 42);
        assert_eq!(eval(&p, x, 0, 0), RET_ALLOW);
        assert_eq!(eval(&p, x, nr::OPENAT, 0), RET_USER_NOTIF);
        assert_eq!(eval(&p, AUDIT_ARCH_I386, 5, 0), RET_ALLOW);
        assert_eq!(eval(&p, x, 435, 0), RET_ERRNO | 38);
        assert_eq!(eval(&p, x, 56, 0x11), RET_ALLOW);
        assert_eq!(eval(&p, x, 56, CLONE_UNTRACED | 0x11), RET_ERRNO | 1);
        assert_eq!(eval(&p, x, X32_SYSCALL_BIT | 59, 0), RET_ERRNO | 1);
        let i = AUDIT_ARCH_I386;
        assert_eq!(eval(&p, i, 11, 0), RET_ERRNO | 1);
        assert_eq!(eval(&p, i, 358, 0), RET_ERRNO | 1);
        assert_eq!(eval(&p, i, 120, CLONE_UNTRACED), RET_ERRNO | 1);
        assert_eq!(eval(&p, i, 3, 0), RET_ALLOW);
        assert_eq!(eval(&p, 0xC000_00B7, 221, 0), RET_KILL_PROCESS);
    }

    #[test]
    fn fd_decisions() {
        let p = fd_program(7, SENDS_ON_FD);
        let x = AUDIT_ARCH_X86_64;
        assert_eq!(eval(&p, x, nr::WRITE, 7), RET_TRACE | nr::WRITE);
        assert_eq!(eval(&p, x, nr::WRITEV, 7), RET_TRACE | nr::WRITEV);
        assert_eq!(eval(&p, x, nr::SENDFILE, 7), RET_TRACE | nr::SENDFILE);
        assert_eq!(eval(&p, x, nr::WRITE, 1), RET_ALLOW);
        assert_eq!(eval(&p, x, nr::READ, 7), RET_ALLOW);
        assert_eq!(eval(&p, AUDIT_ARCH_I386, 4, 7), RET_ALLOW);
        let r = fd_program(0, READS_ON_FD);
        assert_eq!(eval(&r, x, nr::READ, 0), RET_TRACE | nr::READ);
        assert_eq!(eval(&r, x, nr::READ, 3), RET_ALLOW);
        assert_eq!(eval(&r, x, nr::WRITE, 0), RET_ALLOW);
    }
}
