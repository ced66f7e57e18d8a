package fdholder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/internal/testutil"
)

// The test binary plays three parts: the tests, the holder (Connect
// re-executes it, and MaybeRunHolder takes over), and the children some
// tests start (childEnv names the part).
const (
	childEnv = "FDHOLDER_TEST_CHILD"
	dirEnv   = "FDHOLDER_TEST_DIR"
)

// waitLimit bounds every wait of the tests for an event.
const waitLimit = 10 * time.Second

func TestMain(m *testing.M) {
	MaybeRunHolder()
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	// As sockd: a holder whose parent (a test's child) is killed is
	// reparented to the test process, whose reaper reaps it.
	if err := children.BecomeSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Go's poller opens its fds with the first pollable file: before any
	// test counts its own.
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	r.Close()
	w.Close()
	os.Exit(m.Run())
}

// runChild plays one of the children the tests start.
func runChild(mode string) int {
	dir := os.Getenv(dirEnv)
	switch mode {
	case "sockd": // connects, puts its fds 3 and 4, and waits to be killed
		c, err := Connect(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for name, fd := range map[string]uintptr{"sock/a": 3, "out/a": 4} {
			if err := c.Put(name, os.NewFile(fd, name)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		fmt.Println("ready", c.Pid())
		time.Sleep(time.Hour)
	case "rawdial": // connects without dial's own checks, prints the answer
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			err = unix.Connect(fd, &unix.SockaddrUnix{Name: dir + "/" + SocketName})
		}
		if err != nil {
			fmt.Println("connect:", err)
			return 0
		}
		buf := make([]byte, maxMsg)
		n, err := unix.Read(fd, buf)
		fmt.Printf("answer %q %v\n", buf[:max(n, 0)], err)
	default:
		fmt.Fprintf(os.Stderr, "unknown child mode %q\n", mode)
		return 2
	}
	return 0
}

// startChild starts the test binary as a child in mode, with dir and
// extra fds, and returns its process and a channel of its stdout lines.
// Its stderr goes to the test's log.
func startChild(t *testing.T, mode, dir string, cred *syscall.Credential, extra ...*os.File) (*children.Process, <-chan string) {
	t.Helper()
	lines := make(chan string, 16)
	// GORACE: no second of sleep at the exit of a race-enabled build.
	env := append(os.Environ(), childEnv+"="+mode, dirEnv+"="+dir, "GORACE=atexit_sleep_ms=0")
	p, err := children.Start(children.Spec{
		Path:       "/proc/self/exe",
		Argv:       []string{"fdholder-test-" + mode},
		Env:        env,
		Umask:      -1,
		ExtraFiles: extra,
		Credential: cred,
		Stdout:     children.Output{Lines: func(l string) { lines <- l }},
		Stderr:     children.Output{Lines: func(l string) { t.Logf("%s child: %s", mode, l) }},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Signal(syscall.SIGKILL)
		<-p.Done() // and Lines is called no more
	})
	return p, lines
}

// line returns the next line from lines.
func line(t *testing.T, lines <-chan string) string {
	t.Helper()
	select {
	case l := <-lines:
		return l
	case <-time.After(waitLimit):
		t.Fatal("no line from the child")
		return ""
	}
}

// checkFDs fails the test if it ends with more or fewer fds open than it
// started with. Call it first, so that its check runs last.
func checkFDs(t *testing.T) {
	t.Helper()
	before := openFDs(t)
	t.Cleanup(func() {
		if after := openFDs(t); strings.Join(before, " ") != strings.Join(after, " ") {
			t.Errorf("open fds: %v before the test, %v after", before, after)
		}
	})
}

func openFDs(t *testing.T) []string {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var fds []string
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		// Skipped: this directory's own fd, and the /proc files the
		// reaper goroutine may be reading (closed meanwhile, or not).
		if err != nil || strings.HasPrefix(target, "/proc/") {
			continue
		}
		fds = append(fds, e.Name()+"->"+target)
	}
	return fds
}

// startHolder connects to a new holder in a new directory. When the test
// ends, it shuts down the holder that answers there, if any, and checks
// that the first one is gone and that no socket file is left.
func startHolder(t *testing.T) (string, *Client) {
	t.Helper()
	dir := testutil.ShortDir(t)
	c, err := Connect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.proc == nil || c.proc.Pid() != c.Pid() {
		t.Errorf("Connect did not record the holder it started")
	}
	pidfd := pidfdOf(t, c.Pid())
	t.Cleanup(func() {
		defer unix.Close(pidfd)
		c.Close()
		last, err := dial(dir + "/" + SocketName)
		if err == nil {
			err = last.Shutdown()
		} else if errors.Is(err, ErrNoHolder) {
			err = nil
		}
		if err != nil {
			t.Error(err)
		}
		if !exited(pidfd) {
			t.Errorf("holder %d still runs after Shutdown", c.Pid())
		}
		// Shutdown through another connection waited on the holder's
		// pidfd; the Process that started it reaps it too, and holds a
		// pidfd of its own until then (children's netpoller wait).
		select {
		case <-c.proc.Done():
		case <-time.After(waitLimit):
			t.Errorf("holder %d not reaped within %v of its exit", c.Pid(), waitLimit)
		}
		if _, err := os.Lstat(dir + "/" + SocketName); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("socket file after Shutdown: %v", err)
		}
	})
	return dir, c
}

// pidfdOf returns a pidfd of the running process pid.
func pidfdOf(t *testing.T, pid int) int {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	return fd
}

// exited reports whether the process of pidfd has exited, now.
func exited(pidfd int) bool {
	return waitReadable(pidfd, time.Now()) == nil
}

// ino returns f's inode number.
func ino(t *testing.T, f *os.File) uint64 {
	t.Helper()
	var st unix.Stat_t
	rc, err := f.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) { err = unix.Fstat(int(fd), &st) })
	}
	if err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// fdFlags returns the fd flags (FD_CLOEXEC) and the file status flags
// (O_NONBLOCK…) of f.
func fdFlags(t *testing.T, f *os.File) (fdfl, fl int) {
	t.Helper()
	rc, err := f.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) {
			if fdfl, err = unix.FcntlInt(fd, unix.F_GETFD, 0); err == nil {
				fl, err = unix.FcntlInt(fd, unix.F_GETFL, 0)
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return fdfl, fl
}

// holderFDs counts the holder's open fds.
func holderFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
