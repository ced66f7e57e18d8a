package supervisord

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/internal/testutil"
)

// With SOCKD_ACCEPT_CHILD set, the test binary is an Accept=yes instance.
// init runs before TestMain, so the exec helper must be given its turn
// first: it runs in the same binary with the same environment.
func init() {
	if mode := os.Getenv("SOCKD_ACCEPT_CHILD"); mode != "" {
		children.MaybeRunHelper()
		acceptChild(mode)
	}
}

// acceptChild serves the connection on fd 3: it greets with what it was
// handed ("key=value" words), then echoes lines as "echo: LINE" until
// the client closes.
func acceptChild(mode string) {
	conn := os.NewFile(3, "connection")
	inst := ""
	if len(os.Args) > 1 {
		inst = os.Args[1]
	}
	fl, err := unix.FcntlInt(3, unix.F_GETFL, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: fd 3:", err)
		os.Exit(1)
	}
	// No other socket may leak into an instance (its listening socket
	// above all). The Go runtime may have opened other fds by now.
	others := 0
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, ent := range ents {
		if dst, err := os.Readlink("/proc/self/fd/" + ent.Name()); err == nil && ent.Name() != "3" && strings.HasPrefix(dst, "socket:") {
			others++
		}
	}
	fmt.Println("serving", inst)
	fmt.Fprintf(conn, "pid=%d listen_pid=%s fds=%s names=%s inst=%s remote=%s:%s nonblock=%t othersockets=%d tag=%s\n",
		os.Getpid(), os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES"), inst,
		os.Getenv("REMOTE_ADDR"), os.Getenv("REMOTE_PORT"), fl&unix.O_NONBLOCK != 0, others, os.Getenv("CHILD_TAG"))
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		fmt.Fprintf(conn, "echo: %s\n", sc.Text())
	}
	os.Exit(0)
}

// acceptEnv is one test's unit directory with echo.socket (Accept=yes)
// and echo@.service (the test binary), and its daemon.
type acceptEnv struct {
	t    *testing.T
	dir  string
	d    *Daemon
	addr string // the socket's address

	mu     sync.Mutex
	latest api.ServiceStatus
	change chan struct{} // closed and replaced on every observation
}

func newAcceptEnv(t *testing.T, socketLines, serviceLines string) *acceptEnv {
	t.Helper()
	base := testutil.ShortDir(t)
	e := &acceptEnv{t: t, dir: filepath.Join(base, "units"), change: make(chan struct{})}
	os.MkdirAll(e.dir, 0o755)
	e.write("echo.socket", "[Socket]\nAccept=yes\n"+socketLines)
	e.writeService(serviceLines)
	e.d = New(Config{UnitsDir: e.dir, RuntimeDir: filepath.Join(base, "rt"),
		Log: zerolog.New(zerolog.NewTestWriter(t)).With().Timestamp().Logger(),
		Observe: func(unit string, st api.ServiceStatus) {
			if unit != "echo@.service" {
				return
			}
			e.mu.Lock()
			e.latest = st
			close(e.change)
			e.change = make(chan struct{})
			e.mu.Unlock()
		}})
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
	st, err := e.d.Status(e.ctx(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Sockets) != 1 {
		t.Fatalf("sockets: %+v", st.Sockets)
	}
	e.addr = st.Sockets[0].Listen
	return e
}

func (e *acceptEnv) write(name, content string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.dir, name), []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *acceptEnv) writeService(lines string) {
	e.t.Helper()
	self, err := os.Executable()
	if err != nil {
		e.t.Fatal(err)
	}
	e.write("echo@.service", "[Service]\nExecStart="+self+" %i\nTimeoutStopSec=5s\n"+
		"Environment=GORACE=atexit_sleep_ms=0\nEnvironment=SOCKD_ACCEPT_CHILD=echo\n"+lines)
}

func (e *acceptEnv) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

func (e *acceptEnv) status(name string) api.UnitStatus {
	e.t.Helper()
	st, err := e.d.Status(e.ctx(), name)
	if err != nil {
		e.t.Fatalf("status %s: %v", name, err)
	}
	return st
}

// await waits until the unit's observed status matches.
func (e *acceptEnv) await(what string, match func(api.ServiceStatus) bool) api.ServiceStatus {
	e.t.Helper()
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for {
		e.mu.Lock()
		st, ch := e.latest, e.change
		e.mu.Unlock()
		if match(st) {
			return st
		}
		select {
		case <-ch:
		case <-timeout.C:
			e.t.Fatalf("%s: not within 20s; status %+v", what, e.status("echo").Service)
		}
	}
}

// echoConn is one client connection.
type echoConn struct {
	t *testing.T
	net.Conn
	r *bufio.Reader
}

func (e *acceptEnv) dial(network string, local net.Addr) *echoConn {
	e.t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: local}
	c, err := d.Dial(network, e.addr)
	if err != nil {
		e.t.Fatalf("dial %s: %v", e.addr, err)
	}
	e.t.Cleanup(func() { c.Close() })
	return &echoConn{t: e.t, Conn: c, r: bufio.NewReader(c)}
}

// line reads one line within d.
func (c *echoConn) line(d time.Duration) (string, error) {
	c.SetReadDeadline(time.Now().Add(d))
	s, err := c.r.ReadString('\n')
	return strings.TrimSuffix(s, "\n"), err
}

// greeting reads the instance's first line as key=value words.
func (c *echoConn) greeting() map[string]string {
	c.t.Helper()
	s, err := c.line(20 * time.Second)
	if err != nil {
		c.t.Fatalf("greeting: %v (got %q)", err, s)
	}
	m := map[string]string{}
	for _, w := range strings.Fields(s) {
		k, v, _ := strings.Cut(w, "=")
		m[k] = v
	}
	return m
}

// roundTrip sends a line and checks the echo.
func (c *echoConn) roundTrip(msg string) {
	c.t.Helper()
	if _, err := fmt.Fprintf(c, "%s\n", msg); err != nil {
		c.t.Fatalf("write: %v", err)
	}
	got, err := c.line(20 * time.Second)
	if err != nil || got != "echo: "+msg {
		c.t.Fatalf("echo: %q, %v; want %q", got, err, "echo: "+msg)
	}
}

// closedByPeer waits for the end of the connection (EOF or reset).
func (c *echoConn) closedByPeer() {
	c.t.Helper()
	s, err := c.line(20 * time.Second)
	if err == nil {
		c.t.Fatalf("got %q, want the connection closed", s)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		c.t.Fatalf("read: %v, want EOF or reset", err)
	}
}

// freeTCP returns a loopback address whose port was free a moment ago
// (units reject port 0).
func freeTCP(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func gone(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return errors.Is(err, os.ErrNotExist)
}

func pidOf(t *testing.T, g map[string]string) int {
	t.Helper()
	pid, err := strconv.Atoi(g["pid"])
	if err != nil {
		t.Fatalf("greeting %v: %v", g, err)
	}
	return pid
}

// Each connection gets its own instance with the connection as fd 3 and
// systemd's environment and instance name; data round-trips.
func TestAcceptInstancePerConnection(t *testing.T) {
	e := newAcceptEnv(t, "ListenStream="+freeTCP(t)+"\n", "")
	st := e.status("echo")
	if st.Name != "echo@.service" || st.Service.State != api.StateInactive || st.Service.SubState != "listening" ||
		len(st.Service.Pids) != 0 || st.Sockets[0].FDName != "connection" || st.Sockets[0].Unit != "echo.socket" {
		t.Fatalf("idle status %+v", st)
	}
	for _, name := range []string{"echo@", "echo@.service", "echo.socket"} {
		if got := e.status(name); got.Name != "echo@.service" {
			t.Errorf("status %s: %s", name, got.Name)
		}
	}

	var conns []*echoConn
	var pids []int
	for i := range 2 {
		c := e.dial("tcp", nil)
		g := c.greeting()
		pid := pidOf(t, g)
		want := fmt.Sprintf("%d-%s-%s", i, e.addr, c.LocalAddr())
		if g["inst"] != want || g["listen_pid"] != g["pid"] || g["fds"] != "1" || g["names"] != "connection" ||
			g["remote"] != c.LocalAddr().String() || g["nonblock"] != "false" || g["othersockets"] != "0" {
			t.Fatalf("instance %d was handed %v; want inst=%s, LISTEN_PID its pid, one blocking fd named connection", i, g, want)
		}
		c.roundTrip(fmt.Sprintf("hello %d", i))
		conns, pids = append(conns, c), append(pids, pid)
	}
	if pids[0] == pids[1] {
		t.Fatalf("both connections served by pid %d", pids[0])
	}
	e.await("two instances", func(s api.ServiceStatus) bool { return len(s.Pids) == 2 })
	st = e.status("echo")
	if st.Service.State != api.StateActive || st.Service.Instances != 2 || st.Service.Pids[0] != pids[0] || st.Service.Pids[1] != pids[1] {
		t.Fatalf("status with two connections: %+v", st.Service)
	}
	if !strings.Contains(st.Service.Status, "echo@0-") || !strings.Contains(st.Service.Status, "echo@1-") {
		t.Errorf("status line %q does not name the instances", st.Service.Status)
	}

	conns[0].Close()
	e.await("first instance gone", func(s api.ServiceStatus) bool { return len(s.Pids) == 1 && s.Pids[0] == pids[1] })
	conns[1].roundTrip("still here")
	conns[1].Close()
	e.await("no instance", func(s api.ServiceStatus) bool { return len(s.Pids) == 0 })
	for _, pid := range pids {
		if !gone(pid) {
			t.Errorf("pid %d not reaped", pid)
		}
	}
	if st := e.status("echo").Service; st.State != api.StateInactive || st.Result != "success" {
		t.Errorf("after the instances: %+v", st)
	}
	logs, err := e.d.Logs(e.ctx(), "echo", api.LogQuery{N: 100})
	if err != nil {
		t.Fatal(err)
	}
	var served []string
	for _, l := range logs {
		served = append(served, l.Line)
	}
	if !strings.Contains(strings.Join(served, "\n"), "serving 1-") {
		t.Errorf("logs %q lack the instances' output", served)
	}
}

// With MaxConnections=2 a third connection waits in the accept queue —
// neither refused nor reset — until one of the first two ends.
func TestAcceptMaxConnections(t *testing.T) {
	e := newAcceptEnv(t, "ListenStream="+freeTCP(t)+"\nMaxConnections=2\n", "")
	c1, c2 := e.dial("tcp", nil), e.dial("tcp", nil)
	c1.greeting()
	c2.greeting()
	e.await("two instances", func(s api.ServiceStatus) bool { return len(s.Pids) == 2 })
	c3 := e.dial("tcp", nil)
	if _, err := fmt.Fprintf(c3, "third\n"); err != nil {
		t.Fatal(err)
	}
	// Nothing may answer while two instances run: no greeting, no EOF.
	if s, err := c3.line(300 * time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("third connection answered %q, %v while two instances run", s, err)
	}
	if st := e.status("echo").Service; len(st.Pids) != 2 || st.SubState != "max-connections" {
		t.Fatalf("at the limit: %+v", st)
	}
	c1.Close()
	g := c3.greeting()
	if !strings.HasPrefix(g["inst"], "2-") {
		t.Errorf("third instance is %q, want number 2", g["inst"])
	}
	if s, err := c3.line(20 * time.Second); err != nil || s != "echo: third" {
		t.Fatalf("third connection: %q, %v", s, err)
	}
	c2.roundTrip("second")
}

// MaxConnectionsPerSource=1: a second connection from 127.0.0.1 while
// the first is open is accepted and closed; another source is served.
func TestAcceptMaxConnectionsPerSource(t *testing.T) {
	e := newAcceptEnv(t, "ListenStream="+freeTCP(t)+"\nMaxConnectionsPerSource=1\n", "")
	c1 := e.dial("tcp", nil)
	c1.greeting()
	c2 := e.dial("tcp", nil)
	c2.closedByPeer()
	c3 := e.dial("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)})
	g := c3.greeting()
	if !strings.HasPrefix(g["remote"], "127.0.0.2:") || !strings.HasPrefix(g["inst"], "1-") {
		t.Fatalf("other source: %v", g)
	}
	c1.roundTrip("first")
	c1.Close()
	e.await("first instance gone", func(s api.ServiceStatus) bool { return len(s.Pids) == 1 })
	c4 := e.dial("tcp", nil)
	c4.greeting()
	c4.roundTrip("again")
}

// On a Unix socket the instance is named after the peer's pid and uid.
func TestAcceptUnixInstanceName(t *testing.T) {
	sock := filepath.Join(testutil.ShortDir(t), "echo.sock")
	e := newAcceptEnv(t, "ListenStream="+sock+"\n", "")
	c := e.dial("unix", nil)
	g := c.greeting()
	if want := fmt.Sprintf("0-%d-%d", os.Getpid(), os.Getuid()); g["inst"] != want || g["remote"] != ":" {
		t.Fatalf("instance %v, want inst=%s and no REMOTE_ADDR", g, want)
	}
	c.roundTrip("over unix")
}

// Stop kills the instances and leaves the socket accepting; restart does
// the same and new connections get the new definition; shutdown stops
// the instances still running.
func TestAcceptStopRestartShutdown(t *testing.T) {
	e := newAcceptEnv(t, "ListenStream="+freeTCP(t)+"\n", "Environment=CHILD_TAG=v1\n")
	c1, c2 := e.dial("tcp", nil), e.dial("tcp", nil)
	p1, p2 := pidOf(t, c1.greeting()), pidOf(t, c2.greeting())
	if err := e.d.Stop(e.ctx(), "echo.socket"); err != nil {
		t.Fatal(err)
	}
	if !gone(p1) || !gone(p2) {
		t.Fatalf("stop returned with instances alive")
	}
	c1.closedByPeer()
	c2.closedByPeer()
	if st := e.status("echo").Service; len(st.Pids) != 0 {
		t.Fatalf("after stop: %+v", st)
	}

	c3 := e.dial("tcp", nil)
	g := c3.greeting()
	p3 := pidOf(t, g)
	if g["tag"] != "v1" {
		t.Fatalf("after stop: %v", g)
	}
	e.writeService("Environment=CHILD_TAG=v2\n")
	res, err := e.d.Reload(e.ctx())
	if err != nil || len(res.Changed) != 1 || res.Changed[0] != "echo@.service" {
		t.Fatalf("reload: %+v, %v", res, err)
	}
	var phases []string
	rr, err := e.d.Restart(e.ctx(), "echo", api.RestartOptions{Wait: true}, func(ev api.Event) { phases = append(phases, ev.Phase) })
	if err != nil || !rr.OK || len(rr.OldPids) != 1 || rr.OldPids[0] != p3 {
		t.Fatalf("restart: %+v, %v", rr, err)
	}
	if strings.Join(phases, ",") != "draining,stopped,done" {
		t.Errorf("restart phases %v", phases)
	}
	c3.closedByPeer()
	c4 := e.dial("tcp", nil)
	g = c4.greeting()
	if g["tag"] != "v2" {
		t.Fatalf("after restart with a new definition: %v", g)
	}
	st := e.status("echo").Service
	if st.Restarts != 1 || st.LastRestart == nil {
		t.Errorf("status after restart: %+v", st)
	}
	if err := e.d.Start(e.ctx(), "echo"); err != nil {
		t.Errorf("start: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if !gone(pidOf(t, g)) {
		t.Fatalf("shutdown left instance %s", g["pid"])
	}
	c4.closedByPeer()
	if _, err := net.DialTimeout("tcp", e.addr, 5*time.Second); err == nil {
		t.Fatalf("socket still open after shutdown")
	}
}

// settled waits (bounded) until f reports true; for counters that the
// runtime settles on its own (goroutines ending after their last send).
func settled(f func() bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// Fifty connections leave no goroutine, fd or zombie behind.
func TestAcceptNoLeaks(t *testing.T) {
	e := newAcceptEnv(t, "ListenStream="+freeTCP(t)+"\nMaxConnections=8\n", "")
	one := func(i int) int {
		c := e.dial("tcp", nil)
		defer c.Close()
		pid := pidOf(t, c.greeting())
		c.roundTrip(fmt.Sprint("msg ", i))
		return pid
	}
	one(-1)
	e.await("warm-up instance gone", func(s api.ServiceStatus) bool { return len(s.Pids) == 0 && s.State == api.StateInactive })
	baseG, baseFD := runtime.NumGoroutine(), countFDs(t)

	var wg sync.WaitGroup
	pids := make([]int, 50)
	for w := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 50; i += 5 {
				c, err := net.DialTimeout("tcp", e.addr, 10*time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				ec := &echoConn{t: t, Conn: c, r: bufio.NewReader(c)}
				s, err := ec.line(20 * time.Second)
				if err != nil {
					t.Errorf("connection %d: %v", i, err)
					c.Close()
					return
				}
				fmt.Sscanf(s, "pid=%d", &pids[i])
				fmt.Fprintf(c, "x\n")
				if s, err := ec.line(20 * time.Second); err != nil || s != "echo: x" {
					t.Errorf("connection %d: %q %v", i, s, err)
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	e.await("all instances gone", func(s api.ServiceStatus) bool { return len(s.Pids) == 0 && s.State == api.StateInactive })
	seen := map[int]bool{}
	for i, pid := range pids {
		if pid == 0 || seen[pid] {
			t.Fatalf("connection %d: pid %d (not its own instance)", i, pid)
		}
		seen[pid] = true
		if !gone(pid) {
			t.Errorf("pid %d not reaped", pid)
		}
	}
	if st := e.status("echo").Service; !strings.Contains(st.Status, "51 accepted") {
		t.Errorf("status %q", st.Status)
	}
	if z := zombies(t); len(z) > 0 {
		t.Errorf("zombies: %v", z)
	}
	if !settled(func() bool { return countFDs(t) <= baseFD }) {
		t.Errorf("fds: %d before, %d after 50 connections", baseFD, countFDs(t))
	}
	if !settled(func() bool { return runtime.NumGoroutine() <= baseG }) {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before, %d after 50 connections\n%s", baseG, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
	}
}

// Removing the unit files removes the unit at reload: its instances stop
// and its socket closes.
func TestAcceptReloadRemoves(t *testing.T) {
	e := newAcceptEnv(t, "ListenStream="+freeTCP(t)+"\n", "")
	c := e.dial("tcp", nil)
	pid := pidOf(t, c.greeting())
	os.Remove(filepath.Join(e.dir, "echo.socket"))
	os.Remove(filepath.Join(e.dir, "echo@.service"))
	res, err := e.d.Reload(e.ctx())
	if err != nil || len(res.Removed) != 1 || res.Removed[0] != "echo@.service" {
		t.Fatalf("reload: %+v, %v", res, err)
	}
	if !gone(pid) {
		t.Fatalf("instance %d survived the removal of its unit", pid)
	}
	c.closedByPeer()
	if _, err := e.d.Status(e.ctx(), "echo"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("status after removal: %v", err)
	}
	if c, err := net.DialTimeout("tcp", e.addr, 5*time.Second); err == nil {
		c.Close()
		t.Fatalf("socket still open after removal")
	}
}
