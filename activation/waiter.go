package activation

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Waiter watches the listeners of many units with one epoll set and one
// goroutine for all of them, where Wait costs a goroutine per listener:
// an idle unit then costs no goroutine at all. Like Wait it never accepts
// or reads: readiness is level-triggered, so a connection already queued
// (left by an exited child) fires at once.
//
// A listener stays in the set for as long as its unit watches it, busy or
// idle, so that a dead socket is noticed whoever serves it: a child that
// calls shutdown(2) on the listening socket it inherited leaves it
// refusing connections for good, and the kernel reports that as
// EPOLLHUP (or EPOLLERR) whatever the event mask asks for. While a child
// serves, the mask is empty: the connections the child accepts never
// wake sockd (EPOLLIN is not asked for), only the socket's death does.
// Armed, the mask is EPOLLIN, one-shot: the first connection fires.
type Waiter struct {
	epfd int
	wake int // eventfd that ends the loop

	mu      sync.Mutex
	watches map[uint64]*Watch // by id
	next    uint64
	closed  bool
	done    chan struct{}
}

// Watch is a group of listeners in a Waiter: the listeners of one unit.
type Watch struct {
	w     *Waiter
	id    uint64
	ls    []*Listener
	fds   []int  // the listeners' fds as registered; -1 once out of the set
	armed bool   // the mask is EPOLLIN|EPOLLONESHOT
	h     Events // what to call
}

// Events are the calls a Watch makes, from the Waiter's goroutine: they
// must not block.
type Events struct {
	// Fired is called with the first of the listeners that becomes
	// readable while the group is armed, once per Arm.
	Fired func(*Listener)
	// Dead is called once for a listener the kernel reports hung up
	// (EPOLLHUP) or in error (EPOLLERR), with the cause; the listener is
	// out of the set from then on. A dead listener refuses connections
	// for good: it must be replaced.
	Dead func(l *Listener, cause error)
}

// NewWaiter makes the epoll set and starts its goroutine.
func NewWaiter() (*Waiter, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN}); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	w := &Waiter{epfd: epfd, wake: wake, watches: map[uint64]*Watch{}, next: 1, done: make(chan struct{})}
	go w.loop()
	return w, nil
}

// Watch puts ls in the set, disarmed (an empty mask: only their death is
// reported). A listener is in one Watch at a time. Close takes the group
// out of the set; closing a listener takes it out too.
func (w *Waiter) Watch(ls []*Listener, h Events) (*Watch, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, errors.New("watch: waiter closed")
	}
	if uint32(w.next) == 0 {
		w.next++ // id 0 (in the event's 32 bits) is the wake eventfd's
	}
	x := &Watch{w: w, id: uint64(uint32(w.next)), ls: ls, h: h}
	w.next++
	for i, l := range ls {
		fd, err := l.watchFD(func() { x.forget(l) })
		if err == nil {
			err = os.NewSyscallError("epoll_ctl", unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, x.event(i, false)))
			if err != nil {
				l.unwatched()
			}
		}
		if err != nil {
			x.removeLocked()
			return nil, fmt.Errorf("watch %s %s: %w", l.spec.Network, l.addr, err)
		}
		x.fds = append(x.fds, fd)
	}
	w.watches[x.id] = x
	return x, nil
}

// event is the registration of the i-th listener: armed, EPOLLIN and
// one-shot (level-triggered: readable now fires now); disarmed, an empty
// mask, to which the kernel adds EPOLLHUP and EPOLLERR.
func (x *Watch) event(i int, armed bool) *unix.EpollEvent {
	ev := &unix.EpollEvent{}
	if armed {
		ev.Events = unix.EPOLLIN | unix.EPOLLONESHOT
	}
	ev.Fd = int32(x.id)
	ev.Pad = int32(i)
	return ev
}

// Arm asks for the first connection: Fired is called once with the
// first listener that becomes readable, unless Disarm comes first.
func (x *Watch) Arm() error {
	x.w.mu.Lock()
	defer x.w.mu.Unlock()
	if x.w.watches[x.id] != x {
		return errors.New("arm: not watched")
	}
	return x.setLocked(true)
}

// Disarm empties the mask again; after it returns Fired is not called
// (it may be running, or have run, already). Dead still is.
func (x *Watch) Disarm() {
	x.w.mu.Lock()
	defer x.w.mu.Unlock()
	if x.w.watches[x.id] == x && x.armed {
		x.setLocked(false)
	}
}

func (x *Watch) setLocked(armed bool) error {
	x.armed = armed
	var errs []error
	for i, fd := range x.fds {
		if fd < 0 {
			continue
		}
		if err := unix.EpollCtl(x.w.epfd, unix.EPOLL_CTL_MOD, fd, x.event(i, armed)); err != nil {
			errs = append(errs, fmt.Errorf("epoll_ctl %s %s: %w", x.ls[i].spec.Network, x.ls[i].addr, err))
		}
	}
	return errors.Join(errs...)
}

// Close takes the group out of the set; no call is made after it
// returns (one may be running).
func (x *Watch) Close() {
	x.w.mu.Lock()
	defer x.w.mu.Unlock()
	if x.w.watches[x.id] == x {
		x.removeLocked()
	}
}

// forget takes l out of the set before its fd closes: an epoll set
// watches the open file description, which children keep open, so a
// registration left behind would report for an fd number sockd reuses.
func (x *Watch) forget(l *Listener) {
	x.w.mu.Lock()
	defer x.w.mu.Unlock()
	for i, y := range x.ls {
		if y == l && i < len(x.fds) && x.fds[i] >= 0 {
			unix.EpollCtl(x.w.epfd, unix.EPOLL_CTL_DEL, x.fds[i], nil)
			x.fds[i] = -1
		}
	}
}

// removeLocked takes x's fds out of the set and forgets x.
func (x *Watch) removeLocked() {
	for i, fd := range x.fds {
		if fd >= 0 {
			unix.EpollCtl(x.w.epfd, unix.EPOLL_CTL_DEL, fd, nil)
			x.ls[i].unwatched()
		}
	}
	x.fds = nil
	delete(x.w.watches, x.id)
}

// Close ends the goroutine and closes the set; no group fires after it.
func (w *Waiter) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	var one = [8]byte{1}
	unix.Write(w.wake, one[:])
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, x := range w.watches {
		x.removeLocked()
	}
	unix.Close(w.wake)
	return unix.Close(w.epfd)
}

// loop is the Waiter's one goroutine: it blocks in epoll_wait (one
// thread, no CPU while idle), fires armed groups and reports dead
// listeners.
func (w *Waiter) loop() {
	defer close(w.done)
	evs := make([]unix.EpollEvent, 64)
	for {
		n, err := unix.EpollWait(w.epfd, evs, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for _, ev := range evs[:n] {
			id, i := uint64(uint32(ev.Fd)), int(ev.Pad)
			if id == 0 { // the wake eventfd
				return
			}
			w.handle(id, i, ev.Events)
		}
	}
}

// handle is one event of the i-th listener of group id.
func (w *Waiter) handle(id uint64, i int, events uint32) {
	w.mu.Lock()
	x := w.watches[id]
	if x == nil || i >= len(x.fds) || x.fds[i] < 0 {
		w.mu.Unlock()
		return // taken out meanwhile
	}
	l := x.ls[i]
	if events&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		// Level-triggered and unmaskable: out of the set, or it would
		// be reported on every epoll_wait.
		unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, x.fds[i], nil)
		x.fds[i] = -1
		l.unwatched()
		w.mu.Unlock()
		if x.h.Dead != nil {
			x.h.Dead(l, deathCause(l, events))
		}
		return
	}
	if !x.armed {
		w.mu.Unlock()
		return // a one-shot event that raced with Disarm
	}
	x.setLocked(false) // the group fires once per Arm
	w.mu.Unlock()
	if x.h.Fired != nil {
		x.h.Fired(l)
	}
}

// deathCause says why the kernel reports l dead: the socket's pending
// error (SO_ERROR) for EPOLLERR, else that it was shut down.
func deathCause(l *Listener, events uint32) error {
	if events&unix.EPOLLERR != 0 {
		if fd, err := l.rawFD(); err == nil {
			if e, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && e != 0 {
				return fmt.Errorf("socket error (EPOLLERR): %w", unix.Errno(e))
			}
		}
		return errors.New("socket error (EPOLLERR)")
	}
	return errors.New("hung up (EPOLLHUP): shut down by a process holding it, it accepts no connection")
}

// watchFD returns the fd number of the listener's file for the epoll
// set, and records forget, which Close calls before the fd closes.
func (l *Listener) watchFD(forget func()) (int, error) {
	fd, err := l.rawFD()
	if err != nil {
		return -1, err
	}
	l.pollMu.Lock()
	defer l.pollMu.Unlock()
	if l.closed {
		return -1, os.ErrClosed
	}
	if l.forget != nil {
		return -1, errors.New("watched already")
	}
	l.forget = forget
	return fd, nil
}

// unwatched clears what watchFD recorded (the caller has taken the fd
// out of the set).
func (l *Listener) unwatched() {
	l.pollMu.Lock()
	l.forget = nil
	l.pollMu.Unlock()
}

// rawFD returns the fd number of the listener's file; it stays valid
// until Close.
func (l *Listener) rawFD() (int, error) {
	l.pollMu.Lock()
	defer l.pollMu.Unlock()
	if l.closed {
		return -1, os.ErrClosed
	}
	rc, err := l.file.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return -1, err
	}
	return fd, nil
}
