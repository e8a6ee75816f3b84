#include <linux/filter.h>
#include <stdint.h>

struct ck_rlimit {
	int resource;
	uint64_t cur; // cur and max are a struct rlimit64
	uint64_t max;
};

// ck_spec is everything the sandbox's first processes need, prepared in Go.
struct ck_spec {
	const char *path;
	char *const *argv;
	char *const *envp;
	unsigned long clone_flags; // namespaces for the first process
	int reaper;                // 1: the first process stays as pid 1 and forks the job
	int stdin_fd, stdout_fd, stderr_fd;
	int status_fd;  // setup failures are written here; end of file at exec
	int release_fd; // -1, or the job waits for a byte here before it starts
	int dir_fd;     // -1, or an O_PATH descriptor of the working directory
	int ruleset_fd; // -1, or a Landlock ruleset to enforce
	int extra_fds[4]; // kept open for the job as descriptors 7, 8, ...
	int nextra;
	int uid, gid; // -1: keep
	struct sock_fprog *filter; // NULL: none
	int nrlimits;
	struct ck_rlimit rlimits[8];
};

int ck_spawn(const struct ck_spec *s);
