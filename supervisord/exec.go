package supervisord

import (
	"context"
	"fmt"
	"strconv"
	"syscall"
	"time"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/units"
)

// runHelpers runs Exec*= helper commands (ExecStartPre=, ExecStartPost=,
// ExecStop=) one after another, as systemd does: a command without the
// "-" prefix that fails ends the list with an error. Each gets the
// unit's environment (plus MAINPID when mainPid > 0), and the whole list
// at most timeout (0: no limit); a command still running then is killed.
// Their output goes to the unit's log as "stdout"/"stderr" lines.
// It reads nothing of the unit's actor state: svc and env are the
// caller's copies, so it can run in its own goroutine.
func runHelpers(ctx context.Context, svc *units.Service, env []string, what string, cmds []units.Command, mainPid int, timeout time.Duration, logLine func(stream, line string)) error {
	if len(cmds) == 0 {
		return nil
	}
	if mainPid > 0 {
		env = append(env, "MAINPID="+strconv.Itoa(mainPid))
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
		spec.Stdout.Lines = func(l string) { logLine("stdout", l) }
		spec.Stderr.Lines = func(l string) { logLine("stderr", l) }
		if svc.User != "" || svc.Group != "" {
			cred, err := credential(svc)
			if err != nil {
				return err
			}
			spec.Credential = cred
		}
		p, err := children.Start(spec)
		if err != nil {
			if c.IgnoreFailure {
				continue
			}
			return fmt.Errorf("%s: %w", what, err)
		}
		select {
		case <-p.Done():
		case <-deadline:
			p.Stop(syscall.SIGTERM, 2*time.Second, true, true)
			return fmt.Errorf("%s: %s: timed out after %s", what, c.Path, timeout)
		case <-ctx.Done():
			p.Stop(syscall.SIGTERM, 2*time.Second, true, true)
			return fmt.Errorf("%s: %s: canceled", what, c.Path)
		}
		if st := p.Exit(); !st.Success() && !c.IgnoreFailure {
			return fmt.Errorf("%s: %s: %s", what, c.Path, st)
		}
	}
	return nil
}

// helperLog returns the line sink for a unit's helper commands: the
// unit's log ring and sockd's log, tagged with the command kind.
func (u *unit) helperLog(what string) func(stream, line string) {
	logs, log := u.logs, u.log
	return func(stream, line string) {
		logs.add(api.LogLine{Time: time.Now(), Stream: stream, Line: line})
		log.Info().Str("command", what).Str("stream", stream).Msg(line)
	}
}

// startHelpers runs cmds off the actor and delivers the outcome as a
// helpersDone event carrying token and o.
func (u *unit) startHelpers(what string, cmds []units.Command, mainPid int, timeout time.Duration, token int, o *op) {
	svc := u.svc
	env, err := u.environment()
	logLine := u.helperLog(what)
	ctx := u.helperCtx()
	u.helpers.Add(1)
	go func() {
		defer u.helpers.Done()
		if err == nil {
			err = runHelpers(ctx, svc, env, what, cmds, mainPid, timeout, logLine)
		}
		select {
		case u.evs <- helpersDone{what: what, token: token, o: o, err: err}:
		case <-u.quit:
		}
	}()
}

// helpersDone reports the end of an ExecStartPre=/ExecStartPost= list.
type helpersDone struct {
	what  string
	token int
	o     *op
	err   error
}

// helperCtx is the context of the unit's ExecStartPre=/ExecStartPost=
// (and oneshot ExecStart=) commands; cancelHelpers kills those under way
// (a stop, a shutdown) and later ones get a new context.
func (u *unit) helperCtx() context.Context {
	if u.hctx == nil {
		u.hctx, u.hcancel = context.WithCancel(context.Background())
	}
	return u.hctx
}

func (u *unit) cancelHelpers() {
	if u.hcancel != nil {
		u.hcancel()
		u.hctx, u.hcancel = nil, nil
	}
}
