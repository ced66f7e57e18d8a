package children

import (
	"errors"
	"maps"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/testutil"
)

func listenNotify(t *testing.T) *NotifySocket {
	t.Helper()
	n, err := ListenNotify(filepath.Join(testutil.ShortDir(t), "notify"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func receive(t *testing.T, n *NotifySocket) Notification {
	t.Helper()
	select {
	case note, ok := <-n.C():
		if !ok {
			t.Fatal("C closed")
		}
		return note
	case <-time.After(testTimeout):
		t.Fatalf("no notification after %v", testTimeout)
		return Notification{}
	}
}

// TestNotifyFromChild has a real child call go-systemd's SdNotify.
func TestNotifyFromChild(t *testing.T) {
	n := listenNotify(t)
	fi, err := os.Stat(n.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o666 {
		t.Errorf("socket file mode %v, want socket 0666", fi.Mode())
	}

	spec := selfSpec(t, "notify")
	spec.Env = append(spec.Env, "NOTIFY_SOCKET="+n.Path())
	errs := newCapture()
	spec.Stderr.Lines = errs.add
	p := start(t, spec)
	note := receive(t, n)
	if note.Pid != p.Pid() {
		t.Errorf("pid %d, want the child's %d", note.Pid, p.Pid())
	}
	want := map[string]string{"READY": "1", "STATUS": "serving"}
	if !maps.Equal(note.Fields, want) || note.Raw != "READY=1\nSTATUS=starting\nSTATUS=serving" {
		t.Errorf("got %+v, want fields %v", note, want)
	}
	p.Stop(syscall.SIGTERM, testTimeout, true, true)
	if got := errs.get(); len(got) > 0 {
		t.Errorf("child stderr %q", got)
	}

	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(n.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file left after Close: %v", err)
	}
	if _, ok := <-n.C(); ok {
		t.Error("C not closed after Close")
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// openFds counts the open fds of this process. It holds the registry
// lock, under which alone the reaper opens files (in /proc).
func openFds(t *testing.T) int {
	t.Helper()
	owned.mu.Lock()
	defer owned.mu.Unlock()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestNotifyClosesPassedFds sends fds along (as FDSTORE=1 does): they
// must not pile up in sockd.
func TestNotifyClosesPassedFds(t *testing.T) {
	n := listenNotify(t)
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Net: "unixgram"}) // unbound, unconnected
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	before := openFds(t)
	rights := unix.UnixRights(int(r.Fd()), int(w.Fd()))
	if _, _, err := c.WriteMsgUnix([]byte("FDSTORE=1\nFDNAME=x\n"), rights, &net.UnixAddr{Name: n.Path(), Net: "unixgram"}); err != nil {
		t.Fatal(err)
	}
	note := receive(t, n)
	if note.Pid != os.Getpid() || note.Fields["FDSTORE"] != "1" || note.Fields["FDNAME"] != "x" {
		t.Errorf("got %+v", note)
	}
	if after := openFds(t); after != before {
		t.Errorf("%d fds open after the message, %d before", after, before)
	}
	r.Close()
	w.Close()
}

func TestNotifyStaleAndBusy(t *testing.T) {
	dir := testutil.ShortDir(t)
	path := filepath.Join(dir, "notify")

	// A stale socket file, left by a socket closed without unlinking.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	n, err := ListenNotify(path)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	defer n.Close()

	// A live one is not taken over.
	if n2, err := ListenNotify(path); !errors.Is(err, unix.EADDRINUSE) {
		if n2 != nil {
			n2.Close()
		}
		t.Errorf("over a live socket: %v, want EADDRINUSE", err)
	}
	// Nor is a live socket of another type (a datagram dial to it fails
	// with EPROTOTYPE, which is no sign of a stale file).
	streamPath := filepath.Join(dir, "stream")
	stream, err := net.Listen("unix", streamPath)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if n2, err := ListenNotify(streamPath); !errors.Is(err, unix.EADDRINUSE) {
		if n2 != nil {
			n2.Close()
		}
		t.Errorf("over a live stream socket: %v, want EADDRINUSE", err)
	}
	if c, err := net.Dial("unix", streamPath); err != nil {
		t.Errorf("the live stream socket was disturbed: %v", err)
	} else {
		c.Close()
	}
	// Nor is a file that is not a socket.
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenNotify(plain); !errors.Is(err, os.ErrExist) {
		t.Errorf("over a plain file: %v, want ErrExist", err)
	}
	if _, err := os.Stat(plain); err != nil {
		t.Errorf("plain file: %v", err)
	}
}

// TestNotifyCloseWithSlowConsumer fills C and closes without reading.
func TestNotifyCloseWithSlowConsumer(t *testing.T) {
	n := listenNotify(t)
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.Path(), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < cap(n.c)+10; i++ {
		if _, err := c.Write([]byte("STATUS=spam")); err != nil {
			t.Fatal(err)
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- n.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Close blocked")
	}
}

func TestParseNotify(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want map[string]string
	}{
		{"READY=1", map[string]string{"READY": "1"}},
		{"READY=1\nSTATUS=a=b\n", map[string]string{"READY": "1", "STATUS": "a=b"}},
		{"MAINPID=1\nMAINPID=2", map[string]string{"MAINPID": "2"}},
		{"junk\n=x\nEMPTY=", map[string]string{"EMPTY": ""}},
		{"", map[string]string{}},
	} {
		if got := ParseNotify(tc.msg); !maps.Equal(got, tc.want) {
			t.Errorf("ParseNotify(%q) = %v, want %v", tc.msg, got, tc.want)
		}
	}
}
