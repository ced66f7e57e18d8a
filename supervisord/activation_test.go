package supervisord

import (
	"net"
	"os"
	"testing"

	"github.com/sockd/sockd/api"
)

// The first connection spawns the child; nothing runs before.
func TestLazyStart(t *testing.T) {
	e := newEnv(t, notifyService)
	if st := e.status(); st.State != api.StateInactive || len(st.Pids) != 0 || st.SubState != "listening" {
		t.Fatalf("before any connection: %+v", st)
	}
	pid, _ := e.mustGet()
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
	st := e.status()
	if st.State != api.StateActive || len(st.Pids) != 1 || st.Pids[0] != pid || st.Status != "serving" {
		t.Fatalf("after a connection: %+v, want active [%d]", st, pid)
	}
}

// A socket triggered more often than TriggerLimitBurst= within
// TriggerLimitIntervalSec= fails the unit (trigger-limit-hit): a child
// that exits without accepting would otherwise be started forever.
func TestTriggerLimit(t *testing.T) {
	e := newEnv(t, "Environment=SOCKD_TEST_CHILD=crash\n[Unit]\nStartLimitBurst=100\n")
	e.write("app.socket", "[Socket]\nListenStream="+e.sock+"\nTriggerLimitBurst=3\nTriggerLimitIntervalSec=1min\n")
	if _, err := e.d.Reload(e.ctx()); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st := e.await(func(st api.ServiceStatus) bool {
		return st.State == api.StateFailed && st.Result == "trigger-limit-hit"
	})
	if len(st.Pids) != 0 {
		t.Fatalf("processes after the trigger limit: %v", st.Pids)
	}
}

// A service without a socket starts as soon as it is loaded.
func TestOptionsSocketless(t *testing.T) {
	e := newEnv(t, reportService(""))
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	e.write("bg.service", "[Service]\nExecStart="+self+"\n"+reportService("Environment=CHILD_EXIT=0"))
	res, err := e.d.Reload(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range res.Diagnostics {
		if d.Severity == "error" {
			t.Fatalf("reload: %s", d.Text)
		}
	}
	// Only bg changes: app waits for a connection that never comes.
	e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 0 && st.Result == "success" })
	r, _ := e.reportFromLogs("bg")
	checkEnv(t, r, map[string]string{"LISTEN_FDS": unset, "LISTEN_PID": unset, "LISTEN_FDNAMES": unset})
	if st := e.status(); len(st.Pids) != 0 || st.State != api.StateInactive {
		t.Fatalf("app started too: %+v", st)
	}
}
