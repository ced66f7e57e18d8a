package activation

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Waiter waits for the first connection on many idle units' listeners
// with one epoll set and one goroutine for all of them, where Wait costs
// a goroutine per listener: an idle unit then costs no goroutine at all.
// Like Wait it never accepts or reads: readiness is level-triggered, so a
// connection already queued (left by an exited child) fires at once.
// A listener is in the set only while armed, so the connections a child
// accepts never wake sockd.
type Waiter struct {
	epfd int
	wake int // eventfd that ends the loop

	mu     sync.Mutex
	arms   map[uint64]*arm // by id
	next   uint64
	closed bool
	done   chan struct{}
}

// arm is one Arm call: a group of listeners of which the first readable
// one fires, once.
type arm struct {
	id    uint64
	ls    []*Listener
	fds   []int // the listeners' fds as registered
	fired func(*Listener)
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
	w := &Waiter{epfd: epfd, wake: wake, arms: map[uint64]*arm{}, next: 1, done: make(chan struct{})}
	go w.loop()
	return w, nil
}

// Arm calls fired (from the Waiter's goroutine: it must not block) with
// the first of ls that becomes readable, at most once. The returned
// disarm takes ls out of the set; after it returns, fired is not called
// (it may be running, or have run, already). Arm a listener in one
// group at a time.
func (w *Waiter) Arm(ls []*Listener, fired func(*Listener)) (disarm func(), err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, errors.New("arm: waiter closed")
	}
	if uint32(w.next) == 0 {
		w.next++ // id 0 (in the event's 32 bits) is the wake eventfd's
	}
	a := &arm{id: uint64(uint32(w.next)), ls: ls, fired: fired}
	w.next++
	for i, l := range ls {
		fd, err := l.rawFD()
		if err == nil {
			// Level-triggered and one-shot: readable now fires now, and
			// fires once until the group is disarmed.
			ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT}
			setEventData(&ev, a.id, i)
			err = os.NewSyscallError("epoll_ctl", unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev))
		}
		if err != nil {
			w.removeLocked(a)
			return nil, fmt.Errorf("arm %s %s: %w", l.spec.Network, l.addr, err)
		}
		a.fds = append(a.fds, fd)
	}
	w.arms[a.id] = a
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.arms[a.id] == a {
			w.removeLocked(a)
		}
	}, nil
}

// removeLocked takes a's fds out of the set and forgets a.
func (w *Waiter) removeLocked(a *arm) {
	for _, fd := range a.fds {
		unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	}
	a.fds = nil
	delete(w.arms, a.id)
}

// Close ends the goroutine and closes the set; armed groups never fire.
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
	for _, a := range w.arms {
		w.removeLocked(a)
	}
	unix.Close(w.wake)
	return unix.Close(w.epfd)
}

// loop is the Waiter's one goroutine: it blocks in epoll_wait (one
// thread, no CPU while idle) and fires groups.
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
			id, i := eventData(&ev)
			if id == 0 { // the wake eventfd
				return
			}
			w.mu.Lock()
			a := w.arms[id]
			if a != nil {
				w.removeLocked(a)
			}
			w.mu.Unlock()
			if a != nil && i < len(a.ls) {
				a.fired(a.ls[i])
			}
		}
	}
}

// setEventData packs a group id and a listener index into an event; the
// wake eventfd's event has zero data.
func setEventData(ev *unix.EpollEvent, id uint64, i int) {
	ev.Fd = int32(id)
	ev.Pad = int32(i)
}

func eventData(ev *unix.EpollEvent) (uint64, int) { return uint64(uint32(ev.Fd)), int(ev.Pad) }

// rawFD returns the fd number of the listener's file, for the epoll set;
// it stays valid until Close.
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
