package supervisord

// Holding a unit's sockets outside sockd (api.Backend's Hold, sockctl
// exec): a program sockd did not start serves the unit's listening
// sockets for a while. The unit is then in phaseHeld: its waiter is not
// armed, so a connection queues for that program and starts nothing;
// start, restart and stop are refused. The hold ends with its release
// (the holder's API connection ended), and the unit goes back to the
// phase it was held from.

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/api"
)

// holdArgs are a hold request's: the holder's pid; for a release, the
// token of the hold it ends.
type holdArgs struct {
	pid int
	tok token
}

// holding is a hold under way.
type holding struct {
	pid    int   // the holder, as SO_PEERCRED named it; 0 when unknown
	tok    token // a release with another token is stale
	before phase // where the unit goes back to
	ended  chan struct{}
	once   sync.Once
}

// end closes ended: the holder is told to let go.
func (h *holding) end() { h.once.Do(func() { close(h.ended) }) }

// Hold lends the unit's listening sockets to holder, a program outside
// sockd, as api.Backend describes. The files are duplicates of the
// unit's sockets, in the unit's blocking mode, close-on-exec.
func (d *Daemon) Hold(ctx context.Context, name string, holder api.Peer) (*api.Hold, error) {
	if err := d.reexecuting(); err != nil {
		return nil, err
	}
	h, err := d.lookup(name)
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(h.name, "@.service") {
		return nil, fmt.Errorf("hold %s: an Accept=yes unit: sockd accepts its connections itself: %w", h.name, api.ErrConflict)
	}
	r := &request{kind: reqHold, hold: holdArgs{pid: holder.PID}, reply: make(chan reply, 1)}
	if err := h.ask(ctx, r); err != nil {
		return nil, err
	}
	// The actor answers at once. Once it has taken the request its
	// answer must be read, whatever ctx says: a hold nobody returns
	// would never be released.
	rep := <-r.reply
	return rep.hold, rep.err
}

// holdRequest takes a hold or a release; both are answered at once,
// never queued. A hold runs the phase's row, and a phase without one
// (a process runs) refuses it; a release ends the hold it names.
func (u *unit) holdRequest(r *request) {
	if r.kind == reqRelease {
		u.dispatch(event{kind: evRelease, tok: r.hold.tok})
		r.reply <- reply{}
		return
	}
	var err error
	switch {
	case u.exiting:
		err = fmt.Errorf("hold %s: sockd is shutting down: %w", u.name, api.ErrConflict)
	case u.job != nil:
		err = fmt.Errorf("hold %s: a %s is under way: %w", u.name, u.job.kind, api.ErrConflict)
	case len(u.queue) > 0:
		err = fmt.Errorf("hold %s: a %s is waiting: %w", u.name, u.queue[0].kind, api.ErrConflict)
	}
	if err == nil && !u.dispatch(event{kind: evHold, r: r}) {
		st := u.status().Service
		what := st.State + "/" + st.SubState
		if len(st.Pids) > 0 {
			what += fmt.Sprintf(", pids %s", strings.Trim(fmt.Sprint(st.Pids), "[]"))
		}
		err = fmt.Errorf("hold %s: the service runs (%s): stop it first: sockctl stop %s: %w",
			u.name, what, strings.TrimSuffix(u.name, ".service"), api.ErrConflict)
	}
	if err != nil {
		r.reply <- reply{err: err}
	}
}

// holdSockets lends the sockets: a duplicate of each, in the unit's
// mode, as a child would get them.
func (u *unit) holdSockets(e event) {
	r := e.r
	fail := func(err error) { r.reply <- reply{err: err} }
	switch {
	case len(u.ls) == 0:
		fail(fmt.Errorf("hold %s: the unit has no sockets: %w", u.name, api.ErrConflict))
		return
	case !u.noProcess() || u.helper != nil:
		fail(fmt.Errorf("hold %s: a process of the unit still runs: %w", u.name, api.ErrConflict))
		return
	}
	files := make([]*os.File, 0, len(u.ls))
	names := make([]string, 0, len(u.ls))
	for _, l := range u.ls {
		// No child holds the socket: put back the unit's mode, which
		// the last child may have changed, as a start does.
		err := l.ResetMode()
		var f *os.File
		if err == nil {
			f, err = dupFile(l.File())
		}
		if err != nil {
			closeAll(files)
			fail(fmt.Errorf("hold %s: %s %s: %w", u.name, l.Spec().Network, l.Addr(), err))
			return
		}
		files, names = append(files, f), append(names, l.Name())
	}
	ho := &holding{pid: r.hold.pid, tok: u.nextToken(), before: u.phase, ended: make(chan struct{})}
	u.hold = ho
	u.enter(phaseHeld)
	u.log.Info().Int("holder", ho.pid).Strs("fd_names", names).Msg("sockets held outside sockd")
	h, tok := u.handle, ho.tok
	release := sync.OnceFunc(func() {
		// Answered at once; an actor that has ended answers ErrNotFound.
		h.call(context.Background(), &request{kind: reqRelease, hold: holdArgs{tok: tok}})
	})
	r.reply <- reply{hold: &api.Hold{Unit: u.name, Files: files, Names: names, Ended: ho.ended, Release: release}}
}

// dupFile returns a close-on-exec duplicate of f, leaving f and the
// flags of its open file description alone.
func dupFile(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd, derr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", derr)
	}
	return os.NewFile(uintptr(nfd), f.Name()), nil
}

// holdAgain refuses a second hold.
func (u *unit) holdAgain(e event) {
	e.r.reply <- reply{err: fmt.Errorf("hold %s: held already, by pid %d: %w", u.name, u.hold.pid, api.ErrConflict)}
}

// heldBy says who holds the sockets, for refusals.
func (u *unit) heldBy() string {
	return fmt.Sprintf("its sockets are held outside sockd by pid %d (sockctl exec)", u.hold.pid)
}

// refuseHeld refuses a start or a restart: the holder serves.
func (u *unit) refuseHeld(e event) {
	u.finishJobErr(fmt.Errorf("%s %s: %s: end that program first: %w", e.j.kind, u.name, u.heldBy(), api.ErrConflict))
}

// stopHeld refuses a stop, but for the removal of the unit or sockd's
// shutdown: then the holder is told to let go, and the unit stays held
// until it does (release), as a stop waits for a process to exit.
func (u *unit) stopHeld(event) {
	if !u.exiting {
		u.finishJobErr(fmt.Errorf("stop %s: no process of sockd's runs; %s: end that program to release them: %w",
			u.name, u.heldBy(), api.ErrConflict))
		return
	}
	u.log.Info().Int("holder", u.hold.pid).Msg("asking the holder to let go of the sockets")
	u.hold.end()
	u.finishJob("")
}

// release ends the hold: the unit goes back to where it was held from
// (dead if sockd stops it), and a connection that queued meanwhile
// starts the service as usual once the waiter is armed again.
func (u *unit) release(e event) {
	if u.hold == nil || e.tok != u.hold.tok {
		return // a hold that ended already
	}
	ho := u.hold
	u.hold = nil
	ho.end()
	u.log.Info().Int("holder", ho.pid).Msg("sockets released")
	next := ho.before
	if u.exiting {
		next = phaseDead
	}
	u.enter(next)
}
