package supervisord

// Giving memory back after a burst. Go returns freed heap to the kernel
// slowly, and only below a goal set by the peak: after a few hundred
// tenants ran and stopped, an idle sockd kept the burst's RSS (+96 % in
// make bench's churn, 10 s later) until a GC that an idle daemon may not
// run for minutes. memTrim counts the processes that exit; once at least
// trimAfterExits have, and none for trimQuiet, it returns the free heap
// at once (debug.FreeOSMemory: one GC and a scavenge). An idle sockd
// has no timer; a busy one trims only when the burst is over.

import (
	"runtime/debug"
	"sync"
	"time"

	"github.com/sockd/sockd/api"
)

const (
	trimAfterExits = 16
	trimQuiet      = 3 * time.Second
)

type memTrim struct {
	mu     sync.Mutex
	exits  int
	timer  *time.Timer
	closed bool
	quiet  time.Duration
	free   func() // debug.FreeOSMemory; tests count
}

func newMemTrim() *memTrim { return &memTrim{quiet: trimQuiet, free: debug.FreeOSMemory} }

// note counts ev if it is a process's exit; it is the event bus's hook.
func (m *memTrim) note(ev api.UnitEvent) {
	if ev.Kind != api.EventExited {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.exits++
	if m.closed || m.exits < trimAfterExits {
		return
	}
	if m.timer == nil {
		m.timer = time.AfterFunc(m.quiet, m.fire)
	} else {
		m.timer.Reset(m.quiet) // still exiting: the burst is not over
	}
}

func (m *memTrim) fire() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.exits, m.timer = 0, nil
	m.mu.Unlock()
	m.free()
}

// close stops the timer: nothing is trimmed after the Daemon's shutdown.
func (m *memTrim) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	if m.timer != nil {
		m.timer.Stop()
		m.timer = nil
	}
}
