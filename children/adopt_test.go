package children

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readPIDFile waits for path to hold a pid and returns it.
func readPIDFile(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		b, err := os.ReadFile(path)
		if s := string(b); err == nil && strings.HasSuffix(s, "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				t.Fatalf("%s: %q", path, s)
			}
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s after %v", path, testTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startDaemon runs a forking daemon's first process: sh starts daemon
// (a shell script) in a session of its own, writes its pid to a PID file
// and exits. It returns the daemon's pid, killed at cleanup, and the
// directory the PID file is in (also the daemon's $1).
func startDaemon(t *testing.T, daemon string) (int, string) {
	t.Helper()
	dir := t.TempDir()
	spec := shSpec(`setsid sh -c '` + daemon + `' sh "$0" </dev/null >/dev/null 2>&1 & echo $! >"$0/pid"`)
	spec.Argv = append(spec.Argv, dir)
	p := start(t, spec)
	if exit := waitDone(t, p); !exit.Success() {
		t.Fatalf("the daemon's first process: %v", exit)
	}
	pid := readPIDFile(t, filepath.Join(dir, "pid"))
	pidfd(t, pid)
	return pid, dir
}

// waitExit waits for an adopted process's Done and returns its Exit.
func waitExit(t *testing.T, p *Process) ExitStatus {
	t.Helper()
	exit := waitDone(t, p)
	select {
	case <-p.Exited():
	default:
		t.Error("Done closed before Exited")
	}
	// Reaped if its status is known; otherwise it may yet become our
	// zombie, for the reaper.
	if exit.Err == nil && ourZombie(p.Pid()) {
		t.Errorf("pid %d left a zombie", p.Pid())
	}
	return exit
}

func adopt(t *testing.T, pid int) *Process {
	t.Helper()
	p, err := Adopt(pid)
	if err != nil {
		t.Fatalf("Adopt(%d): %v", pid, err)
	}
	t.Cleanup(func() { p.Stop(syscall.SIGKILL, 0, true, false) })
	return p
}

// A double-forked daemon becomes our child when its first process
// exits; adopted, it is signalled, its group too, and its exit status is
// known. Nothing is left after: no zombie, no pidfd.
func TestAdoptForkingDaemon(t *testing.T) {
	// The daemon leads its group, with a second member that outlives it
	// if the group is not signalled.
	pid, dir := startDaemon(t, `sleep 100 & echo $! >"$1/member"; wait`)
	member := readPIDFile(t, filepath.Join(dir, "member"))
	fds := openFds(t)
	if !ourChild(pid) {
		t.Fatalf("daemon %d is not our child", pid)
	}
	if o := Orphans(); !slices.Contains(o, pid) {
		t.Errorf("Orphans() = %v, without the daemon %d", o, pid)
	}
	p := adopt(t, pid)
	if o := Orphans(); slices.Contains(o, pid) {
		t.Errorf("Orphans() = %v, with the adopted %d", o, pid)
	}
	if p.Pid() != pid || p.Path() == "" || p.Started().IsZero() {
		t.Errorf("Pid %d (want %d), Path %q, Started %v", p.Pid(), pid, p.Path(), p.Started())
	}
	if p.Exit() != (ExitStatus{}) {
		t.Errorf("Exit before the exit: %v", p.Exit())
	}

	if err := p.SignalGroup(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	exit := waitExit(t, p)
	if exit.Signal != syscall.SIGKILL || exit.Code != -1 || exit.Err != nil {
		t.Errorf("exit %+v, want killed by SIGKILL", exit)
	}
	waitGone(t, member) // killed with the group, reaped by the reaper
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("Signal after the exit: %v", err)
	}
	if err := p.SignalGroup(syscall.SIGTERM); err != nil {
		t.Errorf("SignalGroup after the exit: %v", err)
	}
	if again := p.Stop(syscall.SIGTERM, time.Second, true, true); again != exit {
		t.Errorf("Stop after the exit: %v, want %v", again, exit)
	}
	if n := openFds(t); n != fds {
		t.Errorf("%d fds open, %d before: the pidfd leaked", n, fds)
	}
}

// The exit code of a daemon that exits by itself.
func TestAdoptExitCode(t *testing.T) {
	pid, dir := startDaemon(t, `while [ ! -e "$1/go" ]; do sleep 0.01; done; exit 7`)
	p := adopt(t, pid)
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if exit := waitExit(t, p); exit.Code != 7 || exit.Signal != 0 || exit.Err != nil {
		t.Errorf("exit %+v, want exit status 7", exit)
	}
}

// Signal reaches the process alone, through its pidfd; Terminate
// escalates.
func TestAdoptTerminate(t *testing.T) {
	pid, dir := startDaemon(t, `trap "" TERM; sleep 100 & echo $! >"$1/member"; wait`)
	member := readPIDFile(t, filepath.Join(dir, "member"))
	p := adopt(t, pid)
	mfd := pidfd(t, member)
	exit := p.Terminate(syscall.SIGTERM, Main, 200*time.Millisecond, Main)
	if exit.Signal != syscall.SIGKILL {
		t.Errorf("exit %v, want killed after ignoring SIGTERM", exit)
	}
	if exitedWithin(t, mfd, 0) {
		t.Error("the group member died: only the main process was signalled")
	}
}

// A process that is not our descendant (its parent, a shell, stays and
// reaps it) can be adopted and signalled; its exit status is unknown.
func TestAdoptNotChild(t *testing.T) {
	out := newCapture()
	spec := shSpec("sleep 100 & echo $!; wait")
	spec.Stdout.Lines = out.add
	parent := start(t, spec)
	pid, err := strconv.Atoi(out.next(t))
	if err != nil {
		t.Fatal(err)
	}
	pidfd(t, pid)
	p := adopt(t, pid)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exit := waitExit(t, p)
	if !errors.Is(exit.Err, ErrNotChild) || exit.Code != -1 || exit.Success() {
		t.Errorf("exit %+v, want Err ErrNotChild", exit)
	}
	if s := exit.String(); s != "unknown status: not a child of sockd" {
		t.Errorf("exit %q", s)
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Errorf("Signal after the exit: %v", err)
	}
	if exit := waitDone(t, parent); !exit.Success() {
		t.Errorf("the parent: %v", exit)
	}
}

// SignalGroup reaches a group the process does not lead, and refuses
// sockd's own.
func TestAdoptSignalGroup(t *testing.T) {
	t.Run("other", func(t *testing.T) {
		out := newCapture()
		spec := shSpec("sleep 100 & echo $!; wait")
		spec.Stdout.Lines = out.add
		parent := start(t, spec)
		pid, err := strconv.Atoi(out.next(t))
		if err != nil {
			t.Fatal(err)
		}
		pidfd(t, pid)
		p := adopt(t, pid)
		if err := p.SignalGroup(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if exit := waitDone(t, parent); exit.Signal != syscall.SIGKILL {
			t.Errorf("the group leader: %v, want killed", exit)
		}
		// Whether the shell or sockd reaped it depends on who died first.
		if exit := waitExit(t, p); exit.Signal != syscall.SIGKILL && !errors.Is(exit.Err, ErrNotChild) {
			t.Errorf("exit %+v, want killed or not our child", exit)
		}
		waitGone(t, pid)
	})
	t.Run("sockd's own", func(t *testing.T) {
		// Our child, forked without a group of its own.
		pid, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "100"}, &syscall.ProcAttr{})
		if err != nil {
			t.Fatal(err)
		}
		fd := pidfd(t, pid)
		p := adopt(t, pid)
		if err := p.SignalGroup(syscall.SIGTERM); err == nil || !strings.Contains(err.Error(), "sockd's own process group") {
			t.Errorf("SignalGroup: %v, want refused", err)
		}
		if exitedWithin(t, fd, 0) {
			t.Fatal("signalled")
		}
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if exit := waitExit(t, p); exit.Signal != syscall.SIGTERM || exit.Err != nil {
			t.Errorf("exit %+v, want terminated", exit)
		}
	})
}

func TestAdoptRefuses(t *testing.T) {
	gone := start(t, shSpec("exit 0"))
	waitDone(t, gone)
	running := waitReady(t, selfSpec(t, "block"))
	for _, tc := range []struct {
		pid  int
		want string
		is   error
	}{
		{-3, "adopt pid -3: not a process sockd may adopt", nil},
		{0, "adopt pid 0: not a process sockd may adopt", nil},
		{1, "adopt pid 1: not a process sockd may adopt", nil},
		{os.Getpid(), "adopt pid " + strconv.Itoa(os.Getpid()) + ": not a process sockd may adopt", nil},
		{gone.Pid(), "adopt pid " + strconv.Itoa(gone.Pid()) + ": pidfd_open: no such process", syscall.ESRCH},
		{running.Pid(), "adopt pid " + strconv.Itoa(running.Pid()) + ": a Process already waits for it", nil},
	} {
		p, err := Adopt(tc.pid)
		if err == nil {
			p.Stop(syscall.SIGKILL, 0, true, false)
			t.Errorf("Adopt(%d) succeeded", tc.pid)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("Adopt(%d): %q, want %q", tc.pid, err, tc.want)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("Adopt(%d): %q is not %v", tc.pid, err, tc.is)
		}
	}

	// Adopted once, not twice; again after the exit.
	pid, _ := startDaemon(t, "exec sleep 100")
	p := adopt(t, pid)
	if _, err := Adopt(pid); err == nil || !strings.Contains(err.Error(), "already waits") {
		t.Errorf("second Adopt: %v", err)
	}
	p.Signal(syscall.SIGKILL)
	waitExit(t, p)
	if _, err := Adopt(pid); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("Adopt after the exit: %v, want ESRCH", err)
	}
}

// AdoptOutput reads on the output pipe of a process sockd did not start
// through this Process (after a re-exec, the read end comes back from the
// fd holder): lines written before and after the adoption arrive, and
// Done waits for them.
func TestAdoptOutput(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", "echo one; read x; echo two; exit 3")
	cmd.Stdin, cmd.Stdout = inR, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	inR.Close()
	lines := newCapture()
	p, err := AdoptOutput(cmd.Process.Pid, []Pipe{{Stream: "stdout", File: r, Lines: lines.add}})
	if err != nil {
		t.Fatal(err)
	}
	inW.WriteString("go\n")
	inW.Close()
	if st := waitDone(t, p); st.Code != 3 {
		t.Errorf("exit %v, want status 3 (sockd is the parent here)", st)
	}
	if got := strings.Join(lines.get(), ","); got != "one,two" {
		t.Errorf("lines %q, want one,two", got)
	}
}
