package supervisord

// The unit actor's transitions, driven through the process seam: fake
// processes that exit, signal and notify when the test says. These run
// in milliseconds; the real-process tests cover the same paths end to
// end.

import (
	"context"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
)

const notifyUnit = "Type=notify\nExecStart=/srv/app\nTimeoutStopSec=1h\n"

// A socket-less notify service starts at once, is activating until
// READY=1, and stops with SIGTERM to its process group.
func TestActorStartReadyStop(t *testing.T) {
	e := newActor(t, notifyUnit)
	p := e.proc()
	if st := e.status(); st.State != api.StateActivating || st.SubState != "start" {
		t.Fatalf("before READY=1: %+v", st)
	}
	e.notify(p.pid, "READY=1")
	e.await("running", func(st api.ServiceStatus) bool { return st.State == api.StateActive && st.SubState == "running" })
	stop := e.async(reqStop, api.RestartOptions{})
	if r := e.wait(stop); r.err != nil {
		t.Fatal(r.err)
	}
	if got := p.signals(); !slices.Equal(got, []string{"group TERM"}) {
		t.Fatalf("signals %v, want group TERM", got)
	}
	if st := e.status(); st.State != api.StateInactive || st.SubState != "dead" || len(st.Pids) != 0 {
		t.Fatalf("after stop: %+v", st)
	}
}

// An overlapping restart signals the old process only after the new one
// is ready; the result names both.
func TestActorRestartOverlaps(t *testing.T) {
	e := newActor(t, notifyUnit)
	old := e.proc()
	e.notify(old.pid, "READY=1")
	e.awaitSub("running")
	res := e.async(reqRestart, api.RestartOptions{Wait: true})
	nu := e.proc()
	st := e.awaitSub("restart")
	if len(old.signals()) != 0 || !slices.Equal(st.InstancePhases, []string{"starting"}) {
		t.Fatalf("old signalled before the new is ready: %v; %+v", old.signals(), st)
	}
	e.notify(nu.pid, "READY=1")
	r := e.wait(res)
	if !r.result.OK || !slices.Equal(r.result.OldPids, []int{old.pid}) || !slices.Equal(r.result.NewPids, []int{nu.pid}) {
		t.Fatalf("result %+v", r.result)
	}
	if got := old.signals(); !slices.Equal(got, []string{"group TERM"}) {
		t.Fatalf("old got %v", got)
	}
	if st := e.status(); st.SubState != "running" || !slices.Equal(st.Pids, []int{nu.pid}) {
		t.Fatalf("after restart: %+v", st)
	}
}

// A new process that exits before READY=1 rolls the restart back: the
// old one is never signalled.
func TestActorRestartRollsBack(t *testing.T) {
	e := newActor(t, notifyUnit)
	old := e.proc()
	e.notify(old.pid, "READY=1")
	e.awaitSub("running")
	res := e.async(reqRestart, api.RestartOptions{Wait: true})
	e.proc().exitWith(children.ExitStatus{Code: 3})
	r := e.wait(res)
	if r.result.OK || r.result.Outcome != "rolled-back" || !strings.Contains(r.result.Cause, "exit status 3") {
		t.Fatalf("result %+v", r.result)
	}
	if len(old.signals()) != 0 {
		t.Fatalf("old got %v", old.signals())
	}
	if st := e.status(); st.SubState != "running" || !slices.Equal(st.Pids, []int{old.pid}) {
		t.Fatalf("after rollback: %+v", st)
	}
}

// A process that ignores SIGTERM gets SIGKILL after TimeoutStopSec=,
// and the unit shows stop-sigkill meanwhile.
func TestActorStopEscalates(t *testing.T) {
	e := newActor(t, "Type=notify\nExecStart=/srv/app\nTimeoutStopSec=50ms\nKillMode=mixed\n")
	p := e.proc()
	p.mu.Lock()
	p.ignore = map[syscall.Signal]bool{syscall.SIGTERM: true}
	p.mu.Unlock()
	e.notify(p.pid, "READY=1")
	e.awaitSub("running")
	stop := e.async(reqStop, api.RestartOptions{})
	if r := e.wait(stop); r.err != nil {
		t.Fatal(r.err)
	}
	// KillMode=mixed: SIGTERM to the main process, SIGKILL to the group.
	if got := p.signals(); !slices.Equal(got, []string{"TERM", "group KILL"}) {
		t.Fatalf("signals %v", got)
	}
}

// Restart=on-failure restarts after RestartSec=; the start limit ends a
// crash loop in failed (start-limit-hit), and a start resets it.
func TestActorRestartPolicyAndStartLimit(t *testing.T) {
	e := newActor(t, "ExecStart=/srv/app\nRestart=on-failure\nRestartSec=1ms\n[Unit]\nStartLimitBurst=3\nStartLimitIntervalSec=1h\n")
	for i := range 3 {
		p := e.proc()
		e.await("running", func(st api.ServiceStatus) bool { return slices.Contains(st.Pids, p.pid) })
		p.exitWith(children.ExitStatus{Code: 1})
		if i < 2 {
			e.awaitSub("auto-restart")
		}
	}
	st := e.await("failed", func(st api.ServiceStatus) bool { return st.State == api.StateFailed })
	if st.Result != "start-limit-hit" || st.SubState != "failed" {
		t.Fatalf("after the crash loop: %+v", st)
	}
	e.noProc()
	start := e.async(reqStart, api.RestartOptions{})
	e.proc()
	if r := e.wait(start); r.err != nil {
		t.Fatalf("start after the limit: %v", r.err)
	}
}

// A clean exit under Restart=on-failure is not restarted: the unit is
// inactive (dead: it has no socket), result success.
func TestActorCleanExitNotRestarted(t *testing.T) {
	e := newActor(t, "ExecStart=/srv/app\nRestart=on-failure\nRestartSec=1ms\n")
	e.proc().exitWith(children.ExitStatus{})
	st := e.await("dead", func(st api.ServiceStatus) bool { return st.SubState == "dead" })
	if st.State != api.StateInactive || st.Result != "success" {
		t.Fatalf("after a clean exit: %+v", st)
	}
	e.noProc()
}

// TimeoutStartSec= stops a process that never says READY=1; the start
// fails with result timeout.
func TestActorStartTimeout(t *testing.T) {
	e := newActor(t, "Type=notify\nExecStart=/srv/app\nTimeoutStartSec=20ms\n")
	p := e.proc()
	st := e.await("failed", func(st api.ServiceStatus) bool { return st.State == api.StateFailed })
	if st.Result != "timeout" || !slices.Equal(p.signals(), []string{"group TERM"}) {
		t.Fatalf("after the timeout: %+v, signals %v", st, p.signals())
	}
}

// A failing ExecStartPre= fails the start; no process is spawned. With
// the "-" prefix its failure is ignored.
func TestActorExecStartPre(t *testing.T) {
	e := newActor(t, "ExecStartPre=/bin/false\nExecStart=/srv/app\n")
	st := e.await("failed", func(st api.ServiceStatus) bool { return st.State == api.StateFailed })
	if st.Result != "exit-code" || !strings.Contains(st.LastExit, "ExecStartPre") {
		t.Fatalf("%+v", st)
	}
	e.noProc()

	e = newActor(t, "ExecStartPre=-/bin/false\nExecStartPre=/bin/true\nExecStart=/srv/app\n")
	e.proc()
	e.awaitSub("running")
}

// A stop during a start cancels the start: its caller hears "canceled by
// stop", the process is stopped.
func TestActorStopCancelsStart(t *testing.T) {
	e := newActor(t, notifyUnit)
	p := e.proc()
	e.awaitSub("start")
	restart := e.async(reqRestart, api.RestartOptions{Wait: true}) // queued: no row in starting? it takes over
	_ = restart
	stop := e.async(reqStop, api.RestartOptions{})
	if r := e.wait(stop); r.err != nil {
		t.Fatal(r.err)
	}
	if r := e.wait(restart); r.result.OK || !strings.Contains(r.result.Cause, "canceled by stop") {
		t.Fatalf("restart: %+v", r.result)
	}
	if len(p.signals()) == 0 {
		t.Fatal("process not stopped")
	}
}

// MAINPID= must be a whole positive number: "123abc" is not 123.
func TestActorMainPIDStrict(t *testing.T) {
	e := newActor(t, notifyUnit)
	p := e.proc()
	e.notify(p.pid, "MAINPID=123abc\nREADY=1")
	st := e.awaitSub("running")
	if st.MainPID != p.pid {
		t.Fatalf("MainPID %d after MAINPID=123abc, want %d", st.MainPID, p.pid)
	}
	e.notify(p.pid, "MAINPID=-5\nSTATUS=x")
	if st := e.await("status", func(st api.ServiceStatus) bool { return st.Status == "x" }); st.MainPID != p.pid {
		t.Fatalf("MainPID %d after MAINPID=-5", st.MainPID)
	}
}

// RELOADING=1 … READY=1 is a reload (active, reloading); STOPPING=1
// is announced; the exit that follows is judged by Restart=.
func TestActorNotifyReloadingStopping(t *testing.T) {
	e := newActor(t, notifyUnit+"Restart=always\nRestartSec=1ms\n")
	p := e.proc()
	e.notify(p.pid, "READY=1")
	e.awaitSub("running")
	e.notify(p.pid, "RELOADING=1")
	e.awaitSub("reloading")
	e.notify(p.pid, "READY=1")
	e.awaitSub("running")
	e.notify(p.pid, "STOPPING=1")
	e.awaitSub("stopping")
	p.exitWith(children.ExitStatus{})
	e.proc() // Restart=always
}

// reload-app without ExecReload= sends SIGHUP to every process; with
// no process it is refused.
func TestActorReloadApp(t *testing.T) {
	e := newActor(t, notifyUnit)
	p := e.proc()
	e.notify(p.pid, "READY=1")
	e.awaitSub("running")
	if r := e.wait(e.async(reqReloadApp, api.RestartOptions{})); r.err != nil {
		t.Fatal(r.err)
	}
	if got := p.signals(); !slices.Equal(got, []string{"HUP"}) {
		t.Fatalf("signals %v", got)
	}
	e.wait(e.async(reqStop, api.RestartOptions{}))
	if r := e.wait(e.async(reqReloadApp, api.RestartOptions{})); r.err == nil {
		t.Fatal("reload-app of a stopped unit succeeded")
	}
}

// A failing spawn (fork failure, missing user) fails the start with
// result resources.
func TestActorSpawnFails(t *testing.T) {
	e := newActor(t, notifyUnit)
	p := e.proc()
	e.notify(p.pid, "READY=1")
	e.awaitSub("running")
	e.wait(e.async(reqStop, api.RestartOptions{}))
	e.k.mu.Lock()
	e.k.fail = syscall.EAGAIN
	e.k.mu.Unlock()
	r := e.wait(e.async(reqStart, api.RestartOptions{}))
	if r.err == nil {
		t.Fatal("start succeeded")
	}
	if st := e.status(); st.Result != "resources" || st.State != api.StateFailed {
		t.Fatalf("%+v", st)
	}
}

// X-Instances=2: a rolling restart replaces one instance at a time.
func TestActorInstancesRoll(t *testing.T) {
	e := newActor(t, notifyUnit+"X-Instances=2\n")
	a, b := e.proc(), e.proc()
	e.notify(a.pid, "READY=1")
	e.notify(b.pid, "READY=1")
	e.awaitSub("running")
	res := e.async(reqRestart, api.RestartOptions{Wait: true})
	n1 := e.proc()
	if st := e.awaitSub("restart"); !slices.Equal(st.InstancePhases, []string{"starting", "waiting"}) {
		t.Fatalf("%+v", st)
	}
	e.notify(n1.pid, "READY=1")
	n2 := e.proc()
	if len(b.signals()) != 0 || len(a.signals()) == 0 {
		t.Fatalf("a %v b %v", a.signals(), b.signals())
	}
	e.notify(n2.pid, "READY=1")
	if r := e.wait(res); !r.result.OK || len(r.result.NewPids) != 2 {
		t.Fatalf("%+v", r.result)
	}
}

// ExecStart=- ignores the main process's failure: result success, and
// Restart=on-failure does not restart it.
func TestActorExecStartIgnoreFailure(t *testing.T) {
	e := newActor(t, "ExecStart=-/srv/app\nRestart=on-failure\nRestartSec=1ms\n")
	e.proc().exitWith(children.ExitStatus{Code: 7})
	st := e.await("dead", func(st api.ServiceStatus) bool { return st.SubState == "dead" })
	if st.Result != "success" || st.LastExit != "exit status 7" {
		t.Fatalf("%+v", st)
	}
	e.noProc()
}

// A start that times out says so, not "exited before ready".
func TestActorStartTimeoutMessage(t *testing.T) {
	e := newActor(t, "Type=notify\nExecStart=/srv/app\nTimeoutStartSec=20ms\n")
	e.proc() // the first start, at once: it times out too
	e.await("failed", func(st api.ServiceStatus) bool { return st.State == api.StateFailed })
	start := e.async(reqStart, api.RestartOptions{})
	e.proc()
	r := e.wait(start)
	if r.err == nil || !strings.Contains(r.err.Error(), "not ready within TimeoutStartSec=20ms") {
		t.Fatalf("start: %v", r.err)
	}
}

// A restart says "queued" only when it waits behind another request;
// after a stop, status has the last exit and result success.
func TestActorQueuedAndLastExit(t *testing.T) {
	e := newActor(t, notifyUnit)
	p := e.proc()
	e.notify(p.pid, "READY=1")
	e.awaitSub("running")
	first := &request{kind: reqRestart, opts: api.RestartOptions{Wait: true}, reply: make(chan reply, 1), events: make(chan api.Event, 64)}
	if err := e.u.ask(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	n := e.proc()
	second := &request{kind: reqRestart, opts: api.RestartOptions{Wait: true}, reply: make(chan reply, 1), events: make(chan api.Event, 64)}
	if err := e.u.ask(context.Background(), second); err != nil {
		t.Fatal(err)
	}
	e.notify(n.pid, "READY=1")
	e.wait(first.reply)
	n2 := e.proc()
	e.notify(n2.pid, "READY=1")
	e.wait(second.reply)
	phasesOf := func(r *request) []string {
		var out []string
		for len(r.events) > 0 {
			out = append(out, (<-r.events).Phase)
		}
		return out
	}
	if got := phasesOf(first); slices.Contains(got, api.PhaseQueued) {
		t.Fatalf("first restart: %v", got)
	}
	if got := phasesOf(second); len(got) == 0 || got[0] != api.PhaseQueued {
		t.Fatalf("second restart: %v", got)
	}
	e.wait(e.async(reqStop, api.RestartOptions{}))
	if st := e.status(); st.Result != "success" || st.LastExit != "signal: terminated" {
		t.Fatalf("after stop: %+v", st)
	}
}
