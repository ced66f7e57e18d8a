package supervisord

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/units"
)

// attempts follows a unit's starts on its own: each time the status
// shows a new process, at the time it entered that phase (Since, set in
// the actor after the spawn).
type attempts struct {
	e    *env
	seen map[int]bool
}

func (a *attempts) next() time.Time {
	a.e.t.Helper()
	st := a.e.await(func(st api.ServiceStatus) bool { return len(st.Pids) > 0 && !a.seen[st.Pids[0]] })
	a.seen[st.Pids[0]] = true
	return st.Since
}

// dialQueued makes a connection that the crashing service never accepts:
// it stays queued, and fires the waiter each time it is armed.
func (e *env) dialQueued() {
	e.t.Helper()
	c, err := net.Dial("unix", e.sock)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
}

// A service that fails at once, started by a connection that stays
// queued, is started again only after the back-off, which grows with
// RestartSteps= as systemd computes it; the start limit is reached
// after the sum of the delays, not in a burst.
func TestBackoffGrows(t *testing.T) {
	log := &logTimes{w: zerolog.NewTestWriter(t), match: []byte("listening again after a back-off"),
		ch: make(chan time.Time, 64), lines: make(chan []byte, 64)}
	e := newEnvLog(t, "Environment=SOCKD_TEST_CHILD=crash\nRestartSec=100ms\nRestartSteps=3\nRestartMaxDelaySec=400ms\n"+
		"[Unit]\nStartLimitBurst=6\nStartLimitIntervalSec=1h\n", log)
	e.dialQueued()
	// restartDelay of RestartSec=100ms, RestartMaxDelaySec=400ms,
	// RestartSteps=3, from systemd's formula (TestRestartDelay):
	// 100ms × 4^((n−1)/3), truncated to µs, then 400ms.
	want := []time.Duration{100 * time.Millisecond, 158740 * time.Microsecond, 251984 * time.Microsecond,
		400 * time.Millisecond, 400 * time.Millisecond, 400 * time.Millisecond}
	a := &attempts{e: e, seen: map[int]bool{}}
	var first, due time.Time
	for i, w := range want {
		at := a.next()
		if i == 0 {
			first = at
		} else if at.Before(due) {
			t.Errorf("attempt %d at %v, before its back-off ended at %v", i+1, at, due)
		} else if late := at.Sub(due); late > 3*time.Second {
			t.Errorf("attempt %d came %v after its back-off ended", i+1, late)
		}
		st := e.await(func(st api.ServiceStatus) bool { return st.State == api.StateFailed && st.SubState == "listening" })
		due = st.NextStart
		if got := due.Sub(st.Since); got < w || got > w+300*time.Millisecond {
			t.Errorf("after attempt %d: next start %v after the failure, want the back-off %v", i+1, got, w)
		}
		if got := log.delay(t); got != w {
			t.Errorf("after attempt %d: back-off %v in the log, want %v", i+1, got, w)
		}
		t.Logf("attempt %d: failed %v after it began; back-off %v", i+1, st.Since.Sub(at), due.Sub(st.Since))
	}
	st := e.await(func(st api.ServiceStatus) bool { return st.Result == "start-limit-hit" })
	if st.State != api.StateFailed || st.SubState != "failed" || len(st.Pids) != 0 || !st.NextStart.IsZero() {
		t.Fatalf("after the start limit: %+v", st)
	}
	var total time.Duration
	for _, w := range want {
		total += w
	}
	if d := st.Since.Sub(first); d < total || st.Since.Before(due) {
		t.Errorf("start limit hit %v after the first attempt, want at least the sum of the back-offs, %v", d, total)
	}
}

// A spawn that fails (User= names no user) backs off RestartSec= between
// the starts a queued connection makes; the start limit comes after
// real time. The attempts are the daemon's "start failed" log lines.
func TestBackoffSpawnFails(t *testing.T) {
	log := &logTimes{w: zerolog.NewTestWriter(t), match: []byte(`"message":"start failed"`), ch: make(chan time.Time, 64)}
	e := newEnvLog(t, "User=sockd-no-such-user\nRestartSec=150ms\n[Unit]\nStartLimitBurst=4\nStartLimitIntervalSec=1h\n", log)
	e.dialQueued()
	var times []time.Time
	for range 4 {
		select {
		case at := <-log.ch:
			times = append(times, at)
		case <-time.After(20 * time.Second):
			t.Fatalf("%d attempts, want 4; status %+v", len(times), e.status())
		}
	}
	st := e.await(func(st api.ServiceStatus) bool { return st.Result == "start-limit-hit" })
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < 150*time.Millisecond {
			t.Errorf("attempt %d came %v after attempt %d, want RestartSec=150ms", i+1, gap, i)
		}
	}
	if d := st.Since.Sub(times[0]); d < 600*time.Millisecond {
		t.Errorf("start limit hit %v after the first attempt, want at least 4 × 150ms", d)
	}
	select {
	case at := <-log.ch:
		t.Errorf("an attempt after the start limit, at %v", at)
	default:
	}
}

// logTimes is a log writer that also notes when a line matching match
// was written (zerolog writes each event in one Write), and keeps it.
type logTimes struct {
	w     io.Writer
	match []byte
	ch    chan time.Time
	lines chan []byte
}

func (l *logTimes) Write(p []byte) (int, error) {
	if bytes.Contains(p, l.match) {
		select {
		case l.ch <- time.Now():
		default:
		}
		if l.lines != nil {
			select {
			case l.lines <- bytes.Clone(p):
			default:
			}
		}
	}
	return l.w.Write(p)
}

// delay reads the "delay" field (zerolog: float milliseconds) of the
// next matching line, to the microsecond.
func (l *logTimes) delay(t *testing.T) time.Duration {
	t.Helper()
	select {
	case line := <-l.lines:
		var f struct {
			Delay float64 `json:"delay"`
		}
		if err := json.Unmarshal(line, &f); err != nil {
			t.Fatalf("log line %s: %v", line, err)
		}
		return time.Duration(math.Round(f.Delay*1000)) * time.Microsecond
	case <-time.After(10 * time.Second):
		t.Fatal("no back-off in the log")
		return 0
	}
}

// status shows when the back-off ends; a start the operator asks for runs
// at once, and the step begins again; reset-failed ends the back-off, and
// the queued connection starts the unit at once.
func TestBackoffStartAndResetFailed(t *testing.T) {
	// Delays: 100ms, then 100ms × 36000^(1/2) ≈ 18.97s, then 1h.
	e := newEnv(t, "Environment=SOCKD_TEST_CHILD=crash\nRestartSec=100ms\nRestartSteps=2\nRestartMaxDelaySec=1h\n"+
		"[Unit]\nStartLimitBurst=10\nStartLimitIntervalSec=1h\n")
	long := restartDelay(&units.Service{RestartSec: 100 * time.Millisecond, RestartSteps: 2, RestartMaxDelay: time.Hour}, 2)
	// backoff waits for the unit failed and listening, and checks the
	// back-off it shows.
	backoff := func(want time.Duration) {
		t.Helper()
		st := e.await(func(st api.ServiceStatus) bool { return st.State == api.StateFailed && st.SubState == "listening" })
		if got := st.NextStart.Sub(st.Since); got < want || got > want+300*time.Millisecond {
			t.Fatalf("failed-listening with next start %v after it failed, want %v: %+v", got, want, st)
		}
	}
	a := &attempts{e: e, seen: map[int]bool{}}
	e.dialQueued()
	a.next()
	backoff(100 * time.Millisecond)
	a.next()
	backoff(long)

	begun := time.Now()
	e.d.Start(e.ctx(), "app") // it may fail: the service exits at once
	a.next()
	if d := time.Since(begun); d > 5*time.Second {
		t.Errorf("sockctl start ran %v later, during a back-off of %v", d, long)
	}
	backoff(100 * time.Millisecond) // the step began again
	a.next()
	backoff(long)

	begun = time.Now()
	reset, err := e.d.ResetFailed(e.ctx(), "app")
	if err != nil || !reflect.DeepEqual(reset, []string{"app.service"}) {
		t.Fatalf("ResetFailed = %q, %v", reset, err)
	}
	a.next() // the queued connection, at once
	if d := time.Since(begun); d > 5*time.Second {
		t.Errorf("the connection started the unit %v after reset-failed", d)
	}
	backoff(100 * time.Millisecond)
	e.mustStop()
}

// reset-failed brings a unit that hit the start limit back to listening,
// its sockets bound again, with its limits cleared: a connection starts
// it. A unit that is not failed is left alone.
func TestResetFailedStartLimit(t *testing.T) {
	e := newEnv(t, "Environment=SOCKD_TEST_CHILD=crash\nRestartSec=10ms\n[Unit]\nStartLimitBurst=2\nStartLimitIntervalSec=1h\n")
	if reset, err := e.d.ResetFailed(e.ctx(), "app"); err != nil || len(reset) != 0 {
		t.Fatalf("ResetFailed of a listening unit = %q, %v", reset, err)
	}
	if st := e.status(); st.State != api.StateInactive || st.SubState != "listening" {
		t.Fatalf("after a reset-failed that had nothing to do: %+v", st)
	}
	if _, err := e.d.ResetFailed(e.ctx(), "nosuch"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("ResetFailed(nosuch) = %v, want ErrNotFound", err)
	}
	e.dialQueued()
	a := &attempts{e: e, seen: map[int]bool{}}
	a.next()
	a.next()
	st := e.await(func(st api.ServiceStatus) bool { return st.Result == "start-limit-hit" })
	if st.SubState != "failed" || !st.NextStart.IsZero() {
		t.Fatalf("after the start limit: %+v", st)
	}
	reset, err := e.d.ResetFailed(e.ctx(), "")
	if err != nil || !reflect.DeepEqual(reset, []string{"app.service"}) {
		t.Fatalf("ResetFailed(all) = %q, %v", reset, err)
	}
	st = e.await(func(st api.ServiceStatus) bool { return st.SubState == "listening" })
	if st.State != api.StateInactive || st.Result != "" {
		t.Fatalf("after reset-failed: %+v, want inactive/listening without a result", st)
	}
	e.dialQueued() // the start limit closed the sockets; reset-failed bound them again
	a.next()       // the limit is cleared: the connection starts it
	a.next()
	e.await(func(st api.ServiceStatus) bool { return st.Result == "start-limit-hit" })
}

// RestartSteps= grows the pause of Restart= too; the status shows when
// the restart is due; a start the operator asks for resets the step.
// reset-failed of a unit without sockets leaves it dead.
func TestActorRestartSteps(t *testing.T) {
	e := newActor(t, "ExecStart=/srv/app\nRestart=on-failure\nRestartSec=100ms\nRestartSteps=2\nRestartMaxDelaySec=900ms\n"+
		"[Unit]\nStartLimitBurst=3\nStartLimitIntervalSec=1h\n")
	// 100ms × 9^((n−1)/2): 100ms, 300ms, 900ms; the third restart hits
	// the start limit.
	for i, want := range []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 900 * time.Millisecond} {
		p := e.proc()
		e.await("running", func(st api.ServiceStatus) bool { return slices.Contains(st.Pids, p.pid) })
		exited := time.Now()
		p.exitWith(children.ExitStatus{Code: 1})
		st := e.awaitAutoRestart(exited)
		if got := st.NextStart.Sub(st.Since); got < want-20*time.Millisecond || got > want+150*time.Millisecond {
			t.Errorf("restart %d due %v after the exit, want %v", i+1, got, want)
		}
	}
	st := e.await("failed", func(st api.ServiceStatus) bool { return st.State == api.StateFailed })
	if st.Result != "start-limit-hit" || st.SubState != "failed" {
		t.Fatalf("after the crash loop: %+v", st)
	}
	if rep := e.wait(e.async(reqResetFailed, api.RestartOptions{})); !rep.reset {
		t.Fatalf("reset-failed of a failed unit: %+v", rep)
	}
	st = e.awaitSub("dead")
	if st.State != api.StateInactive || st.Result != "" {
		t.Fatalf("after reset-failed: %+v", st)
	}
	if rep := e.wait(e.async(reqResetFailed, api.RestartOptions{})); rep.reset || rep.err != nil {
		t.Fatalf("reset-failed of a dead unit: %+v", rep)
	}
	start := e.async(reqStart, api.RestartOptions{})
	p := e.proc()
	if r := e.wait(start); r.err != nil {
		t.Fatalf("start: %v", r.err)
	}
	exited := time.Now()
	p.exitWith(children.ExitStatus{Code: 1})
	st = e.awaitAutoRestart(exited)
	if got := st.NextStart.Sub(st.Since); got > 250*time.Millisecond {
		t.Errorf("the first restart after a start is due %v after the exit, want RestartSec=100ms", got)
	}
}

// awaitAutoRestart waits for auto-restart entered after since (the
// observer's channel still holds the earlier ones).
func (e *actorEnv) awaitAutoRestart(since time.Time) api.ServiceStatus {
	e.t.Helper()
	return e.await("auto-restart", func(st api.ServiceStatus) bool { return st.SubState == "auto-restart" && st.Since.After(since) })
}
