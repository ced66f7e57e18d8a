package sockdiag

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listenFD makes a socket of family and typ bound to sa, listening with
// backlog (no listen when backlog < 0), and returns its fd and inode.
func listenFD(t *testing.T, family, typ int, sa unix.Sockaddr, backlog int) (int, uint64) {
	t.Helper()
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, sa); err != nil {
		t.Fatal(err)
	}
	if backlog >= 0 {
		if err := unix.Listen(fd, backlog); err != nil {
			t.Fatal(err)
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return fd, st.Ino
}

// dialN makes n connections to network/addr and keeps them open for the
// test's life.
func dialN(t *testing.T, network, addr string, n int) {
	t.Helper()
	for range n {
		c, err := net.DialTimeout(network, addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
}

// waitQueue polls Listeners until ino's queue is want, for at most 5 s:
// the kernel completes a TCP handshake on its own time.
func waitQueue(t *testing.T, ino uint64, want Queue) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, err := Listeners()
		if err != nil {
			t.Fatalf("Listeners: %v", err)
		}
		got, ok := m[ino]
		if ok && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("inode %d: queue %+v (found %v), want %+v", ino, got, ok, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func localAddr(t *testing.T, fd int) string {
	t.Helper()
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return net.JoinHostPort(net.IP(sa.Addr[:]).String(), strconv.Itoa(sa.Port))
	case *unix.SockaddrInet6:
		return net.JoinHostPort(net.IP(sa.Addr[:]).String(), strconv.Itoa(sa.Port))
	}
	t.Fatalf("address %T", sa)
	return ""
}

func TestTCPQueue(t *testing.T) {
	for _, tc := range []struct {
		name   string
		family int
		sa     unix.Sockaddr
	}{
		{"ipv4", unix.AF_INET, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}},
		{"ipv6", unix.AF_INET6, &unix.SockaddrInet6{Addr: [16]byte{15: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fd, ino := listenFD(t, tc.family, unix.SOCK_STREAM, tc.sa, 8)
			waitQueue(t, ino, Queue{Depth: 0, Backlog: 8})
			dialN(t, "tcp", localAddr(t, fd), 5)
			waitQueue(t, ino, Queue{Depth: 5, Backlog: 8})
			// Accepting two leaves three.
			for range 2 {
				nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
				if err != nil {
					t.Fatal(err)
				}
				unix.Close(nfd)
			}
			waitQueue(t, ino, Queue{Depth: 3, Backlog: 8})
		})
	}
}

func TestUnixQueue(t *testing.T) {
	for _, tc := range []struct {
		name    string
		typ     int
		network string
	}{
		{"stream", unix.SOCK_STREAM, "unix"},
		{"seqpacket", unix.SOCK_SEQPACKET, "unixpacket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s")
			_, ino := listenFD(t, unix.AF_UNIX, tc.typ, &unix.SockaddrUnix{Name: path}, 8)
			waitQueue(t, ino, Queue{Depth: 0, Backlog: 8})
			dialN(t, tc.network, path, 5)
			waitQueue(t, ino, Queue{Depth: 5, Backlog: 8})
		})
	}
}

// TestNotListening: sockets that do not listen are absent: a bound TCP
// socket, the client side of a connection, a Unix datagram socket and a
// bound Unix stream socket.
func TestNotListening(t *testing.T) {
	_, bound := listenFD(t, unix.AF_INET, unix.SOCK_STREAM, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}, -1)
	_, dgram := listenFD(t, unix.AF_UNIX, unix.SOCK_DGRAM, &unix.SockaddrUnix{Name: filepath.Join(t.TempDir(), "d")}, -1)
	_, ubound := listenFD(t, unix.AF_UNIX, unix.SOCK_STREAM, &unix.SockaddrUnix{Name: filepath.Join(t.TempDir(), "u")}, -1)
	lfd, lino := listenFD(t, unix.AF_INET, unix.SOCK_STREAM, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}, 8)
	c, err := net.Dial("tcp", localAddr(t, lfd))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var client uint64
	if err := rc.Control(func(fd uintptr) {
		var st unix.Stat_t
		if err := unix.Fstat(int(fd), &st); err == nil {
			client = st.Ino
		}
	}); err != nil || client == 0 {
		t.Fatalf("client inode: %v", err)
	}
	m, err := Listeners()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m[lino]; !ok {
		t.Fatalf("the listener (inode %d) is missing from %d entries", lino, len(m))
	}
	for name, ino := range map[string]uint64{"bound tcp": bound, "tcp client": client, "unix dgram": dgram, "bound unix stream": ubound} {
		if q, ok := m[ino]; ok {
			t.Errorf("%s (inode %d) is listed: %+v", name, ino, q)
		}
	}
}

func fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestNoFDLeak: Listeners closes its netlink socket.
func TestNoFDLeak(t *testing.T) {
	if _, err := Listeners(); err != nil {
		t.Fatal(err)
	}
	before := fdCount(t)
	for range 20 {
		if _, err := Listeners(); err != nil {
			t.Fatal(err)
		}
	}
	if after := fdCount(t); after != before {
		t.Errorf("open fds: %d before 20 calls, %d after", before, after)
	}
}

func TestAlign(t *testing.T) {
	for l, want := range map[int]int{0: 0, 1: 4, 4: 4, 5: 8, 72: 72, 73: 76} {
		if got := align(l); got != want {
			t.Errorf("align(%d) = %d, want %d", l, got, want)
		}
	}
}

// TestParseBounds: truncated or lying messages are ignored, never read
// past their end.
func TestParseBounds(t *testing.T) {
	out := map[uint64]Queue{}
	parseInet(make([]byte, sizeofInetDiagMsg-1), out)
	b := make([]byte, sizeofUnixDiagMsg+8)
	b[2] = tcpListen
	b[4] = 7
	// An attribute claiming more bytes than there are.
	b[sizeofUnixDiagMsg] = 0xff
	b[sizeofUnixDiagMsg+2] = unixDiagRqlen
	parseUnix(b, out)
	// An attribute shorter than its header.
	b[sizeofUnixDiagMsg] = 2
	parseUnix(b, out)
	// A RQLEN attribute too short for its payload.
	b[sizeofUnixDiagMsg] = 8
	parseUnix(b, out)
	if len(out) != 0 {
		t.Errorf("malformed messages gave %v", out)
	}
}

// BenchmarkListeners1000: one call with 1,000 TCP and 1,000 Unix
// listeners open (the dump covers the whole namespace).
func BenchmarkListeners1000(b *testing.B) {
	dir := b.TempDir()
	for i := range 1000 {
		for _, s := range []struct {
			family int
			sa     unix.Sockaddr
		}{
			{unix.AF_INET, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}},
			{unix.AF_UNIX, &unix.SockaddrUnix{Name: filepath.Join(dir, strconv.Itoa(i))}},
		} {
			fd, err := unix.Socket(s.family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { unix.Close(fd) })
			if err := unix.Bind(fd, s.sa); err != nil {
				b.Fatal(err)
			}
			if err := unix.Listen(fd, 128); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	for range b.N {
		m, err := Listeners()
		if err != nil || len(m) < 2000 {
			b.Fatalf("%d listeners, %v", len(m), err)
		}
	}
}
