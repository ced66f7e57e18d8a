package supervisord

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockd/sockd/api"
)

// awaitParked waits until the actor is parked.
func (e *actorEnv) awaitParked() {
	e.t.Helper()
	deadline := time.After(5 * time.Second)
	for !e.u.park.isParked() {
		select {
		case <-e.parked:
		case <-deadline:
			e.t.Fatalf("not parked within 5 s: %+v", e.status())
		}
	}
}

// TestActorParks: an actor with nothing to do parks (its goroutine
// ends), not while a process runs; a parked actor's status is read
// without waking it; start and stop wake it. Start/stop cycles under
// status calls from other goroutines lose no request and leave it
// parked each time.
func TestActorParks(t *testing.T) {
	e := newActor(t, notifyUnit)
	p := e.proc()
	e.notify(p.pid, "READY=1")
	e.awaitSub("running")
	if e.u.park.isParked() {
		t.Fatal("parked while its process runs")
	}
	e.wait(e.async(reqStop, api.RestartOptions{}))
	e.awaitParked()
	st, ok := e.u.park.parkedStatus(true)
	if !ok || st.Service.SubState != "dead" || len(st.Service.Pids) != 0 {
		t.Fatalf("parked status %v: %+v", ok, st)
	}
	if !e.u.park.isParked() {
		t.Fatal("reading the status woke the actor")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var done atomic.Bool
	var wg sync.WaitGroup
	var asked atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				if _, err := e.u.call(ctx, &request{kind: reqStatus}); err != nil {
					t.Errorf("status: %v", err)
					return
				}
				asked.Add(1)
			}
		}()
	}
	for i := range 50 {
		start := e.async(reqStart, api.RestartOptions{})
		p := e.proc()
		e.notify(p.pid, "READY=1")
		if r := e.wait(start); r.err != nil {
			t.Fatalf("start %d: %v", i, r.err)
		}
		if e.u.park.isParked() {
			t.Fatalf("cycle %d: parked while running", i)
		}
		if r := e.wait(e.async(reqStop, api.RestartOptions{})); r.err != nil {
			t.Fatalf("stop %d: %v", i, r.err)
		}
		e.awaitParked()
	}
	done.Store(true)
	wg.Wait()
	t.Logf("%d status calls beside 50 start/stop cycles", asked.Load())
}
