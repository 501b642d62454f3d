//! The supervisor of a guarded tree: one thread that is the ptrace tracer of every process in
//! it, woken only by the seccomp filter's stops (exec, ptrace) and by process creation and exit.
//!
//! At a descendant's first exec it injects three system calls into the caller
//! (`landlock_create_ruleset`, `landlock_restrict_self`, `close`) so that process and everything
//! it starts live in a nested Landlock domain: the kernel's ptrace check then refuses them the
//! command's `/proc/PID/environ`, `/proc/PID/mem`, `process_vm_readv` and `ptrace`. At every
//! descendant exec it hands the kernel a new environment array without the protected variables,
//! written below the caller's stack pointer — never compacting the caller's own array, which a
//! vfork child shares with its parent.
//!
//! x86-64 only: the registers are read and written with `PTRACE_GETREGS`.

use super::Protected;
use super::filter::nr;
use super::memory::{self, Fault};
use nix::errno::Errno;
use nix::libc;
use nix::sys::ptrace::{self, Event, Options};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::collections::{HashMap, HashSet};

/// One process (thread group leader or thread) in the tree.
#[derive(Debug, Clone, Copy)]
struct Task {
    /// The thread group: the command is the group whose id is the first pid.
    tgid: Pid,
    /// Already inside the nested Landlock domain (inherited by children).
    contained: bool,
}

/// What a guarded run reports at the end, for the user.
#[derive(Debug, Default)]
pub struct Summary {
    pub execs: u64,
    pub rewritten: u64,
    pub denied: Vec<String>,
    pub notices: Vec<String>,
    pub left_running: usize,
}

pub struct Tracer<'a> {
    command: Pid,
    protected: &'a Protected,
    tasks: HashMap<Pid, Task>,
    /// Children whose first stop came before their parent's fork event.
    early: HashSet<Pid>,
    pub summary: Summary,
    warned_ptrace: bool,
    landlock_abi: u32,
    setuid_seen: HashSet<std::path::PathBuf>,
}

pub const OPTIONS: Options = Options::PTRACE_O_TRACESECCOMP
    .union(Options::PTRACE_O_TRACEFORK)
    .union(Options::PTRACE_O_TRACEVFORK)
    .union(Options::PTRACE_O_TRACECLONE)
    .union(Options::PTRACE_O_TRACEEXEC)
    .union(Options::PTRACE_O_TRACESYSGOOD)
    .union(Options::PTRACE_O_EXITKILL);

/// Landlock's "make block device" right: a domain that handles only it changes nothing a
/// program normally does, but is a domain, which is what the ptrace check looks at.
const LANDLOCK_ACCESS_FS_MAKE_BLOCK: u64 = 1 << 11;
const LANDLOCK_ACCESS_FS_REFER: u64 = 1 << 13;
const LANDLOCK_RULE_PATH_BENEATH: u64 = 1;

/// Environment strings spread wider than this are read one by one.
const BULK_LIMIT: usize = 1 << 20;

impl<'a> Tracer<'a> {
    pub fn new(command: Pid, protected: &'a Protected, landlock_abi: u32) -> Self {
        let mut tasks = HashMap::new();
        tasks.insert(
            command,
            Task {
                tgid: command,
                contained: false,
            },
        );
        Tracer {
            command,
            protected,
            tasks,
            early: HashSet::new(),
            summary: Summary::default(),
            warned_ptrace: false,
            landlock_abi,
            setuid_seen: HashSet::new(),
        }
    }

    /// Serves the tree until the command exits; returns its wait status. Processes it leaves
    /// behind are killed: a guarded tree lives as long as its command.
    pub fn run(&mut self) -> nix::Result<WaitStatus> {
        let status = loop {
            let st = match waitpid(None, Some(WaitPidFlag::__WALL)) {
                Ok(st) => st,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            };
            if let Some(done) = self.handle(st) {
                break done;
            }
        };
        self.end();
        Ok(status)
    }

    /// Kills what is left and reaps it.
    fn end(&mut self) {
        let left: Vec<Pid> = self
            .tasks
            .iter()
            .filter(|(pid, t)| **pid == t.tgid)
            .map(|(pid, _)| *pid)
            .collect();
        for pid in &left {
            let _ = nix::sys::signal::kill(*pid, Signal::SIGKILL);
        }
        self.summary.left_running = left.len();
        loop {
            match waitpid(None, Some(WaitPidFlag::__WALL)) {
                Err(Errno::EINTR) => continue,
                Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    /// One wait status; `Some` when the command itself has ended.
    fn handle(&mut self, st: WaitStatus) -> Option<WaitStatus> {
        match st {
            WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _) => {
                self.tasks.remove(&pid);
                if pid == self.command {
                    return Some(st);
                }
            }
            WaitStatus::PtraceEvent(pid, _, ev) => self.event(pid, ev),
            WaitStatus::Stopped(pid, sig) => {
                // A signal on its way to the tracee: deliver it.
                let _ = ptrace::cont(pid, sig);
            }
            WaitStatus::PtraceSyscall(pid) => {
                let _ = ptrace::cont(pid, None);
            }
            WaitStatus::Continued(_) | WaitStatus::StillAlive => {}
        }
        None
    }

    fn event(&mut self, pid: Pid, ev: i32) {
        const SECCOMP: i32 = Event::PTRACE_EVENT_SECCOMP as i32;
        const FORK: i32 = Event::PTRACE_EVENT_FORK as i32;
        const VFORK: i32 = Event::PTRACE_EVENT_VFORK as i32;
        const CLONE: i32 = Event::PTRACE_EVENT_CLONE as i32;
        const EXEC: i32 = Event::PTRACE_EVENT_EXEC as i32;
        const STOP: i32 = Event::PTRACE_EVENT_STOP as i32;
        match ev {
            SECCOMP => {
                let tag = ptrace::getevent(pid).unwrap_or(-1) as u32;
                self.seccomp_stop(pid, tag);
            }
            FORK | VFORK | CLONE => {
                self.new_child(pid, ev == CLONE);
                let _ = ptrace::cont(pid, None);
            }
            EXEC => {
                // An exec from a non-leader thread takes over the leader's pid.
                if let Ok(former) = ptrace::getevent(pid) {
                    let former = Pid::from_raw(former as i32);
                    if former != pid
                        && let Some(t) = self.tasks.remove(&former)
                    {
                        self.tasks.insert(pid, t);
                    }
                }
                let _ = ptrace::cont(pid, None);
            }
            STOP => {
                // A new child's first stop (seized children report this instead of SIGSTOP),
                // or a group stop. Without PTRACE_LISTEN (not in nix) a group stop cannot be
                // kept: the tree does not support job-control stops (Ctrl-Z).
                if !self.tasks.contains_key(&pid) {
                    // Its parent's fork event has not been seen: hold it until then.
                    self.early.insert(pid);
                    return;
                }
                let _ = ptrace::cont(pid, None);
            }
            _ => {
                let _ = ptrace::cont(pid, None);
            }
        }
    }

    fn new_child(&mut self, parent: Pid, clone: bool) {
        let Ok(msg) = ptrace::getevent(parent) else {
            return;
        };
        let child = Pid::from_raw(msg as i32);
        let parent_task = self.tasks.get(&parent).copied().unwrap_or(Task {
            tgid: parent,
            contained: false,
        });
        let thread = clone
            && ptrace::getregs(parent)
                .map(|r| r.rdi & libc::CLONE_THREAD as u64 != 0)
                .unwrap_or(false);
        self.tasks.insert(
            child,
            Task {
                tgid: if thread { parent_task.tgid } else { child },
                contained: parent_task.contained,
            },
        );
        if self.early.remove(&child) {
            let _ = ptrace::cont(child, None);
        }
    }

    fn seccomp_stop(&mut self, pid: Pid, tag: u32) {
        match tag {
            nr::EXECVE | nr::EXECVEAT => self.exec_stop(pid, tag),
            nr::PTRACE => {
                if !self.warned_ptrace {
                    self.warned_ptrace = true;
                    self.summary.notices.push(format!(
                        "{} (pid {pid}) used ptrace: a debugger or tracer cannot work inside a \
                         guarded tree (keyfence is already its tracer)",
                        comm(pid)
                    ));
                }
                let _ = ptrace::cont(pid, None);
            }
            _ => {
                let _ = ptrace::cont(pid, None);
            }
        }
    }

    fn exec_stop(&mut self, pid: Pid, tag: u32) {
        self.summary.execs += 1;
        let task = *self.tasks.entry(pid).or_insert(Task {
            tgid: pid,
            contained: false,
        });
        let Ok(regs) = ptrace::getregs(pid) else {
            return;
        };
        self.note_setuid(pid, regs, tag);
        if task.tgid == self.command {
            // The command itself (also through its own later execs) keeps its secrets.
            let _ = ptrace::cont(pid, None);
            return;
        }
        if !task.contained {
            match contain(pid, regs, self.landlock_abi) {
                Ok(()) => {
                    if let Some(t) = self.tasks.get_mut(&pid) {
                        t.contained = true;
                    }
                    // The tracee re-issues the exec, which stops here again.
                }
                // `contain` has already failed the exec.
                Err(why) => self.summary.denied.push(format!(
                    "{} (pid {pid}): exec refused, cannot contain it: {why}",
                    comm(pid)
                )),
            }
            return;
        }
        let envp = if tag == nr::EXECVE {
            regs.rdx
        } else {
            regs.r10
        } as usize;
        match rewrite_env(pid, regs, envp, self.protected, tag) {
            Ok(changed) => {
                if changed {
                    self.summary.rewritten += 1;
                }
                let _ = ptrace::cont(pid, None);
            }
            Err(Fault) => self.deny(pid, regs, "cannot read its environment"),
        }
    }

    /// A setuid or setgid program runs without its privileges in the tree (no_new_privs):
    /// say so once per program, since its failure would otherwise be a puzzle.
    fn note_setuid(&mut self, pid: Pid, regs: libc::user_regs_struct, tag: u32) {
        use std::os::unix::fs::PermissionsExt;
        let (path_at, dirfd) = if tag == nr::EXECVE {
            (regs.rdi, None)
        } else {
            (regs.rsi, Some(regs.rdi as i32))
        };
        let Ok(path) = memory::read_cstring(pid, path_at as usize) else {
            return;
        };
        let path: std::path::PathBuf =
            <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(path).into();
        let full = if path.is_absolute() {
            path.clone()
        } else if dirfd.is_none_or(|fd| fd == libc::AT_FDCWD) {
            std::path::Path::new(&format!("/proc/{pid}/cwd")).join(&path)
        } else {
            std::path::Path::new(&format!("/proc/{pid}/fd/{}", dirfd.unwrap_or(0))).join(&path)
        };
        let Ok(meta) = std::fs::metadata(&full) else {
            return;
        };
        if meta.permissions().mode() & 0o6000 == 0 || !self.setuid_seen.insert(path.clone()) {
            return;
        }
        self.summary.notices.push(format!(
            "{} is setuid/setgid: inside a guarded tree it runs without those privileges              (no_new_privs), so it may fail",
            path.display()
        ));
    }

    /// Fails the exec with EPERM: what cannot be checked does not run.
    fn deny(&mut self, pid: Pid, mut regs: libc::user_regs_struct, why: &str) {
        self.summary
            .denied
            .push(format!("{} (pid {pid}): exec refused, {why}", comm(pid)));
        regs.orig_rax = u64::MAX; // skip the call
        regs.rax = (-(libc::EPERM as i64)) as u64;
        let _ = ptrace::setregs(pid, regs);
        let _ = ptrace::cont(pid, None);
    }
}

fn comm(pid: Pid) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|_| "a process".into())
}

/// Writes a filtered copy of the environment array below the stack pointer and points the
/// exec at it. Returns whether anything was removed.
fn rewrite_env(
    pid: Pid,
    mut regs: libc::user_regs_struct,
    envp: usize,
    protected: &Protected,
    tag: u32,
) -> Result<bool, Fault> {
    let pointers = memory::read_pointers(pid, envp)?;
    // The strings usually sit together (a process's initial environment is one block on its
    // stack): read their span in one call, and only strings outside it one by one.
    let (lo, hi) = match (pointers.iter().min(), pointers.iter().max()) {
        (Some(&lo), Some(&hi)) if hi - lo < BULK_LIMIT => (lo, hi),
        _ => (0, 0),
    };
    let block = if hi > lo {
        memory::read_upto(pid, lo, hi - lo + 4096 - hi % 4096)
    } else {
        Vec::new()
    };
    let mut kept = Vec::with_capacity(pointers.len() + 1);
    for &p in &pointers {
        let in_block = p.checked_sub(lo).and_then(|off| {
            let rest = block.get(off..)?;
            memchr::memchr(0, rest).map(|end| &rest[..end])
        });
        let drop = match in_block {
            Some(entry) => protected.drops(entry),
            None => protected.drops(&memory::read_cstring(pid, p)?),
        };
        if !drop {
            kept.push(p);
        }
    }
    if kept.len() == pointers.len() {
        return Ok(false);
    }
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

/// Puts the stopped tracee (at an exec's seccomp stop) into a nested Landlock domain by making
/// it run system calls, then rewinds it to issue the exec again.
///
/// The domain handles "make block device" and, from ABI 2, "refer" (every Landlock domain
/// forbids renaming and linking across directories unless it handles and grants "refer"), and
/// grants both beneath `/`: it restricts nothing a program does with files, yet is a domain,
/// which is what the kernel's ptrace check looks at. Both file descriptors are close-on-exec,
/// so the exec that follows closes them.
fn contain(pid: Pid, saved: libc::user_regs_struct, abi: u32) -> Result<(), String> {
    // The exec must have come from a two-byte `syscall` instruction, which is re-executed.
    let mut insn = [0u8; 2];
    memory::read_exact(pid, saved.rip as usize - 2, &mut insn)
        .map_err(|_| "cannot read its code".to_string())?;
    if insn != [0x0f, 0x05] {
        return Err("the exec did not come from a syscall instruction".into());
    }
    let handled = LANDLOCK_ACCESS_FS_MAKE_BLOCK
        | if abi >= 2 {
            LANDLOCK_ACCESS_FS_REFER
        } else {
            0
        };
    // Scratch space below the red zone: "/\0" at +0, the ruleset attribute (ABI 1 size:
    // handled_access_fs only) at +16, the path-beneath attribute (packed: u64 access, i32 fd)
    // at +32, its fd filled in once known.
    let scratch = (saved.rsp as usize - 128 - 64) & !15;
    let write = |at: usize, bytes: &[u8]| {
        memory::write_all(pid, at, bytes).map_err(|_| "cannot write to its stack".to_string())
    };
    write(scratch, b"/\0")?;
    write(scratch + 16, &handled.to_ne_bytes())?;

    let mut pending = Vec::new();
    let mut call = |first: bool, number: i64, args: [u64; 4]| {
        inject(pid, &mut pending, saved, first, number, args)
    };
    // The first call replaces the exec at its seccomp stop; the next ones re-enter the kernel
    // from the same instruction.
    let root = call(
        true,
        libc::SYS_openat,
        [
            libc::AT_FDCWD as u64,
            scratch as u64,
            (libc::O_PATH | libc::O_CLOEXEC) as u64,
            0,
        ],
    )?;
    let result = (|| {
        if root < 0 {
            return Err(format!("cannot open /: {}", Errno::from_raw(-root as i32)));
        }
        let ruleset = call(
            false,
            libc::SYS_landlock_create_ruleset,
            [(scratch + 16) as u64, 8, 0, 0],
        )?;
        if ruleset < 0 {
            return Err(format!(
                "landlock_create_ruleset failed: {}",
                Errno::from_raw(-ruleset as i32)
            ));
        }
        let mut beneath = handled.to_ne_bytes().to_vec();
        beneath.extend_from_slice(&(root as i32).to_ne_bytes());
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
        if added < 0 {
            return Err(format!(
                "landlock_add_rule failed: {}",
                Errno::from_raw(-added as i32)
            ));
        }
        let restricted = call(
            false,
            libc::SYS_landlock_restrict_self,
            [ruleset as u64, 0, 0, 0],
        )?;
        if restricted < 0 {
            return Err(format!(
                "landlock_restrict_self failed: {}",
                Errno::from_raw(-restricted as i32)
            ));
        }
        Ok(())
    })();
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

/// Runs one system call in the tracee and returns its result (negative errno on failure).
/// `at_entry`: the tracee is at a seccomp stop, so changing the number replaces the call;
/// otherwise it is at a syscall-exit stop and is rewound to the `syscall` instruction.
fn inject(
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
        match waitpid(pid, Some(WaitPidFlag::__WALL)) {
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
fn restore(pid: Pid, saved: libc::user_regs_struct) -> Result<(), String> {
    let mut r = saved;
    r.rax = saved.orig_rax;
    r.rip = saved.rip - 2;
    ptrace::setregs(pid, r).map_err(|e| format!("setregs: {e}"))?;
    ptrace::cont(pid, None).map_err(|e| format!("resume: {e}"))
}
