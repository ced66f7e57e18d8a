package supervisord

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/api"
)

// hold holds app for a made-up holder pid, and fails the test if it
// cannot.
func (e *env) hold(pid int) *api.Hold {
	e.t.Helper()
	h, err := e.d.Hold(e.ctx(), "app", api.Peer{PID: pid})
	if err != nil {
		e.t.Fatalf("hold: %v", err)
	}
	return h
}

// mustConflict fails the test unless err is a refusal (409) saying want.
func mustConflict(t *testing.T, what string, err error, want string) {
	t.Helper()
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: %v, want a conflict saying %q", what, err, want)
	}
}

// A held unit's connections wait for the holder, which accepts them on
// the socket it was lent; nothing starts the service until the holder
// lets go, and the next connection then starts it as usual.
func TestHoldRealSockets(t *testing.T) {
	e := newEnv(t, notifyService)
	h := e.hold(4242)
	if h.Unit != "app.service" || !slices.Equal(h.Names, []string{"app.socket"}) || len(h.Files) != 1 {
		t.Fatalf("hold %+v", h)
	}
	st := e.status()
	if st.State != api.StateInactive || st.SubState != "held" || st.HeldBy != 4242 || len(st.Pids) != 0 {
		t.Fatalf("held: status %+v", st)
	}
	// The lent socket: close-on-exec, in the unit's blocking mode.
	rc, err := h.Files[0].SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fdFlags, flFlags int
	rc.Control(func(fd uintptr) {
		fdFlags, _ = unix.FcntlInt(fd, unix.F_GETFD, 0)
		flFlags, _ = unix.FcntlInt(fd, unix.F_GETFL, 0)
	})
	if fdFlags&unix.FD_CLOEXEC == 0 || flFlags&unix.O_NONBLOCK != 0 {
		t.Errorf("fd flags %#x, file status flags %#x: want close-on-exec and blocking", fdFlags, flFlags)
	}

	// A connection queues in the kernel and starts nothing.
	c, err := net.Dial("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(300 * time.Millisecond)
	if st := e.status(); st.SubState != "held" || len(st.Pids) != 0 || st.Generation != 0 {
		t.Fatalf("a connection to a held unit: status %+v", st)
	}
	// The holder accepts it on the lent socket.
	l, err := net.FileListener(h.Files[0])
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetDeadline(time.Now().Add(10 * time.Second))
	a, err := l.Accept()
	if err != nil {
		t.Fatalf("accept on the held socket: %v", err)
	}
	a.Write([]byte("from the holder"))
	a.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(c); err != nil || string(b) != "from the holder" {
		t.Fatalf("client read %q, %v", b, err)
	}

	// Requests that would start or stop the service are refused.
	mustConflict(t, "start", e.d.Start(e.ctx(), "app"), "held outside sockd by pid 4242")
	mustConflict(t, "stop", e.d.Stop(e.ctx(), "app"), "end that program to release them")
	_, err = e.d.Restart(e.ctx(), "app", api.RestartOptions{}, nil)
	mustConflict(t, "restart", err, "held outside sockd by pid 4242")
	_, err = e.d.Restart(e.ctx(), "app", api.RestartOptions{Wait: true}, nil)
	mustConflict(t, "restart --wait", err, "held outside sockd by pid 4242")
	_, err = e.d.Hold(e.ctx(), "app", api.Peer{PID: 1})
	mustConflict(t, "a second hold", err, "held already, by pid 4242")
	mustConflict(t, "reload-app", e.d.ReloadApp(e.ctx(), "app"), "not running")
	if st := e.status(); st.SubState != "held" || len(st.Pids) != 0 || st.Generation != 0 {
		t.Fatalf("after the refusals: status %+v", st)
	}

	// The holder lets go: listening again.
	l.Close()
	h.Files[0].Close()
	h.Release()
	h.Release()
	if st := e.status(); st.State != api.StateInactive || st.SubState != "listening" || st.HeldBy != 0 {
		t.Fatalf("released: status %+v", st)
	}
	select {
	case <-h.Ended:
	default:
		t.Error("Ended still open after the release")
	}
	pid, _ := e.mustGet() // a new connection starts the service
	// The app may answer before sockd has read its READY=1: wait for it.
	st = e.await(func(st api.ServiceStatus) bool { return st.SubState == "running" })
	if !slices.Contains(st.Pids, pid) {
		t.Fatalf("after release and a connection: status %+v (answered by %d)", st, pid)
	}

	// A running service cannot be held.
	_, err = e.d.Hold(e.ctx(), "app", api.Peer{PID: 4242})
	mustConflict(t, "hold while running", err, "stop it first: sockctl stop app")
	e.mustStop()
	e.hold(4243).Release()
	if st := e.status(); st.SubState != "listening" {
		t.Fatalf("second hold released: %+v", st)
	}
}

// A connection that queued while the unit was held, and that the holder
// never accepted, starts the service once the hold ends.
func TestHoldQueuedConnectionStartsAfterRelease(t *testing.T) {
	e := newEnv(t, notifyService)
	h := e.hold(4242)
	c, err := net.Dial("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h.Files[0].Close()
	h.Release()
	st := e.await(func(s api.ServiceStatus) bool { return s.SubState == "running" })
	if len(st.Pids) != 1 {
		t.Fatalf("status %+v", st)
	}
	// It is served by the service.
	c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil || !strings.Contains(string(b), "200 OK") {
		t.Fatalf("queued connection: %q, %v", b, err)
	}
}

// A reload keeps a held unit held when its service changes; when its
// sockets change in a way the open ones cannot take (SocketMode=), sockd
// tells the holder (Ended) and waits for it to let go before it opens the
// new ones.
func TestHoldReload(t *testing.T) {
	e := newEnv(t, notifyService)
	h := e.hold(4242)
	e.reload(notifyService + "Environment=CHILD_TAG=v2\n")
	if st := e.status(); st.SubState != "held" || st.HeldBy != 4242 {
		t.Fatalf("after a reload of the service: %+v", st)
	}
	h.Files[0].Close()

	e.write("app.socket", "[Socket]\nListenStream="+e.sock+"\nSocketMode=0600\n")
	reloaded := make(chan error, 1)
	go func() {
		_, err := e.d.Reload(e.ctx())
		reloaded <- err
	}()
	select {
	case <-h.Ended:
	case <-time.After(20 * time.Second):
		t.Fatal("the holder was not told to let go")
	}
	select {
	case err := <-reloaded:
		t.Fatalf("the reload did not wait for the holder: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	h.Release()
	select {
	case err := <-reloaded:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the reload did not end after the release")
	}
	if st := e.status(); st.SubState != "listening" || st.HeldBy != 0 {
		t.Fatalf("re-opened: %+v", st)
	}
	if _, tag := e.mustGet(); tag != "v2" {
		t.Errorf("served by tag %q, want v2", tag)
	}
}

// Shutdown tells the holder, and waits for its release.
func TestHoldShutdown(t *testing.T) {
	e := newEnv(t, notifyService)
	h := e.hold(4242)
	h.Files[0].Close()
	done := make(chan error, 1)
	go func() { done <- e.d.Shutdown(e.ctx()) }()
	select {
	case <-h.Ended:
	case <-time.After(20 * time.Second):
		t.Fatal("the holder was not told to let go")
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown did not wait for the holder: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	h.Release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown did not end after the release")
	}
	if _, err := os.Stat(e.sock); !os.IsNotExist(err) {
		t.Errorf("socket file after shutdown: %v", err)
	}
}

type fdStat struct {
	fd int
	st unix.Stat_t
}

func fstat(t *testing.T, f *os.File) fdStat {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var s fdStat
	var serr error
	rc.Control(func(fd uintptr) { s.fd, serr = int(fd), unix.Fstat(int(fd), &s.st) })
	if serr != nil {
		t.Fatal(serr)
	}
	return s
}

// A hold's files are duplicates, the caller's; units that have nothing
// to lend, or lend it themselves, are refused.
func TestHoldRefusals(t *testing.T) {
	e := newEnv(t, notifyService)
	// The lent file is a duplicate: the same socket, another descriptor.
	hd, err := e.d.lookup("app")
	if err != nil {
		t.Fatal(err)
	}
	h := e.hold(1)
	lent, own := fstat(t, h.Files[0]), fstat(t, hd.ls[0].File())
	if lent.fd == own.fd || lent.st.Ino != own.st.Ino || lent.st.Dev != own.st.Dev {
		t.Errorf("lent fd %d (inode %d), the unit's fd %d (inode %d): want a duplicate", lent.fd, lent.st.Ino, own.fd, own.st.Ino)
	}
	h.Files[0].Close()
	h.Release()

	e.write("once.service", "[Service]\nType=oneshot\nExecStart=/bin/true\n")
	e.reload(notifyService)
	e.awaitUnit("once", func(s api.ServiceStatus) bool { return s.SubState == "dead" })
	_, err = e.d.Hold(e.ctx(), "once", api.Peer{})
	mustConflict(t, "no sockets", err, "has no sockets")
	if _, err := e.d.Hold(e.ctx(), "nope", api.Peer{}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("nope: %v", err)
	}

	a := newAcceptEnv(t, "ListenStream="+filepath.Join(filepath.Dir(e.sock), "echo.sock")+"\n", "")
	_, err = a.d.Hold(a.ctx(), "echo", api.Peer{})
	mustConflict(t, "Accept=yes", err, "Accept=yes")
}
