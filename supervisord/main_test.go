package supervisord

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/internal/testutil"
)

// TestMain lets the test binary play a unit's service: with
// SOCKD_TEST_CHILD set it is the child, not the tests.
func TestMain(m *testing.M) {
	children.MaybeRunHelper()
	if mode := os.Getenv("SOCKD_TEST_CHILD"); mode != "" {
		childMain(mode)
		return
	}
	strictPhases = true // a transition the table does not list panics
	// As sockd does: Type=forking daemons reparent to us.
	if err := children.BecomeSubreaper(); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// childMain is the test service. Modes: "serve" answers HTTP with its pid
// on every socket it was handed and says READY=1 (after CHILD_DELAY);
// "fail" prints a line and exits 3; "never-ready" serves but never says
// READY=1; "crash" exits 1 at once without output.
func childMain(mode string) {
	switch mode {
	case "fail":
		fmt.Println("broken build: cannot start")
		os.Exit(3)
	case "crash":
		os.Exit(1)
	case "setsid":
		// A daemon leaving its parent's session and process group: it
		// tells its pid on CHILD_FIFO once it has, then waits.
		syscall.Setsid()
		if f, err := os.OpenFile(os.Getenv("CHILD_FIFO"), os.O_WRONLY, 0); err == nil {
			fmt.Fprintln(f, os.Getpid())
			f.Close()
		}
		time.Sleep(time.Hour)
		os.Exit(0)
	}
	// Signals first: a SIGHUP (reload-app) or SIGTERM may come as soon
	// as the first request is answered.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP)
	if os.Getenv("CHILD_FD3_MODE") != "" {
		// The mode the child got, before Go's net.FileListener makes
		// the socket non-blocking.
		fl, err := unix.FcntlInt(3, unix.F_GETFL, 0)
		fmt.Printf("fd3 pid=%d nonblock=%t err=%v\n", os.Getpid(), fl&unix.O_NONBLOCK != 0, err)
	}
	ls, err := activation.Listeners()
	if err != nil || len(ls) == 0 {
		fmt.Fprintln(os.Stderr, "child: no sockets:", err, os.Getenv("LISTEN_PID"), os.Getpid())
		os.Exit(1)
	}
	tag := os.Getenv("CHILD_TAG")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/shutdown" {
			// A hostile or broken app: shutdown(2) on the listening
			// socket it inherited, which then refuses every connection.
			fmt.Fprintf(w, "%d shut down", os.Getpid())
			shutdownListener(ls[0])
			return
		}
		fmt.Fprintf(w, "%d %s", os.Getpid(), tag)
	})}
	for _, l := range ls {
		go srv.Serve(l)
	}
	if d, err := time.ParseDuration(os.Getenv("CHILD_DELAY")); err == nil {
		time.Sleep(d) // the app's start-up time
	}
	if mode == "serve" {
		daemon.SdNotify(false, "READY=1\nSTATUS=serving")
	}
	fmt.Println("child ready", os.Getpid())
	for sig := range sigs {
		if sig == syscall.SIGTERM {
			break
		}
		// SIGHUP: "reload", and say so on the FIFO the test reads.
		if f, err := os.OpenFile(os.Getenv("CHILD_HUP_FIFO"), os.O_WRONLY, 0); err == nil {
			fmt.Fprintf(f, "hup %d\n", os.Getpid())
			f.Close()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	os.Exit(0)
}

// env is one test's unit directory and daemon.
type env struct {
	t    *testing.T
	dir  string
	sock string
	d    *Daemon
	obs  chan api.ServiceStatus
}

// newEnv writes a unit "app" on a Unix socket whose service is the test
// binary with the given [Service] lines, and starts a Daemon on it.
func newEnv(t *testing.T, serviceLines string) *env {
	t.Helper()
	return newEnvWith(t, serviceLines, envCgroup(t), zerolog.NewTestWriter(t))
}

// newEnvCgroup is newEnv with the units' cgroups in cgroupDir ("": none).
func newEnvCgroup(t *testing.T, serviceLines, cgroupDir string) *env {
	t.Helper()
	return newEnvWith(t, serviceLines, cgroupDir, zerolog.NewTestWriter(t))
}

// newEnvLog is newEnv with the daemon's log written to w.
func newEnvLog(t *testing.T, serviceLines string, w io.Writer) *env {
	t.Helper()
	return newEnvWith(t, serviceLines, envCgroup(t), w)
}

// newEnvWith is newEnv with the units' cgroups in cgroupDir ("": none)
// and the daemon's log written to w.
func newEnvWith(t *testing.T, serviceLines, cgroupDir string, w io.Writer) *env {
	t.Helper()
	base := testutil.ShortDir(t)
	e := &env{t: t, dir: filepath.Join(base, "units"), sock: filepath.Join(base, "app.sock")}
	os.MkdirAll(e.dir, 0o755)
	e.write("app.socket", "[Socket]\nListenStream="+e.sock+"\n")
	e.write("app.service", e.service(serviceLines))
	e.obs = make(chan api.ServiceStatus, 1024)
	e.d = New(Config{UnitsDir: e.dir, RuntimeDir: filepath.Join(base, "rt"), Cgroup: cgroupDir, Log: zerolog.New(w).With().Timestamp().Logger(),
		Observe: func(unit string, st api.ServiceStatus) {
			select {
			case e.obs <- st:
			default:
				t.Errorf("observer channel full")
			}
		}})
	e.d.roots = testRoots(t) // RuntimeDirectory= and friends under the test's directory
	if err := e.d.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.d.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return e
}

func (e *env) service(lines string) string {
	self, err := os.Executable()
	if err != nil {
		e.t.Fatal(err)
	}
	// GORACE: a -race binary sleeps 1 s at exit by default.
	return "[Service]\nExecStart=" + self + "\nTimeoutStopSec=5s\nEnvironment=GORACE=atexit_sleep_ms=0\n" + lines
}

func (e *env) write(name, content string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.dir, name), []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

// get asks the app for its pid and tag over a new connection.
func (e *env) get() (int, string, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", e.sock)
		}}}
	resp, err := c.Get("http://app/")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", err
	}
	pid, tag, _ := strings.Cut(string(b), " ")
	n, err := strconv.Atoi(pid)
	return n, tag, err
}

func (e *env) mustGet() (int, string) {
	e.t.Helper()
	pid, tag, err := e.get()
	if err != nil {
		e.t.Fatalf("request: %v", err)
	}
	return pid, tag
}

func (e *env) status() api.ServiceStatus {
	e.t.Helper()
	st, err := e.d.Status(e.ctx(), "app")
	if err != nil {
		e.t.Fatal(err)
	}
	return st.Service
}

func (e *env) restart(opts api.RestartOptions) (api.RestartResult, []api.Event) {
	e.t.Helper()
	opts.Wait = true
	var evs []api.Event
	res, err := e.d.Restart(e.ctx(), "app", opts, func(ev api.Event) { evs = append(evs, ev) })
	if err != nil {
		e.t.Fatalf("restart: %v", err)
	}
	return res, evs
}

// reload rewrites app.service and reloads the directory.
func (e *env) reload(serviceLines string) {
	e.t.Helper()
	e.write("app.service", e.service(serviceLines))
	res, err := e.d.Reload(e.ctx())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, d := range res.Diagnostics {
		if d.Severity == "error" {
			e.t.Fatalf("reload: %s", d.Text)
		}
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && len(b) > i+2 && b[i+2] != 'Z'
}

func phases(evs []api.Event) string {
	var p []string
	for _, e := range evs {
		p = append(p, e.Phase)
	}
	return strings.Join(p, ",")
}

// await waits until the unit's observed status matches, and returns it.
func (e *env) await(match func(api.ServiceStatus) bool) api.ServiceStatus {
	e.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case st := <-e.obs:
			if match(st) {
				return st
			}
		case <-timeout:
			e.t.Fatalf("no matching status within 20s; now %+v", e.status())
		}
	}
}

func init() { zerolog.TimeFieldFormat = "15:04:05.000000" }

// shutdownListener calls shutdown(SHUT_RDWR) on l's socket.
func shutdownListener(l net.Listener) {
	f, err := l.(interface{ File() (*os.File, error) }).File()
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: shutdown:", err)
		return
	}
	defer f.Close()
	if err := syscall.Shutdown(int(f.Fd()), syscall.SHUT_RDWR); err != nil {
		fmt.Fprintln(os.Stderr, "child: shutdown:", err)
	}
}
