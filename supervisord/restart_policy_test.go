package supervisord

import (
	"fmt"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/testutil"
)

// Restart= and SuccessExitStatus=: whether an exit is followed by a new
// process.
func TestOptionsRestart(t *testing.T) {
	for _, tc := range []struct {
		name, lines string
		exit        int
		restart     bool
		result      string
	}{
		{"on-failure-exit-1", "Restart=on-failure", 1, true, "exit-code"},
		{"on-failure-exit-0", "Restart=on-failure", 0, false, "success"},
		{"no-exit-1", "Restart=no", 1, false, "exit-code"},
		{"default-exit-1", "", 1, false, "exit-code"},
		{"success-status-listed", "Restart=on-failure\nSuccessExitStatus=3 7", 3, false, "success"},
		{"success-status-other", "Restart=on-failure\nSuccessExitStatus=3 7", 4, true, "exit-code"},
		{"on-success-exit-0", "Restart=on-success", 0, true, "success"},
		{"on-success-exit-1", "Restart=on-success", 1, false, "exit-code"},
		{"always-exit-0", "Restart=always", 0, true, "success"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, reportService(tc.lines+fmt.Sprintf("\nEnvironment=CHILD_EXIT=%d CHILD_NOREPORT=1\nRestartSec=50ms", tc.exit)))
			if err := e.d.Start(e.ctx(), "app"); err != nil {
				t.Fatal(err)
			}
			first := e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 1 }).Pids[0]
			st := e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 0 && st.Result != "" })
			if st.Result != tc.result {
				t.Errorf("result %q, want %q", st.Result, tc.result)
			}
			if !tc.restart {
				wantState := api.StateFailed
				if tc.result == "success" {
					wantState = api.StateInactive
				}
				// No restart is scheduled: the unit waits for a connection.
				if st.SubState != "listening" || st.State != wantState {
					t.Fatalf("after exit %d: %+v, want %s and listening", tc.exit, st, wantState)
				}
				return
			}
			if st.SubState != "auto-restart" {
				t.Fatalf("after exit %d: %+v, want auto-restart", tc.exit, st)
			}
			next := e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 1 })
			if next.Pids[0] == first {
				t.Fatalf("no new process: %+v", next)
			}
			e.mustStop()
		})
	}
}

// RestartSec= is the pause between an exit and the next start.
func TestOptionsRestartSec(t *testing.T) {
	e := newEnv(t, reportService("Restart=on-failure\nRestartSec=400ms\nEnvironment=CHILD_EXIT=1 CHILD_NOREPORT=1"))
	if err := e.d.Start(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	waiting := e.await(func(st api.ServiceStatus) bool { return st.SubState == "auto-restart" })
	next := e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 1 })
	if d := next.Since.Sub(waiting.Since); d < 400*time.Millisecond {
		t.Fatalf("restarted %v after the exit, want at least RestartSec=400ms", d)
	}
	e.mustStop()
}

// A crash loop ends in failed (start-limit-hit) instead of spinning.
// (TestActorRestartPolicyAndStartLimit shows that a start resets it.)
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

// An auto-restart that falls due while a restart is under way is kept and
// runs once the restart ends. Here the restart's new process is ready at
// once (Type=simple), takes the slot and exits; Restart=always schedules a
// start 10 ms later, while the restart still drains the old process (it
// ignores SIGTERM and is killed after TimeoutStopSec=1s). Once the restart
// returns, a process runs or an auto-restart is pending, and a third
// process becomes active. (The timer used to be dropped, leaving nothing
// running despite Restart=always.)
func TestAutoRestartDuringRestartRuns(t *testing.T) {
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

// An auto-restart clears the result of the exit before it: after a crash
// and a successful Restart=always respawn, a clean stop leaves the unit
// inactive, not failed.
func TestStopAfterAutoRestartInactive(t *testing.T) {
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
