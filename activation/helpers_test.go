package activation

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	sdactivation "github.com/coreos/go-systemd/v22/activation"
	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/units"
)

// childEnv selects what the test binary does when it runs as a child.
const childEnv = "SOCKD_ACTIVATION_TEST_CHILD"

// TestMain lets the test binary play a socket-activated child.
func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "http":
		childHTTP()
	case "fdflags":
		childFDFlags()
	default:
		fmt.Fprintln(os.Stderr, "unknown child mode")
		os.Exit(2)
	}
}

// childModes describes fds 3, 4, … as the child received them, before
// anything in the child touches them: "blocking" or "nonblocking" each.
func childModes() string {
	n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	var modes []string
	for fd := 3; fd < 3+n; fd++ {
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		switch {
		case err != nil:
			modes = append(modes, "bad")
		case fl&unix.O_NONBLOCK != 0:
			modes = append(modes, "nonblocking")
		default:
			modes = append(modes, "blocking")
		}
	}
	return strings.Join(modes, ",")
}

// childFDFlags prints the mode of its fds and exits.
func childFDFlags() {
	fmt.Println(childModes())
	os.Exit(0)
}

// childHTTP serves HTTP on every socket it received, answering with the
// socket's name, its pid and the modes its fds had on arrival.
func childHTTP() {
	modes := childModes()
	// The child sets LISTEN_PID itself: in sockd, the re-exec helper does.
	os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	byName, err := sdactivation.ListenersWithNames()
	if err != nil || len(byName) == 0 {
		fmt.Fprintln(os.Stderr, "no listeners:", err)
		os.Exit(1)
	}
	for name, ls := range byName {
		for _, l := range ls {
			go func() {
				h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					fmt.Fprintf(w, "%s %d %s", name, os.Getpid(), modes)
				})
				_ = http.Serve(l, h)
			}()
		}
	}
	select {}
}

// tcpSocket is a socket unit with one ListenStream= on addr.
func tcpSocket(addr string) *units.Socket {
	return &units.Socket{
		Name:    "web.socket",
		Listens: []units.Listen{{Kind: units.Stream, Network: "tcp", Address: addr}},
	}
}

// mustOpen opens s and closes it when the test ends.
func mustOpen(t *testing.T, s *units.Socket) []*Listener {
	t.Helper()
	ls, err := Open(s)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { CloseAll(ls) })
	return ls
}

// withFD runs fn with the descriptor of f.
func withFD(t *testing.T, f *os.File, fn func(fd int)) {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Control(func(fd uintptr) { fn(int(fd)) }); err != nil {
		t.Fatal(err)
	}
}

// nonBlocking tells whether f's open file description is non-blocking.
func nonBlocking(t *testing.T, f *os.File) bool {
	t.Helper()
	var nb bool
	withFD(t, f, func(fd int) {
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil {
			t.Fatal(err)
		}
		nb = fl&unix.O_NONBLOCK != 0
	})
	return nb
}

// closeOnExec tells whether f's descriptor is close-on-exec.
func closeOnExec(t *testing.T, f *os.File) bool {
	t.Helper()
	var ce bool
	withFD(t, f, func(fd int) {
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			t.Fatal(err)
		}
		ce = fl&unix.FD_CLOEXEC != 0
	})
	return ce
}

// sockopt reads an integer socket option of l.
func sockopt(t *testing.T, l *Listener, level, opt int) int {
	t.Helper()
	var v int
	withFD(t, l.File(), func(fd int) {
		var err error
		v, err = unix.GetsockoptInt(fd, level, opt)
		if err != nil {
			t.Fatalf("getsockopt %d/%d: %v", level, opt, err)
		}
	})
	return v
}

// acceptQueued accepts one connection that must already wait in l's
// queue, the way a child would, on the fd children get.
func acceptQueued(t *testing.T, l *Listener) {
	t.Helper()
	withFD(t, l.File(), func(fd int) {
		ok, err := readable(fd)
		if err != nil || !ok {
			t.Fatalf("no connection in the queue of %s (%v)", l.Addr(), err)
		}
		nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
		if err != nil {
			t.Fatalf("accept: %v", err)
		}
		unix.Close(nfd)
	})
}

// waitFor runs Wait with a bounded context.
func waitFor(t *testing.T, ls []*Listener, d time.Duration) (*Listener, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return Wait(ctx, ls)
}

// dial connects to a TCP or Unix listener and closes the connection when
// the test ends.
func dial(t *testing.T, network, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// countFDs counts the open descriptors of the process.
func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
