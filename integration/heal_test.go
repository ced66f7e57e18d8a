package integration

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockd/sockd/internal/testutil"
)

// breakerApp is a Python service (no sockd library: the protocol by
// hand) that answers each connection with its pid and, asked "shutdown",
// calls shutdown(2) on the listening socket it inherited: the socket
// then refuses every connection, in this process and in sockd.
const breakerApp = `import os, socket
assert os.environ["LISTEN_PID"] == str(os.getpid())
s = socket.socket(fileno=3)
n = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
n.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
while True:
    try:
        c, _ = s.accept()
    except OSError:
        break
    req = c.recv(100)
    c.sendall(b"pid %d\n" % os.getpid())
    c.close()
    if req.startswith(b"shutdown"):
        s.shutdown(socket.SHUT_RDWR)
import time
time.sleep(3600)
`

// A service that shuts its listening socket down heals: sockd (the real
// binary, running throughout) sees the socket die, binds a fresh one,
// and moves the service onto it; the port serves again within a second,
// and sockctl status says socket-replaced with the cause.
func TestDeadListenerHealsPython(t *testing.T) {
	app := filepath.Join(testutil.ShortDir(t), "breaker.py")
	if err := os.WriteFile(app, []byte(breakerApp), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s := startSockd(t, writeUnits(t, map[string]string{
		"breaker.socket":  "[Socket]\nListenStream=" + addr + "\n",
		"breaker.service": "[Service]\nType=notify\nExecStart=/usr/bin/python3 -u " + app + "\nTimeoutStopSec=2s\n",
	}))
	ask := func(msg string) (string, error) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte(msg + "\n")); err != nil {
			return "", err
		}
		b := make([]byte, 100)
		n, err := c.Read(b)
		return strings.TrimSpace(string(b[:n])), err
	}
	first, err := ask("shutdown")
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	var got string
	for {
		if got, err = ask("hello"); err == nil && got != first {
			break
		}
		if time.Since(begin) > 10*time.Second {
			t.Fatalf("not serving again 10 s after the shutdown: %q, %v\n%s", got, err, s.log())
		}
		time.Sleep(10 * time.Millisecond) // the client's view: no event tells a client
	}
	healed := time.Since(begin)
	t.Logf("%s shut its socket down; %s served %v later", first, got, healed)
	if healed > time.Second {
		t.Errorf("healed in %v, want within 1 s", healed)
	}
	st := s.status("breaker")
	if len(st.Sockets) != 1 || st.Sockets[0].Replaced != 1 || !strings.Contains(st.Sockets[0].ReplacedCause, "EPOLLHUP") {
		t.Fatalf("status sockets: %+v", st.Sockets)
	}
	out, _, code := s.ctl("status", "breaker")
	if code != 0 || !strings.Contains(out, "replaced") {
		t.Errorf("sockctl status does not say the socket was replaced:\n%s", out)
	}
	if !strings.Contains(s.log(), "socket-replaced") {
		t.Error("no socket-replaced in the log")
	}
}
