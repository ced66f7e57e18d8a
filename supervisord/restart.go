package supervisord

// The overlapping restart of a running unit: instance by instance, the
// new process starts on the same sockets, and only once it is ready
// (and its ExecStartPost= has passed) does the old one drain. A new
// process that fails rolls the restart back: the old one keeps serving.
//
// Each instance slot has its own phase during the rolling restart: done
// (slot < job.slot: the new generation serves), starting (slot ==
// job.slot: its new process is not ready yet), or waiting (slot >
// job.slot: the old generation serves). The unit is restarting while any
// slot is not done or an old process is still draining, and running
// after.

import (
	"fmt"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/units"
)

// slotPhase names an instance slot's phase in a rolling restart.
func (j *job) slotPhase(i int) string {
	switch {
	case i < j.slot:
		return "done"
	case i == j.slot:
		return "starting"
	}
	return "waiting"
}

// restartRunning begins a restart of a running unit.
func (u *unit) restartRunning(e event) {
	j := e.j
	u.restarts++
	u.startLim, u.trigLim = rateLimit{}, nil
	u.resizeSlots()
	for _, p := range u.slots {
		if p != nil {
			j.oldPids = append(j.oldPids, p.Pid())
		}
	}
	if u.svc.Type == units.TypeForking && !j.opts.StopFirst {
		// A forking daemon binds its own ports: it cannot overlap with
		// itself.
		j.opts.StopFirst = true
		j.emit(api.PhaseNote, 0, "Type=forking: stop, then start (a forking daemon cannot overlap with itself)")
	}
	if j.opts.StopFirst {
		// systemd's order: the old generation goes, then the new starts.
		u.cancelRestartTimer()
		for i, p := range u.slots {
			if p != nil {
				u.stopProc(p)
				j.old = append(j.old, p)
				j.emit(api.PhaseDraining, p.Pid(), "")
				u.slots[i] = nil
			}
		}
		u.enter(phaseStopSigterm)
		return
	}
	j.gen = u.gen + 1
	env, release, err := setUpExec(u.svc, u.roots, u.lockDir)
	if err == nil {
		if err = u.ensurePrivateTmp(u.svc); err != nil {
			release()
		}
	}
	if err != nil {
		j.failure = err.Error()
		u.finishJob("")
		return // still running, as it was
	}
	j.execSet, j.execEnv, j.execRelease = true, env, release
	u.enter(phaseRestarting)
	u.restartNext()
}

// resizeSlots applies a changed X-Instances= at a restart: surplus
// processes stop, missing ones are started by the rolling restart.
func (u *unit) resizeSlots() {
	n := instances(u.svc)
	for len(u.slots) > n {
		if p := u.slots[len(u.slots)-1]; p != nil {
			u.stopProc(p)
		}
		u.slots = u.slots[:len(u.slots)-1]
	}
	for len(u.slots) < n {
		u.slots = append(u.slots, nil)
	}
}

// restartNext replaces the instance job.slot: ExecStartPre= once per
// restart, then the new process; when every slot is done and the old
// processes have drained, the restart is done.
func (u *unit) restartNext() {
	j := u.job
	if j.slot >= len(u.slots) {
		if len(j.old) == 0 {
			u.enterRunningAfterRestart()
		}
		return
	}
	if len(u.svc.ExecStartPre) > 0 && !j.preDone {
		j.emit(api.PhaseStartPre, 0, "running ExecStartPre=")
		u.runHelper("ExecStartPre", u.svc.ExecStartPre, 0)
		return
	}
	pr, err := u.spawn(j.slot, j.gen)
	if err != nil {
		u.rollBack(err.Error(), nil)
		return
	}
	j.newProc = pr
	j.newPids = append(j.newPids, pr.Pid())
	u.log.Info().Int("pid", pr.Pid()).Int("gen", j.gen).Int("instance", j.slot).Msg("restart: spawned")
	j.emit(api.PhaseSpawned, pr.Pid(), fmt.Sprintf("instance %d", j.slot))
	u.armReadiness(pr, true)
	if pr.ready {
		j.emit(api.PhaseReady, pr.Pid(), "")
		u.newReady(pr)
	}
}

// enterRunningAfterRestart ends a successful restart: what the old
// definition's setUpExec held is freed (the new one's takes its place).
func (u *unit) enterRunningAfterRestart() {
	u.result = "" // a successful restart is a fresh start
	if j := u.job; j.execSet {
		if u.execRelease != nil {
			u.execRelease()
		}
		u.execEnv, u.execRelease = j.execEnv, j.execRelease
		j.execSet, j.execRelease = false, nil
	}
	if u.running() == 0 {
		u.finishJob("no process running")
		u.rest()
		return
	}
	u.enter(phaseRunning)
	u.finishJob("")
}

// restartReady handles READY=1 (or X-ReadyAfterSec=) of a process.
func (u *unit) restartReady(e event) {
	j := u.job
	if !u.markReady(e) || e.p != j.newProc {
		return
	}
	u.newReady(e.p)
}

// newReady runs ExecStartPost= for the new process, then promotes it.
func (u *unit) newReady(p *proc) {
	if len(u.svc.ExecStartPost) > 0 {
		u.runHelper("ExecStartPost", u.svc.ExecStartPost, p.mainPid)
		return
	}
	u.promote(p)
}

// promote puts the ready new process in its slot; the old one drains.
func (u *unit) promote(p *proc) {
	j := u.job
	j.newProc = nil
	if old := u.slots[p.slot]; old != nil {
		u.stopProc(old)
		j.old = append(j.old, old)
		j.emit(api.PhaseDraining, old.Pid(), "")
	}
	u.slots[p.slot] = p
	u.gen = j.gen
	j.slot++
	u.restartNext()
}

// restartHelpersDone goes on after ExecStartPre= (spawn) or the new
// process's ExecStartPost= (promote), or rolls back.
func (u *unit) restartHelpersDone(e event) {
	h := u.helper
	if !u.helperDone(e) {
		return
	}
	j := u.job
	if e.err != nil {
		u.rollBack(e.err.Error(), nil)
		return
	}
	switch h.what {
	case "ExecStartPre":
		j.preDone = true
		u.restartNext()
	case "ExecStartPost":
		if j.newProc != nil {
			u.promote(j.newProc)
		}
	}
}

// rollBack ends a restart that failed: its new process (if any) stops,
// the old generation keeps serving.
func (u *unit) rollBack(why string, tail []string) {
	j := u.job
	u.cancelHelper()
	if j.newProc != nil {
		u.stopProc(j.newProc)
		j.newProc = nil
	}
	j.tail = tail
	if j.execSet {
		j.execRelease()
		j.execSet, j.execRelease = false, nil
	}
	u.finishJob(why)
	if u.running() > 0 {
		u.enter(phaseRunning)
		return
	}
	if u.result == "" {
		u.result = "exit-code"
	}
	u.rest()
}

// restartExit handles an exit during a restart.
func (u *unit) restartExit(e event) {
	p := e.p
	j := u.job
	slotted := u.forget(p)
	if p == j.newProc {
		j.newProc = nil
		u.rollBack(notReady(u.svc, p, p.p.Exit()), p.Tail())
		return
	}
	if slotted {
		st := p.p.Exit()
		u.judgeExit(p, st)
		if u.shouldRestart(p, st) && p.slot < j.slot {
			u.armRestartTimer() // a slot the restart has passed
		}
	}
	if j.slot >= len(u.slots) && len(j.old) == 0 {
		u.enterRunningAfterRestart()
	}
}

// restartRefill starts processes in the slots the restart has passed
// and that emptied since.
func (u *unit) restartRefill(e event) {
	if e.tok != u.rstTok {
		return
	}
	u.rstTok = 0
	j := u.job
	for i := 0; i < j.slot && i < len(u.slots); i++ {
		if u.slots[i] != nil {
			continue
		}
		pr, err := u.spawn(i, j.gen)
		if err != nil {
			u.log.Error().Err(err).Msg("spawn failed")
			continue
		}
		u.slots[i] = pr
		u.log.Info().Int("pid", pr.Pid()).Int("instance", i).Str("why", "Restart="+string(u.svc.Restart)).Msg("spawned")
		u.armReadiness(pr, false)
	}
}
