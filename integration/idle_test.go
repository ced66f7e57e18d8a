package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockd/sockd/internal/testutil"
)

// TestIdleTimeout: a unit with X-IdleTimeoutSec=2s, started by a
// request, keeps running while a keep-alive connection stays open with
// no traffic for more than the timeout (sockd counts connections, not
// bytes); once that connection closes it is stopped within the timeout,
// one check interval (1 s) and some slack, with result success, its
// socket listening; and the next connection starts it again. Over TCP on
// 127.0.0.1, and over a Unix socket.
func TestIdleTimeout(t *testing.T) {
	const (
		timeout = 2 * time.Second
		every   = time.Second // idleEvery(2s)
		slack   = 3 * time.Second
	)
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			if network == "unix" {
				addr = filepath.Join(testutil.ShortDir(t), "idle.sock")
			}
			s := startSockd(t, writeUnits(t, map[string]string{
				"idle.socket": "[Socket]\nListenStream=" + addr + "\n",
				"idle.service": "[Service]\nType=notify\nExecStart=" + bin.demo +
					"\nEnvironment=DEMO_MESSAGE=idle\nX-IdleTimeoutSec=2s\nTimeoutStopSec=10s\n",
			}))
			if st := s.status("idle"); st.Service.State != "inactive" {
				t.Fatalf("before any connection: %+v", st.Service)
			}

			// One request on a connection that stays open.
			c, err := net.DialTimeout(network, addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			br := bufio.NewReader(c)
			request := func() int {
				t.Helper()
				if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: sockd.test\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || resp.Close {
					t.Fatalf("answer %s %q (close %v)", resp.Status, b, resp.Close)
				}
				return pidOf(t, string(b))
			}
			pid := request()

			// No traffic for well past the timeout: the open connection
			// keeps the unit running.
			time.Sleep(timeout + 2*every + time.Second)
			st := s.status("idle")
			if st.Service.State != "active" || len(st.Service.Pids) != 1 || st.Service.Pids[0] != pid {
				t.Fatalf("with a connection open and quiet for %s: %+v, want active [%d]", timeout+2*every+time.Second, st.Service, pid)
			}
			if strings.Contains(s.log(), "idle for") {
				t.Fatalf("stopped as idle with a connection open; log:\n%s", s.log())
			}
			// The same connection still works, and is answered by the
			// same process.
			if got := request(); got != pid {
				t.Fatalf("answer from %d, want %d", got, pid)
			}

			c.Close()
			closed := time.Now()
			l := s.waitLog(timeout+every+slack+5*time.Second, func(l map[string]any) bool {
				msg, _ := l["message"].(string)
				return l["unit"] == "idle.service" && strings.HasPrefix(msg, "idle for ") && strings.HasSuffix(msg, "s: stopping")
			})
			if took := time.Since(closed); took > timeout+every+slack {
				t.Errorf("stopped %s after the last connection closed, want at most %s", took, timeout+every+slack)
			}
			if took := time.Since(closed); took < timeout-every {
				t.Errorf("stopped %s after the last connection closed, before the timeout (%s)", took, timeout)
			}
			t.Logf("log line: %v", l)

			deadline := time.Now().Add(15 * time.Second)
			for {
				st = s.status("idle")
				if st.Service.State == "inactive" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("not stopped: %+v", st.Service)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if st.Service.SubState != "listening" || st.Service.Result != "success" || len(st.Service.Pids) != 0 {
				t.Fatalf("after the idle stop: %+v, want inactive/listening, result success, no process", st.Service)
			}
			if pidAlive(pid) {
				t.Fatalf("process %d alive after the idle stop", pid)
			}

			// The next connection starts it again.
			second := pidOf(t, get(t, client(network, addr)))
			if second == pid {
				t.Fatalf("the same pid %d answered after the idle stop", pid)
			}
			if st := s.status("idle"); st.Service.State != "active" {
				t.Fatalf("after the next request: %+v", st.Service)
			}
		})
	}
}
