package supervisord

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockd/sockd/api"
	"golang.org/x/sys/unix"
)

// A child that shuts its inherited listening socket down leaves it
// refusing connections for good; sockd notices (EPOLLHUP on the socket,
// which stays in its epoll set with an empty mask while the child
// serves), binds a fresh one, and moves the service onto it with an
// overlapping restart: the unit serves again within a second, without a
// restart of sockd, and its status says socket-replaced with the cause.
func TestDeadListenerHeals(t *testing.T) {
	e := newEnv(t, notifyService)
	old, _ := e.mustGet()
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
	if err := e.getPath("/shutdown"); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	var pid int
	for {
		var err error
		if pid, _, err = e.get(); err == nil && pid != old {
			break
		}
		if time.Since(begin) > 5*time.Second {
			t.Fatalf("not serving again 5 s after the shutdown: %v (pid %d, old %d)", err, pid, old)
		}
		time.Sleep(10 * time.Millisecond) // polling the client's view: no event tells a client
	}
	healed := time.Since(begin)
	t.Logf("serving again %v after the shutdown, new pid %d", healed, pid)
	if healed > time.Second {
		t.Errorf("healed in %v, want within 1 s", healed)
	}
	st, err := e.d.Status(e.ctx(), "app")
	if err != nil {
		t.Fatal(err)
	}
	s := st.Sockets[0]
	if s.Replaced != 1 || s.ReplacedAt == nil || !strings.Contains(s.ReplacedCause, "EPOLLHUP") {
		t.Fatalf("socket status %+v: want replaced once, with the cause", s)
	}
	e.await(func(st api.ServiceStatus) bool {
		return st.State == api.StateActive && len(st.Pids) == 1 && st.Pids[0] == pid
	})
	if alive(old) {
		t.Fatalf("the old process %d still runs", old)
	}
	// Idle, a dead socket heals too: stop, kill the socket from outside
	// (as a process holding it would), and a connection starts the unit.
	e.mustStop()
	h, _ := e.d.lookup("app")
	ls, _ := h.listeners()
	f, err := dupFile(ls[0].File())
	if err != nil {
		t.Fatal(err)
	}
	syscall.Shutdown(int(f.Fd()), syscall.SHUT_RDWR)
	f.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := e.d.Status(e.ctx(), "app")
		if err != nil {
			t.Fatal(err)
		}
		if st.Sockets[0].Replaced == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an idle dead socket was not replaced: %+v", st.Sockets[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if p, _ := e.mustGet(); p == pid {
		t.Fatalf("pid %d served after a stop", p)
	}
}

// Past its start limit a unit closes its socket, so that clients are
// refused (ECONNREFUSED) at once instead of waiting for a service that
// will not come; sockctl start binds it again and serves.
func TestStartLimitRefuses(t *testing.T) {
	e := newEnv(t, "Type=notify\nEnvironment=SOCKD_TEST_CHILD=crash\nRestartSec=10ms\n[Unit]\nStartLimitBurst=2\nStartLimitIntervalSec=1min\n")
	port := freeTCPPort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	e.write("app.socket", "[Socket]\nListenStream="+addr+"\n")
	if _, err := e.d.Reload(e.ctx()); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	e.await(func(st api.ServiceStatus) bool {
		return st.State == api.StateFailed && st.Result == "start-limit-hit"
	})
	st, err := e.d.Status(e.ctx(), "app")
	if err != nil {
		t.Fatal(err)
	}
	if st.Service.SubState != "failed" || !st.Sockets[0].Closed {
		t.Fatalf("after the start limit: %s, socket %+v; want failed with the socket closed", st.Service.SubState, st.Sockets[0])
	}
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("dial after the start limit: %v, want connection refused", err)
	}
	// A start binds the socket again; the service serves.
	e.reload(notifyService)
	if err := e.d.Start(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	st, err = e.d.Status(e.ctx(), "app")
	if err != nil {
		t.Fatal(err)
	}
	if st.Service.State != api.StateActive || st.Sockets[0].Closed {
		t.Fatalf("after start: %+v, socket %+v", st.Service, st.Sockets[0])
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("after start: %v", err)
	}
	resp.Body.Close()
}

// freeTCPPort returns a port on 127.0.0.1 that was free a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// With NonBlocking=yes, every new process gets its socket non-blocking,
// even when an old one, still serving during an overlapping restart,
// made the shared open file description blocking.
func TestNonBlockingEveryProcess(t *testing.T) {
	e := newEnv(t, notifyService+"Environment=CHILD_FD3_MODE=1\n")
	e.write("app.socket", "[Socket]\nListenStream="+e.sock+"\nNonBlocking=yes\n")
	e.mustReload()
	first, _ := e.mustGet()
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
	// The serving process makes the socket blocking (here: through
	// sockd's copy, the same open file description it holds).
	h, _ := e.d.lookup("app")
	ls, _ := h.listeners()
	rc, err := ls[0].File().SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) { err = unix.SetNonblock(int(fd), false) })
	if err != nil {
		t.Fatal(err)
	}
	res, _ := e.restart(api.RestartOptions{})
	if !res.OK || len(res.NewPids) != 1 {
		t.Fatalf("restart: %+v", res)
	}
	logs, err := e.d.Logs(e.ctx(), "app", api.LogQuery{N: 100})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{first: "", res.NewPids[0]: ""}
	for _, l := range logs {
		var pid int
		var nb bool
		if _, err := fmt.Sscanf(l.Line, "fd3 pid=%d nonblock=%t", &pid, &nb); err == nil {
			if _, ok := want[pid]; ok {
				want[pid] = fmt.Sprint(nb)
			}
		}
	}
	if want[first] != "true" || want[res.NewPids[0]] != "true" {
		t.Fatalf("fd 3 non-blocking at start: %v (first %d, new %d), want true for both", want, first, res.NewPids[0])
	}
}
