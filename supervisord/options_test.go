package supervisord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/internal/ids"
	"github.com/sockd/sockd/internal/testutil"
)

// The tests in this file prove that every service option reaches a real
// process: the service is the test binary in the "report" mode, which
// prints what it sees as one "REPORT {json}" line on its stdout (read
// back through Daemon.Logs) and then exits or waits for a signal.
//
// The report child is steered by its environment:
//
//	CHILD_EXIT=N        exit with status N right after the report
//	CHILD_NOREPORT=1    do not print the report
//	CHILD_STDOUT=text   print text on stdout; CHILD_STDERR likewise
//	CHILD_ULIMIT=1      report RLIMIT_NOFILE as a shell sees it
//	CHILD_GRANDCHILD=m  start a grandchild ("sleep" or "notify": it says
//	                    READY=1 first) in the child's process group
//	CHILD_IGNORE_TERM=1 ignore SIGTERM
//	CHILD_NOTIFY=ready  say READY=1 (with STATUS=grandchild PID) once the
//	                    signal handlers are in place
//
// Without CHILD_EXIT the child serves HTTP on the sockets it was handed
// (GET /ready says READY=1) and, on the first signal it catches, prints
// "signal N" and exits 0.
func init() {
	mode := os.Getenv("SOCKD_TEST_CHILD")
	if mode != "report" && mode != "sleeper" {
		return
	}
	// The exec helper carries the child's environment: let it exec the
	// program first. It runs before TestMain, so do it here.
	children.MaybeRunHelper()
	switch mode {
	case "report":
		reportMain()
	case "sleeper":
		sleeperMain()
	}
	os.Exit(0)
}

// report is what the report child sees.
type report struct {
	Pid, Ppid, Pgid int
	Argv            []string
	Env             []string
	Cwd             string
	Umask           int
	Nice            int
	Uid, Gid        int
	Euid, Egid      int
	Groups          []int
	// Fds maps each descriptor from 3 up to what /proc says it is.
	Fds map[int]string
	// Fd3NonBlock is whether fd 3 is in non-blocking mode.
	Fd3NonBlock bool
	// Limits maps "core", "nofile" (as a shell sees it when CHILD_ULIMIT
	// is set: Go raises its own soft limit) to {soft, hard}.
	Limits map[string][2]uint64
}

func (r *report) env(k string) (string, bool) {
	var v string
	found := false
	for _, kv := range r.Env {
		if key, val, _ := strings.Cut(kv, "="); key == k {
			if found {
				return "<duplicate>", true
			}
			v, found = val, true
		}
	}
	return v, found
}

func collectReport() *report {
	r := &report{Fds: map[int]string{}, Limits: map[string][2]uint64{}}
	// Descriptors first, before anything of ours opens one.
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		for _, e := range ents {
			fd, err := strconv.Atoi(e.Name())
			if err != nil || fd < 3 {
				continue
			}
			target, _ := os.Readlink("/proc/self/fd/" + e.Name())
			r.Fds[fd] = target
		}
	}
	if fl, err := unix.FcntlInt(3, unix.F_GETFL, 0); err == nil {
		r.Fd3NonBlock = fl&unix.O_NONBLOCK != 0
	}
	r.Pid, r.Ppid = os.Getpid(), os.Getppid()
	r.Pgid, _ = syscall.Getpgid(0)
	r.Argv = os.Args
	r.Env = os.Environ()
	r.Cwd, _ = os.Readlink("/proc/self/cwd")
	r.Umask = syscall.Umask(0)
	syscall.Umask(r.Umask)
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		r.Nice, _ = strconv.Atoi(f[16]) // field 19 of stat(5)
	}
	r.Uid, r.Gid, r.Euid, r.Egid = os.Getuid(), os.Getgid(), os.Geteuid(), os.Getegid()
	r.Groups, _ = os.Getgroups()
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_CORE, &lim) == nil {
		r.Limits["core"] = [2]uint64{lim.Cur, lim.Max}
	}
	if os.Getenv("CHILD_ULIMIT") != "" {
		// os/exec gives the shell the limit this process started with.
		out, err := exec.Command("/bin/sh", "-c", "ulimit -S -n; ulimit -H -n").Output()
		if f := strings.Fields(string(out)); err == nil && len(f) == 2 {
			r.Limits["nofile"] = [2]uint64{parseUlimit(f[0]), parseUlimit(f[1])}
		}
	}
	return r
}

func parseUlimit(s string) uint64 {
	if s == "unlimited" {
		return unix.RLIM_INFINITY
	}
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}

func reportMain() {
	r := collectReport()
	// Keep the sockets out of the grandchild.
	if n, err := strconv.Atoi(os.Getenv("LISTEN_FDS")); err == nil {
		for fd := 3; fd < 3+n; fd++ {
			syscall.CloseOnExec(fd)
		}
	}
	if os.Getenv("CHILD_NOREPORT") == "" {
		b, _ := json.Marshal(r)
		fmt.Println("REPORT " + string(b))
	}
	if s := os.Getenv("CHILD_STDOUT"); s != "" {
		fmt.Fprintln(os.Stdout, s)
	}
	if s := os.Getenv("CHILD_STDERR"); s != "" {
		fmt.Fprintln(os.Stderr, s)
	}
	if s := os.Getenv("CHILD_EXIT"); s != "" {
		n, _ := strconv.Atoi(s)
		os.Exit(n)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGQUIT)
	if os.Getenv("CHILD_IGNORE_TERM") != "" {
		signal.Ignore(syscall.SIGTERM)
	}
	grandchild := 0
	if m := os.Getenv("CHILD_GRANDCHILD"); m != "" {
		self, _ := os.Executable()
		c := exec.Command(self)
		c.Env = append(os.Environ(), "SOCKD_TEST_CHILD=sleeper", "SLEEPER_NOTIFY="+m)
		if err := c.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "grandchild:", err)
			os.Exit(1)
		}
		grandchild = c.Process.Pid
	}
	if ls, err := activation.Listeners(); err == nil {
		mux := http.NewServeMux()
		mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
			daemon.SdNotify(false, "READY=1")
			fmt.Fprint(w, "ok")
		})
		for _, l := range ls {
			if l != nil {
				go http.Serve(l, mux)
			}
		}
	}
	if os.Getenv("CHILD_NOTIFY") == "ready" {
		daemon.SdNotify(false, fmt.Sprintf("READY=1\nSTATUS=grandchild %d", grandchild))
	}
	sig := <-sigs
	fmt.Printf("signal %d\n", sig.(syscall.Signal))
	os.Exit(0)
}

// sleeperMain is the grandchild: it says READY=1 if asked (in the name
// of the child's service) and lives until killed, a minute at most.
func sleeperMain() {
	if os.Getenv("SLEEPER_NOTIFY") == "notify" {
		daemon.SdNotify(false, "READY=1")
	}
	time.Sleep(time.Minute) // its lifetime, not a synchronisation
}

// reportService is the [Service] part that makes the test binary the
// report child; lines come first so that they may reset Environment=.
func reportService(lines string) string {
	return lines + "\nEnvironment=SOCKD_TEST_CHILD=report GORACE=atexit_sleep_ms=0\n"
}

// runReport starts the unit, waits for its child to exit, and returns
// the child's report and all output lines of the unit.
func (e *env) runReport() (*report, []api.LogLine) {
	e.t.Helper()
	if err := e.d.Start(e.ctx(), "app"); err != nil {
		e.t.Fatalf("start: %v", err)
	}
	e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 0 && st.Result != "" })
	return e.reportFromLogs("app")
}

func (e *env) reportFromLogs(unit string) (*report, []api.LogLine) {
	e.t.Helper()
	lines, err := e.d.Logs(e.ctx(), unit, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, l := range lines {
		if s, ok := strings.CutPrefix(l.Line, "REPORT "); ok {
			var r report
			if err := json.Unmarshal([]byte(s), &r); err != nil {
				e.t.Fatalf("report: %v", err)
			}
			return &r, lines
		}
	}
	e.t.Fatalf("no report in the output: %+v", lines)
	return nil, nil
}

const unset = "<unset>"

func checkEnv(t *testing.T, r *report, want map[string]string) {
	t.Helper()
	for k, w := range want {
		v, ok := r.env(k)
		if !ok {
			v = unset
		}
		if v != w {
			t.Errorf("%s=%q, want %q", k, v, w)
		}
	}
}

// Environment=, EnvironmentFile=, UnsetEnvironment=, PassEnvironment=,
// specifiers, and that nothing of sockd's own environment leaks.
func TestOptionsEnvironment(t *testing.T) {
	files := testutil.ShortDir(t)
	write := func(name, content string) string {
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	parsed := write("parsed.env", "# comment\n; comment too\n\n"+
		"PLAIN=value\n"+
		"  SPACED =  spaced value  \n"+
		"DQ=\"double \\\"quoted\\\" \\$HOME \\n\"\n"+
		"SQ='single $HOME \\n'\n"+
		"CONT=first\\\nsecond\n"+
		"MULTI=\"line one\nline two\"\n"+
		"JOINED=\"a\"'b'c\n"+
		"EMPTY=\n"+
		"export EXPORTED=yes\n"+
		"NOEQUALS\n"+
		"9BAD=x\n")
	first := write("first.env", "A=first\nB=first\n")
	second := write("second.env", "B=second\n")

	for _, tc := range []struct {
		name   string
		lines  string
		setenv map[string]string
		want   map[string]string
	}{
		{"quoting", `Environment="VAR1=word1 word2" VAR2=word3 "VAR3=$word 5 6" 'VAR4=it''s'`,
			nil, map[string]string{"VAR1": "word1 word2", "VAR2": "word3", "VAR3": "$word 5 6", "VAR4": "its"}},
		{"later-lines-override", "Environment=A=1 B=1\nEnvironment=A=2",
			nil, map[string]string{"A": "2", "B": "1"}},
		{"empty-resets", "Environment=A=1\nEnvironment=\nEnvironment=B=2",
			nil, map[string]string{"A": unset, "B": "2"}},
		{"file-parsing", "EnvironmentFile=" + parsed, nil, map[string]string{
			"PLAIN": "value", "SPACED": "spaced value", "DQ": `double "quoted" $HOME \n`,
			"SQ": `single $HOME \n`, "CONT": "firstsecond", "MULTI": "line one\nline two",
			"JOINED": "abc", "EMPTY": "", "EXPORTED": "yes", "NOEQUALS": unset, "9BAD": unset}},
		{"file-overrides-environment", "Environment=A=unit C=unit\nEnvironmentFile=" + first + "\nEnvironmentFile=" + second,
			nil, map[string]string{"A": "first", "B": "second", "C": "unit"}},
		{"optional-file-missing", "EnvironmentFile=-/nonexistent/sockd.env\nEnvironment=A=1",
			nil, map[string]string{"A": "1"}},
		{"unset", "Environment=A=1 B=2 C=3\nUnsetEnvironment=A C=4 PATH",
			nil, map[string]string{"A": unset, "B": "2", "C": "3", "PATH": unset}},
		{"unset-exact-assignment", "Environment=A=1 C=4\nUnsetEnvironment=C=4",
			nil, map[string]string{"A": "1", "C": unset}},
		{"pass", "PassEnvironment=FOO MISSING_VAR",
			map[string]string{"FOO": "from sockd", "BAR": "x"},
			map[string]string{"FOO": "from sockd", "BAR": unset, "MISSING_VAR": unset}},
		{"environment-overrides-pass", "PassEnvironment=FOO\nEnvironment=FOO=unit",
			map[string]string{"FOO": "from sockd"}, map[string]string{"FOO": "unit"}},
		{"sockd-env-absent", "",
			map[string]string{"NOTIFY_SOCKET": "/bogus", "LISTEN_FDS": "9", "LISTEN_PID": "1",
				"LISTEN_FDNAMES": "x", "WATCHDOG_USEC": "5", "WATCHDOG_PID": "1", "FOO": "x", "HOME": "/sockd-home"},
			map[string]string{"NOTIFY_SOCKET": unset, "LISTEN_FDS": "1", "LISTEN_FDNAMES": "app",
				"WATCHDOG_USEC": unset, "WATCHDOG_PID": unset, "FOO": unset, "HOME": unset}},
		{"sockd-env-passed", "PassEnvironment=FOO WATCHDOG_PID",
			map[string]string{"FOO": "x", "WATCHDOG_PID": "1"}, map[string]string{"FOO": "x", "WATCHDOG_PID": "1"}},
		{"protocol-wins", "Environment=LISTEN_FDS=7 LISTEN_FDNAMES=x LISTEN_PID=1",
			nil, map[string]string{"LISTEN_FDS": "1", "LISTEN_FDNAMES": "app"}},
		{"path-default", "", nil, map[string]string{"PATH": defaultPath}},
		{"path-set", "Environment=PATH=/opt/bin", nil, map[string]string{"PATH": "/opt/bin"}},
		{"specifiers", "Environment=N=%n P=%p NN=%N PCT=%%", nil,
			map[string]string{"N": "app.service", "P": "app", "NN": "app", "PCT": "%"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.setenv {
				t.Setenv(k, v)
			}
			e := newEnv(t, reportService(tc.lines+"\nEnvironment=CHILD_EXIT=0"))
			r, _ := e.runReport()
			checkEnv(t, r, tc.want)
			if v, _ := r.env("LISTEN_PID"); v != strconv.Itoa(r.Pid) {
				t.Errorf("LISTEN_PID=%s, want the child's pid %d", v, r.Pid)
			}
			if tc.name == "sockd-env-absent" {
				// Exactly what the unit and the protocol give.
				var keys []string
				for _, kv := range r.Env {
					k, _, _ := strings.Cut(kv, "=")
					keys = append(keys, k)
				}
				slices.Sort(keys)
				want := []string{"CHILD_EXIT", "GORACE", "LISTEN_FDNAMES", "LISTEN_FDS", "LISTEN_PID", "PATH", "SOCKD_TEST_CHILD"}
				if !slices.Equal(keys, want) {
					t.Errorf("environment keys %v, want %v", keys, want)
				}
			}
		})
	}
}

// A missing EnvironmentFile= without "-" fails the start.
func TestOptionsEnvironmentFileMissing(t *testing.T) {
	e := newEnv(t, reportService("EnvironmentFile=/nonexistent/sockd.env\nEnvironment=CHILD_EXIT=0"))
	err := e.d.Start(e.ctx(), "app")
	if err == nil || !strings.Contains(err.Error(), "EnvironmentFile=/nonexistent/sockd.env") {
		t.Fatalf("start: %v, want an EnvironmentFile= error", err)
	}
}

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

// StandardOutput=/StandardError=: journal (Daemon.Logs), null, file:,
// append:, truncate:, and StandardError=inherit following stdout.
func TestOptionsOutput(t *testing.T) {
	const old = "0123456789\nabcdefghij\n"
	for _, tc := range []struct {
		name      string
		lines     string
		logs      []string // "stream line", in order
		file      string   // content of the file after the run
		noFileYet bool
	}{
		{"journal", "", []string{"stdout out-line", "stderr err-line"}, "", false},
		// StandardError= defaults to inherit: it follows StandardOutput=.
		{"null-stdout", "StandardOutput=null", nil, "", false},
		{"null-stdout-journal-stderr", "StandardOutput=null\nStandardError=journal", []string{"stderr err-line"}, "", false},
		{"null-both", "StandardOutput=null\nStandardError=null", nil, "", false},
		{"file", "StandardOutput=file:FILE", nil, "out-line\nerr-line\nhij\n", false}, // overwritten in place
		{"file-new", "StandardOutput=file:FILE", nil, "out-line\nerr-line\n", true},
		{"append", "StandardOutput=append:FILE", nil, old + "out-line\nerr-line\n", false},
		{"truncate", "StandardOutput=truncate:FILE", nil, "out-line\nerr-line\n", false},
		{"file-journal-stderr", "StandardOutput=truncate:FILE\nStandardError=journal", []string{"stderr err-line"}, "out-line\n", false},
		{"both-append", "StandardOutput=append:FILE\nStandardError=append:FILE", nil, old + "out-line\nerr-line\n", false},
		{"stderr-inherit", "StandardOutput=append:FILE\nStandardError=inherit", nil, old + "out-line\nerr-line\n", false},
		{"stderr-file", "StandardError=truncate:FILE", []string{"stdout out-line"}, "err-line\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(testutil.ShortDir(t), "out.log")
			if !tc.noFileYet {
				if err := os.WriteFile(file, []byte(old), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			lines := strings.ReplaceAll(tc.lines, "FILE", file)
			e := newEnv(t, reportService(lines+"\nEnvironment=CHILD_EXIT=0 CHILD_NOREPORT=1 CHILD_STDOUT=out-line CHILD_STDERR=err-line"))
			if err := e.d.Start(e.ctx(), "app"); err != nil {
				t.Fatal(err)
			}
			e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 0 && st.Result != "" })
			ls, err := e.d.Logs(e.ctx(), "app", 100)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range ls {
				got = append(got, l.Stream+" "+l.Line)
			}
			// Two pipes: the order between streams is not kept.
			slices.Sort(got)
			want := slices.Clone(tc.logs)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("logs %q, want %q", got, want)
			}
			if tc.file != "" {
				b, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				if string(b) != tc.file {
					t.Errorf("file %q, want %q", b, tc.file)
				}
			}
		})
	}
	t.Run("file-in-missing-dir", func(t *testing.T) {
		e := newEnv(t, reportService("StandardOutput=file:/nonexistent/dir/out.log\nEnvironment=CHILD_EXIT=0"))
		if err := e.d.Start(e.ctx(), "app"); err == nil || !strings.Contains(err.Error(), "StandardOutput=") {
			t.Fatalf("start: %v, want a StandardOutput= error", err)
		}
	})
}

// waitService is a child that stays until signalled and says READY=1 once
// its handlers are in place.
const waitService = "Type=notify\nEnvironment=CHILD_NOTIFY=ready\n"

// startWaiting starts the unit and returns the main pid and the
// grandchild's pid (0 without one).
func (e *env) startWaiting() (int, int) {
	e.t.Helper()
	if err := e.d.Start(e.ctx(), "app"); err != nil {
		e.t.Fatalf("start: %v", err)
	}
	st := e.status()
	if len(st.Pids) != 1 {
		e.t.Fatalf("status %+v", st)
	}
	gc, _ := strconv.Atoi(strings.TrimPrefix(st.Status, "grandchild "))
	if gc > 0 {
		e.t.Cleanup(func() { syscall.Kill(gc, syscall.SIGKILL) })
	}
	return st.Pids[0], gc
}

func (e *env) mustStop() {
	e.t.Helper()
	if err := e.d.Stop(e.ctx(), "app"); err != nil {
		e.t.Fatalf("stop: %v", err)
	}
}

func (e *env) hasLine(line string) bool {
	e.t.Helper()
	ls, err := e.d.Logs(e.ctx(), "app", 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, l := range ls {
		if l.Line == line {
			return true
		}
	}
	return false
}

// KillSignal= is the signal the child gets on stop.
func TestOptionsKillSignal(t *testing.T) {
	for _, tc := range []struct {
		lines string
		sig   syscall.Signal
	}{
		{"", syscall.SIGTERM},
		{"KillSignal=SIGUSR1", syscall.SIGUSR1},
		{"KillSignal=INT", syscall.SIGINT},
		{"KillSignal=SIGHUP", syscall.SIGHUP},
	} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			e := newEnv(t, reportService(waitService+tc.lines))
			pid, _ := e.startWaiting()
			e.mustStop()
			if !e.hasLine(fmt.Sprintf("signal %d", tc.sig)) {
				t.Fatalf("child %d did not report signal %d", pid, tc.sig)
			}
		})
	}
}

// waitExit waits, through a pidfd, for any process (not only a child of
// ours) to exit, and reports whether it did within d.
func waitExit(t *testing.T, pid int, d time.Duration) bool {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return true
	}
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(d)
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms <= 0 {
			return !alive(pid)
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("poll pidfd: %v", err)
		}
		if n > 0 {
			return true
		}
	}
}

// KillMode=control-group signals the whole process group, KillMode=process
// the main process alone.
func TestOptionsKillMode(t *testing.T) {
	for _, tc := range []struct {
		mode     string
		survives bool
	}{
		{"", false},
		{"control-group", false},
		{"process", true},
	} {
		t.Run("mode="+tc.mode, func(t *testing.T) {
			lines := waitService + "Environment=CHILD_GRANDCHILD=sleep\n"
			if tc.mode != "" {
				lines += "KillMode=" + tc.mode + "\n"
			}
			e := newEnv(t, reportService(lines))
			pid, gc := e.startWaiting()
			if gc == 0 || !alive(gc) {
				t.Fatalf("no grandchild (%d) of %d", gc, pid)
			}
			e.mustStop()
			if alive(pid) {
				t.Fatalf("main pid %d alive after stop", pid)
			}
			if tc.survives {
				if !alive(gc) {
					t.Fatalf("grandchild %d died with KillMode=%s", gc, tc.mode)
				}
			} else if !waitExit(t, gc, 10*time.Second) {
				t.Fatalf("grandchild %d alive with KillMode=%s", gc, tc.mode)
			}
		})
	}
}

// TimeoutStopSec= ends in SIGKILL for a child that ignores SIGTERM;
// SendSIGKILL=no waits as long as it takes.
func TestOptionsStopTimeout(t *testing.T) {
	t.Run("escalation", func(t *testing.T) {
		e := newEnv(t, reportService(waitService+"Environment=CHILD_IGNORE_TERM=1\nTimeoutStopSec=300ms"))
		pid, _ := e.startWaiting()
		t0 := time.Now()
		e.mustStop()
		if d := time.Since(t0); d < 300*time.Millisecond {
			t.Fatalf("stopped after %v, before TimeoutStopSec=300ms", d)
		}
		if alive(pid) || e.hasLine("signal 15") {
			t.Fatalf("pid %d alive, or it handled SIGTERM", pid)
		}
	})
	t.Run("SendSIGKILL=no", func(t *testing.T) {
		e := newEnv(t, reportService(waitService+"Environment=CHILD_IGNORE_TERM=1\nTimeoutStopSec=200ms\nSendSIGKILL=no"))
		pid, _ := e.startWaiting()
		// Registered after newEnv's shutdown, so it runs before it.
		t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
		stopped := make(chan error, 1)
		go func() { stopped <- e.d.Stop(e.ctx(), "app") }()
		// Nothing to wait for but the absence of a kill: watch well past
		// the timeout.
		select {
		case err := <-stopped:
			t.Fatalf("stop returned (%v) though the child ignores SIGTERM", err)
		case <-time.After(200*time.Millisecond + time.Second):
		}
		if !alive(pid) {
			t.Fatalf("pid %d killed despite SendSIGKILL=no", pid)
		}
		syscall.Kill(pid, syscall.SIGKILL)
		if err := <-stopped; err != nil {
			t.Fatalf("stop: %v", err)
		}
	})
}

// Restart= and SuccessExitStatus=: whether an exit is followed by a new
// process.
func TestOptionsRestart(t *testing.T) {
	for _, tc := range []struct {
		name, lines string
		exit        int
		restart     bool
		result      string
	}{
		{"on-failure-exit-1", "Restart=on-failure", 1, true, "exit-code"},
		{"on-failure-exit-0", "Restart=on-failure", 0, false, "success"},
		{"no-exit-1", "Restart=no", 1, false, "exit-code"},
		{"default-exit-1", "", 1, false, "exit-code"},
		{"success-status-listed", "Restart=on-failure\nSuccessExitStatus=3 7", 3, false, "success"},
		{"success-status-other", "Restart=on-failure\nSuccessExitStatus=3 7", 4, true, "exit-code"},
		{"on-success-exit-0", "Restart=on-success", 0, true, "success"},
		{"on-success-exit-1", "Restart=on-success", 1, false, "exit-code"},
		{"always-exit-0", "Restart=always", 0, true, "success"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, reportService(tc.lines+fmt.Sprintf("\nEnvironment=CHILD_EXIT=%d CHILD_NOREPORT=1\nRestartSec=50ms", tc.exit)))
			if err := e.d.Start(e.ctx(), "app"); err != nil {
				t.Fatal(err)
			}
			first := e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 1 }).Pids[0]
			st := e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 0 && st.Result != "" })
			if st.Result != tc.result {
				t.Errorf("result %q, want %q", st.Result, tc.result)
			}
			if !tc.restart {
				wantState := api.StateFailed
				if tc.result == "success" {
					wantState = api.StateInactive
				}
				// No restart is scheduled: the unit waits for a connection.
				if st.SubState != "listening" || st.State != wantState {
					t.Fatalf("after exit %d: %+v, want %s and listening", tc.exit, st, wantState)
				}
				return
			}
			if st.SubState != "auto-restart" {
				t.Fatalf("after exit %d: %+v, want auto-restart", tc.exit, st)
			}
			next := e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 1 })
			if next.Pids[0] == first {
				t.Fatalf("no new process: %+v", next)
			}
			e.mustStop()
		})
	}
}

// RestartSec= is the pause between an exit and the next start.
func TestOptionsRestartSec(t *testing.T) {
	e := newEnv(t, reportService("Restart=on-failure\nRestartSec=400ms\nEnvironment=CHILD_EXIT=1 CHILD_NOREPORT=1"))
	if err := e.d.Start(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	waiting := e.await(func(st api.ServiceStatus) bool { return st.SubState == "auto-restart" })
	next := e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 1 })
	if d := next.Since.Sub(waiting.Since); d < 400*time.Millisecond {
		t.Fatalf("restarted %v after the exit, want at least RestartSec=400ms", d)
	}
	e.mustStop()
}

// WatchdogSec= gives the child WATCHDOG_USEC; a child that never pings is
// stopped and the unit's result is "watchdog".
func TestOptionsWatchdog(t *testing.T) {
	e := newEnv(t, reportService("WatchdogSec=300ms"))
	if err := e.d.Start(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	st := e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 0 && st.Result != "" })
	if st.Result != "watchdog" || st.State != api.StateFailed {
		t.Fatalf("status %+v, want failed with result watchdog", st)
	}
	if d := time.Since(t0); d < 300*time.Millisecond {
		t.Fatalf("killed after %v, before WatchdogSec=300ms", d)
	}
	r, _ := e.reportFromLogs("app")
	checkEnv(t, r, map[string]string{"WATCHDOG_USEC": "300000"})
	if _, ok := r.env("NOTIFY_SOCKET"); !ok {
		t.Errorf("no NOTIFY_SOCKET for a service with WatchdogSec=")
	}
}

// NotifyAccess=: READY=1 from a grandchild counts with "all", not with
// "main" (the default of Type=notify).
func TestOptionsNotifyAccess(t *testing.T) {
	for _, tc := range []struct {
		access string
		ready  bool
	}{
		{"", false},
		{"main", false},
		{"all", true},
	} {
		t.Run("access="+tc.access, func(t *testing.T) {
			lines := "Type=notify\nTimeoutStartSec=1s\nEnvironment=CHILD_GRANDCHILD=notify\n"
			if tc.access != "" {
				lines += "NotifyAccess=" + tc.access + "\n"
			}
			e := newEnv(t, reportService(lines))
			err := e.d.Start(e.ctx(), "app")
			if tc.ready {
				if err != nil {
					t.Fatalf("start: %v", err)
				}
				if st := e.status(); st.State != api.StateActive {
					t.Fatalf("status %+v", st)
				}
				return
			}
			if err == nil {
				t.Fatal("start succeeded on a grandchild's READY=1")
			}
			st := e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 0 && st.Result != "" })
			if st.Result != "timeout" {
				t.Fatalf("status %+v, want result timeout", st)
			}
		})
	}
}

// Type=simple is active once spawned; Type=notify is activating until
// READY=1.
func TestOptionsType(t *testing.T) {
	t.Run("simple", func(t *testing.T) {
		e := newEnv(t, reportService("Type=simple"))
		if err := e.d.Start(e.ctx(), "app"); err != nil {
			t.Fatal(err)
		}
		st := e.await(func(st api.ServiceStatus) bool { return len(st.Pids) > 0 })
		if st.State != api.StateActive {
			t.Fatalf("first status with a process: %+v, want active", st)
		}
	})
	t.Run("notify", func(t *testing.T) {
		e := newEnv(t, reportService("Type=notify"))
		started := make(chan error, 1)
		go func() { started <- e.d.Start(e.ctx(), "app") }()
		st := e.await(func(st api.ServiceStatus) bool { return len(st.Pids) > 0 })
		if st.State != api.StateActive && st.State != api.StateActivating {
			t.Fatalf("first status with a process: %+v", st)
		}
		if st.State == api.StateActive {
			t.Fatalf("active before READY=1: %+v", st)
		}
		select {
		case err := <-started:
			t.Fatalf("start returned (%v) before READY=1", err)
		default:
		}
		// The child says READY=1 when asked over its socket; the
		// connection waits in the queue until it accepts.
		if err := e.getPath("/ready"); err != nil {
			t.Fatal(err)
		}
		e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
		if err := <-started; err != nil {
			t.Fatalf("start: %v", err)
		}
	})
}

func (e *env) getPath(path string) error {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", e.sock)
		}}}
	resp, err := c.Get("http://app" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	return err
}

// A service without a socket starts as soon as it is loaded.
func TestOptionsSocketless(t *testing.T) {
	e := newEnv(t, reportService(""))
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	e.write("bg.service", "[Service]\nExecStart="+self+"\n"+reportService("Environment=CHILD_EXIT=0"))
	res, err := e.d.Reload(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range res.Diagnostics {
		if d.Severity == "error" {
			t.Fatalf("reload: %s", d.Text)
		}
	}
	// Only bg changes: app waits for a connection that never comes.
	e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 0 && st.Result == "success" })
	r, _ := e.reportFromLogs("bg")
	checkEnv(t, r, map[string]string{"LISTEN_FDS": unset, "LISTEN_PID": unset, "LISTEN_FDNAMES": unset})
	if st := e.status(); len(st.Pids) != 0 || st.State != api.StateInactive {
		t.Fatalf("app started too: %+v", st)
	}
}
