package supervisord

import (
	"context"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/api"
)

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
		{"never-ready", "Environment=SOCKD_TEST_CHILD=never-ready\nTimeoutStartSec=2s\n" /* time to print under -race on a loaded machine */, "not ready within TimeoutStartSec=", "child ready"},
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

// A restart without Wait returns once the restart is queued, every time:
// twenty in a row each return within 5 s. (A data race on the reply
// channel used to leave the caller waiting on a nil channel until its
// context ended; the race detector reported it.)
func TestRestartWithoutWait(t *testing.T) {
	e := newEnv(t, notifyService)
	e.mustGet()
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := e.d.Restart(ctx, "app", api.RestartOptions{}, nil)
		cancel()
		if err != nil {
			t.Fatalf("restart %d without wait: %v", i, err)
		}
	}
}

// After many restarts, sockd's goroutines and fds are what they were
// after the first, and no zombie exists.
func TestRestartNoLeaks(t *testing.T) {
	restartsLeaveNothing(t, newEnv(t, notifyService), 200)
}

// restartsLeaveNothing restarts e's unit n times after a first one, and
// fails unless sockd's goroutines and fds are back to what they were
// after the first, and no zombie exists.
func restartsLeaveNothing(t *testing.T, e *env, n int) {
	t.Helper()
	e.mustGet()
	e.restart(api.RestartOptions{})
	g0, f0 := runtime.NumGoroutine(), countFDs(t)
	for range n {
		if res, _ := e.restart(api.RestartOptions{}); !res.OK {
			t.Fatalf("restart: %+v", res)
		}
	}
	e.mustGet()
	g1, f1 := settleGoroutines(g0), settleFDs(t, f0)
	if g1 > g0 || f1 > f0 {
		t.Fatalf("after %d restarts: goroutines %d→%d, fds %d→%d:%s", n, g0, g1, f0, f1, fdList(t))
	}
	if z := zombies(t); len(z) > 0 {
		t.Fatalf("zombies: %v", z)
	}
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
