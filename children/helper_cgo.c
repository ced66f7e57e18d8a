//go:build cgo && linux

// The exec helper in C. sockd_exec runs as an ELF constructor, before
// the Go runtime of the binary starts, when the process was started as
// the helper ("sockd-exec __sockd-exec SETTINGS PATH ARGV0 …", see
// helper.go). It does what runHelper does in Go, in the same order, and
// execs the program, or writes "sockd-exec: …" to stderr and exits 127.
// Every other start of the binary returns from it after one strcmp.
// A sandboxed start (a "sandbox=" item in SETTINGS) also returns at
// once: the Go helper does all of it then (package sandbox), so that the
// sandbox has one implementation.
//
// glibc calls constructors with (argc, argv, envp); other C libraries do
// not, so the constructor exists only with glibc and the Go helper
// (MaybeRunHelper) does the work elsewhere. The process is
// single-threaded here: no Go thread exists yet.

#define _GNU_SOURCE
#include <features.h>

#ifdef __GLIBC__

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define HELPER_ARG "__sockd-exec"
#define HELPER_EXIT 127

// helper_die writes "sockd-exec: " and the message to stderr and exits
// with status 127, without running atexit handlers or flushing stdio.
static void __attribute__((noreturn, format(printf, 1, 2)))
helper_die(const char *fmt, ...) {
	char buf[4096];
	int n = snprintf(buf, sizeof buf, "sockd-exec: ");
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0) {
		m = 0;
	}
	n += m;
	if (n > (int)sizeof buf - 2) {
		n = (int)sizeof buf - 2;
	}
	buf[n++] = '\n';
	for (const char *p = buf; n > 0;) {
		ssize_t w = write(2, p, n);
		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w <= 0) {
			break;
		}
		p += w;
		n -= w;
	}
	_exit(HELPER_EXIT);
}

// helper_strerror returns e's message as Go spells it: glibc's text with
// a lower-case first letter ("operation not permitted").
static const char *helper_strerror(int e) {
	static char buf[256];
	snprintf(buf, sizeof buf, "%s", strerror(e));
	if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z')) {
		buf[0] += 'a' - 'A';
	}
	return buf;
}

// helper_u64 parses all of s (digits only, in base) into *out, which must
// not exceed max. It returns 0, or -1 with errno set.
static int helper_u64(const char *s, int base, uint64_t max, uint64_t *out) {
	if (*s < '0' || *s > '9') {
		errno = EINVAL;
		return -1;
	}
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, base);
	if (errno != 0) {
		return -1;
	}
	if (*end != '\0') {
		errno = EINVAL;
		return -1;
	}
	if (v > max) {
		errno = ERANGE;
		return -1;
	}
	*out = v;
	return 0;
}

// helper_int parses all of s, an optionally negative decimal, into *out.
static int helper_int(const char *s, int *out) {
	int neg = *s == '-';
	uint64_t v;
	if (helper_u64(s + neg, 10, (uint64_t)INT_MAX + neg, &v) < 0) {
		return -1;
	}
	*out = neg ? (int)-(int64_t)v : (int)v;
	return 0;
}

// helper_bad fails on one item of the settings.
static void __attribute__((noreturn)) helper_bad(const char *item, const char *why) {
	helper_die("setting \"%s\": %s", item, why);
}

// helper_key reports whether item's key (the text before '=') is key.
static int helper_key(const char *item, size_t klen, const char *key) {
	return strlen(key) == klen && strncmp(item, key, klen) == 0;
}

static void __attribute__((constructor))
sockd_exec(int argc, char **argv, char **envp) {
	if (argc < 5 || argv == NULL || strcmp(argv[1], HELPER_ARG) != 0) {
		return;
	}
	// The sandbox is the Go helper's (MaybeRunHelper). Items are
	// comma-separated and base64 has no comma, so a match at the start or
	// after a comma is the item.
	if (strncmp(argv[2], "sandbox=", 8) == 0 || strstr(argv[2], ",sandbox=") != NULL) {
		return;
	}
	const char *path = argv[3];
	char **args = argv + 4;

	char *settings = strdup(argv[2]);
	if (settings == NULL) {
		helper_die("settings: %s", helper_strerror(errno));
	}
	int nfiles = 0;
	int have_nice = 0, nice = 0;
	const char *pidenv = NULL;
	int have_uid = 0, have_gid = 0, set_groups = 1;
	uint64_t uid = 0, gid = 0;
	gid_t *groups = NULL;
	size_t ngroups = 0;

	char *save = NULL;
	for (char *item = strtok_r(settings, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
		char *val = strchr(item, '=');
		size_t klen = val != NULL ? (size_t)(val - item) : strlen(item);
		val = val != NULL ? val + 1 : item + klen;
		uint64_t u;
		if (helper_key(item, klen, "files")) {
			if (helper_u64(val, 10, INT_MAX - 3, &u) < 0) {
				helper_bad(item, helper_strerror(errno));
			}
			nfiles = (int)u;
		} else if (helper_key(item, klen, "umask")) {
			if (helper_u64(val, 8, 07777, &u) < 0) {
				helper_bad(item, helper_strerror(errno));
			}
			umask((mode_t)u);
		} else if (helper_key(item, klen, "nice")) {
			if (helper_int(val, &nice) < 0) {
				helper_bad(item, helper_strerror(errno));
			}
			have_nice = 1;
		} else if (helper_key(item, klen, "rlimit")) {
			// resource:cur:max
			char *cur = strchr(val, ':');
			char *max = cur ? strchr(cur + 1, ':') : NULL;
			if (max == NULL || strchr(max + 1, ':') != NULL) {
				helper_bad(item, "want resource:cur:max");
			}
			*cur++ = '\0';
			*max++ = '\0';
			uint64_t res;
			struct rlimit lim;
			uint64_t c, m;
			if (helper_u64(val, 10, INT_MAX, &res) < 0 || helper_u64(cur, 10, UINT64_MAX, &c) < 0 ||
			    helper_u64(max, 10, UINT64_MAX, &m) < 0) {
				cur[-1] = ':';
				max[-1] = ':';
				helper_bad(item, helper_strerror(errno));
			}
			lim.rlim_cur = c;
			lim.rlim_max = m;
			if (setrlimit((int)res, &lim) < 0) {
				int e = errno;
				cur[-1] = ':';
				max[-1] = ':';
				helper_die("setting \"%s\": setrlimit %d %llu:%llu: %s", item, (int)res,
				           (unsigned long long)c, (unsigned long long)m, helper_strerror(e));
			}
		} else if (helper_key(item, klen, "pidenv")) {
			pidenv = val;
		} else if (helper_key(item, klen, "uid")) {
			if (helper_u64(val, 10, UINT32_MAX, &uid) < 0) {
				helper_bad(item, helper_strerror(errno));
			}
			have_uid = 1;
		} else if (helper_key(item, klen, "gid")) {
			if (helper_u64(val, 10, UINT32_MAX, &gid) < 0) {
				helper_bad(item, helper_strerror(errno));
			}
			have_gid = 1;
		} else if (helper_key(item, klen, "nosetgroups")) {
			set_groups = 0;
		} else if (helper_key(item, klen, "groups")) {
			size_t n = 1;
			for (const char *p = val; *p; p++) {
				n += *p == ':';
			}
			free(groups);
			groups = calloc(n, sizeof *groups);
			if (groups == NULL) {
				helper_bad(item, helper_strerror(errno));
			}
			ngroups = 0;
			char *gsave = NULL;
			// strtok_r skips empty fields, as the Go helper does.
			char *copy = strdup(val);
			if (copy == NULL) {
				helper_bad(item, helper_strerror(errno));
			}
			for (char *g = strtok_r(copy, ":", &gsave); g != NULL; g = strtok_r(NULL, ":", &gsave)) {
				if (helper_u64(g, 10, UINT32_MAX, &u) < 0) {
					helper_bad(item, helper_strerror(errno));
				}
				groups[ngroups++] = (gid_t)u;
			}
			free(copy);
		} else {
			helper_bad(item, "unknown setting");
		}
	}

	// Nothing of the helper's own may reach the program. Errors (ENOSYS
	// before Linux 5.11) are harmless: Start marked sockd's descriptors
	// close-on-exec before it forked, and nothing has opened one since.
#ifdef SYS_close_range
	syscall(SYS_close_range, (unsigned)(3 + nfiles), ~0U, CLOSE_RANGE_CLOEXEC);
#endif

	if (have_nice && setpriority(PRIO_PROCESS, 0, nice) < 0) {
		helper_die("setpriority %d: %s", nice, helper_strerror(errno));
	}
	// Raw calls, as in the Go helper; with one thread they are what
	// glibc's wrappers would do.
	if (set_groups && (have_uid || have_gid)) {
		if (syscall(SYS_setgroups, ngroups, groups) < 0) {
			int e = errno;
			char list[1024];
			size_t off = 0;
			list[0] = '\0';
			for (size_t i = 0; i < ngroups && off < sizeof list - 16; i++) {
				off += snprintf(list + off, sizeof list - off, "%s%u", i ? " " : "", (unsigned)groups[i]);
			}
			helper_die("setgroups [%s]: %s", list, helper_strerror(e));
		}
	}
	if (have_gid && syscall(SYS_setresgid, (gid_t)gid, (gid_t)gid, (gid_t)gid) < 0) {
		helper_die("setresgid %llu: %s", (unsigned long long)gid, helper_strerror(errno));
	}
	if (have_uid && syscall(SYS_setresuid, (uid_t)uid, (uid_t)uid, (uid_t)uid) < 0) {
		helper_die("setresuid %llu: %s", (unsigned long long)uid, helper_strerror(errno));
	}

	char **env = envp;
	if (pidenv != NULL) {
		size_t n = 0;
		while (envp[n] != NULL) {
			n++;
		}
		env = calloc(n + 2, sizeof *env);
		size_t plen = strlen(pidenv);
		char *kv = malloc(plen + 2 + 3 * sizeof(pid_t));
		if (env == NULL || kv == NULL) {
			helper_die("environment: %s", helper_strerror(errno));
		}
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			if (!(strncmp(envp[i], pidenv, plen) == 0 && envp[i][plen] == '=')) {
				env[k++] = envp[i];
			}
		}
		sprintf(kv, "%s=%ld", pidenv, (long)getpid());
		env[k++] = kv;
		env[k] = NULL;
	}
	execve(path, args, env);
	helper_die("exec %s: %s", path, helper_strerror(errno));
}

#endif // __GLIBC__
