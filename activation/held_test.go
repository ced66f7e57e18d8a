package activation

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/units"
)

// Reuse takes a held socket that is the one a line asks for, with the
// connections queued in it, and binds afresh for a line whose address
// changed.
func TestReuseHeld(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "app.sock")
	s := &units.Socket{Name: "app.socket", Listens: []units.Listen{
		{Network: "tcp", Address: "127.0.0.1:0"},
		{Network: "unix", Address: sock},
	}}
	first, err := Open(s)
	if err != nil {
		t.Fatal(err)
	}
	// The held copies: what the fd holder would give back.
	var held []*os.File
	var inodes []uint64
	for _, l := range first {
		d, err := unix.FcntlInt(l.File().Fd(), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(d), "held")
		held = append(held, f)
		inodes = append(inodes, inode(t, f))
	}
	addr := first[0].Addr()
	// The previous sockd is gone; its socket file stays (it was killed).
	for _, l := range first {
		l.paths = nil
		l.Close()
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("connect while no sockd runs: %v", err)
	}
	defer c.Close()

	s.Listens[0].Address = addr // the unit names the port it had
	// A Go child serving on the TCP socket made it non-blocking: sockd
	// must leave it so (a blocking accept could not be interrupted).
	if err := unix.SetNonblock(int(held[0].Fd()), true); err != nil {
		t.Fatal(err)
	}
	ls, reused, err := Reuse(s, held)
	if err != nil {
		t.Fatal(err)
	}
	defer CloseAll(ls)
	if !reused[0] || !reused[1] {
		t.Fatalf("reused %v, want both", reused)
	}
	for i, l := range ls {
		if got := inode(t, l.File()); got != inodes[i] {
			t.Errorf("line %d: inode %d, want the held %d", i, got, inodes[i])
		}
	}
	if fl, err := unix.FcntlInt(ls[0].File().Fd(), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Errorf("Reuse changed the served socket's mode to blocking (flags %#x, %v)", fl, err)
	}
	if ls[0].Addr() != addr || ls[1].Addr() != sock {
		t.Errorf("addresses %s %s", ls[0].Addr(), ls[1].Addr())
	}
	unix.SetNonblock(int(ls[0].File().Fd()), false)
	nfd, _, err := unix.Accept(int(ls[0].File().Fd()))
	if err != nil {
		t.Fatalf("the queued connection: %v", err)
	}
	unix.Close(nfd)

	// Close removes the reused socket file.
	CloseAll(ls)
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file after Close: %v", err)
	}
}

// A held socket that is not the line's (the unit moved to another
// address) is closed and the line bound afresh.
func TestReuseMismatch(t *testing.T) {
	s := &units.Socket{Name: "app.socket", Listens: []units.Listen{{Network: "tcp", Address: "127.0.0.1:0"}}}
	first, err := Open(s)
	if err != nil {
		t.Fatal(err)
	}
	d, err := unix.FcntlInt(first[0].File().Fd(), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		t.Fatal(err)
	}
	held := os.NewFile(uintptr(d), "held")
	old := inode(t, held)
	CloseAll(first)
	s.Listens[0] = units.Listen{Network: "udp", Address: "127.0.0.1:0"}
	ls, reused, err := Reuse(s, []*os.File{held})
	if err != nil {
		t.Fatal(err)
	}
	defer CloseAll(ls)
	if reused[0] || inode(t, ls[0].File()) == old {
		t.Fatalf("reused %v; a TCP socket taken for a UDP line", reused)
	}
	if err := held.Close(); err == nil {
		t.Error("the held file was not closed")
	}
}
