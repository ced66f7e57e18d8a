package supervisord

import (
	"testing"
	"time"

	"github.com/sockd/sockd/api"
)

// memTrim frees once after a burst of exits has been quiet for its
// period, not during it, not for fewer than trimAfterExits exits, and
// never after close.
func TestMemTrim(t *testing.T) {
	freed := make(chan time.Time, 4)
	m := newMemTrim()
	m.quiet = 50 * time.Millisecond
	m.free = func() { freed <- time.Now() }
	exit := api.UnitEvent{Kind: api.EventExited}
	for range trimAfterExits - 1 {
		m.note(exit)
		m.note(api.UnitEvent{Kind: api.EventSpawned}) // not counted
	}
	m.mu.Lock()
	armed := m.timer != nil
	m.mu.Unlock()
	if armed {
		t.Fatalf("a timer after %d exits, fewer than %d", trimAfterExits-1, trimAfterExits)
	}
	m.note(exit)
	last := time.Now()
	for range 5 { // the burst goes on: the timer moves
		time.Sleep(20 * time.Millisecond) // the burst's pace, not a wait for an event
		m.note(exit)
		last = time.Now()
	}
	select {
	case at := <-freed:
		if d := at.Sub(last); d < m.quiet {
			t.Fatalf("freed %v after the last exit, before the quiet period %v", d, m.quiet)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not freed within 5 s of the burst's end")
	}
	m.mu.Lock()
	exits, timer := m.exits, m.timer
	m.mu.Unlock()
	if exits != 0 || timer != nil {
		t.Fatalf("after freeing: %d exits counted, timer %v", exits, timer)
	}
	for range trimAfterExits {
		m.note(exit)
	}
	m.close()
	select {
	case <-freed:
		t.Fatal("freed after close")
	case <-time.After(4 * m.quiet):
	}
}
