package supervisord

// What a hostile child can send on NOTIFY_SOCKET, and what sockd does
// not let it do.

import (
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/sockd/sockd/api"
)

// WATCHDOG=1 without a watchdog is ignored (it used to kill the service
// at once); WATCHDOG_USEC= sets one at run time, as in systemd.
func TestNotifyWatchdogWithout(t *testing.T) {
	e := newActor(t, notifyUnit)
	p := e.proc()
	e.notify(p.pid, "READY=1")
	e.awaitSub("running")
	for range 5 {
		e.notify(p.pid, "WATCHDOG=1")
	}
	e.notify(p.pid, "STATUS=still here")
	st := e.await("status", func(st api.ServiceStatus) bool { return st.Status == "still here" })
	if st.SubState != "running" || len(p.signals()) != 0 {
		t.Fatalf("after WATCHDOG=1 without a watchdog: %+v %v", st, p.signals())
	}
	e.notify(p.pid, "WATCHDOG_USEC=20000")
	st = e.await("failed", func(st api.ServiceStatus) bool { return st.State == api.StateFailed })
	if st.Result != "watchdog" {
		t.Fatalf("after WATCHDOG_USEC=20000 and no ping: %+v", st)
	}
}

// MAINPID= never names pid 1, sockd, or another unit's process; from a
// sender that is not root, only a process of the unit.
func TestNotifyMainPIDRefused(t *testing.T) {
	e := newActor(t, notifyUnit)
	p := e.proc()
	other := &unit{handle: &handle{name: "other.service"}}
	e.u.pids.add(100_999_999, other)
	for _, tc := range []struct {
		uid int
		msg string
	}{
		{0, "MAINPID=1"},
		{0, fmt.Sprintf("MAINPID=%d", os.Getpid())},
		{0, "MAINPID=100999999"},
		{1000, fmt.Sprintf("MAINPID=%d", os.Getppid())},
	} {
		e.notifyAs(p.pid, tc.uid, tc.msg+"\nSTATUS="+tc.msg)
		st := e.await(tc.msg, func(st api.ServiceStatus) bool { return st.Status == tc.msg })
		if st.MainPID != p.pid {
			t.Errorf("uid %d %s: main pid %d, want %d", tc.uid, tc.msg, st.MainPID, p.pid)
		}
	}
	// Root may name a process outside the unit, as systemd allows.
	e.notifyAs(p.pid, 0, fmt.Sprintf("MAINPID=%d\nSTATUS=root", os.Getppid()))
	if st := e.await("root", func(st api.ServiceStatus) bool { return st.Status == "root" }); st.MainPID != os.Getppid() {
		t.Errorf("root's MAINPID=%d: main pid %d", os.Getppid(), st.MainPID)
	}
}

// A burst of STATUS= before READY=1 loses neither: the mailbox keeps
// the latest STATUS= and every state message.
func TestNotifyBurstKeepsReady(t *testing.T) {
	e := newActor(t, notifyUnit)
	p := e.proc()
	for i := range 200 {
		e.notify(p.pid, fmt.Sprintf("STATUS=step %d", i))
	}
	e.notify(p.pid, "READY=1")
	st := e.awaitSub("running")
	if st.Status != "step 199" && !slices.Contains([]string{"step 199"}, st.Status) {
		t.Fatalf("status %q", st.Status)
	}
}

func TestMailboxBounds(t *testing.T) {
	m := newMailbox()
	for i := range 1000 {
		m.put(note(7, 1000, map[string]string{"STATUS": fmt.Sprint(i)}))
		m.put(note(7, 1000, map[string]string{"RELOADING": "1"}))
		m.put(note(7, 1000, map[string]string{"READY": "1"}))
	}
	got := m.take()
	if len(got) > maxQueued || len(got) == 0 {
		t.Fatalf("%d notes waiting", len(got))
	}
	last := got[len(got)-1].Fields
	if last["STATUS"] != "999" {
		t.Fatalf("last note %v", last)
	}
	for i := range maxSenders + 10 {
		m.put(note(i+1, 1000, map[string]string{"READY": "1"}))
	}
	if n := len(m.take()); n != maxSenders {
		t.Fatalf("%d senders kept", n)
	}
}
