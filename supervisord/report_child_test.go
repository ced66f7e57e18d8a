package supervisord

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
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
)

// The TestOptions* tests prove that every service option reaches a real
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
	lines, err := e.d.Logs(e.ctx(), unit, api.LogQuery{N: 1000})
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
