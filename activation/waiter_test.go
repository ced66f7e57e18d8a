package activation

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/units"
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

// death is one Events.Dead call.
type death struct {
	l     *Listener
	cause error
}

// watchChans watches ls and returns channels that receive what fired and
// what died.
func watchChans(t *testing.T, w *Waiter, ls []*Listener) (*Watch, <-chan *Listener, <-chan death) {
	t.Helper()
	fired, dead := make(chan *Listener, 4), make(chan death, 4)
	x, err := w.Watch(ls, Events{
		Fired: func(l *Listener) { fired <- l },
		Dead:  func(l *Listener, cause error) { dead <- death{l, cause} },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Close)
	return x, fired, dead
}

// firedChan watches and arms ls and returns a channel that receives what
// fired.
func firedChan(t *testing.T, w *Waiter, ls []*Listener) (<-chan *Listener, func()) {
	t.Helper()
	x, ch, _ := watchChans(t, w, ls)
	if err := x.Arm(); err != nil {
		t.Fatal(err)
	}
	return ch, x.Disarm
}

// wantMask checks the epoll mask of l's socket: hupOnly is the disarmed
// registration (empty mask, to which the kernel adds EPOLLHUP|EPOLLERR).
func wantMask(t *testing.T, l *Listener, armed bool) {
	t.Helper()
	mask, ok := epollMask(t, inode(t, l.File()))
	if !ok {
		t.Fatalf("%s is not in the epoll set", l.Addr())
	}
	hup := uint32(unix.EPOLLHUP | unix.EPOLLERR)
	if armed && mask&unix.EPOLLIN == 0 {
		t.Fatalf("%s armed with mask %#x, want EPOLLIN", l.Addr(), mask)
	}
	if !armed && mask&^uint32(unix.EPOLLONESHOT) != hup {
		t.Fatalf("%s disarmed with mask %#x, want only EPOLLHUP|EPOLLERR (%#x): a connection would wake sockd", l.Addr(), mask, hup)
	}
}

// The Waiter fires once for the first connection, without accepting it;
// the socket stays in the set with an empty mask, so that the
// connections a child accepts never wake sockd but its death does.
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
	wantMask(t, ls[1], true)
	dial(t, "tcp", ls[1].Addr())
	select {
	case l := <-ch:
		if l != ls[1] {
			t.Fatalf("fired for %s, want %s", l.Addr(), ls[1].Addr())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no fire for a connection")
	}
	wantMask(t, ls[0], false)
	wantMask(t, ls[1], false)
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
	x, ch, _ := watchChans(t, w, []*Listener{l})
	if err := x.Arm(); err != nil {
		t.Fatal(err)
	}
	x.Disarm()
	dial(t, "tcp", l.Addr())
	select {
	case <-ch:
		t.Fatal("a disarmed group fired")
	case <-time.After(notReadyWithin):
	}
	wantMask(t, l, false)
	if err := x.Arm(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("a connection queued before arming did not fire")
	}
}

// A socket a child shuts down (here: this process, on a dup of the fd, as
// a child does on the one it inherited) is reported dead once, with the
// cause, armed or not; the others of its group stay watched. TCP, Unix
// stream and UDP alike.
func TestWaiterDead(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		sock  *units.Socket
		armed bool
	}{
		{"tcp-busy", tcpSocket("127.0.0.1:0"), false},
		{"tcp-armed", tcpSocket("127.0.0.1:0"), true},
		{"unix", &units.Socket{Name: "u.socket", Listens: []units.Listen{{Network: "unix", Address: dir + "/u.sock"}}}, false},
		{"udp", &units.Socket{Name: "d.socket", Listens: []units.Listen{{Network: "udp", Address: "127.0.0.1:0"}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWaiter(t)
			l := mustOpen(t, tc.sock)[0]
			other := mustOpen(t, tcpSocket("127.0.0.1:0"))[0]
			x, fired, dead := watchChans(t, w, []*Listener{other, l})
			if tc.armed {
				if err := x.Arm(); err != nil {
					t.Fatal(err)
				}
			}
			withFD(t, l.File(), func(fd int) {
				dup, err := unix.Dup(fd)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(dup)
				if err := unix.Shutdown(dup, unix.SHUT_RDWR); err != nil && !errors.Is(err, unix.ENOTCONN) {
					t.Fatal(err)
				}
			})
			select {
			case d := <-dead:
				if d.l != l || !strings.Contains(d.cause.Error(), "EPOLLHUP") {
					t.Fatalf("dead %s (%v), want %s hung up", d.l.Addr(), d.cause, l.Addr())
				}
			case l := <-fired:
				t.Fatalf("fired for %s instead of dying", l.Addr())
			case <-time.After(5 * time.Second):
				t.Fatal("a shut-down socket was not reported")
			}
			if epollWatches(t, inode(t, l.File())) {
				t.Fatal("a dead socket is still in the set: every epoll_wait would report it")
			}
			wantMask(t, other, tc.armed)
			select {
			case d := <-dead:
				t.Fatalf("reported twice or wrongly: %s (%v)", d.l.Addr(), d.cause)
			case <-time.After(notReadyWithin):
			}
		})
	}
}

// Closing a watched listener takes it out of the set first: the set
// watches the open file description, which a child may keep open.
func TestWaiterCloseListener(t *testing.T) {
	w := newWaiter(t)
	l := mustOpen(t, tcpSocket("127.0.0.1:0"))[0]
	ino := inode(t, l.File())
	_, _, dead := watchChans(t, w, []*Listener{l})
	var keep int
	withFD(t, l.File(), func(fd int) {
		var err error
		if keep, err = unix.Dup(fd); err != nil { // a child's copy
			t.Fatal(err)
		}
	})
	defer unix.Close(keep)
	l.Close()
	if epollWatches(t, ino) {
		t.Fatal("a closed listener is still in the set")
	}
	unix.Shutdown(keep, unix.SHUT_RDWR)
	select {
	case d := <-dead:
		t.Fatalf("a closed listener was reported dead: %v", d.cause)
	case <-time.After(notReadyWithin):
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
	if _, err := w.Watch(nil, Events{}); err == nil {
		t.Fatal("Watch after Close worked")
	}
}
