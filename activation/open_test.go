package activation

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/testutil"
	"github.com/sockd/sockd/units"
)

func TestOpenTCPOptions(t *testing.T) {
	s := tcpSocket("127.0.0.1:0")
	s.ReusePort = true
	s.FreeBind = true
	s.Broadcast = true
	s.PassCredentials = true
	s.ReceiveBuffer = 1 << 20
	s.SendBuffer = 1 << 19
	s.NoDelay = true
	s.KeepAlive = true
	s.KeepAliveTime = 30 * time.Second
	s.KeepAliveInterval = 5 * time.Second
	s.KeepAliveProbes = 4
	root := os.Geteuid() == 0
	if root {
		s.Transparent = true
		s.BindToDevice = "lo"
	}
	l := mustOpen(t, s)[0]

	if !strings.HasPrefix(l.Addr(), "127.0.0.1:") || strings.HasSuffix(l.Addr(), ":0") {
		t.Errorf("Addr = %q, want 127.0.0.1 with the real port", l.Addr())
	}
	for _, c := range []struct {
		name       string
		level, opt int
		want       int
	}{
		{"SO_TYPE", unix.SOL_SOCKET, unix.SO_TYPE, unix.SOCK_STREAM},
		{"SO_ACCEPTCONN", unix.SOL_SOCKET, unix.SO_ACCEPTCONN, 1},
		{"SO_REUSEADDR", unix.SOL_SOCKET, unix.SO_REUSEADDR, 1},
		{"SO_REUSEPORT", unix.SOL_SOCKET, unix.SO_REUSEPORT, 1},
		{"IP_FREEBIND", unix.SOL_IP, unix.IP_FREEBIND, 1},
		{"SO_BROADCAST", unix.SOL_SOCKET, unix.SO_BROADCAST, 1},
		{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 30},
		{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 5},
		{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 4},
	} {
		if got := sockopt(t, l, c.level, c.opt); got != c.want {
			t.Errorf("%s = %d, want %d", c.name, got, c.want)
		}
	}
	// Linux doubles the buffer sizes it is given.
	if got := sockopt(t, l, unix.SOL_SOCKET, unix.SO_RCVBUF); got < s.ReceiveBuffer {
		t.Errorf("SO_RCVBUF = %d, want >= %d", got, s.ReceiveBuffer)
	}
	if got := sockopt(t, l, unix.SOL_SOCKET, unix.SO_SNDBUF); got < s.SendBuffer {
		t.Errorf("SO_SNDBUF = %d, want >= %d", got, s.SendBuffer)
	}
	if !root {
		t.Log("not root: IP_TRANSPARENT and SO_BINDTODEVICE not tested")
		return
	}
	if got := sockopt(t, l, unix.SOL_IP, unix.IP_TRANSPARENT); got != 1 {
		t.Errorf("IP_TRANSPARENT = %d, want 1", got)
	}
	withFD(t, l.File(), func(fd int) {
		dev, err := unix.GetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
		if err != nil || dev != "lo" {
			t.Errorf("SO_BINDTODEVICE = %q, %v; want lo", dev, err)
		}
	})
}

func TestOpenDefaultsLeaveOptionsOff(t *testing.T) {
	l := mustOpen(t, tcpSocket("127.0.0.1:0"))[0]
	for _, c := range []struct {
		name       string
		level, opt int
	}{
		{"SO_REUSEPORT", unix.SOL_SOCKET, unix.SO_REUSEPORT},
		{"IP_FREEBIND", unix.SOL_IP, unix.IP_FREEBIND},
		{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY},
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE},
	} {
		if got := sockopt(t, l, c.level, c.opt); got != 0 {
			t.Errorf("%s = %d, want 0", c.name, got)
		}
	}
}

func TestOpenUDPOptions(t *testing.T) {
	s := &units.Socket{
		Name:          "dns.socket",
		Listens:       []units.Listen{{Kind: units.Datagram, Network: "udp", Address: "127.0.0.1:0"}},
		Broadcast:     true,
		ReceiveBuffer: 300000,
		NoDelay:       true, // TCP only: ignored, not an error
	}
	l := mustOpen(t, s)[0]
	if got := sockopt(t, l, unix.SOL_SOCKET, unix.SO_TYPE); got != unix.SOCK_DGRAM {
		t.Errorf("SO_TYPE = %d, want SOCK_DGRAM", got)
	}
	if got := sockopt(t, l, unix.SOL_SOCKET, unix.SO_BROADCAST); got != 1 {
		t.Errorf("SO_BROADCAST = %d, want 1", got)
	}
	if got := sockopt(t, l, unix.SOL_SOCKET, unix.SO_REUSEADDR); got != 0 {
		t.Errorf("SO_REUSEADDR = %d, want 0 on UDP", got)
	}
	if got := sockopt(t, l, unix.SOL_SOCKET, unix.SO_RCVBUF); got < s.ReceiveBuffer {
		t.Errorf("SO_RCVBUF = %d, want >= %d", got, s.ReceiveBuffer)
	}
}

func TestOpenIPv6Only(t *testing.T) {
	probe, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	probe.Close()
	// Linux sets IPV6_V6ONLY itself on a socket bound to a specific
	// address such as ::1, so "both" is checked on [::], held to the
	// loopback device with SO_BINDTODEVICE (root only).
	for _, c := range []struct {
		network, address, bindIPv6Only string
		want                           int
	}{
		{"tcp6", "[::1]:0", "", 1},
		{"udp6", "[::1]:0", "", 1},
		{"tcp", "[::]:0", "ipv6-only", 1},
		{"tcp", "[::]:0", "both", 0},
		{"udp", "[::]:0", "both", 0},
	} {
		s := &units.Socket{
			Name:         "v6.socket",
			Listens:      []units.Listen{{Network: c.network, Address: c.address}},
			BindIPv6Only: c.bindIPv6Only,
		}
		if c.address == "[::]:0" {
			if os.Geteuid() != 0 {
				continue
			}
			s.BindToDevice = "lo"
		}
		l := mustOpen(t, s)[0]
		if got := sockopt(t, l, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY); got != c.want {
			t.Errorf("%s %s BindIPv6Only=%q: IPV6_V6ONLY = %d, want %d", c.network, c.address, c.bindIPv6Only, got, c.want)
		}
		if want := c.address[:len(c.address)-1]; !strings.HasPrefix(l.Addr(), want) || l.Addr() == c.address {
			t.Errorf("Addr = %q, want %s with the real port", l.Addr(), want)
		}
	}
}

// TestBacklog reads the listen(2) backlog back with ss(8): for a
// listening TCP socket, its Send-Q column is sk_max_ack_backlog (from
// the kernel's sock_diag). /proc/net/tcp only shows the current queue.
func TestBacklog(t *testing.T) {
	ss, err := exec.LookPath("ss")
	if err != nil {
		t.Fatal("ss(8) is needed (Debian iproute2, installed by .ci/deps)")
	}
	for _, backlog := range []int{7, 0} {
		s := tcpSocket("127.0.0.1:0")
		s.Backlog = backlog
		l := mustOpen(t, s)[0]
		_, port, _ := net.SplitHostPort(l.Addr())
		out, err := exec.Command(ss, "-ltnH", "sport = :"+port).Output()
		if err != nil {
			t.Fatalf("ss: %v", err)
		}
		fields := strings.Fields(string(out))
		if len(fields) < 4 {
			t.Fatalf("ss output %q", out)
		}
		want := backlog
		if want == 0 {
			want = unix.SOMAXCONN
		}
		if fields[2] != strconv.Itoa(want) {
			t.Errorf("Backlog=%d: Send-Q (max backlog) = %s, want %d", backlog, fields[2], want)
		}
	}
}

func TestOpenUnixFilesystem(t *testing.T) {
	dir := testutil.ShortDir(t)
	path := filepath.Join(dir, "run", "app", "app.sock")
	link := filepath.Join(dir, "links", "app.link")
	s := &units.Socket{
		Name:            "app.socket",
		Listens:         []units.Listen{{Kind: units.Stream, Network: "unix", Address: path}},
		SocketMode:      0o620,
		DirectoryMode:   0o710,
		Symlinks:        []string{link},
		PassCredentials: true,
		NoDelay:         true, // TCP only: ignored
	}
	if os.Geteuid() == 0 {
		s.SocketUser = "1234"
		s.SocketGroup = "nogroup"
	}
	l := mustOpen(t, s)[0]

	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o620 {
		t.Errorf("socket mode = %v, want socket 0620", fi.Mode())
	}
	for _, d := range []string{filepath.Join(dir, "run"), filepath.Join(dir, "run", "app"), filepath.Join(dir, "links")} {
		di, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if di.Mode().Perm() != 0o710 {
			t.Errorf("%s mode = %v, want 0710", d, di.Mode().Perm())
		}
	}
	if os.Geteuid() == 0 {
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 1234 || st.Gid != 65534 {
			t.Errorf("owner = %d:%d, want 1234:65534 (nogroup)", st.Uid, st.Gid)
		}
	}
	if target, err := os.Readlink(link); err != nil || target != path {
		t.Errorf("symlink -> %q, %v; want %s", target, err, path)
	}
	if got := sockopt(t, l, unix.SOL_SOCKET, unix.SO_PASSCRED); got != 1 {
		t.Errorf("SO_PASSCRED = %d, want 1", got)
	}
	if l.Addr() != path {
		t.Errorf("Addr = %q, want %q", l.Addr(), path)
	}
	// The symlink leads to the socket.
	dial(t, "unix", link)
	if got, err := waitFor(t, []*Listener{l}, 5*time.Second); err != nil || got != l {
		t.Fatalf("Wait = %v, %v", got, err)
	}
	acceptQueued(t, l)

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for _, p := range []string{path, link} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after Close (%v)", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "run", "app")); err != nil {
		t.Errorf("parent directory removed: %v", err)
	}
}

func TestOpenUnixKinds(t *testing.T) {
	dir := testutil.ShortDir(t)
	for _, c := range []struct {
		network string
		typ     int
		listens bool
	}{
		{"unix", unix.SOCK_STREAM, true},
		{"unixgram", unix.SOCK_DGRAM, false},
		{"unixpacket", unix.SOCK_SEQPACKET, true},
	} {
		path := filepath.Join(dir, c.network+".sock")
		l := mustOpen(t, &units.Socket{Name: "k.socket", Listens: []units.Listen{{Network: c.network, Address: path}}})[0]
		if got := sockopt(t, l, unix.SOL_SOCKET, unix.SO_TYPE); got != c.typ {
			t.Errorf("%s: SO_TYPE = %d, want %d", c.network, got, c.typ)
		}
		acceptConn := 0
		if c.listens {
			acceptConn = 1
		}
		if got := sockopt(t, l, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); got != acceptConn {
			t.Errorf("%s: SO_ACCEPTCONN = %d, want %d", c.network, got, acceptConn)
		}
		fi, err := os.Lstat(path)
		if err != nil || fi.Mode().Perm() != 0o666 {
			t.Errorf("%s: mode %v, %v; want the default 0666", c.network, fi.Mode(), err)
		}
	}
}

func TestOpenUnixAbstract(t *testing.T) {
	name := "@sockd-test-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	l := mustOpen(t, &units.Socket{Name: "abs.socket", Listens: []units.Listen{{Network: "unix", Address: name}}})[0]
	if l.Addr() != name {
		t.Errorf("Addr = %q", l.Addr())
	}
	dial(t, "unix", name)
	if got, err := waitFor(t, []*Listener{l}, 5*time.Second); err != nil || got != l {
		t.Fatalf("Wait = %v, %v", got, err)
	}
	acceptQueued(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("unix", name); err == nil {
		t.Error("abstract socket still answers after Close")
	}
}

func TestOpenUnixStale(t *testing.T) {
	dir := testutil.ShortDir(t)
	path := filepath.Join(dir, "app.sock")
	s := &units.Socket{Name: "app.socket", Listens: []units.Listen{{Network: "unix", Address: path}}}

	// A stale socket: its listener is gone.
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close()
	ls, err := Open(s)
	if err != nil {
		t.Fatalf("Open over a stale socket: %v", err)
	}
	CloseAll(ls)

	// A live socket: someone answers.
	live, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if ls, err := Open(s); err == nil {
		CloseAll(ls)
		t.Fatal("Open took over a socket in use")
	} else if !errors.Is(err, unix.EADDRINUSE) || !strings.Contains(err.Error(), "app.socket") || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q: want EADDRINUSE naming the unit and the path", err)
	}
	if c, err := net.Dial("unix", path); err != nil {
		t.Errorf("the live socket was disturbed: %v", err)
	} else {
		c.Close()
	}
	live.Close()

	// A regular file is never removed.
	if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ls, err := Open(s); err == nil {
		CloseAll(ls)
		t.Fatal("Open replaced a regular file")
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "data" {
		t.Errorf("regular file changed: %q, %v", b, err)
	}
}

func TestOpenFIFO(t *testing.T) {
	dir := testutil.ShortDir(t)
	path := filepath.Join(dir, "sub", "app.fifo")
	s := &units.Socket{
		Name:       "fifo.socket",
		Listens:    []units.Listen{{Kind: units.FIFO, Network: "fifo", Address: path}},
		SocketMode: 0o640,
	}
	l := mustOpen(t, s)[0]
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != os.ModeNamedPipe || fi.Mode().Perm() != 0o640 {
		t.Fatalf("FIFO %v, %v; want a named pipe 0640", fi.Mode(), err)
	}
	if nonBlocking(t, l.File()) {
		t.Error("FIFO File() is non-blocking")
	}
	if _, err := waitFor(t, []*Listener{l}, 50*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on an empty FIFO = %v, want a timeout", err)
	}
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if got, err := waitFor(t, []*Listener{l}, 5*time.Second); err != nil || got != l {
		t.Fatalf("Wait = %v, %v", got, err)
	}
	// The data is still there for the child.
	withFD(t, l.File(), func(fd int) {
		buf := make([]byte, 4)
		n, err := unix.Read(fd, buf)
		if err != nil || string(buf[:n]) != "x" {
			t.Errorf("read %q, %v; want x", buf[:n], err)
		}
	})
	l.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("FIFO still there after Close (%v)", err)
	}

	// A FIFO that was there before is reused and kept.
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	CloseAll(mustOpen(t, s))
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("pre-existing FIFO removed: %v", err)
	}
}

func TestOpenAllOrNothing(t *testing.T) {
	dir := testutil.ShortDir(t)
	path := filepath.Join(dir, "first.sock")
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	free := probe.Addr().String()
	probe.Close()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	before := countFDs(t)
	s := &units.Socket{Name: "app.socket", Listens: []units.Listen{
		{Network: "unix", Address: path},
		{Network: "tcp", Address: free},
		{Network: "tcp", Address: busy.Addr().String()},
	}}
	ls, err := Open(s)
	if err == nil {
		CloseAll(ls)
		t.Fatal("Open succeeded on a busy port")
	}
	want := "open app.socket: listen tcp " + busy.Addr().String() + ": bind: address already in use"
	if err.Error() != want || !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("error %q, want %q wrapping EADDRINUSE", err, want)
	}
	if after := countFDs(t); after != before {
		t.Errorf("%d fds before, %d after a failed Open", before, after)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("first socket file left behind (%v)", err)
	}
	again, err := net.Listen("tcp", free)
	if err != nil {
		t.Fatalf("the first port is not free again: %v", err)
	}
	again.Close()
}

func TestOpenErrors(t *testing.T) {
	dir := testutil.ShortDir(t)
	for _, c := range []struct {
		name string
		s    *units.Socket
		want string
	}{
		{"network", &units.Socket{Name: "a.socket", Listens: []units.Listen{{Network: "sctp", Address: "127.0.0.1:1"}}}, `unknown network "sctp"`},
		{"long path", &units.Socket{Name: "a.socket", Listens: []units.Listen{{Network: "unix", Address: "/" + strings.Repeat("x", 120)}}}, "at most 107"},
		{"fd name", &units.Socket{Name: "a.socket", FileDescriptorName: "a:b", Listens: []units.Listen{{Network: "tcp", Address: "127.0.0.1:0"}}}, "FileDescriptorName"},
		{"symlinks", &units.Socket{Name: "a.socket", Symlinks: []string{dir + "/l"}, Listens: []units.Listen{{Network: "tcp", Address: "127.0.0.1:0"}}}, "Symlinks="},
		{"user", &units.Socket{Name: "a.socket", SocketUser: "no-such-user-sockd", Listens: []units.Listen{{Network: "unix", Address: dir + "/u.sock"}}}, "SocketUser"},
	} {
		ls, err := Open(c.s)
		if err == nil {
			CloseAll(ls)
			t.Errorf("%s: Open succeeded", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "open a.socket: ") {
			t.Errorf("%s: error %q, want it to contain %q", c.name, err, c.want)
		}
	}
	if _, err := os.Lstat(dir + "/u.sock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file left after a failed chown (%v)", err)
	}
}

func TestFileModeAndCloseOnExec(t *testing.T) {
	for _, nb := range []bool{false, true} {
		s := tcpSocket("127.0.0.1:0")
		s.NonBlocking = nb
		l := mustOpen(t, s)[0]
		f := l.File()
		if f != l.File() {
			t.Error("File returns different files")
		}
		if got := nonBlocking(t, f); got != nb {
			t.Errorf("NonBlocking=%v: File() non-blocking = %v", nb, got)
		}
		_ = f.Fd() // exec.Cmd does this to ExtraFiles
		if got := nonBlocking(t, f); got != nb {
			t.Errorf("NonBlocking=%v: after Fd(), non-blocking = %v", nb, got)
		}
		pf, err := l.pollFile()
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range []*os.File{f, pf} {
			if !closeOnExec(t, g) {
				t.Errorf("fd %s is not close-on-exec", g.Name())
			}
		}
		l.releasePoll()
		// A child changing the shared mode: File() leaves it (another
		// child may be serving on it), ResetMode() restores it.
		withFD(t, f, func(fd int) { unix.SetNonblock(fd, !nb) })
		if got := nonBlocking(t, l.File()); got != !nb {
			t.Errorf("NonBlocking=%v: File() changed the mode a child set", nb)
		}
		if err := l.ResetMode(); err != nil {
			t.Fatal(err)
		}
		if got := nonBlocking(t, l.File()); got != nb {
			t.Errorf("NonBlocking=%v: ResetMode() did not restore the mode", nb)
		}
	}
}

// TestExecKeepsMode starts a child with File() as ExtraFiles (exec.Cmd
// calls Fd() on each) and checks the mode the child sees and the mode
// sockd keeps.
func TestExecKeepsMode(t *testing.T) {
	for _, nb := range []bool{false, true} {
		s := tcpSocket("127.0.0.1:0")
		s.NonBlocking = nb
		dir := testutil.ShortDir(t)
		s.Listens = append(s.Listens, units.Listen{Network: "unixgram", Address: dir + "/g.sock"})
		ls := mustOpen(t, s)
		cmd := exec.Command(os.Args[0])
		// GORACE: a race-enabled child otherwise sleeps 1s at exit.
		cmd.Env = append(os.Environ(), childEnv+"=fdflags", "GORACE=atexit_sleep_ms=0")
		cmd.Env = append(cmd.Env, Env(ls)...)
		cmd.ExtraFiles = Files(ls)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("child: %v", err)
		}
		mode := "blocking"
		if nb {
			mode = "nonblocking"
		}
		if got, want := strings.TrimSpace(string(out)), mode+","+mode; got != want {
			t.Errorf("NonBlocking=%v: child saw %q, want %q", nb, got, want)
		}
		for _, l := range ls {
			if got := nonBlocking(t, l.file); got != nb {
				t.Errorf("NonBlocking=%v: after exec, sockd's fd non-blocking = %v", nb, got)
			}
		}
	}
}

func TestEnv(t *testing.T) {
	dir := testutil.ShortDir(t)
	ls := mustOpen(t, &units.Socket{Name: "web.socket", Listens: []units.Listen{
		{Network: "tcp", Address: "127.0.0.1:0"},
		{Network: "unix", Address: dir + "/web.sock"},
	}})
	ls = append(ls, mustOpen(t, &units.Socket{Name: "x.socket", FileDescriptorName: "ctl", Listens: []units.Listen{{Network: "udp", Address: "127.0.0.1:0"}}})...)
	got := strings.Join(Env(ls), " ")
	if want := "LISTEN_FDS=3 LISTEN_FDNAMES=web.socket:web.socket:ctl"; got != want {
		t.Errorf("Env = %q, want %q", got, want)
	}
	if ls[2].Name() != "ctl" || ls[1].Spec().Address != dir+"/web.sock" {
		t.Errorf("Name %q, Spec %+v", ls[2].Name(), ls[1].Spec())
	}
	if got := strings.Join(Env(nil), " "); got != "LISTEN_FDS=0 LISTEN_FDNAMES=" {
		t.Errorf("Env(nil) = %q", got)
	}
}

func TestFDCount(t *testing.T) {
	// Warm up the runtime's netpoller, which opens its own fds once.
	warm, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	warm.Close()
	dir := testutil.ShortDir(t)
	before := countFDs(t)
	ls, err := Open(&units.Socket{Name: "all.socket", Listens: []units.Listen{
		{Network: "tcp", Address: "127.0.0.1:0"},
		{Network: "udp", Address: "127.0.0.1:0"},
		{Network: "unix", Address: dir + "/s.sock"},
		{Network: "unixgram", Address: dir + "/g.sock"},
		{Network: "unixpacket", Address: dir + "/p.sock"},
		{Network: "fifo", Address: dir + "/f.fifo"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := countFDs(t); got != before+len(ls) {
		t.Errorf("%d fds open, want %d (one per listener while nobody waits)", got, before+len(ls))
	}
	c := dial(t, "tcp", ls[0].Addr())
	if _, err := waitFor(t, ls, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	c.Close()
	CloseAll(ls)
	if after := countFDs(t); after != before {
		t.Errorf("%d fds before Open, %d after Close", before, after)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files left in %s: %v", dir, ents)
	}
}

// TestInode: Inode is the inode fstat gives for the listener's fd (and
// the one sock_diag names it by).
func TestInode(t *testing.T) {
	ls := mustOpen(t, tcpSocket("127.0.0.1:0"))
	var st unix.Stat_t
	withFD(t, ls[0].File(), func(fd int) {
		if err := unix.Fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
	})
	if st.Ino == 0 || ls[0].Inode() != st.Ino {
		t.Errorf("Inode() = %d, fstat st_ino = %d", ls[0].Inode(), st.Ino)
	}
}
