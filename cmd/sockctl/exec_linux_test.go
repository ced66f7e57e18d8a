package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sockd/sockd/api"
)

// lender is a backend's Hold over one real TCP listener: the sockets
// sockctl exec gets, the holder it saw, and its release.
type lender struct {
	l        *net.TCPListener
	ino      uint64
	holders  chan api.Peer
	ended    chan struct{}
	released chan struct{}
}

func newLender(t *testing.T) *lender {
	t.Helper()
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	rc, err := l.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	rc.Control(func(fd uintptr) { syscall.Fstat(int(fd), &st) })
	return &lender{l: l, ino: st.Ino, holders: make(chan api.Peer, 4), ended: make(chan struct{}), released: make(chan struct{})}
}

func (ld *lender) hold(unit string, holder api.Peer) (*api.Hold, error) {
	if unit != "app" {
		return nil, fmt.Errorf("unit %s: %w", unit, api.ErrNotFound)
	}
	ld.holders <- holder
	f, err := ld.l.File()
	if err != nil {
		return nil, err
	}
	return &api.Hold{Unit: "app.service", Files: []*os.File{f}, Names: []string{"http"}, Ended: ld.ended,
		Release: sync.OnceFunc(func() { close(ld.released) })}, nil
}

func (ld *lender) waitReleased(t *testing.T) {
	t.Helper()
	select {
	case <-ld.released:
	case <-time.After(10 * time.Second):
		t.Fatal("the hold was not released")
	}
}

// The command finds the socket at fd 3 with LISTEN_FDS, LISTEN_FDNAMES
// and its own pid in LISTEN_PID; sockctl exits with its status and lets
// go of the sockets after it.
func TestExec(t *testing.T) {
	ld := newLender(t)
	path := serve(t, &backend{hold: ld.hold})
	t.Setenv("LISTEN_FDS", "9") // sockctl's own are not passed on
	script := `echo "$LISTEN_FDS $LISTEN_FDNAMES $LISTEN_PID $$ $(readlink /proc/$$/fd/3)"; echo err >&2; exit 7`
	r := sockctl(t, nil, false, "--api", path, "exec", "app", "--", "/bin/sh", "-c", script)
	if r.code != 7 {
		t.Fatalf("exit %d, want the command's 7\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	f := strings.Fields(r.stdout)
	if len(f) != 5 || f[0] != "1" || f[1] != "http" || f[2] != f[3] || f[4] != fmt.Sprintf("socket:[%d]", ld.ino) {
		t.Errorf("the command saw %q; want 1 http, LISTEN_PID its own pid, fd 3 socket:[%d]", r.stdout, ld.ino)
	}
	if r.stderr != "err\n" {
		t.Errorf("stderr %q", r.stderr)
	}
	if p := <-ld.holders; p.PID != os.Getpid() {
		t.Errorf("holder %+v, want this process", p)
	}
	ld.waitReleased(t)

	// Success is 0; a command killed by a signal is 128+N.
	ld2 := newLender(t)
	path = serve(t, &backend{hold: ld2.hold})
	if r := sockctl(t, nil, false, "--api", path, "exec", "app", "--", "/bin/sh", "-c", "kill -TERM $$"); r.code != 128+15 {
		t.Errorf("killed by SIGTERM: exit %d, want 143\n%s", r.code, r.stderr)
	}
	ld2.waitReleased(t)
}

// sockd ending the hold stops the command.
func TestExecEndedBySockd(t *testing.T) {
	ld := newLender(t)
	path := serve(t, &backend{hold: ld.hold})
	go func() {
		<-ld.holders
		time.Sleep(200 * time.Millisecond)
		close(ld.ended)
	}()
	start := time.Now()
	r := sockctl(t, nil, false, "--api", path, "exec", "app", "--", "/bin/sleep", "30")
	if r.code != 128+15 || !strings.Contains(r.stderr, "sockd ended the hold") || time.Since(start) > 5*time.Second {
		t.Errorf("exit %d after %v, want 143 at once\n%s", r.code, time.Since(start), r.stderr)
	}
	ld.waitReleased(t)
}

func TestExecErrors(t *testing.T) {
	ld := newLender(t)
	b := &backend{hold: ld.hold}
	path := serve(t, b)
	for _, args := range [][]string{
		{"exec", "app"}, {"exec", "app", "/bin/true"}, {"exec", "app", "--"}, {"exec", "--", "app", "/bin/true"},
		{"exec", "--", "/bin/true"},
	} {
		r := sockctl(t, nil, false, append([]string{"--api", path}, args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, "sockctl exec UNIT -- CMD") {
			t.Errorf("%q: exit %d: %s", args, r.code, r.stderr)
		}
	}
	if r := sockctl(t, nil, false, "--api", path, "exec", "nope", "--", "/bin/true"); r.code != 1 || !strings.Contains(r.stderr, "unit nope: not found") {
		t.Errorf("exec nope: exit %d: %s", r.code, r.stderr)
	}
	if r := sockctl(t, nil, false, "--api", path, "exec", "app", "--", "/nonexistent/cmd"); r.code != 127 || !strings.Contains(r.stderr, "/nonexistent/cmd") {
		t.Errorf("missing command: exit %d: %s", r.code, r.stderr)
	}
	ld.waitReleased(t)
	if r := sockctl(t, nil, false, "--api", "/nonexistent/api.sock", "exec", "app", "--", "/bin/true"); r.code != 3 {
		t.Errorf("unreachable: exit %d: %s", r.code, r.stderr)
	}
	// A refusal (the service runs) is the server's message.
	path = serve(t, &backend{})
	if r := sockctl(t, nil, false, "--api", path, "exec", "app", "--", "/bin/true"); r.code != 1 || !strings.Contains(r.stderr, "the service runs") {
		t.Errorf("refused: exit %d: %s", r.code, r.stderr)
	}
}
