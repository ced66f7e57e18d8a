package supervisord

// sockctl reset-failed: a failed unit forgets its failure, its start and
// trigger limits and its back-off, as after systemctl reset-failed.

// resetFailedRequest runs the phase's reset-failed row, answered at once
// and never queued. A unit in a phase without one (it is not failed) is
// left as it is: that is no error, as in systemctl.
func (u *unit) resetFailedRequest(r *request) {
	reset := !u.exiting && u.dispatch(event{kind: evResetFailed, r: r})
	r.reply <- reply{reset: reset}
}

// resetFailed forgets the failure: Result=, the start and trigger
// limits, the restarts in a row and the back-off. A unit with sockets
// listens again (settle arms the waiter, and a connection that queued
// meanwhile starts it at once); one without is dead.
func (u *unit) resetFailed(event) {
	u.log.Info().Str("result", u.result).Msg("reset-failed")
	u.result = ""
	u.startLim, u.trigLim, u.nRestarts = rateLimit{}, nil, 0
	u.cancelBackoff()
	u.cancelRestartTimer()
	u.reopenAfterReset()
	if len(u.ls) > 0 {
		u.enter(phaseListening)
		return
	}
	u.enter(phaseDead)
}

// reopenAfterReset is the hook for the sockets of a unit that failed
// for good: what closes them at the start limit opens them again here,
// before the unit listens. Nothing is closed today, so nothing is done.
func (u *unit) reopenAfterReset() {}
