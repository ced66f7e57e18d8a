package supervisord

// Starting a unit: from a connection, a request or Restart=, through
// ExecStartPre=, the processes (a oneshot's ExecStart= lines), their
// readiness and ExecStartPost=, to running.

import (
	"errors"
	"fmt"
	"time"

	"github.com/sockd/sockd/activation"
	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/units"
)

// trigger starts the unit for the first connection on one of its
// sockets, within TriggerLimit*= and the start limit.
func (u *unit) trigger(e event) {
	if e.tok != u.waitTok || !u.armed {
		return // from a waiter that was disarmed
	}
	u.disarmWaiter()
	if e.err != nil {
		u.log.Error().Err(e.err).Msg("waiting for a connection")
		u.result = "resources"
		u.enter(phaseFailed)
		return
	}
	s := u.socketOf(e.l)
	sockName := ""
	if s != nil {
		sockName = s.Name
	}
	u.publish(api.UnitEvent{Kind: api.EventTriggered, Socket: sockName, Listen: e.l.Addr()})
	if s != nil && !u.allowTrigger(s) {
		u.publish(api.UnitEvent{Kind: api.EventTriggerLimit, Socket: s.Name, Listen: e.l.Addr()})
		u.result = "trigger-limit-hit"
		u.log.Error().Str("socket", s.Name).Int("burst", s.TriggerLimitBurst).Dur("interval", s.TriggerLimitInterval).
			Msg("trigger limit hit: not starting on connections until `sockctl start`")
		u.enter(phaseFailed)
		return
	}
	if !u.startLim.allow(u.svc.StartLimitBurst, u.svc.StartLimitInterval) {
		u.failStartLimit()
		return
	}
	// A connection after a failure (and its back-off) is one more start
	// in a row, as an automatic restart is; after a clean rest the
	// count begins again, as systemd's does at a start that is not an
	// automatic restart.
	if u.phase == phaseFailedListening {
		u.nRestarts++
	} else {
		u.nRestarts = 0
	}
	u.lastExit = ""
	u.beginStart("connection on " + e.l.Spec().Address)
}

func (u *unit) socketOf(l *activation.Listener) *units.Socket {
	for i, x := range u.ls {
		if x == l && i < len(u.lsSock) {
			return u.lsSock[i]
		}
	}
	return nil
}

// allowTrigger applies the socket's TriggerLimitIntervalSec= and
// TriggerLimitBurst=. Past the limit the unit fails (trigger-limit-hit)
// and stops starting on connections until an explicit start; unlike
// systemd the socket stays open, so what waits in its queue is served
// then.
func (u *unit) allowTrigger(s *units.Socket) bool {
	if u.trigLim == nil {
		u.trigLim = map[*units.Socket]*rateLimit{}
	}
	lim := u.trigLim[s]
	if lim == nil {
		lim = &rateLimit{}
		u.trigLim[s] = lim
	}
	return lim.allow(s.TriggerLimitBurst, s.TriggerLimitInterval)
}

// failStartLimit fails the unit for good, until an explicit start.
// Its sockets close, so that clients are refused instead of waiting
// for a service that will not come, as systemd's socket unit fails.
func (u *unit) failStartLimit() {
	u.result = "start-limit-hit"
	u.publish(api.UnitEvent{Kind: api.EventStartLimit})
	u.log.Error().Int("burst", u.svc.StartLimitBurst).Dur("interval", u.svc.StartLimitInterval).
		Msg("start limit hit: not starting again until `sockctl start`")
	u.closeSockets()
	u.enter(phaseFailed)
}

// startRequest begins a start or restart of an idle unit: an explicit
// request resets the limits, as `systemctl start` does after reset-failed,
// and counts as the first start of the new interval. It runs at once,
// whatever back-off a failure set, and the back-off's step begins again.
func (u *unit) startRequest(e event) {
	u.cancelRestartTimer()
	if err := u.reopenSockets(); err != nil {
		err = fmt.Errorf("%s %s: bind the sockets again: %w", e.j.kind, u.name, err)
		u.log.Error().Err(err).Msg("start failed")
		u.result, u.lastExit = "resources", err.Error()
		u.enter(phaseFailed)
		u.finishJobErr(err)
		return
	}
	u.cancelBackoff()
	u.startLim, u.trigLim, u.nRestarts = rateLimit{}, nil, 0
	u.startLim.allow(u.svc.StartLimitBurst, u.svc.StartLimitInterval)
	u.lastExit = "" // an explicit start begins afresh; Restart= keeps the exit that caused it
	if e.j.kind == reqRestart {
		u.restarts++
	}
	u.beginStart(e.j.kind.String())
}

// autoRestart starts the unit again after RestartSec=.
func (u *unit) autoRestart(e event) {
	if e.tok != u.rstTok {
		return
	}
	u.rstTok = 0
	u.nRestarts++
	if !u.startLim.allow(u.svc.StartLimitBurst, u.svc.StartLimitInterval) {
		u.failStartLimit()
		return
	}
	u.beginStart("Restart=" + string(u.svc.Restart))
}

// beginStart starts a new generation from nothing: ExecStartPre= first
// if there is one.
func (u *unit) beginStart(why string) {
	u.gen++
	u.slots = make([]*proc, instances(u.svc))
	u.result = "" // systemd resets it on every start
	u.why = why
	if failed, unmet := checkConditions(u.svc.Conditions); failed != nil {
		err := fmt.Errorf("assertion failed: %s", conditionText(failed))
		u.log.Error().Err(err).Msg("start failed")
		u.result, u.lastExit = "assert", err.Error()
		u.finishStart(err.Error())
		u.rest() // nothing ran: no ExecStopPost=
		return
	} else if unmet != nil {
		u.skipStart(conditionText(unmet))
		return
	}
	env, release, err := setUpExec(u.svc, u.roots, u.lockDir)
	if err == nil {
		if err = u.ensurePrivateTmp(u.svc); err != nil {
			release()
		}
	}
	if err != nil {
		u.startFailed("resources", err)
		return
	}
	u.execEnv, u.execRelease = env, release
	if len(u.svc.ExecCondition) > 0 {
		u.runHelper("ExecCondition", u.svc.ExecCondition, 0)
		u.enter(phaseCondition)
		return
	}
	u.startPre()
}

// startPre runs ExecStartPre=, if any, then the processes.
func (u *unit) startPre() {
	if len(u.svc.ExecStartPre) > 0 {
		u.progress(api.PhaseStartPre, 0, "running ExecStartPre=")
		u.runHelper("ExecStartPre", u.svc.ExecStartPre, 0)
		u.enter(phaseStartPre)
		return
	}
	u.startMain(u.why)
}

// conditionDone goes on after ExecCondition=: an exit of 1 to 254 skips
// the start without failing the unit (status says why), 255 or a signal
// fails it, as in systemd.
func (u *unit) conditionDone(e event) {
	if !u.helperDone(e) {
		return
	}
	var he *helperError
	switch {
	case e.err == nil:
		u.startPre()
	case errors.As(e.err, &he) && he.status.Signal == 0 && he.status.Code >= 1 && he.status.Code <= 254:
		u.skipStart(e.err.Error())
	default:
		u.startFailed("exit-code", e.err)
	}
}

// skipStart ends a start whose condition does not hold: the unit is not
// failed, as in systemd. A unit with sockets does not listen again,
// though (result condition): the connection that triggered it would
// trigger it again at once.
func (u *unit) skipStart(what string) {
	u.log.Info().Str("condition", what).Msg("condition not met: start skipped")
	u.lastExit = "condition not met: " + what
	if len(u.ls) > 0 {
		u.result = "condition"
	}
	u.finishStart("")
	u.rest()
}

// startPreDone goes on after ExecStartPre=.
func (u *unit) startPreDone(e event) {
	if !u.helperDone(e) {
		return
	}
	if e.err != nil {
		u.startFailed("exit-code", e.err)
		return
	}
	u.startMain(u.why)
}

// startFailed fails the start before any process ran; ExecStopPost=
// runs all the same, as in systemd.
func (u *unit) startFailed(result string, err error) {
	u.log.Error().Err(err).Msg("start failed")
	u.result, u.lastExit = result, err.Error()
	u.finishStart(err.Error())
	u.stopPost(postRest)
}

// startMain spawns the processes, or runs a oneshot's ExecStart= lines.
func (u *unit) startMain(why string) {
	if u.svc.Type == units.TypeOneshot {
		u.runHelper("ExecStart", u.svc.ExecStart, 0)
		u.enter(phaseStarting)
		return
	}
	if err := u.spawnMissing(why); err != nil && u.running() == 0 {
		u.startFailed("resources", err)
		return
	}
	u.enter(phaseStarting)
	if u.allReady() {
		u.started()
	}
}

// spawnMissing starts a process in every empty slot of the current
// generation. why is for the log.
func (u *unit) spawnMissing(why string) error {
	var firstErr error
	for i, p := range u.slots {
		if p != nil {
			continue
		}
		pr, err := u.spawn(i, u.gen)
		if err != nil {
			u.log.Error().Err(err).Str("why", why).Msg("spawn failed")
			u.result, u.lastExit = "resources", err.Error()
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		u.slots[i] = pr
		u.log.Info().Int("pid", pr.Pid()).Int("gen", pr.gen).Int("instance", i).Str("why", why).Msg("spawned")
		if j := u.job; j != nil && j.kind == reqRestart {
			j.newPids = append(j.newPids, pr.Pid())
			j.emit(api.PhaseSpawned, pr.Pid(), fmt.Sprintf("instance %d", i))
		}
		u.armReadiness(pr, false)
		if pr.ready {
			u.progress(api.PhaseReady, pr.Pid(), "")
		}
	}
	return firstErr
}

// armReadiness marks pr ready at once or arms the timers that decide.
// gated is for the new process of an overlapping restart, which
// X-ReadyAfterSec= gates.
func (u *unit) armReadiness(pr *proc, gated bool) {
	if u.svc.WatchdogSec > 0 && u.svc.WatchdogSec != units.Infinity {
		u.armWatchdog(pr)
	}
	if u.svc.Type == units.TypeNotify || pr.starter {
		// Ready at READY=1, or (Type=forking) when the first process has
		// exited and the main one is known.
		if t := u.svc.TimeoutStartSec; t > 0 && t != units.Infinity {
			pr.startTok = u.nextToken()
			pr.startTimer = u.after(t, event{kind: evStartTimeout, p: pr, tok: pr.startTok})
		}
		u.progress(api.PhaseWaiting, pr.Pid(), "")
		return
	}
	if u.svc.ReadyAfter > 0 && gated {
		pr.startTok = u.nextToken()
		pr.startTimer = u.after(u.svc.ReadyAfter, event{kind: evReady, p: pr, tok: pr.startTok})
		u.job.emit(api.PhaseWaiting, pr.Pid(), "")
		return
	}
	pr.ready = true
	u.publishReady(pr)
}

// armWatchdog (re)starts p's watchdog: WatchdogSec=, or what the
// process set with WATCHDOG_USEC=. Without either there is none, and
// WATCHDOG=1 is ignored, as in systemd.
func (u *unit) armWatchdog(pr *proc) {
	d := u.watchdogInterval(pr)
	if d <= 0 {
		return
	}
	pr.wdTok = u.nextToken()
	if pr.wdTimer != nil {
		pr.wdTimer.Stop() // each WATCHDOG=1 would otherwise leave one
	}
	pr.wdTimer = u.after(d, event{kind: evWatchdog, p: pr, tok: pr.wdTok})
}

func (u *unit) watchdogInterval(pr *proc) time.Duration {
	if pr.wdInterval != 0 {
		return pr.wdInterval
	}
	if u.svc.WatchdogSec == units.Infinity {
		return 0
	}
	return u.svc.WatchdogSec
}

// markReady records that p is ready; false if it already was, or the
// event is stale.
func (u *unit) markReady(e event) bool {
	p := e.p
	if p.ready || p.stopping || p.exited {
		return false
	}
	if e.tok != 0 && e.tok != p.startTok {
		return false
	}
	p.ready, p.startTok = true, 0
	u.log.Info().Int("pid", p.Pid()).Msg("ready")
	u.publishReady(p)
	u.progress(api.PhaseReady, p.Pid(), "")
	return true
}

// startingReady notes a process ready; all ready, the start goes on.
func (u *unit) startingReady(e event) {
	if u.markReady(e) && u.allReady() {
		u.started()
	}
}

// lateReady notes a process ready that nothing waits for.
func (u *unit) lateReady(e event) { u.markReady(e) }

// started runs ExecStartPost= once every process is ready.
func (u *unit) started() {
	if len(u.svc.ExecStartPost) > 0 {
		u.runHelper("ExecStartPost", u.svc.ExecStartPost, u.mainPid())
		u.enter(phaseStartPost)
		return
	}
	u.enterRunning()
}

// enterRunning ends a start: the unit serves.
func (u *unit) enterRunning() {
	u.enter(phaseRunning)
	if u.svc.RuntimeMax > 0 {
		u.runtimeTok = u.nextToken()
		u.after(u.svc.RuntimeMax, event{kind: evRuntimeMax, tok: u.runtimeTok})
	}
	u.finishStart("")
}

// oneshotDone follows a oneshot's ExecStart= lines.
func (u *unit) oneshotDone(e event) {
	if !u.helperDone(e) {
		return
	}
	if e.err != nil {
		u.startFailed("exit-code", e.err)
		return
	}
	u.log.Info().Msg("oneshot: ExecStart= done")
	u.lastExit = "exit status 0"
	if len(u.svc.ExecStartPost) > 0 {
		u.runHelper("ExecStartPost", u.svc.ExecStartPost, 0)
		u.enter(phaseStartPost)
		return
	}
	u.oneshotFinished()
}

func (u *unit) oneshotFinished() {
	u.result = "success"
	u.finishJob("")
	if u.svc.RemainAfterExit {
		u.enter(phaseExited)
		return
	}
	u.stopPost(postRest)
}

// startPostDone ends a start after ExecStartPost=. Its failure fails
// the unit, as in systemd: the processes are stopped.
func (u *unit) startPostDone(e event) {
	if !u.helperDone(e) {
		return
	}
	if e.err != nil {
		u.log.Error().Err(e.err).Msg("start failed")
		u.result, u.lastExit = "exit-code", e.err.Error()
		u.finishStart(e.err.Error())
		u.stopEverything()
		return
	}
	if u.svc.Type == units.TypeOneshot {
		u.oneshotFinished()
		return
	}
	u.enterRunning()
}

// startingExit handles an exit during a start: the start fails, and the
// last process gone, Restart= decides.
func (u *unit) startingExit(e event) {
	p := e.p
	if p.starter && cleanExit(u.svc, p.p.Exit()) && !p.stopping {
		u.forked(p)
		return
	}
	slotted := u.forget(p)
	if !slotted {
		u.maybeRested()
		return
	}
	st := p.p.Exit()
	u.judgeExit(p, st)
	if j := u.startJob(); j != nil && !p.ready {
		j.tail = p.Tail()
		u.finishJob(notReady(u.svc, p, st))
	}
	if u.running() > 0 {
		if u.shouldRestart(p, st) {
			u.armRestartTimer()
		}
		if u.phase == phaseStarting && u.allReady() {
			u.started()
		}
		return
	}
	u.cancelHelper() // ExecStartPost= of processes that are gone
	u.finishStart("no process running")
	u.afterLastExit(p, st)
}

func (u *unit) mainPid() int {
	for _, p := range u.slots {
		if p != nil {
			return p.mainPid
		}
	}
	return 0
}

// startJob returns the job under way if it is a start or a restart (the
// requests a start answers), else nil.
func (u *unit) startJob() *job {
	if j := u.job; j != nil && (j.kind == reqStart || j.kind == reqRestart) {
		return j
	}
	return nil
}

// finishStart answers the start or restart under way, if any.
func (u *unit) finishStart(failure string) {
	if u.startJob() != nil {
		u.finishJob(failure)
	}
}

// progress tells a waiting restart's callers what happens.
func (u *unit) progress(phase string, pid int, msg string) {
	if j := u.job; j != nil && j.kind == reqRestart {
		j.emit(phase, pid, msg)
	}
}

// startRunning answers a start of a unit that runs already.
func (u *unit) startRunning(event) { u.finishJob("") }

// notReady says why p, which exited with st, never became ready.
func notReady(svc *units.Service, p *proc, st children.ExitStatus) string {
	switch {
	case p.timedOut:
		return fmt.Sprintf("not ready within TimeoutStartSec=%s", svc.TimeoutStartSec)
	case p.watchdog:
		return fmt.Sprintf("watchdog timeout (WatchdogSec=%s)", svc.WatchdogSec)
	}
	return "exited before ready: " + st.String()
}
