package supervisord

// sockctl reset-failed: a failed unit forgets its failure, its start and
// trigger limits and its back-off, as after systemctl reset-failed.

import (
	"fmt"

	"github.com/sockd/sockd/api"
)

// resetFailedRequest runs the phase's reset-failed row, which answers;
// answered at once and never queued. A unit in a phase without one (it
// is not failed) is left as it is: that is no error, as in systemctl.
func (u *unit) resetFailedRequest(r *request) {
	if u.exiting || !u.dispatch(event{kind: evResetFailed, r: r}) {
		r.reply <- reply{}
	}
}

// resetFailed forgets the failure: Result=, the start and trigger
// limits, the restarts in a row and the back-off, and binds the sockets
// the start limit closed. A unit with sockets listens again (settle
// arms the waiter, and a connection that queued meanwhile starts it at
// once); one without is dead. Sockets that cannot be bound again leave
// it failed (result resources), and the request fails.
func (u *unit) resetFailed(e event) {
	u.log.Info().Str("result", u.result).Msg("reset-failed")
	if err := u.reopenSockets(); err != nil {
		err = fmt.Errorf("reset-failed %s: bind the sockets again: %w", u.name, err)
		u.log.Error().Err(err).Msg("reset-failed")
		u.result, u.lastExit = "resources", err.Error()
		e.r.reply <- reply{err: fmt.Errorf("%w: %w", err, api.ErrFailed)}
		return
	}
	u.result = ""
	u.startLim, u.trigLim, u.nRestarts = rateLimit{}, nil, 0
	u.cancelBackoff()
	u.cancelRestartTimer()
	e.r.reply <- reply{reset: true}
	if len(u.ls) > 0 {
		u.enter(phaseListening)
		return
	}
	u.enter(phaseDead)
}
