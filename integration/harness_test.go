// Package integration runs sockd, sockctl and real apps end to end: the
// binaries are built once, every test gets its own unit directory, API
// socket and loopback ports, and leaves no process or file behind.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/testutil"
)

var bin struct {
	dir, sockd, sockctl, demo, loadgen, self string
}

func TestMain(m *testing.M) {
	if mode := os.Getenv("SOCKD_TEST_CHILD"); mode != "" {
		childMain(mode)
		return
	}
	flag.Parse()
	if testing.Short() {
		// make test-short: these tests build the binaries and run real
		// apps (make deps installs them); make test runs them.
		fmt.Println("integration: end-to-end tests skipped under -short")
		os.Exit(0)
	}
	// sockd and sockctl are built with -race, whose runtime sleeps 1 s at
	// exit unless told not to: that would add a second to every sockctl.
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	dir, err := os.MkdirTemp("", "sockd-it-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		bin.dir = dir
		for _, b := range []struct {
			out       *string
			name, pkg string
		}{
			{&bin.sockd, "sockd", "../cmd/sockd"},
			{&bin.sockctl, "sockctl", "../cmd/sockctl"},
			{&bin.demo, "sockd-demo", "../contrib/demo"},
			{&bin.loadgen, "loadgen", "../bench/loadgen"},
		} {
			*b.out = filepath.Join(dir, b.name)
			args := []string{"build", "-race", "-o", *b.out, b.pkg}
			if b.name == "sockd-demo" || b.name == "loadgen" {
				// The app and the load are not under test; a -race
				// binary also sleeps 1 s at exit.
				args = []string{"build", "-o", *b.out, b.pkg}
			}
			cmd := exec.CommandContext(ctx, "go", args...)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "build %s: %v\n", b.pkg, err)
				return 1
			}
		}
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		bin.self = self
		return m.Run()
	}()
	os.Exit(code)
}

// sockd is one running sockd process.
type sockd struct {
	t     *testing.T
	cmd   *exec.Cmd
	api   string
	units string
	done  chan struct{}
	err   error

	mu    sync.Mutex
	lines []map[string]any
	raw   []string
	cond  chan struct{} // closed and replaced on every new log line
}

// writeUnits writes name→content files into a new unit directory.
func writeUnits(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(testutil.ShortDir(t), "units")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startSockd runs sockd on unitsDir and waits until it logs that it is ready.
func startSockd(t *testing.T, unitsDir string, extraEnv ...string) *sockd {
	t.Helper()
	return startSockdArgs(t, unitsDir, nil, extraEnv...)
}

// startSockdArgs is startSockd with more command-line arguments.
func startSockdArgs(t *testing.T, unitsDir string, args []string, extraEnv ...string) *sockd {
	t.Helper()
	return startSockdExe(t, bin.sockd, unitsDir, args, extraEnv...)
}

// startSockdBinary is startSockd with another sockd binary.
func startSockdBinary(t *testing.T, exe, unitsDir string) *sockd {
	t.Helper()
	return startSockdExe(t, exe, unitsDir, nil)
}

func startSockdExe(t *testing.T, exe, unitsDir string, args []string, extraEnv ...string) *sockd {
	t.Helper()
	run := testutil.ShortDir(t)
	// The runtime directory (rt, NOTIFY_SOCKET) must be reachable by a
	// User= or DynamicUser= service: its parent too (sockd warns if not).
	if err := os.Chmod(run, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &sockd{t: t, api: filepath.Join(run, "api.sock"), units: unitsDir, done: make(chan struct{}), cond: make(chan struct{})}
	s.cmd = exec.Command(exe, append([]string{"--units", unitsDir, "--api", s.api, "--log-format", "json", "--log-level", "debug",
		"--runtime-dir", filepath.Join(run, "rt")}, args...)...)
	s.cmd.Env = append(append(os.Environ(), "PATH="+bin.dir+":"+os.Getenv("PATH")), extraEnv...)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go s.readLog(stderr)
	t.Cleanup(s.cleanup)
	s.waitLog(10*time.Second, func(l map[string]any) bool { return l["message"] == "sockd ready" })
	return s
}

func (s *sockd) readLog(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			m = map[string]any{"message": line}
		}
		s.mu.Lock()
		s.lines = append(s.lines, m)
		s.raw = append(s.raw, line)
		close(s.cond)
		s.cond = make(chan struct{})
		s.mu.Unlock()
	}
	s.err = s.cmd.Wait()
	close(s.done)
}

// waitLog waits until a log line matches, and returns it.
func (s *sockd) waitLog(timeout time.Duration, match func(map[string]any) bool) map[string]any {
	s.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen := 0
	for {
		s.mu.Lock()
		lines, cond := s.lines[seen:], s.cond
		seen = len(s.lines)
		s.mu.Unlock()
		for _, l := range lines {
			if match(l) {
				return l
			}
		}
		select {
		case <-cond:
		case <-s.done:
			s.t.Fatalf("sockd exited (%v) while waiting for a log line; log:\n%s", s.err, s.log())
		case <-deadline.C:
			s.t.Fatalf("no matching log line within %s; log:\n%s", timeout, s.log())
		}
	}
}

func (s *sockd) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.raw, "\n")
}

// stop sends SIGTERM and waits for sockd to exit; it returns the exit error.
func (s *sockd) stop() error {
	s.t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return s.err
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		s.t.Fatalf("sockd did not exit within 30s of SIGTERM; log:\n%s", s.log())
		return nil
	}
}

func (s *sockd) cleanup() {
	select {
	case <-s.done:
	default:
		s.stop()
	}
	if s.t.Failed() {
		s.t.Logf("sockd log:\n%s", s.log())
	}
}

// ctl runs sockctl against this sockd and returns stdout, stderr and the exit code.
func (s *sockd) ctl(args ...string) (string, string, int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin.sockctl, append([]string{"--api", s.api}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatalf("sockctl %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// status returns `sockctl status UNIT --json`.
func (s *sockd) status(unit string) api.UnitStatus {
	s.t.Helper()
	out, errs, code := s.ctl("status", unit, "--json")
	if code != 0 {
		s.t.Fatalf("sockctl status %s: exit %d: %s", unit, code, errs)
	}
	var st api.UnitStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		s.t.Fatalf("sockctl status --json: %v: %q", err, out)
	}
	return st
}

// client is an HTTP client that opens a new connection per request.
func client(network, addr string) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			},
		},
	}
}

// get fetches / through c and returns the body.
func get(t *testing.T, c *http.Client) string {
	t.Helper()
	resp, err := c.Get("http://sockd.test/")
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET body: %v", err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET: %s: %s", resp.Status, b)
	}
	return string(b)
}

// pidAlive reports whether pid exists and is not a zombie.
func pidAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || len(s) < i+3 || s[i+2] != 'Z'
}
