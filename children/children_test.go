package children

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 20 * time.Second

// capture collects the lines of one output stream.
type capture struct {
	mu    sync.Mutex
	lines []string
	ch    chan string
}

func newCapture() *capture { return &capture{ch: make(chan string, 4096)} }

func (c *capture) add(line string) {
	c.mu.Lock()
	c.lines = append(c.lines, line)
	c.mu.Unlock()
	select {
	case c.ch <- line:
	default:
	}
}

func (c *capture) get() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.lines)
}

// next returns the next line, failing the test after testTimeout.
func (c *capture) next(t *testing.T) string {
	t.Helper()
	select {
	case l := <-c.ch:
		return l
	case <-time.After(testTimeout):
		t.Fatalf("no line after %v; so far %q", testTimeout, c.get())
		return ""
	}
}

// shSpec runs script with /bin/sh.
func shSpec(script string) Spec {
	return Spec{
		Path:  "/bin/sh",
		Argv:  []string{"sh", "-c", script},
		Env:   []string{"PATH=/usr/bin:/bin"},
		Umask: -1,
	}
}

// selfSpec runs the test binary as the child of the given mode.
func selfSpec(t *testing.T, mode string) Spec {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Spec{Path: exe, Argv: []string{exe}, Env: []string{childEnv + "=" + mode}, Umask: -1}
}

// start starts spec and kills what is left of it when the test ends.
func start(t *testing.T, spec Spec) *Process {
	t.Helper()
	p, err := Start(spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { p.Stop(syscall.SIGKILL, 0, true, true) })
	return p
}

// waitDone waits for p's Done, bounded.
func waitDone(t *testing.T, p *Process) ExitStatus {
	t.Helper()
	select {
	case <-p.Done():
		return p.Exit()
	case <-time.After(testTimeout):
		t.Fatalf("pid %d not done after %v", p.Pid(), testTimeout)
		return ExitStatus{}
	}
}

// run starts spec with its stdout and stderr captured and waits for it.
func run(t *testing.T, spec Spec) (stdout, stderr []string, exit ExitStatus) {
	t.Helper()
	out, errs := newCapture(), newCapture()
	spec.Stdout.Lines, spec.Stderr.Lines = out.add, errs.add
	p := start(t, spec)
	exit = waitDone(t, p)
	return out.get(), errs.get(), exit
}

func TestExitStatusString(t *testing.T) {
	for _, tc := range []struct {
		e    ExitStatus
		want string
		ok   bool
	}{
		{ExitStatus{}, "exit status 0", true},
		{ExitStatus{Code: 3}, "exit status 3", false},
		{ExitStatus{Code: -1, Signal: syscall.SIGKILL}, "signal: killed", false},
		{ExitStatus{Code: -1, Signal: syscall.SIGTERM}, "signal: terminated", false},
		{ExitStatus{Code: -1, Err: syscall.ECHILD}, "unknown status: no child processes", false},
	} {
		if got := tc.e.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.e, got, tc.want)
		}
		if got := tc.e.Success(); got != tc.ok {
			t.Errorf("%#v.Success() = %v, want %v", tc.e, got, tc.ok)
		}
	}
}

func TestExitCodeAndSignal(t *testing.T) {
	_, _, exit := run(t, shSpec("exit 3"))
	if exit.Code != 3 || exit.Signal != 0 || exit.Err != nil {
		t.Errorf("exit 3: got %+v", exit)
	}
	_, _, exit = run(t, shSpec("kill -KILL $$"))
	if exit.Code != -1 || exit.Signal != syscall.SIGKILL || exit.String() != "signal: killed" {
		t.Errorf("kill -KILL $$: got %+v", exit)
	}
	_, _, exit = run(t, shSpec("true"))
	if !exit.Success() {
		t.Errorf("true: got %+v", exit)
	}
}

func TestEnvIsExactlySpecEnv(t *testing.T) {
	t.Setenv("SOCKD_OWN_SECRET", "must-not-leak")
	env := []string{"A=1", "B=two words", "LISTEN_PID=stale"}
	t.Run("direct", func(t *testing.T) {
		spec := Spec{Path: "/usr/bin/env", Argv: []string{"env"}, Env: env, Umask: -1}
		out, _, exit := run(t, spec)
		if !exit.Success() || !slices.Equal(out, env) {
			t.Errorf("env: %v, %q; want %q", exit, out, env)
		}
	})
	t.Run("helper", func(t *testing.T) {
		spec := Spec{Path: "env", Argv: []string{"env"}, Env: env, Umask: -1, PIDEnv: "LISTEN_PID"}
		out, errs, exit := run(t, spec)
		if !exit.Success() || len(out) != 3 || !slices.Equal(out[:2], env[:2]) || !strings.HasPrefix(out[2], "LISTEN_PID=") || out[2] == "LISTEN_PID=stale" {
			t.Errorf("env: %v, %q %q; want A, B and a fresh LISTEN_PID", exit, out, errs)
		}
	})
}

func TestDir(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	spec := Spec{Path: "/bin/pwd", Argv: []string{"pwd"}, Dir: dir, Umask: -1}
	out, _, exit := run(t, spec)
	if !exit.Success() || !slices.Equal(out, []string{dir}) {
		t.Errorf("pwd: %v %q, want %q", exit, out, dir)
	}

	// A relative path with a slash is relative to Dir.
	if err := os.WriteFile(filepath.Join(dir, "hello"), []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, _, exit = run(t, Spec{Path: "./hello", Dir: dir, Umask: -1})
	if !exit.Success() || !slices.Equal(out, []string{"hello"}) {
		t.Errorf("./hello: %v %q", exit, out)
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "plain")
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		spec Spec
		want string
		is   error
	}{
		{"missing", Spec{Path: "/nonexistent/x", Umask: -1}, "exec /nonexistent/x: no such file or directory", fs.ErrNotExist},
		{"missing with helper", Spec{Path: "/nonexistent/x", Umask: -1, PIDEnv: "LISTEN_PID"}, "exec /nonexistent/x: no such file or directory", fs.ErrNotExist},
		{"not in PATH", Spec{Path: "no-such-program-sockd", Umask: -1}, "exec no-such-program-sockd: executable file not found in $PATH", nil},
		{"directory", Spec{Path: dir, Umask: -1}, "exec " + dir + ": is a directory", syscall.EISDIR},
		{"not executable", Spec{Path: notExec, Umask: -1}, "exec " + notExec + ": permission denied", fs.ErrPermission},
		{"no dir", Spec{Path: "/bin/true", Dir: filepath.Join(dir, "nope"), Umask: -1}, "start /bin/true: chdir " + filepath.Join(dir, "nope") + ": no such file or directory", fs.ErrNotExist},
		{"bad umask", Spec{Path: "/bin/true", Umask: 0o1000}, "start /bin/true: umask 01000: out of range", nil},
		{"nil extra file", Spec{Path: "/bin/true", Umask: -1, ExtraFiles: []*os.File{nil}}, "start /bin/true: extra file 3: nil", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Start(tc.spec)
			if err == nil {
				p.Stop(syscall.SIGKILL, 0, true, true)
				t.Fatal("Start succeeded")
			}
			if err.Error() != tc.want {
				t.Errorf("error %q, want %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
		})
	}
}

// listener returns a listening TCP socket on 127.0.0.1 and its raw fd.
// With nonblock, the socket comes from package net, as an *os.File that
// Go marked non-blocking: (*os.File).Fd would switch it (and the net
// listener sharing its open file description) to blocking. Without, it
// is a blocking socket, as sockd hands them to children.
func listener(t *testing.T, nonblock bool) (*os.File, int) {
	t.Helper()
	var f *os.File
	if nonblock {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close() // f holds a duplicate
		if f, err = l.(*net.TCPListener).File(); err != nil {
			t.Fatal(err)
		}
	} else {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
		if err == nil {
			err = unix.Listen(fd, 16)
		}
		if err != nil {
			unix.Close(fd)
			t.Fatal(err)
		}
		f = os.NewFile(uintptr(fd), "tcp-listener")
	}
	t.Cleanup(func() { f.Close() })
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var raw int
	rc.Control(func(fd uintptr) { raw = int(fd) })
	return f, raw
}

func isNonblock(t *testing.T, fd int) bool {
	t.Helper()
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fl&unix.O_NONBLOCK != 0
}

func inode(t *testing.T, fd int) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("socket:[%d]", st.Ino)
}

// TestExtraFiles checks that the extra files are fds 3, 4 in the child,
// that no other fd of the parent leaks, and that their blocking mode is
// untouched both in the parent and as the child sees it.
func TestExtraFiles(t *testing.T) {
	nb, nbfd := listener(t, true)
	bl, blfd := listener(t, false)
	for _, helper := range []bool{false, true} {
		t.Run(fmt.Sprintf("helper=%v", helper), func(t *testing.T) {
			pidEnv := ""
			if helper {
				pidEnv = "LISTEN_PID"
			}
			spec := Spec{
				Path:       "/bin/ls",
				Argv:       []string{"ls", "-l", "/proc/self/fd"},
				ExtraFiles: []*os.File{nb, bl},
				Umask:      -1,
				PIDEnv:     pidEnv,
			}
			out, errs, exit := run(t, spec)
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
			// fd 5 is the directory ls reads.
			if len(got) != 6 || got[0] != "/dev/null" || !strings.HasPrefix(got[1], "pipe:") ||
				!strings.HasPrefix(got[2], "pipe:") || got[3] != inode(t, nbfd) || got[4] != inode(t, blfd) ||
				!strings.HasSuffix(got[5], "/fd") {
				t.Errorf("child fds %v, want 0 /dev/null, 1-2 pipes, 3 %s, 4 %s, 5 the listed dir", got, inode(t, nbfd), inode(t, blfd))
			}
			if !isNonblock(t, nbfd) || isNonblock(t, blfd) {
				t.Errorf("blocking mode changed in the parent: non-blocking one %v, blocking one %v", isNonblock(t, nbfd), isNonblock(t, blfd))
			}

			spec.Path, spec.Argv = "/bin/cat", []string{"cat", "/proc/self/fdinfo/3", "/proc/self/fdinfo/4"}
			out, errs, exit = run(t, spec)
			var flags []int64
			for _, line := range out {
				if v, ok := strings.CutPrefix(line, "flags:"); ok {
					n, err := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
					if err != nil {
						t.Fatal(err)
					}
					flags = append(flags, n)
				}
			}
			if !exit.Success() || len(flags) != 2 {
				t.Fatalf("fdinfo: %v %q %q", exit, out, errs)
			}
			if flags[0]&unix.O_NONBLOCK == 0 || flags[1]&unix.O_NONBLOCK != 0 {
				t.Errorf("child sees flags %o %o; want fd 3 non-blocking, fd 4 blocking", flags[0], flags[1])
			}
			if flags[0]&unix.O_CLOEXEC != 0 || flags[1]&unix.O_CLOEXEC != 0 {
				t.Errorf("child's fds 3, 4 are close-on-exec: %o %o", flags[0], flags[1])
			}
		})
	}
}

func TestPIDEnv(t *testing.T) {
	spec := shSpec(`echo "$$ $LISTEN_PID"`)
	spec.PIDEnv = "LISTEN_PID"
	out, errs := newCapture(), newCapture()
	spec.Stdout.Lines, spec.Stderr.Lines = out.add, errs.add
	p := start(t, spec)
	exit := waitDone(t, p)
	want := fmt.Sprintf("%d %d", p.Pid(), p.Pid())
	if !exit.Success() || !slices.Equal(out.get(), []string{want}) {
		t.Errorf("got %v %q %q, want %q", exit, out.get(), errs.get(), want)
	}
}

// procStatus runs cat on the child's own /proc files and returns the
// status fields, the nice value and the limits.
func procStatus(t *testing.T, spec Spec) (status map[string]string, nice int, limits string) {
	t.Helper()
	return procStatusVia(t, spec, nil)
}

// procStatusVia is procStatus with the spec started through wrap (see
// helperImpl), if not nil.
func procStatusVia(t *testing.T, spec Spec, wrap func(*testing.T, Spec) Spec) (status map[string]string, nice int, limits string) {
	t.Helper()
	spec.Path = "/bin/cat"
	spec.Argv = []string{"cat", "/proc/self/status", "/proc/self/stat", "/proc/self/limits"}
	out, errs := newCapture(), newCapture()
	spec.Stdout.Lines, spec.Stderr.Lines = out.add, errs.add
	if wrap != nil {
		spec = wrap(t, spec)
	}
	p := start(t, spec)
	if exit := waitDone(t, p); !exit.Success() {
		t.Fatalf("cat: %v %q", exit, errs.get())
	}
	status = map[string]string{}
	nice = 1000
	for _, line := range out.get() {
		if k, v, ok := strings.Cut(line, ":\t"); ok && !strings.Contains(k, " ") {
			status[k] = v
		}
		if strings.HasPrefix(line, strconv.Itoa(p.Pid())+" (cat) ") {
			f := strings.Fields(line[strings.LastIndexByte(line, ')')+1:])
			nice, _ = strconv.Atoi(f[16]) // field 19 of stat(5)
		}
		limits += line + "\n"
	}
	if nice == 1000 {
		t.Fatalf("no stat line for pid %d in %q", p.Pid(), out.get())
	}
	return status, nice, limits
}

func TestHelperSettings(t *testing.T) {
	nice := 7
	spec := Spec{
		Umask: 0o027,
		Nice:  &nice,
		Rlimits: []Rlimit{
			{Resource: unix.RLIMIT_NOFILE, Cur: 1000, Max: 2000},
			{Resource: unix.RLIMIT_CORE, Cur: 1 << 20, Max: 1 << 21},
		},
	}
	status, gotNice, limits := procStatus(t, spec)
	if status["Umask"] != "0027" {
		t.Errorf("umask %q, want 0027", status["Umask"])
	}
	if gotNice != 7 {
		t.Errorf("nice %d, want 7", gotNice)
	}
	if s, h, _ := limitsLine(limits, "Max open files"); s != "1000" || h != "2000" {
		t.Errorf("nofile %s:%s, want 1000:2000", s, h)
	}
	if s, h, _ := limitsLine(limits, "Max core file size"); s != "1048576" || h != "2097152" {
		t.Errorf("core %s:%s, want 1048576:2097152", s, h)
	}

	// Umask 0 is a umask, not "inherit".
	status, _, _ = procStatus(t, Spec{Umask: 0})
	if status["Umask"] != "0000" {
		t.Errorf("umask %q, want 0000", status["Umask"])
	}
	old := syscall.Umask(0o022)
	syscall.Umask(old)
	status, _, _ = procStatus(t, Spec{Umask: -1})
	if want := fmt.Sprintf("%04o", old); status["Umask"] != want {
		t.Errorf("inherited umask %q, want %q", status["Umask"], want)
	}
}

// TestRlimitNofileDefault starts a spawner (the test binary playing
// sockd) with a low RLIMIT_NOFILE soft limit, which Go raises for
// itself; the spawner's children must get the low limit back, with the
// exec helper too, unless Rlimits sets it.
func TestRlimitNofileDefault(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max < 4000 {
		t.Skipf("hard RLIMIT_NOFILE %d too low", lim.Max)
	}
	spec := selfSpec(t, "spawner")
	spec.Rlimits = []Rlimit{{Resource: unix.RLIMIT_NOFILE, Cur: 1024, Max: lim.Max}}
	out, errs, exit := run(t, spec)
	want := []string{fmt.Sprintf("own %d", lim.Max-1), "direct 1024", "helper 1024", "rlimit 2000"}
	if !exit.Success() || !slices.Equal(out, want) {
		t.Errorf("spawner: %v %q %q, want %q", exit, out, errs, want)
	}
}

func TestCredential(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	t.Run("direct", func(t *testing.T) {
		spec := shSpec("id -u; id -g; id -G")
		spec.Credential = nobody
		out, errs, exit := run(t, spec)
		if want := []string{"65534", "65534", "65534"}; !exit.Success() || !slices.Equal(out, want) {
			t.Errorf("id: %v %q %q, want %q", exit, out, errs, want)
		}
	})
	t.Run("helper", func(t *testing.T) {
		// A negative nice takes root: the helper sets it before it drops
		// to the user.
		nice := -5
		status, gotNice, _ := procStatus(t, Spec{Umask: -1, Credential: nobody, Nice: &nice, PIDEnv: "LISTEN_PID"})
		if status["Uid"] != "65534\t65534\t65534\t65534" || status["Gid"] != "65534\t65534\t65534\t65534" {
			t.Errorf("uid %q gid %q, want all 65534", status["Uid"], status["Gid"])
		}
		if g := strings.TrimSpace(status["Groups"]); g != "" {
			t.Errorf("supplementary groups %q, want none", g)
		}
		if gotNice != -5 {
			t.Errorf("nice %d, want -5", gotNice)
		}
	})
}

func TestLines(t *testing.T) {
	out, errs, exit := run(t, shSpec("echo a; echo b >&2; echo; echo 'c d'; printf last"))
	if !exit.Success() {
		t.Fatal(exit)
	}
	if want := []string{"a", "", "c d", "last"}; !slices.Equal(out, want) {
		t.Errorf("stdout %q, want %q", out, want)
	}
	if want := []string{"b"}; !slices.Equal(errs, want) {
		t.Errorf("stderr %q, want %q", errs, want)
	}

	// A line of exactly MaxLine bytes and one of 200000 are split, not lost.
	out, _, exit = run(t, shSpec(fmt.Sprintf("head -c %d /dev/zero | tr '\\0' x; echo; head -c 200000 /dev/zero | tr '\\0' y; echo; echo end", MaxLine)))
	if !exit.Success() {
		t.Fatal(exit)
	}
	var lens []int
	for _, l := range out {
		lens = append(lens, len(l))
	}
	if want := []int{MaxLine, MaxLine, MaxLine, MaxLine, 200000 - 3*MaxLine, 3}; !slices.Equal(lens, want) || out[len(out)-1] != "end" {
		t.Errorf("line lengths %v, want %v", lens, want)
	}
}

func TestFileOutput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	spec := shSpec("echo out; echo err >&2")
	spec.Stdout.File, spec.Stderr.File = f, f
	exit := waitDone(t, start(t, spec))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !exit.Success() || string(b) != "out\nerr\n" {
		t.Errorf("%v, file %q", exit, b)
	}
}

// pidfd opens a pidfd for pid, which becomes readable when pid exits.
func pidfd(t *testing.T, pid int) int {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		unix.Close(fd)
	})
	return fd
}

// exitedWithin reports whether the process behind pidfd exits within d.
func exitedWithin(t *testing.T, fd int, d time.Duration) bool {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, int(d.Milliseconds()))
	for err == unix.EINTR {
		n, err = unix.Poll(fds, int(d.Milliseconds()))
	}
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestStopGroup(t *testing.T) {
	p, gfd := startWithGrandchild(t, "", "wait", false)
	exit := p.Stop(syscall.SIGTERM, testTimeout, true, true)
	if exit.Signal != syscall.SIGTERM {
		t.Errorf("exit %v, want signal: terminated", exit)
	}
	if !exitedWithin(t, gfd, testTimeout) {
		t.Errorf("grandchild still runs after Stop with group")
	}
}

// TestStopLeaderOnly stops the shell only: its grandchild survives and
// keeps the stdout pipe open, and Done still comes after the grace.
func TestStopLeaderOnly(t *testing.T) {
	p, gfd := startWithGrandchild(t, "", "wait", false)
	exit := p.Stop(syscall.SIGTERM, testTimeout, false, false)
	if exit.Signal != syscall.SIGTERM {
		t.Errorf("exit %v, want signal: terminated", exit)
	}
	if exitedWithin(t, gfd, 0) {
		t.Errorf("grandchild died; only the leader was signalled")
	}
	// Reaped: group signals are no-ops now, the grandchild lives on.
	if err := p.SignalGroup(syscall.SIGKILL); err != nil {
		t.Errorf("SignalGroup after reap: %v", err)
	}
	if exitedWithin(t, gfd, 100*time.Millisecond) {
		t.Errorf("SignalGroup after reap reached the group")
	}
}

func TestDoneGraceWithGrandchildHoldingPipe(t *testing.T) {
	out := newCapture()
	spec := shSpec("sleep 100 & echo $!")
	spec.Stdout.Lines = out.add
	p := start(t, spec)
	grandchild, err := strconv.Atoi(out.next(t))
	if err != nil {
		t.Fatal(err)
	}
	pidfd(t, grandchild) // killed at cleanup
	<-p.Exited()
	began := time.Now()
	exit := waitDone(t, p)
	if !exit.Success() {
		t.Errorf("exit %v", exit)
	}
	if d := time.Since(began); d > OutputGrace+5*time.Second {
		t.Errorf("Done %v after the exit", d)
	}
}

func waitReady(t *testing.T, spec Spec) *Process {
	t.Helper()
	out := newCapture()
	spec.Stdout.Lines = out.add
	p := start(t, spec)
	if l := out.next(t); l != "ready" {
		t.Fatalf("child said %q", l)
	}
	return p
}

func TestStopEscalatesToSIGKILL(t *testing.T) {
	p := waitReady(t, selfSpec(t, "ignoreterm"))
	const timeout = 300 * time.Millisecond
	began := time.Now()
	exit := p.Stop(syscall.SIGTERM, timeout, true, false)
	d := time.Since(began)
	if exit.Signal != syscall.SIGKILL {
		t.Errorf("exit %v, want signal: killed", exit)
	}
	if d < timeout || d > timeout+testTimeout/2 {
		t.Errorf("Stop took %v with timeout %v", d, timeout)
	}
}

func TestStopWithoutEscalation(t *testing.T) {
	p := waitReady(t, selfSpec(t, "block"))
	began := time.Now()
	exit := p.Stop(syscall.SIGTERM, testTimeout, true, false)
	if exit.Signal != syscall.SIGTERM {
		t.Errorf("exit %v, want signal: terminated", exit)
	}
	if d := time.Since(began); d >= testTimeout {
		t.Errorf("Stop took %v: waited for the timeout", d)
	}
	if again := p.Stop(syscall.SIGKILL, 0, true, true); again != exit {
		t.Errorf("second Stop %v, first %v", again, exit)
	}
}

func TestSignal(t *testing.T) {
	p := waitReady(t, selfSpec(t, "block"))
	if err := p.Signal(syscall.SIGHUP); err != nil { // Go dies of SIGHUP
		t.Fatal(err)
	}
	if exit := waitDone(t, p); exit.Signal != syscall.SIGHUP {
		t.Errorf("exit %v, want signal: hangup", exit)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("Signal after reap: %v", err)
	}
	if err := p.SignalGroup(syscall.SIGTERM); err != nil {
		t.Errorf("SignalGroup after reap: %v", err)
	}
}

func TestProcessGroup(t *testing.T) {
	p := waitReady(t, selfSpec(t, "block"))
	pgid, err := syscall.Getpgid(p.Pid())
	if err != nil {
		t.Fatal(err)
	}
	if pgid != p.Pid() {
		t.Errorf("pgid %d, want the pid %d", pgid, p.Pid())
	}
	if p.Started().IsZero() || p.Path() == "" {
		t.Errorf("Started %v, Path %q", p.Started(), p.Path())
	}
}
