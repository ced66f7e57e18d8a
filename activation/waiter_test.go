package activation

import (
	"runtime"
	"testing"
	"time"
)

func newWaiter(t *testing.T) *Waiter {
	t.Helper()
	w, err := NewWaiter()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// firedChan arms ls and returns a channel that receives what fired.
func firedChan(t *testing.T, w *Waiter, ls []*Listener) (<-chan *Listener, func()) {
	t.Helper()
	ch := make(chan *Listener, 2)
	disarm, err := w.Arm(ls, func(l *Listener) { ch <- l })
	if err != nil {
		t.Fatal(err)
	}
	return ch, disarm
}

// The Waiter fires once for the first connection, without accepting it,
// and takes the socket out of its epoll set when it fires.
func TestWaiterFires(t *testing.T) {
	w := newWaiter(t)
	ls := mustOpen(t, tcpSocket("127.0.0.1:0"))
	ls = append(ls, mustOpen(t, tcpSocket("127.0.0.1:0"))...)
	ch, _ := firedChan(t, w, ls)
	select {
	case l := <-ch:
		t.Fatalf("fired for %s with no connection", l.Addr())
	case <-time.After(notReadyWithin):
	}
	ino := inode(t, ls[1].File())
	if !epollWatches(t, ino) {
		t.Fatal("an armed listener is not in the epoll set")
	}
	dial(t, "tcp", ls[1].Addr())
	select {
	case l := <-ch:
		if l != ls[1] {
			t.Fatalf("fired for %s, want %s", l.Addr(), ls[1].Addr())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no fire for a connection")
	}
	if epollWatches(t, ino) || epollWatches(t, inode(t, ls[0].File())) {
		t.Fatal("listeners still in the epoll set after the group fired")
	}
	dial(t, "tcp", ls[0].Addr())
	select {
	case l := <-ch:
		t.Fatalf("fired twice (%s)", l.Addr())
	case <-time.After(notReadyWithin):
	}
	acceptQueued(t, ls[1]) // nothing was accepted: the connection waits
	if nonBlocking(t, ls[1].File()) {
		t.Fatal("arming changed the socket's mode")
	}
}

// A connection queued before arming (left by a child that exited) fires
// at once; a disarmed group never fires.
func TestWaiterQueuedAndDisarm(t *testing.T) {
	w := newWaiter(t)
	l := mustOpen(t, tcpSocket("127.0.0.1:0"))[0]
	ch, disarm := firedChan(t, w, []*Listener{l})
	disarm()
	dial(t, "tcp", l.Addr())
	select {
	case <-ch:
		t.Fatal("a disarmed group fired")
	case <-time.After(notReadyWithin):
	}
	if epollWatches(t, inode(t, l.File())) {
		t.Fatal("disarmed listener still in the epoll set")
	}
	ch, _ = firedChan(t, w, []*Listener{l})
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("a connection queued before arming did not fire")
	}
}

// One goroutine waits for any number of idle units.
func TestWaiterOneGoroutine(t *testing.T) {
	w := newWaiter(t)
	before := runtime.NumGoroutine()
	for range 50 {
		firedChan(t, w, mustOpen(t, tcpSocket("127.0.0.1:0")))
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Fatalf("goroutines %d → %d for 50 armed listeners", before, after)
	}
	w.Close()
	if _, err := w.Arm(nil, func(*Listener) {}); err == nil {
		t.Fatal("Arm after Close worked")
	}
}
