package supervisord

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/testutil"
)

// ExecStartPre= runs before the process, ExecStartPost= after it is
// ready (and before start returns), ExecStop= before KillSignal=, each
// with MAINPID where systemd sets it.
func TestExecHelpers(t *testing.T) {
	trace := filepath.Join(testutil.ShortDir(t), "trace")
	e := newEnv(t, notifyService+
		"ExecStartPre=/bin/sh -c 'echo pre >> "+trace+"'\n"+
		"ExecStartPre=-/bin/false\n"+
		"ExecStartPost=/bin/sh -c 'echo post $MAINPID >> "+trace+"'\n"+
		"ExecStop=/bin/sh -c 'echo stop $MAINPID >> "+trace+"'\n")
	if err := e.d.Start(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	st := e.status()
	if st.State != api.StateActive || len(st.Pids) != 1 {
		t.Fatalf("after start: %+v", st)
	}
	pid := strconv.Itoa(st.Pids[0])
	if err := e.d.Stop(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(trace)
	if got, want := strings.TrimSpace(string(b)), "pre\npost "+pid+"\nstop "+pid; got != want {
		t.Fatalf("trace:\n%s\nwant:\n%s", got, want)
	}
}

// A failing ExecStartPre= fails the start; nothing is spawned. In a
// restart it is a rollback: the old process keeps serving.
func TestExecStartPreFails(t *testing.T) {
	e := newEnv(t, notifyService)
	old, _ := e.mustGet()
	e.reload(notifyService + "ExecStartPre=/bin/sh -c 'echo migration failed; exit 4'\n")
	res, _ := e.restart(api.RestartOptions{})
	if res.OK || !strings.Contains(res.Cause, "ExecStartPre: /bin/sh: exit status 4") {
		t.Fatalf("restart: %+v", res)
	}
	if pid, _ := e.mustGet(); pid != old {
		t.Fatalf("answer from %d, want the old %d", pid, old)
	}
	if err := e.d.Stop(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	err := e.d.Start(e.ctx(), "app")
	if err == nil || !strings.Contains(err.Error(), "exit status 4") {
		t.Fatalf("start: %v, want the ExecStartPre= failure", err)
	}
	if st := e.status(); len(st.Pids) != 0 || st.State != api.StateFailed {
		t.Fatalf("after the failed start: %+v", st)
	}
	logs, _ := e.d.Logs(e.ctx(), "app", api.LogQuery{N: 10})
	found := false
	for _, l := range logs {
		found = found || l.Line == "migration failed"
	}
	if !found {
		t.Fatalf("ExecStartPre= output not in the unit's log: %+v", logs)
	}
}
