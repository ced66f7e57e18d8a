package supervisord

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/activation"
	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/testutil"
	"github.com/sockd/sockd/units"
)

// recoverSetup plays a previous sockd: it binds app's socket, starts a
// child serving on it (not through this package: the previous sockd is
// gone) and writes the state file naming it, with sockdPid as its
// writer. It returns the env (Daemon not opened yet), the child's pid
// and the held copy of the socket.
func recoverSetup(t *testing.T, sockdPid int, reexec bool) (*env, int, *os.File) {
	t.Helper()
	base := testutil.ShortDir(t)
	e := &env{t: t, dir: filepath.Join(base, "units"), sock: filepath.Join(base, "app.sock"), obs: make(chan api.ServiceStatus, 1024)}
	os.MkdirAll(e.dir, 0o755)
	e.write("app.socket", "[Socket]\nListenStream="+e.sock+"\n")
	e.write("app.service", e.service("Environment=SOCKD_TEST_CHILD=run\n"))
	rt := filepath.Join(base, "rt")
	os.MkdirAll(rt, 0o755)

	ls, err := activation.Open(&units.Socket{Name: "app.socket", Listens: []units.Listen{{Network: "unix", Address: e.sock}}})
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0"`, self)
	cmd.Env = []string{"SOCKD_TEST_CHILD=run", "LISTEN_FDS=1", "LISTEN_FDNAMES=app", "GORACE=atexit_sleep_ms=0"}
	cmd.ExtraFiles = []*os.File{ls[0].File()}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || !strings.HasPrefix(line, "child ready") {
		t.Fatalf("child: %q %v", line, err)
	}
	start, err := processStart(pid)
	if err != nil {
		t.Fatal(err)
	}
	st := stateFile{Version: stateVersion, Pid: sockdPid, Reexec: reexec, Units: map[string]unitState{
		"app.service": {Gen: 4, Procs: []procState{{Pid: pid, Start: start, Gen: 4, Slot: 0, Ready: true}}},
	}}
	if err := writeState(filepath.Join(rt, stateFileName), &st); err != nil {
		t.Fatal(err)
	}
	d, err := unix.FcntlInt(ls[0].File().Fd(), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		t.Fatal(err)
	}
	held := os.NewFile(uintptr(d), "held")
	// The previous sockd's copy goes (its socket file stays, as after a
	// SIGKILL).
	ls[0].File().Close()
	e.d = New(Config{UnitsDir: e.dir, RuntimeDir: rt, Log: zerolog.New(zerolog.NewTestWriter(t)).With().Timestamp().Logger(),
		Observe: func(unit string, st api.ServiceStatus) {
			select {
			case e.obs <- st:
			default:
			}
		},
		Held: &Held{Files: map[string]*os.File{listenName("app.socket", 0): held}}})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.d.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return e, pid, held
}

// After a crash (the state file is another sockd's): the child is
// adopted on the very socket, then replaced by an overlapping restart,
// with no request failing.
func TestRecoverAfterCrash(t *testing.T) {
	e, old, _ := recoverSetup(t, 1, false)
	pidfd, err := unix.PidfdOpen(old, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	if err := e.d.Open(); err != nil {
		t.Fatal(err)
	}
	st := e.await(func(st api.ServiceStatus) bool {
		return st.State == api.StateActive && len(st.Pids) == 1 && st.Pids[0] != old
	})
	if pid, _ := e.mustGet(); pid != st.Pids[0] {
		t.Fatalf("served by %d, status says %v", pid, st.Pids)
	}
	// The adopted child drains once the new one is ready: its pidfd
	// becomes readable when it exits.
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 20000)
	for err == unix.EINTR {
		n, err = unix.Poll(fds, 20000)
	}
	if err != nil || n != 1 {
		t.Fatalf("the adopted child %d was not replaced", old)
	}
}

// After a re-exec (the state file is this process's, marked reexec): the
// child is kept, serving, and stopped by the next stop.
func TestRecoverAfterReexec(t *testing.T) {
	e, old, _ := recoverSetup(t, os.Getpid(), true)
	if err := e.d.Open(); err != nil {
		t.Fatal(err)
	}
	st := e.status()
	if st.State != api.StateActive || len(st.Pids) != 1 || st.Pids[0] != old {
		t.Fatalf("after a re-exec: %+v, want %d kept", st, old)
	}
	if pid, _ := e.mustGet(); pid != old {
		t.Fatalf("served by %d, want the kept %d", pid, old)
	}
	if err := e.d.Stop(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	if alive(old) {
		t.Fatalf("stop left the kept child %d", old)
	}
}
