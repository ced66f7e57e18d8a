package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockd/sockd/internal/loadreport"
	"github.com/sockd/sockd/internal/testutil"
)

// load is a loadgen process running until stop.
type load struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   strings.Builder
}

// startLoad runs loadgen against addr (a socket path when unix is set)
// from a separate process until stop is called.
func startLoad(t *testing.T, addr string, unix, keepAlive bool) *load {
	t.Helper()
	// Paced, so that the restarts are not starved of CPU on a 2-core
	// machine: the point is continuity, not throughput (make bench).
	args := []string{"-addr", addr, "-c", "4", "-rate", "400", "-d", "0", "-timeout", "20s"}
	if unix {
		args = append(args, "-unix")
	}
	if keepAlive {
		args = append(args, "-keepalive")
	}
	return startLoadArgs(t, args...)
}

// startLoadArgs runs loadgen with args until stop is called.
func startLoadArgs(t *testing.T, args ...string) *load {
	t.Helper()
	l := &load{t: t, cmd: exec.Command(bin.loadgen, args...)}
	l.cmd.Stdout = &l.out
	l.cmd.Stderr = os.Stderr
	var err error
	if l.stdin, err = l.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if l.cmd.ProcessState == nil {
			l.cmd.Process.Kill()
			l.cmd.Wait()
		}
	})
	return l
}

// stop ends the load and returns its report.
func (l *load) stop() loadreport.Report {
	l.t.Helper()
	l.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- l.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			l.t.Fatalf("loadgen: %v", err)
		}
	case <-time.After(60 * time.Second):
		l.cmd.Process.Kill()
		l.t.Fatal("loadgen did not stop")
	}
	var r loadreport.Report
	if err := json.Unmarshal([]byte(l.out.String()), &r); err != nil {
		l.t.Fatalf("loadgen report %q: %v", l.out.String(), err)
	}
	return r
}

func gunicornApp(t *testing.T) string {
	dir := testutil.ShortDir(t)
	os.WriteFile(filepath.Join(dir, "app.py"), []byte(`import os
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("gunicorn worker %d\n" % os.getpid()).encode()]
`), 0o644)
	return dir
}

// restartUnderLoad restarts unit n times with `sockctl restart --wait`
// while loadgen runs, and requires 0 failed requests.
func restartUnderLoad(t *testing.T, s *sockd, unit, addr string, unix, keepAlive bool, n int) {
	t.Helper()
	// Warm the unit up so the load starts against a running child.
	if _, errs, code := s.ctl("start", unit); code != 0 {
		t.Fatalf("sockctl start: %s", errs)
	}
	l := startLoad(t, addr, unix, keepAlive)
	pids := map[int]bool{}
	for i := range n {
		out, errs, code := s.ctl("restart", unit, "--wait", "--json")
		if code != 0 {
			l.stop()
			t.Fatalf("restart %d: exit %d\n%s\n%s", i, code, out, errs)
		}
		for _, p := range s.status(unit).Service.Pids {
			pids[p] = true
		}
	}
	r := l.stop()
	t.Logf("%s unix=%v keepalive=%v: %d restarts, %d requests, failures %v, p50 %.1f ms p99 %.1f ms max %.1f ms",
		unit, unix, keepAlive, n, r.Requests, r.Failures, r.P50, r.P99, r.Max)
	if len(r.Failures) > 0 || r.OK == 0 {
		t.Fatalf("failed requests across restarts: %v %v", r.Failures, r.Errors)
	}
	if len(pids) < n {
		t.Fatalf("only %d distinct pids over %d restarts", len(pids), n)
	}
}

// 20 restarts of a gunicorn unit (Type=notify) under load, with a new
// TCP connection per request and with keep-alive: 0 failed requests.
func TestGunicornRestartsUnderLoad(t *testing.T) {
	port := freePort(t)
	app := gunicornApp(t)
	s := startSockd(t, writeUnits(t, map[string]string{
		"web.socket": fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\n", port),
		"web.service": "[Service]\nType=notify\nWorkingDirectory=" + app +
			"\nExecStart=/usr/bin/python3 -m gunicorn --workers 2 --graceful-timeout 10 app:app\nTimeoutStopSec=15s\n",
	}))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	t.Run("new-connection", func(t *testing.T) { restartUnderLoad(t, s, "web", addr, false, false, 20) })
	t.Run("keep-alive", func(t *testing.T) { restartUnderLoad(t, s, "web", addr, false, true, 20) })
}

// The same with the unit on a Unix socket.
func TestGunicornUnixRestartsUnderLoad(t *testing.T) {
	sock := filepath.Join(testutil.ShortDir(t), "web.sock")
	app := gunicornApp(t)
	s := startSockd(t, writeUnits(t, map[string]string{
		"web.socket": "[Socket]\nListenStream=" + sock + "\n",
		"web.service": "[Service]\nType=notify\nWorkingDirectory=" + app +
			"\nExecStart=/usr/bin/python3 -m gunicorn --workers 2 app:app\nTimeoutStopSec=15s\n",
	}))
	restartUnderLoad(t, s, "web", sock, true, false, 20)
}

// A Go app (go-systemd activation + sd_notify) running 4 instances rolls
// through 20 restarts under keep-alive load with 0 failures.
func TestGoInstancesRestartUnderLoad(t *testing.T) {
	port := freePort(t)
	s := startSockd(t, writeUnits(t, map[string]string{
		"go.socket":  fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\n", port),
		"go.service": "[Service]\nType=notify\nExecStart=sockd-demo\nX-Instances=4\n",
	}))
	restartUnderLoad(t, s, "go", fmt.Sprintf("127.0.0.1:%d", port), false, true, 20)
	if st := s.status("go"); len(st.Service.Pids) != 4 || st.Service.Instances != 4 {
		t.Fatalf("status %+v", st.Service)
	}
}

// A restart to a broken build — one that exits at once, one that never
// becomes ready — leaves the old pid serving with 0 failed requests, and
// `sockctl restart --wait` exits 1 with the cause and the new process's
// last lines.
func TestRestartToBrokenBuildRollsBack(t *testing.T) {
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	files := demoUnits(port)
	dir := writeUnits(t, files)
	s := startSockd(t, dir)
	c := client("tcp", addr)
	old := pidOf(t, get(t, c))
	for _, tc := range []struct{ name, env, cause, tail string }{
		{"exits", "DEMO_FAIL=1", "exited before ready: exit status 3", "DEMO_FAIL=1: exiting with status 3"},
		{"never-ready", "DEMO_NEVER_READY=1\nTimeoutStartSec=2s", "not ready within TimeoutStartSec=", "listening on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.WriteFile(filepath.Join(dir, "demo.service"), []byte(files["demo.service"]+"Environment="+tc.env+"\n"), 0o644)
			if _, errs, code := s.ctl("reload"); code != 0 {
				t.Fatalf("reload: %s", errs)
			}
			l := startLoad(t, addr, false, false)
			out, errs, code := s.ctl("restart", "demo", "--wait")
			r := l.stop()
			if code != 1 {
				t.Fatalf("restart --wait exit %d, want 1\n%s\n%s", code, out, errs)
			}
			if !strings.Contains(errs, tc.cause) || !strings.Contains(errs, tc.tail) {
				t.Fatalf("stderr lacks the cause %q or the log line %q:\n%s", tc.cause, tc.tail, errs)
			}
			if len(r.Failures) > 0 || r.OK == 0 {
				t.Fatalf("requests failed during the rollback: %v %v", r.Failures, r.Errors)
			}
			if pid := pidOf(t, get(t, c)); pid != old {
				t.Fatalf("answer from %d, want the old %d", pid, old)
			}
			st := s.status("demo")
			if st.Service.LastRestart == nil || st.Service.LastRestart.OK || st.Service.State != "active" {
				t.Fatalf("status %+v", st.Service)
			}
		})
	}
}
