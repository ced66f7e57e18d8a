package supervisord

// Exec*= helper commands: ExecStartPre=, a oneshot's ExecStart=,
// ExecStartPost=, ExecReload= and ExecStop=. Each list runs off the
// actor in a goroutine that the unit's handle counts, bounded by its
// timeout and canceled by a stop or a shutdown.

import (
	"context"
	"fmt"
	"strconv"
	"syscall"
	"time"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/internal/sandbox"
	"github.com/sockd/sockd/units"
)

// helperRun is the Exec*= list of the unit's phase, under way.
type helperRun struct {
	what   string
	tok    token
	cancel context.CancelFunc
}

// runHelper runs cmds off the actor, bounded by TimeoutStartSec=, and
// delivers evHelpersDone. One list runs per unit at a time: a new one
// cancels the last.
func (u *unit) runHelper(what string, cmds []units.Command, mainPid int) {
	run, timeout := u.helperRunner(what), u.svc.TimeoutStartSec
	u.offActor(what, func(ctx context.Context) error { return run(ctx, cmds, mainPid, timeout) })
}

// offActor runs fn as the unit's helper list: in a goroutine the handle
// counts, canceled by cancelHelper, ending with evHelpersDone.
func (u *unit) offActor(what string, fn func(context.Context) error) {
	u.cancelHelper()
	tok := u.nextToken()
	ctx, cancel := context.WithCancel(u.lifetime())
	u.helper = &helperRun{what: what, tok: tok, cancel: cancel}
	u.helpers.Add(1)
	go func() {
		defer u.helpers.Done()
		defer cancel()
		err := fn(ctx)
		u.send(event{kind: evHelpersDone, tok: tok, err: err})
	}()
}

// helperDone reports whether e ends the list under way, and forgets it.
func (u *unit) helperDone(e event) bool {
	if u.helper == nil || e.tok != u.helper.tok {
		return false // a list that was canceled
	}
	u.helper = nil
	return true
}

// cancelHelper kills the list under way; its end will be ignored.
func (u *unit) cancelHelper() {
	if u.helper != nil {
		u.helper.cancel()
		u.helper = nil
	}
}

// helperFunc runs a list of helper commands.
type helperFunc func(ctx context.Context, cmds []units.Command, mainPid int, timeout time.Duration) error

// helperRunner binds a list runner to the unit's current definition, so
// that it can run in its own goroutine. An environment that cannot be
// built (an unreadable EnvironmentFile=) fails the list.
func (u *unit) helperRunner(what string) helperFunc {
	svc, start, logLine := u.svc, u.starter(), u.helperLog(what)
	env, envErr := environment(svc)
	env = addEnvDefaults(env, u.currentExecEnv()...)
	box, boxErr := sandboxSetup(svc, u.roots, u.privTmp, u.staging)
	return func(ctx context.Context, cmds []units.Command, mainPid int, timeout time.Duration) error {
		if envErr != nil {
			return fmt.Errorf("%s: %w", what, envErr)
		}
		if boxErr != nil {
			return fmt.Errorf("%s: %w", what, boxErr)
		}
		return runHelpers(ctx, start, svc, env, box, what, cmds, mainPid, timeout, logLine)
	}
}

// runHelpers runs helper commands one after another, as systemd does: a
// command without the "-" prefix that fails ends the list with an error.
// Each gets env (plus MAINPID when mainPid > 0), and the whole list at
// most timeout (0 or Infinity: no limit); a command still running then,
// or when ctx ends, is stopped (SIGTERM, SIGKILL after stopGrace).
// Their output goes to logLine as "stdout"/"stderr" lines. Each runs as
// the service's user in its sandbox box (nil: none), but a command with
// the "+" prefix, which runs as root outside it.
func runHelpers(ctx context.Context, start startFunc, svc *units.Service, env []string, box *sandbox.Setup, what string, cmds []units.Command,
	mainPid int, timeout time.Duration, logLine func(stream, line string)) error {
	if len(cmds) == 0 {
		return nil
	}
	if mainPid > 0 {
		env = setEnv(env, "MAINPID="+strconv.Itoa(mainPid))
	}
	dir := workingDir(svc)
	var deadline <-chan time.Time
	if timeout > 0 && timeout != units.Infinity {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	for _, c := range cmds {
		spec := children.Spec{Path: c.Path, Argv: c.Expand(env), Env: env, Dir: dir, Umask: int(svc.UMask)}
		// The service's StandardOutput=/StandardError=, as systemd gives
		// every command of the unit; socket and fd: outputs need the
		// unit's sockets, which helper commands do not get: their lines
		// go to the log then.
		closers, err := outputs(svc, &spec, logLine, nil)
		if err != nil {
			closeAll(closers)
			closers = nil
			spec.Stdout = children.Output{Lines: func(l string) { logLine("stdout", l) }}
			spec.Stderr = children.Output{Lines: func(l string) { logLine("stderr", l) }}
		}
		if err := setIdentity(&spec, svc, c, box); err != nil {
			closeAll(closers)
			return fmt.Errorf("%s: %w", what, err)
		}
		p, err := start(spec)
		closeAll(closers) // the child has its own
		if err != nil {
			if c.IgnoreFailure {
				continue
			}
			return fmt.Errorf("%s: %w", what, err)
		}
		select {
		case <-p.Done():
		case <-deadline:
			stopHelper(p)
			return fmt.Errorf("%s: %s: timed out after %s", what, c.Path, timeout)
		case <-ctx.Done():
			stopHelper(p)
			return fmt.Errorf("%s: %s: canceled", what, c.Path)
		}
		if st := p.Exit(); !st.Success() && !c.IgnoreFailure {
			return &helperError{what: what, path: c.Path, status: st}
		}
	}
	return nil
}

// stopHelper stops a helper command's process group and waits for it.
func stopHelper(p process) {
	p.SignalGroup(syscall.SIGTERM)
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-p.Done():
		return
	case <-t.C:
		p.SignalGroup(syscall.SIGKILL)
	}
	<-p.Done()
}

// helperLog returns the line sink for a unit's helper commands: the
// unit's log ring and sockd's log, tagged with the command kind.
func (u *unit) helperLog(what string) func(stream, line string) {
	h, log := u.handle, u.log
	return func(stream, line string) {
		l := api.LogLine{Time: time.Now(), Stream: stream, Line: line}
		h.logs.add(l)
		h.output(&log, OutputLine{Unit: h.name, Command: what, LogLine: l})
	}
}

// helperError is a helper command that exited unsuccessfully.
type helperError struct {
	what, path string
	status     children.ExitStatus
}

func (e *helperError) Error() string { return fmt.Sprintf("%s: %s: %s", e.what, e.path, e.status) }
