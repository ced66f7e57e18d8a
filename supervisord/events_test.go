package supervisord

import (
	"testing"
	"time"

	"github.com/sockd/sockd/api"
)

// A unit's life, in events: added, bound, triggered, spawned, ready; a
// restart's phases and its end; an exit with its code.
func TestEventsOfALife(t *testing.T) {
	e := newEnv(t, notifyService)
	ch, cancel := e.d.subscribeEvents("")
	defer cancel()
	pid, _ := e.mustGet()
	// The app may answer before its READY=1 is read: the restart is of
	// a running unit.
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
	res, _ := e.restart(api.RestartOptions{})
	if !res.OK {
		t.Fatalf("restart: %+v", res)
	}
	want := []string{api.EventTriggered, api.EventSpawned, api.EventReady, api.EventSpawned, api.EventRestart,
		api.EventReady, api.EventExited, api.EventRestartDone}
	var got []api.UnitEvent
	timeout := time.After(20 * time.Second)
	var last uint64
	for i := 0; i < len(want); {
		select {
		case ev := <-ch:
			if ev.Seq <= last {
				t.Fatalf("seq %d after %d", ev.Seq, last)
			}
			last = ev.Seq
			got = append(got, ev)
			if ev.Kind == want[i] {
				if ev.Unit != "app.service" {
					t.Fatalf("event of %q: %+v", ev.Unit, ev)
				}
				if ev.Kind == api.EventExited && (ev.Pid != pid || ev.Code == nil || *ev.Code != 0) {
					t.Fatalf("exited: %+v, want pid %d, code 0", ev, pid)
				}
				if ev.Kind == api.EventRestartDone && ev.Outcome != "done" {
					t.Fatalf("restart-done: %+v", ev)
				}
				i++
			}
		case <-timeout:
			t.Fatalf("events %v, missing from %q on", got, want)
		}
	}
}

// A subscriber that never reads never blocks a unit: once its buffer is
// full it gets "lagged" and is dropped, and restarts go on.
func TestEventsSlowReader(t *testing.T) {
	e := newEnv(t, notifyService)
	ch, cancel := e.d.subscribeEvents("app.service")
	defer cancel()
	e.mustGet()
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
	for range 40 { // more events than the buffer holds
		done := make(chan api.RestartResult, 1)
		go func() { r, _ := e.restart(api.RestartOptions{}); done <- r }()
		select {
		case r := <-done:
			if !r.OK {
				t.Fatalf("restart: %+v", r)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a restart blocked behind a reader that does not read")
		}
	}
	n, lagged := 0, false
	for ev := range ch {
		n++
		lagged = ev.Kind == api.EventLagged
	}
	if !lagged || n != eventBuffer {
		t.Fatalf("%d events, the last lagged: %v; want %d ending with lagged", n, lagged, eventBuffer)
	}
}
