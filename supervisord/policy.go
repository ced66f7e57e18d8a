package supervisord

// Policy as pure functions of the unit's definition: how an exit is
// judged, whether Restart= restarts it, whom a stop signals, and the
// start and trigger limits. The actor applies them; policy_test.go
// tests them without processes.

import (
	"math"
	"syscall"
	"time"

	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/units"
)

// cleanExit is systemd's notion of a clean exit: code 0, SIGHUP, SIGINT,
// SIGTERM, SIGPIPE, or what SuccessExitStatus= lists. With the "-"
// prefix on ExecStart= every exit is clean, as systemd ignores the main
// process's failure then.
func cleanExit(svc *units.Service, st children.ExitStatus) bool {
	if len(svc.ExecStart) > 0 && svc.ExecStart[0].IgnoreFailure && st.Err == nil {
		return true
	}
	if st.Err != nil {
		return false
	}
	if st.Signal == 0 {
		if st.Code == 0 {
			return true
		}
		for _, c := range svc.SuccessExitStatus {
			if c == st.Code {
				return true
			}
		}
		return false
	}
	switch st.Signal {
	case syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE:
		return true
	}
	for _, s := range svc.SuccessSignals {
		if s == st.Signal {
			return true
		}
	}
	return false
}

// exitKind is how sockd judges a process's end, beyond its status.
type exitKind struct {
	clean    bool // cleanExit
	timedOut bool // not ready within TimeoutStartSec=
	watchdog bool // missed its watchdog
}

func judge(svc *units.Service, st children.ExitStatus, timedOut, watchdog bool) exitKind {
	return exitKind{clean: cleanExit(svc, st), timedOut: timedOut, watchdog: watchdog}
}

// result is the unit's Result= after an exit it did not ask for.
func (k exitKind) result(st children.ExitStatus) string {
	switch {
	case k.timedOut:
		return "timeout"
	case k.watchdog:
		return "watchdog"
	case k.clean:
		return "success"
	case st.Signal != 0:
		return "signal"
	}
	return "exit-code"
}

// restartWanted applies Restart= to an exit sockd did not ask for
// (systemd.service(5), the table under Restart=).
func restartWanted(policy units.RestartPolicy, st children.ExitStatus, k exitKind) bool {
	failed := !k.clean || k.timedOut || k.watchdog
	switch policy {
	case units.RestartAlways:
		return true
	case units.RestartOnSuccess:
		return !failed
	case units.RestartOnFailure:
		return failed
	case units.RestartOnAbnormal:
		return failed && (st.Signal != 0 || k.timedOut || k.watchdog)
	case units.RestartOnAbort:
		return !k.clean && st.Signal != 0 && !k.timedOut && !k.watchdog
	case units.RestartOnWatchdog:
		return k.watchdog
	}
	return false
}

// killTargets maps KillMode= and SendSIGKILL= to whom the stop signal and
// the SIGKILL after TimeoutStopSec= go. children.Group is the process's
// control group: its cgroup leaf with cgroup v2 (cgroup.go), else its
// process group. Services and Accept=yes instances alike.
func killTargets(svc *units.Service) (sig, kill children.Target) {
	switch svc.KillMode {
	case units.KillNone:
		// systemd leaves the processes running; sockd must reap its
		// children, so after TimeoutStopSec= the main one is killed.
		sig, kill = children.None, children.Main
	case units.KillProcess:
		sig, kill = children.Main, children.Main
	case units.KillMixed:
		sig, kill = children.Main, children.Group
	default: // control-group
		sig, kill = children.Group, children.Group
	}
	if !svc.SendSIGKILL {
		kill = children.None
	}
	return sig, kill
}

// killGroupOnExit reports whether the rest of the control group (the
// cgroup leaf, or the process group) goes when the main process exits:
// with KillMode=control-group and mixed nothing of a cgroup outlives its
// service. Not for Type=forking, whose first process exits on purpose.
func killGroupOnExit(svc *units.Service) bool {
	if svc.Type == units.TypeForking {
		return false // the daemon it forks stays
	}
	return svc.KillMode == "" || svc.KillMode == units.KillControlGroup || svc.KillMode == units.KillMixed
}

// stopSignal is KillSignal=, SIGTERM by default.
func stopSignal(svc *units.Service) syscall.Signal {
	if svc.KillSignal == 0 {
		return syscall.SIGTERM
	}
	return svc.KillSignal
}

// stopTimeout is TimeoutStopSec=; 0 means none, as in systemd.
func stopTimeout(svc *units.Service) time.Duration {
	if svc.TimeoutStopSec == 0 {
		return units.Infinity
	}
	return svc.TimeoutStopSec
}

// restartDelay is the pause before the nth start in a row that follows
// a failure (n from 1): RestartSec=, growing with RestartSteps= and
// RestartMaxDelaySec= as systemd's service_restart_usec_next computes
// it. The nth delay is RestartSec × (RestartMaxDelaySec/RestartSec) ^
// ((n−1)/RestartSteps), in whole microseconds as systemd counts them,
// and RestartMaxDelaySec= from step RestartSteps+1 on. Without both
// options, or with RestartSec= at or above the maximum, it stays
// RestartSec=.
func restartDelay(svc *units.Service, n int) time.Duration {
	r0, rn, steps := svc.RestartSec, svc.RestartMaxDelay, svc.RestartSteps
	if n <= 1 || steps <= 0 || r0 <= 0 || rn <= 0 || rn == units.Infinity || r0 >= rn {
		return r0
	}
	if n > steps {
		return rn
	}
	u0, un := float64(r0.Microseconds()), float64(rn.Microseconds())
	usec := u0 * math.Pow(un/u0, float64(n-1)/float64(steps))
	return time.Duration(usec) * time.Microsecond
}

// rateLimit is StartLimitBurst= starts per StartLimitIntervalSec= (and
// TriggerLimit*=): the times of the recent events it allowed.
type rateLimit struct{ recent []time.Time }

// allow records an event now and reports whether it is within burst
// per interval. A burst or interval of 0 means no limit.
func (r *rateLimit) allow(burst int, interval time.Duration) bool {
	return r.allowAt(time.Now(), burst, interval)
}

func (r *rateLimit) allowAt(now time.Time, burst int, interval time.Duration) bool {
	if burst <= 0 || interval <= 0 {
		return true
	}
	kept := r.recent[:0]
	for _, t := range r.recent {
		if now.Sub(t) < interval {
			kept = append(kept, t)
		}
	}
	r.recent = kept
	if len(kept) >= burst {
		return false
	}
	r.recent = append(r.recent, now)
	return true
}
