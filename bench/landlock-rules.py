#!/usr/bin/env python3
"""What the size of a Landlock ruleset costs, apart from keyfence: the descendant fence (#15)
gives each child of a guarded command one `landlock_restrict_self` on a ruleset of one rule per
sibling on the way to each credential path (about 90 in a developer's home, 1 before #15).

usage: landlock-rules.py [N ...]   (default: 1 90 340)

For each N: a ruleset like the fence's (read-file and read-dir handled, `/` readable) with N-1
more path rules on directories of a scratch tree; then, in REPS forked children each,
`landlock_restrict_self` timed inside the child, and OPENS opens of a file in /usr/lib
under the domain (each open walks the path up against the domain's rules) against the same
opens unrestricted. Medians; times are wall clock inside the child, so the fork is not in them.
"""

import ctypes
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time

sys.dont_write_bytecode = True

NR_CREATE, NR_ADD_RULE, NR_RESTRICT = 444, 445, 446
RULE_PATH_BENEATH = 1
READ_FILE, READ_DIR = 1 << 2, 1 << 3
PR_SET_NO_NEW_PRIVS = 38
REPS = int(os.environ.get("REPS", "200"))
OPENS = int(os.environ.get("OPENS", "2000"))
TARGET = "/usr/lib/os-release" if os.path.exists("/usr/lib/os-release") else "/etc/hostname"

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def check(ret, what):
    if ret < 0:
        err = ctypes.get_errno()
        sys.exit(f"landlock-rules: {what} failed: {os.strerror(err)}\n"
                 "hint: needs a kernel with Landlock enabled (lsm= includes landlock)")
    return ret


def ruleset(n, scratch):
    handled = READ_FILE | READ_DIR
    attr = struct.pack("QQQ", handled, 0, 0)
    fd = check(libc.syscall(NR_CREATE, attr, 8, 0), "landlock_create_ruleset")
    paths = ["/"] + [os.path.join(scratch, f"d{i}") for i in range(n - 1)]
    for p in paths:
        os.makedirs(p, exist_ok=True)
        pfd = os.open(p, os.O_PATH | os.O_CLOEXEC)
        rule = struct.pack("=Qi", handled, pfd)
        check(libc.syscall(NR_ADD_RULE, fd, RULE_PATH_BENEATH, rule, 0), "landlock_add_rule")
        os.close(pfd)
    return fd


def child(fd, restrict):
    """In a forked child: (restrict seconds, seconds per open)."""
    t_restrict = 0.0
    if restrict:
        check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        t0 = time.perf_counter()
        check(libc.syscall(NR_RESTRICT, fd, 0), "landlock_restrict_self")
        t_restrict = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(OPENS):
        os.close(os.open(TARGET, os.O_RDONLY))
    return t_restrict, (time.perf_counter() - t0) / OPENS


def measure(fd, restrict, reps):
    out = []
    for _ in range(reps):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            os.write(w, struct.pack("dd", *child(fd, restrict)))
            os._exit(0)
        os.close(w)
        data = os.read(r, 16)
        os.close(r)
        os.waitpid(pid, 0)
        out.append(struct.unpack("dd", data))
    return out


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [1, 90, 340]
    scratch = tempfile.mkdtemp(prefix="kf-landlock-")
    try:
        base = measure(-1, False, max(REPS // 4, 10))
        open_bare = statistics.median(o for _, o in base)
        print(f"open+close of {TARGET}, no domain: {open_bare * 1e6:.2f} us")
        for n in sizes:
            fd = ruleset(n, scratch)
            runs = measure(fd, True, REPS)
            os.close(fd)
            restrict = statistics.median(r for r, _ in runs)
            opened = statistics.median(o for _, o in runs)
            print(f"{n:5d} rules: landlock_restrict_self {restrict * 1e6:6.1f} us; "
                  f"open+close {opened * 1e6:.2f} us ({(opened - open_bare) * 1e6:+.2f})")
    finally:
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
