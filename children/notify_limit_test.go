package children

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/testutil"
)

// notifyLimitEnv makes the test binary the reader of
// TestNotifyAtFDLimit: a NotifySocket in a process with no free fd.
const notifyLimitEnv = "CHILDREN_TEST_NOTIFY_FDLIMIT"

// A READY=1 that carries fds (as FDSTORE=1 does) reaches a reader that
// has no fd free: the kernel drops the fds (MSG_CTRUNC), not the
// message or its sender's credentials.
func TestNotifyAtFDLimit(t *testing.T) {
	if path := os.Getenv(notifyLimitEnv); path != "" {
		os.Exit(notifyAtLimit(path))
	}
	path := filepath.Join(testutil.ShortDir(t), "notify.sock")
	cmd := exec.Command(os.Args[0], "-test.run=^TestNotifyAtFDLimit$")
	cmd.Env = append(os.Environ(), notifyLimitEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	lines := make(chan string, 2)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() string {
		select {
		case l := <-lines:
			return l
		case <-time.After(20 * time.Second):
			t.Fatal("no word from the reader")
			return ""
		}
	}
	if l := next(); l != "ready" {
		t.Fatalf("reader: %q", l)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	pass := make([]int, 3)
	for i := range pass {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		pass[i] = int(f.Fd())
	}
	if err := unix.Sendmsg(fd, []byte("FDSTORE=1\nREADY=1"), unix.UnixRights(pass...), &unix.SockaddrUnix{Name: path}, 0); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("READY=1 from pid %d", os.Getpid())
	if l := next(); l != want {
		t.Fatalf("reader: %q, want %q", l, want)
	}
}

// notifyAtLimit listens on path, takes every free fd, says "ready" and
// reports the first notification it reads.
func notifyAtLimit(path string) int {
	rl := unix.Rlimit{Cur: 64, Max: 64}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		fmt.Println("setrlimit:", err)
		return 1
	}
	n, err := ListenNotify(path)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	for {
		f, err := os.Open(os.DevNull)
		if errors.Is(err, syscall.EMFILE) {
			break
		}
		if err != nil {
			fmt.Println(err)
			return 1
		}
		filled = append(filled, f)
	}
	fmt.Println("ready")
	note, ok := <-n.C()
	if !ok {
		fmt.Println("notify socket closed")
		return 1
	}
	fmt.Printf("READY=%s from pid %d\n", note.Fields["READY"], note.Pid)
	if note.Fields["READY"] == "1" {
		return 0
	}
	return 1
}

// filled keeps the fds a child process took to reach its limit open:
// an *os.File that is garbage collected closes its fd.
var filled []*os.File
