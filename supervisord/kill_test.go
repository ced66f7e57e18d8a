package supervisord

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockd/sockd/api"
	"golang.org/x/sys/unix"
)

// waitService is a child that stays until signalled and says READY=1 once
// its handlers are in place.
const waitService = "Type=notify\nEnvironment=CHILD_NOTIFY=ready\n"

// startWaiting starts the unit and returns the main pid and the
// grandchild's pid (0 without one).
func (e *env) startWaiting() (int, int) {
	e.t.Helper()
	if err := e.d.Start(e.ctx(), "app"); err != nil {
		e.t.Fatalf("start: %v", err)
	}
	st := e.status()
	if len(st.Pids) != 1 {
		e.t.Fatalf("status %+v", st)
	}
	gc, _ := strconv.Atoi(strings.TrimPrefix(st.Status, "grandchild "))
	if gc > 0 {
		e.t.Cleanup(func() { syscall.Kill(gc, syscall.SIGKILL) })
	}
	return st.Pids[0], gc
}

func (e *env) hasLine(line string) bool {
	e.t.Helper()
	ls, err := e.d.Logs(e.ctx(), "app", api.LogQuery{N: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, l := range ls {
		if l.Line == line {
			return true
		}
	}
	return false
}

// KillSignal= is the signal the child gets on stop.
func TestOptionsKillSignal(t *testing.T) {
	for _, tc := range []struct {
		lines string
		sig   syscall.Signal
	}{
		{"", syscall.SIGTERM},
		{"KillSignal=SIGUSR1", syscall.SIGUSR1},
		{"KillSignal=INT", syscall.SIGINT},
		{"KillSignal=SIGHUP", syscall.SIGHUP},
	} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			e := newEnv(t, reportService(waitService+tc.lines))
			pid, _ := e.startWaiting()
			e.mustStop()
			if !e.hasLine(fmt.Sprintf("signal %d", tc.sig)) {
				t.Fatalf("child %d did not report signal %d", pid, tc.sig)
			}
		})
	}
}

// waitExit waits, through a pidfd, for any process (not only a child of
// ours) to exit, and reports whether it did within d.
func waitExit(t *testing.T, pid int, d time.Duration) bool {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return true
	}
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(d)
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms <= 0 {
			return !alive(pid)
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("poll pidfd: %v", err)
		}
		if n > 0 {
			return true
		}
	}
}

// KillMode=control-group signals the whole process group, KillMode=process
// the main process alone.
func TestOptionsKillMode(t *testing.T) {
	for _, tc := range []struct {
		mode     string
		survives bool
	}{
		{"", false},
		{"control-group", false},
		{"process", true},
	} {
		t.Run("mode="+tc.mode, func(t *testing.T) {
			lines := waitService + "Environment=CHILD_GRANDCHILD=sleep\n"
			if tc.mode != "" {
				lines += "KillMode=" + tc.mode + "\n"
			}
			e := newEnv(t, reportService(lines))
			pid, gc := e.startWaiting()
			if gc == 0 || !alive(gc) {
				t.Fatalf("no grandchild (%d) of %d", gc, pid)
			}
			e.mustStop()
			if alive(pid) {
				t.Fatalf("main pid %d alive after stop", pid)
			}
			if tc.survives {
				if !alive(gc) {
					t.Fatalf("grandchild %d died with KillMode=%s", gc, tc.mode)
				}
			} else if !waitExit(t, gc, 10*time.Second) {
				t.Fatalf("grandchild %d alive with KillMode=%s", gc, tc.mode)
			}
		})
	}
}

// TimeoutStopSec= ends in SIGKILL for a child that ignores SIGTERM;
// SendSIGKILL=no waits as long as it takes.
func TestOptionsStopTimeout(t *testing.T) {
	t.Run("escalation", func(t *testing.T) {
		e := newEnv(t, reportService(waitService+"Environment=CHILD_IGNORE_TERM=1\nTimeoutStopSec=300ms"))
		pid, _ := e.startWaiting()
		t0 := time.Now()
		e.mustStop()
		if d := time.Since(t0); d < 300*time.Millisecond {
			t.Fatalf("stopped after %v, before TimeoutStopSec=300ms", d)
		}
		if alive(pid) || e.hasLine("signal 15") {
			t.Fatalf("pid %d alive, or it handled SIGTERM", pid)
		}
	})
	t.Run("SendSIGKILL=no", func(t *testing.T) {
		e := newEnv(t, reportService(waitService+"Environment=CHILD_IGNORE_TERM=1\nTimeoutStopSec=200ms\nSendSIGKILL=no"))
		pid, _ := e.startWaiting()
		// Registered after newEnv's shutdown, so it runs before it.
		t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
		stopped := make(chan error, 1)
		go func() { stopped <- e.d.Stop(e.ctx(), "app") }()
		// Nothing to wait for but the absence of a kill: watch well past
		// the timeout.
		select {
		case err := <-stopped:
			t.Fatalf("stop returned (%v) though the child ignores SIGTERM", err)
		case <-time.After(200*time.Millisecond + time.Second):
		}
		if !alive(pid) {
			t.Fatalf("pid %d killed despite SendSIGKILL=no", pid)
		}
		syscall.Kill(pid, syscall.SIGKILL)
		if err := <-stopped; err != nil {
			t.Fatalf("stop: %v", err)
		}
	})
}
