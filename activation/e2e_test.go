package activation

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockd/sockd/internal/testutil"
	"github.com/sockd/sockd/units"
)

// startChild starts the test binary as an HTTP child receiving ls as fds
// 3, 4, … with the LISTEN_* environment; it is killed when the test ends.
func startChild(t *testing.T, ls []*Listener) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LISTEN_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, childEnv+"=http")
	cmd.Env = append(cmd.Env, Env(ls)...)
	cmd.ExtraFiles = Files(ls)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopChild(cmd) })
	return cmd
}

// stopChild kills a child and reaps it; it is harmless on a reaped one.
func stopChild(cmd *exec.Cmd) {
	if cmd.ProcessState == nil {
		cmd.Process.Kill()
		cmd.Wait()
	}
}

// get makes one HTTP request with a fresh connection through dial.
func get(dial func() (net.Conn, error)) (string, error) {
	tr := &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			return dial()
		},
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get("http://sockd.test/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestEndToEnd runs the protocol with a real child: a request arrives
// before any child exists, Wait sees it without taking it, a child
// started with File() and Env() picks its sockets by name with
// go-systemd's activation package and serves it; after the child dies
// a queued connection wakes Wait again and a second child serves it.
func TestEndToEnd(t *testing.T) {
	dir := testutil.ShortDir(t)
	ctlPath := filepath.Join(dir, "ctl.sock")
	ls := mustOpen(t, &units.Socket{Name: "web.socket", Listens: []units.Listen{{Kind: units.Stream, Network: "tcp", Address: "127.0.0.1:0"}}})
	ls = append(ls, mustOpen(t, &units.Socket{Name: "app-ctl.socket", FileDescriptorName: "ctl", Listens: []units.Listen{{Kind: units.Stream, Network: "unix", Address: ctlPath}}})...)
	web := ls[0]
	dialWeb := func() (net.Conn, error) { return net.DialTimeout("tcp", web.Addr(), 5*time.Second) }
	dialCtl := func() (net.Conn, error) { return net.DialTimeout("unix", ctlPath, 5*time.Second) }

	for round := 1; round <= 2; round++ {
		// A client connects while no child runs.
		type reply struct {
			body string
			err  error
		}
		replies := make(chan reply, 1)
		go func() {
			body, err := get(dialWeb)
			replies <- reply{body, err}
		}()
		got, err := waitFor(t, ls, 10*time.Second)
		if err != nil || got != web {
			t.Fatalf("round %d: Wait = %v, %v; want the TCP listener", round, got, err)
		}
		for _, l := range ls {
			// No child holds the socket: put back the unit's mode,
			// which the previous child's go-systemd changed.
			if err := l.ResetMode(); err != nil {
				t.Fatal(err)
			}
			if nonBlocking(t, l.File()) {
				t.Fatalf("round %d: %s is non-blocking before the spawn", round, l.Name())
			}
		}
		cmd := startChild(t, ls)
		pid := strconv.Itoa(cmd.Process.Pid)

		var r reply
		select {
		case r = <-replies:
		case <-time.After(15 * time.Second):
			t.Fatalf("round %d: no reply from the child", round)
		}
		if r.err != nil {
			t.Fatalf("round %d: GET over TCP: %v", round, r.err)
		}
		// The child reports the name go-systemd gave the socket, its own
		// pid (so LISTEN_PID matched) and the modes of fds 3 and 4 as
		// it received them, after exec.Cmd called Fd() on them.
		if want := fmt.Sprintf("web.socket %s blocking,blocking", pid); r.body != want {
			t.Errorf("round %d: TCP reply %q, want %q", round, r.body, want)
		}
		body, err := get(dialCtl)
		if err != nil {
			t.Fatalf("round %d: GET over Unix: %v", round, err)
		}
		if want := fmt.Sprintf("ctl %s blocking,blocking", pid); body != want {
			t.Errorf("round %d: Unix reply %q, want %q", round, body, want)
		}
		stopChild(cmd)
	}
}
