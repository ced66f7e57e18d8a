package supervisord

// Stopping: a stop request, a failed start, a missed watchdog, a start
// timeout; ExecStop=, KillSignal= to the KillMode= target, SIGKILL after
// TimeoutStopSec=.

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/units"
)

// stopAll begins a stop request: everything the unit runs stops.
func (u *unit) stopAll(event) {
	u.cancelRestartTimer()
	u.stopEverything()
}

// stopEverything stops every process of the unit and the Exec*= list of
// the phase, and waits for them in stop-sigterm.
func (u *unit) stopEverything() {
	u.cancelHelper()
	for i, p := range u.slots {
		if p != nil {
			u.stopProc(p)
			u.slots[i] = nil
		}
	}
	if j := u.job; j != nil && j.newProc != nil {
		u.stopProc(j.newProc)
		j.newProc = nil
	}
	if len(u.draining) > 0 {
		u.rest() // stop-sigterm (or stop-sigkill) until they are gone
		return
	}
	u.stopped()
}

// stopped follows the exit of the last process after a stop: ExecStopPost=,
// then a stop request is done, a --stop-first restart starts the new
// generation.
func (u *unit) stopped() {
	if j := u.job; j != nil && j.kind == reqRestart {
		u.stopPost(postStart)
		return
	}
	u.stopPost(postRest)
}

// afterPost is what follows ExecStopPost=: the unit's pending
// continuation while it is in stop-post.
type afterPost int

const (
	postRest        afterPost = iota // a stop is done (or a failure); rest
	postAutoRestart                  // Restart= wants it: RestartSec=, then start
	postStart                        // a --stop-first restart: start the new generation
)

// stopPost runs ExecStopPost= once every process is gone, then next.
func (u *unit) stopPost(next afterPost) {
	u.cancelRuntimeMax()
	u.postNext = next
	if len(u.svc.ExecStopPost) > 0 {
		u.runHelper("ExecStopPost", u.svc.ExecStopPost, 0)
		u.enter(phaseStopPost)
		return
	}
	u.afterStopPost()
}

// stopPostDone follows ExecStopPost=; its failure is logged.
func (u *unit) stopPostDone(e event) {
	if !u.helperDone(e) {
		return
	}
	if e.err != nil {
		u.log.Error().Err(e.err).Msg("ExecStopPost= failed")
	}
	u.afterStopPost()
}

func (u *unit) afterStopPost() {
	switch u.postNext {
	case postStart:
		if !u.exiting {
			u.tearDownExec(false)
			u.lastExit = "" // a restart begins afresh, as an explicit start does
			u.beginStart("restart")
			return
		}
	case postAutoRestart:
		if !u.exiting {
			u.tearDownExec(false)
			u.armRestartTimer()
			u.enter(phaseAutoRestart)
			return
		}
	}
	stop := u.job != nil && u.job.kind == reqStop
	if stop && u.result == "" {
		u.result = "success" // as systemd's Result= after a clean stop
	}
	u.rest() // first: the stop is answered once RuntimeDirectory= is gone
	if stop {
		u.finishJob("")
	}
}

// stopExited stops a RemainAfterExit= unit that has no process: its
// ExecStop= lines run (without MAINPID), then ExecStopPost=.
func (u *unit) stopExited(event) {
	if len(u.svc.ExecStop) == 0 {
		u.stopped()
		return
	}
	u.runHelper("ExecStop", u.svc.ExecStop, 0)
	u.enter(phaseStopSigterm)
}

// stopListDone follows the ExecStop= of a unit with no process.
func (u *unit) stopListDone(e event) {
	if !u.helperDone(e) {
		return
	}
	if e.err != nil {
		u.log.Error().Err(e.err).Msg("ExecStop= failed")
	}
	u.stopped()
}

// runtimeMax stops a unit that has run for RuntimeMaxSec=; it fails with
// result timeout.
func (u *unit) runtimeMax(e event) {
	if e.tok != u.runtimeTok {
		return
	}
	u.runtimeTok = 0
	u.log.Warn().Dur("RuntimeMaxSec", u.svc.RuntimeMax).Msg("RuntimeMaxSec= passed: stopping")
	u.result = "timeout"
	u.stopEverything()
}

func (u *unit) cancelRuntimeMax() { u.runtimeTok = 0 }

// stoppedExit forgets a process that was told to stop; the last one
// gone, the stop is done.
func (u *unit) stoppedExit(e event) {
	if e.p.gen == u.gen {
		u.lastExit = e.p.p.Exit().String()
	}
	u.forget(e.p)
	if len(u.draining) == 0 && u.running() == 0 {
		u.stopped()
	}
}

// stopIdle answers a stop of a unit with no process (a pending
// Restart= is canceled).
func (u *unit) stopIdle(event) {
	u.cancelRestartTimer()
	u.finishJob("")
	if u.phase == phaseAutoRestart || u.exiting {
		u.rest()
	}
}

// stopProc tells p to stop: ExecStop= (with MAINPID) first if the unit
// has it, then KillSignal= to the KillMode= target; TimeoutStopSec= from
// now, SIGKILL follows (evStopTimeout).
func (u *unit) stopProc(p *proc) {
	u.terminate(p, stopSignal(u.svc), stopTimeout(u.svc), true)
}

// terminate sends sig to p's KillMode= target, after ExecStop= when
// execStop is set, and SIGKILL after timeout (evStopTimeout).
func (u *unit) terminate(p *proc, sig syscall.Signal, timeout time.Duration, execStop bool) {
	if p.stopping || p.exited {
		return
	}
	p.stopping = true
	p.startTok = 0
	u.draining = append(u.draining, p)
	svc := u.svc
	to, kill := killTargets(svc)
	u.log.Info().Int("pid", p.Pid()).Str("signal", sig.String()).Msg("stopping")
	if kill != children.None && timeout != units.Infinity {
		p.stopTok = u.nextToken()
		p.stopTimer = u.after(timeout, event{kind: evStopTimeout, p: p, tok: p.stopTok})
	}
	if len(svc.ExecStop) == 0 || !execStop {
		signalTarget(p.p, to, sig)
		return
	}
	// ExecStop= runs first, then KillSignal= goes to what is left, as
	// systemd does; both share TimeoutStopSec=.
	run := u.helperRunner("ExecStop")
	ctx, cancel := context.WithCancel(u.lifetime())
	p.stopCancel = cancel
	list := make(chan struct{})
	p.stopMu.Lock()
	p.stopList = list
	p.stopMu.Unlock()
	u.helpers.Add(1)
	go func() {
		defer u.helpers.Done()
		defer close(list)
		defer cancel()
		if err := run(ctx, svc.ExecStop, p.mainPid, timeout); err != nil {
			u.helperLog("ExecStop")("stderr", err.Error())
		}
		signalTarget(p.p, to, sig)
	}()
}

// stopTimeout sends SIGKILL to what is left of a process that has not
// stopped within TimeoutStopSec=.
func (u *unit) stopTimeout(e event) {
	p := e.p
	if p.exited || e.tok != p.stopTok {
		return
	}
	p.killed = true
	_, kill := killTargets(u.svc)
	u.log.Warn().Int("pid", p.Pid()).Dur("TimeoutStopSec", u.svc.TimeoutStopSec).Msg("not stopped in time: SIGKILL")
	if p.stopCancel != nil {
		p.stopCancel() // ExecStop= still running
	}
	signalTarget(p.p, kill, syscall.SIGKILL)
	if u.phase == phaseStopSigterm {
		u.enter(phaseStopSigkill)
	}
}

// watchdogMissed stops a process that did not send WATCHDOG=1 in time.
func (u *unit) watchdogMissed(e event) {
	p := e.p
	if e.tok != p.wdTok || p.stopping || p.exited {
		return
	}
	p.watchdog = true
	u.publish(api.UnitEvent{Kind: api.EventWatchdog, Pid: p.Pid(), Gen: p.gen})
	u.log.Error().Int("pid", p.Pid()).Dur("WatchdogSec", u.svc.WatchdogSec).Msg("watchdog timeout")
	// As systemd: WatchdogSignal= (SIGABRT), no ExecStop=, and
	// TimeoutAbortSec= (TimeoutStopSec= by default) before SIGKILL.
	sig, timeout := u.svc.WatchdogSignal, u.svc.TimeoutAbort
	if sig == 0 {
		sig = syscall.SIGABRT
	}
	if timeout == 0 {
		timeout = stopTimeout(u.svc)
	}
	u.terminate(p, sig, timeout, false)
}

// startTimedOut stops a process that was not ready within
// TimeoutStartSec=.
func (u *unit) startTimedOut(e event) {
	p := e.p
	if e.tok != p.startTok || p.ready || p.stopping || p.exited {
		return
	}
	p.timedOut = true
	if p.pidWait != nil {
		// A forking service whose first process has exited, still
		// without its PID file: nothing to stop.
		p.pidWait()
		p.pidWait = nil
		u.forkFailed(p, fmt.Errorf("PIDFile=%s: not written within TimeoutStartSec=%s", u.svc.PIDFile, u.svc.TimeoutStartSec))
		u.result = "timeout"
		return
	}
	u.log.Error().Int("pid", p.Pid()).Dur("timeout", u.svc.TimeoutStartSec).Msg("not ready within TimeoutStartSec=")
	u.stopProc(p)
}

// signalTarget sends sig to whom t names.
func signalTarget(p process, t children.Target, sig syscall.Signal) error {
	switch t {
	case children.Group:
		return p.SignalGroup(sig)
	case children.Main:
		return p.Signal(sig)
	}
	return nil
}

// stopGrace is how long a helper command gets between SIGTERM and
// SIGKILL when its list times out or is canceled.
const stopGrace = 2 * time.Second
