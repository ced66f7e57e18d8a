package fdstore

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sockd/sockd/children"
)

// child is the test binary started in one of runChild's modes.
type child struct {
	p *children.Process

	mu     sync.Mutex
	out    []string      // its stdout, line by line
	stored chan struct{} // closed when it prints "stored"
}

// startChild starts the test binary as mode with env, files as fds 3, …
// and, with pidEnv, LISTEN_PID set to its own pid as systemd does. It
// kills the child if the test ends before it did.
func startChild(t *testing.T, mode string, env []string, files []*os.File, pidEnv bool) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{stored: make(chan struct{})}
	spec := children.Spec{
		Path:       exe,
		Env:        append([]string{childEnv + "=" + mode}, env...),
		ExtraFiles: files,
		Umask:      -1,
		Stdout: children.Output{Lines: func(l string) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.out = append(c.out, l)
			if l == "stored" {
				close(c.stored)
			}
		}},
		Stderr: children.Output{Lines: func(l string) { t.Logf("%s: %s", mode, l) }},
	}
	if pidEnv {
		spec.PIDEnv = "LISTEN_PID"
	}
	c.p, err = children.Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.p.Signal(syscall.SIGKILL)
		<-c.p.Done()
	})
	return c
}

// wait waits for the child's exit and its output, and fails the test
// unless it exited with status 0.
func (c *child) wait(t *testing.T) []string {
	t.Helper()
	select {
	case <-c.p.Done():
	case <-time.After(testTimeout):
		t.Fatalf("child %d still runs after %v", c.p.Pid(), testTimeout)
	}
	if st := c.p.Exit(); !st.Success() {
		t.Fatalf("child %d: %v", c.p.Pid(), st)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out
}

// dialPing connects and says "ping"; nobody needs to accept for that.
func dialPing(t *testing.T, network, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout(network, addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(testTimeout))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	return c
}

// A sockd stand-in stores its sockets and exits, or is killed; started
// again as systemd starts it, it takes back the very same sockets, and
// accepts the connections made while no process of it ran.
func TestRestartKeepsSockets(t *testing.T) {
	for _, end := range []string{"exit", "sigkill"} {
		t.Run(end, func(t *testing.T) {
			checkNoLeak(t)
			dir := t.TempDir()
			h, err := NewHarness(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			unixPath := filepath.Join(dir, "app.sock")

			env := append(h.Env(), unixPathEnv+"="+unixPath)
			var first *child
			if end == "exit" {
				first = startChild(t, "store", env, nil, false)
			} else {
				first = startChild(t, "store-wait", env, nil, false)
				select {
				case <-first.stored:
				case <-first.p.Done():
				case <-time.After(testTimeout):
					t.Fatal("no \"stored\" from the child")
				}
				first.p.Signal(syscall.SIGKILL)
				<-first.p.Done()
				if st := first.p.Exit(); st.Signal != syscall.SIGKILL {
					t.Fatalf("first child: %v, want killed", st)
				}
			}
			var out []string
			if end == "exit" {
				out = first.wait(t)
			} else {
				first.mu.Lock()
				out = first.out
				first.mu.Unlock()
			}

			// What the first child stored, from its own fds: "sock NAME
			// INODE NONBLOCK CLOEXEC"; and its TCP address.
			var want []string
			var tcpAddr string
			for _, l := range out {
				if rest, ok := strings.CutPrefix(l, "sock "); ok {
					f := strings.Fields(rest)
					want = append(want, f[0]+" "+f[1]+" "+f[2]) // name inode nonblock
				} else if rest, ok := strings.CutPrefix(l, "tcp "); ok {
					tcpAddr = rest
				}
			}
			if len(want) != 4 || tcpAddr == "" {
				t.Fatalf("first child printed %q", out)
			}
			slices.Sort(want)

			settle(t, h)
			for _, m := range h.Messages() {
				if m.Text != "BARRIER=1\n" && m.PID != first.p.Pid() {
					t.Errorf("message %q from pid %d, want the child's %d", m.Text, m.PID, first.p.Pid())
				}
			}

			// No process of the service runs: the store alone keeps the
			// sockets listening.
			tcpConn := dialPing(t, "tcp", tcpAddr)
			unixConn := dialPing(t, "unix", unixPath)

			env, files, err := h.Passed()
			if err != nil {
				t.Fatal(err)
			}
			second := startChild(t, "inherit", env, files, true)
			for _, f := range files {
				f.Close() // the child has its own
			}
			// The child answers into the socket buffers and exits; a
			// child that failed is reported before any read waits.
			out = second.wait(t)
			for _, c := range []net.Conn{tcpConn, unixConn} {
				buf := make([]byte, 4)
				if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "pong" {
					t.Errorf("%s: read %q, %v; want pong", c.RemoteAddr(), buf, err)
				}
			}

			var got []string
			for _, l := range out {
				rest, ok := strings.CutPrefix(l, "sock ")
				if !ok {
					continue
				}
				f := strings.Fields(rest)
				if f[3] != "true" {
					t.Errorf("inherited %s is not close-on-exec", f[0])
				}
				got = append(got, f[0]+" "+f[1]+" "+f[2])
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("restarted child has (name inode nonblock)\n%q\nwant\n%q", got, want)
			}
		})
	}
}

// Inherited leaves alone fds meant for another process, and still
// unsets LISTEN_*.
func TestInheritedOtherPID(t *testing.T) {
	checkNoLeak(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	c := startChild(t, "other-pid", []string{"LISTEN_PID=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=x"}, []*os.File{r}, false)
	if out := c.wait(t); !slices.Equal(out, []string{"ok"}) {
		t.Errorf("child printed %q", out)
	}
}
