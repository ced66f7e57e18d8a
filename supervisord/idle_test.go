package supervisord

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/sockdiag"
)

func TestIdleEvery(t *testing.T) {
	for d, want := range map[time.Duration]time.Duration{
		time.Second: time.Second, 2 * time.Second: time.Second, 8 * time.Second: 2 * time.Second,
		time.Minute: 15 * time.Second, time.Hour: 30 * time.Second,
	} {
		if got := idleEvery(d); got != want {
			t.Errorf("idleEvery(%s) = %s, want %s", d, got, want)
		}
	}
}

// TestIdleMonitor: the monitor's goroutine checks while a unit is
// watched, tells the actor with the watch's token, writes what it saw,
// and is gone once nothing is watched; a failed check tells no one and
// is logged once.
func TestIdleMonitor(t *testing.T) {
	var calls atomic.Int32
	var fail atomic.Bool
	var warned atomic.Int32
	m := newIdleMonitor(func(error) { warned.Add(1) })
	m.count = func() (*sockdiag.Conns, error) {
		calls.Add(1)
		if fail.Load() {
			return nil, errors.New("no sock_diag")
		}
		return &sockdiag.Conns{}, nil
	}
	u := &unit{handle: &handle{}, evs: make(chan event, 16)}
	w := &idleWatch{u: u, tok: 7, timeout: time.Second, every: 10 * time.Millisecond, since: time.Now()}
	m.add(w)
	for range 3 {
		select {
		case e := <-u.evs:
			if e.kind != evIdle || e.tok != 7 {
				t.Fatalf("event %v tok %d", e.kind, e.tok)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no check within 5 s")
		}
	}
	if w.idle.Load() == 0 || w.busy.Load() != 0 {
		t.Errorf("after idle checks: idle %d busy %d", w.idle.Load(), w.busy.Load())
	}

	fail.Store(true)
	n := calls.Load()
	for calls.Load() < n+3 {
		time.Sleep(5 * time.Millisecond) // no event to wait for: the checks are silent
	}
	for len(u.evs) > 0 {
		<-u.evs // from before the failure
	}
	n = calls.Load()
	for calls.Load() < n+2 {
		time.Sleep(5 * time.Millisecond)
	}
	if len(u.evs) != 0 {
		t.Errorf("a failed check sent %d events", len(u.evs))
	}
	if warned.Load() != 1 {
		t.Errorf("the same error logged %d times, want once", warned.Load())
	}

	m.remove(w)
	deadline := time.Now().Add(5 * time.Second)
	for {
		m.mu.Lock()
		running := m.running
		m.mu.Unlock()
		if !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the monitor's goroutine still runs with nothing watched")
		}
		time.Sleep(5 * time.Millisecond)
	}
	n = calls.Load()
	time.Sleep(50 * time.Millisecond)
	if calls.Load() != n {
		t.Error("checks go on with nothing watched")
	}
}

// TestIdleRestartResetsClock: the idle clock starts when the unit
// becomes running, and again after a restart; the idle stop is a clean
// stop (result success) back to listening, and a connection starts the
// unit again. Real Daemon, real child, real sock_diag.
func TestIdleRestartResetsClock(t *testing.T) {
	const timeout = 2 * time.Second
	e := newEnv(t, notifyService+"X-IdleTimeoutSec=2s\n")
	first, _ := e.mustGet()
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
	time.Sleep(timeout * 3 / 4) // most of the timeout passes; no event marks it
	begin := time.Now()
	if res, _ := e.restart(api.RestartOptions{}); !res.OK {
		t.Fatalf("restart: %+v", res)
	}
	for len(e.obs) > 0 {
		<-e.obs
	}
	// The first phase that is not active is the idle stop's.
	st := e.await(func(st api.ServiceStatus) bool { return st.State != api.StateActive })
	if d := st.Since.Sub(begin); d < timeout {
		t.Fatalf("stopped %s after the restart began (%s/%s), before the timeout counted from the restart", d, st.State, st.SubState)
	}
	st = e.await(func(st api.ServiceStatus) bool { return st.SubState == "listening" })
	if st.State != api.StateInactive || st.Result != "success" {
		t.Fatalf("after the idle stop: %+v, want inactive/listening, result success", st)
	}
	if again, _ := e.mustGet(); again == first {
		t.Fatalf("pid %d answered again after the stop", again)
	}
}
