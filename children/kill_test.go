package children

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// startWithGrandchild starts sh, which starts a sleeping grandchild in
// its process group and prints its pid; it returns the process and the
// grandchild's pidfd.
func startWithGrandchild(t *testing.T, before, after string, killOnExit bool) (*Process, int) {
	t.Helper()
	pids := make(chan string, 1)
	p, err := Start(Spec{Path: "/bin/sh", Argv: []string{"sh", "-c", before + "sleep 100 & echo $!; " + after},
		Umask: -1, KillGroupOnExit: killOnExit,
		Stdout: Output{Lines: func(l string) {
			select {
			case pids <- l:
			default:
			}
		}}})
	if err != nil {
		t.Fatal(err)
	}
	var gc int
	select {
	case s := <-pids:
		gc, _ = strconv.Atoi(strings.TrimSpace(s))
	case <-time.After(10 * time.Second):
		t.Fatal("no grandchild pid")
	}
	fd, err := unix.PidfdOpen(gc, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		unix.Close(fd)
	})
	return p, fd
}

// exitsWithin reports whether the process behind pidfd exits within d.
func exitsWithin(t *testing.T, pidfd int, d time.Duration) bool {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, int(d.Milliseconds()))
	if err != nil && err != unix.EINTR {
		t.Fatal(err)
	}
	return n == 1
}

// KillGroupOnExit leaves nothing of the group behind when the main
// process exits by itself; without it the grandchild lives on.
func TestKillGroupOnExit(t *testing.T) {
	p, gc := startWithGrandchild(t, "", "exit 0", true)
	<-p.Done()
	if !exitsWithin(t, gc, 10*time.Second) {
		t.Fatal("grandchild survived its group leader's exit with KillGroupOnExit")
	}
	p, gc = startWithGrandchild(t, "", "exit 0", false)
	<-p.Done()
	if exitsWithin(t, gc, 200*time.Millisecond) {
		t.Fatal("grandchild killed without KillGroupOnExit")
	}
}

// Terminate with (Main, Main) — KillMode=process — signals the main
// process only; the grandchild keeps running.
func TestTerminateMainOnly(t *testing.T) {
	p, gc := startWithGrandchild(t, "trap '' TERM; ", "wait", false)
	st := p.Terminate(syscall.SIGTERM, Main, 300*time.Millisecond, Main)
	if st.Signal != syscall.SIGKILL {
		t.Fatalf("exit %v, want killed by SIGKILL after ignoring SIGTERM", st)
	}
	if exitsWithin(t, gc, 200*time.Millisecond) {
		t.Fatal("KillMode=process killed the grandchild")
	}
}
