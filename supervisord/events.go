package supervisord

// The lifecycle events of every unit, published by the actors (and by
// reloads) to their subscribers: the event stream of the API and the
// metrics. Publishing never blocks an actor: each subscriber has a
// bounded buffer, and one that does not keep up gets a last "lagged"
// event and is dropped.

import (
	"sync"
	"time"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
	"golang.org/x/sys/unix"
)

// eventBuffer is how many events a subscriber may be behind.
const eventBuffer = 256

// eventBus fans events out. hook (Config.OnEvent) is called for every
// event, synchronously, from the publisher's goroutine: it must be cheap
// and must not block (the metrics' counters).
type eventBus struct {
	mu   sync.Mutex
	seq  uint64
	subs map[*eventSub]bool
	hook func(api.UnitEvent)
}

// eventSub is one subscriber: every unit's events, or one unit's.
type eventSub struct {
	unit string // "" for all
	ch   chan api.UnitEvent
}

func newEventBus(hook func(api.UnitEvent)) *eventBus {
	return &eventBus{subs: map[*eventSub]bool{}, hook: hook}
}

// publish stamps ev (Seq, Time) and hands it to every subscriber that
// wants it, and to the hook.
func (b *eventBus) publish(ev api.UnitEvent) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.seq++
	ev.Seq = b.seq
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	for s := range b.subs {
		if s.unit != "" && ev.Unit != "" && s.unit != ev.Unit {
			continue
		}
		if len(s.ch) < cap(s.ch)-1 {
			s.ch <- ev
			continue
		}
		// One slot left: the last event it gets says it lagged.
		s.ch <- api.UnitEvent{Seq: ev.Seq, Time: ev.Time, Unit: s.unit, Kind: api.EventLagged,
			Message: "the reader did not keep up: events from here on are lost to it"}
		close(s.ch)
		delete(b.subs, s)
	}
	hook := b.hook
	b.mu.Unlock()
	if hook != nil {
		hook(ev)
	}
}

// subscribe returns the events of unit ("" for all) from now on, the
// first being "subscribed" (api.EventSubscribed), until
// cancel, or until the subscriber lags (the channel then closes after a
// "lagged" event).
func (b *eventBus) subscribe(unit string) (<-chan api.UnitEvent, func()) {
	s := &eventSub{unit: unit, ch: make(chan api.UnitEvent, eventBuffer)}
	b.mu.Lock()
	s.ch <- api.UnitEvent{Seq: b.seq, Time: time.Now(), Unit: unit, Kind: api.EventSubscribed}
	b.subs[s] = true
	b.mu.Unlock()
	return s.ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.subs[s] {
			delete(b.subs, s)
			close(s.ch)
		}
	}
}

// publish sends an event of the unit.
func (u *unit) publish(ev api.UnitEvent) {
	ev.Unit = u.name
	u.events.publish(ev)
}

// publishReady sends "ready" for p, with the time since its spawn.
func (u *unit) publishReady(p *proc) {
	u.publish(api.UnitEvent{Kind: api.EventReady, Pid: p.Pid(), Gen: p.gen, Millis: time.Since(p.started).Milliseconds()})
}

// publishExit sends "exited" for p: its code or signal, and how sockd
// judges the exit.
func (u *unit) publishExit(p *proc, st children.ExitStatus) {
	ev := api.UnitEvent{Kind: api.EventExited, Pid: p.Pid(), Gen: p.gen,
		Result: judge(u.svc, st, p.timedOut, p.watchdog).result(st)}
	switch {
	case st.Err != nil:
		ev.Message = st.Err.Error()
	case st.Signal != 0:
		ev.Signal = unix.SignalName(st.Signal)
	default:
		code := st.Code
		ev.Code = &code
	}
	u.publish(ev)
}

// subscribeEvents is Daemon's side of the event stream: the events of
// unit ("" for all, else a unit's full name) from now on; see
// eventBus.subscribe.
func (d *Daemon) subscribeEvents(unit string) (<-chan api.UnitEvent, func()) {
	return d.events.subscribe(unit)
}
