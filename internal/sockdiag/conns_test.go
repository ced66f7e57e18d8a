package sockdiag

import (
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitCount polls Connections until count of its answer is want, for
// at most 5 s: the kernel moves a socket to CLOSE_WAIT or away on its own
// time.
func waitCount(t *testing.T, what string, count func(*Conns) int, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := Connections()
		if err != nil {
			t.Fatalf("Connections: %v", err)
		}
		got := count(c)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d connections, want %d", what, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func accept(t *testing.T, fd int) int {
	t.Helper()
	nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(nfd) })
	return nfd
}

// TestTCPConnections: connections to a listener count whether queued,
// accepted, or accepted with the peer gone (CLOSE_WAIT), and stop
// counting when the process closes them; the clients' own sockets and
// other ports do not count.
func TestTCPConnections(t *testing.T) {
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
			addr := netip.MustParseAddrPort(localAddr(t, fd))
			other, _ := listenFD(t, tc.family, unix.SOCK_STREAM, tc.sa, 8)
			otherAddr := netip.MustParseAddrPort(localAddr(t, other))
			count := func(c *Conns) int { return c.TCP(addr) }
			waitCount(t, "idle", count, 0)

			c1, err := net.Dial("tcp", addr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer c1.Close()
			c2, err := net.Dial("tcp", addr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			waitCount(t, "two queued", count, 2)
			c, err := Connections()
			if err != nil {
				t.Fatal(err)
			}
			if q := c.Queues[ino]; q.Depth != 2 {
				t.Errorf("accept queue %+v, want depth 2", q)
			}
			if n := c.TCP(otherAddr); n != 0 {
				t.Errorf("another listener's port: %d connections", n)
			}

			a1 := accept(t, fd)
			a2 := accept(t, fd)
			waitCount(t, "two accepted", count, 2)
			// The peer closes: the accepted socket is in CLOSE_WAIT,
			// still the process's.
			c1.Close()
			waitCount(t, "one in close-wait", count, 2)
			unix.Close(a1)
			waitCount(t, "one closed", count, 1)
			unix.Close(a2)
			waitCount(t, "both closed", count, 0)
		})
	}
}

// TestTCPWildcard: a listener on 0.0.0.0 or :: counts the connections of
// every local address with its port; a dual-stack listener counts IPv4
// connections under their IPv4 address too.
func TestTCPWildcard(t *testing.T) {
	for _, tc := range []struct {
		name   string
		family int
		sa     unix.Sockaddr
		any    string
	}{
		{"ipv4", unix.AF_INET, &unix.SockaddrInet4{}, "0.0.0.0"},
		{"ipv6", unix.AF_INET6, &unix.SockaddrInet6{}, "::"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fd, _ := listenFD(t, tc.family, unix.SOCK_STREAM, tc.sa, 8)
			port := netip.MustParseAddrPort(localAddr(t, fd)).Port()
			wild := netip.AddrPortFrom(netip.MustParseAddr(tc.any), port)
			loop := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
			c, err := net.Dial("tcp", loop.String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			waitCount(t, "wildcard", func(c *Conns) int { return c.TCP(wild) }, 1)
			waitCount(t, "127.0.0.1", func(c *Conns) int { return c.TCP(loop) }, 1)
			waitCount(t, "127.0.0.2", func(c *Conns) int {
				return c.TCP(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), port))
			}, 0)
		})
	}
}

// TestUnixConnections: an accepted Unix socket carries its listener's
// name (path or abstract) and still counts after its
// peer closed; a client's socket has no name and a datagram socket of
// the same name never counts.
func TestUnixConnections(t *testing.T) {
	for _, tc := range []struct {
		name    string
		typ     int
		network string
		path    string
	}{
		{"stream", unix.SOCK_STREAM, "unix", ""},
		{"seqpacket", unix.SOCK_SEQPACKET, "unixpacket", ""},
		{"abstract", unix.SOCK_STREAM, "unix", "@sockdiag-test-" + strconv.Itoa(unix.Getpid())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = filepath.Join(t.TempDir(), "s")
			}
			fd, ino := listenFD(t, unix.AF_UNIX, tc.typ, &unix.SockaddrUnix{Name: path}, 8)
			count := func(c *Conns) int { return c.Unix(path) }
			waitCount(t, "idle", count, 0)
			c1, err := net.Dial(tc.network, path)
			if err != nil {
				t.Fatal(err)
			}
			defer c1.Close()
			c2, err := net.Dial(tc.network, path)
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			// Queued, they are embryos outside the kernel's table of
			// Unix sockets: only the accept queue shows them.
			waitCount(t, "two queued", func(c *Conns) int { return c.Queues[ino].Depth }, 2)
			a1 := accept(t, fd)
			a2 := accept(t, fd)
			waitCount(t, "two accepted", count, 2)
			c1.Close()
			waitCount(t, "peer gone, still held", count, 2)
			unix.Close(a1)
			waitCount(t, "one closed", count, 1)
			unix.Close(a2)
			waitCount(t, "both closed", count, 0)
		})
	}
}

func TestConnsNil(t *testing.T) {
	var c *Conns
	if c.TCP(netip.MustParseAddrPort("127.0.0.1:80")) != 0 || c.Unix("/x") != 0 {
		t.Error("a nil Conns counts connections")
	}
}

// TestParseConnsBounds: truncated messages and names are ignored.
func TestParseConnsBounds(t *testing.T) {
	c := &Conns{Queues: map[uint64]Queue{}, tcp: map[netip.AddrPort]int{}, tcpPort: map[uint16]int{}, unix: map[string]int{}}
	b := make([]byte, sizeofInetDiagMsg-1)
	b[0], b[1] = unix.AF_INET, tcpEstablished
	c.parseInet(b)
	u := make([]byte, sizeofUnixDiagMsg+4)
	u[1], u[2] = unix.SOCK_STREAM, tcpEstablished
	u[sizeofUnixDiagMsg] = 0xff // longer than the message
	c.parseUnix(u)
	u[sizeofUnixDiagMsg] = 4 // a name of no bytes
	c.parseUnix(u)
	if len(c.tcp)+len(c.tcpPort)+len(c.unix)+len(c.Queues) != 0 {
		t.Errorf("malformed messages gave %+v", c)
	}
}

// BenchmarkConnections1000: one check's dumps with 1,000 TCP and 1,000
// Unix listeners open, each with one accepted connection (the cost of an
// X-IdleTimeoutSec= check on a host of 1,000 busy units).
func BenchmarkConnections1000(b *testing.B) {
	dir := b.TempDir()
	for i := range 1000 {
		for _, s := range []struct {
			network string
			family  int
			sa      unix.Sockaddr
		}{
			{"tcp", unix.AF_INET, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}},
			{"unix", unix.AF_UNIX, &unix.SockaddrUnix{Name: filepath.Join(dir, strconv.Itoa(i))}},
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
			sa, _ := unix.Getsockname(fd)
			addr := ""
			switch sa := sa.(type) {
			case *unix.SockaddrInet4:
				addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.Port))
			case *unix.SockaddrUnix:
				addr = sa.Name
			}
			c, err := net.Dial(s.network, addr)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { c.Close() })
			nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { unix.Close(nfd) })
		}
	}
	b.ResetTimer()
	for range b.N {
		c, err := Connections()
		if err != nil || len(c.Queues) < 2000 || len(c.unix) < 1000 {
			b.Fatalf("%d listeners, %d unix names, %v", len(c.Queues), len(c.unix), err)
		}
	}
}
