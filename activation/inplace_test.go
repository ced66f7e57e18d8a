package activation

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/testutil"
	"github.com/sockd/sockd/units"
)

func TestInPlace(t *testing.T) {
	base := func() *units.Socket {
		s := tcpSocket("127.0.0.1:8080")
		s.File = "/etc/sockd/web.socket"
		s.Listens[0].Line = 2
		s.Backlog = 16
		s.ReceiveBuffer = 1 << 16
		s.KeepAliveTime = 30 * time.Second
		s.Mark, s.Priority, s.IPTOS, s.IPTTL = 5, 4, 0x10, 40
		s.TCPCongestion, s.DeferAccept, s.PipeSize = "reno", 5*time.Second, 1<<17
		return s
	}
	for _, c := range []struct {
		name   string
		change func(s *units.Socket)
		want   bool
	}{
		{"nothing", func(s *units.Socket) {}, true},
		{"line and file", func(s *units.Socket) {
			s.Listens[0].Line, s.File, s.DropIns = 5, "/x/web.socket", []string{"/x/a.conf"}
		}, true},
		{"Backlog", func(s *units.Socket) { s.Backlog = 1024 }, true},
		{"Backlog default", func(s *units.Socket) { s.Backlog = 0 }, true},
		{"buffers", func(s *units.Socket) { s.ReceiveBuffer, s.SendBuffer = 1<<20, 1<<19 }, true},
		{"TCP options", func(s *units.Socket) {
			s.NoDelay, s.KeepAlive, s.KeepAliveTime, s.KeepAliveInterval, s.KeepAliveProbes = true, true, time.Minute, 5*time.Second, 3
		}, true},
		{"Broadcast, PassCredentials", func(s *units.Socket) { s.Broadcast, s.PassCredentials = true, true }, true},
		{"Mark, Priority, IPTOS, IPTTL, DeferAcceptSec", func(s *units.Socket) {
			s.Mark, s.Priority, s.IPTOS, s.IPTTL, s.DeferAccept = 1, 2, 0x04, 9, 3*time.Second
		}, true},
		{"Mark, IPTTL, DeferAcceptSec back to the default", func(s *units.Socket) {
			s.Mark, s.IPTTL, s.DeferAccept = 0, 0, 0
		}, true},
		{"IPTOS back to the default", func(s *units.Socket) { s.IPTOS = 0 }, true},
		{"Priority back to the default without IPTOS", func(s *units.Socket) { s.Priority, s.IPTOS = 0, 0 }, true},
		{"Priority back to the default, IPTOS kept", func(s *units.Socket) { s.Priority = 0 }, false},
		{"TCPCongestion", func(s *units.Socket) { s.TCPCongestion = "cubic" }, true},
		{"TCPCongestion back to the default", func(s *units.Socket) { s.TCPCongestion = "" }, false},
		{"PipeSize", func(s *units.Socket) { s.PipeSize = 1 << 20 }, true},
		{"PipeSize back to the default", func(s *units.Socket) { s.PipeSize = 0 }, false},
		{"ReceiveBuffer back to the default", func(s *units.Socket) { s.ReceiveBuffer = 0 }, false},
		{"KeepAliveTimeSec back to the default", func(s *units.Socket) { s.KeepAliveTime = 0 }, false},
		{"address", func(s *units.Socket) { s.Listens[0].Address = "127.0.0.1:8081" }, false},
		{"another Listen", func(s *units.Socket) { s.Listens = append(s.Listens, s.Listens[0]) }, false},
		{"Accept", func(s *units.Socket) { s.Accept = true }, false},
		{"ReusePort", func(s *units.Socket) { s.ReusePort = true }, false},
		{"FreeBind", func(s *units.Socket) { s.FreeBind = true }, false},
		{"Transparent", func(s *units.Socket) { s.Transparent = true }, false},
		{"BindIPv6Only", func(s *units.Socket) { s.BindIPv6Only = "both" }, false},
		{"BindToDevice", func(s *units.Socket) { s.BindToDevice = "lo" }, false},
		{"SocketMode", func(s *units.Socket) { s.SocketMode = 0o600 }, false},
		{"SocketUser", func(s *units.Socket) { s.SocketUser = "nobody" }, false},
		{"NonBlocking", func(s *units.Socket) { s.NonBlocking = true }, false},
		{"MaxConnections", func(s *units.Socket) { s.MaxConnections = 10 }, false},
	} {
		old, new := base(), base()
		c.change(new)
		if got := InPlace(old, new); got != c.want {
			t.Errorf("%s: InPlace = %v, want %v", c.name, got, c.want)
		}
	}
}

// ino is the inode of l's socket.
func ino(t *testing.T, l *Listener) uint64 {
	t.Helper()
	var st unix.Stat_t
	withFD(t, l.File(), func(fd int) {
		if err := unix.Fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
	})
	return st.Ino
}

// listenBacklog is the backlog of the TCP listener l, as ss(8) reads it
// from the kernel (Send-Q of a listening socket).
func listenBacklog(t *testing.T, l *Listener) int {
	t.Helper()
	ss, err := exec.LookPath("ss")
	if err != nil {
		t.Fatal("ss(8) is needed (Debian iproute2, installed by .ci/deps)")
	}
	_, port, _ := net.SplitHostPort(l.Addr())
	out, err := exec.Command(ss, "-ltnH", "sport = :"+port).Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	fields := strings.Fields(string(out))
	if len(fields) < 4 {
		t.Fatalf("ss output %q", out)
	}
	n, err := strconv.Atoi(fields[2])
	if err != nil {
		t.Fatalf("ss output %q: %v", out, err)
	}
	return n
}

// checkBuffer checks a buffer size set to v: Linux doubles what it is
// given, and caps it at net.core.[rw]mem_max for a caller without
// CAP_NET_ADMIN, which sockd's FORCE option passes as root.
func checkBuffer(t *testing.T, l *Listener, opt int, name string, v int) {
	t.Helper()
	got := sockopt(t, l, unix.SOL_SOCKET, opt)
	if os.Geteuid() != 0 {
		t.Logf("not root: %s = %d, set to %d", name, got, v)
		return
	}
	if got != 2*v {
		t.Errorf("%s %s = %d, want %d (twice %d)", l.Addr(), name, got, 2*v, v)
	}
}

func TestUpdateTCP(t *testing.T) {
	old := tcpSocket("127.0.0.1:0")
	old.Backlog = 16
	old.ReceiveBuffer = 1 << 16
	l := mustOpen(t, old)[0]
	before := ino(t, l)
	if got := listenBacklog(t, l); got != 16 {
		t.Fatalf("backlog before = %d, want 16", got)
	}
	dial(t, "tcp", l.Addr()) // queued, not accepted, across the update

	s := *old
	s.Backlog = 1024
	s.ReceiveBuffer = 1 << 18
	s.SendBuffer = 1 << 18
	s.NoDelay = true
	s.KeepAlive = true
	s.KeepAliveTime = 90 * time.Second
	s.KeepAliveInterval = 7 * time.Second
	s.KeepAliveProbes = 5
	if !InPlace(old, &s) {
		t.Fatal("InPlace = false")
	}
	if err := l.Update(&s); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if after := ino(t, l); after != before {
		t.Errorf("inode %d after the update, %d before: a new socket", after, before)
	}
	if got := listenBacklog(t, l); got != 1024 {
		t.Errorf("backlog after = %d, want 1024", got)
	}
	for _, c := range []struct {
		name       string
		level, opt int
		want       int
	}{
		{"SO_ACCEPTCONN", unix.SOL_SOCKET, unix.SO_ACCEPTCONN, 1},
		{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 90},
		{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 7},
		{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 5},
	} {
		if got := sockopt(t, l, c.level, c.opt); got != c.want {
			t.Errorf("%s = %d, want %d", c.name, got, c.want)
		}
	}
	checkBuffer(t, l, unix.SO_RCVBUF, "SO_RCVBUF", s.ReceiveBuffer)
	checkBuffer(t, l, unix.SO_SNDBUF, "SO_SNDBUF", s.SendBuffer)
	acceptQueued(t, l) // the connection queued before the update is still there
	c := dial(t, "tcp", l.Addr())
	c.Close()
	acceptQueued(t, l)

	// Options switched off again are switched off on the socket.
	s2 := s
	s2.NoDelay, s2.KeepAlive, s2.Backlog = false, false, 0
	if err := l.Update(&s2); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if got := sockopt(t, l, unix.IPPROTO_TCP, unix.TCP_NODELAY); got != 0 {
		t.Errorf("TCP_NODELAY = %d, want 0", got)
	}
	if got := sockopt(t, l, unix.SOL_SOCKET, unix.SO_KEEPALIVE); got != 0 {
		t.Errorf("SO_KEEPALIVE = %d, want 0", got)
	}
	if got, want := listenBacklog(t, l), unix.SOMAXCONN; got != want {
		t.Errorf("Backlog=0: backlog = %d, want %d", got, want)
	}
}

func TestUpdateUnixAndFIFO(t *testing.T) {
	dir := testutil.ShortDir(t)
	old := &units.Socket{Name: "u.socket", Listens: []units.Listen{
		{Kind: units.Stream, Network: "unix", Address: filepath.Join(dir, "s.sock")},
		{Kind: units.Datagram, Network: "unixgram", Address: filepath.Join(dir, "d.sock")},
		{Kind: units.FIFO, Network: "fifo", Address: filepath.Join(dir, "f.fifo")},
	}}
	ls := mustOpen(t, old)
	s := *old
	s.PassCredentials = true
	s.Backlog = 8
	s.ReceiveBuffer = 1 << 17
	for _, l := range ls {
		if err := l.Update(&s); err != nil {
			t.Fatalf("Update %s: %v", l.Addr(), err)
		}
	}
	for _, l := range ls[:2] {
		if got := sockopt(t, l, unix.SOL_SOCKET, unix.SO_PASSCRED); got != 1 {
			t.Errorf("%s: SO_PASSCRED = %d, want 1", l.Addr(), got)
		}
		checkBuffer(t, l, unix.SO_RCVBUF, "SO_RCVBUF", s.ReceiveBuffer)
	}
	if got := sockopt(t, ls[0], unix.SOL_SOCKET, unix.SO_ACCEPTCONN); got != 1 {
		t.Errorf("SO_ACCEPTCONN = %d after the update, want 1", got)
	}
	dial(t, "unix", ls[0].Addr())
	acceptQueued(t, ls[0])
	if _, err := os.Stat(ls[2].Addr()); err != nil {
		t.Errorf("FIFO: %v", err)
	}
}

// seconds never overflows: infinity is the largest int32, which the
// kernel refuses by name, not a negative value taken for "unset".
func TestSecondsSaturates(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int
	}{{0, 0}, {time.Millisecond, 1}, {time.Second, 1}, {1500 * time.Millisecond, 2}, {units.Infinity, 1<<31 - 1}} {
		if got := seconds(c.d); got != c.want {
			t.Errorf("seconds(%v) = %d, want %d", c.d, got, c.want)
		}
	}
}
