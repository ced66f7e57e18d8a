package children

import (
	"errors"
	"net"
	"os/signal"

	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/activation"

	"golang.org/x/sys/unix"
)

// activationEnv, set, makes the test binary runActivation's child.
const activationEnv = "CHILDREN_TEST_ACTIVATION"

// runActivation is the child of TestSpawnActivation: a consumer of the
// systemd protocol (go-systemd's activation) that prints what it got.
func runActivation() int {
	fmt.Printf("pid %d LISTEN_PID %s\n", os.Getpid(), os.Getenv("LISTEN_PID"))
	named, err := activation.ListenersWithNames()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for name, ls := range named {
		for _, l := range ls {
			fmt.Printf("listener %s %s\n", name, l.Addr())
		}
	}
	return 0
}

// TestSpawnActivation: an unmodified consumer of the protocol, which
// accepts its fds only if LISTEN_PID is its own pid, finds its sockets,
// whichever way Start applies the variable.
func TestSpawnActivation(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, impl := range helperImpls() {
		t.Run(impl.name, func(t *testing.T) {
			spec := selfSpec(t, "")
			// Its own variable, not childEnv, which the forced Go helper
			// takes for itself.
			spec.Env = []string{activationEnv + "=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=web", "LISTEN_PID=1"}
			spec.ExtraFiles = []*os.File{l}
			spec.PIDEnv = "LISTEN_PID"
			p, out, errs, exit := runVia(t, spec, impl)
			want := []string{fmt.Sprintf("pid %d LISTEN_PID %d", p.Pid(), p.Pid()), "listener web " + ln.Addr().String()}
			if !exit.Success() || !slices.Equal(out, want) {
				t.Errorf("child: %v %q %q, want %q", exit, out, errs, want)
			}
		})
	}
}

// TestSpawnNoFdLeak: fds 0, 1, 2 and the extra files are all the child
// gets, even from descriptors of sockd without close-on-exec (inherited,
// or opened by C code), and with more extra files than sockd has fds
// below them, so that sources and targets overlap.
func TestSpawnNoFdLeak(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "leak"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// A copy without close-on-exec, above the child's fds.
	leak, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(leak)
	var files []*os.File
	var names []string
	for i := range 40 {
		name := filepath.Join(dir, fmt.Sprintf("f%02d", i))
		f, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files, names = append(files, f), append(names, name)
	}
	slices.Reverse(files) // fd 3 gets the newest (highest) descriptor
	slices.Reverse(names)
	for _, impl := range helperImpls() {
		t.Run(impl.name, func(t *testing.T) {
			spec := Spec{Path: "/bin/ls", Argv: []string{"ls", "-l", "/proc/self/fd"}, ExtraFiles: files, Umask: -1, PIDEnv: "LISTEN_PID"}
			_, out, errs, exit := runVia(t, spec, impl)
			if !exit.Success() {
				t.Fatalf("ls: %v %q", exit, errs)
			}
			got := map[int]string{}
			for _, line := range out[1:] { // "total 0" first
				f := strings.Fields(line)
				i := slices.Index(f, "->")
				if i < 1 || i+1 >= len(f) {
					t.Fatalf("odd ls line %q", line)
				}
				fd, err := strconv.Atoi(f[i-1])
				if err != nil {
					t.Fatalf("odd ls line %q", line)
				}
				got[fd] = f[i+1]
			}
			for i, name := range names {
				if got[3+i] != name {
					t.Errorf("fd %d is %q, want %s", 3+i, got[3+i], name)
				}
			}
			// What ls opens itself: the directory it lists.
			want := 3 + len(names) + 1
			if len(got) != want {
				t.Errorf("child has %d fds, want %d: %v", len(got), want, got)
			}
			for fd, target := range got {
				if strings.HasSuffix(target, "/leak") {
					t.Errorf("fd %d of sockd without close-on-exec leaked into the child as %d", leak, fd)
				}
			}
		})
	}
}

// TestSpawnExecErrors: a program the child cannot exec is an error of
// Start that names it, not a process that exits 127.
func TestSpawnExecErrors(t *testing.T) {
	if !spawnInC {
		t.Skip("no C spawn in this build: the exec helper reports exec failures (TestHelperParity)")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/nonexistent/interpreter\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	wantStartError(t, Spec{Path: script, Umask: -1, PIDEnv: "LISTEN_PID"},
		"start "+script+": exec "+script+": no such file or directory", syscall.ENOENT)

	if os.Getuid() != 0 {
		t.Skip("EACCES through another user needs root")
	}
	private := filepath.Join(dir, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(private, "true")
	b, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prog, b, 0o755); err != nil {
		t.Fatal(err)
	}
	// The directory is root's alone: nobody cannot reach the program.
	wantStartError(t, Spec{Path: prog, Umask: -1, Credential: &syscall.Credential{Uid: 65534, Gid: 65534}},
		"start "+prog+": exec "+prog+": permission denied", syscall.EACCES)
	// A working directory that goes away between Start's check and the
	// child's chdir cannot be staged here; a file where a directory is
	// wanted is refused before the spawn.
}

// TestSpawnNUL: a NUL byte in an argument or the environment, which C
// would cut short, is refused, as ForkExec refuses it.
func TestSpawnNUL(t *testing.T) {
	for _, spec := range []Spec{
		{Path: "/bin/echo", Argv: []string{"echo", "a\x00b"}, Umask: -1},
		{Path: "/bin/echo", Env: []string{"A=1", "SECRET=x\x00y"}, Umask: -1, PIDEnv: "LISTEN_PID"},
	} {
		p, err := Start(spec)
		if err == nil {
			waitDone(t, p)
			t.Errorf("Start(%q, env %q) succeeded", spec.Argv, spec.Env)
			continue
		}
		if !errors.Is(err, syscall.EINVAL) {
			t.Errorf("Start(%q, env %q): %v, want invalid argument", spec.Argv, spec.Env, err)
		}
	}
}

// TestSpawnSignals: the child starts with no signal blocked (sockd's
// thread blocks them all around the clone) and with the signals sockd
// ignores still ignored, as after ForkExec.
func TestSpawnSignals(t *testing.T) {
	signal.Ignore(syscall.SIGUSR2)
	defer signal.Reset(syscall.SIGUSR2)
	own := statusFields(t, "/proc/self/status")
	if own["SigIgn"] == "0000000000000000" {
		t.Fatalf("SigIgn %s after ignoring SIGUSR2", own["SigIgn"])
	}
	for _, impl := range helperImpls() {
		t.Run(impl.name, func(t *testing.T) {
			status, _, _ := procStatusVia(t, Spec{Umask: -1, PIDEnv: "LISTEN_PID"}, impl.wrap)
			if status["SigBlk"] != "0000000000000000" {
				t.Errorf("child: blocked %s, want none", status["SigBlk"])
			}
			// The Go helper's runtime handles every signal it may, so its
			// exec leaves SIGUSR2 at its default (a Go helper's quirk).
			if impl.name != "forced-go" && impl.name != "go" && status["SigIgn"] != own["SigIgn"] {
				t.Errorf("child ignores %s, sockd %s", status["SigIgn"], own["SigIgn"])
			}
		})
	}
}

func statusFields(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":\t"); ok {
			m[k] = v
		}
	}
	return m
}

// TestSpawnLeavesNothing: starts that succeed and starts that fail in
// the child leave no fd, goroutine or process behind.
func TestSpawnLeavesNothing(t *testing.T) {
	listFds := func() map[string]string {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, e := range ents {
			// Not counted: what the reaper reads (/proc/self/task/…),
			// which it may be doing now (our children's SIGCHLD), and
			// the listing itself ("", closed before the readlink).
			if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && !strings.HasPrefix(target, "/proc/") {
				m[e.Name()] = target
			}
		}
		return m
	}
	l, _ := listener(t, false)
	defer l.Close()
	// Warm up what a first start opens once (/dev/null's path lookups,
	// the reaper's signal channel): counted before the loop.
	waitDone(t, start(t, Spec{Path: "/bin/true", Umask: -1}))
	before, goroutines := listFds(), runtime.NumGoroutine()
	fds := len(before)
	huge := uint64(1 << 40)
	for i := range 20 {
		spec := Spec{Path: "/bin/true", Umask: 0o022, PIDEnv: "LISTEN_PID", ExtraFiles: []*os.File{l},
			Stdout: Output{Lines: func(string) {}}, Stderr: Output{Lines: func(string) {}}}
		if i%2 == 1 {
			spec.Rlimits = []Rlimit{{Resource: unix.RLIMIT_NOFILE, Cur: huge, Max: huge}}
		}
		p, err := Start(spec)
		switch {
		case i%2 == 0 && err != nil:
			t.Fatal(err)
		case i%2 == 0:
			if exit := waitDone(t, p); !exit.Success() {
				t.Fatalf("true: %v", exit)
			}
		case spawnInC && err == nil:
			t.Fatalf("Start with an rlimit above the hard maximum succeeded")
		case err == nil:
			waitDone(t, p) // the exec helper fails after Start
		}
	}
	// A Process's output files are closed and its pid reaped before Done;
	// its goroutines return just after, which nothing signals: a bounded
	// poll.
	for deadline := time.Now().Add(testTimeout); runtime.NumGoroutine() > goroutines; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("after 20 starts: %d goroutines, %d before:\n%s", runtime.NumGoroutine(), goroutines, buf[:runtime.Stack(buf, true)])
		}
	}
	// Fewer is possible: a descriptor of an earlier test may close
	// meanwhile.
	if after := listFds(); len(after) > fds {
		t.Errorf("after 20 starts: %d fds %v, %d before %v", len(after), after, fds, before)
	}
	if kids := childrenOf(os.Getpid()); len(kids) > 0 {
		t.Errorf("after 20 starts: children %v", kids)
	}
}
