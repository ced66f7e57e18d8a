package supervisord

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/cgroup"
)

// testCgroup returns a new cgroup base for one test below this machine's
// cgroup v2 mount (/sys/fs/cgroup/unified here and in CI), removed after
// the test, whatever is left in it killed. The tests that call it need
// cgroup v2 and fail without it.
func testCgroup(t *testing.T) string {
	t.Helper()
	mnt, err := cgroup.Mount()
	if err != nil {
		t.Fatalf("this test needs a cgroup v2 mount (/sys/fs/cgroup or /sys/fs/cgroup/unified): %v", err)
	}
	dir := filepath.Join(mnt, fmt.Sprintf("sockd-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	t.Cleanup(func() {
		h, err := cgroup.Open(dir)
		if err != nil {
			t.Errorf("cgroup cleanup: %v", err)
			return
		}
		base, err := h.Base()
		if err == nil {
			if pids, _ := base.AllProcs(); len(pids) > 0 {
				t.Errorf("processes left in the test's cgroups after shutdown: %v", pids)
			}
			base.Kill()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			base.WaitEmpty(ctx)
			cancel()
		}
		h.RemoveEmptyUnits()
		if err := h.Remove(); err != nil {
			t.Errorf("cgroup cleanup: %v", err)
		}
	})
	return dir
}

// envCgroup is the cgroup base of every newEnv test when
// SOCKD_TEST_CGROUP is set (the whole suite with cgroups), else none.
func envCgroup(t *testing.T) string {
	if os.Getenv("SOCKD_TEST_CGROUP") == "" {
		return ""
	}
	return testCgroup(t)
}

// A service's grandchild that calls setsid() leaves the process group,
// not the cgroup: it is listed in the unit's status and stopped with it.
func TestCgroupKeepsDaemonizedGrandchild(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "grandchild")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnvCgroup(t, "", testCgroup(t))
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	e.write("app.service", "[Service]\nExecStart=/bin/sh -c '"+self+" </dev/null >/dev/null 2>&1 & exec sleep 1000'\nTimeoutStopSec=5s\n"+
		"Environment=SOCKD_TEST_CHILD=setsid CHILD_FIFO="+fifo+" GORACE=atexit_sleep_ms=0\n")
	if _, err := e.d.Reload(e.ctx()); err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 1)
	go func() {
		var pid int
		if f, err := os.Open(fifo); err == nil { // blocks until the shell writes
			fmt.Fscan(f, &pid)
			f.Close()
		}
		got <- pid
	}()
	if err := e.d.Start(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	var grand int
	select {
	case grand = <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("the service did not report its grandchild")
	}
	if grand <= 0 {
		t.Fatal("no grandchild pid")
	}
	pidfd, err := unix.PidfdOpen(grand, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	t.Cleanup(func() { unix.PidfdSendSignal(pidfd, syscall.SIGKILL, nil, 0) })

	st := e.status()
	if len(st.Pids) != 1 {
		t.Fatalf("pids %v", st.Pids)
	}
	if sid, _ := unix.Getsid(grand); sid != grand {
		t.Fatalf("grandchild %d: session %d, want its own (setsid)", grand, sid)
	}
	if pgid, _ := unix.Getpgid(grand); pgid == st.Pids[0] {
		t.Fatalf("grandchild %d still in the service's process group", grand)
	}
	if !strings.HasPrefix(st.ControlGroup, "cgroup ") || !strings.HasSuffix(st.ControlGroup, "/app.service") {
		t.Fatalf("control group %q", st.ControlGroup)
	}
	if !slices.Contains(st.CgroupPids, grand) || !slices.Contains(st.CgroupPids, st.Pids[0]) {
		t.Fatalf("cgroup pids %v: want the service %d and its grandchild %d", st.CgroupPids, st.Pids[0], grand)
	}

	if err := e.d.Stop(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	// The stop is done once the cgroup is empty: the grandchild is gone
	// now, not later.
	if n, err := unix.Poll([]unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}, 0); err != nil || n != 1 {
		t.Fatalf("grandchild %d still running after the stop (%d, %v)", grand, n, err)
	}
	if alive(grand) { // gone, or a zombie the reaper has not reaped yet
		t.Fatalf("grandchild %d alive after the stop", grand)
	}
	if st := e.status(); len(st.CgroupPids) != 0 || st.State != api.StateInactive {
		t.Fatalf("after stop: %+v", st)
	}
}

// Without cgroups the status says the unit's control group is its
// process group.
func TestCgroupOffSaysProcessGroup(t *testing.T) {
	e := newEnvCgroup(t, notifyService, "")
	e.mustGet()
	if st := e.status(); st.ControlGroup != "process group" || st.CgroupPids != nil {
		t.Fatalf("status %+v", st)
	}
}

// An overlapping restart runs two generations in two leaves: the end
// of the old one kills its leaf, never the new one's.
func TestCgroupRestartKeepsNewGeneration(t *testing.T) {
	e := newEnvCgroup(t, notifyService, testCgroup(t))
	old, _ := e.mustGet()
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
	oldPath, err := cgroup.PathOf(old)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		res, _ := e.restart(api.RestartOptions{})
		if !res.OK || len(res.NewPids) != 1 {
			t.Fatalf("restart %d: %+v", i, res)
		}
		nw := res.NewPids[0]
		newPath, err := cgroup.PathOf(nw)
		if err != nil || newPath == oldPath || filepath.Dir(newPath) != filepath.Dir(oldPath) {
			t.Fatalf("new generation's cgroup %q (%v), old %q: want a sibling leaf", newPath, err, oldPath)
		}
		if alive(old) {
			t.Fatalf("old pid %d alive", old)
		}
		if pid, _ := e.mustGet(); pid != nw {
			t.Fatalf("answer from %d, want %d", pid, nw)
		}
		if st := e.status(); !slices.Equal(st.CgroupPids, []int{nw}) {
			t.Fatalf("cgroup pids %v, want only %d", st.CgroupPids, nw)
		}
		old, oldPath = nw, newPath
	}
}

// Resource options apply where the hierarchy has the controller; where
// it has not (memory, pids, cpu, io are not in this machine's v2
// hierarchy), each is a warning with its file, line and option.
func TestCgroupResourceWarnings(t *testing.T) {
	e := newEnvCgroup(t, notifyService+"MemoryMax=1G\nTasksMax=64\n", testCgroup(t))
	res, err := e.d.Reload(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	avail := e.d.cg.Available()
	file := filepath.Join(e.dir, "app.service")
	lines := strings.Split(e.service(notifyService+"MemoryMax=1G\nTasksMax=64\n"), "\n")
	for _, c := range []struct{ opt, ctrl, file, want string }{{"MemoryMax", "memory", "memory.max", "1073741824"}, {"TasksMax", "pids", "pids.max", "64"}} {
		var dg *api.Diagnostic
		for i := range res.Diagnostics {
			if res.Diagnostics[i].Option == c.opt {
				dg = &res.Diagnostics[i]
			}
		}
		if slices.Contains(avail, c.ctrl) {
			// A machine with the controller: the value is applied.
			if dg != nil {
				t.Errorf("%s: warning %q although %s is available", c.opt, dg.Text, c.ctrl)
			}
			e.mustGet()
			b, err := os.ReadFile(filepath.Join(e.d.cg.Dir(), "app.service", c.file))
			if err != nil || strings.TrimSpace(string(b)) != c.want {
				t.Errorf("%s: %q, %v; want %s", c.file, b, err, c.want)
			}
			continue
		}
		line := slices.Index(lines, c.opt+"="+strings.TrimPrefix(c.want, "")) + 1
		if c.opt == "MemoryMax" {
			line = slices.Index(lines, "MemoryMax=1G") + 1
		}
		if dg == nil || dg.Severity != "warning" || dg.File != file || dg.Line != line ||
			!strings.Contains(dg.Message, c.ctrl+" controller is not in the cgroup v2 hierarchy") {
			t.Fatalf("%s: diagnostic %+v; want a warning on %s:%d", c.opt, dg, file, line)
		}
	}
	// The unit still runs, in its cgroup.
	pid, _ := e.mustGet()
	if p, err := cgroup.PathOf(pid); err != nil || !strings.Contains(p, "/app.service/") {
		t.Fatalf("cgroup of the service %q, %v", p, err)
	}
}

// Restarts with cgroups leave no goroutine (a leaf's watcher), no fd (a
// leaf's, an inotify's), no cgroup and no zombie behind.
func TestCgroupRestartNoLeaks(t *testing.T) {
	e := newEnvCgroup(t, notifyService, testCgroup(t))
	restartsLeaveNothing(t, e, 50)
	ents, err := os.ReadDir(filepath.Join(e.d.cg.Dir(), "app.service"))
	if err != nil {
		t.Fatal(err)
	}
	var leaves []string
	for _, de := range ents {
		if de.IsDir() {
			leaves = append(leaves, de.Name())
		}
	}
	if len(leaves) != 1 {
		t.Fatalf("leaves %v: want the serving process's only", leaves)
	}
}

// cgroupFDs lists this process's fds open on dir (or below it).
func cgroupFDs(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && (l == dir || strings.HasPrefix(l, dir+"/")) {
			out = append(out, e.Name()+" → "+l)
		}
	}
	return out
}

// An idle unit has no cgroup: it is made at the first process, and the
// unit lets it go (its fd) once it is idle again and parks. Status names
// it all along.
func TestCgroupOnlyWhileRunning(t *testing.T) {
	base := testCgroup(t)
	e := newEnvCgroup(t, notifyService, base)
	dir := filepath.Join(base, "app.service")
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("an idle unit's cgroup %s: %v, want none", dir, err)
	}
	if st := e.status(); st.ControlGroup != "cgroup "+dir {
		t.Fatalf("idle: control group %q, want cgroup %s", st.ControlGroup, dir)
	}
	e.mustGet()
	if fds := cgroupFDs(t, dir); len(fds) == 0 {
		t.Fatalf("running: no fd on %s", dir)
	}
	h, err := e.d.lookup("app")
	if err != nil {
		t.Fatal(err)
	}
	parked := make(chan struct{}, 1)
	h.park.mu.Lock() // onPark is called under it
	h.park.onPark = func() {
		select {
		case parked <- struct{}{}:
		default:
		}
	}
	h.park.mu.Unlock()
	if err := e.d.Stop(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	for !h.park.isParked() {
		select {
		case <-parked:
		case <-time.After(10 * time.Second):
			t.Fatal("the stopped unit did not park within 10 s")
		}
	}
	if fds := cgroupFDs(t, dir); len(fds) != 0 {
		t.Fatalf("idle again: fds still open on its cgroup: %v", fds)
	}
	if st := e.status(); st.ControlGroup != "cgroup "+dir {
		t.Fatalf("idle again: control group %q", st.ControlGroup)
	}
	e.mustGet() // and again, from the cgroup left in place
}
