package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/testutil"
)

// holdBackend lends two real listening sockets, a TCP and a Unix one, as
// supervisord would: duplicates, with an Ended the test closes and a
// Release it watches.
type holdBackend struct {
	t        *testing.T
	ls       []*net.TCPListener
	unix     *net.UnixListener
	ended    chan struct{}
	released chan struct{}
	holders  chan Peer
}

func newHoldBackend(t *testing.T) *holdBackend {
	t.Helper()
	tl, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(testutil.ShortDir(t), "app.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tl.Close(); ul.Close() })
	return &holdBackend{t: t, ls: []*net.TCPListener{tl}, unix: ul,
		ended: make(chan struct{}), released: make(chan struct{}), holders: make(chan Peer, 4)}
}

func (b *holdBackend) hold(_ context.Context, unit string, holder Peer) (*Hold, error) {
	if unit != "app" && unit != "app.service" {
		return nil, notFound(unit)
	}
	b.holders <- holder
	tf, err := b.ls[0].File()
	if err != nil {
		return nil, err
	}
	uf, err := b.unix.File()
	if err != nil {
		return nil, err
	}
	return &Hold{Unit: "app.service", Files: []*os.File{tf, uf}, Names: []string{"http", "local"},
		Ended: b.ended, Release: sync.OnceFunc(func() { close(b.released) })}, nil
}

// waitClosed fails the test unless c is closed within 10 s.
func waitClosed(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not within 10s", what)
	}
}

// fdCount counts the test process's open descriptors.
func fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	return len(ents)
}

// The sockets arrive with their names, close-on-exec, as the very
// sockets the backend lent; the peer is the client; the client's
// Release is the backend's.
func TestHold(t *testing.T) {
	b := newHoldBackend(t)
	ts := startServer(t, &fakeBackend{hold: b.hold})
	before := fdCount(t)

	h, err := ts.client.Hold(testCtx(t), "app")
	if err != nil {
		t.Fatal(err)
	}
	if h.Unit != "app.service" || !slices.Equal(h.Names, []string{"http", "local"}) || len(h.Files) != 2 {
		t.Fatalf("hold %+v", h)
	}
	if p := <-b.holders; p.PID != os.Getpid() || p.UID != os.Geteuid() {
		t.Errorf("holder %+v, want this process", p)
	}
	for i, f := range h.Files {
		rc, err := f.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var flags int
		var ferr error
		rc.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFD, 0) })
		if ferr != nil || flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("file %d: fd flags %#x (%v), want close-on-exec", i, flags, ferr)
		}
	}
	// The received TCP socket is the backend's: a connection to its
	// address is accepted on it.
	l, err := net.FileListener(h.Files[0])
	if err != nil {
		t.Fatal(err)
	}
	if l.Addr().String() != b.ls[0].Addr().String() {
		t.Errorf("received %s, lent %s", l.Addr(), b.ls[0].Addr())
	}
	c, err := net.Dial("tcp", b.ls[0].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	if a, err := l.Accept(); err != nil {
		t.Errorf("accept on the received socket: %v", err)
	} else {
		a.Close()
	}
	l.Close()
	if ul, err := net.FileListener(h.Files[1]); err != nil || ul.Addr().String() != b.unix.Addr().String() {
		t.Errorf("second socket: %v %v, want %s", ul, err, b.unix.Addr())
	} else {
		ul.Close()
	}

	select {
	case <-b.released:
		t.Fatal("released while the client holds the connection")
	case <-h.Ended:
		t.Fatal("Ended while held")
	case <-time.After(100 * time.Millisecond):
	}
	closeFiles(h.Files)
	h.Release()
	h.Release() // harmless twice
	waitClosed(t, b.released, "backend release after the client's")
	waitClosed(t, h.Ended, "Ended after Release")
	c.Close()
	waitFDs(t, before) // nothing stays open on either side
}

// waitFDs waits up to 5 s for the process to have no more than n open
// descriptors: the server closes its side of a connection a moment
// after the client.
func waitFDs(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for fdCount(t) > n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := fdCount(t); got > n {
		t.Errorf("%d fds open, %d before", got, n)
	}
}

// A holder that goes away without a word (killed) releases the hold:
// the connection's end is the release.
func TestHoldConnCloseReleases(t *testing.T) {
	b := newHoldBackend(t)
	ts := startServer(t, &fakeBackend{hold: b.hold})
	conn, err := net.Dial("unix", ts.path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("POST /v1/units/app/hold HTTP/1.1\r\nHost: sockd\r\nContent-Length: 0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := conn.Read(buf) // a plain read: the kernel drops the sockets
	if err != nil || !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200 OK\r\n") || !strings.Contains(string(buf[:n]), `"fd_names":["http","local"]`) {
		t.Fatalf("answer %q: %v", buf[:n], err)
	}
	select {
	case <-b.released:
		t.Fatal("released before the connection closed")
	case <-time.After(100 * time.Millisecond):
	}
	conn.Close()
	waitClosed(t, b.released, "release after the connection closed")
}

// sockd ending the hold tells the client (Ended), and waits for its
// Release before it releases.
func TestHoldEndedBySockd(t *testing.T) {
	b := newHoldBackend(t)
	ts := startServer(t, &fakeBackend{hold: b.hold})
	h, err := ts.client.Hold(testCtx(t), "app")
	if err != nil {
		t.Fatal(err)
	}
	closeFiles(h.Files)
	close(b.ended)
	waitClosed(t, h.Ended, "the client's Ended")
	select {
	case <-b.released:
		t.Fatal("released before the client let go")
	case <-time.After(100 * time.Millisecond):
	}
	h.Release()
	waitClosed(t, b.released, "release after the client's")
}

// The server's shutdown ends every hold, and the clients see it.
func TestHoldServerShutdown(t *testing.T) {
	b := newHoldBackend(t)
	path := filepath.Join(testutil.ShortDir(t), "api.sock")
	l, err := Listen(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Backend: &fakeBackend{hold: b.hold}, Log: zerolog.New(zerolog.NewTestWriter(t))}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	h, err := (&Client{Path: path}).Hold(testCtx(t), "app")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	closeFiles(h.Files)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	waitClosed(t, b.released, "release at shutdown")
	waitClosed(t, h.Ended, "the client's Ended at shutdown")
}

// Refusals are plain error answers, with no socket.
func TestHoldErrors(t *testing.T) {
	b := newHoldBackend(t)
	ts := startServer(t, &fakeBackend{hold: func(ctx context.Context, unit string, holder Peer) (*Hold, error) {
		if unit == "busy" {
			return nil, fmt.Errorf("hold busy.service: the service runs (pid 42): stop it first: sockctl stop busy: %w", ErrConflict)
		}
		return b.hold(ctx, unit, holder)
	}})
	before := fdCount(t)
	_, err := ts.client.Hold(testCtx(t), "busy")
	var ae *Error
	if !errors.As(err, &ae) || !errors.Is(err, ErrConflict) || ae.Status != 409 || !strings.Contains(ae.Message, "stop it first") {
		t.Errorf("busy: %v, want a 409", err)
	}
	if _, err := ts.client.Hold(testCtx(t), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("nope: %v, want ErrNotFound", err)
	}
	if _, err := ts.client.Hold(testCtx(t), "a/b"); !errors.Is(err, ErrInvalid) {
		t.Errorf("a/b: %v, want ErrInvalid", err)
	}
	waitFDs(t, before)
	if _, err := (&Client{Path: filepath.Join(t.TempDir(), "none.sock")}).Hold(testCtx(t), "app"); !errors.As(err, new(*UnreachableError)) {
		t.Errorf("no server: %v, want an UnreachableError", err)
	}
}

// A request that did not come over a Unix socket connection cannot
// carry sockets: refused before the backend lends any.
func TestHoldNeedsUnixConn(t *testing.T) {
	called := false
	h := (&Server{Backend: &fakeBackend{hold: func(context.Context, string, Peer) (*Hold, error) {
		called = true
		return nil, errors.New("unreachable")
	}}, Log: zerolog.New(zerolog.NewTestWriter(t))}).Handler()
	req := httptest.NewRequest("POST", "/v1/units/app/hold", nil)
	req = req.WithContext(context.WithValue(req.Context(), peerKey{}, Peer{UID: 0}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "Unix socket connection only") || called {
		t.Errorf("%d %s (backend called: %v)", rec.Code, rec.Body, called)
	}
}

// Holding is a write route: a peer that may only read is refused before
// the backend is asked.
func TestHoldAccess(t *testing.T) {
	dir, exe := nobodyDir(t)
	path := filepath.Join(dir, "api.sock")
	serveAccess(t, path, 0o666, -1, Access{Groups: []int{4242}})
	got := runAs(t, exe, path, 65534, []uint32{4242}, "status", "hold")
	if len(got) != 2 || got[0] != "ok" || !strings.HasPrefix(got[1], "403 POST /v1/units/app/hold: permission denied: a write route") {
		t.Errorf("read-only peer: %q, want ok then a 403", got)
	}
}
