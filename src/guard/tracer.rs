//! The supervisor of a guarded tree: one thread that is the ptrace tracer of every process in
//! it, woken only by the seccomp filter's stops (exec, ptrace) and by process creation and exit.
//!
//! At the first stop of each process the command creates it makes that process run
//! `landlock_restrict_self` on the fence's ruleset, which the supervisor left open for the tree
//! (fence.rs; when that is gone, at the process's exec, it builds the same ruleset in the caller
//! with injected calls), so that process and everything it starts live in a nested Landlock
//! domain: the kernel's ptrace check then refuses them the command's `/proc/PID/environ`,
//! `/proc/PID/mem`, `process_vm_readv` and `ptrace`, and the fence denies them the credential
//! files, the store, and signals to the command. At every
//! descendant exec it hands the kernel a new environment array without the protected variables,
//! written below the caller's stack pointer — never compacting the caller's own array, which a
//! vfork child shares with its parent.
//!
//! An agent is not always the first process: Codex's npm command is a Node launcher that
//! starts the native `codex` as a child, and Gemini CLI's first Node process starts a second
//! one. When the command is such a launcher (`Protected::launching`), the child it makes whose
//! exec names the agent's program is the agent: it keeps the command's secrets and its
//! standing outside the fence (its own credential files). Only a child the command itself
//! made while it still ran the launcher's executable (`node`), not yet contained, and one at
//! a time: whatever the agent starts is contained at its first stop, before it can exec
//! anything, so it cannot exec the same program to get the same standing; and a command that
//! is the agent itself (a launcher that replaced itself, Gemini CLI told not to relaunch) has
//! no launcher's children. The launcher's other children are contained at their exec.
//!
//! What it makes a stopped process run to contain it, and the environment rewrite, are in
//! contain.rs; which processes on the way to Codex's own sandbox stay outside the fence, in
//! agent_sandbox.rs. What the trace observes at the stops it asked for (execs, opens,
//! connects, sends, writes) is handled in trace/observe.rs: `trace/` owns what the trace sees,
//! `guard/` what the tree may do.
//!
//! x86-64 only: the registers are read and written with `PTRACE_GETREGS`.

use super::Protected;
use super::agent_sandbox::{self, Next, Stage};
use super::contain::{contain, contain_at_start, rewrite_env};
use super::fence::Fence;
use super::filter::nr;
use super::memory::{self, Fault};
use crate::trace::notify;
use crate::trace::observe;
use nix::errno::Errno;
use nix::libc;
use nix::sys::ptrace::{self, Event, Options};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::collections::{HashMap, HashSet};

/// One process (thread group leader or thread) in the tree.
#[derive(Debug, Clone)]
pub(crate) struct Task {
    /// The thread group: the command is the group whose id is the first pid.
    pub(crate) tgid: Pid,
    /// Already inside the nested Landlock domain (inherited by children).
    pub(crate) contained: bool,
    /// A new process of the command's, to be contained at its first stop.
    pub(crate) contain_at_start: bool,
    /// The process that created it (for the trace).
    pub(crate) ppid: Pid,
    /// The package script or top-level command it belongs to (for the trace).
    pub(crate) group: std::rc::Rc<str>,
    /// Past its first stop (the command itself, seized while running, has none): a later
    /// `PTRACE_EVENT_STOP` is a group stop or its end.
    pub(crate) started: bool,
    /// Made by vfork (or clone with CLONE_VFORK, as posix_spawn does) and not yet past its
    /// exec: its parent waits in the kernel until it execs or exits.
    pub(crate) vforked: bool,
    /// The job-control stop that caught it while `vforked`, delivered again at its exec.
    pub(crate) owed_stop: Option<Signal>,
    /// Made by the command itself while it was still to start the agent
    /// (`Protected::launching`): not contained at its first stop, since its exec may be the
    /// agent's.
    pub(crate) by_launcher: bool,
    /// On the way from the agent to the command of its own sandbox (agent_sandbox.rs): not
    /// contained at its first stop, and at its exec only when it leaves that way.
    pub(crate) sandbox: Option<Stage>,
}

impl Task {
    fn new(tgid: Pid, ppid: Pid) -> Task {
        Task {
            tgid,
            contained: false,
            contain_at_start: false,
            ppid,
            group: "".into(),
            started: false,
            vforked: false,
            owed_stop: None,
            by_launcher: false,
            sandbox: None,
        }
    }
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
    pub(crate) command: Pid,
    pub(crate) protected: &'a Protected,
    pub(crate) tasks: HashMap<Pid, Task>,
    /// Children whose first stop came before their parent's fork event.
    pub(crate) early: HashSet<Pid>,
    pub(crate) summary: Summary,
    pub(crate) warned_ptrace: bool,
    pub(crate) warned_bwrap: bool,
    /// The descendants' fence and the descriptor of its shared ruleset (guard); `None`: only
    /// observe (trace alone).
    pub(crate) fence: Option<(&'a Fence, i32)>,
    /// A fence made again since, once a directory the shared one lists entry by entry changed
    /// (`Fence::is_stale`): processes the command starts from then on are contained with it,
    /// built inside each at its exec.
    pub(crate) fresh: Option<Fence>,
    /// Contain descendants and rewrite their environment (guard); false: only observe.
    pub(crate) contain: bool,
    pub(crate) trace: Option<crate::trace::Recorder>,
    /// Sockets' destinations by (process, fd), for sends on connected sockets.
    pub(crate) connected: HashMap<(Pid, u64), (String, Option<u16>)>,
    pub(crate) setuid_seen: HashSet<std::path::PathBuf>,
    /// Per process (thread group), the descriptors a filter added by the tracer already
    /// watches: (`true` for reads, descriptor). Inherited at fork, kept across exec, as the
    /// filters are.
    pub(crate) fd_filters: HashMap<Pid, Vec<(bool, u32)>>,
    /// Network tools whose standard input (a pipe) is watched, by process: the tool's name.
    pub(crate) stdin_tools: HashMap<Pid, std::rc::Rc<str>>,
    /// Calls between their entry and exit stops, whose exit the tracer must see.
    pub(crate) pending_exits: HashMap<Pid, Pending>,
    /// Working directories by process (thread group), looked up at the first relative open and
    /// forgotten when a `chdir`/`fchdir` returns. A child made with `CLONE_FS` but not as a
    /// thread shares its parent's directory under another id, and a thread that left it with
    /// `unshare(CLONE_FS)` has its own: both rare, and then a relative path may be resolved
    /// against the other one's directory.
    pub(crate) cwds: HashMap<Pid, std::path::PathBuf>,
    /// With --trace: the thread that hears the tree's opens through the seccomp listener.
    pub(crate) opens: Option<notify::Opens>,
    pub(crate) listener_tried: bool,
    /// Regular files the tree opened for writing: who opened each first, checked at the end.
    pub(crate) written: observe::Written,
    /// On keyfence's terminal: the command's parent (run/monitor.rs), whose stops mean the
    /// command was stopped from the terminal, and what keyfence then does (suspends itself).
    pub(crate) monitor: Option<(Pid, Box<dyn FnMut() + 'a>)>,
    /// Set when the command has ended: from then on a signal to keyfence is not passed on
    /// but ends keyfence (run/process.rs), and with it the tree (PTRACE_O_EXITKILL).
    pub(crate) ended: Option<&'a std::sync::atomic::AtomicBool>,
    /// The agent a launcher command started (`Protected::launching`), while it runs: it
    /// holds what the command holds.
    pub(crate) agent: Option<Pid>,
}

/// The tracer's ptrace options. The exec event (one more stop per exec) is asked for only by
/// the trace, which records each program from /proc once it is loaded; guard does its work
/// before the exec. Seized tracees get no SIGTRAP after an exec without it.
pub fn options(trace: bool) -> Options {
    let always = Options::PTRACE_O_TRACESECCOMP
        | Options::PTRACE_O_TRACEFORK
        | Options::PTRACE_O_TRACEVFORK
        | Options::PTRACE_O_TRACECLONE
        | Options::PTRACE_O_TRACESYSGOOD
        | Options::PTRACE_O_EXITKILL;
    if trace {
        always | Options::PTRACE_O_TRACEEXEC
    } else {
        always
    }
}

/// Where the supervisor leaves the fence's ruleset for the tree (`fence::share`), or the first
/// free descriptor above.
pub const RULESET_FD: i32 = 1000;

impl<'a> Tracer<'a> {
    pub fn new(
        command: Pid,
        protected: &'a Protected,
        fence: Option<(&'a Fence, i32)>,
        trace: Option<crate::trace::Recorder>,
    ) -> Self {
        let mut tasks = HashMap::new();
        let mut first = Task::new(command, Pid::from_raw(0));
        first.started = true;
        if let Some(rec) = &trace {
            first.group = rec.top.as_str().into();
        }
        tasks.insert(command, first);
        Tracer {
            command,
            protected,
            tasks,
            early: HashSet::new(),
            summary: Summary::default(),
            warned_ptrace: false,
            warned_bwrap: false,
            fence,
            fresh: None,
            contain: fence.is_some(),
            trace,
            connected: HashMap::new(),
            setuid_seen: HashSet::new(),
            fd_filters: HashMap::new(),
            stdin_tools: HashMap::new(),
            pending_exits: HashMap::new(),
            cwds: HashMap::new(),
            opens: None,
            listener_tried: false,
            written: observe::Written::default(),
            monitor: None,
            ended: None,
            agent: None,
        }
    }

    /// Whether the process (thread group) `tgid` holds the command's secrets and standing:
    /// the command, or the agent it launched.
    fn holds(&self, tgid: Pid) -> bool {
        tgid == self.command || self.agent == Some(tgid)
    }

    /// Whether the command is still to start its agent: none started, or the last one ended
    /// (Gemini CLI starts it again when it exits asking for a relaunch).
    fn awaiting_agent(&self) -> bool {
        self.protected.launches.is_some() && self.agent.is_none()
    }

    /// Where to say that the command has ended (before what it left is killed and reaped).
    pub fn with_ended(mut self, ended: &'a std::sync::atomic::AtomicBool) -> Self {
        self.ended = Some(ended);
        self
    }

    /// The command runs under a monitor process (run/monitor.rs): group stops are held
    /// (`PTRACE_LISTEN`) instead of undone, so the monitor sees the command stop, and a stop
    /// of the monitor calls `on_stop`.
    pub fn with_monitor(mut self, monitor: Pid, on_stop: Box<dyn FnMut() + 'a>) -> Self {
        self.monitor = Some((monitor, on_stop));
        self
    }

    /// Serves the tree until the command exits; returns its wait status. Processes it leaves
    /// behind are killed: a guarded tree lives as long as its command.
    pub fn run(&mut self) -> nix::Result<WaitStatus> {
        // The monitor is keyfence's child but no tracee: its stops show only with WUNTRACED.
        let flags = match self.monitor {
            Some(_) => WaitPidFlag::__WALL | WaitPidFlag::WUNTRACED,
            None => WaitPidFlag::__WALL,
        };
        let status = loop {
            // Statuses heard while waiting for one tracee (`wait_for`) come first, in order.
            let st = match deferred_status().map_or_else(|| waitpid(None, Some(flags)), Ok) {
                Ok(st) => st,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            };
            if let Some((monitor, on_stop)) = &mut self.monitor
                && st.pid() == Some(*monitor)
            {
                if let WaitStatus::Stopped(..) = st {
                    on_stop();
                }
                // Its exit comes after the command's, which ends this loop first.
                continue;
            }
            // Opens heard before this stop are handled first: a process's exit is reported
            // after its opens, and its group must still be known.
            self.drain_opens();
            if let Some(done) = self.handle(st) {
                break done;
            }
        };
        if let Some(ended) = self.ended {
            ended.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        self.drain_opens();
        self.end();
        // Connects still waiting for their return when the tree was killed.
        let pending: Vec<Pending> = self.pending_exits.drain().map(|(_, p)| p).collect();
        for p in pending {
            if let Pending::Connect(event) = p {
                self.connect_done(event, None);
            }
        }
        if let Some(opens) = &mut self.opens {
            opens.finish();
        }
        self.drain_opens();
        self.check_written();
        self.mask_summary();
        Ok(status)
    }

    /// Kills what is left and reaps it, answering every stop with SIGKILL until no tracee is
    /// left. The list of known processes is not enough: one killed while it was forking leaves
    /// a child whose fork event never comes, in its first stop, waiting for keyfence; a wait
    /// that ignored it would wait for ever.
    fn end(&mut self) {
        let left: Vec<Pid> = self
            .tasks
            .iter()
            .filter(|(pid, t)| **pid == t.tgid)
            .map(|(pid, _)| *pid)
            .collect();
        self.summary.left_running = left.len() + self.early.len();
        // Every pid here is a tracee not yet reaped, so none can have been reused. Threads are
        // killed with their process.
        for pid in left.iter().chain(self.early.iter()) {
            let _ = nix::sys::signal::kill(*pid, Signal::SIGKILL);
        }
        self.early.clear();
        // A monitor that stopped with the command as it ended waits for a SIGCONT keyfence
        // would only send after its own suspension; it must go on to see the command's end and
        // exit, or the wait below never ends.
        if let Some((monitor, _)) = &self.monitor {
            let _ = nix::sys::signal::kill(*monitor, Signal::SIGCONT);
        }
        loop {
            let st = match deferred_status()
                .map_or_else(|| waitpid(None, Some(WaitPidFlag::__WALL)), Ok)
            {
                Err(Errno::EINTR) => continue,
                Err(_) => break,
                Ok(st) => st,
            };
            match st {
                WaitStatus::Exited(..) | WaitStatus::Signaled(..) => {}
                // A tracee in a stop (the first one of a child nobody heard of, an event, a
                // signal): it is ours to end, and unreaped, so its pid is still its own.
                WaitStatus::PtraceEvent(pid, ..)
                | WaitStatus::Stopped(pid, _)
                | WaitStatus::PtraceSyscall(pid) => {
                    if !self.tasks.contains_key(&pid) {
                        self.summary.left_running += 1;
                    }
                    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                }
                WaitStatus::Continued(_) | WaitStatus::StillAlive => {}
            }
        }
    }

    /// One wait status; `Some` when the command itself has ended.
    fn handle(&mut self, st: WaitStatus) -> Option<WaitStatus> {
        match st {
            WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _) => {
                if let Some(Pending::Connect(event)) = self.pending_exits.remove(&pid) {
                    self.connect_done(event, None);
                }
                if let Some(t) = self.tasks.remove(&pid)
                    && t.tgid == pid
                {
                    if self.agent == Some(pid) {
                        self.agent = None;
                    }
                    self.fd_filters.remove(&pid);
                    self.stdin_tools.remove(&pid);
                    self.cwds.remove(&pid);
                }
                if pid == self.command {
                    return Some(st);
                }
            }
            WaitStatus::PtraceEvent(pid, sig, ev) => self.event(pid, sig, ev),
            WaitStatus::Stopped(pid, sig) => {
                // A signal on its way to the tracee: deliver it.
                let _ = ptrace::cont(pid, sig);
            }
            WaitStatus::PtraceSyscall(pid) => {
                match self.pending_exits.remove(&pid) {
                    Some(Pending::StdinRead(buf)) => self.stdin_read(pid, buf),
                    Some(Pending::Connect(event)) => {
                        let result = ptrace::getregs(pid).ok().map(|r| r.rax as i64);
                        self.connect_done(event, result);
                    }
                    Some(Pending::Chdir) => {
                        let tgid = self.tasks.get(&pid).map_or(pid, |t| t.tgid);
                        self.cwds.remove(&tgid);
                    }
                    None => {}
                }
                let _ = ptrace::cont(pid, None);
            }
            WaitStatus::Continued(_) | WaitStatus::StillAlive => {}
        }
        None
    }

    fn event(&mut self, pid: Pid, sig: Signal, ev: i32) {
        const SECCOMP: i32 = Event::PTRACE_EVENT_SECCOMP as i32;
        const FORK: i32 = Event::PTRACE_EVENT_FORK as i32;
        const VFORK: i32 = Event::PTRACE_EVENT_VFORK as i32;
        const CLONE: i32 = Event::PTRACE_EVENT_CLONE as i32;
        const EXEC: i32 = Event::PTRACE_EVENT_EXEC as i32;
        const STOP: i32 = Event::PTRACE_EVENT_STOP as i32;
        match ev {
            SECCOMP => {
                // The registers say which call stopped (orig_rax), so the event message (the
                // filter's tag) is not fetched: every ptrace request costs a round trip.
                match ptrace::getregs(pid) {
                    Ok(regs) => self.seccomp_stop(pid, regs.orig_rax as u32, regs),
                    Err(_) => {
                        let _ = ptrace::cont(pid, None);
                    }
                }
            }
            FORK | VFORK | CLONE => {
                self.new_child(pid, ev == CLONE, ev == VFORK);
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
                self.trace_exec(pid);
                // A stop it was let past while vforked catches it now, in its new program.
                let owed = self.tasks.get_mut(&pid).and_then(|t| {
                    t.vforked = false;
                    t.owed_stop.take()
                });
                let _ = ptrace::cont(pid, owed);
            }
            STOP => {
                // A new child's first stop (seized children report this instead of SIGSTOP),
                // a group stop, or the end of one. With output to a pipe keyfence shares the
                // command's process group, so Ctrl-Z stops keyfence, and with it every tracee
                // at its next stop: a group stop is undone at once there (the SIGTSTP a tracee
                // was holding for the stopped tracer is delivered after `fg`'s SIGCONT, and
                // holding that stop would leave it stopped for good). On keyfence's own pty
                // the command runs under a monitor (run/monitor.rs) in a group without
                // keyfence, and group stops are held.
                let Some(task) = self.tasks.get(&pid) else {
                    // Its parent's fork event has not been seen: hold it until then.
                    self.early.insert(pid);
                    return;
                };
                if !task.started {
                    self.first_stop(pid);
                } else if self.monitor.is_some() && is_stop_signal(sig) && task.vforked {
                    // Held here, it would never exec, and its parent, waiting in vfork for
                    // that exec, could never stop: the monitor would wait for the command's
                    // stop for good. It runs on to its exec, where the stop is delivered again.
                    if let Some(t) = self.tasks.get_mut(&pid) {
                        t.owed_stop = Some(sig);
                    }
                    let _ = ptrace::cont(pid, None);
                } else if self.monitor.is_some() && is_stop_signal(sig) {
                    // A group stop on keyfence's terminal (Ctrl-Z): held, so the monitor sees
                    // the command stopped; the SIGCONT of `fg` ends it (reported as SIGTRAP).
                    listen(pid);
                } else {
                    let _ = ptrace::cont(pid, None);
                }
            }
            _ => {
                let _ = ptrace::cont(pid, None);
            }
        }
    }

    fn new_child(&mut self, parent: Pid, clone: bool, vfork: bool) {
        let Ok(msg) = ptrace::getevent(parent) else {
            return;
        };
        let child = Pid::from_raw(msg as i32);
        let parent_task = self
            .tasks
            .get(&parent)
            .cloned()
            .unwrap_or_else(|| Task::new(parent, Pid::from_raw(0)));
        let thread = clone
            && ptrace::getregs(parent)
                .map(|r| r.rdi & libc::CLONE_THREAD as u64 != 0)
                .unwrap_or(false);
        if !thread && let Some(f) = self.fd_filters.get(&parent_task.tgid).cloned() {
            // A child inherits its parent's filters (and descriptors).
            self.fd_filters.insert(child, f);
        }
        let by_launcher = !thread
            && !parent_task.contained
            && parent_task.tgid == self.command
            && self.awaiting_agent()
            && self.still_launcher();
        let sandbox = if !self.contain || parent_task.contained {
            None
        } else if let Some(stage) = parent_task.sandbox {
            stage.of_child()
        } else if !thread && self.holds(parent_task.tgid) && self.has_own_sandbox(parent) {
            Some(Stage::Spawned)
        } else {
            None
        };
        self.tasks.insert(
            child,
            Task {
                tgid: if thread { parent_task.tgid } else { child },
                contained: parent_task.contained,
                contain_at_start: self.contain
                    && !thread
                    && !parent_task.contained
                    && !by_launcher
                    && sandbox.is_none()
                    && self.holds(parent_task.tgid),
                ppid: parent,
                group: parent_task.group.clone(),
                started: false,
                vforked: vfork,
                owed_stop: None,
                by_launcher,
                sandbox,
            },
        );
        if self.early.remove(&child) {
            self.first_stop(child);
        }
    }

    /// A new process's first stop: a child of the command enters the nested domain here, so
    /// that its exec later costs one stop, as a grandchild's does, instead of three.
    fn first_stop(&mut self, pid: Pid) {
        let Some(task) = self.tasks.get_mut(&pid) else {
            return;
        };
        task.started = true;
        let fd = self.fence.map_or(-1, |(_, fd)| fd);
        if std::mem::take(&mut task.contain_at_start) && !self.refreshed_fence() {
            match contain_at_start(pid, fd) {
                Ok(true) => {
                    if let Some(t) = self.tasks.get_mut(&pid) {
                        t.contained = true;
                    }
                }
                // Not contained yet: its exec contains it, by the slower way if need be.
                Ok(false) => {}
                // It is gone, or its registers could not be put back: it must not run on.
                Err(why) => {
                    // Killed only if not reaped already: its pid could be another's by now.
                    if !ended_meanwhile(pid) {
                        self.summary.denied.push(format!(
                            "{} (pid {pid}): killed, cannot contain it: {why}",
                            self.comm_of(pid)
                        ));
                        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                    }
                    return;
                }
            }
        }
        let _ = ptrace::cont(pid, None);
    }

    /// Whether the fence was made again because a directory it lists entry by entry changed
    /// (checked as the command starts each process): then the new process is contained at
    /// its exec with the fresh fence, built inside it, and not at its first stop with the
    /// shared ruleset. Until its exec it runs the command's own code.
    fn refreshed_fence(&mut self) -> bool {
        let Some((shared, _)) = self.fence else {
            return false;
        };
        let current = self.fresh.as_ref().unwrap_or(shared);
        if current.is_stale() {
            self.fresh = Some(Fence::new(&shared.denied, shared.abi));
        }
        self.fresh.is_some()
    }

    fn seccomp_stop(&mut self, pid: Pid, tag: u32, regs: libc::user_regs_struct) {
        match tag {
            nr::EXECVE | nr::EXECVEAT => self.exec_stop(pid, tag, regs),
            nr::CONNECT if self.watch_sends(pid, regs) => {
                // The tracee has been resumed to issue the connect again, which stops here
                // once more and is recorded then.
            }
            nr::CONNECT => match self.connect_seen(pid, regs) {
                // Recorded once the call returns: whether the kernel refused it is part of it.
                Some(connect) => self.stop_at_exit(pid, Pending::Connect(connect)),
                None => {
                    let _ = ptrace::cont(pid, None);
                }
            },
            nr::OPEN | nr::OPENAT | nr::SENDTO | nr::SENDMSG => {
                self.observe(pid, tag, regs);
                let _ = ptrace::cont(pid, None);
            }
            nr::WRITE | nr::WRITEV | nr::SENDFILE => {
                self.observe_write(pid, tag, regs);
                let _ = ptrace::cont(pid, None);
            }
            nr::READ if regs.rdi == 0 && self.trace.is_some() => {
                // The data is there only once the read returns: stop at its exit too.
                self.stop_at_exit(pid, Pending::StdinRead(regs.rsi));
            }
            nr::CHDIR | nr::FCHDIR => {
                // Forgotten now and again once the call has returned, so that a thread's open
                // in between cannot leave the old directory cached.
                let tgid = self.tasks.get(&pid).map_or(pid, |t| t.tgid);
                self.cwds.remove(&tgid);
                self.stop_at_exit(pid, Pending::Chdir);
            }
            nr::PTRACE => {
                if !self.warned_ptrace {
                    self.warned_ptrace = true;
                    self.summary.notices.push(format!(
                        "{} (pid {pid}) used ptrace: a debugger or tracer cannot work inside a \
                         guarded tree (keyfence is already its tracer)",
                        self.comm_of(pid)
                    ));
                }
                let _ = ptrace::cont(pid, None);
            }
            _ => {
                let _ = ptrace::cont(pid, None);
            }
        }
    }

    /// Resumes a tracee at a seccomp stop so that it stops again when the call returns.
    fn stop_at_exit(&mut self, pid: Pid, what: Pending) {
        self.pending_exits.insert(pid, what);
        if ptrace::syscall(pid, None).is_err() {
            self.pending_exits.remove(&pid);
        }
    }

    fn exec_stop(&mut self, pid: Pid, tag: u32, regs: libc::user_regs_struct) {
        self.summary.execs += 1;
        if pid == self.command
            && !self.listener_tried
            && let Some(rec) = &self.trace
        {
            // The helper, at the exec of the command: its listener is still open.
            self.listener_tried = true;
            let sensitive = rec.sensitive_paths();
            let started =
                notify::take_listener(pid).and_then(|l| notify::Opens::start(l, sensitive));
            match started {
                Ok(opens) => self.opens = Some(opens),
                // No listener left by the helper (it traces opens by ptrace instead).
                Err(e) if e.raw_os_error() == Some(libc::EBADF) => {}
                // A listener nobody serves would park the tree at its first open: stop here.
                Err(e) => {
                    self.summary
                        .notices
                        .push(format!("trace: cannot take the listener for opens ({e})"));
                    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                    return;
                }
            }
        }
        let task = self
            .tasks
            .entry(pid)
            .or_insert_with(|| Task::new(pid, Pid::from_raw(0)))
            .clone();
        // Decided before the exec may be issued again below, applied after.
        let step = match task.sandbox {
            Some(stage) if self.contain && !task.contained => {
                Some(self.sandbox_step(pid, tag, regs, stage))
            }
            _ => None,
        };
        let in_chain = matches!(step, Some(Next::Chain(_)));
        let below = self.contain && !self.holds(task.tgid) && !in_chain;
        self.note_program(pid, regs, tag, below);
        let envp = if tag == nr::EXECVE {
            regs.rdx
        } else {
            regs.r10
        } as usize;
        if self.trace.is_some() && self.watch_stdin(pid, tag, regs) {
            // Resumed to issue the exec again, which stops here once more.
            return;
        }
        if let Some(step) = step {
            if let Next::Refused(why) = &step {
                self.summary.notices.push(format!(
                    "{} (pid {pid}): Codex's sandbox refused, so its command does not run: \
                     bubblewrap was asked for {why}",
                    self.comm_of(pid)
                ));
            }
            if let Some(t) = self.tasks.get_mut(&pid) {
                t.sandbox = match step {
                    Next::Chain(stage) => Some(stage),
                    Next::Off | Next::Refused(_) => None,
                };
            }
        }
        if task.by_launcher
            && !task.contained
            && task.tgid == pid
            && self.awaiting_agent()
            && self.launches_agent(pid, tag, regs)
        {
            self.agent = Some(pid);
            if let Some(t) = self.tasks.get_mut(&pid) {
                t.by_launcher = false;
            }
        }
        if self.holds(task.tgid) || !self.contain {
            // The command itself (also through its own later execs), and the agent it
            // launched, keep their secrets; with trace alone nothing is changed.
            let _ = ptrace::cont(pid, None);
            return;
        }
        if in_chain {
            // A link of the agent's sandbox: outside the fence, without the secrets.
            match rewrite_env(pid, regs, envp, self.protected, tag) {
                Ok(changed) => {
                    self.summary.rewritten += u64::from(changed);
                    let _ = ptrace::cont(pid, None);
                }
                Err(Fault) => self.deny(pid, regs, "cannot read its environment"),
            }
            return;
        }
        // Containment is tracked per thread, and every thread that execs below the command is
        // contained first. So when a non-leader thread's exec takes over the leader's pid
        // (which guard alone does not follow: no exec event), the new image is contained
        // whatever the leader's entry says, and an entry never claims a containment its thread
        // lacks.
        if !task.contained
            && let Some((shared, fd)) = self.fence
        {
            // With a fresh fence the shared ruleset is out of date: no descriptor to try.
            let (fence, fd) = match &self.fresh {
                Some(f) => (f, -1),
                None => (shared, fd),
            };
            match contain(pid, regs, fence, fd) {
                Ok(()) => {
                    if let Some(t) = self.tasks.get_mut(&pid) {
                        t.contained = true;
                    }
                    // The tracee re-issues the exec, which stops here again.
                }
                // `contain` has already failed the exec.
                Err(why) => self.summary.denied.push(format!(
                    "{} (pid {pid}): exec refused, cannot contain it: {why}",
                    self.comm_of(pid)
                )),
            }
            return;
        }
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

    /// Whether the agent `pid` (the command, or the agent it launched) is one whose own sandbox
    /// keyfence lets through (agent_sandbox.rs), by its executable's file name.
    fn has_own_sandbox(&self, pid: Pid) -> bool {
        std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| {
            exe.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| agent_sandbox::AGENTS.contains(&n))
        })
    }

    /// What this exec makes of a process on the way to the agent's sandbox.
    fn sandbox_step(&self, pid: Pid, tag: u32, regs: libc::user_regs_struct, stage: Stage) -> Next {
        let (path_at, argv_at, dirfd) = if tag == nr::EXECVE {
            (regs.rdi, regs.rsi, None)
        } else {
            (regs.rsi, regs.rdx, Some(regs.rdi as i32))
        };
        let Ok(path) = memory::read_cstring(pid, path_at as usize) else {
            return Next::Off;
        };
        let argv: Vec<Vec<u8>> = match memory::read_pointers(pid, argv_at as usize) {
            Ok(pointers) => {
                let strings = memory::Strings::read(pid, &pointers);
                match pointers
                    .iter()
                    .map(|&p| strings.get(pid, p).map(|s| s.into_owned()))
                    .collect()
                {
                    Ok(argv) => argv,
                    Err(Fault) => return Next::Off,
                }
            }
            Err(Fault) => return Next::Off,
        };
        // The agent: the nearest holder above (its sandbox's links are its descendants).
        let agent = self
            .agent
            .filter(|a| self.is_below(pid, *a))
            .unwrap_or(self.command);
        let runs_agent = match (
            std::fs::metadata(format!("/proc/{agent}/exe")),
            std::fs::metadata(exec_target(pid, &path, dirfd)),
        ) {
            (Ok(a), Ok(t)) => {
                use std::os::unix::fs::MetadataExt;
                (a.dev(), a.ino()) == (t.dev(), t.ino())
            }
            _ => false,
        };
        let denied = self
            .fence
            .map(|(f, _)| f.denied.as_slice())
            .unwrap_or_default();
        agent_sandbox::next(
            stage,
            &agent_sandbox::Exec {
                runs_agent,
                argv: &argv,
            },
            |argv| {
                // Paths are resolved as the tracer sees them: only right in its mount namespace.
                let ns = |p: &str| {
                    std::fs::metadata(p).map(|m| {
                        use std::os::unix::fs::MetadataExt;
                        (m.dev(), m.ino())
                    })
                };
                match (ns(&format!("/proc/{pid}/ns/mnt")), ns("/proc/self/ns/mnt")) {
                    (Ok(a), Ok(b)) if a == b => {}
                    _ => return Err(agent_sandbox::Refusal::OtherNamespace),
                }
                agent_sandbox::check_bubblewrap(argv, denied, |p| std::fs::canonicalize(p).ok())
            },
        )
    }

    /// Whether `pid` descends from `ancestor`, by the parents the tracer recorded.
    fn is_below(&self, pid: Pid, ancestor: Pid) -> bool {
        let mut at = pid;
        for _ in 0..self.tasks.len() {
            let Some(t) = self.tasks.get(&at) else {
                return false;
            };
            if t.tgid == ancestor {
                return true;
            }
            at = t.ppid;
        }
        false
    }

    /// Whether the command still runs the launcher's executable (when the profile names it):
    /// Codex's launcher on a Node with `process.execve` replaces itself with the agent, whose
    /// own children (its sandbox helper is `codex` too) must not qualify.
    fn still_launcher(&self) -> bool {
        let Some((Some(launcher), _)) = &self.protected.launches else {
            return true;
        };
        std::fs::read_link(format!("/proc/{}/exe", self.command)).is_ok_and(|exe| {
            exe.file_name()
                .is_some_and(|n| n.as_encoded_bytes() == launcher.as_slice())
        })
    }

    /// Whether this exec, by a child of the launcher, names the agent's program.
    fn launches_agent(&self, pid: Pid, tag: u32, regs: libc::user_regs_struct) -> bool {
        let Some((_, program)) = &self.protected.launches else {
            return false;
        };
        let path_at = if tag == nr::EXECVE {
            regs.rdi
        } else {
            regs.rsi
        };
        memory::read_cstring(pid, path_at as usize)
            .is_ok_and(|path| path.rsplit(|&c| c == b'/').next() == Some(program.as_slice()))
    }

    /// A setuid or setgid program runs without its privileges in the tree (no_new_privs):
    /// say so once per program, since its failure would otherwise be a puzzle. And bubblewrap
    /// (`below`: in the fenced part of the tree) cannot set up its sandbox: a process in a
    /// Landlock domain may not mount, so it fails with "Failed to make / slave". Only Codex
    /// CLI's own sandbox, started by the agent itself, is let through (agent_sandbox.rs):
    /// say so once, with what works.
    fn note_program(&mut self, pid: Pid, regs: libc::user_regs_struct, tag: u32, below: bool) {
        use std::os::unix::fs::PermissionsExt;
        let (path_at, dirfd) = if tag == nr::EXECVE {
            (regs.rdi, None)
        } else {
            (regs.rsi, Some(regs.rdi as i32))
        };
        let Ok(path) = memory::read_cstring(pid, path_at as usize) else {
            return;
        };
        if below
            && !self.warned_bwrap
            && path.rsplit(|&c| c == b'/').next() == Some(b"bwrap".as_slice())
        {
            self.warned_bwrap = true;
            self.summary.notices.push(format!(
                "bwrap (pid {pid}) cannot set up its sandbox inside a guarded tree (a process in \
                 the fence's Landlock domain may not mount); only Codex CLI's own sandbox, \
                 started by codex itself, is let through; run a program that needs another \
                 bubblewrap sandbox outside keyfence's guard"
            ));
        }
        let full = exec_target(pid, &path, dirfd);
        let path: std::path::PathBuf =
            <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(path).into();
        let Ok(meta) = std::fs::metadata(&full) else {
            return;
        };
        if meta.permissions().mode() & 0o6000 == 0 || !self.setuid_seen.insert(path.clone()) {
            return;
        }
        self.summary.notices.push(format!(
            "{} is setuid/setgid: inside a guarded tree it runs without those privileges \
             (no_new_privs), so it may fail",
            path.display()
        ));
    }

    /// Fails the exec with EPERM: what cannot be checked does not run.
    fn deny(&mut self, pid: Pid, mut regs: libc::user_regs_struct, why: &str) {
        self.summary.denied.push(format!(
            "{} (pid {pid}): exec refused, {why}",
            self.comm_of(pid)
        ));
        regs.orig_rax = u64::MAX; // skip the call
        regs.rax = (-(libc::EPERM as i64)) as u64;
        let _ = ptrace::setregs(pid, regs);
        let _ = ptrace::cont(pid, None);
    }
}

impl Tracer<'_> {
    /// The values keyfence protects or watches: (name, value).
    fn values(&self) -> impl Iterator<Item = (std::borrow::Cow<'_, str>, &[u8])> {
        let protected = self
            .protected
            .names
            .iter()
            .zip(&self.protected.values)
            .map(|(n, v)| (String::from_utf8_lossy(n), v.expose()));
        let watched = self
            .trace
            .iter()
            .flat_map(|r| r.watched())
            .map(|w| (w.label.as_str().into(), w.value.expose()));
        protected.chain(watched)
    }

    /// A process's name for the notices on stderr. It is the first 15 bytes of the program's
    /// file name, or what the process set (`prctl(PR_SET_NAME)`): too short to hold a whole
    /// value, so whole-value masking misses it, yet a tree can name its processes after pieces
    /// of a key and make them earn a notice. One that shares 8 bytes in a row with a value is
    /// shown as `<keyfence:NAME>`.
    pub(crate) fn comm_of(&self, pid: Pid) -> String {
        const PIECE: usize = 8;
        let name = comm(pid);
        let found = self.values().find(|(_, v)| {
            name.as_bytes()
                .windows(PIECE)
                .any(|w| memchr::memmem::find(v, w).is_some())
        });
        match found {
            Some((label, _)) => format!("<keyfence:{label}>"),
            None => name,
        }
    }

    /// The notices name paths the tree chose (a setuid program's): any value in one is
    /// masked, as in the trace.
    fn mask_summary(&mut self) {
        // Taken out, so that the values can be borrowed without a copy of any.
        let mut lines = std::mem::take(&mut self.summary.notices);
        let notices = lines.len();
        lines.append(&mut self.summary.denied);
        for line in &mut lines {
            for (label, value) in self.values() {
                if let Ok(v) = std::str::from_utf8(value)
                    && !v.is_empty()
                    && line.contains(v)
                {
                    *line = line.replace(v, &format!("<keyfence:{label}>"));
                }
            }
        }
        self.summary.denied = lines.split_off(notices);
        self.summary.notices = lines;
    }
}

/// What the tracer waits for at a call's exit stop.
pub(crate) enum Pending {
    /// A watched network tool's read of its standard input: the buffer.
    StdinRead(u64),
    /// A connect, recorded with its outcome.
    Connect(crate::trace::Event),
    /// A change of working directory: the cached one is stale.
    Chdir,
}

pub(crate) fn comm(pid: Pid) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|_| "a process".into())
}

/// The file an exec names, as a path the tracer can open: through the tracee's own root,
/// directory or descriptor (it may be in another mount namespace), and its `/proc/self`.
fn exec_target(pid: Pid, path: &[u8], dirfd: Option<i32>) -> std::path::PathBuf {
    let text = String::from_utf8_lossy(path);
    if let Some(rest) = text
        .strip_prefix("/proc/self/")
        .or_else(|| text.strip_prefix("/proc/thread-self/"))
    {
        return format!("/proc/{pid}/{rest}").into();
    }
    if text.starts_with('/') {
        return format!("/proc/{pid}/root{text}").into();
    }
    match dirfd {
        Some(fd) if fd != libc::AT_FDCWD && text.is_empty() => {
            format!("/proc/{pid}/fd/{fd}").into()
        }
        Some(fd) if fd != libc::AT_FDCWD => format!("/proc/{pid}/fd/{fd}/{text}").into(),
        _ => format!("/proc/{pid}/cwd/{text}").into(),
    }
}

thread_local! {
    /// Wait statuses of other tracees heard while waiting for one (`wait_for`), for the main
    /// loop, in the order they came. Thread-local: the tracer is one thread, the only one that
    /// may wait for its tracees.
    static DEFERRED: std::cell::RefCell<std::collections::VecDeque<WaitStatus>> =
        const { std::cell::RefCell::new(std::collections::VecDeque::new()) };
}

fn deferred_status() -> Option<WaitStatus> {
    DEFERRED.with(|d| d.borrow_mut().pop_front())
}

/// Whether `pid`'s end was heard by `wait_for` and not yet handled (it is reaped).
fn ended_meanwhile(pid: Pid) -> bool {
    DEFERRED.with(|d| {
        d.borrow().iter().any(
            |st| matches!(st, WaitStatus::Exited(p, _) | WaitStatus::Signaled(p, ..) if *p == pid),
        )
    })
}

/// The next wait status of one tracee, while the tracer works on it (injected calls, a single
/// step). Waits for any tracee, not for `pid` alone, and keeps the others' statuses for the
/// main loop: a thread group leader's end is reported only once its other threads are reaped,
/// and only a wait for any reaps them. `pid`'s own end is also kept for the main loop, which
/// must hear of every end (the command's above all).
pub(super) fn wait_for(pid: Pid) -> nix::Result<WaitStatus> {
    loop {
        match waitpid(None, Some(WaitPidFlag::__WALL)) {
            Ok(st) if st.pid() == Some(pid) => {
                if matches!(st, WaitStatus::Exited(..) | WaitStatus::Signaled(..)) {
                    DEFERRED.with(|d| d.borrow_mut().push_back(st));
                }
                return Ok(st);
            }
            Ok(st) => DEFERRED.with(|d| d.borrow_mut().push_back(st)),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

fn is_stop_signal(sig: Signal) -> bool {
    matches!(
        sig,
        Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU
    )
}

/// Leaves a tracee in its group stop, as a process stopped without a tracer would be, until a
/// SIGCONT. By hand: nix has no wrapper for `PTRACE_LISTEN`.
#[expect(
    unsafe_code,
    reason = "PTRACE_LISTEN through libc: nix does not wrap it"
)]
fn listen(pid: Pid) {
    // SAFETY: PTRACE_LISTEN takes no pointers; the addr and data arguments are ignored.
    unsafe {
        libc::ptrace(
            libc::PTRACE_LISTEN,
            pid.as_raw(),
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
}
