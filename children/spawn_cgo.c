//go:build cgo && linux

// The direct spawn: Start's child in C, without the exec helper's extra
// exec. sockd_spawn clones a child that shares sockd's memory and stops
// sockd's calling thread until the child has exec'd or died
// (CLONE_VM|CLONE_VFORK, as vfork(2) and Go's own ForkExec do, so a large
// sockd copies no page tables), on a stack of its own. The child sets up
// what Go's ForkExec sets up for Start (signal dispositions and mask,
// process group, working directory, fds 0, 1, 2 and 3…, the original
// RLIMIT_NOFILE), then what the exec helper applies (umask, rlimits,
// close-on-exec above its files, nice, groups, gid, uid), in the helper's
// order, writes its own pid into the environment and execs the program.
// A step that fails writes a report to the error pipe (close-on-exec: an
// exec that succeeds closes it) and exits 127, and Start returns the
// error.
//
// The child runs in sockd's address space while sockd's other threads
// run on: it calls only async-signal-safe code (raw system calls through
// syscall(3), memset; no malloc, no stdio, no locks), reads only what
// the parent prepared, and writes only its own stack, the parent's
// scratch array and pid slot, and errno of the parent's thread, which
// sleeps until the child is gone. Every signal is blocked around
// the clone, and the child resets the handlers sockd installed (Go's)
// to SIG_DFL before it restores the signal mask, so no Go handler can
// run in it.

#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "spawn_cgo.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

// RLIMIT_NOFILE as sockd found it, before the Go runtime raised its soft
// limit (a constructor runs before the runtime starts). The child puts it
// back as Go's ForkExec does, unless sockd's limit was changed since.
static struct rlimit orig_nofile;
static int have_orig_nofile;

static void __attribute__((constructor)) sockd_save_nofile(void) {
	if (getrlimit(RLIMIT_NOFILE, &orig_nofile) == 0) {
		have_orig_nofile = 1;
	}
}

// The child's stack. The caller holds Go's syscall.ForkLock for writing,
// so there is one spawn at a time, and the parent's thread sleeps until
// the child is done with it (CLONE_VFORK).
#define SPAWN_STACK (64 * 1024)
static char spawn_stack[SPAWN_STACK] __attribute__((aligned(64)));

// The kernel's struct sigaction (not glibc's): handler, flags, restorer,
// mask. Only the handler is read; a zeroed one is SIG_DFL.
struct ksigaction {
	uintptr_t handler;
	unsigned long flags;
	uintptr_t restorer;
	uint64_t mask;
};

static long sys(long nr, long a, long b, long c, long d) {
	return syscall(nr, a, b, c, d);
}

static void __attribute__((noreturn)) child_fail(int errfd, int step, int err, int index) {
	struct sockd_spawn_report r = {step, err, index};
	while (syscall(SYS_write, errfd, &r, sizeof r) < 0 && errno == EINTR) {
	}
	syscall(SYS_exit_group, 127);
	for (;;) {
	}
}

#define CHECK(call, step, index)                                                                   \
	do {                                                                                       \
		if ((call) < 0) {                                                                  \
			child_fail(errfd, (step), errno, (index));                                     \
		}                                                                                  \
	} while (0)

static int sockd_child(void *arg) {
	const struct sockd_spawn *s = arg;
	int errfd = s->errfd;

	// Handlers sockd installed would run Go code in this process:
	// default them; an ignored signal stays ignored, as with ForkExec.
	for (int sig = 1; sig <= 64; sig++) {
		struct ksigaction old;
		if (sig == SIGKILL || sig == SIGSTOP || sys(SYS_rt_sigaction, sig, 0, (long)&old, 8) < 0) {
			continue;
		}
		if (old.handler != (uintptr_t)SIG_DFL && old.handler != (uintptr_t)SIG_IGN) {
			struct ksigaction dfl;
			memset(&dfl, 0, sizeof dfl);
			sys(SYS_rt_sigaction, sig, (long)&dfl, 0, 8);
		}
	}
	CHECK(sys(SYS_rt_sigprocmask, SIG_SETMASK, (long)&s->sigmask, 0, 8), SOCKD_STEP_SIGNALS, 0);

	CHECK(sys(SYS_setpgid, 0, 0, 0, 0), SOCKD_STEP_SETPGID, 0);
	if (s->dir != NULL) {
		CHECK(sys(SYS_chdir, (long)s->dir, 0, 0, 0), SOCKD_STEP_CHDIR, 0);
	}

	// fds: s->fds[i] goes to i. First every source (and the error pipe)
	// moves to a number at or above nfds, so that no dup2 below lands
	// on a source still to be used; the copies are close-on-exec.
	if (errfd < s->nfds) {
		long fd = sys(SYS_fcntl, errfd, F_DUPFD_CLOEXEC, s->nfds, 0);
		if (fd < 0) {
			child_fail(errfd, SOCKD_STEP_DUP, errno, -1);
		}
		errfd = (int)fd;
	}
	for (int i = 0; i < s->nfds; i++) {
		long fd = sys(SYS_fcntl, s->fds[i], F_DUPFD_CLOEXEC, s->nfds, 0);
		if (fd < 0) {
			child_fail(errfd, SOCKD_STEP_DUP, errno, i);
		}
		s->scratch[i] = (int)fd;
	}
	for (int i = 0; i < s->nfds; i++) {
		CHECK(sys(SYS_dup3, s->scratch[i], i, 0, 0), SOCKD_STEP_DUP, i);
	}

	if (s->umask >= 0) {
		sys(SYS_umask, s->umask, 0, 0, 0);
	}
	// Go raised its soft RLIMIT_NOFILE to its hard limit less one at
	// start; the program gets the original back unless the limit was
	// changed since (ForkExec's test, the same) or Rlimits sets it below.
	if (have_orig_nofile && orig_nofile.rlim_max > 0 && orig_nofile.rlim_cur < orig_nofile.rlim_max - 1) {
		struct rlimit now;
		if (sys(SYS_prlimit64, 0, RLIMIT_NOFILE, 0, (long)&now) == 0 && now.rlim_cur == orig_nofile.rlim_max - 1 &&
		    now.rlim_max == orig_nofile.rlim_max) {
			sys(SYS_prlimit64, 0, RLIMIT_NOFILE, (long)&orig_nofile, 0);
		}
	}
	for (int i = 0; i < s->nrlimits; i++) {
		struct rlimit lim = {s->rlimits[i].cur, s->rlimits[i].max};
		CHECK(sys(SYS_prlimit64, 0, s->rlimits[i].resource, (long)&lim, 0), SOCKD_STEP_RLIMIT, i);
	}
	// Nothing of sockd's may reach the program. ENOSYS (before Linux
	// 5.11) is harmless: Go opens every descriptor close-on-exec.
	sys(SYS_close_range, s->nfds, ~0U, CLOSE_RANGE_CLOEXEC, 0);

	if (s->have_nice) {
		CHECK(sys(SYS_setpriority, PRIO_PROCESS, 0, s->nice, 0), SOCKD_STEP_NICE, 0);
	}
	// Raw calls: glibc's wrappers would signal every thread of sockd,
	// whose memory this process shares.
	if (s->have_cred) {
		if (s->set_groups) {
			CHECK(sys(SYS_setgroups, (long)s->ngroups, (long)s->groups, 0, 0), SOCKD_STEP_SETGROUPS, 0);
		}
		CHECK(sys(SYS_setresgid, s->gid, s->gid, s->gid, 0), SOCKD_STEP_SETRESGID, 0);
		CHECK(sys(SYS_setresuid, s->uid, s->uid, s->uid, 0), SOCKD_STEP_SETRESUID, 0);
	}

	if (s->pid_digits != NULL) {
		char buf[24];
		int n = 0;
		for (unsigned long pid = (unsigned long)sys(SYS_getpid, 0, 0, 0, 0); n == 0 || pid > 0; pid /= 10) {
			buf[n++] = (char)('0' + pid % 10);
		}
		for (int i = 0; i < n; i++) {
			s->pid_digits[i] = buf[n - 1 - i];
		}
		s->pid_digits[n] = '\0';
	}
	sys(SYS_execve, (long)s->path, (long)s->argv, (long)s->envp, 0);
	child_fail(errfd, SOCKD_STEP_EXEC, errno, 0);
}

// spawn_clone3 is clone3(2) with a child that runs fn(arg) on the stack
// the arguments give and exits with its result: glibc has no public
// clone3, and the child of the bare system call cannot return into C.
static long spawn_clone3(struct clone_args *ca, int (*fn)(void *), void *arg) {
#if defined(__x86_64__)
	long ret;
	__asm__ volatile("syscall\n\t"
	                 "testq %%rax, %%rax\n\t"
	                 "jnz 1f\n\t"
	                 // The child, on its stack (16-byte aligned): fn(arg),
	                 // then exit with its value.
	                 "xorl %%ebp, %%ebp\n\t"
	                 "movq %[arg], %%rdi\n\t"
	                 "callq *%[fn]\n\t"
	                 "movl %%eax, %%edi\n\t"
	                 "movl %[exit], %%eax\n\t"
	                 "syscall\n\t"
	                 "ud2\n"
	                 "1:\n"
	                 : "=a"(ret)
	                 : "0"((long)SYS_clone3), "D"(ca), "S"(sizeof *ca), [fn] "r"(fn), [arg] "r"(arg),
	                   [exit] "i"(SYS_exit_group)
	                 : "rcx", "r11", "memory");
	return ret;
#else
	(void)ca;
	(void)fn;
	(void)arg;
	return -ENOSYS;
#endif
}

int sockd_spawn_cgroup_ok(void) {
#if defined(__x86_64__)
	return 1;
#else
	return 0;
#endif
}

long sockd_spawn(struct sockd_spawn *s) {
	uint64_t all = ~(uint64_t)0;
	if (sys(SYS_rt_sigprocmask, SIG_SETMASK, (long)&all, (long)&s->sigmask, 8) < 0) {
		return -errno;
	}
	long pid;
	if (s->cgroup_fd >= 0) {
		struct clone_args ca;
		memset(&ca, 0, sizeof ca);
		ca.flags = CLONE_VM | CLONE_VFORK | CLONE_INTO_CGROUP;
		ca.exit_signal = SIGCHLD;
		ca.stack = (uintptr_t)spawn_stack;
		ca.stack_size = SPAWN_STACK;
		ca.cgroup = (uint64_t)s->cgroup_fd;
		pid = spawn_clone3(&ca, sockd_child, s);
	} else {
		pid = clone(sockd_child, spawn_stack + SPAWN_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, s);
		if (pid < 0) {
			pid = -errno;
		}
	}
	sys(SYS_rt_sigprocmask, SIG_SETMASK, (long)&s->sigmask, 0, 8);
	return pid;
}
