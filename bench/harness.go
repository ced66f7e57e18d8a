package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/loadreport"
)

// bins are the programs the bench runs.
type bins struct {
	sockd, sockctl, demo, loadgen string
	floor, acceptone              string // bench/floor, bench/acceptone (the tenants step)
	ssa                           string // systemd-socket-activate
	python                        string // /usr/bin/python3 with gunicorn
}

// ports hands out free loopback TCP ports below the ephemeral range, so
// that no client connection of anybody takes one meanwhile.
type ports struct {
	next, limit int
}

func newPorts() *ports {
	limit := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				limit = n
			}
		}
	}
	return &ports{next: 20000, limit: limit}
}

// take returns n ports, each checked free by binding it.
func (p *ports) take(n int) ([]int, error) {
	var out []int
	for len(out) < n {
		if p.next >= p.limit {
			return nil, fmt.Errorf("take %d ports: only %d free below %d", n, len(out), p.limit)
		}
		port := p.next
		p.next++
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		out = append(out, port)
	}
	return out, nil
}

func (p *ports) one() (int, error) {
	ps, err := p.take(1)
	if err != nil {
		return 0, err
	}
	return ps[0], nil
}

// shortDir makes a directory short enough for Unix socket paths; the
// returned cleanup removes it.
func shortDir(prefix string) (string, func(), error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, fmt.Errorf("make temp dir: %w", err)
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// writeFiles writes name → content into dir.
func writeFiles(dir string, files map[string]string) error {
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("write unit %s: %w", name, err)
		}
	}
	return nil
}

// demoService is the service file of a sockd-demo unit.
func (b *bins) demoService() string {
	return "[Service]\nType=notify\nExecStart=" + b.demo + "\nTimeoutStopSec=5\n"
}

// tail keeps the last lines written to it.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, s)
	if len(t.lines) > 20 {
		t.lines = t.lines[len(t.lines)-20:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// sockdProc is one running sockd.
type sockdProc struct {
	cmd     *exec.Cmd
	client  *api.Client
	apiPath string
	started time.Time
	ready   time.Duration // from exec to "sockd ready"
	log     *tail
	done    chan struct{} // closed when the process has exited
	waitErr error
	cleanup func()
}

// startUnit runs sockd on a fresh unit directory holding one unit, NAME
// on TCP addr with the given service file, and makes a first request
// (bounded by warm) so that the app runs. stop stops sockd and removes
// the directory.
func startUnit(ctx context.Context, b *bins, name, addr, service string, warm time.Duration) (s *sockdProc, stop func(), err error) {
	unitDir, cleanup, err := shortDir("sockd-bench-" + name)
	if err != nil {
		return nil, nil, err
	}
	if err := writeFiles(unitDir, map[string]string{
		name + ".socket":  "[Socket]\nListenStream=" + addr + "\n",
		name + ".service": service,
	}); err != nil {
		cleanup()
		return nil, nil, err
	}
	if s, err = startSockd(ctx, b, unitDir); err != nil {
		cleanup()
		return nil, nil, err
	}
	stop = func() { s.stop(); cleanup() }
	if _, err := firstByte("tcp", addr, warm); err != nil {
		stop()
		return nil, nil, fmt.Errorf("first request to %s: %w", name, err)
	}
	return s, stop, nil
}

// startSockd runs sockd on unitsDir, with extra flags, and waits for
// "sockd ready".
func startSockd(ctx context.Context, b *bins, unitsDir string, extra ...string) (*sockdProc, error) {
	dir, cleanup, err := shortDir("sockd-bench-api")
	if err != nil {
		return nil, err
	}
	s := &sockdProc{apiPath: filepath.Join(dir, "api.sock"), log: &tail{}, done: make(chan struct{}), cleanup: cleanup}
	s.client = &api.Client{Path: s.apiPath}
	s.cmd = exec.Command(b.sockd, append([]string{"--units", unitsDir, "--api", s.apiPath, "--log-format", "json", "--runtime-dir", filepath.Join(dir, "run")}, extra...)...)
	s.cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(b.sockd)+":"+os.Getenv("PATH"))
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		cleanup()
		return nil, err
	}
	ready := make(chan struct{})
	s.started = time.Now()
	if err := s.cmd.Start(); err != nil {
		cleanup()
		return nil, fmt.Errorf("start %s: %w", b.sockd, err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := false
		for sc.Scan() {
			line := sc.Text()
			if !once && strings.Contains(line, `"message":"sockd ready"`) {
				s.ready = time.Since(s.started)
				once = true
				close(ready)
			}
			if strings.Contains(line, `"level":"error"`) || strings.Contains(line, `"level":"warn"`) || !once {
				s.log.add(line)
			}
		}
		io.Copy(io.Discard, stderr)
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	select {
	case <-ready:
		return s, nil
	case <-s.done:
		cleanup()
		return nil, fmt.Errorf("sockd exited before ready: %v\n%s", s.waitErr, s.log)
	case <-ctx.Done():
		s.stop()
		return nil, fmt.Errorf("sockd not ready: %w\n%s", ctx.Err(), s.log)
	}
}

// pid returns sockd's pid.
func (s *sockdProc) pid() int { return s.cmd.Process.Pid }

// stop ends sockd with SIGTERM (SIGKILL after 20 s), then kills any of
// its children that survived, and removes its files.
func (s *sockdProc) stop() error {
	kids := childrenOf(s.pid())
	s.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case <-s.done:
		err = s.waitErr
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		err = fmt.Errorf("sockd did not stop within 20 s of SIGTERM")
	}
	for _, k := range kids {
		syscall.Kill(-k.pid, syscall.SIGKILL) // each child leads its group
		syscall.Kill(k.pid, syscall.SIGKILL)
	}
	s.cleanup()
	return err
}

// proc is a process as /proc/PID/stat shows it.
type proc struct {
	pid, ppid int
	state     byte
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []proc {
	ents, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if ppid == pid {
			out = append(out, proc{pid: n, ppid: ppid, state: f[0][0]})
		}
	}
	return out
}

// app is an app process started by the bench (not by sockd).
type app struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startApp runs argv with env and returns once a line of its stderr
// contains marker (case-insensitive), or fails if it exits first.
func startApp(ctx context.Context, argv, env []string, marker string) (*app, time.Time, error) {
	a := &app{cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{})}
	a.cmd.Env = append(os.Environ(), env...)
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := a.cmd.StderrPipe()
	if err != nil {
		return nil, time.Time{}, err
	}
	t0 := time.Now()
	if err := a.cmd.Start(); err != nil {
		return nil, t0, fmt.Errorf("start %s: %w", argv[0], err)
	}
	seen := make(chan struct{})
	log := &tail{}
	marker = strings.ToLower(marker)
	go func() {
		sc := bufio.NewScanner(stderr)
		found := false
		for sc.Scan() {
			log.add(sc.Text())
			if !found && strings.Contains(strings.ToLower(sc.Text()), marker) {
				found = true
				close(seen)
			}
		}
		io.Copy(io.Discard, stderr)
		a.cmd.Wait()
		close(a.done)
	}()
	select {
	case <-seen:
		return a, t0, nil
	case <-a.done:
		return nil, t0, fmt.Errorf("%s exited before saying %q:\n%s", argv[0], marker, log)
	case <-ctx.Done():
		a.stop()
		return nil, t0, fmt.Errorf("%s: no %q: %w", argv[0], marker, ctx.Err())
	}
}

// stop sends SIGTERM to the app's group, SIGKILL after 10 s.
func (a *app) stop() {
	syscall.Kill(-a.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		<-a.done
	}
}

// firstByte connects to addr, sends one HTTP request and returns the
// time from before connect to the first byte of the answer; it reads the
// whole answer and checks it is a 200.
func firstByte(network, addr string, timeout time.Duration) (time.Duration, error) {
	t0 := time.Now()
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(t0.Add(timeout))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"); err != nil {
		return 0, fmt.Errorf("write to %s: %w", addr, err)
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(c, buf); err != nil {
		return 0, fmt.Errorf("read from %s: %w", addr, err)
	}
	d := time.Since(t0)
	rest, err := io.ReadAll(c)
	if err != nil {
		return d, fmt.Errorf("read from %s: %w", addr, err)
	}
	if !bytes.HasPrefix(append(buf, rest...), []byte("HTTP/1.1 200")) {
		return d, fmt.Errorf("answer from %s: %.40q", addr, append(buf, rest...))
	}
	return d, nil
}

// report is loadgen's JSON report, with the formatting the table uses.
type report struct{ loadreport.Report }

func (r report) failed() int { return r.Failed() }

// failures formats the failures by kind: "0" or "3 (reset 2, eof 1)".
func (r report) failures() string {
	if r.failed() == 0 {
		return "0 failed"
	}
	var kinds []string
	for k, v := range r.Failures {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(kinds)
	return fmt.Sprintf("%d failed (%s)", r.failed(), strings.Join(kinds, ", "))
}

// latency formats p50/p99/max.
func (r report) latency() string {
	return fmt.Sprintf("p50/p99/max %s/%s/%s ms", ff(r.P50), ff(r.P99), ff(r.Max))
}

// load describes one loadgen run.
type load struct {
	addr      string
	unix      bool
	conc      int
	keepAlive bool
	dur       time.Duration // 0: until during returns
}

// runLoad runs loadgen as a separate process. With l.dur 0 it runs
// during meanwhile and stops the load when during returns.
func runLoad(ctx context.Context, b *bins, l load, during func() error) (report, error) {
	args := []string{"-addr", l.addr, "-c", strconv.Itoa(l.conc), "-d", l.dur.String(), "-timeout", "10s"}
	if l.unix {
		args = append(args, "-unix")
	}
	if l.keepAlive {
		args = append(args, "-keepalive")
	}
	cmd := exec.Command(b.loadgen, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return report{}, err
	}
	if err := cmd.Start(); err != nil {
		return report{}, fmt.Errorf("start loadgen: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var duringErr error
	if during != nil {
		duringErr = during()
	}
	stdin.Close()
	select {
	case err = <-done:
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		return report{}, fmt.Errorf("loadgen %s: %w", l.addr, ctx.Err())
	}
	if err != nil {
		return report{}, fmt.Errorf("loadgen %s: %w: %s", l.addr, err, errb.String())
	}
	var r report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return r, fmt.Errorf("loadgen %s: decode report: %w", l.addr, err)
	}
	return r, duringErr
}

// median returns the median of ds (0 for none).
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianF(fs []float64) float64 {
	if len(fs) == 0 {
		return 0
	}
	s := append([]float64(nil), fs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ms formats a duration in milliseconds with 2 decimals.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// ff formats a float compactly.
func ff(f float64) string {
	switch {
	case f >= 100:
		return fmt.Sprintf("%.0f", f)
	case f >= 10:
		return fmt.Sprintf("%.1f", f)
	default:
		return fmt.Sprintf("%.2f", f)
	}
}
