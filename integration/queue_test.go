package integration

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/testutil"
)

// stuckApp is a unit, slow.service, whose app never calls accept(2),
// behind slow.socket: 127.0.0.1:port and a Unix socket, both with
// Backlog=8. The first connection starts it (Type=simple, exec sleep), and
// every connection then waits in the accept queue. The /metrics test
// reuses it: startStuckApp, fill, then scrape.
type stuckApp struct {
	t       *testing.T
	s       *sockd
	tcp     string // "127.0.0.1:port"
	unix    string // the Unix socket's path
	backlog int
	conns   int // connections dialed so far, all kept open
}

// startStuckApp writes the units and starts a real sockd on them.
func startStuckApp(t *testing.T) *stuckApp {
	t.Helper()
	a := &stuckApp{t: t, tcp: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		unix: filepath.Join(testutil.ShortDir(t), "slow.sock"), backlog: 8}
	a.s = startSockd(t, writeUnits(t, map[string]string{
		"slow.socket": fmt.Sprintf("[Socket]\nListenStream=%s\nListenStream=%s\nBacklog=%d\n", a.tcp, a.unix, a.backlog),
		// The app starts, and never accepts.
		"slow.service": "[Service]\nType=simple\nExecStart=/bin/sh -c 'exec sleep 1000'\nTimeoutStopSec=3s\n",
	}))
	return a
}

// fill dials n more connections to the TCP socket, kept open until the
// test ends, and waits until the status shows every one queued.
func (a *stuckApp) fill(n int) api.SocketStatus {
	a.t.Helper()
	for range n {
		c, err := net.DialTimeout("tcp", a.tcp, 5*time.Second)
		if err != nil {
			a.t.Fatal(err)
		}
		a.t.Cleanup(func() { c.Close() })
	}
	a.conns += n
	return a.waitDepth(a.conns)
}

// waitDepth polls `sockctl status slow --json` until the TCP socket's
// queue_depth is want and the app runs, for at most 20 s: the kernel
// completes handshakes and sockd starts the app on their own time, and no
// event tells either.
func (a *stuckApp) waitDepth(want int) api.SocketStatus {
	a.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := a.s.status("slow")
		so := a.socket(st, a.tcp)
		if so.QueueDepth != nil && *so.QueueDepth == want && st.Service.State == api.StateActive {
			return so
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("no queue_depth %d within 20 s: state %s, socket %+v (depth %v)", want, st.Service.State, so, deref(so.QueueDepth))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// socket returns st's socket listening on listen.
func (a *stuckApp) socket(st api.UnitStatus, listen string) api.SocketStatus {
	a.t.Helper()
	for _, so := range st.Sockets {
		if so.Listen == listen {
			return so
		}
	}
	a.t.Fatalf("no socket %s in %+v", listen, st.Sockets)
	return api.SocketStatus{}
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestAcceptQueueDepth: connections wait behind an app that never
// accepts; `sockctl status --json` shows how many (queue_depth) and the
// backlog, and `sockctl status` shows the queue next to the socket and
// warns once it is over half the backlog.
func TestAcceptQueueDepth(t *testing.T) {
	a := startStuckApp(t)
	// Idle: the queues are read already, empty.
	st := a.s.status("slow")
	for _, listen := range []string{a.tcp, a.unix} {
		if so := a.socket(st, listen); so.QueueDepth == nil || *so.QueueDepth != 0 || so.Backlog != a.backlog {
			t.Fatalf("idle %s: queue %v backlog %d, want 0 of %d", listen, deref(so.QueueDepth), so.Backlog, a.backlog)
		}
	}

	so := a.fill(3) // the first starts the app
	if so.Backlog != a.backlog {
		t.Fatalf("backlog %d, want %d", so.Backlog, a.backlog)
	}
	out, errs, code := a.s.ctl("status", "slow")
	if code != 0 {
		t.Fatalf("sockctl status: exit %d: %s", code, errs)
	}
	if want := fmt.Sprintf("%s slow.socket (Stream, fd slow.socket) queue 3/8", a.tcp); !strings.Contains(out, want) {
		t.Errorf("sockctl status lacks %q:\n%s", want, out)
	}
	if strings.Contains(out, "does not accept fast enough") {
		t.Errorf("a warning at 3 of 8:\n%s", out)
	}

	a.fill(3) // 6 of 8: over half
	out, _, _ = a.s.ctl("status", "slow")
	if want := "warning: the app does not accept fast enough: 6 of 8 queued"; !strings.Contains(out, want) {
		t.Errorf("sockctl status lacks %q:\n%s", want, out)
	}
	// The Unix socket of the same unit has nothing queued.
	if so := a.socket(a.s.status("slow"), a.unix); so.QueueDepth == nil || *so.QueueDepth != 0 || so.Backlog != a.backlog {
		t.Errorf("%s: queue %v backlog %d, want 0 of %d", a.unix, deref(so.QueueDepth), so.Backlog, a.backlog)
	}
	// sockctl list --json carries the same.
	out, errs, code = a.s.ctl("list", "--json")
	if code != 0 || !strings.Contains(out, `"queue_depth":6,"backlog":8`) {
		t.Errorf("sockctl list --json: exit %d: %s\n%s", code, errs, out)
	}
	// And so does /metrics, read at the scrape.
	fams := scrapeMetrics(t, client("unix", a.s.api))
	labels := map[string]string{"unit": "slow.service", "socket": "slow.socket", "listen": a.tcp}
	if v, ok := sample(fams, "sockd_socket_queue_depth", labels); !ok || v != 6 {
		t.Errorf("sockd_socket_queue_depth%v = %v (found %v), want 6", labels, v, ok)
	}
	if v, ok := sample(fams, "sockd_socket_backlog", labels); !ok || v != float64(a.backlog) {
		t.Errorf("sockd_socket_backlog%v = %v (found %v), want %d", labels, v, ok, a.backlog)
	}
}
