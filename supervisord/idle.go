package supervisord

// X-IdleTimeoutSec=: a running unit whose sockets have had no connection
// for that long is stopped, and its sockets wait for the next one.
//
// sockd never touches a unit's connections to learn this: one goroutine
// of the Daemon (idleMonitor) counts them through sock_diag for every
// unit that sets the option and runs, one dump per check whatever the
// number of units, and writes what it saw into each unit's idleWatch;
// the unit's actor decides. The goroutine exists only while some unit
// is watched: without one, nothing wakes up.

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockd/sockd/internal/sockdiag"
)

// idleEvery is how often a unit with idle timeout d is checked: a
// quarter of d, from 1 s to 30 s.
func idleEvery(d time.Duration) time.Duration {
	return min(max(d/4, time.Second), 30*time.Second)
}

// idleWatch is one running period of a unit with X-IdleTimeoutSec=.
// The actor makes it when the unit becomes running and drops it when
// the unit leaves running: a restart, stop or start in between starts
// the clock again with a new watch.
type idleWatch struct {
	u       *unit
	tok     token // the actor's: an evIdle of another watch is stale
	timeout time.Duration
	every   time.Duration
	since   time.Time // when the unit became running
	// What the unit listens on, fixed at arming (a socket replaced
	// meanwhile keeps its address).
	tcp    []netip.AddrPort
	unix   []string
	inodes []uint64
	// Written by the monitor, read by the actor (Unix nanoseconds):
	// busy is the end of the last check that found a connection, idle
	// the start of the last check that found none.
	busy atomic.Int64
	idle atomic.Int64
}

// idleMonitor checks the watched units' connections, for all of them at
// once.
type idleMonitor struct {
	// count is sockdiag.Connections; tests may replace it.
	count func() (*sockdiag.Conns, error)
	// warn logs a failed check (the monitor's own log lines).
	warn func(error)

	mu      sync.Mutex
	watches map[*idleWatch]struct{}
	running bool          // the goroutine exists
	wake    chan struct{} // 1-buffered: the set changed
	lastErr string        // the last check's error, logged once
}

func newIdleMonitor(warn func(error)) *idleMonitor {
	return &idleMonitor{count: sockdiag.Connections, warn: warn,
		watches: map[*idleWatch]struct{}{}, wake: make(chan struct{}, 1)}
}

// add watches w, starting the goroutine if none runs.
func (m *idleMonitor) add(w *idleWatch) {
	m.mu.Lock()
	m.watches[w] = struct{}{}
	start := !m.running
	m.running = true
	m.mu.Unlock()
	if start {
		go m.run()
	} else {
		m.poke()
	}
}

// remove stops watching w; the goroutine ends when none is left.
func (m *idleMonitor) remove(w *idleWatch) {
	m.mu.Lock()
	delete(m.watches, w)
	m.mu.Unlock()
	m.poke()
}

func (m *idleMonitor) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// run checks every watched unit once per the shortest interval among
// them, and returns when none is watched.
func (m *idleMonitor) run() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		m.mu.Lock()
		if len(m.watches) == 0 {
			m.running = false
			m.mu.Unlock()
			return
		}
		every := 30 * time.Second
		for w := range m.watches {
			every = min(every, w.every)
		}
		m.mu.Unlock()
		t.Reset(every)
		select {
		case <-t.C:
			m.check()
		case <-m.wake:
			// The set changed: work out the interval again. A unit
			// added waits one full interval from now for its first
			// check, which its own clock (since) covers anyway.
			if !t.Stop() {
				<-t.C
			}
		}
	}
}

// check makes one sock_diag dump and tells each watched unit what it
// found. A check that failed tells no one: a unit is stopped only on a
// check that saw it idle.
func (m *idleMonitor) check() {
	m.mu.Lock()
	ws := make([]*idleWatch, 0, len(m.watches))
	for w := range m.watches {
		ws = append(ws, w)
	}
	m.mu.Unlock()
	begin := time.Now()
	c, err := m.count()
	end := time.Now()
	if err != nil {
		if msg := err.Error(); msg != m.lastErr {
			m.lastErr = msg
			m.warn(err)
		}
		return // partial answers are not trusted: a family left out would look idle
	}
	m.lastErr = ""
	for _, w := range ws {
		if w.connected(c) {
			w.busy.Store(end.UnixNano())
		} else {
			w.idle.Store(begin.UnixNano())
		}
		// Never blocks: an actor whose queue is full finds the same
		// facts at the next check.
		w.u.trySend(event{kind: evIdle, tok: w.tok})
	}
}

// connected reports whether c shows a connection on one of w's sockets:
// established (or closing on the peer's side), or in an accept queue.
func (w *idleWatch) connected(c *sockdiag.Conns) bool {
	for _, a := range w.tcp {
		if c.TCP(a) > 0 {
			return true
		}
	}
	for _, n := range w.unix {
		if c.Unix(n) > 0 {
			return true
		}
	}
	for _, ino := range w.inodes {
		if c.Queues[ino].Depth > 0 {
			return true
		}
	}
	return false
}

// syncIdle watches the unit while it runs, if it sets X-IdleTimeoutSec=
// and has a socket; settle calls it. A reload that changes the timeout
// applies at once.
func (u *unit) syncIdle() {
	want := u.idleMon != nil && u.svc.IdleTimeout > 0 && u.phase == phaseRunning && !u.exiting && len(u.ls) > 0
	if want && u.idle != nil && u.idle.timeout != u.svc.IdleTimeout {
		u.disarmIdle() // a reload changed the timeout: the clock starts again
	}
	switch {
	case want && u.idle == nil:
		u.armIdle()
	case !want && u.idle != nil:
		u.disarmIdle()
	}
}

func (u *unit) armIdle() {
	w := &idleWatch{u: u, tok: u.nextToken(), timeout: u.svc.IdleTimeout, every: idleEvery(u.svc.IdleTimeout), since: time.Now()}
	for _, l := range u.ls {
		if ino := l.Inode(); ino != 0 {
			w.inodes = append(w.inodes, ino)
		}
		switch l.Spec().Network {
		case "tcp", "tcp6":
			if a, err := netip.ParseAddrPort(l.Addr()); err == nil {
				w.tcp = append(w.tcp, netip.AddrPortFrom(a.Addr().WithZone(""), a.Port()))
			}
		case "unix", "unixpacket":
			w.unix = append(w.unix, l.Addr())
		}
		// Datagram sockets and FIFOs have no connections: only the
		// others keep a unit busy.
	}
	u.idle = w
	u.idleMon.add(w)
}

func (u *unit) disarmIdle() {
	if u.idle != nil {
		u.idleMon.remove(u.idle)
		u.idle = nil
	}
}

// idleCheck follows a check of the monitor: a unit that no check has
// seen connected for X-IdleTimeoutSec= since it became running is
// stopped as a stop request would (ExecStop=, KillSignal=,
// TimeoutStopSec=), with result success, and listens again.
func (u *unit) idleCheck(e event) {
	w := u.idle
	if w == nil || e.tok != w.tok || u.job != nil || len(u.queue) > 0 {
		return
	}
	since := w.since
	if b := w.busy.Load(); b > since.UnixNano() {
		since = time.Unix(0, b)
	}
	quiet := time.Unix(0, w.idle.Load()).Sub(since)
	if quiet < w.timeout {
		return
	}
	u.log.Info().Dur("X-IdleTimeoutSec", w.timeout).Msgf("idle for %.0fs: stopping", quiet.Seconds())
	u.disarmIdle()
	u.result = "success"
	u.stopAll(e)
}
