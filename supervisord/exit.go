package supervisord

// A process's exit: the books, the judgement (Result=, Restart=), and
// where the unit goes when its last process is gone.

import (
	"slices"
	"time"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
)

// forget removes the exited p from the unit's books: its slot, the
// draining list, the pid table, a restart's list of old processes. It
// reports whether p held a slot (an exit the unit must judge).
func (u *unit) forget(p *proc) (slotted bool) {
	p.exited = true
	st := p.p.Exit()
	u.pids.remove(p.Pid(), u)
	u.pids.remove(p.mainPid, u)
	if u.keep != nil && len(p.kept) > 0 {
		u.keep.remove(p.kept...)
		p.kept = nil
	}
	for _, t := range []*time.Timer{p.wdTimer, p.startTimer, p.stopTimer} {
		if t != nil {
			t.Stop()
		}
	}
	lg := u.log.Info()
	if !st.Success() && !p.stopping {
		lg = u.log.Warn()
	}
	lg.Int("pid", p.Pid()).Str("exit", st.String()).Msg("exited")
	u.publishExit(p, st)
	for i, d := range u.draining {
		if d == p {
			u.draining = slices.Delete(u.draining, i, i+1) // zeroes the freed slot
			if len(u.draining) == 0 {
				u.draining = nil
			}
			break
		}
	}
	if j := u.job; j != nil {
		for i, o := range j.old {
			if o == p {
				j.old = append(j.old[:i], j.old[i+1:]...)
				j.emit(api.PhaseStopped, p.Pid(), st.String())
				break
			}
		}
	}
	if p.slot < len(u.slots) && u.slots[p.slot] == p {
		u.slots[p.slot] = nil
		return !p.stopping || p.timedOut || p.watchdog
	}
	return false
}

// judgeExit records an exit sockd did not ask for (or a stop for a
// timeout or a watchdog) in Result= and the last exit.
func (u *unit) judgeExit(p *proc, st children.ExitStatus) {
	u.lastExit = st.String()
	u.result = judge(u.svc, st, p.timedOut, p.watchdog).result(st)
}

// shouldRestart applies RestartPreventExitStatus=, RestartForceExitStatus=
// and Restart=, in that order.
func (u *unit) shouldRestart(p *proc, st children.ExitStatus) bool {
	if u.exiting {
		return false
	}
	switch {
	case u.svc.RestartPreventExitStatus.Has(st.Code, st.Signal):
		return false
	case u.svc.RestartForceExitStatus.Has(st.Code, st.Signal):
		return true
	}
	return restartWanted(u.svc.Restart, st, judge(u.svc, st, p.timedOut, p.watchdog))
}

// afterLastExit decides, once no process serves: RemainAfterExit= after
// a clean exit, else ExecStopPost= and then Restart=, or rest.
func (u *unit) afterLastExit(p *proc, st children.ExitStatus) {
	if u.svc.RemainAfterExit && u.result == "success" && !u.exiting {
		u.enter(phaseExited)
		return
	}
	if u.shouldRestart(p, st) {
		u.stopPost(postAutoRestart)
		return
	}
	u.stopPost(postRest)
}

// rest is where a unit goes when it has no process in a slot: it waits
// for draining processes first (stop-sigterm), then listens, or fails.
// The start and trigger limits, and a unit without a socket, fail for
// good: nothing starts them but a request.
func (u *unit) rest() {
	if len(u.draining) > 0 {
		for _, p := range u.draining {
			if p.killed {
				u.enter(phaseStopSigkill)
				return
			}
		}
		u.enter(phaseStopSigterm)
		return
	}
	u.tearDownExec(true)
	if u.exiting {
		u.enter(phaseDead)
		return
	}
	failed := u.result != "" && u.result != "success"
	limit := u.result == "start-limit-hit" || u.result == "trigger-limit-hit" || u.result == "condition" || u.result == "assert"
	listen := len(u.ls) > 0 && !u.exiting && !limit && !u.socksClosed
	switch {
	case failed && listen:
		u.enter(phaseFailedListening)
		u.armBackoff()
	case failed:
		u.enter(phaseFailed)
	case listen:
		u.enter(phaseListening)
	default:
		u.enter(phaseDead)
	}
}

// servingExit handles an exit while the unit serves (running,
// reloading, stopping): the others go on; the last one gone, Restart=
// decides.
func (u *unit) servingExit(e event) {
	p := e.p
	if !u.forget(p) {
		u.maybeRested()
		return
	}
	st := p.p.Exit()
	u.judgeExit(p, st)
	if u.running() > 0 {
		if u.shouldRestart(p, st) {
			u.armRestartTimer() // refill
		}
		return
	}
	u.cancelHelper()
	if j := u.job; j != nil && j.kind == reqReloadApp {
		u.finishJob("no process running")
	}
	u.afterLastExit(p, st)
}

// maybeRested follows a draining process's exit: in a phase without
// slots, the last one gone moves the unit on.
func (u *unit) maybeRested() {
	if u.running() == 0 && len(u.draining) == 0 && (u.phase == phaseStopSigterm || u.phase == phaseStopSigkill) {
		u.rest()
	}
}

// drainedExit forgets a draining process in a phase without slots.
func (u *unit) drainedExit(e event) { u.forget(e.p) }

// armRestartTimer starts RestartSec= (grown by RestartSteps= with the
// restarts in a row).
func (u *unit) armRestartTimer() {
	d := restartDelay(u.svc, u.nRestarts+1)
	u.rstTok = u.nextToken()
	u.nextStart = time.Now().Add(d)
	u.log.Info().Dur("delay", d).Int("restarts_in_a_row", u.nRestarts).Msg("scheduling restart")
	u.after(d, event{kind: evRestartTimer, tok: u.rstTok})
}

func (u *unit) cancelRestartTimer() { u.rstTok = 0 }

// armBackoff holds a unit that failed and listens (failed-listening)
// back from its socket for the delay an automatic restart would wait:
// settle arms the waiter only once evBackoff came. Without it the
// connection still queued would start the unit again at once, and a
// start that fails at once would burn the start limit in a
// millisecond.
func (u *unit) armBackoff() {
	d := restartDelay(u.svc, u.nRestarts+1)
	if d <= 0 {
		return
	}
	u.backoffTok = u.nextToken()
	u.nextStart = time.Now().Add(d)
	u.log.Info().Dur("delay", d).Int("restarts_in_a_row", u.nRestarts).Msg("failed: listening again after a back-off")
	u.after(d, event{kind: evBackoff, tok: u.backoffTok})
}

// backoffDone ends the back-off: settle arms the waiter again.
func (u *unit) backoffDone(e event) {
	if e.tok == u.backoffTok {
		u.backoffTok = 0
	}
}

func (u *unit) cancelBackoff() { u.backoffTok = 0 }

// nextAttempt is when the next start is due by itself (RestartSec=, or
// the back-off), zero when none is.
func (u *unit) nextAttempt() time.Time {
	if u.rstTok == 0 && u.backoffTok == 0 {
		return time.Time{}
	}
	return u.nextStart
}

// refill starts processes in the empty instance slots after RestartSec=,
// while the others serve.
func (u *unit) refill(e event) {
	if e.tok != u.rstTok {
		return
	}
	u.rstTok = 0
	u.nRestarts++
	if !u.startLim.allow(u.svc.StartLimitBurst, u.svc.StartLimitInterval) {
		u.result = "start-limit-hit"
		u.log.Error().Int("burst", u.svc.StartLimitBurst).Dur("interval", u.svc.StartLimitInterval).
			Msg("start limit hit: not starting again until `sockctl start`")
		u.stopEverything()
		return
	}
	u.spawnMissing("Restart=" + string(u.svc.Restart))
}
