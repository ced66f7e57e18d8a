package supervisord

// Real units as Debian ships them: behaviours they rely on.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/rs/zerolog"
	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/testutil"
)

// A Type=notify service with User= reaches NOTIFY_SOCKET and becomes
// ready: the runtime directory is searchable by every user and the
// socket is 0666; messages are authenticated by the sender's pid.
func TestNotifyUnderUser(t *testing.T) {
	notify, err := exec.LookPath("systemd-notify")
	if err != nil {
		t.Fatal("systemd-notify (Debian's systemd package, installed by .ci/deps) is needed:", err)
	}
	e := newEnv(t, "Type=notify\nUser=nobody\nNotifyAccess=all\nTimeoutStartSec=20s\n"+
		"ExecStart=\nExecStart=/bin/sh -c '"+notify+" --ready; exec sleep 60'\n")
	// The test's temporary directories are 0700; a unit's runtime
	// directory lives under / or /run, whose parents every user can search.
	for dir := filepath.Dir(e.sock); dir != "/" && dir != os.TempDir(); dir = filepath.Dir(dir) {
		os.Chmod(dir, 0o755)
	}
	if err := e.d.Start(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	st := e.status()
	if st.State != api.StateActive {
		t.Fatalf("%+v", st)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(st.Pids[0]) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\nUid:\t65534\t") {
		t.Fatalf("not running as nobody:\n%s", b)
	}
}

// Without --runtime-dir, sockd as root uses /run/sockd, made searchable
// by every user (here moved under a temporary directory).
func TestDefaultRuntimeDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("sockd's tests run as root")
	}
	base := testutil.ShortDir(t)
	old := defaultRuntimeDir
	defaultRuntimeDir = filepath.Join(base, "run", "sockd")
	t.Cleanup(func() { defaultRuntimeDir = old })
	units := filepath.Join(base, "units")
	os.MkdirAll(units, 0o755)
	d := New(Config{UnitsDir: units, Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())
	fi, err := os.Stat(defaultRuntimeDir)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("runtime directory: %v %v", fi, err)
	}
	sock, err := os.Stat(filepath.Join(defaultRuntimeDir, "notify.sock"))
	if err != nil || sock.Mode().Perm() != 0o666 {
		t.Fatalf("notify socket: %v %v", sock, err)
	}
}

// A real Type=forking daemon: the first process starts a daemon in its
// own session, writes its pid to PIDFile= and exits; sockd (the child
// subreaper) adopts the daemon, stops it, and restarts it stop-first.
func TestForkingDaemon(t *testing.T) {
	dir := testutil.ShortDir(t)
	pidFile := filepath.Join(dir, "d.pid")
	e := newEnv(t, "Type=forking\nPIDFile="+pidFile+"\nExecStart=\nExecStart=/bin/sh -c '(setsid sleep 61.75 & echo $! >"+pidFile+")'\n")
	t.Cleanup(func() {
		for _, pid := range childrenRunning(t, "61.75") {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	if err := e.d.Start(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	st := e.status()
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if st.State != api.StateActive || st.MainPID != pid || !slices.Equal(st.Pids, []int{pid}) {
		t.Fatalf("status %+v, want main pid %d", st, pid)
	}
	res, evs := e.restart(api.RestartOptions{})
	if !res.OK || len(res.NewPids) != 1 || !strings.Contains(phases(evs), "note,draining,stopped") {
		t.Fatalf("restart %+v %s", res, phases(evs))
	}
	if alive(pid) {
		t.Fatalf("old daemon %d alive after the restart", pid)
	}
	st = e.status()
	if err := e.d.Stop(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	if alive(st.MainPID) {
		t.Fatalf("daemon %d alive after stop", st.MainPID)
	}
	if z := zombies(t); len(z) > 0 {
		t.Fatalf("zombies %v", z)
	}
}

// A PID file that names a process the service did not start (here the
// test's parent, alive and no descendant of sockd) is refused: the start
// fails with result protocol, and nothing is signalled.
func TestForkingPIDFileStranger(t *testing.T) {
	dir := testutil.ShortDir(t)
	pidFile := filepath.Join(dir, "d.pid")
	os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getppid())), 0o644)
	e := newEnv(t, "Type=forking\nPIDFile="+pidFile+"\nExecStart=\nExecStart=/bin/true\n")
	err := e.d.Start(e.ctx(), "app")
	if err == nil || !strings.Contains(err.Error(), "not a process the service started") {
		t.Fatalf("start: %v", err)
	}
	if st := e.status(); st.Result != "protocol" || len(st.Pids) != 0 {
		t.Fatalf("%+v", st)
	}
}
