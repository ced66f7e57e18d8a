package supervisord

import (
	"testing"

	"github.com/sockd/sockd/api"
)

// X-Instances=3 runs three processes on one socket; a restart rolls
// through them so that two always serve.
func TestInstancesRollingRestart(t *testing.T) {
	e := newEnv(t, notifyService+"X-Instances=3\n")
	e.mustGet()
	st := e.status()
	if len(st.Pids) != 3 || st.Instances != 3 {
		t.Fatalf("status %+v, want 3 pids", st)
	}
	res, evs := e.restart(api.RestartOptions{})
	if !res.OK || len(res.NewPids) != 3 {
		t.Fatalf("result %+v", res)
	}
	// Before each old process is told to drain, its replacement is ready:
	// at most one process per slot is ever missing.
	readyCount, drainCount := 0, 0
	for _, ev := range evs {
		switch ev.Phase {
		case api.PhaseReady:
			readyCount++
		case api.PhaseDraining:
			drainCount++
			if drainCount > readyCount {
				t.Fatalf("drain before replacement ready: %s", phases(evs))
			}
		}
	}
	if drainCount != 3 {
		t.Fatalf("phases %s", phases(evs))
	}
	for _, p := range st.Pids {
		if alive(p) {
			t.Fatalf("old pid %d alive", p)
		}
	}
}

// Lowering X-Instances= by a reload and restarting leaves one process, the
// restart's new one: the surplus process is stopped and its exit handled.
// (Its exit used to index past the shrunk slots, and sockd panicked.)
func TestInstancesShrinkAtRestart(t *testing.T) {
	e := newEnv(t, notifyService+"X-Instances=2\n")
	e.mustGet()
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive && len(st.Pids) == 2 })
	e.reload(notifyService)
	res, _ := e.restart(api.RestartOptions{})
	if !res.OK || len(res.NewPids) != 1 {
		t.Fatalf("restart %+v", res)
	}
	// The surplus process exits after SIGTERM; wait until it is gone.
	st := e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 1 && st.Pids[0] == res.NewPids[0] })
	if st.Instances != 1 {
		t.Fatalf("status %+v, want 1 instance", st)
	}
}

// X-Instances= changed by a reload while the unit runs applies at the next
// start, as documented, not only at the next restart: after a stop and a
// start, two processes run.
func TestInstancesChangeAppliesAtNextStart(t *testing.T) {
	e := newEnv(t, notifyService)
	e.mustGet()
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
	e.reload(notifyService + "X-Instances=2\n")
	if err := e.d.Stop(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Start(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	if st := e.status(); len(st.Pids) != 2 || st.Instances != 2 {
		t.Fatalf("after reload to X-Instances=2, stop and start: %+v, want 2 processes", st)
	}
}
