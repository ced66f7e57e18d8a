package supervisord

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/testutil"
)

// Tests from a review of the unit actor (unit.go). Each shows one bug;
// see the comment on each.

// stopGate is an ExecStop= that blocks until release is called, so that a
// stop (or a shutdown) stays under way as long as a test needs; once
// released, later ExecStop= runs return at once.
type stopGate struct {
	t          *testing.T
	fifo, open string
}

func newStopGate(t *testing.T) *stopGate {
	t.Helper()
	dir := testutil.ShortDir(t)
	g := &stopGate{t: t, fifo: filepath.Join(dir, "gate"), open: filepath.Join(dir, "open")}
	if err := syscall.Mkfifo(g.fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	return g
}

// line is the [Service] line that installs the gate.
func (g *stopGate) line() string {
	return "ExecStop=/bin/sh -c \"test -e " + g.open + " || cat " + g.fifo + " >/dev/null\"\nTimeoutStopSec=30s\n"
}

// release lets the ExecStop= waiting on the gate (or about to) finish;
// it waits until that ExecStop= has opened it.
func (g *stopGate) release() {
	g.t.Helper()
	opened := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(g.fifo, os.O_WRONLY, 0) // waits for the reader
		if err == nil {
			f.Close()
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		if err != nil {
			g.t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		g.t.Fatal("ExecStop= never opened the gate")
	}
	// Only now: before, the ExecStop= under way could skip the FIFO.
	if err := os.WriteFile(g.open, nil, 0o644); err != nil {
		g.t.Fatal(err)
	}
}

// queueRestart hands the actor a restart that does not wait, as
// Daemon.Restart does but keeping its own reference to the reply channel
// (Daemon.Restart's has a data race, see TestReviewRestartNoWait). It
// returns once the restart is queued (acked), or its error.
func (e *env) queueRestart() error {
	e.t.Helper()
	u, err := e.d.lookup("app")
	if err != nil {
		e.t.Fatal(err)
	}
	rc := make(chan reply, 1)
	select {
	case u.reqs <- &request{kind: reqRestart, reply: rc}:
	case <-time.After(20 * time.Second):
		e.t.Fatal("actor does not take requests")
	}
	select {
	case rep := <-rc:
		return rep.err
	case <-time.After(20 * time.Second):
		e.t.Fatal("restart without wait not acked")
	}
	return nil
}

// readFIFO waits for a writer on path and reads what it writes.
func readFIFO(t *testing.T, path string) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := os.ReadFile(path)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("nobody wrote to %s", path)
	}
}

func (e *env) shutdownAsync(d time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		done <- e.d.Shutdown(ctx)
	}()
	return done
}

// Bug: the actor accepts start/restart requests after a shutdown began
// (u.exiting), and beginOp runs them once the shutdown's stop is done. A
// restart queued while the shutdown drains the old process spawns a new
// generation that nothing stops: run never returns (exiting but not
// idle), Shutdown times out and the child outlives it.
func TestReviewRestartDuringShutdownSpawnsOrphan(t *testing.T) {
	g := newStopGate(t)
	e := newEnv(t, notifyService+g.line())
	old, _ := e.mustGet()
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
	shut := e.shutdownAsync(5 * time.Second)
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateDeactivating })
	// Acked once queued (Wait=false), so it is queued before the release.
	// An error (refused: shutting down) is the right answer too.
	e.queueRestart()
	g.release()
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("shutdown: %v (a restart queued during the shutdown started a process that nothing stops)", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("shutdown never returned")
	}
	if alive(old) {
		t.Fatalf("old pid %d alive after shutdown", old)
	}
}

// Bug: when the shutdown's stop is done and a start queued meanwhile
// begins with ExecStartPre=, no process runs, so idle() is true and run
// returns with the start still in u.ops: its caller is never answered
// (an API call hangs as long as its context lets it).
func TestReviewStartDuringShutdownAnswered(t *testing.T) {
	g := newStopGate(t)
	e := newEnv(t, notifyService+"ExecStartPre=/bin/true\n"+g.line())
	e.mustGet()
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
	u, err := e.d.lookup("app")
	if err != nil {
		t.Fatal(err)
	}
	shut := e.shutdownAsync(20 * time.Second)
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateDeactivating })
	// Sent on u.reqs directly: the send returns once the actor has it.
	r := &request{kind: reqStart, reply: make(chan reply, 1)}
	select {
	case u.reqs <- r:
	case <-time.After(20 * time.Second):
		t.Fatal("actor does not take requests")
	}
	g.release()
	if err := <-shut; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	select {
	case rep := <-r.reply:
		if rep.err == nil {
			t.Fatalf("start during shutdown succeeded: %+v", rep)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("start queued during shutdown never answered (actor exited with it in u.ops)")
	}
}

// Bug: lowering X-Instances= and restarting stops the surplus process
// (resizeSlots) but its exit indexes u.slots[p.slot] past the shrunk
// slice in procExited: index out of range, sockd panics. (This test
// crashes the test binary while the bug is there.)
func TestReviewShrinkInstancesNoPanic(t *testing.T) {
	e := newEnv(t, notifyService+"X-Instances=2\n")
	e.mustGet()
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive && len(st.Pids) == 2 })
	e.reload(notifyService)
	res, _ := e.restart(api.RestartOptions{})
	if !res.OK || len(res.NewPids) != 1 {
		t.Fatalf("restart %+v", res)
	}
	// The surplus process exits after SIGTERM; wait until it is gone.
	st := e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 1 && st.Pids[0] == res.NewPids[0] })
	if st.Instances != 1 {
		t.Fatalf("status %+v, want 1 instance", st)
	}
}

// Bug: X-Instances= changed by a reload while the unit runs is applied
// only at the next restart (reqUpdate resizes u.slots only when nothing
// runs; beginOp(reqStart) and the trigger never resize), not at the next
// start as documented ("applies at the next spawn").
func TestReviewInstancesChangeAppliesAtNextStart(t *testing.T) {
	e := newEnv(t, notifyService)
	e.mustGet()
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
	e.reload(notifyService + "X-Instances=2\n")
	if err := e.d.Stop(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Start(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	if st := e.status(); len(st.Pids) != 2 || st.Instances != 2 {
		t.Fatalf("after reload to X-Instances=2, stop and start: %+v, want 2 processes", st)
	}
}

// Bug: an explicit start while a process started by a connection is not
// yet ready (Type=notify, no READY=1 yet) returns at once: beginOp sees
// running() == len(slots) and finishes the op without waiting for
// readiness, although Start "waits until they are ready".
func TestReviewStartWaitsForTriggeredProcess(t *testing.T) {
	e := newEnv(t, "Type=notify\nEnvironment=SOCKD_TEST_CHILD=never-ready\nTimeoutStartSec=60s\n")
	c, err := net.Dial("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := e.d.Start(ctx, "app"); err == nil {
		if st := e.status(); st.State != api.StateActive {
			t.Fatalf("Start returned success while the unit is %s (%+v)", st.State, st)
		}
	}
}

// Bug: an auto-restart timer that fires while an op runs is dropped
// (timerFired: len(u.ops) > 0 → autoToken = 0, nothing else). Here the
// new process of a restart is ready at once (Type=simple), takes the
// slot and exits; Restart=always schedules a restart 10 ms later, while
// the op still waits for the old process to drain (it ignores SIGTERM,
// killed after TimeoutStopSec=1s). The timer is dropped: when the op ends
// nothing runs and nothing is pending (back to listening, state failed)
// despite Restart=always; with X-Instances= the slot stays empty for good.
func TestReviewAutoRestartDuringOpKept(t *testing.T) {
	dir := testutil.ShortDir(t)
	up := filepath.Join(dir, "up")
	if err := syscall.Mkfifo(up, 0o600); err != nil {
		t.Fatal(err)
	}
	// The first process ignores SIGTERM (and says so on the FIFO), the
	// second exits 1 at once, the third runs.
	e := newEnv(t, "ExecStart=\nExecStart=/bin/sh -c \"if mkdir "+dir+"/a 2>/dev/null; then trap '' TERM; echo up >"+up+"; exec sleep 60; fi; "+
		"if mkdir "+dir+"/b 2>/dev/null; then exit 1; fi; exec sleep 60\"\nRestart=always\nRestartSec=10ms\nTimeoutStopSec=1s\n")
	if err := e.d.Start(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	readFIFO(t, up)
	st := e.status()
	if len(st.Pids) != 1 {
		t.Fatalf("after start: %+v", st)
	}
	old := st.Pids[0]
	res, _ := e.restart(api.RestartOptions{})
	if len(res.NewPids) != 1 {
		t.Fatalf("restart %+v", res)
	}
	st = e.status()
	if len(st.Pids) == 0 && st.SubState != "auto-restart" {
		t.Fatalf("after the restart whose new process exited (Restart=always): %+v; no process and no restart pending", st)
	}
	e.await(func(st api.ServiceStatus) bool {
		return len(st.Pids) == 1 && st.Pids[0] != old && st.Pids[0] != res.NewPids[0] && st.State == api.StateActive
	})
}

// Bug: a stop cancels the start or restart under way, but not the ones
// queued behind it: they run first (spawning a new generation and waiting
// for its readiness), and only then does the stop begin. Here the queued
// restart waits TimeoutStartSec=60s for a READY=1 that never comes, and
// the stop with it.
func TestReviewStopCancelsQueuedRestart(t *testing.T) {
	e := newEnv(t, notifyService)
	e.mustGet()
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
	e.reload("Type=notify\nEnvironment=SOCKD_TEST_CHILD=never-ready\nTimeoutStartSec=60s\n")
	for range 2 { // the first runs, the second waits in u.ops
		if err := e.queueRestart(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.d.Stop(ctx, "app"); err != nil {
		t.Fatalf("stop with a restart queued: %v", err)
	}
	if st := e.status(); len(st.Pids) != 0 {
		t.Fatalf("after stop: %+v", st)
	}
}

// Bug: u.result is reset by a trigger and by an explicit start, not by an
// auto-restart (nor a restart): after a crash and a successful
// Restart=always respawn, status shows Result=exit-code while active, and
// an explicit, clean stop leaves the unit "failed" instead of inactive.
func TestReviewStopAfterAutoRestartInactive(t *testing.T) {
	dir := testutil.ShortDir(t)
	e := newEnv(t, "ExecStart=\nExecStart=/bin/sh -c \"mkdir "+dir+"/once 2>/dev/null && exit 1; exec sleep 60\"\n"+
		"Restart=always\nRestartSec=10ms\n")
	if err := e.d.Start(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive && st.LastExit != "" })
	if err := e.d.Stop(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	if st := e.status(); st.State != api.StateInactive {
		t.Fatalf("after an auto-restart and a clean stop: %+v, want inactive", st)
	}
}

// Bug (data race, and a hang): for a restart without wait, ack sends the
// reply and then sets r.reply = nil on the actor (unit.go ack), while
// Daemon.Restart reads r.reply in its select (daemon.go:436). When the
// caller evaluates the select after the actor's write, it waits on a nil
// channel: Restart without --wait hangs until its context ends. The race
// detector reports it on the first call.
func TestReviewRestartNoWait(t *testing.T) {
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

// Bug: ExecStartPre= (like ExecStartPost= and a oneshot's ExecStart=)
// runs in a goroutine that nothing cancels: a stop or a shutdown during
// it ignores its end (preToken = 0) but leaves the command running.
// Shutdown returns while the helper still runs, until TimeoutStartSec=
// (90 s by default) kills it, or for good if sockd exits first.
func TestReviewShutdownStopsHelpers(t *testing.T) {
	dir := testutil.ShortDir(t)
	up := filepath.Join(dir, "up")
	if err := syscall.Mkfifo(up, 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, notifyService+"ExecStartPre=/bin/sh -c \"echo up >"+up+"; exec sleep 61.25\"\n")
	t.Cleanup(func() {
		for _, pid := range childrenRunning(t, "61.25") {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	started := make(chan error, 1)
	go func() { started <- e.d.Start(e.ctx(), "app") }()
	readFIFO(t, up)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-started
	if left := childrenRunning(t, "61.25"); len(left) > 0 {
		t.Fatalf("ExecStartPre= still running after shutdown: pids %v", left)
	}
}

// childrenRunning lists our children (not zombies) whose command line
// contains arg.
func childrenRunning(t *testing.T, arg string) []int {
	var out []int
	for _, c := range ourChildren(t) {
		if c.state != "Z" && strings.Contains(c.cmdline, arg) {
			out = append(out, c.pid)
		}
	}
	return out
}
