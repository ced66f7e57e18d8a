package supervisord

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/sockd/sockd/activation"
	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/units"
)

// unit is one service with the sockets that activate it. One goroutine,
// run, owns every field below the line; the rest talk to it through the
// handle's reqs and through evs.
type unit struct {
	*handle
	log     zerolog.Logger
	evs     chan event
	lsSock  []*units.Socket // the socket unit each of ls belongs to
	sockSt  []api.SocketStatus
	roots   execRoots // of RuntimeDirectory= and friends
	lockDir string    // of DynamicUser= allocations
	start   startFunc // children.Start, or a test's fake
	adopt   adoptFunc // children.Adopt, or a test's fake
	cg      *unitCG   // the unit's cgroup while it has processes (cgroup.go); nil: none open
	cgd     *Daemon   // the daemon whose cgroups the unit's are; nil: process groups
	pids    *pidTable
	waiter  *activation.Waiter // the daemon's, for lazy starts
	observe func(string, api.ServiceStatus)
	events  *eventBus    // the daemon's; nil in tests without
	idleMon *idleMonitor // the daemon's; nil in tests without (no X-IdleTimeoutSec=)
	// life ends with the actor: every Exec*= command still running then
	// (ExecStop= of a process that exited meanwhile) is killed. Made at
	// its first use (lifetime), by the actor.
	life    context.Context
	endLife context.CancelFunc
	// notifyPath is the daemon's NOTIFY_SOCKET, "" when the unit does not
	// use it; mail holds the messages routed to this unit.
	notifyPath string
	mail       *mailbox
	// armTok is waitTok for the Waiter's goroutine, which tags the
	// trigger it sends with it.
	armTok atomic.Uint64

	// ---- owned by run ----
	svc         *units.Service
	phase       phase
	since       time.Time
	row         *transition // the row being run, for enter's check
	result      string
	lastExit    string
	gen         int
	slots       []*proc // the serving generation, one per instance; nil: empty
	draining    []*proc // told to stop, not yet exited
	job         *job    // the request under way
	queue       []*job  // requests waiting for it
	startLim    rateLimit
	trigLim     map[*units.Socket]*rateLimit
	restarts    int
	lastRst     *api.RestartResult
	watch       *activation.Watch      // the unit's sockets in the daemon's Waiter (sockets.go)
	armed       bool                   // the watch is armed: waiting for a connection
	waitTok     token                  // of the arming: a trigger with another is stale
	socksClosed bool                   // closed past the start limit (or lost): connections are refused
	retired     []*activation.Listener // sockets of addresses a reload removed, open while old processes run
	retiredGen  int                    // the generation up to which processes may hold them
	rstTok      token                  // the RestartSec= timer, 0 when none
	backoffTok  token                  // the back-off of failed-listening, 0 when none: the waiter is not armed meanwhile
	nextStart   time.Time              // when the RestartSec= timer or the back-off ends
	nRestarts   int                    // starts in a row after a failure (systemd's n_restarts): RestartSteps='s step
	runtimeTok  token                  // the RuntimeMaxSec= timer, 0 when none
	idle        *idleWatch             // X-IdleTimeoutSec= while running (idle.go), nil otherwise
	why         string                 // why the start under way began, for the log
	postNext    afterPost              // what follows ExecStopPost= (stop-post)
	execEnv     []string               // from setUpExec: $*_DIRECTORY, a dynamic user's $USER
	execRelease func()                 // frees what setUpExec holds; nil when nothing is set up
	privTmp     *privateTmp            // PrivateTmp='s directories while a process may use them
	keep        *keepers               // the fd keepers (keep.go); nil in tests without
	state       *stateWriter
	stateKey    string     // of the processes last written to state
	recovered   bool       // recoverProcs took processes back: start as running
	freezing    []*request // reqFreeze, waiting for the job under way
	staging     string     // the exec helper's staging directory (sandboxSetup)
	helper      *helperRun // the Exec*= list of the phase, nil when none
	hold        *holding   // the program outside sockd holding the sockets (phaseHeld)
	tokens      token
	exiting     bool
	observed    string // the last observed state, sub-state, pids and result
}

// event is something that happened to the unit. Each kind carries what
// its transition needs.
type event struct {
	kind evKind
	p    *proc                // evReady, evExit, evStartTimeout, evStopTimeout, evWatchdog
	tok  token                // timers, evTrigger, evHelpersDone
	l    *activation.Listener // evTrigger
	err  error                // evTrigger, evHelpersDone
	j    *job                 // evStart, evStop, evRestart, evReloadApp
	r    *request             // evHold
}

func newUnit(h *handle, svc *units.Service, log zerolog.Logger) *unit {
	u := &unit{
		handle: h,
		svc:    svc,
		log:    log.Hook(unitField(h.name)),
		evs:    make(chan event, 2), // small: every sender but the idle check may block
		roots:  defaultExecRoots(),
		start:  startChild,
		adopt:  adoptChild,
		pids:   newPidTable(), // the Daemon's replaces it
		phase:  phaseDead,
		since:  time.Now(),
	}
	u.slots = make([]*proc, instances(svc))
	u.mail = newMailbox()
	return u
}

// unitField adds "unit":NAME to every log event of a unit. A hook costs a
// few bytes per unit where a With() context costs 500 (1,000 units).
type unitField string

func (f unitField) Run(e *zerolog.Event, _ zerolog.Level, _ string) { e.Str("unit", string(f)) }

func instances(svc *units.Service) int {
	if svc.Instances < 1 {
		return 1
	}
	return svc.Instances
}

// run is the unit's actor: the only goroutine that changes its state.
func (u *unit) run() {
	switch {
	case u.recovered:
		u.phase = phaseRunning // recover.go
	case len(u.ls) == 0:
		// A service with no socket starts at once.
		u.queue = append(u.queue, &job{unit: u, kind: reqStart})
	default:
		u.phase = phaseListening
	}
	u.watchSockets()
	u.settle()
	u.loop()
}

// loop takes requests, events and mail until the actor ends, or until
// it parks (park.go): then it returns, and the next send runs it again
// in a new goroutine.
func (u *unit) loop() {
	for !u.exiting || u.phase != phaseDead {
		if u.parkable() {
			u.releaseCgroup()
			if u.park.park() {
				return
			}
		}
		select {
		case r := <-u.reqs:
			u.park.leave() // taken
			u.request(r)
		case e := <-u.evs:
			u.park.leave() // taken
			u.dispatch(e)
		case <-u.mail.wake:
			for _, n := range u.mail.take() {
				u.notification(n)
			}
		}
		u.settle()
	}
	u.end()
}

// parkable reports that the unit has nothing to do until a request or
// an event comes: an idle phase, no process, no job, no timer, no
// Exec*= list running. (A timer left armed, or an event of a process,
// would wake it anyway; parking only with none keeps it simple.)
func (u *unit) parkable() bool {
	switch u.phase {
	case phaseDead, phaseListening, phaseFailed, phaseFailedListening:
	default:
		return false
	}
	return !u.exiting && u.job == nil && len(u.queue) == 0 && len(u.freezing) == 0 &&
		u.running() == 0 && len(u.draining) == 0 && u.helper == nil && u.hold == nil &&
		u.rstTok == 0 && u.backoffTok == 0 && u.runtimeTok == 0 && u.idle == nil &&
		len(u.retired) == 0
}

// enableParking lets the actor park while idle. Whoever then sends to it
// must go through the handle's ask, or send/trySend (unit.go).
func (u *unit) enableParking() {
	u.park.u = u
}

func (u *unit) statusNow(full bool) api.UnitStatus {
	st := u.status()
	if full {
		st.Service.CgroupPids = u.cg.pids()
	}
	return st
}

func (u *unit) mailWaiting() bool { return len(u.mail.wake) > 0 }

// end is the actor's last act.
func (u *unit) end() {
	defer close(u.quit)
	u.unwatchSockets()
	u.disarmIdle()
	activation.CloseAll(u.retired)
	u.cancelHelper()
	if u.endLife != nil {
		u.endLife()
	}
	u.closeCgroup()
	// Nothing may wait for an answer from an actor that is gone.
	for _, j := range append(u.queue, u.job) {
		if j != nil {
			j.failure = "sockd is shutting down"
			u.answer(j)
		}
	}
}

// dispatch runs the table's row for e in the current phase.
func (u *unit) dispatch(e event) bool {
	row, ok := table[u.phase][e.kind]
	if !ok {
		if e.kind == evExit {
			u.forget(e.p) // never in the table's phases; keep the books anyway
		}
		u.log.Debug().Str("phase", u.phase.String()).Str("event", e.kind.String()).Msg("event ignored")
		return false
	}
	u.row = &row
	row.run(u, e)
	u.row = nil
	return true
}

// enter moves the unit to next, which the row being run must list.
func (u *unit) enter(next phase) {
	if next == u.phase {
		return
	}
	if u.row != nil && !containsPhase(u.row.next, next) {
		msg := fmt.Sprintf("transition %s → %s is not in the table (%q)", u.phase, next, u.row.action)
		if strictPhases {
			panic(msg)
		}
		u.log.Error().Msg(msg)
	}
	u.log.Info().Str("from", u.phase.String()).Str("to", next.String()).Msg("phase")
	u.phase, u.since = next, time.Now()
	if next != phaseRunning {
		u.disarmIdle() // the idle clock starts again when it runs again
	}
	u.publish(api.UnitEvent{Time: u.since, Kind: api.EventPhase, Phase: next.String(), Result: u.result})
}

func containsPhase(ps []phase, p phase) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

// lifetime returns the context that ends with the actor.
func (u *unit) lifetime() context.Context {
	if u.life == nil {
		u.life, u.endLife = context.WithCancel(context.Background())
	}
	return u.life
}

// nextToken returns a token no one holds.
func (u *unit) nextToken() token {
	u.tokens++
	return u.tokens
}

// send delivers e to the actor from another goroutine.
func (u *unit) send(e event) {
	u.park.enter()
	select {
	case u.evs <- e:
	case <-u.quit:
		u.park.leave()
	}
}

// trySend delivers e if the actor's queue has room, and reports whether
// it did.
func (u *unit) trySend(e event) bool {
	u.park.enter()
	select {
	case u.evs <- e:
		return true
	default:
		u.park.leave()
		return false
	}
}

// after delivers e to the actor once d has passed.
func (u *unit) after(d time.Duration, e event) *time.Timer {
	return time.AfterFunc(d, func() { u.send(e) })
}

// settle runs after every event: it begins the next queued request if
// the phase has a row for it, arms or disarms the socket waiter, and
// tells the observer about changes.
func (u *unit) settle() {
	for u.job == nil && len(u.queue) > 0 {
		j := u.queue[0]
		kind := jobEvent(j.kind)
		if _, ok := table[u.phase][kind]; !ok {
			break // waits for a phase that takes it
		}
		u.queue = dropFirst(u.queue)
		u.job = j
		j.begun = time.Now()
		u.dispatch(event{kind: kind, j: j})
	}
	want := !u.exiting && len(u.ls) > 0 && !u.socksClosed &&
		(u.phase == phaseListening || u.phase == phaseFailedListening && u.backoffTok == 0)
	if want && !u.armed {
		u.armWaiter()
	} else if !want && u.armed {
		u.disarmWaiter()
	}
	u.syncIdle()
	u.closeRetired()
	u.saveState()
	if len(u.freezing) > 0 && u.job == nil && len(u.queue) == 0 {
		u.freeze()
	}
	if u.observe != nil {
		s := u.status().Service
		key := fmt.Sprint(s.State, s.SubState, s.Pids, s.Result, s.MainPID, s.Status)
		if key != u.observed {
			u.observed = key
			u.observe(u.name, s)
		}
	}
}

// dropFirst removes s's first element, and lets the backing array go
// once s is empty: an idle unit keeps no finished job (its waiters, their
// reply channels) alive.
func dropFirst[T any](s []*T) []*T {
	s[0] = nil
	if len(s) == 1 {
		return nil
	}
	return s[1:]
}

func jobEvent(k reqKind) evKind {
	switch k {
	case reqStart:
		return evStart
	case reqStop:
		return evStop
	case reqRestart:
		return evRestart
	}
	return evReloadApp
}

// request takes a call: status and update are answered at once, the
// rest queue as jobs.
func (u *unit) request(r *request) {
	switch r.kind {
	case reqStatus:
		r.reply <- reply{status: u.statusNow(r.full)}
	case reqSockets:
		r.reply <- reply{err: u.changeSockets(r.socks)}
	case reqUpdate:
		// The new definition applies from the next start or restart.
		u.svc = r.svc
		if u.running() == 0 && u.job == nil {
			u.slots = make([]*proc, instances(r.svc))
		}
		r.reply <- reply{}
	case reqFreeze:
		u.freezing = append(u.freezing, r)
	case reqHold, reqRelease:
		u.holdRequest(r) // hold.go: answered at once, never queued
	case reqResetFailed:
		u.resetFailedRequest(r) // resetfailed.go: answered at once, never queued
	case reqShutdown:
		u.exiting = true
		u.enqueue(&request{kind: reqStop, reply: make(chan reply, 1)})
		r.reply <- reply{}
	default:
		if u.exiting && r.kind != reqStop {
			r.reply <- reply{err: fmt.Errorf("%s %s: sockd is shutting down: %w", r.kind, u.name, api.ErrConflict)}
			return
		}
		u.enqueue(r)
	}
}

// enqueue queues a request. One that a queued job of its kind already
// covers joins it; a stop answers the queued starts and restarts (they
// would only start what it stops) and cancels the one under way.
func (u *unit) enqueue(r *request) {
	for _, j := range u.queue {
		if j.kind == r.kind {
			j.waiters = append(j.waiters, r)
			j.opts.StopFirst = j.opts.StopFirst || r.opts.StopFirst
			u.ack(r)
			return
		}
	}
	if r.kind == reqStop {
		kept := u.queue[:0]
		for _, j := range u.queue {
			if j.kind == reqStop {
				kept = append(kept, j)
				continue
			}
			j.failure = "canceled by stop"
			u.answer(j)
		}
		clear(u.queue[len(kept):]) // no job is kept alive by the array
		u.queue = kept
		if u.job != nil && u.job.kind != reqStop {
			u.cancelJob("canceled by stop")
		}
	}
	j := &job{unit: u, kind: r.kind, opts: r.opts, waiters: []*request{r}}
	if u.job != nil {
		j.emit(api.PhaseQueued, 0, "a "+u.job.kind.String()+" under way")
	} else if len(u.queue) > 0 {
		j.emit(api.PhaseQueued, 0, "a "+u.queue[0].kind.String()+" waiting")
	}
	u.queue = append(u.queue, j)
	u.ack(r)
}

// ack answers a restart that does not wait as soon as it is queued
// (but for a held unit, whose refusal is the answer).
func (u *unit) ack(r *request) {
	if r.kind == reqRestart && !r.opts.Wait && u.phase != phaseHeld {
		r.reply <- reply{}
		r.acked = true
	}
}

// cancelJob ends the job under way early. What it started (a new
// process of a restart) is stopped; the stop that comes next stops the
// rest.
func (u *unit) cancelJob(why string) {
	j := u.job
	if j.newProc != nil {
		u.stopProc(j.newProc)
		j.newProc = nil
	}
	if j.execSet {
		j.execRelease()
		j.execSet, j.execRelease = false, nil
	}
	u.cancelHelper()
	u.finishJob(why)
}

// finishJob ends the job under way with failure ("" for success).
func (u *unit) finishJob(failure string) {
	j := u.job
	if j == nil {
		return
	}
	u.job = nil
	if j.failure == "" {
		j.failure = failure
	}
	u.answer(j)
}

// finishJobErr ends the job under way with err as its answer.
func (u *unit) finishJobErr(err error) {
	if u.job != nil {
		u.job.err = err
	}
	u.finishJob(err.Error())
}

// answer replies to every waiter of j, which has left the queue.
func (u *unit) answer(j *job) {
	var err error
	if j.begun.IsZero() {
		j.begun = time.Now()
	}
	res := api.RestartResult{Unit: u.name, OK: j.failure == "", Outcome: "done",
		OldPids: j.oldPids, NewPids: j.newPids, Millis: time.Since(j.begun).Milliseconds()}
	if j.failure != "" {
		res.Cause, res.LogTail = j.failure, j.tail
		res.Outcome = "failed"
		if u.running() > 0 {
			res.Outcome = "rolled-back"
		}
		if j.kind != reqRestart {
			err = fmt.Errorf("%s %s: %s: %w", j.kind, u.name, j.failure, api.ErrFailed)
		}
		if j.err != nil {
			err = j.err
		}
	}
	if j.kind == reqRestart {
		r := res
		u.lastRst = &r
		lvl := u.log.Info()
		if !res.OK {
			lvl = u.log.Error()
		}
		lvl.Str("outcome", res.Outcome).Int64("ms", res.Millis).Ints("old", res.OldPids).Ints("new", res.NewPids).
			Str("cause", res.Cause).Msg("restart")
		if res.OK {
			j.emit(api.PhaseDone, 0, fmt.Sprintf("done in %d ms", res.Millis))
		} else {
			j.emit(api.PhaseFailed, 0, res.Cause)
		}
		// The last event of a restart: a follower may stop at it.
		u.publish(api.UnitEvent{Kind: api.EventRestartDone, Outcome: res.Outcome, Millis: res.Millis, Message: res.Cause})
	}
	for _, w := range j.waiters {
		if w.reply != nil && !w.acked {
			w.reply <- reply{result: res, err: err}
		}
	}
}

// running counts the processes in the slots.
func (u *unit) running() int {
	n := 0
	for _, p := range u.slots {
		if p != nil {
			n++
		}
	}
	return n
}

// allReady reports that at least one slot has a process and every
// process in a slot is ready.
func (u *unit) allReady() bool {
	n := 0
	for _, p := range u.slots {
		if p != nil {
			if !p.ready {
				return false
			}
			n++
		}
	}
	return n > 0
}

// freeze answers the re-exec's freeze requests, the job under way being
// done, and stops the actor until the re-exec is called off (after a
// successful one, the process is another sockd before that).
func (u *unit) freeze() {
	rs := u.freezing
	u.freezing = nil
	for _, r := range rs {
		r.reply <- reply{}
	}
	<-rs[0].thaw
}
