package children

import (
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// startWithGrandchild starts sh with script around a sleeping grandchild
// in its process group ("BEFORE sleep 100 & echo $!; AFTER") and returns
// the process and a pidfd of the grandchild. The shell's stdin reaches
// end of file once the pidfd is open: an AFTER that reads it first
// cannot have the grandchild killed and reaped before.
func startWithGrandchild(t *testing.T, before, after string, killOnExit bool) (*Process, int) {
	t.Helper()
	// A blocking pipe (os.Pipe's are not): dash's read fails at once on
	// a non-blocking stdin.
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	r, w := os.NewFile(uintptr(pipe[0]), "|0"), os.NewFile(uintptr(pipe[1]), "|1")
	defer w.Close()
	out := newCapture()
	spec := shSpec(before + "sleep 100 & echo $!; " + after)
	spec.Stdout.Lines = out.add
	spec.Stdin.File = r
	spec.KillGroupOnExit = killOnExit
	p := start(t, spec)
	r.Close()
	gc, err := strconv.Atoi(out.next(t))
	if err != nil {
		t.Fatal(err)
	}
	return p, pidfd(t, gc)
}

// KillGroupOnExit leaves nothing of the group behind when the main
// process exits by itself; without it the grandchild lives on.
func TestKillGroupOnExit(t *testing.T) {
	p, gc := startWithGrandchild(t, "", "read x; exit 0", true)
	<-p.Done()
	if !exitedWithin(t, gc, testTimeout) {
		t.Fatal("grandchild survived its group leader's exit with KillGroupOnExit")
	}
	p, gc = startWithGrandchild(t, "", "read x; exit 0", false)
	<-p.Done()
	if exitedWithin(t, gc, 200*time.Millisecond) {
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
	if exitedWithin(t, gc, 200*time.Millisecond) {
		t.Fatal("KillMode=process killed the grandchild")
	}
}
