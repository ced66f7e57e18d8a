package supervisord

// Parking: a unit's actor has a goroutine only while there is something
// to do. An idle unit (no process, no job, no timer: listening, dead,
// failed) keeps its state in its unit value, and its goroutine ends; the
// next request or event starts one again. 10,000 idle tenants then cost
// no goroutine stack (4 KB each), and a status of an idle unit is read
// in the caller's goroutine without waking it.
//
// The protocol, with everything under parking.mu:
//   - whoever sends to the actor (a request on reqs, an event on evs)
//     first calls enter, which counts the send as inbound and starts the
//     goroutine again if it was parked; the actor counts down each
//     request and event it takes (leave), and a sender that gives up
//     before its send was taken counts down itself (leave);
//   - the mailbox's router, which never blocks, pokes after it puts;
//   - the actor parks only with nothing inbound and no mail waiting.
// So nothing sent is ever left to a goroutine that is gone, and nothing
// blocks on one.

import (
	"sync"

	"github.com/sockd/sockd/api"
)

// parking is the part of a handle through which an actor that may park
// is woken. An acceptor (Accept=yes) never parks: its u is nil, and
// every method does nothing.
type parking struct {
	u       parker // the actor; nil: it never parks
	mu      sync.Mutex
	parked  bool
	inbound int // sends counted by enter, not yet taken or given up
	// onPark, if set, is called (under mu) each time the actor parks:
	// tests await it.
	onPark func()
}

// parker is the actor as parking sees it (a *unit).
type parker interface {
	loop()
	// statusNow is the unit's status, read by the caller: while the actor
	// is parked, no goroutine writes the unit.
	statusNow(full bool) api.UnitStatus
	mailWaiting() bool
}

// enter counts a send to the actor and wakes it if it is parked. Every
// enter is matched by one leave: the actor took what was sent, or the
// sender gave up.
func (p *parking) enter() {
	if p.u == nil {
		return
	}
	p.mu.Lock()
	p.inbound++
	p.wakeLocked()
	p.mu.Unlock()
}

// leave uncounts a send: taken by the actor, or given up by its sender.
func (p *parking) leave() {
	if p.u == nil {
		return
	}
	p.mu.Lock()
	p.inbound--
	p.mu.Unlock()
}

// poke wakes a parked actor; for senders that do not block (the
// mailbox), after what they left is visible to the actor.
func (p *parking) poke() {
	if p.u == nil {
		return
	}
	p.mu.Lock()
	p.wakeLocked()
	p.mu.Unlock()
}

func (p *parking) wakeLocked() {
	if p.parked {
		p.parked = false
		go p.u.loop()
	}
}

// park parks the actor, whose goroutine must then return at once,
// unless something was sent meanwhile. The actor calls it only when it
// has nothing to do.
func (p *parking) park() bool {
	if p.u == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inbound > 0 || p.u.mailWaiting() {
		return false
	}
	p.parked = true
	if p.onPark != nil {
		p.onPark()
	}
	return true
}

// parkedStatus returns the actor's status if it is parked.
func (p *parking) parkedStatus(full bool) (api.UnitStatus, bool) {
	if p.u == nil {
		return api.UnitStatus{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.parked {
		return api.UnitStatus{}, false
	}
	return p.u.statusNow(full), true
}

// isParked reports whether the actor is parked (tests).
func (p *parking) isParked() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.parked
}
