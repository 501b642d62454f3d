/* Counts the `cpuid` instructions a program executes before its first exec, by single-stepping
 * it under ptrace: each one traps to the hypervisor in a VM (about 10 us here), which is where
 * glibc's start-up time goes (bench/README.md, "Run, phantom, sandbox").
 *   gcc -O2 -o /tmp/cpuid-count bench/cpuid-count.c
 *   /tmp/cpuid-count /usr/bin/env true             # glibc: 68
 *   /tmp/cpuid-count target/.../keyfence run -- true
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: %s PROGRAM [ARGS...]\n", argv[0]); return 2; }
  pid_t pid = fork();
  if (pid == 0) {
    ptrace(PTRACE_TRACEME, 0, 0, 0);
    raise(SIGSTOP);
    execv(argv[1], argv + 1);
    _exit(127);
  }
  int st;
  waitpid(pid, &st, 0);
  ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL);
  ptrace(PTRACE_CONT, pid, 0, 0);
  waitpid(pid, &st, 0); /* the exec of PROGRAM itself */
  long steps = 0, cpuids = 0;
  for (;;) {
    struct user_regs_struct regs;
    ptrace(PTRACE_GETREGS, pid, 0, &regs);
    errno = 0;
    long word = ptrace(PTRACE_PEEKTEXT, pid, regs.rip, 0);
    if (errno == 0 && (word & 0xffff) == 0xa20f) /* 0f a2: cpuid */
      cpuids++;
    ptrace(PTRACE_SINGLESTEP, pid, 0, 0);
    waitpid(pid, &st, 0);
    steps++;
    if (WIFEXITED(st) || WIFSIGNALED(st)) break;
    if (st >> 8 == (SIGTRAP | (PTRACE_EVENT_EXEC << 8))) break; /* PROGRAM's own exec */
  }
  printf("%ld instructions, %ld cpuid, before exiting or exec'ing\n", steps, cpuids);
  kill(pid, SIGKILL);
  return 0;
}
