package supervisord

import (
	"os"
	"testing"

	"github.com/sockd/sockd/children"
)

// A message that arrives before its sender's pid is known is delivered
// when the pid is added, and the pending list stays bounded.
func TestPidTablePending(t *testing.T) {
	tab := newPidTable()
	u := &unit{}
	me := os.Getpid() // a real pid, so that getpgid answers
	if got := tab.route(children.Notification{Pid: me, Raw: "READY=1"}); got != nil {
		t.Fatalf("routed to %v before the pid was added", got)
	}
	got := tab.add(me, u)
	if len(got) != 1 || got[0].Raw != "READY=1" {
		t.Fatalf("pending on add: %+v", got)
	}
	if tab.route(children.Notification{Pid: me}) != u {
		t.Fatal("not routed by pid after add")
	}
	tab.remove(me, u)
	for i := range 3 * maxPending {
		tab.route(children.Notification{Pid: 1 << 30, Raw: string(rune('a' + i%26))})
	}
	if len(tab.pending) != maxPending {
		t.Fatalf("pending grew to %d", len(tab.pending))
	}
}
