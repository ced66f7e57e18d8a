package activation

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/testutil"
	"github.com/sockd/sockd/units"
)

// softSocket is a socket unit with every Listen kind and every option of
// sockopts.go set.
func softSocket(t *testing.T) *units.Socket {
	dir := testutil.ShortDir(t)
	return &units.Socket{Name: "soft.socket", Listens: []units.Listen{
		{Kind: units.Stream, Network: "tcp", Address: "127.0.0.1:0"},
		{Kind: units.Stream, Network: "tcp", Address: "[::1]:0"},
		{Kind: units.Datagram, Network: "udp", Address: "127.0.0.1:0"},
		{Kind: units.Stream, Network: "unix", Address: filepath.Join(dir, "s.sock")},
		{Kind: units.FIFO, Network: "fifo", Address: filepath.Join(dir, "f.fifo")},
	},
		Mark: 42, Priority: 5, IPTOS: 0x10, IPTTL: 33,
		TCPCongestion: "reno", DeferAccept: 2500 * time.Millisecond, PipeSize: 1 << 17,
	}
}

// softOpts is what getsockopt reads of the options of sockopts.go on l:
// only those that apply to l's kind.
func softOpts(t *testing.T, l *Listener) map[string]string {
	t.Helper()
	got := map[string]string{}
	withFD(t, l.File(), func(fd int) {
		get := func(name string, level, opt int) {
			v, err := unix.GetsockoptInt(fd, level, opt)
			if err != nil {
				t.Fatalf("%s: getsockopt %s: %v", l.Addr(), name, err)
			}
			got[name] = strconv.Itoa(v)
		}
		if l.sockType == 0 {
			n, err := unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0)
			if err != nil {
				t.Fatalf("%s: F_GETPIPE_SZ: %v", l.Addr(), err)
			}
			got["F_GETPIPE_SZ"] = strconv.Itoa(n)
			return
		}
		get("SO_MARK", unix.SOL_SOCKET, unix.SO_MARK)
		get("SO_PRIORITY", unix.SOL_SOCKET, unix.SO_PRIORITY)
		if strings.HasPrefix(l.spec.Network, "unix") {
			return
		}
		get("IP_TOS", unix.IPPROTO_IP, unix.IP_TOS)
		get("IP_TTL", unix.IPPROTO_IP, unix.IP_TTL)
		if strings.HasPrefix(l.Addr(), "[") {
			get("IPV6_TCLASS", unix.IPPROTO_IPV6, unix.IPV6_TCLASS)
			get("IPV6_UNICAST_HOPS", unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS)
		}
		if l.sockType == unix.SOCK_STREAM {
			get("TCP_DEFER_ACCEPT", unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT)
			cc, err := unix.GetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION)
			if err != nil {
				t.Fatalf("%s: getsockopt TCP_CONGESTION: %v", l.Addr(), err)
			}
			got["TCP_CONGESTION"] = cc
		}
	})
	return got
}

// checkOpts compares what softOpts reads with want (the keys want has).
func checkOpts(t *testing.T, l *Listener, want map[string]string) {
	t.Helper()
	got := softOpts(t, l)
	for k, w := range want {
		if g, ok := got[k]; ok && g != w {
			t.Errorf("%s: %s = %s, want %s", l.Addr(), k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s read but not checked", l.Addr(), k)
		}
	}
}

// procInt reads a number from a /proc/sys file.
func procInt(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// connectWithData dials l and sends a byte: with TCP_DEFER_ACCEPT a
// connection is queued for accept only once data came.
func connectWithData(t *testing.T, l *Listener) {
	t.Helper()
	c := dial(t, "tcp", l.Addr())
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
}

// acceptWithin accepts one connection from l, waiting for it at most 5
// seconds (data sent on loopback is queued asynchronously), and returns
// the accepted fd, closed when the test ends.
func acceptWithin(t *testing.T, l *Listener) int {
	t.Helper()
	nfd := -1
	withFD(t, l.File(), func(fd int) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(pfd, 5000)
			if err == unix.EINTR {
				continue
			}
			if err != nil || n == 0 {
				t.Fatalf("no connection in the queue of %s within 5s (%v)", l.Addr(), err)
			}
			break
		}
		var err error
		if nfd, _, err = unix.Accept4(fd, unix.SOCK_CLOEXEC); err != nil {
			t.Fatalf("accept: %v", err)
		}
	})
	t.Cleanup(func() { unix.Close(nfd) })
	return nfd
}

// Every option is set at open on the sockets it applies to, none fails,
// and a TCP connection accepted from the listener inherits SO_MARK,
// IP_TTL and TCP_CONGESTION (Linux gives it no SO_PRIORITY of the
// listener: 0 on 6.18).
func TestSoftOptionsOpen(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("SO_MARK needs CAP_NET_ADMIN: run the tests as root")
	}
	s := softSocket(t)
	ls := mustOpen(t, s)
	ip := map[string]string{"SO_MARK": "42", "SO_PRIORITY": "5", "IP_TOS": "16", "IP_TTL": "33"}
	tcp := map[string]string{"TCP_DEFER_ACCEPT": "3", "TCP_CONGESTION": "reno"}
	v6 := map[string]string{"IPV6_TCLASS": "16", "IPV6_UNICAST_HOPS": "33"}
	want := []map[string]string{merge(ip, tcp), merge(ip, tcp, v6), ip,
		{"SO_MARK": "42", "SO_PRIORITY": "5"}, {"F_GETPIPE_SZ": "131072"}}
	for i, l := range ls {
		if w := l.Warnings(); len(w) != 0 {
			t.Errorf("%s: warnings %v", l.Addr(), w)
		}
		checkOpts(t, l, want[i])
	}

	connectWithData(t, ls[0])
	nfd := acceptWithin(t, ls[0])
	for _, c := range []struct {
		name       string
		level, opt int
		want       int
	}{
		{"SO_MARK", unix.SOL_SOCKET, unix.SO_MARK, 42},
		{"IP_TTL", unix.IPPROTO_IP, unix.IP_TTL, 33},
	} {
		if got, err := unix.GetsockoptInt(nfd, c.level, c.opt); err != nil || got != c.want {
			t.Errorf("accepted connection: %s = %d, %v; want %d", c.name, got, err, c.want)
		}
	}
	if cc, err := unix.GetsockoptString(nfd, unix.IPPROTO_TCP, unix.TCP_CONGESTION); err != nil || cc != "reno" {
		t.Errorf("accepted connection: TCP_CONGESTION = %q, %v; want reno", cc, err)
	}
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// Update changes every option on the same open sockets, a connection
// queued before it is accepted after it, and a second Update taking the
// options away gives the kernel's defaults back where InPlace allows it.
func TestSoftOptionsUpdate(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("SO_MARK needs CAP_NET_ADMIN: run the tests as root")
	}
	old := softSocket(t)
	ls := mustOpen(t, old)
	var inos []uint64
	for _, l := range ls {
		inos = append(inos, ino(t, l))
	}
	connectWithData(t, ls[0]) // queued across the updates
	connectWithData(t, ls[1])
	dial(t, "unix", ls[3].Addr())

	s := *old
	s.Mark, s.Priority, s.IPTOS, s.IPTTL = 7, 2, 0x08, 99
	s.TCPCongestion, s.DeferAccept, s.PipeSize = "cubic", time.Second, 1<<18
	if !InPlace(old, &s) {
		t.Fatal("InPlace = false")
	}
	for _, l := range ls {
		if err := l.Update(&s); err != nil {
			t.Fatalf("Update %s: %v", l.Addr(), err)
		}
		if w := l.Warnings(); len(w) != 0 {
			t.Errorf("%s: warnings %v", l.Addr(), w)
		}
	}
	ip := map[string]string{"SO_MARK": "7", "SO_PRIORITY": "2", "IP_TOS": "8", "IP_TTL": "99"}
	tcp := map[string]string{"TCP_DEFER_ACCEPT": "1", "TCP_CONGESTION": "cubic"}
	v6 := map[string]string{"IPV6_TCLASS": "8", "IPV6_UNICAST_HOPS": "99"}
	want := []map[string]string{merge(ip, tcp), merge(ip, tcp, v6), ip,
		{"SO_MARK": "7", "SO_PRIORITY": "2"}, {"F_GETPIPE_SZ": "262144"}}
	for i, l := range ls {
		checkOpts(t, l, want[i])
	}

	// Back to the defaults: Mark=, Priority=, IPTOS=, IPTTL= and
	// DeferAcceptSec= in place; TCPCongestion= and PipeSize= stay as
	// they were (InPlace sends those to a new socket; Update, told
	// anyway, leaves them).
	s2 := s
	s2.Mark, s2.Priority, s2.IPTOS, s2.IPTTL, s2.DeferAccept = 0, 0, 0, 0, 0
	if !InPlace(&s, &s2) {
		t.Fatal("InPlace = false for Mark, Priority, IPTOS, IPTTL, DeferAcceptSec going back to the default")
	}
	for _, l := range ls {
		if err := l.Update(&s2); err != nil {
			t.Fatalf("Update %s: %v", l.Addr(), err)
		}
		if w := l.Warnings(); len(w) != 0 {
			t.Errorf("%s: warnings %v", l.Addr(), w)
		}
	}
	ttl := procInt(t, "/proc/sys/net/ipv4/ip_default_ttl")
	ip = map[string]string{"SO_MARK": "0", "SO_PRIORITY": "0", "IP_TOS": "0", "IP_TTL": ttl}
	tcp = map[string]string{"TCP_DEFER_ACCEPT": "0", "TCP_CONGESTION": "cubic"}
	v6 = map[string]string{"IPV6_TCLASS": "0", "IPV6_UNICAST_HOPS": procInt(t, "/proc/sys/net/ipv6/conf/all/hop_limit")}
	want = []map[string]string{merge(ip, tcp), merge(ip, tcp, v6), ip,
		{"SO_MARK": "0", "SO_PRIORITY": "0"}, {"F_GETPIPE_SZ": "262144"}}
	for i, l := range ls {
		checkOpts(t, l, want[i])
	}

	for i, l := range ls {
		if got := ino(t, l); got != inos[i] {
			t.Errorf("%s: inode %d after the updates, %d before: a new socket", l.Addr(), got, inos[i])
		}
	}
	for _, l := range []*Listener{ls[0], ls[1], ls[3]} {
		acceptWithin(t, l) // the connection queued before the updates
		if got := sockopt(t, l, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); got != 1 {
			t.Errorf("%s: SO_ACCEPTCONN = %d after the updates", l.Addr(), got)
		}
	}
	connectWithData(t, ls[0])
	acceptWithin(t, ls[0])
}

// IP_TOS gives a socket a priority of its own (rt_tos2priority):
// without Priority= the socket keeps that one, at open and across an
// Update; with Priority= set, Priority= wins.
func TestPriorityAndIPTOS(t *testing.T) {
	s := tcpSocket("127.0.0.1:0")
	s.IPTOS = 0x10 // low-delay: TC_PRIO_INTERACTIVE, 6
	l := mustOpen(t, s)[0]
	if got := sockopt(t, l, unix.SOL_SOCKET, unix.SO_PRIORITY); got != 6 {
		t.Fatalf("IPTOS=low-delay: SO_PRIORITY = %d, want 6 (the kernel's TC_PRIO_INTERACTIVE)", got)
	}
	if err := l.Update(s); err != nil {
		t.Fatal(err)
	}
	if got := sockopt(t, l, unix.SOL_SOCKET, unix.SO_PRIORITY); got != 6 {
		t.Errorf("after an Update without change: SO_PRIORITY = %d, want 6", got)
	}
	p := *s
	p.Priority = 3
	if err := l.Update(&p); err != nil {
		t.Fatal(err)
	}
	if got := sockopt(t, l, unix.SOL_SOCKET, unix.SO_PRIORITY); got != 3 {
		t.Errorf("Priority=3 with IPTOS=low-delay: SO_PRIORITY = %d, want 3", got)
	}
	if InPlace(&p, s) {
		t.Error("InPlace = true for Priority= dropped while IPTOS= stays")
	}

	both := tcpSocket("127.0.0.1:0")
	both.IPTOS, both.Priority = 0x10, 1
	if got := sockopt(t, mustOpen(t, both)[0], unix.SOL_SOCKET, unix.SO_PRIORITY); got != 1 {
		t.Errorf("open with Priority=1 IPTOS=low-delay: SO_PRIORITY = %d, want 1", got)
	}
}

// A congestion control the kernel does not have is a warning, as in
// systemd: the socket opens and listens without it, and an Update asking
// for it again is no error either.
func TestSoftOptionWarning(t *testing.T) {
	s := tcpSocket("127.0.0.1:0")
	s.TCPCongestion = "nosuchcc"
	s.Mark = 9
	l := mustOpen(t, s)[0]
	w := l.Warnings()
	if len(w) != 1 || !strings.Contains(w[0].Error(), "TCPCongestion=nosuchcc: setsockopt TCP_CONGESTION") {
		t.Fatalf("warnings %v, want one for TCPCongestion=nosuchcc", w)
	}
	if got := sockopt(t, l, unix.SOL_SOCKET, unix.SO_MARK); os.Geteuid() == 0 && got != 9 {
		t.Errorf("SO_MARK = %d, want 9: the options after the refused one are set", got)
	}
	dial(t, "tcp", l.Addr())
	acceptQueued(t, l)

	u := *s
	u.TCPCongestion = "nosuchcc2"
	if err := l.Update(&u); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if w := l.Warnings(); len(w) != 1 || !strings.Contains(w[0].Error(), "nosuchcc2") {
		t.Errorf("warnings after the update %v, want one for nosuchcc2", w)
	}
	u.TCPCongestion = "reno"
	if err := l.Update(&u); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if w := l.Warnings(); len(w) != 0 {
		t.Errorf("warnings %v after an update that applied", w)
	}
}
