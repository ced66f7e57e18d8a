package integration

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// An Accept=yes socket through the real sockd: every connection gets its
// own shell instance with the connection as fd 3 and systemd's instance
// name in %i; sockctl shows and stops the instances; sockd's SIGTERM
// ends the ones left.
func TestAcceptShellEcho(t *testing.T) {
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s := startSockd(t, writeUnits(t, map[string]string{
		"echo.socket": fmt.Sprintf("[Socket]\nListenStream=%s\nAccept=yes\nMaxConnections=4\n", addr),
		"echo@.service": "[Service]\n" +
			`ExecStart=/bin/sh -c 'echo "pid $$$$" >&3; read line <&3; echo "echo: $$line from %i" >&3; read rest <&3'` + "\n" +
			"TimeoutStopSec=5s\n",
	}))

	st := s.status("echo")
	if st.Name != "echo@.service" || st.Service.State != "inactive" || len(st.Sockets) != 1 || st.Sockets[0].Listen != addr {
		t.Fatalf("before any connection: %+v", st)
	}

	type client struct {
		c   net.Conn
		r   *bufio.Reader
		pid int
	}
	readLine := func(cl *client) string {
		t.Helper()
		cl.c.SetReadDeadline(time.Now().Add(30 * time.Second))
		line, err := cl.r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v (got %q)", err, line)
		}
		return strings.TrimSuffix(line, "\n")
	}
	var cls []*client
	for i := range 2 {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cl := &client{c: c, r: bufio.NewReader(c)}
		if _, err := fmt.Sscanf(readLine(cl), "pid %d", &cl.pid); err != nil {
			t.Fatalf("connection %d: no pid: %v", i, err)
		}
		cls = append(cls, cl)
	}
	if cls[0].pid == cls[1].pid {
		t.Fatalf("both connections served by pid %d", cls[0].pid)
	}
	st = s.status("echo.socket")
	if st.Service.State != "active" || len(st.Service.Pids) != 2 || st.Service.Pids[0] != cls[0].pid || st.Service.Pids[1] != cls[1].pid {
		t.Fatalf("with two connections: %+v, want pids %d %d", st.Service, cls[0].pid, cls[1].pid)
	}
	for i, cl := range cls {
		fmt.Fprintf(cl.c, "hello %d\n", i)
		want := fmt.Sprintf("echo: hello %d from %d-%s-%s", i, i, addr, cl.c.LocalAddr())
		if got := readLine(cl); got != want {
			t.Fatalf("connection %d: %q, want %q", i, got, want)
		}
	}
	out, _, code := s.ctl("list")
	if code != 0 || !strings.Contains(out, "echo@.service") {
		t.Fatalf("sockctl list: exit %d:\n%s", code, out)
	}

	// The first instance ends with its connection; stop ends the second.
	cls[0].c.Close()
	s.waitLog(20*time.Second, func(l map[string]any) bool {
		return l["message"] == "exited" && l["pid"] == float64(cls[0].pid)
	})
	if _, errs, code := s.ctl("stop", "echo"); code != 0 {
		t.Fatalf("sockctl stop echo: exit %d: %s", code, errs)
	}
	if pidAlive(cls[1].pid) {
		t.Fatalf("instance %d alive after sockctl stop", cls[1].pid)
	}
	cls[1].c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if line, err := cls[1].r.ReadString('\n'); err == nil {
		t.Fatalf("stopped instance's connection still open: %q", line)
	}
	if st := s.status("echo"); len(st.Service.Pids) != 0 {
		t.Fatalf("after stop: %+v", st.Service)
	}

	// The socket still accepts; sockd's SIGTERM stops the instance.
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := &client{c: c, r: bufio.NewReader(c)}
	if _, err := fmt.Sscanf(readLine(cl), "pid %d", &cl.pid); err != nil {
		t.Fatalf("after stop: %v", err)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("sockd exit: %v", err)
	}
	if pidAlive(cl.pid) {
		t.Fatalf("instance %d survived sockd's SIGTERM", cl.pid)
	}
}
