package supervisord

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sockd/sockd/api"
)

// A stop during a start that waits for readiness cancels the start.
func TestStopDuringStart(t *testing.T) {
	e := newEnv(t, "Type=notify\nEnvironment=SOCKD_TEST_CHILD=never-ready\nTimeoutStartSec=60s\n")
	startErr := make(chan error, 1)
	go func() { startErr <- e.d.Start(e.ctx(), "app") }()
	st := e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 1 })
	pid := st.Pids[0]
	if err := e.d.Stop(e.ctx(), "app"); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := <-startErr; err == nil || !strings.Contains(err.Error(), "canceled by stop") {
		t.Fatalf("start returned %v, want canceled by stop", err)
	}
	if alive(pid) {
		t.Fatalf("pid %d alive after stop", pid)
	}
	if st := e.status(); st.State != api.StateInactive || len(st.Pids) != 0 {
		t.Fatalf("after stop: %+v", st)
	}
}

// A stop cancels the restarts queued behind the one under way too: it
// returns in time and leaves no process. Here a queued restart would wait
// TimeoutStartSec=60s for a READY=1 that never comes. (Queued restarts
// used to run before the stop began.)
func TestStopCancelsQueuedRestart(t *testing.T) {
	e := newEnv(t, notifyService)
	e.mustGet()
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
	e.reload("Type=notify\nEnvironment=SOCKD_TEST_CHILD=never-ready\nTimeoutStartSec=60s\n")
	for range 2 { // the first runs, the second waits in u.ops
		if err := e.queueRestart(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.d.Stop(ctx, "app"); err != nil {
		t.Fatalf("stop with a restart queued: %v", err)
	}
	if st := e.status(); len(st.Pids) != 0 {
		t.Fatalf("after stop: %+v", st)
	}
}
