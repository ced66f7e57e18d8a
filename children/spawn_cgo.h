// The direct spawn's interface between spawn_cgo.go and spawn_cgo.c.

#include <stdint.h>
#include <sys/types.h>

struct sockd_rlimit {
	int resource;
	uint64_t cur, max;
};

// sockd_spawn is everything the child needs, prepared by the parent in
// C memory: the child allocates nothing.
struct sockd_spawn {
	const char *path;
	char *const *argv;
	char *const *envp;
	char *pid_digits; // the child writes its pid here (room for 20 digits and a NUL); NULL for none
	const char *dir;  // NULL: sockd's
	const int *fds;   // fds[i] becomes fd i
	int *scratch;     // nfds ints for the child
	int nfds;
	int cgroup_fd; // -1: sockd's cgroup
	int umask;     // -1: sockd's
	int have_nice, nice;
	const struct sockd_rlimit *rlimits;
	int nrlimits;
	int have_cred, set_groups;
	uint32_t uid, gid;
	const uint32_t *groups;
	int ngroups;
	int errfd;        // the error pipe's write end (close-on-exec)
	uint64_t sigmask; // the caller's signal mask, which the child restores
};

// A failed step of the child, as it writes it to the error pipe.
struct sockd_spawn_report {
	int32_t step, err, index;
};

enum {
	SOCKD_STEP_SIGNALS = 1,
	SOCKD_STEP_SETPGID,
	SOCKD_STEP_CHDIR,
	SOCKD_STEP_DUP,
	SOCKD_STEP_RLIMIT,
	SOCKD_STEP_NICE,
	SOCKD_STEP_SETGROUPS,
	SOCKD_STEP_SETRESGID,
	SOCKD_STEP_SETRESUID,
	SOCKD_STEP_EXEC,
};

long sockd_spawn(struct sockd_spawn *s);
int sockd_spawn_cgroup_ok(void);
