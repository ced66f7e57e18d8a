package children

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// childFDFlags returns the flags of fd as a child started from spec
// (its program replaced by cat) sees them.
func childFDFlags(t *testing.T, spec Spec, fd int) int64 {
	t.Helper()
	spec.Path, spec.Argv = "/bin/cat", []string{"cat", "/proc/self/fdinfo/" + strconv.Itoa(fd)}
	out, errs, exit := run(t, spec)
	if !exit.Success() {
		t.Fatalf("cat fdinfo: %v %q", exit, errs)
	}
	for _, line := range out {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no flags in %q", out)
	return 0
}

// Input.Data reaches the child's fd 0, then end of file, with and
// without the exec helper; fd 0 is read-only.
func TestStdinData(t *testing.T) {
	for _, helper := range []bool{false, true} {
		t.Run(fmt.Sprintf("helper=%v", helper), func(t *testing.T) {
			spec := shSpec("while read -r l; do echo \"got $l\"; done; echo eof")
			spec.Stdin.Data = []byte("one\ntwo words\n")
			if helper {
				spec.PIDEnv = "LISTEN_PID"
			}
			out, errs, exit := run(t, spec)
			if want := []string{"got one", "got two words", "eof"}; !exit.Success() || !slices.Equal(out, want) {
				t.Errorf("%v: stdout %q (stderr %q), want %q", exit, out, errs, want)
			}
			if fl := childFDFlags(t, spec, 0); fl&unix.O_ACCMODE != unix.O_RDONLY {
				t.Errorf("fd 0 flags %o, want read-only", fl)
			}
		})
	}
}

// More data than a pipe holds arrives whole; a child that never reads
// it exits, and nothing is left waiting to feed it (TestMain checks the
// goroutines).
func TestStdinDataLarge(t *testing.T) {
	data := []byte(strings.Repeat("0123456789abcdef", 256<<10)) // 4 MiB
	spec := shSpec("wc -c")
	spec.Stdin.Data = data
	out, errs, exit := run(t, spec)
	if !exit.Success() || len(out) != 1 || strings.TrimSpace(out[0]) != strconv.Itoa(len(data)) {
		t.Errorf("%v: wc -c says %q (stderr %q), want %d", exit, out, errs, len(data))
	}

	spec = shSpec("exit 0")
	spec.Stdin.Data = data
	if exit := waitDone(t, start(t, spec)); !exit.Success() {
		t.Errorf("a child that does not read: %v", exit)
	}
}

func TestStdinDataLimits(t *testing.T) {
	spec := shSpec("cat")
	spec.Stdin.Data = make([]byte, MaxInputData+1)
	fds := countFDs(t)
	if p, err := Start(spec); err == nil {
		p.Stop(syscall.SIGKILL, 0, true, true)
		t.Fatal("Start took more than MaxInputData")
	} else if !strings.Contains(err.Error(), "stdin") {
		t.Errorf("error %q does not name stdin", err)
	}
	if n := countFDs(t); n != fds {
		t.Errorf("%d fds after the failed Start, %d before", n, fds)
	}

	// Empty data is /dev/null, as the zero Input.
	spec = shSpec("readlink /proc/self/fd/0")
	spec.Stdin.Data = []byte{}
	out, _, exit := run(t, spec)
	if !exit.Success() || !slices.Equal(out, []string{"/dev/null"}) {
		t.Errorf("%v: fd 0 is %q, want /dev/null", exit, out)
	}
}

// Input.File becomes fd 0, the same open file description (a socket
// here, the inetd way: stdin and stdout both), with its flags untouched
// in the parent; the parent keeps no extra fd.
func TestStdinFile(t *testing.T) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours := os.NewFile(uintptr(pair[0]), "ours")
	theirs := os.NewFile(uintptr(pair[1]), "theirs")
	defer ours.Close()
	defer theirs.Close()
	if err := unix.SetNonblock(pair[1], true); err != nil {
		t.Fatal(err)
	}

	ino := inode(t, pair[1])
	fds := countFDs(t)
	spec := shSpec("read -r x; echo \"got $x\"; a=$(readlink /proc/$$/fd/0); b=$(readlink /proc/$$/fd/1); echo $a >&2; echo $b >&2")
	spec.Stdin.File, spec.Stdout.File = theirs, theirs
	errs := newCapture()
	spec.Stderr.Lines = errs.add
	// Written before the start: the child's read on the non-blocking
	// socket would otherwise fail with EAGAIN if it came first.
	ours.SetDeadline(time.Now().Add(testTimeout))
	if _, err := ours.WriteString("hello\n"); err != nil {
		t.Fatal(err)
	}
	p := start(t, spec)
	if !isNonblock(t, pair[1]) {
		t.Error("Start changed the blocking mode of the stdin file")
	}
	theirs.Close()
	line, err := bufio.NewReader(ours).ReadString('\n')
	if err != nil || line != "got hello\n" {
		t.Errorf("read %q, %v; want \"got hello\\n\"", line, err)
	}
	if exit := waitDone(t, p); !exit.Success() {
		t.Errorf("exit %v", exit)
	}
	if got := errs.get(); !slices.Equal(got, []string{ino, ino}) {
		t.Errorf("fd 0 and 1 are %q, want %s both", got, ino)
	}
	if n := countFDs(t); n != fds-1 { // theirs is closed
		t.Errorf("%d fds after the child, %d before it (and one closed since)", n, fds)
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	return openFds(t) // not counting the reaper's
}
