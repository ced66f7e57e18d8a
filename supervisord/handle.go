package supervisord

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sockd/sockd/activation"
	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/units"
)

// handle is how the Daemon knows a unit's actor, whichever kind it is (a
// unit, or an Accept=yes acceptor): its request channel, its end, and
// what the Daemon itself owns of it (its sockets, its log ring, the
// definition the last reload saw).
type handle struct {
	name string // "app.service", "echo@.service"
	reqs chan *request
	quit chan struct{} // closed when the actor returns
	logs *logRing
	// out is Config.Output: where output lines go besides the ring; nil:
	// sockd's log (see output).
	out func(OutputLine)
	// mu guards socks, ls and lsNames for readers outside the actor (a
	// reload); the actor, which replaces a dead socket, writes them under
	// it and reads them without.
	mu    sync.Mutex
	socks []*units.Socket
	ls    []*activation.Listener
	// lsNames name ls in the fd keepers ("listen/SOCKET/N").
	lsNames []string
	// svcSnapshot is the service as the last reload saw it; reloads
	// (serialized by Daemon.reloadMu) alone read and write it.
	svcSnapshot *units.Service
	// helpers counts the Exec*= goroutines; removeUnit waits for them.
	helpers sync.WaitGroup
	// park wakes a parked actor (park.go); an acceptor's does nothing.
	park parking
}

func newHandle(name string, svc *units.Service, socks []*units.Socket) *handle {
	return &handle{name: name, reqs: make(chan *request), quit: make(chan struct{}),
		logs: newLogRing(logBudget(svc)), socks: socks, svcSnapshot: svc}
}

type reqKind int

const (
	reqStatus reqKind = iota
	reqStart
	reqStop
	reqRestart
	reqReloadApp
	reqShutdown
	reqUpdate
	reqHold        // hold.go
	reqRelease     // hold.go
	reqFreeze      // reexec.go
	reqSockets     // sockets.go: a reload changed the unit's socket units
	reqResetFailed // resetfailed.go
)

func (k reqKind) String() string {
	return [...]string{"status", "start", "stop", "restart", "reload-app", "shutdown", "update", "hold", "release", "freeze", "sockets", "reset-failed"}[k]
}

// request is a call into an actor. reply is 1-buffered; events, for a
// restart with wait, is buffered and written without blocking.
type request struct {
	kind   reqKind
	acked  bool // answered when queued (restart without wait); actor-only
	full   bool // reqStatus: with what costs more to read (the cgroup's pids)
	opts   api.RestartOptions
	svc    *units.Service  // reqUpdate
	socks  []*units.Socket // reqSockets
	hold   holdArgs        // reqHold, reqRelease
	thaw   chan struct{}   // reqFreeze: closed to let the actor go on
	reply  chan reply
	events chan api.Event
}

type reply struct {
	status api.UnitStatus
	result api.RestartResult
	hold   *api.Hold // reqHold
	reset  bool      // reqResetFailed: the unit was failed, and is no more
	err    error
}

// ask hands r to the actor, waking it if it is parked.
func (h *handle) ask(ctx context.Context, r *request) error {
	h.park.enter()
	select {
	case h.reqs <- r:
		return nil
	case <-h.quit:
		h.park.leave()
		return fmt.Errorf("unit %s: %w", h.name, api.ErrNotFound)
	case <-ctx.Done():
		h.park.leave()
		return ctx.Err()
	}
}

// call sends r to the actor and waits for the reply. A parked actor's
// status is read without waking it.
func (h *handle) call(ctx context.Context, r *request) (reply, error) {
	if r.kind == reqStatus {
		if st, ok := h.park.parkedStatus(r.full); ok {
			return reply{status: st}, nil
		}
	}
	if r.reply == nil {
		r.reply = make(chan reply, 1)
	}
	if err := h.ask(ctx, r); err != nil {
		return reply{}, err
	}
	select {
	case rep := <-r.reply:
		return rep, rep.err
	case <-ctx.Done():
		return reply{}, ctx.Err()
	}
}

// restart sends a restart request and relays its progress until the
// result comes.
func (h *handle) restart(ctx context.Context, opts api.RestartOptions, progress func(api.Event)) (api.RestartResult, error) {
	r := &request{kind: reqRestart, opts: opts, reply: make(chan reply, 1)}
	if opts.Wait {
		r.events = make(chan api.Event, 64)
	}
	if err := h.ask(ctx, r); err != nil {
		return api.RestartResult{}, err
	}
	relay := func(ev api.Event) {
		if progress != nil {
			progress(ev)
		}
	}
	for {
		select {
		case ev := <-r.events:
			relay(ev)
		case rep := <-r.reply:
			for {
				select {
				case ev := <-r.events:
					relay(ev)
					continue
				default:
				}
				return rep.result, rep.err
			}
		case <-ctx.Done():
			return api.RestartResult{}, ctx.Err()
		}
	}
}

// token tells a timer, a helper run or a waiter's trigger that is still
// wanted from a stale one: whoever arms one keeps its token, and an event
// whose token is not the kept one is ignored. 0 is no token.
type token uint64

// job is a request under way (or queued): start, stop, restart or
// reload-app. Jobs run one at a time per unit.
type job struct {
	unit    *unit // whose job: its restart progress is published too
	kind    reqKind
	opts    api.RestartOptions
	waiters []*request
	begun   time.Time
	failure string
	err     error // the error to answer with, if not the generic one
	tail    []string

	// An overlapping restart.
	gen     int
	slot    int     // the instance being replaced
	newProc *proc   // the new process, not yet in its slot
	preDone bool    // ExecStartPre= of the new generation ran
	old     []*proc // old processes this restart stopped, until they exit
	// The new definition's setUpExec: its env goes to the new
	// generation; what it holds replaces the unit's once the restart
	// is done, or is freed on rollback.
	execSet     bool
	execEnv     []string
	execRelease func()
	oldPids     []int
	newPids     []int
}

func (j *job) emit(phase string, pid int, msg string) {
	ev := api.Event{Time: time.Now(), Phase: phase, Pid: pid, Message: msg}
	if j.unit != nil && j.kind == reqRestart {
		j.unit.publish(api.UnitEvent{Time: ev.Time, Kind: api.EventRestart, Phase: phase, Pid: pid, Message: msg})
	}
	for _, w := range j.waiters {
		if w.events == nil {
			continue
		}
		select {
		case w.events <- ev:
		default: // a slow reader loses progress, never the result
		}
	}
}

// listeners returns the unit's sockets and their names in the keepers,
// for a goroutine other than the actor.
func (h *handle) listeners() ([]*activation.Listener, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ls, h.lsNames
}

// socketDefs returns the unit's socket units as the last reload saw them.
func (h *handle) socketDefs() []*units.Socket {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.socks
}
