package supervisord

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/ids"
	"github.com/sockd/sockd/internal/testutil"
)

// ExecStart= quoting, $VAR and ${VAR} from Environment=, "$$", the ":" and
// "@" prefixes and specifiers.
func TestOptionsExecStart(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, exec string
		want       []string
	}{
		{"quoting", `"a b" 'c  d' plain "" 'x"y'`, []string{"a b", "c  d", "plain", "", `x"y`}},
		{"expansion", `$B ${B} "${B}" pre${A}post $A $$A $$ $UNSET_VAR ${UNSET_VAR}x`,
			[]string{"b1", "b2", "b1 b2", "b1 b2", "prealphapost", "alpha", "$A", "$", "x"}},
		{"specifiers", `%n %N %p %%`, []string{"app.service", "app", "app", "%"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, reportService("ExecStart=\nExecStart="+self+" "+tc.exec+
				"\nEnvironment=CHILD_EXIT=0 A=alpha \"B=b1 b2\""))
			r, _ := e.runReport()
			if got := r.Argv[1:]; !slices.Equal(got, tc.want) {
				t.Fatalf("argv %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("no-expansion-prefix", func(t *testing.T) {
		e := newEnv(t, reportService("ExecStart=\nExecStart=:"+self+" $A ${A}\nEnvironment=CHILD_EXIT=0 A=alpha"))
		r, _ := e.runReport()
		if got := r.Argv[1:]; !slices.Equal(got, []string{"$A", "${A}"}) {
			t.Fatalf("argv %q", got)
		}
	})
	t.Run("argv0-prefix", func(t *testing.T) {
		e := newEnv(t, reportService("ExecStart=\nExecStart=@"+self+" my-name x\nEnvironment=CHILD_EXIT=0"))
		r, _ := e.runReport()
		if !slices.Equal(r.Argv, []string{"my-name", "x"}) {
			t.Fatalf("argv %q", r.Argv)
		}
	})
}

// WorkingDirectory=: absolute, "-" for a missing one, "~" for the home
// of User= (or of sockd's user), and the error for a missing one.
func TestOptionsWorkingDirectory(t *testing.T) {
	own, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir := testutil.ShortDir(t)
	for _, tc := range []struct{ name, lines, want string }{
		{"default", "", own},
		{"absolute", "WorkingDirectory=" + dir, dir},
		{"optional-missing", "WorkingDirectory=-/nonexistent/dir", own},
		{"optional-present", "WorkingDirectory=-" + dir, dir},
		{"home-of-user", "User=root\nWorkingDirectory=~\nEnvironment=HOME=/elsewhere", "/root"},
		{"home-of-sockd-user", "WorkingDirectory=~", homeOf(t, strconv.Itoa(os.Getuid()))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, reportService(tc.lines+"\nEnvironment=CHILD_EXIT=0"))
			r, _ := e.runReport()
			if r.Cwd != tc.want {
				t.Fatalf("cwd %q, want %q", r.Cwd, tc.want)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		e := newEnv(t, reportService("WorkingDirectory=/nonexistent/dir\nEnvironment=CHILD_EXIT=0"))
		if err := e.d.Start(e.ctx(), "app"); err == nil || !strings.Contains(err.Error(), "/nonexistent/dir") {
			t.Fatalf("start: %v, want a chdir error", err)
		}
	})
}

func homeOf(t *testing.T, uid string) string {
	t.Helper()
	u, err := ids.LookupUser(uid)
	if err != nil {
		t.Fatal(err)
	}
	return u.HomeDir
}

// worldExecutable copies the test binary where any user may run it: the
// go tool builds it in a directory only its owner may enter.
func worldExecutable(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := testutil.ShortDir(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	p := filepath.Join(dir, "child")
	dst, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// User=, Group=, SupplementaryGroups= (names and numbers) and the
// variables User= sets. With User=, the supplementary groups start as
// initgroups(3) makes them: the primary group and the user's memberships.
func TestOptionsCredentials(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	for _, name := range []string{"nobody"} {
		if _, err := ids.LookupUser(name); err != nil {
			t.Skipf("no user %s: %v", name, err)
		}
	}
	nogroup, err := ids.LookupGroup("nogroup")
	if err != nil {
		t.Skipf("no group nogroup: %v", err)
	}
	daemonGID, err := ids.LookupGroup("daemon")
	if err != nil {
		t.Skipf("no group daemon: %v", err)
	}
	bin := worldExecutable(t)
	for _, tc := range []struct {
		name          string
		lines         string
		uid, gid      int
		groups        []int
		user, home    string
		wantUserEnvOK bool
	}{
		{"user-name", "User=nobody", 65534, 65534, []int{65534}, "nobody", "/nonexistent", true},
		{"user-number", "User=65534", 65534, 65534, []int{65534}, "nobody", "/nonexistent", true},
		{"user-group-supplementary", "User=nobody\nGroup=nogroup\nSupplementaryGroups=daemon 1234",
			65534, int(nogroup), []int{int(nogroup), int(daemonGID), 1234}, "nobody", "/nonexistent", true},
		{"group-number-only", "Group=1234", 0, 1234, nil, "", "", false},
		{"root", "User=root", 0, 0, []int{0}, "root", "/root", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, reportService("ExecStart=\nExecStart="+bin+"\n"+tc.lines+"\nEnvironment=CHILD_EXIT=0"))
			r, _ := e.runReport()
			if r.Uid != tc.uid || r.Euid != tc.uid || r.Gid != tc.gid || r.Egid != tc.gid {
				t.Errorf("uid %d euid %d gid %d egid %d, want uid %d gid %d", r.Uid, r.Euid, r.Gid, r.Egid, tc.uid, tc.gid)
			}
			got := slices.Clone(r.Groups)
			slices.Sort(got)
			want := slices.Clone(tc.groups)
			slices.Sort(want)
			if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Errorf("groups %v, want %v", r.Groups, tc.groups)
			}
			if tc.wantUserEnvOK {
				checkEnv(t, r, map[string]string{"USER": tc.user, "LOGNAME": tc.user, "HOME": tc.home})
			} else {
				checkEnv(t, r, map[string]string{"USER": unset, "LOGNAME": unset, "HOME": unset})
			}
		})
	}
	t.Run("unknown-user", func(t *testing.T) {
		e := newEnv(t, reportService("ExecStart=\nExecStart="+bin+"\nUser=no-such-user-sockd\nEnvironment=CHILD_EXIT=0"))
		if err := e.d.Start(e.ctx(), "app"); err == nil || !strings.Contains(err.Error(), "User=no-such-user-sockd") {
			t.Fatalf("start: %v, want a User= error", err)
		}
	})
}

// UMask=, Nice= and Limit*= (soft:hard).
func TestOptionsProcessSettings(t *testing.T) {
	var ownCore unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &ownCore); err != nil {
		t.Fatal(err)
	}
	inf := uint64(unix.RLIM_INFINITY)
	for _, tc := range []struct {
		name   string
		lines  string
		check  func(*report) string
		ulimit bool
	}{
		{"umask-default", "", func(r *report) string { return fmt.Sprintf("%04o", r.Umask) }, false},
		{"umask-0077", "UMask=0077", func(r *report) string { return fmt.Sprintf("%04o", r.Umask) }, false},
		{"umask-0", "UMask=0", func(r *report) string { return fmt.Sprintf("%04o", r.Umask) }, false},
		{"nice-default", "", func(r *report) string { return strconv.Itoa(r.Nice) }, false},
		{"nice-5", "Nice=5", func(r *report) string { return strconv.Itoa(r.Nice) }, false},
		{"nice-minus-5", "Nice=-5", func(r *report) string { return strconv.Itoa(r.Nice) }, false},
		{"nofile-soft-hard", "LimitNOFILE=100:200", func(r *report) string { return fmt.Sprint(r.Limits["nofile"]) }, true},
		{"nofile-one", "LimitNOFILE=300", func(r *report) string { return fmt.Sprint(r.Limits["nofile"]) }, true},
		{"core-soft-hard", "LimitCORE=1K:8K", func(r *report) string { return fmt.Sprint(r.Limits["core"]) }, false},
		{"core-infinity", "LimitCORE=0:infinity", func(r *report) string { return fmt.Sprint(r.Limits["core"]) }, false},
		{"core-default", "", func(r *report) string { return fmt.Sprint(r.Limits["core"]) }, false},
	} {
		want := map[string]string{
			"umask-default": "0022", "umask-0077": "0077", "umask-0": "0000",
			"nice-default": strconv.Itoa(ownNice(t)), "nice-5": "5", "nice-minus-5": "-5",
			"nofile-soft-hard": "[100 200]", "nofile-one": "[300 300]",
			"core-soft-hard": "[1024 8192]", "core-infinity": fmt.Sprint([2]uint64{0, inf}),
			"core-default": fmt.Sprint([2]uint64{ownCore.Cur, ownCore.Max}),
		}[tc.name]
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "nice-minus-5" && os.Getuid() != 0 {
				t.Skip("needs root")
			}
			lines := tc.lines + "\nEnvironment=CHILD_EXIT=0"
			if tc.ulimit {
				lines += " CHILD_ULIMIT=1"
			}
			e := newEnv(t, reportService(lines))
			r, _ := e.runReport()
			if got := tc.check(r); got != want {
				t.Fatalf("%s: got %s, want %s", tc.lines, got, want)
			}
		})
	}
}

func ownNice(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	n, _ := strconv.Atoi(strings.Fields(s[strings.LastIndexByte(s, ')')+2:])[16])
	return n
}

// The child gets its socket as fd 3, in blocking mode, and no other
// descriptor of sockd's.
func TestOptionsDescriptors(t *testing.T) {
	// A descriptor sockd inherited without close-on-exec must not leak.
	leak, err := os.CreateTemp(testutil.ShortDir(t), "leak")
	if err != nil {
		t.Fatal(err)
	}
	defer leak.Close()
	rc, _ := leak.SyscallConn()
	rc.Control(func(fd uintptr) { unix.FcntlInt(fd, unix.F_SETFD, 0) })

	e := newEnv(t, reportService("Environment=CHILD_EXIT=0"))
	r, _ := e.runReport()
	if !strings.HasPrefix(r.Fds[3], "socket:") || r.Fd3NonBlock {
		t.Errorf("fd 3 is %q (non-blocking %v), want a blocking socket", r.Fds[3], r.Fd3NonBlock)
	}
	for fd, target := range r.Fds {
		if fd == 3 || target == "" || strings.HasPrefix(target, "anon_inode:") ||
			strings.HasPrefix(target, "/proc/") || strings.HasPrefix(target, "/sys/fs/cgroup/") {
			continue // the child's Go runtime's own, or the listing of /proc/self/fd
		}
		t.Errorf("fd %d leaked into the child: %s", fd, target)
	}
}
