package supervisord

// reload-app: ExecReload= (or SIGHUP) for every running process.

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/sockd/sockd/api"
)

// reloadApp runs ExecReload= with each process's MAINPID, or sends it
// ReloadSignal= (SIGHUP) when the unit has none, one process after another, bounded by
// TimeoutStartSec= as systemd bounds a reload.
func (u *unit) reloadApp(event) {
	var procs []process
	var pids []int
	for _, p := range u.slots {
		if p != nil {
			procs, pids = append(procs, p.p), append(pids, p.mainPid)
		}
	}
	cmds, sig := u.svc.ExecReload, u.svc.ReloadSignal
	if sig == 0 {
		sig = syscall.SIGHUP
	}
	run, timeout := u.helperRunner("ExecReload"), u.svc.TimeoutStartSec
	u.offActor("ExecReload", func(ctx context.Context) error {
		var errs []error
		for i, pid := range pids {
			if len(cmds) == 0 {
				if err := procs[i].Signal(sig); err != nil {
					errs = append(errs, err)
				}
				continue
			}
			if err := run(ctx, cmds, pid, timeout); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})
	u.enter(phaseReloading)
}

// reloadDone ends a reload-app request.
func (u *unit) reloadDone(e event) {
	if !u.helperDone(e) {
		return
	}
	u.enter(phaseRunning)
	if e.err != nil {
		u.finishJobErr(fmt.Errorf("reload-app %s: %w: %w", u.name, e.err, api.ErrFailed))
		return
	}
	u.finishJob("")
}

// reloadingReady: READY=1 after RELOADING=1 ends the app's own reload.
func (u *unit) reloadingReady(e event) {
	u.markReady(e)
	if u.helper == nil {
		u.enter(phaseRunning)
	}
}

// reloadIdle refuses a reload-app of a unit with no process.
func (u *unit) reloadIdle(event) {
	u.finishJobErr(fmt.Errorf("reload-app %s: not running: %w", u.name, api.ErrConflict))
}
