// The process level's first two processes, in C because they run between
// fork and exec of a multi-threaded Go program, where only raw system
// calls are safe. Everything they need (paths, argv, the Landlock ruleset,
// the seccomp program, the working directory) is prepared by Go before
// ck_spawn; they only make system calls and never return to Go.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/prctl.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawn_linux.h"

// Descriptor numbers inside the sandbox, before the job execs.
enum { FD_STATUS = 3, FD_RELEASE = 4, FD_DIR = 5, FD_RULESET = 6, FD_FIRST_FREE = 7 };

static long sys(long n, long a, long b, long c, long d, long e, long f) {
	return syscall(n, a, b, c, d, e, f);
}

// fail reports the failed step and errno on the status pipe and exits.
static void fail(const char *step, int err) {
	char buf[96];
	size_t n = 0;
	for (const char *p = step; *p && n < sizeof buf - 16; p++) buf[n++] = *p;
	buf[n++] = ':';
	buf[n++] = ' ';
	// errno as decimal; Go turns it into a name.
	char digits[12];
	int d = 0;
	unsigned v = (unsigned)err;
	do { digits[d++] = (char)('0' + v % 10); v /= 10; } while (v && d < 11);
	while (d) buf[n++] = digits[--d];
	sys(SYS_write, FD_STATUS, (long)buf, (long)n, 0, 0, 0);
	sys(SYS_exit_group, 125, 0, 0, 0, 0, 0);
}

// place moves the descriptors the sandbox keeps to fixed numbers and
// closes every other one: the Go process's descriptors are close-on-exec,
// but the reaper never execs and must not hold them.
static void place(const struct ck_spec *s) {
	int src[FD_FIRST_FREE + 4] = {s->stdin_fd, s->stdout_fd, s->stderr_fd, s->status_fd, s->release_fd, s->dir_fd, s->ruleset_fd};
	int n = FD_FIRST_FREE + s->nextra;
	for (int i = 0; i < s->nextra; i++) src[FD_FIRST_FREE + i] = s->extra_fds[i];
	int tmp[FD_FIRST_FREE + 4];
	for (int i = 0; i < n; i++) {
		tmp[i] = -1;
		if (src[i] >= 0) {
			tmp[i] = (int)sys(SYS_fcntl, src[i], F_DUPFD_CLOEXEC, 100, 0, 0, 0);
			if (tmp[i] < 0) fail("dup", errno);
		}
	}
	for (int i = 0; i < n; i++) {
		if (tmp[i] >= 0) {
			if (sys(SYS_dup3, tmp[i], i, 0, 0, 0, 0) < 0) fail("dup3", errno);
		} else if (i > 2) {
			// A slot this job does not use must not keep whatever the
			// Go process had at that number.
			sys(SYS_close, i, 0, 0, 0, 0, 0);
		}
	}
	// The status pipe closes at exec: its end of file tells Go the job runs.
	sys(SYS_fcntl, FD_STATUS, F_SETFD, FD_CLOEXEC, 0, 0, 0);
	if (sys(SYS_close_range, n, ~0U, 0, 0, 0, 0) < 0) fail("close_range", errno);
}

// job confines the calling process and execs the job. The order matters:
// no_new_privs before Landlock and seccomp (both require it unprivileged),
// Landlock while the identity can still open anything, the identity drop,
// then seccomp, then the limits, last, so nothing of ours runs under them.
static void job(const struct ck_spec *s) {
	if (sys(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0) < 0) fail("no_new_privs", errno);
	if (s->ruleset_fd >= 0 && sys(SYS_landlock_restrict_self, FD_RULESET, 0, 0, 0, 0, 0) < 0) fail("landlock", errno);
	if (s->gid >= 0) {
		if (sys(SYS_setgroups, 0, 0, 0, 0, 0, 0) < 0) fail("setgroups", errno);
		if (sys(SYS_setresgid, s->gid, s->gid, s->gid, 0, 0, 0) < 0) fail("setgid", errno);
	}
	if (s->uid >= 0 && sys(SYS_setresuid, s->uid, s->uid, s->uid, 0, 0, 0) < 0) fail("setuid", errno);
	// A credential change clears the parent-death signal.
	if (sys(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0, 0) < 0) fail("pdeathsig", errno);
	if (s->dir_fd >= 0 && sys(SYS_fchdir, FD_DIR, 0, 0, 0, 0, 0) < 0) fail("working directory", errno);
	if (s->dir_fd >= 0) sys(SYS_close, FD_DIR, 0, 0, 0, 0, 0);
	if (s->ruleset_fd >= 0) sys(SYS_close, FD_RULESET, 0, 0, 0, 0, 0);
	if (s->release_fd >= 0) sys(SYS_close, FD_RELEASE, 0, 0, 0, 0, 0);
	if (s->filter && sys(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, (long)s->filter, 0, 0, 0) < 0) fail("seccomp", errno);
	for (int i = 0; i < s->nrlimits; i++) {
		if (sys(SYS_prlimit64, 0, s->rlimits[i].resource, (long)&s->rlimits[i].cur, 0, 0, 0) < 0) fail("setrlimit", errno);
	}
	sys(SYS_execve, (long)s->path, (long)s->argv, (long)s->envp, 0, 0, 0);
	fail("exec", errno);
}

// resetSignals gives every signal its default action and unblocks all:
// the Go runtime's handlers must never run in these processes.
static void resetSignals(void) {
	for (int sig = 1; sig < 65; sig++) {
		struct { void *handler; unsigned long flags; void *restorer; uint64_t mask; } dfl = {SIG_DFL, 0, 0, 0};
		sys(SYS_rt_sigaction, sig, (long)&dfl, 0, 8, 0, 0);
	}
	uint64_t none = 0;
	sys(SYS_rt_sigprocmask, SIG_SETMASK, (long)&none, 0, 8, 0, 0);
}

// reaper is pid 1 of the job's pid namespace. The kernel does not deliver
// default-action signals to a namespace's init, so the job must not be
// pid 1, or SIGXFSZ and SIGXCPU from its limits would be lost. It waits
// for the release (network and cgroups in place), forks the job, reaps
// every orphan, and exits when the job does with the job's status, 128+N
// for signal N as shells report it. Its exit ends the namespace.
static void reaper(const struct ck_spec *s) {
	if (sys(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0, 0) < 0) fail("pdeathsig", errno);
	long pid = sys(SYS_clone, SIGCHLD, 0, 0, 0, 0, 0);
	if (pid < 0) fail("fork", errno);
	if (pid == 0) job(s);
	sys(SYS_close, FD_STATUS, 0, 0, 0, 0, 0);
	sys(SYS_close, FD_RELEASE, 0, 0, 0, 0, 0);
	sys(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0, 0);
	for (;;) {
		int status = 0;
		long got = sys(SYS_wait4, -1, (long)&status, 0, 0, 0, 0);
		if (got < 0 && errno == EINTR) continue;
		if (got < 0) sys(SYS_exit_group, 125, 0, 0, 0, 0, 0);
		if (got != pid) continue;
		if (WIFSIGNALED(status)) sys(SYS_exit_group, 128 + WTERMSIG(status), 0, 0, 0, 0, 0);
		sys(SYS_exit_group, WEXITSTATUS(status), 0, 0, 0, 0, 0);
	}
}

int ck_spawn(const struct ck_spec *s) {
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	long pid = sys(SYS_clone, (long)(s->clone_flags | SIGCHLD), 0, 0, 0, 0, 0);
	if (pid == 0) { // never returns
		resetSignals();
		place(s);
		// Wait until Go has put the network and cgroups in place: every
		// process of the job is started after this, inside them.
		char go;
		if (s->release_fd >= 0 && sys(SYS_read, FD_RELEASE, (long)&go, 1, 0, 0, 0) != 1) sys(SYS_exit_group, 125, 0, 0, 0, 0, 0);
		if (s->reaper) reaper(s);
		job(s);
	}
	int err = errno;
	pthread_sigmask(SIG_SETMASK, &old, 0);
	if (pid < 0) return -err;
	return (int)pid;
}
