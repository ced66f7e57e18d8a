package supervisord

import (
	"net"
	"testing"
	"time"
)

// TestQueueDepth: a service that never accepts, behind a socket with
// Backlog=8: the connections that started it wait in the accept queue,
// and Status and List show how many, read through sock_diag, without
// writing into the actor's own status.
func TestQueueDepth(t *testing.T) {
	e := newEnv(t, "")
	e.write("app.socket", "[Socket]\nListenStream="+e.sock+"\nBacklog=8\n")
	e.write("app.service", "[Service]\nExecStart=/bin/sleep 1000\nTimeoutStopSec=5s\n")
	if _, err := e.d.Reload(e.ctx()); err != nil {
		t.Fatal(err)
	}
	queue := func() (*int, int) {
		t.Helper()
		st, err := e.d.Status(e.ctx(), "app")
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Sockets) != 1 {
			t.Fatalf("sockets: %+v", st.Sockets)
		}
		return st.Sockets[0].QueueDepth, st.Sockets[0].Backlog
	}
	if d, b := queue(); d == nil || *d != 0 || b != 8 {
		t.Fatalf("idle: queue %v backlog %d, want 0 of 8", d, b)
	}
	for range 5 {
		c, err := net.Dial("unix", e.sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	// The first connection starts sleep(1), which never accepts. A Unix
	// connect queues at once; poll only for the start.
	deadline := time.Now().Add(20 * time.Second)
	for {
		d, b := queue()
		st := e.status()
		if d != nil && *d == 5 && b == 8 && st.State == "active" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %v backlog %d state %s, want 5 of 8, active", d, b, st.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
	all, err := e.d.List(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, u := range all {
		if u.Name == "app.service" {
			found = true
			if s := u.Sockets[0]; s.QueueDepth == nil || *s.QueueDepth != 5 || s.Backlog != 8 {
				t.Errorf("List: %+v", s)
			}
		}
	}
	if !found {
		t.Fatalf("List: no app.service in %+v", all)
	}
	// The actor's own slice is shared: it was never written.
	u, err := e.d.lookup("app")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := u.call(e.ctx(), &request{kind: reqStatus})
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.status.Sockets[0]; s.QueueDepth != nil || s.Backlog != 0 {
		t.Errorf("the actor's status was written: %+v", s)
	}
}
