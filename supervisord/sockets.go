package supervisord

// The unit's listening sockets while it lives. They stay in the daemon's
// Waiter for the unit's whole life: armed (EPOLLIN) while the unit is
// idle, for its first connection; with an empty mask while a child
// serves, so that only their death wakes sockd. A socket that dies (a
// process holding it called shutdown(2): it refuses every connection
// from then on) is replaced by a fresh one, and the service moves onto
// it with an overlapping restart: socket-replaced. Past its start limit
// the unit closes its sockets, so that clients are refused instead of
// hanging; a start (or reset-failed) binds them again.

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sockd/sockd/activation"
	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/units"
)

// watchSockets puts the unit's sockets in the daemon's Waiter.
func (u *unit) watchSockets() {
	if u.waiter == nil || len(u.ls) == 0 || u.socksClosed {
		return
	}
	x, err := u.waiter.Watch(u.ls, activation.Events{
		Fired: func(l *activation.Listener) {
			// From the Waiter's goroutine, which must not block.
			tok := token(u.armTok.Load())
			go u.send(event{kind: evTrigger, l: l, tok: tok})
		},
		Dead: func(l *activation.Listener, cause error) {
			go u.send(event{kind: evSocketDead, l: l, err: cause})
		},
	})
	if err != nil {
		// armWaiter fails the unit (resources) when it has no watch.
		u.log.Error().Err(err).Msg("watching the sockets")
		return
	}
	u.watch = x
}

// unwatchSockets takes the unit's sockets out of the Waiter.
func (u *unit) unwatchSockets() {
	u.disarmWaiter()
	if u.watch != nil {
		u.watch.Close()
		u.watch = nil
	}
}

// armWaiter arms the unit's sockets: the first connection on any of
// them sends evTrigger. An idle unit costs no goroutine; the Waiter's
// one goroutine waits for all units.
func (u *unit) armWaiter() {
	tok := u.nextToken()
	u.armTok.Store(uint64(tok))
	u.waitTok, u.armed = tok, true
	err := errors.New("the sockets are not watched")
	if u.watch != nil {
		err = u.watch.Arm()
	}
	if err != nil {
		go u.send(event{kind: evTrigger, err: err, tok: tok})
	}
}

func (u *unit) disarmWaiter() {
	if u.armed && u.watch != nil {
		u.watch.Disarm()
	}
	u.armed, u.waitTok = false, 0
}

// setListeners makes ls the unit's sockets (the actor alone writes them;
// a reload reads them under the handle's lock).
func (u *unit) setListeners(ls []*activation.Listener) {
	u.handle.mu.Lock()
	u.ls = ls
	u.handle.mu.Unlock()
}

// socketDef returns the socket unit name as the last reload saw it (a
// reload may have changed options in place since the unit was added).
func (u *unit) socketDef(name string) *units.Socket {
	for _, s := range u.socketDefs() {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// lineOf returns the index of the unit's i-th socket among the Listen
// lines of its socket unit.
func (u *unit) lineOf(i int) int {
	n := 0
	for k := 0; k < i; k++ {
		if u.lsSock[k].Name == u.lsSock[i].Name {
			n++
		}
	}
	return n
}

// socketDead replaces a socket the kernel reports dead: a fresh one is
// bound with the unit's options, the keepers get it under the same name,
// and a service that serves moves onto it with an overlapping restart.
// If it cannot be bound, the unit fails (resources) and its processes
// stop: with a dead socket it cannot serve.
func (u *unit) socketDead(e event) {
	i := slices.Index(u.ls, e.l)
	if i < 0 || u.socksClosed {
		return // replaced or closed already
	}
	name := u.lsSock[i].Name
	cause := "dead"
	if e.err != nil {
		cause = e.err.Error()
	}
	u.log.Error().Str("event", "socket-replaced").Str("socket", name).Str("listen", e.l.Addr()).Str("cause", cause).
		Msg("socket-replaced: the socket died; binding a fresh one")
	// The dead socket serves no one: closing sockd's copy first removes
	// its socket file, which the fresh one binds. Processes holding it
	// keep their copies until they go.
	e.l.Close()
	s := u.socketDef(name)
	var nl *activation.Listener
	err := fmt.Errorf("socket unit %s is gone", name)
	if s != nil {
		nl, err = activation.OpenOne(s, u.lineOf(i))
	}
	if err != nil {
		u.socketLost(i, e.l.Addr(), cause, err)
		return
	}
	warnSocketOptions(u.log, u.name, nl)
	u.keep.put(u.lsNames[i], nl.File())
	ls := slices.Clone(u.ls)
	ls[i] = nl
	u.unwatchSockets()
	u.setListeners(ls)
	u.watchSockets()
	now := time.Now()
	st := slices.Clone(u.sockSt)
	st[i].Listen, st[i].Replaced, st[i].ReplacedAt, st[i].ReplacedCause = nl.Addr(), st[i].Replaced+1, &now, cause
	u.sockSt = st
	u.saveState()
	u.publish(api.UnitEvent{Kind: api.EventSocketReplaced, Socket: name, Listen: nl.Addr(), Message: cause})
	if u.serving() {
		// The processes hold the dead socket: a new generation gets the
		// fresh one, the old drains once it is ready.
		u.log.Info().Str("event", "socket-replaced").Str("socket", name).Msg("moving the service onto the fresh socket: overlapping restart")
		u.enqueue(&request{kind: reqRestart, reply: make(chan reply, 1)})
	}
}

// serving reports whether a process of the unit may hold its sockets
// and serve: from the spawn of the processes until they are told to stop.
func (u *unit) serving() bool {
	switch u.phase {
	case phaseStarting, phaseStartPost, phaseRunning, phaseReloading, phaseRestarting, phaseStopping:
		return true
	}
	return false
}

// socketLost fails the unit whose dead socket could not be bound again:
// its sockets close, its processes stop, and it stays failed until a
// start binds them (or fails to, saying why).
func (u *unit) socketLost(i int, addr, cause string, err error) {
	msg := fmt.Sprintf("socket %s died (%s) and could not be bound again: %v", addr, cause, err)
	u.log.Error().Str("event", "socket-replaced").Err(err).Msg("socket-replaced failed: the unit fails")
	u.closeSockets()
	u.result, u.lastExit = "resources", msg
	if u.noProcess() && u.helper == nil {
		u.enter(phaseFailed)
		return
	}
	u.enqueue(&request{kind: reqStop, reply: make(chan reply, 1)})
}

// closeSockets closes the unit's sockets, so that connections are
// refused (ECONNREFUSED) until reopenSockets: the one case besides
// removal where sockd closes a unit's socket. Processes still holding
// a copy keep it open until they exit. The keepers forget them too: a
// sockd started after a crash binds them again.
func (u *unit) closeSockets() {
	if u.socksClosed || len(u.ls) == 0 {
		return
	}
	u.unwatchSockets()
	activation.CloseAll(u.ls) // each takes itself out of the Waiter first
	u.keep.remove(u.lsNames...)
	u.socksClosed = true
	st := slices.Clone(u.sockSt)
	for k := range st {
		st[k].Closed = true
	}
	u.sockSt = st
	u.log.Warn().Int("sockets", len(u.ls)).Msg("sockets closed: connections are refused until `sockctl start` or `sockctl reset-failed`")
}

// reopenSockets binds the sockets closeSockets closed, all or nothing.
func (u *unit) reopenSockets() error {
	if !u.socksClosed {
		return nil
	}
	var ls []*activation.Listener
	for i := 0; i < len(u.lsSock); {
		name := u.lsSock[i].Name
		s := u.socketDef(name)
		if s == nil {
			activation.CloseAll(ls)
			return fmt.Errorf("socket unit %s is gone", name)
		}
		opened, err := activation.Open(s)
		if err == nil && i+len(opened) > len(u.lsSock) {
			activation.CloseAll(opened)
			err = fmt.Errorf("%s has more Listen lines than when it was loaded: reload sockd", name)
		}
		if err != nil {
			activation.CloseAll(ls)
			return err
		}
		warnSocketOptions(u.log, u.name, opened...)
		ls = append(ls, opened...)
		i += len(opened)
	}
	if len(ls) != len(u.lsSock) {
		activation.CloseAll(ls)
		return errors.New("the socket units changed since they were loaded: reload sockd")
	}
	for i, l := range ls {
		u.keep.put(u.lsNames[i], l.File())
	}
	u.setListeners(ls)
	u.socksClosed = false
	st := slices.Clone(u.sockSt)
	for k := range st {
		st[k].Closed, st[k].Listen = false, ls[k].Addr()
	}
	u.sockSt = st
	u.watchSockets()
	u.log.Info().Int("sockets", len(ls)).Msg("sockets bound again")
	for i, l := range ls {
		u.publish(api.UnitEvent{Kind: api.EventBound, Socket: u.lsSock[i].Name, Listen: l.Addr()})
	}
	return nil
}

// errReopen says that a socket change cannot be handed over with the
// unit running: the reload stops the unit and opens its sockets anew.
var errReopen = errors.New("the change needs the old socket closed first")

// listenKey identifies an address across a reload.
func listenKey(l units.Listen) string { return l.Network + "\x00" + l.Address }

// oneLine is s with only its k-th Listen line, to compare one socket's
// options across a reload.
func oneLine(s *units.Socket, k int) *units.Socket {
	c := *s
	c.Listens = []units.Listen{s.Listens[k]}
	return &c
}

// changeSockets makes socks the unit's socket units while it runs. An
// address kept keeps its open socket, with the options the kernel
// changes in place (activation.InPlace) applied to it: not one
// connection to it is refused. A new address is bound next to the
// others. A service that serves moves onto the new set with an
// overlapping restart; the sockets of the addresses gone are closed
// once no process started before the change runs. It returns errReopen
// for a change to a kept address that needs a new socket at that same
// address (which the kernel does not let two sockets share), and the
// bind error of a new address, the unit being left as it was.
func (u *unit) changeSockets(socks []*units.Socket) error {
	if u.socksClosed || u.hold != nil {
		return errReopen
	}
	old := map[string]int{}
	for i, l := range u.ls {
		old[listenKey(l.Spec())] = i
	}
	var (
		ls      []*activation.Listener
		lsSock  []*units.Socket
		names   []string
		st      []api.SocketStatus
		opened  []*activation.Listener
		updates []func() error
		kept    = map[int]bool{}
	)
	fail := func(err error) error {
		activation.CloseAll(opened)
		return err
	}
	for _, s := range socks {
		if s.Accept {
			return fail(errReopen)
		}
		for k, spec := range s.Listens {
			var l *activation.Listener
			var sst api.SocketStatus
			if i, ok := old[listenKey(spec)]; ok && !kept[i] {
				oldLine := u.lineOf(i)
				prev := u.socketDef(u.lsSock[i].Name)
				if prev == nil || !activation.InPlace(oneLine(prev, oldLine), oneLine(s, k)) {
					return fail(errReopen)
				}
				l, sst, kept[i] = u.ls[i], u.sockSt[i], true
				sst.Unit = s.Name
				s := s
				updates = append(updates, func() error { return l.Update(s) })
			} else {
				var err error
				if l, err = activation.OpenOne(s, k); err != nil {
					return fail(err)
				}
				opened = append(opened, l)
				sst = api.SocketStatus{Unit: s.Name, Type: l.Spec().Kind.String(), Listen: l.Addr(), FDName: l.Name()}
			}
			ls, lsSock, st = append(ls, l), append(lsSock, s), append(st, sst)
			names = append(names, listenName(s.Name, k))
		}
	}
	for _, up := range updates {
		if err := up(); err != nil {
			return fail(fmt.Errorf("%w: %v", errReopen, err))
		}
	}
	var retired []*activation.Listener
	for i, l := range u.ls {
		if !kept[i] {
			retired = append(retired, l)
		}
	}
	for i, l := range ls {
		u.keep.put(names[i], l.File())
	}
	var gone []string
	for _, n := range u.lsNames {
		if !slices.Contains(names, n) {
			gone = append(gone, n)
		}
	}
	u.keep.remove(gone...)
	u.unwatchSockets()
	u.handle.mu.Lock()
	u.ls, u.lsNames, u.socks = ls, names, socks
	u.handle.mu.Unlock()
	u.lsSock, u.sockSt = lsSock, st
	u.watchSockets()
	u.log.Info().Int("kept", len(kept)).Int("new", len(opened)).Int("retired", len(retired)).Msg("sockets changed in place")
	for i, l := range ls {
		if slices.Contains(opened, l) {
			u.publish(api.UnitEvent{Kind: api.EventBound, Socket: lsSock[i].Name, Listen: l.Addr()})
		}
	}
	if len(opened) == 0 && len(retired) == 0 {
		return nil // the same sockets: options changed in place only
	}
	u.retire(retired)
	if u.serving() {
		u.log.Info().Msg("moving the service onto the new sockets: overlapping restart")
		u.enqueue(&request{kind: reqRestart, reply: make(chan reply, 1)})
	}
	return nil
}

// retire closes sockets no longer the unit's once no process started
// before now runs (one may still be serving a connection it queued).
func (u *unit) retire(ls []*activation.Listener) {
	if len(ls) == 0 {
		return
	}
	u.retired = append(u.retired, ls...)
	u.retiredGen = u.gen
	u.closeRetired()
}

// closeRetired closes the retired sockets when no process of their
// generations runs; settle calls it after every event.
func (u *unit) closeRetired() {
	if len(u.retired) == 0 {
		return
	}
	for _, p := range u.processes() {
		if p != nil && p.gen <= u.retiredGen {
			return
		}
	}
	u.log.Info().Int("sockets", len(u.retired)).Msg("sockets of the addresses gone closed: no process that held them runs")
	activation.CloseAll(u.retired)
	u.retired = nil
}
