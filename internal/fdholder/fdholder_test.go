package fdholder

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/testutil"
)

// tcpListener returns a listening TCP socket on 127.0.0.1 as a file (the
// net.Listener is closed: the file is the only fd of the socket) and its
// address.
func tcpListener(t *testing.T) (*os.File, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	return f, ln.Addr().String()
}

// pipe returns a pipe whose ends the test closes at its end.
func pipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func take(t *testing.T, c *Client) *Held {
	t.Helper()
	h, err := c.Take()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func reconnect(t *testing.T, dir string, c *Client) *Client {
	t.Helper()
	c2, err := Connect(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c2.Close() })
	if c2.Pid() != c.Pid() {
		t.Fatalf("Connect found holder %d, want the same one, %d", c2.Pid(), c.Pid())
	}
	return c2
}

// A listening socket outlives sockd in the holder, with the connections
// queued meanwhile.
func TestListenerKeepsItsQueue(t *testing.T) {
	checkFDs(t)
	dir, c := startHolder(t)
	lf, addr := tcpListener(t)
	want := ino(t, lf)
	if err := c.Put("sock/web", lf); err != nil {
		t.Fatal(err)
	}
	// sockd is gone: only the holder has the socket.
	c.Close()
	lf.Close()

	conn, err := net.DialTimeout("tcp", addr, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}

	h := take(t, reconnect(t, dir, c))
	f := h.Files["sock/web"]
	if f == nil {
		t.Fatalf("Take: %v, no sock/web", h.Files)
	}
	if got := ino(t, f); got != want {
		t.Fatalf("taken socket: inode %d, want %d", got, want)
	}
	ln, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(waitLimit))
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.SetDeadline(time.Now().Add(waitLimit))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read %q, %v from the queued connection", buf, err)
	}
}

// While no sockd is connected, the holder drains an output pipe into its
// bounded buffer: the writer never blocks for long, and Take returns the
// last MaxOutput bytes.
func TestOutputDrainedWhileAway(t *testing.T) {
	checkFDs(t)
	dir, c := startHolder(t)
	r, w := pipe(t)
	if err := c.Put("out/x", r); err != nil {
		t.Fatal(err)
	}
	r.Close()
	c.Close()

	data := make([]byte, 200<<10)
	for i := range data {
		data[i] = byte(i*7 + i/251)
	}
	// More than the pipe holds: it fits only as the holder reads.
	w.SetWriteDeadline(time.Now().Add(waitLimit))
	if _, err := w.Write(data); err != nil {
		t.Fatalf("write: %v (is the holder draining?)", err)
	}
	w.Close() // the "child" exits

	c2 := reconnect(t, dir, c)
	h := take(t, c2)
	if f := h.Files["out/x"]; f != nil {
		t.Errorf("Take returned out/x, whose writer is gone")
	}
	if got := h.Output["out/x"]; !bytes.Equal(got, data[len(data)-MaxOutput:]) {
		t.Errorf("output: %d bytes, want the last %d written", len(got), MaxOutput)
	}
	if got, want := h.Dropped["out/x"], int64(len(data)-MaxOutput); got != want {
		t.Errorf("dropped %d, want %d", got, want)
	}
	// Taken, forgotten.
	if h := take(t, c2); len(h.Output)+len(h.Files) > 0 {
		t.Errorf("second Take: %v %v", h.Files, h.Output)
	}
}

// While a sockd is connected, the holder leaves the pipes to it; it keeps
// an output name's buffer across Put and reads it only after Close.
func TestOutputLeftToConnectedSockd(t *testing.T) {
	checkFDs(t)
	dir, c := startHolder(t)
	r, w := pipe(t)
	if err := c.Put("out/y", r); err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("abc"))
	h := take(t, c)
	if len(h.Output) > 0 {
		t.Errorf("output read while connected: %q", h.Output)
	}
	buf := make([]byte, 3)
	if _, err := io.ReadFull(h.Files["out/y"], buf); err != nil || string(buf) != "abc" {
		t.Fatalf("read %q, %v from the taken pipe", buf, err)
	}

	c.Close()
	w.Write([]byte("def"))
	c2 := reconnect(t, dir, c)
	// A new pipe under the name: the old one's output stays.
	r2, _ := pipe(t)
	if err := c2.Put("out/y", r2); err != nil {
		t.Fatal(err)
	}
	h = take(t, c2)
	if got := string(h.Output["out/y"]); got != "def" || h.Dropped["out/y"] != 0 {
		t.Errorf("output %q, dropped %d; want def, 0", got, h.Dropped["out/y"])
	}
	if ino(t, h.Files["out/y"]) != ino(t, r2) {
		t.Errorf("Put did not replace out/y")
	}
}

// sockd is SIGKILLed after its Puts: the holder it started survives, and
// the next sockd takes the fds back from the same holder.
func TestSockdKilled(t *testing.T) {
	checkFDs(t)
	dir := testutil.ShortDir(t)
	lf, addr := tcpListener(t)
	defer lf.Close()
	r, w := pipe(t)
	p, lines := startChild(t, "sockd", dir, nil, lf, r)
	l := line(t, lines)
	pid, err := strconv.Atoi(strings.TrimPrefix(l, "ready "))
	if err != nil {
		t.Fatalf("child said %q", l)
	}
	pidfd := pidfdOf(t, pid)
	defer unix.Close(pidfd)
	wantSock, wantPipe := ino(t, lf), ino(t, r)
	lf.Close()
	r.Close()
	p.Signal(syscall.SIGKILL)
	select {
	case <-p.Done():
	case <-time.After(waitLimit):
		t.Fatal("child not reaped")
	}

	conn, err := net.DialTimeout("tcp", addr, waitLimit) // queued in the holder's copy
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	w.Write([]byte("while away"))

	if exited(pidfd) {
		t.Fatal("the holder died with its sockd")
	}
	c, err := Connect(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Shutdown(); err != nil {
			t.Error(err)
		}
		if !exited(pidfd) {
			t.Error("holder still runs after Shutdown")
		}
	})
	if c.Pid() != pid {
		t.Fatalf("Connect found holder %d, want %d", c.Pid(), pid)
	}
	h := take(t, c)
	if f := h.Files["sock/a"]; f == nil || ino(t, f) != wantSock {
		t.Errorf("sock/a: %v, want inode %d", f, wantSock)
	}
	if f := h.Files["out/a"]; f == nil || ino(t, f) != wantPipe {
		t.Errorf("out/a: %v, want inode %d", f, wantPipe)
	}
	if got := string(h.Output["out/a"]); got != "while away" {
		t.Errorf("output %q, want %q", got, "while away")
	}
}

// Put replaces, Remove closes the holder's copy.
func TestPutAndRemove(t *testing.T) {
	checkFDs(t)
	_, c := startHolder(t)
	base := holderFDs(t, c.Pid())
	a, _ := pipe(t)
	b, _ := pipe(t)
	for _, put := range []struct {
		name string
		f    *os.File
	}{{"a", a}, {"b", a}, {"b", b}, {"out/b", b}} {
		if err := c.Put(put.name, put.f); err != nil {
			t.Fatal(err)
		}
	}
	// a, b, out/b and the holder's own description of out/b's pipe.
	if n := holderFDs(t, c.Pid()) - base; n != 4 {
		t.Errorf("holder has %d more fds, want 4", n)
	}
	for _, name := range []string{"a", "out/b", "never"} {
		if err := c.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
	if n := holderFDs(t, c.Pid()) - base; n != 1 {
		t.Errorf("holder has %d more fds, want 1", n)
	}
	h := take(t, c)
	if len(h.Files) != 1 || h.Files["b"] == nil || ino(t, h.Files["b"]) != ino(t, b) {
		t.Errorf("Take: %v, want b alone, b's pipe", h.Files)
	}
}

// Shutdown ends the holder and removes its socket; the next Connect
// starts a new one.
func TestShutdown(t *testing.T) {
	checkFDs(t)
	dir, c := startHolder(t)
	lf, _ := tcpListener(t)
	defer lf.Close()
	if err := c.Put("sock", lf); err != nil {
		t.Fatal(err)
	}
	pidfd := pidfdOf(t, c.Pid())
	defer unix.Close(pidfd)
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if !exited(pidfd) {
		t.Fatal("holder runs after Shutdown")
	}
	select {
	case <-c.proc.Done():
	default:
		t.Error("holder not reaped after Shutdown")
	}
	if _, err := os.Lstat(filepath.Join(dir, SocketName)); !os.IsNotExist(err) {
		t.Errorf("socket file: %v", err)
	}
	if err := c.Put("x", lf); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Shutdown: %v, want ErrClosed", err)
	}
	c2, err := Connect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Pid() == c.Pid() {
		t.Fatal("same holder after Shutdown")
	}
	if err := c2.Shutdown(); err != nil {
		t.Fatal(err)
	}
}

// One sockd at a time: a second is refused, and says by whom.
func TestSecondSockdRefused(t *testing.T) {
	checkFDs(t)
	dir, c := startHolder(t)
	_, err := Connect(dir)
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second Connect: %v, want ErrBusy naming pid %d", err, os.Getpid())
	}
	// The first is not disturbed.
	if _, err := c.Take(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	reconnect(t, dir, c)
}

// Only the holder's uid may connect: the socket's mode keeps others out,
// and SO_PEERCRED too.
func TestOtherUserRefused(t *testing.T) {
	checkFDs(t)
	dir, c := startHolder(t)
	c.Close()
	path := filepath.Join(dir, SocketName)
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	connectAsNobody := func() string {
		p, lines := startChild(t, "rawdial", dir, nobody)
		l := line(t, lines)
		<-p.Done()
		return l
	}
	if got := connectAsNobody(); !strings.Contains(got, "permission denied") {
		t.Errorf("nobody connecting to a 0600 socket: %q", got)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if got, want := connectAsNobody(), "uid 65534 may not use the holder of uid 0"; !strings.Contains(got, want) {
		t.Errorf("nobody connecting: %q, want %q", got, want)
	}
	reconnect(t, dir, c)
}

// A thousand fds (of a thousand units' sockets) make the round trip, in
// batches, and the holder keeps its copies.
func TestThousandFDs(t *testing.T) {
	checkFDs(t)
	const n = 1000
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur < 4*n {
		t.Skipf("RLIMIT_NOFILE %d: too low", rl.Cur)
	}
	_, c := startHolder(t)
	want := map[string]uint64{}
	for i := range n {
		r, _ := pipe(t)
		// Long names on some: batches are cut by size too.
		name := fmt.Sprintf("p/%04d/%s", i, strings.Repeat("x", i%240))
		want[name] = ino(t, r)
		if err := c.Put(name, r); err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	for range 2 {
		h, err := c.Take()
		if err != nil {
			t.Fatal(err)
		}
		if len(h.Files) != n {
			t.Errorf("Take: %d files, want %d", len(h.Files), n)
		}
		for name, f := range h.Files {
			if ino(t, f) != want[name] {
				t.Errorf("%s: not its pipe", name)
			}
		}
		h.Close()
	}
}

// Take refuses, clearly and taking nothing, fds that would not fit under
// RLIMIT_NOFILE.
func TestTakeFDLimit(t *testing.T) {
	checkFDs(t)
	_, c := startHolder(t)
	r, _ := pipe(t)
	for i := range 100 {
		if err := c.Put("p"+strconv.Itoa(i), r); err != nil {
			t.Fatal(err)
		}
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	low := rl
	low.Cur = uint64(len(openFDs(t)) + fdReserve + 50)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	_, err := c.Take()
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if err == nil || !strings.Contains(err.Error(), "100 fds held") || !strings.Contains(err.Error(), "RLIMIT_NOFILE") {
		t.Fatalf("Take under a low RLIMIT_NOFILE: %v", err)
	}
	if h := take(t, c); len(h.Files) != 100 {
		t.Errorf("Take: %d files, want 100", len(h.Files))
	}
}

// The holder makes its socket 0600, replaces a stale one, refuses
// anything else at its path, and is alone in its directory.
func TestSocketFile(t *testing.T) {
	checkFDs(t)
	t.Run("stale", func(t *testing.T) {
		dir := testutil.ShortDir(t)
		path := filepath.Join(dir, SocketName)
		ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
		if err != nil {
			t.Fatal(err)
		}
		ln.SetUnlinkOnClose(false)
		ln.Close()
		c, err := Connect(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Shutdown()
		if fi, err := os.Lstat(path); err != nil || fi.Mode() != os.ModeSocket|0o600 {
			t.Errorf("socket file: %v, %v", fi.Mode(), err)
		}
	})
	for _, bad := range []struct {
		name string
		make func(path string) error
		want string
	}{
		{"symlink", func(p string) error { return os.Symlink("/dev/null", p) }, "symlink"},
		{"regular", func(p string) error { return os.WriteFile(p, nil, 0o600) }, "not a socket"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			dir := testutil.ShortDir(t)
			if err := bad.make(filepath.Join(dir, SocketName)); err != nil {
				t.Fatal(err)
			}
			if c, err := Connect(dir); err == nil || !strings.Contains(err.Error(), bad.want) {
				t.Errorf("Connect: %v, want an error about a %s", err, bad.want)
				if c != nil {
					c.Shutdown()
				}
			}
		})
	}
	t.Run("locked", func(t *testing.T) {
		dir, c := startHolder(t)
		c.Close()
		if _, err := start(dir); !errors.Is(err, errLocked) {
			t.Errorf("a second holder: %v, want errLocked", err)
		}
		reconnect(t, dir, c)
	})
}

// If the holder dies, requests fail with ErrNoHolder and Connect starts a
// new one.
func TestHolderDies(t *testing.T) {
	checkFDs(t)
	dir, c := startHolder(t)
	pidfd := pidfdOf(t, c.Pid())
	defer unix.Close(pidfd)
	unix.Kill(c.Pid(), unix.SIGKILL)
	if err := waitReadable(pidfd, time.Now().Add(waitLimit)); err != nil {
		t.Fatal(err)
	}
	r, _ := pipe(t)
	if err := c.Put("a", r); !errors.Is(err, ErrNoHolder) {
		t.Errorf("Put to a dead holder: %v, want ErrNoHolder", err)
	}
	if _, err := c.Take(); !errors.Is(err, ErrNoHolder) {
		t.Errorf("Take from a dead holder: %v, want ErrNoHolder", err)
	}
	c2, err := Connect(dir) // replaces the stale socket
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if c2.Pid() == c.Pid() {
		t.Fatal("Connect found the dead holder")
	}
	if err := c2.Put("a", r); err != nil {
		t.Fatal(err)
	}
}

func TestPutErrors(t *testing.T) {
	checkFDs(t)
	_, c := startHolder(t)
	r, w := pipe(t)
	lf, _ := tcpListener(t)
	defer lf.Close()
	for _, bad := range []struct {
		name string
		f    *os.File
		want string
	}{
		{"", r, "must be 1 to 255 bytes"},
		{strings.Repeat("x", 256), r, "must be 1 to 255 bytes"},
		{"a:b", r, "printable ASCII"},
		{"a\nb", r, "printable ASCII"},
		{"out/sock", lf, "put out/sock: not a pipe"},
		{"out/w", w, "put out/w: not the read end of a pipe"},
	} {
		if err := c.Put(bad.name, bad.f); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Put %q: %v, want %q", bad.name, err, bad.want)
		}
	}
	// Refusals leave the connection usable.
	if err := c.Put("ok", r); err != nil {
		t.Fatal(err)
	}
}

// The fds come back with their open file descriptions' flags unchanged
// (the holder reads pipes through a description of its own), and
// close-on-exec.
func TestFlagsUnchanged(t *testing.T) {
	checkFDs(t)
	dir, c := startHolder(t)
	lf, _ := tcpListener(t) // non-blocking: Go's
	defer lf.Close()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil { // blocking
		t.Fatal(err)
	}
	r, w := os.NewFile(uintptr(p[0]), "r"), os.NewFile(uintptr(p[1]), "w")
	defer r.Close()
	defer w.Close()
	_, lfl := fdFlags(t, lf)
	_, rfl := fdFlags(t, r)
	if lfl&unix.O_NONBLOCK == 0 || rfl&unix.O_NONBLOCK != 0 {
		t.Fatalf("flags %#x %#x: want a non-blocking socket and a blocking pipe", lfl, rfl)
	}
	for name, f := range map[string]*os.File{"sock": lf, "out/p": r} {
		if err := c.Put(name, f); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	w.Write([]byte("drained"))
	h := take(t, reconnect(t, dir, c))
	if string(h.Output["out/p"]) != "drained" {
		t.Errorf("output %q", h.Output["out/p"])
	}
	for name, want := range map[string]int{"sock": lfl, "out/p": rfl} {
		fdfl, fl := fdFlags(t, h.Files[name])
		if fl != want {
			t.Errorf("%s: flags %#x, want %#x", name, fl, want)
		}
		if fdfl&unix.FD_CLOEXEC == 0 {
			t.Errorf("%s: not close-on-exec", name)
		}
	}
	if _, fl := fdFlags(t, r); fl != rfl {
		t.Errorf("the pipe's flags changed to %#x", fl)
	}
}

// Requests from several goroutines wait for each other.
func TestConcurrentRequests(t *testing.T) {
	checkFDs(t)
	_, c := startHolder(t)
	r, _ := pipe(t)
	const workers, each = 8, 50
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := range each {
				name := fmt.Sprintf("w%d/%d", w, i)
				err := c.Put(name, r)
				if err == nil && i%2 == 1 {
					err = c.Remove(name)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if h := take(t, c); len(h.Files) != workers*each/2 {
		t.Errorf("Take: %d files, want %d", len(h.Files), workers*each/2)
	}
}

// At its fd limit, the holder refuses what it cannot take, says so, and
// keeps serving.
func TestHolderAtItsFDLimit(t *testing.T) {
	checkFDs(t)
	dir, c := startHolder(t)
	pid := c.Pid()
	r, _ := pipe(t)
	var lim unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &lim); err != nil {
		t.Fatal(err)
	}
	// No fd left: a new fd takes the lowest free number, which is now at
	// the limit.
	low := lim
	low.Cur = uint64(lowestFreeFD(t, pid))
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &low, nil); err != nil {
		t.Fatal(err)
	}
	defer unix.Prlimit(pid, unix.RLIMIT_NOFILE, &lim, nil)

	if err := c.Put("a", r); err == nil || !strings.Contains(err.Error(), "no file descriptor left") {
		t.Errorf("Put at the holder's limit: %v", err)
	}
	_, err := Connect(dir)
	if err == nil || !strings.Contains(err.Error(), "no file descriptor left") {
		t.Errorf("Connect at the holder's limit: %v", err)
	}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &lim, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Put("a", r); err != nil {
		t.Fatal(err)
	}
	if h := take(t, c); len(h.Files) != 1 {
		t.Errorf("Take: %v, want a", h.Files)
	}
}

// lowestFreeFD returns the lowest fd number the holder has free.
func lowestFreeFD(t *testing.T, pid int) int {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	used := map[int]bool{}
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		used[fd] = true
	}
	n := 0
	for used[n] {
		n++
	}
	return n
}

// PutAsync (and RemoveAsync) do not wait for the holder's answers: more
// copies than maxPending all land, a refusal comes back from Flush (once), a request
// that waits (Remove, Take) reads the answers before its own, and the
// connection stays usable.
func TestPutAsync(t *testing.T) {
	checkFDs(t)
	_, c := startHolder(t)
	r, w := pipe(t)
	const n = 3*maxPending + 5
	for i := range n {
		if err := c.PutAsync(fmt.Sprintf("a%d", i), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.PutAsync("out/w", w); err != nil { // refused by the holder: not a read end
		t.Fatal(err)
	}
	if err := c.PutAsync("last", r); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveAsync("a0"); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove("never"); err != nil { // waits: reads every answer before its own
		t.Fatal(err)
	}
	if err := c.Flush(); err == nil || !strings.Contains(err.Error(), "put out/w: not the read end of a pipe") {
		t.Errorf("Flush: %v, want the refusal of out/w", err)
	}
	if err := c.Flush(); err != nil {
		t.Errorf("second Flush: %v, want nothing", err)
	}
	h := take(t, c)
	if len(h.Files) != n { // a1…a(n-1) and last
		t.Errorf("Take: %d files, want %d", len(h.Files), n)
	}
	if h.Files["a0"] != nil || h.Files["out/w"] != nil || h.Files["last"] == nil || h.Files[fmt.Sprintf("a%d", n-1)] == nil {
		t.Errorf("Take: a0 %v, out/w %v, last %v", h.Files["a0"] != nil, h.Files["out/w"] != nil, h.Files["last"] != nil)
	}
}
