package fdstore

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sockd/sockd/children"
	"golang.org/x/sys/unix"
)

// childEnv selects the role of the test binary when a test starts it as
// a child: a sockd stand-in that stores its sockets, or takes them back.
const childEnv = "FDSTORE_TEST_CHILD"

// unixPathEnv is where the storing child binds its Unix listener.
const unixPathEnv = "FDSTORE_TEST_UNIX"

func TestMain(m *testing.M) {
	children.MaybeRunHelper()
	if mode := os.Getenv(childEnv); mode != "" {
		if err := runChild(mode); err != nil {
			fmt.Fprintf(os.Stderr, "child %s: %v\n", mode, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Names the storing child uses.
const (
	tcpName  = "listen/app.socket/0"
	unixName = "listen/app.socket/1"
	udpName  = "listen/dns.socket/0" // two fds under one name
)

func runChild(mode string) error {
	switch mode {
	case "store", "store-wait":
		if err := storeSockets(); err != nil {
			return err
		}
		if mode == "store-wait" {
			fmt.Println("stored")
			time.Sleep(time.Hour) // until the test's SIGKILL
		}
		return nil
	case "inherit":
		return takeSockets()
	case "other-pid":
		return leaveSockets()
	}
	return fmt.Errorf("unknown mode")
}

// storeSockets plays sockd at its first start: it binds a TCP and a Unix
// listener and two UDP sockets, stores them, prints "sock NAME INODE
// NONBLOCK" for each and "tcp ADDR", and exits without closing them.
func storeSockets() error {
	s := Open()
	if s == nil {
		return errors.New("Open: nil Store")
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ul, err := net.Listen("unix", os.Getenv(unixPathEnv))
	if err != nil {
		return err
	}
	ul.(*net.UnixListener).SetUnlinkOnClose(false)
	fmt.Println("tcp", tl.Addr())
	for _, l := range []struct {
		name string
		l    interface{ File() (*os.File, error) }
	}{{tcpName, tl.(*net.TCPListener)}, {unixName, ul.(*net.UnixListener)}} {
		f, err := l.l.File()
		if err != nil {
			return err
		}
		if err := s.Put(l.name, f); err != nil {
			return err
		}
		if err := printFile(l.name, f); err != nil {
			return err
		}
		f.Close()
	}
	// Several fds under one name, which systemd allows and Put never
	// makes: one message with both.
	var udp []*os.File
	var fds []int
	for range 2 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		f, err := c.(*net.UDPConn).File()
		if err != nil {
			return err
		}
		if err := printFile(udpName, f); err != nil {
			return err
		}
		udp = append(udp, f)
		fds = append(fds, rawFD(f))
	}
	err = s.send("FDSTORE=1\nFDPOLL=0\nFDNAME="+udpName+"\n", fds...)
	for _, f := range udp {
		f.Close() // after the send: fds holds their numbers
	}
	return err
}

// takeSockets plays sockd restarted by systemd: it takes its sockets
// back, prints "sock NAME INODE NONBLOCK CLOEXEC" for each, then accepts
// one connection on each listener and answers its "ping" with "pong".
func takeSockets() error {
	files, err := Inherited()
	if err != nil {
		return err
	}
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if val, ok := os.LookupEnv(v); ok {
			return fmt.Errorf("%s=%s still set", v, val)
		}
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, f := range files[name] {
			if err := printFile(name, f); err != nil {
				return err
			}
		}
	}
	for _, name := range []string{tcpName, unixName} {
		if len(files[name]) != 1 {
			return fmt.Errorf("%d fds named %s", len(files[name]), name)
		}
		l, err := net.FileListener(files[name][0])
		if err != nil {
			return err
		}
		files[name][0].Close()
		c, err := l.Accept()
		if err != nil {
			return err
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			return fmt.Errorf("%s: read %q, %v", name, buf, err)
		}
		if _, err := c.Write([]byte("pong")); err != nil {
			return err
		}
		c.Close()
		l.Close()
	}
	return nil
}

// leaveSockets is started with LISTEN_PID naming another process: it
// must take nothing, unset the variables all the same, and leave fd 3 as
// it found it (open, inherited across exec).
func leaveSockets() error {
	files, err := Inherited()
	if files != nil || err != nil {
		return fmt.Errorf("Inherited() = %v, %v; want nothing", files, err)
	}
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if val, ok := os.LookupEnv(v); ok {
			return fmt.Errorf("%s=%s still set", v, val)
		}
	}
	flags, err := unix.FcntlInt(3, unix.F_GETFD, 0)
	if err != nil {
		return fmt.Errorf("fd 3: %w", err)
	}
	if flags&unix.FD_CLOEXEC != 0 {
		return errors.New("fd 3 was made close-on-exec")
	}
	fmt.Println("ok")
	return nil
}

// printFile prints "sock NAME INODE NONBLOCK CLOEXEC" for f.
func printFile(name string, f *os.File) error {
	st, err := fdState(f)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Println("sock", name, st)
	return nil
}

// fileState is what the tests compare of an fd: the inode of its file,
// and its O_NONBLOCK and FD_CLOEXEC flags.
type fileState struct {
	Ino      uint64
	NonBlock bool
	CloExec  bool
}

func (s fileState) String() string { return fmt.Sprintf("%d %t %t", s.Ino, s.NonBlock, s.CloExec) }

// fdState reads f's fileState without (*os.File).Fd, which would clear
// O_NONBLOCK.
func fdState(f *os.File) (fileState, error) {
	var st fileState
	rc, err := f.SyscallConn()
	if err != nil {
		return st, err
	}
	var opErr error
	err = rc.Control(func(fd uintptr) {
		var stat unix.Stat_t
		if opErr = unix.Fstat(int(fd), &stat); opErr != nil {
			return
		}
		st.Ino = stat.Ino
		fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		if err != nil {
			opErr = err
			return
		}
		st.NonBlock = fl&unix.O_NONBLOCK != 0
		fdfl, err := unix.FcntlInt(fd, unix.F_GETFD, 0)
		if err != nil {
			opErr = err
			return
		}
		st.CloExec = fdfl&unix.FD_CLOEXEC != 0
	})
	if err == nil {
		err = opErr
	}
	return st, err
}

// rawFD returns f's fd without (*os.File).Fd; f must stay open as long
// as the fd is used.
func rawFD(f *os.File) int {
	fd := -1
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(u uintptr) { fd = int(u) })
	}
	return fd
}

// openFDs lists this process's open fds as "FD -> TARGET".
func openFDs(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var fds []string
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		fds = append(fds, e.Name()+" -> "+target)
	}
	return fds
}

// checkNoLeak fails t, at its end, when the process holds more fds than
// when checkNoLeak was called. (The fd that reads /proc/self/fd is in
// both lists.)
func checkNoLeak(t *testing.T) {
	t.Helper()
	before := openFDs(t)
	t.Cleanup(func() {
		if after := openFDs(t); len(after) != len(before) {
			t.Errorf("open fds: %d before, %d after:\n%s", len(before), len(after), strings.Join(after, "\n"))
		}
	})
}
