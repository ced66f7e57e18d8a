package supervisord

import (
	"syscall"
	"testing"
	"time"

	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/units"
)

func exitCode(c int) children.ExitStatus { return children.ExitStatus{Code: c} }
func killedBy(s syscall.Signal) children.ExitStatus {
	return children.ExitStatus{Code: -1, Signal: s}
}

func TestCleanExit(t *testing.T) {
	svc := &units.Service{SuccessExitStatus: []int{3}, SuccessSignals: []syscall.Signal{syscall.SIGUSR1}}
	for _, tc := range []struct {
		st    children.ExitStatus
		clean bool
	}{
		{exitCode(0), true}, {exitCode(1), false}, {exitCode(3), true}, {exitCode(4), false},
		{killedBy(syscall.SIGHUP), true}, {killedBy(syscall.SIGINT), true}, {killedBy(syscall.SIGTERM), true},
		{killedBy(syscall.SIGPIPE), true}, {killedBy(syscall.SIGKILL), false}, {killedBy(syscall.SIGSEGV), false},
		{killedBy(syscall.SIGUSR1), true}, {killedBy(syscall.SIGUSR2), false},
		{children.ExitStatus{Code: -1, Err: syscall.ECHILD}, false},
	} {
		if got := cleanExit(svc, tc.st); got != tc.clean {
			t.Errorf("cleanExit(%v) = %v, want %v", tc.st, got, tc.clean)
		}
	}
}

// The table under Restart= in systemd.service(5): which exits each
// setting restarts.
func TestRestartWanted(t *testing.T) {
	svc := &units.Service{}
	type cause struct {
		name     string
		st       children.ExitStatus
		timedOut bool
		watchdog bool
	}
	causes := []cause{
		{"clean", exitCode(0), false, false},
		{"unclean-code", exitCode(1), false, false},
		{"unclean-signal", killedBy(syscall.SIGSEGV), false, false},
		{"timeout", killedBy(syscall.SIGTERM), true, false},
		{"watchdog", killedBy(syscall.SIGTERM), false, true},
	}
	want := map[units.RestartPolicy][5]bool{ // clean, code, signal, timeout, watchdog
		units.RestartNo:         {false, false, false, false, false},
		units.RestartAlways:     {true, true, true, true, true},
		units.RestartOnSuccess:  {true, false, false, false, false},
		units.RestartOnFailure:  {false, true, true, true, true},
		units.RestartOnAbnormal: {false, false, true, true, true},
		units.RestartOnAbort:    {false, false, true, false, false},
		units.RestartOnWatchdog: {false, false, false, false, true},
	}
	for policy, row := range want {
		for i, c := range causes {
			k := judge(svc, c.st, c.timedOut, c.watchdog)
			if got := restartWanted(policy, c.st, k); got != row[i] {
				t.Errorf("Restart=%s on %s: %v, want %v", policy, c.name, got, row[i])
			}
		}
	}
}

func TestExitResult(t *testing.T) {
	svc := &units.Service{}
	for _, tc := range []struct {
		st                 children.ExitStatus
		timedOut, watchdog bool
		want               string
	}{
		{exitCode(0), false, false, "success"},
		{exitCode(2), false, false, "exit-code"},
		{killedBy(syscall.SIGSEGV), false, false, "signal"},
		{killedBy(syscall.SIGTERM), false, false, "success"},
		{killedBy(syscall.SIGTERM), true, false, "timeout"},
		{killedBy(syscall.SIGKILL), false, true, "watchdog"},
	} {
		if got := judge(svc, tc.st, tc.timedOut, tc.watchdog).result(tc.st); got != tc.want {
			t.Errorf("result(%v, timedOut %v, watchdog %v) = %s, want %s", tc.st, tc.timedOut, tc.watchdog, got, tc.want)
		}
	}
}

// KillMode= and SendSIGKILL= for services and Accept=yes instances alike.
func TestKillTargets(t *testing.T) {
	for _, tc := range []struct {
		mode      units.KillMode
		sendKill  bool
		sig, kill children.Target
		groupExit bool
	}{
		{"", true, children.Group, children.Group, true},
		{units.KillControlGroup, true, children.Group, children.Group, true},
		{units.KillMixed, true, children.Main, children.Group, true},
		{units.KillProcess, true, children.Main, children.Main, false},
		{units.KillNone, true, children.None, children.Main, false},
		{units.KillControlGroup, false, children.Group, children.None, true},
		{units.KillMixed, false, children.Main, children.None, true},
	} {
		svc := &units.Service{KillMode: tc.mode, SendSIGKILL: tc.sendKill}
		sig, kill := killTargets(svc)
		if sig != tc.sig || kill != tc.kill || killGroupOnExit(svc) != tc.groupExit {
			t.Errorf("KillMode=%q SendSIGKILL=%v: signal %v, kill %v, group on exit %v; want %v %v %v",
				tc.mode, tc.sendKill, sig, kill, killGroupOnExit(svc), tc.sig, tc.kill, tc.groupExit)
		}
	}
}

func TestRateLimit(t *testing.T) {
	var r rateLimit
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if !r.allowAt(t0.Add(time.Duration(i)*time.Second), 3, 10*time.Second) {
			t.Fatalf("start %d refused", i)
		}
	}
	if r.allowAt(t0.Add(5*time.Second), 3, 10*time.Second) {
		t.Fatal("fourth start within the interval allowed")
	}
	if !r.allowAt(t0.Add(10*time.Second), 3, 10*time.Second) {
		t.Fatal("a start once the first left the interval refused")
	}
	var none rateLimit
	for range 100 {
		if !none.allowAt(t0, 0, time.Second) || !none.allowAt(t0, 5, 0) {
			t.Fatal("a zero burst or interval limits")
		}
	}
}

func TestStopDefaults(t *testing.T) {
	if stopSignal(&units.Service{}) != syscall.SIGTERM || stopSignal(&units.Service{KillSignal: syscall.SIGINT}) != syscall.SIGINT {
		t.Error("KillSignal= default")
	}
	if stopTimeout(&units.Service{}) != units.Infinity || stopTimeout(&units.Service{TimeoutStopSec: time.Second}) != time.Second {
		t.Error("TimeoutStopSec= 0 is no limit")
	}
}

// restartDelay is systemd's service_restart_usec_next: the want values
// were computed by that formula in C (long double powl, truncated to
// whole microseconds), for the nth restart in a row from 1 to steps+2.
func TestRestartDelay(t *testing.T) {
	for _, tc := range []struct {
		sec, max int64 // µs
		steps    int
		want     []int64 // µs, n = 1, 2, …
	}{
		{100000, 60000000, 5, []int64{100000, 359443, 1291994, 4643984, 16692485, 60000000, 60000000}},
		{1000000, 10000000, 3, []int64{1000000, 2154434, 4641588, 10000000, 10000000}},
		{100000, 1000000, 10, []int64{100000, 125892, 158489, 199526, 251188, 316227, 398107, 501187, 630957, 794328, 1000000, 1000000}},
		{150000, 2000000, 4, []int64{150000, 286632, 547722, 1046635, 2000000, 2000000}},
		{100000, 400000, 2, []int64{100000, 200000, 400000, 400000}},
		{1000, 7000000, 7, []int64{1000, 3542, 12548, 44452, 157470, 557825, 1976051, 7000000, 7000000}},
	} {
		svc := &units.Service{RestartSec: time.Duration(tc.sec) * time.Microsecond,
			RestartMaxDelay: time.Duration(tc.max) * time.Microsecond, RestartSteps: tc.steps}
		for i, w := range tc.want {
			if got := restartDelay(svc, i+1); got != time.Duration(w)*time.Microsecond {
				t.Errorf("RestartSec=%dus RestartMaxDelaySec=%dus RestartSteps=%d: restart %d waits %v, want %v",
					tc.sec, tc.max, tc.steps, i+1, got, time.Duration(w)*time.Microsecond)
			}
		}
	}
	// No growth without both options, or with RestartSec= at the maximum.
	for _, svc := range []*units.Service{
		{RestartSec: time.Second},
		{RestartSec: time.Second, RestartSteps: 5},
		{RestartSec: time.Second, RestartMaxDelay: time.Minute},
		{RestartSec: time.Second, RestartMaxDelay: units.Infinity, RestartSteps: 5},
		{RestartSec: time.Second, RestartMaxDelay: time.Second, RestartSteps: 5},
		{RestartSec: 0, RestartMaxDelay: time.Minute, RestartSteps: 5},
	} {
		for n := range 8 {
			if got := restartDelay(svc, n); got != svc.RestartSec {
				t.Errorf("%+v: restart %d waits %v, want RestartSec=%v", svc, n, got, svc.RestartSec)
			}
		}
	}
}
