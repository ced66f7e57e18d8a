package activation

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/testutil"
	"github.com/sockd/sockd/units"
)

// notReadyWithin is how long a test lets Wait run to show that it does
// not return on an idle socket: a bound on a negative, not a
// synchronisation.
const notReadyWithin = 50 * time.Millisecond

func TestWaitTCP(t *testing.T) {
	l := mustOpen(t, tcpSocket("127.0.0.1:0"))[0]
	if _, err := waitFor(t, []*Listener{l}, notReadyWithin); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on an idle socket = %v, want context.DeadlineExceeded", err)
	}
	dial(t, "tcp", l.Addr())
	got, err := waitFor(t, []*Listener{l}, 5*time.Second)
	if err != nil || got != l {
		t.Fatalf("Wait = %v, %v; want the listener", got, err)
	}
	// Nothing was accepted: the connection is still queued, and a
	// second Wait returns at once.
	if got, err := waitFor(t, []*Listener{l}, 5*time.Second); err != nil || got != l {
		t.Fatalf("second Wait = %v, %v", got, err)
	}
	acceptQueued(t, l)
	if nonBlocking(t, l.File()) {
		t.Error("Wait left the listener non-blocking")
	}
}

// TestWaitRepeated plays the supervisor's cycle several times: wait, the
// child accepts everything and exits, wait again; then a child that
// leaves a connection behind.
func TestWaitRepeated(t *testing.T) {
	l := mustOpen(t, tcpSocket("127.0.0.1:0"))[0]
	ls := []*Listener{l}
	for i := range 3 {
		c := dial(t, "tcp", l.Addr())
		if got, err := waitFor(t, ls, 5*time.Second); err != nil || got != l {
			t.Fatalf("round %d: Wait = %v, %v", i, got, err)
		}
		acceptQueued(t, l)
		c.Close()
		if _, err := waitFor(t, ls, notReadyWithin); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("round %d: Wait after the queue was drained = %v", i, err)
		}
	}
	// Two connections arrive while a child holds the socket; it accepts
	// one and exits. The one left must wake the next Wait at once,
	// although the netpoller saw its edge long ago.
	dial(t, "tcp", l.Addr())
	dial(t, "tcp", l.Addr())
	acceptQueued(t, l)
	if got, err := waitFor(t, ls, 5*time.Second); err != nil || got != l {
		t.Fatalf("Wait with a connection left behind = %v, %v", got, err)
	}
	acceptQueued(t, l)
}

func TestWaitCancel(t *testing.T) {
	ls := mustOpen(t, &units.Socket{Name: "two.socket", Listens: []units.Listen{
		{Network: "tcp", Address: "127.0.0.1:0"},
		{Network: "udp", Address: "127.0.0.1:0"},
	}})
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := Wait(ctx, ls)
		errc <- err
	}()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after cancel")
	}
	goroutinesBackTo(t, base)
	// The deadlines used to interrupt are cleared: Wait works again.
	dial(t, "tcp", ls[0].Addr())
	if got, err := waitFor(t, ls, 5*time.Second); err != nil || got != ls[0] {
		t.Fatalf("Wait after cancel = %v, %v", got, err)
	}
	acceptQueued(t, ls[0])
	goroutinesBackTo(t, base)
	// An ended context returns at once.
	if _, err := Wait(ctx, ls); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait on a cancelled context = %v", err)
	}
}

func TestWaitDatagram(t *testing.T) {
	dir := testutil.ShortDir(t)
	ls := mustOpen(t, &units.Socket{Name: "mixed.socket", Listens: []units.Listen{
		{Network: "tcp", Address: "127.0.0.1:0"},
		{Network: "udp", Address: "127.0.0.1:0"},
		{Network: "unixgram", Address: dir + "/g.sock"},
	}})
	for _, i := range []int{1, 2} {
		network := map[int]string{1: "udp", 2: "unixgram"}[i]
		c, err := net.Dial(network, ls[i].Addr())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		c.Close()
		got, err := waitFor(t, ls, 5*time.Second)
		if err != nil || got != ls[i] {
			t.Fatalf("%s: Wait = %v, %v; want listener %d", network, got, err, i)
		}
		// The datagram was not read.
		withFD(t, ls[i].File(), func(fd int) {
			buf := make([]byte, 16)
			n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
			if err != nil || string(buf[:n]) != "ping" {
				t.Errorf("%s: datagram %q, %v; want ping", network, buf[:n], err)
			}
		})
	}
}

func TestWaitClosed(t *testing.T) {
	l := mustOpen(t, tcpSocket("127.0.0.1:0"))[0]
	errc := make(chan error, 1)
	go func() {
		_, err := waitFor(t, []*Listener{l}, time.Minute)
		errc <- err
	}()
	l.Close()
	select {
	case err := <-errc:
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Wait on a closed listener = %v, want an error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after Close")
	}
}

func TestAccept(t *testing.T) {
	s := tcpSocket("127.0.0.1:0")
	s.Accept = true
	l := mustOpen(t, s)[0]
	c := dial(t, "tcp", l.Addr())
	f, peer, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if peer.String() != c.LocalAddr().String() {
		t.Errorf("peer = %v, want %v", peer, c.LocalAddr())
	}
	if nonBlocking(t, f) {
		t.Error("accepted connection is non-blocking")
	}
	if !closeOnExec(t, f) {
		t.Error("accepted connection is not close-on-exec")
	}
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(f, buf); err != nil || string(buf) != "hi" {
		t.Errorf("read %q, %v", buf, err)
	}

	// NonBlocking=yes applies to accepted connections too.
	s2 := tcpSocket("127.0.0.1:0")
	s2.Accept, s2.NonBlocking = true, true
	l2 := mustOpen(t, s2)[0]
	dial(t, "tcp", l2.Addr())
	f2, _, err := l2.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	if !nonBlocking(t, f2) {
		t.Error("NonBlocking=yes: accepted connection is blocking")
	}

	// Close ends an Accept under way.
	errc := make(chan error, 1)
	go func() {
		f, _, err := l.Accept()
		if f != nil {
			f.Close()
		}
		errc <- err
	}()
	l.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("Accept after Close succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept hangs after Close")
	}

	// Datagram sockets do not accept.
	u := mustOpen(t, &units.Socket{Name: "u.socket", Listens: []units.Listen{{Network: "udp", Address: "127.0.0.1:0"}}})[0]
	if _, _, err := u.Accept(); err == nil {
		t.Error("Accept on UDP succeeded")
	}
}

// goroutinesBackTo fails the test unless the number of goroutines comes
// back to base. Wait has received every worker's result before it
// returns, but a worker still has to run its last instruction after its
// send, and a goroutine's exit is no event one can wait for: so this
// yields and re-counts, within a bound, as goleak does.
func goroutinesBackTo(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before Wait", n, base)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}
