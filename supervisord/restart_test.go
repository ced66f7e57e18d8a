package supervisord

import (
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/api"
)

const notifyService = "Type=notify\nEnvironment=SOCKD_TEST_CHILD=serve\n"

// The first connection spawns the child; nothing runs before.
func TestLazyStart(t *testing.T) {
	e := newEnv(t, notifyService)
	if st := e.status(); st.State != api.StateInactive || len(st.Pids) != 0 || st.SubState != "listening" {
		t.Fatalf("before any connection: %+v", st)
	}
	pid, _ := e.mustGet()
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
	st := e.status()
	if st.State != api.StateActive || len(st.Pids) != 1 || st.Pids[0] != pid || st.Status != "serving" {
		t.Fatalf("after a connection: %+v, want active [%d]", st, pid)
	}
}

// A restart starts the new generation beside the old, waits for READY=1,
// then drains the old one; phases arrive in order.
func TestRestartOverlapping(t *testing.T) {
	e := newEnv(t, notifyService+"Environment=CHILD_DELAY=200ms\n")
	var evs []api.Event
	old, _ := e.mustGet()
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
	// The old child (Go) made the shared socket non-blocking; starting
	// the new one beside it must not switch it back under its feet.
	u, _ := e.d.lookup("app")
	var blockedDuringOverlap []bool
	res, err := e.d.Restart(e.ctx(), "app", api.RestartOptions{Wait: true}, func(ev api.Event) {
		evs = append(evs, ev)
		if ev.Phase == api.PhaseWaiting {
			blockedDuringOverlap = append(blockedDuringOverlap, !nonBlocking(t, u.ls[0].File()))
		}
	})
	if err != nil || !res.OK || res.Outcome != "done" || len(res.NewPids) != 1 || res.OldPids[0] != old {
		t.Fatalf("result %+v %v", res, err)
	}
	if len(blockedDuringOverlap) != 1 || blockedDuringOverlap[0] {
		t.Fatalf("socket blocking during the overlap: %v (want non-blocking, as the serving child set it)", blockedDuringOverlap)
	}
	if got := phases(evs); got != "spawned,waiting,ready,draining,stopped,done" {
		t.Fatalf("phases %s", got)
	}
	if alive(old) {
		t.Fatalf("old pid %d alive after the restart completed", old)
	}
	pid, _ := e.mustGet()
	if pid != res.NewPids[0] {
		t.Fatalf("answer from %d, want the new pid %d", pid, res.NewPids[0])
	}
	if st := e.status(); st.Restarts != 1 || st.Generation != 2 || st.LastRestart == nil || !st.LastRestart.OK {
		t.Fatalf("status %+v", st)
	}
}

// A restart to a build that exits at once, or never becomes ready,
// leaves the old pid serving and reports why with the new one's output.
func TestRestartRollback(t *testing.T) {
	for _, tc := range []struct{ name, lines, cause, tail string }{
		{"exits", "Environment=SOCKD_TEST_CHILD=fail\n", "exited before ready: exit status 3", "broken build: cannot start"},
		{"never-ready", "Environment=SOCKD_TEST_CHILD=never-ready\nTimeoutStartSec=500ms\n", "not ready within TimeoutStartSec=", "child ready"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, notifyService)
			old, _ := e.mustGet()
			e.reload("Type=notify\n" + tc.lines)
			res, evs := e.restart(api.RestartOptions{})
			if res.OK || res.Outcome != "rolled-back" || !strings.Contains(res.Cause, tc.cause) {
				t.Fatalf("result %+v, want rolled-back with %q", res, tc.cause)
			}
			if !strings.Contains(strings.Join(res.LogTail, "\n"), tc.tail) {
				t.Fatalf("log tail %q, want %q", res.LogTail, tc.tail)
			}
			if got := phases(evs); !strings.HasSuffix(got, "failed") || strings.Contains(got, "draining") {
				t.Fatalf("phases %s", got)
			}
			if pid, _ := e.mustGet(); pid != old {
				t.Fatalf("answer from %d after rollback, want the old %d", pid, old)
			}
			if st := e.status(); st.State != api.StateActive || len(st.Pids) != 1 || st.Pids[0] != old || st.LastRestart.OK {
				t.Fatalf("status %+v", st)
			}
			for _, p := range res.NewPids {
				if alive(p) {
					t.Fatalf("failed new pid %d still alive", p)
				}
			}
		})
	}
}

// Concurrent restarts of one unit never interleave: each restart's old
// pid is the previous one's new pid, and queued ones are coalesced.
func TestRestartsSerialized(t *testing.T) {
	e := newEnv(t, notifyService+"Environment=CHILD_DELAY=50ms\n")
	first, _ := e.mustGet()
	var wg sync.WaitGroup
	results := make(chan api.RestartResult, 6)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := e.d.Restart(e.ctx(), "app", api.RestartOptions{Wait: true}, nil)
			if err != nil || !res.OK {
				t.Errorf("restart: %+v %v", res, err)
			}
			results <- res
		}()
	}
	wg.Wait()
	close(results)
	chain := map[int]int{} // old pid → new pid, one entry per distinct restart
	for r := range results {
		if len(r.OldPids) != 1 || len(r.NewPids) != 1 {
			t.Fatalf("result %+v", r)
		}
		if n, ok := chain[r.OldPids[0]]; ok && n != r.NewPids[0] {
			t.Fatalf("two restarts replaced pid %d: interleaved", r.OldPids[0])
		}
		chain[r.OldPids[0]] = r.NewPids[0]
	}
	// Walk the chain from the first pid: it must cover every restart.
	pid, steps := first, 0
	for {
		next, ok := chain[pid]
		if !ok {
			break
		}
		pid, steps = next, steps+1
	}
	if steps != len(chain) || steps < 2 {
		t.Fatalf("restarts did not form one chain from %d: %v", first, chain)
	}
	if st := e.status(); len(st.Pids) != 1 || st.Pids[0] != pid {
		t.Fatalf("running %v, want the chain's end %d", st.Pids, pid)
	}
}

// A stop during a start that waits for readiness cancels the start.
func TestStopDuringStart(t *testing.T) {
	e := newEnv(t, "Type=notify\nEnvironment=SOCKD_TEST_CHILD=never-ready\nTimeoutStartSec=60s\n")
	startErr := make(chan error, 1)
	go func() { startErr <- e.d.Start(e.ctx(), "app") }()
	st := e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 1 })
	pid := st.Pids[0]
	if err := e.d.Stop(e.ctx(), "app"); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := <-startErr; err == nil || !strings.Contains(err.Error(), "canceled by stop") {
		t.Fatalf("start returned %v, want canceled by stop", err)
	}
	if alive(pid) {
		t.Fatalf("pid %d alive after stop", pid)
	}
	if st := e.status(); st.State != api.StateInactive || len(st.Pids) != 0 {
		t.Fatalf("after stop: %+v", st)
	}
}

// A reload during a restart is applied after it; the next restart uses it.
func TestReloadDuringRestart(t *testing.T) {
	e := newEnv(t, notifyService+"Environment=CHILD_DELAY=300ms CHILD_TAG=v1\n")
	e.mustGet()
	done := make(chan api.RestartResult, 1)
	go func() {
		res, _ := e.d.Restart(e.ctx(), "app", api.RestartOptions{Wait: true}, nil)
		done <- res
	}()
	e.reload(notifyService + "Environment=CHILD_TAG=v2\n")
	if res := <-done; !res.OK {
		t.Fatalf("restart during reload: %+v", res)
	}
	if res, _ := e.restart(api.RestartOptions{}); !res.OK {
		t.Fatalf("restart after reload: %+v", res)
	}
	if _, tag := e.mustGet(); tag != "v2" {
		t.Fatalf("tag %q after reload and restart, want v2", tag)
	}
}

// --stop-first keeps systemd's order: the old process is gone before the
// new one starts.
func TestRestartStopFirst(t *testing.T) {
	e := newEnv(t, notifyService)
	old, _ := e.mustGet()
	res, evs := e.restart(api.RestartOptions{StopFirst: true})
	if !res.OK {
		t.Fatalf("result %+v", res)
	}
	if got := phases(evs); got != "draining,stopped,spawned,waiting,ready,done" {
		t.Fatalf("phases %s", got)
	}
	if pid, _ := e.mustGet(); pid == old {
		t.Fatal("old pid still answers")
	}
}

// X-Instances=3 runs three processes on one socket; a restart rolls
// through them so that two always serve.
func TestInstancesRollingRestart(t *testing.T) {
	e := newEnv(t, notifyService+"X-Instances=3\n")
	e.mustGet()
	st := e.status()
	if len(st.Pids) != 3 || st.Instances != 3 {
		t.Fatalf("status %+v, want 3 pids", st)
	}
	res, evs := e.restart(api.RestartOptions{})
	if !res.OK || len(res.NewPids) != 3 {
		t.Fatalf("result %+v", res)
	}
	// Before each old process is told to drain, its replacement is ready:
	// at most one process per slot is ever missing.
	readyCount, drainCount := 0, 0
	for _, ev := range evs {
		switch ev.Phase {
		case api.PhaseReady:
			readyCount++
		case api.PhaseDraining:
			drainCount++
			if drainCount > readyCount {
				t.Fatalf("drain before replacement ready: %s", phases(evs))
			}
		}
	}
	if drainCount != 3 {
		t.Fatalf("phases %s", phases(evs))
	}
	for _, p := range st.Pids {
		if alive(p) {
			t.Fatalf("old pid %d alive", p)
		}
	}
}

// A crash loop ends in failed (start-limit-hit) instead of spinning, and
// an explicit start resets it.
func TestStartLimit(t *testing.T) {
	e := newEnv(t, "Environment=SOCKD_TEST_CHILD=crash\nRestart=always\nRestartSec=10ms\n"+
		"[Unit]\nStartLimitBurst=3\nStartLimitIntervalSec=1min\n")
	// A connection triggers the unit; the child exits without accepting it.
	c, err := net.Dial("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateFailed && st.Result == "start-limit-hit" })
	if st := e.status(); len(st.Pids) != 0 {
		t.Fatalf("processes after start limit: %v", st.Pids)
	}
}

// After many restarts, sockd's goroutines and fds are what they were
// after the first, and no zombie exists.
func TestRestartNoLeaks(t *testing.T) {
	e := newEnv(t, notifyService)
	e.mustGet()
	e.restart(api.RestartOptions{})
	g0, f0 := runtime.NumGoroutine(), countFDs(t)
	const n = 200
	for range n {
		if res, _ := e.restart(api.RestartOptions{}); !res.OK {
			t.Fatalf("restart: %+v", res)
		}
	}
	e.mustGet()
	g1, f1 := settleGoroutines(g0), countFDs(t)
	if g1 > g0 || f1 > f0 {
		t.Fatalf("after %d restarts: goroutines %d→%d, fds %d→%d", n, g0, g1, f0, f1)
	}
	if z := zombies(t); len(z) > 0 {
		t.Fatalf("zombies: %v", z)
	}
}

func countFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// settleGoroutines gives exiting goroutines (timer funcs, wait
// goroutines) a moment to finish; it returns as soon as the count is back
// to want.
func settleGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for i := 0; i < 100 && n > want; i++ {
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

// zombies lists our children in state Z.
func zombies(t *testing.T) []int {
	var out []int
	for _, c := range ourChildren(t) {
		if c.state == "Z" {
			out = append(out, c.pid)
		}
	}
	return out
}

// child is one of the test process's children, from /proc.
type child struct {
	pid     int
	state   string // "R", "S", "Z", …
	cmdline string
}

// ourChildren lists the processes whose parent is this test process.
func ourChildren(t *testing.T) []child {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	me := strconv.Itoa(os.Getpid())
	var out []child
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + ent.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[1] != me {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + ent.Name() + "/cmdline")
		out = append(out, child{pid: pid, state: f[0], cmdline: string(cmd)})
	}
	return out
}

func nonBlocking(t *testing.T, f *os.File) bool {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fl int
	rc.Control(func(fd uintptr) { fl, err = unix.FcntlInt(fd, unix.F_GETFL, 0) })
	if err != nil {
		t.Fatal(err)
	}
	return fl&unix.O_NONBLOCK != 0
}

// A socket triggered more often than TriggerLimitBurst= within
// TriggerLimitIntervalSec= fails the unit (trigger-limit-hit): a child
// that exits without accepting would otherwise be started forever.
func TestTriggerLimit(t *testing.T) {
	e := newEnv(t, "Environment=SOCKD_TEST_CHILD=crash\n[Unit]\nStartLimitBurst=100\n")
	e.write("app.socket", "[Socket]\nListenStream="+e.sock+"\nTriggerLimitBurst=3\nTriggerLimitIntervalSec=1min\n")
	if _, err := e.d.Reload(e.ctx()); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st := e.await(func(st api.ServiceStatus) bool {
		return st.State == api.StateFailed && st.Result == "trigger-limit-hit"
	})
	if len(st.Pids) != 0 {
		t.Fatalf("processes after the trigger limit: %v", st.Pids)
	}
}
