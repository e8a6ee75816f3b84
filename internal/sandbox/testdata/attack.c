// attack tries one way out of a sandbox and prints what the kernel said:
// "ESCAPED ..." when the attempt worked, "blocked: <errno name>" when not.
// The escape suite runs it inside the process and container levels.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static int report(int rc, const char *what) {
	if (rc == 0) {
		printf("ESCAPED %s\n", what);
		return 0;
	}
	printf("blocked: %s: %s\n", what, strerrorname_np(errno));
	return 1;
}

int main(int argc, char **argv) {
	if (argc < 2) return 2;
	const char *a = argv[1];
	if (!strcmp(a, "mount")) return report(mount("none", "/tmp", "tmpfs", 0, NULL), "mount");
	if (!strcmp(a, "unshare-user")) return report(unshare(CLONE_NEWUSER), "unshare user namespace");
	if (!strcmp(a, "unshare-net")) return report(unshare(CLONE_NEWNET), "unshare network namespace");
	if (!strcmp(a, "clone-ns")) {
		long rc = syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWNS | 17 /* SIGCHLD */, 0, 0, 0, 0);
		if (rc == 0) _exit(0);
		return report(rc > 0 ? 0 : -1, "clone into new namespaces");
	}
	if (!strcmp(a, "ptrace-parent")) return report((int)ptrace(PTRACE_ATTACH, getppid(), 0, 0), "ptrace attach parent");
	if (!strcmp(a, "ptrace-init")) return report((int)ptrace(PTRACE_ATTACH, 1, 0, 0), "ptrace attach pid 1");
	if (!strcmp(a, "setns")) return report(syscall(SYS_setns, 0, 0) == 0 ? 0 : -1, "setns");
	if (!strcmp(a, "connect") && argc == 4) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		if (s < 0) return report(-1, "socket");
		struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
		inet_pton(AF_INET, argv[2], &sin.sin_addr);
		return report(connect(s, (struct sockaddr *)&sin, sizeof sin), "connect");
	}
	return 2;
}
