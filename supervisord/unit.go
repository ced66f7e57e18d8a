package supervisord

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sockd/sockd/activation"
	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/units"
)

// unit is one service with the sockets that activate it. One goroutine,
// run, owns every field below the line; the rest talk to it through reqs.
type unit struct {
	name   string // "app.service"
	log    zerolog.Logger
	reqs   chan *request
	evs    chan event
	quit   chan struct{} // closed when run returns
	logs   *logRing
	socks  []*units.Socket
	ls     []*activation.Listener
	lsSock []*units.Socket // the socket unit each of ls belongs to
	// notifyPath is the daemon's NOTIFY_SOCKET, "" when the unit does not
	// use it; notifyC carries the messages routed to this unit.
	notifyPath string
	notifyC    chan children.Notification
	pids       *pidTable
	waiter     *activation.Waiter // the daemon's, for lazy starts
	sockSt     []api.SocketStatus

	// svcSnapshot is the service as the last reload saw it; reloads
	// (serialized by Daemon.reloadMu) alone read and write it.
	svcSnapshot *units.Service
	// helpers counts helper-command goroutines; removeUnit waits for them.
	helpers sync.WaitGroup

	observe  func(string, api.ServiceStatus)
	observed string // the last observed state, sub-state and pids

	// ---- owned by run ----
	svc        *units.Service
	state      string
	since      time.Time
	result     string
	lastExit   string
	failed     bool // start limit hit: no more triggers until an explicit start
	gen        int
	slots      []*proc // the current generation, one per instance
	draining   []*proc // told to stop, not yet exited
	ops        []*op   // queued mutating requests; ops[0] runs
	starts     []time.Time
	triggers   map[*units.Socket][]time.Time // for TriggerLimit*=
	restarts   int
	lastRst    *api.RestartResult
	waitCancel func()        // disarms the listeners; nil when not waiting
	waitDone   chan struct{} // the token of the current arming
	autoToken  int           // the pending auto-restart timer, 0 for none
	preToken   int           // ExecStartPre= under way before spawnMissing, 0 for none
	preOK      bool
	preWhy     string
	restartDue bool            // a Restart= timer fired while an op ran
	hctx       context.Context // of the Exec*= helpers under way
	hcancel    context.CancelFunc
	posts      int // ExecStartPost= lists under way
	tokens     int
	exiting    bool
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
)

func (k reqKind) String() string {
	return [...]string{"status", "start", "stop", "restart", "reload-app", "shutdown", "update"}[k]
}

// request is a call into the actor. reply is 1-buffered; events, for a
// restart with wait, is buffered and written without blocking.
type request struct {
	kind   reqKind
	acked  bool // answered when queued (restart without wait); actor-only
	opts   api.RestartOptions
	svc    *units.Service // reqUpdate
	reply  chan reply
	events chan api.Event
}

type reply struct {
	status api.UnitStatus
	result api.RestartResult
	err    error
}

// op is a mutating request under way. Ops run one at a time per unit.
type op struct {
	kind    reqKind
	opts    api.RestartOptions
	waiters []*request
	begun   time.Time
	gen     int
	slot    int     // restart: the instance being replaced
	newProc *proc   // restart: the new process not yet ready
	old     []*proc // restart: old processes this restart stopped
	oldPids []int
	newPids []int
	failure string
	tail    []string
	aborted bool

	preRunning, preDone bool // restart: ExecStartPre= of the new generation
}

type event interface{}

type procExited struct{ p *proc }
type triggered struct {
	l    *activation.Listener
	err  error
	done chan struct{} // identifies the waiter that sent it
}
type timerFired struct {
	kind  string // "auto-restart", "start-timeout", "ready-after", "watchdog"
	token int
	p     *proc
}

func newUnit(name string, svc *units.Service, socks []*units.Socket, log zerolog.Logger) *unit {
	u := &unit{
		name:  name,
		svc:   svc,
		socks: socks,
		log:   log.Hook(unitField(name)),
		reqs:  make(chan *request),
		evs:   make(chan event, 16),
		quit:  make(chan struct{}),
		logs:  newLogRing(1000),
		pids:  newPidTable(), // the Daemon's replaces it
		state: api.StateInactive,
		since: time.Now(),
	}
	u.slots = make([]*proc, instances(svc))
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

// call sends r to the actor and waits for the reply.
func (u *unit) call(ctx context.Context, r *request) (reply, error) {
	r.reply = make(chan reply, 1)
	select {
	case u.reqs <- r:
	case <-u.quit:
		return reply{}, fmt.Errorf("unit %s: %w", u.name, api.ErrNotFound)
	case <-ctx.Done():
		return reply{}, ctx.Err()
	}
	select {
	case rep := <-r.reply:
		return rep, rep.err
	case <-ctx.Done():
		return reply{}, ctx.Err()
	}
}

// run is the unit's actor: the only goroutine that changes its state.
func (u *unit) run() {
	defer close(u.quit)
	notifyC := u.notifyC
	if len(u.ls) == 0 {
		// A service with no socket starts at once.
		u.spawnMissing("start")
	}
	u.settle()
	for !u.exiting || !u.idle() {
		select {
		case r := <-u.reqs:
			u.handleRequest(r)
		case e := <-u.evs:
			u.handleEvent(e)
		case n := <-notifyC:
			u.handleNotify(n)
		}
		u.settle()
	}
	u.stopWaiter()
	u.cancelHelpers()
	// Nothing may wait for an answer from an actor that is gone.
	for len(u.ops) > 0 {
		u.ops[0].failure = "sockd is shutting down"
		u.finishOp(u.ops[0])
	}
}

// idle reports that no process of the unit runs.
func (u *unit) idle() bool {
	for _, p := range u.slots {
		if p != nil {
			return false
		}
	}
	return len(u.draining) == 0 && (len(u.ops) == 0 || u.ops[0].newProc == nil)
}

func (u *unit) running() int {
	n := 0
	for _, p := range u.slots {
		if p != nil {
			n++
		}
	}
	return n
}

// settle runs after every event: it begins the next op, starts or stops
// the socket waiter, and records state changes.
func (u *unit) settle() {
	for len(u.ops) > 0 && u.ops[0].begun.IsZero() {
		u.beginOp(u.ops[0])
	}
	if u.restartDue && len(u.ops) == 0 {
		u.restartDue = false
		if !u.exiting && !u.failed && u.running() < len(u.slots) {
			if u.allowStart() {
				u.spawnMissing("Restart=" + u.svc.Restart)
			} else {
				u.failStartLimit()
			}
		}
	}
	wantWait := len(u.ls) > 0 && !u.exiting && !u.failed && len(u.ops) == 0 &&
		u.running() == 0 && u.autoToken == 0 && u.preToken == 0 && !u.restartDue
	if wantWait && u.waitCancel == nil {
		u.startWaiter()
	} else if !wantWait && u.waitCancel != nil {
		u.stopWaiter()
	}
	st := u.computeState()
	if st != u.state {
		u.log.Info().Str("from", u.state).Str("to", st).Msg("state")
		u.state, u.since = st, time.Now()
	}
	if u.observe != nil {
		s := u.status().Service
		key := fmt.Sprint(s.State, s.SubState, s.Pids, s.Result)
		if key != u.observed {
			u.observed = key
			u.observe(u.name, s)
		}
	}
}

func (u *unit) computeState() string {
	if len(u.ops) > 0 && u.ops[0].kind == reqStop || u.exiting && !u.idle() {
		return api.StateDeactivating
	}
	n, ready := 0, 0
	for _, p := range u.slots {
		if p != nil {
			n++
			if p.ready {
				ready++
			}
		}
	}
	switch {
	case n > 0 && ready == n && u.posts == 0:
		return api.StateActive
	case n > 0 || u.autoToken != 0 || u.preToken != 0:
		return api.StateActivating
	case len(u.ops) > 0 && u.ops[0].kind == reqRestart && !u.ops[0].begun.IsZero():
		return api.StateActivating // --stop-first: the old drained, the new not yet started
	case len(u.ops) > 0 && u.ops[0].newProc != nil:
		return api.StateActivating
	case u.failed || u.result != "" && u.result != "success":
		return api.StateFailed
	}
	return api.StateInactive
}

// startWaiter arms the unit's listeners in the daemon's Waiter: the
// first connection on any of them sends triggered. An idle unit costs no
// goroutine; the Waiter's one goroutine waits for all units.
func (u *unit) startWaiter() {
	token := make(chan struct{}) // tells this arming's trigger from a stale one
	disarm, err := u.waiter.Arm(u.ls, func(l *activation.Listener) {
		// Called from the Waiter's goroutine, which must not block.
		go func() {
			select {
			case u.evs <- triggered{l, nil, token}:
			case <-u.quit:
			}
		}()
	})
	if err != nil {
		u.waitCancel, u.waitDone = func() {}, token
		go func() {
			select {
			case u.evs <- triggered{nil, err, token}:
			case <-u.quit:
			}
		}()
		return
	}
	u.waitCancel, u.waitDone = disarm, token
}

// stopWaiter disarms the unit's listeners. A trigger already on its way
// is told apart by its token.
func (u *unit) stopWaiter() {
	if u.waitCancel == nil {
		return
	}
	u.waitCancel()
	u.waitCancel, u.waitDone = nil, nil
}

// allowStart applies StartLimitIntervalSec=/StartLimitBurst= to starts
// that sockd makes on its own (triggers and auto-restarts).
func (u *unit) allowStart() bool {
	burst, interval := u.svc.StartLimitBurst, u.svc.StartLimitInterval
	if burst <= 0 || interval <= 0 {
		return true
	}
	now := time.Now()
	kept := u.starts[:0]
	for _, t := range u.starts {
		if now.Sub(t) < interval {
			kept = append(kept, t)
		}
	}
	u.starts = kept
	if len(u.starts) >= burst {
		return false
	}
	u.starts = append(u.starts, now)
	return true
}

// allowTrigger applies the socket's TriggerLimitIntervalSec= and
// TriggerLimitBurst=. Past the limit the unit fails (trigger-limit-hit)
// and stops starting on connections until an explicit start; unlike
// systemd the socket stays open, so what waits in its queue is served
// then.
func (u *unit) allowTrigger(l *activation.Listener) bool {
	var s *units.Socket
	for i, x := range u.ls {
		if x == l && i < len(u.lsSock) {
			s = u.lsSock[i]
		}
	}
	if s == nil || s.TriggerLimitBurst <= 0 || s.TriggerLimitInterval <= 0 {
		return true
	}
	if u.triggers == nil {
		u.triggers = map[*units.Socket][]time.Time{}
	}
	now := time.Now()
	kept := u.triggers[s][:0]
	for _, t := range u.triggers[s] {
		if now.Sub(t) < s.TriggerLimitInterval {
			kept = append(kept, t)
		}
	}
	if len(kept) >= s.TriggerLimitBurst {
		u.triggers[s] = kept
		u.failed, u.result = true, "trigger-limit-hit"
		u.log.Error().Str("socket", s.Name).Int("burst", s.TriggerLimitBurst).Dur("interval", s.TriggerLimitInterval).
			Msg("trigger limit hit: not starting on connections until `sockctl start`")
		return false
	}
	u.triggers[s] = append(kept, now)
	return true
}

func (u *unit) failStartLimit() {
	u.failed = true
	u.result = "start-limit-hit"
	u.log.Error().Int("burst", u.svc.StartLimitBurst).Dur("interval", u.svc.StartLimitInterval).
		Msg("start limit hit: not starting again until `sockctl start`")
}

// spawnMissing starts a process in every empty slot of the current
// generation. why is for the log.
func (u *unit) spawnMissing(why string) error {
	oneshot := u.svc.Type == "oneshot"
	if oneshot || len(u.svc.ExecStartPre) > 0 && !u.preOK {
		// ExecStartPre= first, off the actor; helpersDone comes back
		// here. A oneshot's ExecStart= lines run the same way, after
		// them: systemd runs them one after another, the unit activating
		// until the last has exited.
		if u.preToken == 0 {
			what, cmds := "ExecStartPre", u.svc.ExecStartPre
			if oneshot {
				what, cmds = "ExecStart", append(append([]units.Command{}, cmds...), u.svc.ExecStart...)
			}
			u.tokens++
			u.preToken = u.tokens
			u.startHelpers(what, cmds, 0, u.svc.TimeoutStartSec, u.preToken, nil)
			u.preWhy = why
		}
		return nil
	}
	u.preOK = false
	if u.running() == 0 {
		u.gen++
		// A new generation from nothing: the current X-Instances=, and
		// a fresh result, as systemd resets it on every start.
		if len(u.draining) == 0 {
			u.slots = make([]*proc, instances(u.svc))
		}
		u.result = ""
	}
	var firstErr error
	for i, p := range u.slots {
		if p != nil {
			continue
		}
		pr, err := u.spawn(i, u.gen)
		if err != nil {
			u.log.Error().Err(err).Str("why", why).Msg("spawn failed")
			u.result, u.lastExit = "resources", err.Error()
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		u.slots[i] = pr
		u.log.Info().Int("pid", pr.Pid()).Int("gen", pr.gen).Int("instance", i).Str("why", why).Msg("spawned")
		u.armReadiness(pr)
	}
	return firstErr
}

// armReadiness marks pr ready at once or arms the timers that decide.
func (u *unit) armReadiness(pr *proc) {
	if u.svc.WatchdogSec > 0 && u.svc.WatchdogSec != units.Infinity {
		u.armWatchdog(pr)
	}
	if u.svc.Type == "notify" {
		if t := u.svc.TimeoutStartSec; t > 0 && t != units.Infinity {
			u.after(t, timerFired{kind: "start-timeout", p: pr})
		}
		return
	}
	if u.svc.ReadyAfter > 0 && pr.restartOp != nil {
		u.after(u.svc.ReadyAfter, timerFired{kind: "ready-after", p: pr})
		return
	}
	pr.ready = true
	u.startPost(pr)
}

// startPost runs ExecStartPost= once pr is up (ready, for Type=notify).
// Its failure is logged; it does not stop the process.
func (u *unit) startPost(pr *proc) {
	if len(u.svc.ExecStartPost) > 0 {
		u.posts++
		u.startHelpers("ExecStartPost", u.svc.ExecStartPost, pr.mainPid, u.svc.TimeoutStartSec, 0, nil)
	}
}

func (u *unit) armWatchdog(pr *proc) {
	u.tokens++
	pr.watchdogToken = u.tokens
	if pr.watchdogTimer != nil {
		pr.watchdogTimer.Stop() // each WATCHDOG=1 would otherwise leave one
	}
	pr.watchdogTimer = u.after(u.svc.WatchdogSec, timerFired{kind: "watchdog", p: pr, token: u.tokens})
}

// after delivers e to the actor once d has passed.
func (u *unit) after(d time.Duration, e timerFired) *time.Timer {
	return time.AfterFunc(d, func() {
		select {
		case u.evs <- e:
		case <-u.quit:
		}
	})
}

func (u *unit) handleRequest(r *request) {
	switch r.kind {
	case reqStatus:
		r.reply <- reply{status: u.status()}
	case reqReloadApp:
		u.reloadApp(r)
	case reqUpdate:
		// The new definition applies from the next start or restart.
		u.svc = r.svc
		if u.running() == 0 && len(u.ops) == 0 {
			u.slots = make([]*proc, instances(r.svc))
		}
		r.reply <- reply{}
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

// enqueue queues a mutating request. A restart asked for while another
// waits in the queue joins it; a stop cancels a start or restart under
// way.
func (u *unit) enqueue(r *request) {
	for i, o := range u.ops {
		if i > 0 && o.kind == r.kind && r.kind != reqStop {
			o.waiters = append(o.waiters, r)
			o.opts.StopFirst = o.opts.StopFirst || r.opts.StopFirst
			u.ack(r)
			return
		}
	}
	if r.kind == reqStop {
		// Starts and restarts queued behind the one under way would
		// only start what the stop is about to stop: answer them now.
		kept := u.ops[:0]
		for i, o := range u.ops {
			if i > 0 && o.kind != reqStop {
				o.failure = "canceled by stop"
				u.answer(o)
				continue
			}
			kept = append(kept, o)
		}
		u.ops = kept
		if len(u.ops) > 0 && u.ops[0].kind != reqStop {
			u.abortOp(u.ops[0], "canceled by stop")
		}
	}
	u.ops = append(u.ops, &op{kind: r.kind, opts: r.opts, waiters: []*request{r}})
	u.ack(r)
}

// ack answers a restart that does not wait as soon as it is queued.
func (u *unit) ack(r *request) {
	if r.kind == reqRestart && !r.opts.Wait {
		r.reply <- reply{}
		r.acked = true
	}
}

func (o *op) emit(phase string, pid int, msg string) {
	ev := api.Event{Time: time.Now(), Phase: phase, Pid: pid, Message: msg}
	for _, w := range o.waiters {
		if w.events == nil {
			continue
		}
		select {
		case w.events <- ev:
		default: // a slow reader loses progress, never the result
		}
	}
}

func (u *unit) beginOp(o *op) {
	o.begun = time.Now()
	u.stopWaiter()
	u.cancelAutoRestart()
	switch o.kind {
	case reqStart:
		u.failed = false
		u.starts = nil
		u.triggers = nil
		if u.running() == len(u.slots) {
			u.finishIfStarted(o) // once every process is ready
			return
		}
		u.result = ""
		if err := u.spawnMissing("start"); err != nil && u.running() == 0 {
			o.failure = err.Error()
		}
		u.finishIfStarted(o)
	case reqStop:
		u.preToken = 0 // an ExecStartPre= under way: its end is ignored
		u.cancelHelpers()
		for i, p := range u.slots {
			if p != nil {
				u.stopProc(p)
				u.slots[i] = nil
			}
		}
		u.finishIfStopped(o)
	case reqRestart:
		u.failed = false
		u.starts = nil
		u.triggers = nil
		u.restarts++
		o.gen = u.gen + 1
		u.resizeSlots()
		for _, p := range u.slots {
			if p != nil {
				o.oldPids = append(o.oldPids, p.Pid())
			}
		}
		if u.svc.Type == "oneshot" {
			u.result = ""
			u.spawnMissing("restart")
			return // helpersDone finishes the op
		}
		if o.opts.StopFirst {
			for i, p := range u.slots {
				if p != nil {
					u.stopProc(p)
					o.old = append(o.old, p)
					o.emit(api.PhaseDraining, p.Pid(), "")
					u.slots[i] = nil
				}
			}
			if len(o.old) > 0 {
				return // restartStep runs once they have exited
			}
		}
		u.restartStep(o)
	}
}

// restartStep replaces the instance o.slot: it starts the new process,
// which takes the slot once ready (see becameReady).
func (u *unit) restartStep(o *op) {
	if o.slot >= len(u.slots) {
		u.finishIfRestarted(o)
		return
	}
	if len(u.svc.ExecStartPre) > 0 && !o.preDone {
		if !o.preRunning {
			o.preRunning = true
			o.emit(api.PhaseQueued, 0, "running ExecStartPre=")
			u.startHelpers("ExecStartPre", u.svc.ExecStartPre, 0, u.svc.TimeoutStartSec, 0, o)
		}
		return
	}
	pr, err := u.spawn(o.slot, o.gen)
	if err != nil {
		o.failure = err.Error()
		u.finishOp(o)
		return
	}
	pr.restartOp = o
	o.newProc = pr
	o.newPids = append(o.newPids, pr.Pid())
	u.log.Info().Int("pid", pr.Pid()).Int("gen", o.gen).Int("instance", o.slot).Msg("restart: spawned")
	o.emit(api.PhaseSpawned, pr.Pid(), fmt.Sprintf("instance %d", o.slot))
	u.armReadiness(pr)
	if pr.ready {
		u.becameReady(pr)
		return
	}
	o.emit(api.PhaseWaiting, pr.Pid(), "")
}

// becameReady handles a process reporting ready (or counted ready).
func (u *unit) becameReady(pr *proc) {
	pr.ready = true
	if u.svc.Type == "notify" || u.svc.ReadyAfter > 0 {
		u.startPost(pr)
	}
	o := pr.restartOp
	if o == nil {
		return
	}
	pr.restartOp = nil
	o.newProc = nil
	o.emit(api.PhaseReady, pr.Pid(), "")
	if old := u.slots[pr.slot]; old != nil {
		u.stopProc(old)
		o.old = append(o.old, old)
		o.emit(api.PhaseDraining, old.Pid(), "")
	}
	u.slots[pr.slot] = pr
	u.gen = o.gen
	o.slot++
	u.restartStep(o)
}

// stopProc tells p to stop with KillSignal=, SIGKILL after TimeoutStopSec=.
func (u *unit) stopProc(p *proc) {
	if p.stopping {
		return
	}
	p.stopping = true
	u.draining = append(u.draining, p)
	sig := u.svc.KillSignal
	if sig == 0 {
		sig = 15
	}
	timeout := u.svc.TimeoutStopSec
	if timeout == 0 {
		timeout = units.Infinity
	}
	to, kill := killTargets(u.svc)
	u.log.Info().Int("pid", p.Pid()).Str("signal", sig.String()).Msg("stopping")
	if len(u.svc.ExecStop) == 0 {
		go p.p.Terminate(sig, to, timeout, kill)
		return
	}
	// ExecStop= runs first (with MAINPID), then KillSignal= goes to what
	// is left, as systemd does; both share TimeoutStopSec=.
	svc, cmds, pid := u.svc, u.svc.ExecStop, p.mainPid
	env, _ := u.environment()
	logLine := u.helperLog("ExecStop")
	go func() {
		start := time.Now()
		if err := runHelpers(context.Background(), svc, env, "ExecStop", cmds, pid, timeout, logLine); err != nil {
			logLine("stderr", err.Error())
		}
		left := timeout
		if timeout != units.Infinity {
			left = max(timeout-time.Since(start), 0)
		}
		p.p.Terminate(sig, to, left, kill)
	}()
}

// killTargets maps KillMode= and SendSIGKILL= to whom the stop signal and
// the SIGKILL after TimeoutStopSec= go. sockd's control group is the
// process group.
func killTargets(svc *units.Service) (sig, kill children.Target) {
	switch svc.KillMode {
	case "none":
		// systemd leaves the processes running; sockd must reap its
		// children, so after TimeoutStopSec= the main one is killed.
		sig, kill = children.None, children.Main
	case "process":
		sig, kill = children.Main, children.Main
	case "mixed":
		sig, kill = children.Main, children.Group
	default: // control-group
		sig, kill = children.Group, children.Group
	}
	if !svc.SendSIGKILL {
		kill = children.None
	}
	return sig, kill
}

// abortOp ends a start or restart early; it finishes once its new
// process has exited.
func (u *unit) abortOp(o *op, why string) {
	if o.aborted {
		return
	}
	o.aborted = true
	o.failure = why
	if o.newProc != nil {
		u.stopProc(o.newProc)
		return
	}
	if o.kind == reqStart {
		for i, p := range u.slots {
			if p != nil && !p.ready {
				u.stopProc(p)
				u.slots[i] = nil
			}
		}
	}
	if !o.begun.IsZero() {
		u.finishOp(o)
	}
}

func (u *unit) finishIfStopped(o *op) {
	if len(u.draining) == 0 && u.running() == 0 {
		u.finishOp(o)
	}
}

func (u *unit) finishIfRestarted(o *op) {
	if o.newProc != nil || o.slot < len(u.slots) {
		return
	}
	for _, p := range o.old {
		for _, d := range u.draining {
			if d == p {
				return // still draining
			}
		}
	}
	u.finishOp(o)
}

// finishOp answers every waiter of o and removes it from the queue.
func (u *unit) finishOp(o *op) {
	if len(u.ops) == 0 || u.ops[0] != o {
		return
	}
	u.ops = u.ops[1:]
	if o.kind == reqRestart && o.failure == "" {
		u.result = "" // a successful restart is a fresh start
	}
	u.answer(o)
}

// answer replies to every waiter of o, which has left the queue.
func (u *unit) answer(o *op) {
	var err error
	if o.begun.IsZero() {
		o.begun = time.Now()
	}
	res := api.RestartResult{Unit: u.name, OK: o.failure == "", Outcome: "done",
		OldPids: o.oldPids, NewPids: o.newPids, Millis: time.Since(o.begun).Milliseconds()}
	if o.failure != "" {
		res.Cause, res.LogTail = o.failure, o.tail
		res.Outcome = "failed"
		if u.running() > 0 {
			res.Outcome = "rolled-back"
		}
		if o.kind != reqRestart {
			err = fmt.Errorf("%s %s: %s: %w", o.kind, u.name, o.failure, api.ErrFailed)
		}
	}
	if o.kind == reqRestart {
		r := res
		u.lastRst = &r
		lvl := u.log.Info()
		if !res.OK {
			lvl = u.log.Error()
		}
		lvl.Str("outcome", res.Outcome).Int64("ms", res.Millis).Ints("old", res.OldPids).Ints("new", res.NewPids).
			Str("cause", res.Cause).Msg("restart")
		if res.OK {
			o.emit(api.PhaseDone, 0, fmt.Sprintf("done in %d ms", res.Millis))
		} else {
			o.emit(api.PhaseFailed, 0, res.Cause)
		}
	}
	for _, w := range o.waiters {
		if w.reply != nil && !w.acked {
			w.reply <- reply{result: res, err: err}
		}
	}
}

func (u *unit) cancelAutoRestart() { u.autoToken, u.restartDue = 0, false }

func (u *unit) handleEvent(e event) {
	switch e := e.(type) {
	case triggered:
		if e.done != u.waitDone || u.waitDone == nil {
			return // from a waiter that was stopped
		}
		u.waitCancel()
		u.waitCancel, u.waitDone = nil, nil
		if e.err != nil {
			u.log.Error().Err(e.err).Msg("waiting for a connection")
			u.failed, u.result = true, "resources"
			return
		}
		if len(u.ops) > 0 || u.running() > 0 || u.failed || u.exiting || u.preToken != 0 {
			return
		}
		if !u.allowTrigger(e.l) {
			return
		}
		if !u.allowStart() {
			u.failStartLimit()
			return
		}
		u.result, u.lastExit = "", ""
		u.spawnMissing("connection on " + e.l.Spec().Address)
	case procExited:
		u.procExited(e.p)
	case timerFired:
		u.timerFired(e)
	case helpersDone:
		u.helpersDone(e)
	}
}

// helpersDone continues a start or restart after its ExecStartPre=, or
// logs the outcome of ExecStartPost=.
func (u *unit) helpersDone(e helpersDone) {
	switch {
	case e.o != nil: // a restart's ExecStartPre=
		o := e.o
		if len(u.ops) == 0 || u.ops[0] != o || o.aborted {
			return
		}
		o.preRunning = false
		if e.err != nil {
			o.failure = e.err.Error()
			u.finishOp(o)
			return
		}
		o.preDone = true
		u.restartStep(o)
	case e.token != 0: // ExecStartPre= before spawnMissing
		if e.token != u.preToken {
			return // a stop came meanwhile
		}
		u.preToken = 0
		var cur *op
		if len(u.ops) > 0 {
			cur = u.ops[0]
		}
		if e.err != nil {
			u.log.Error().Err(e.err).Msg("start failed")
			u.result, u.lastExit = "exit-code", e.err.Error()
			if cur != nil && cur.kind == reqStart {
				cur.failure = e.err.Error()
				u.finishIfStarted(cur)
			}
			if cur != nil && cur.kind == reqRestart && u.svc.Type == "oneshot" {
				cur.failure = e.err.Error()
				u.finishOp(cur)
			}
			return
		}
		if u.svc.Type == "oneshot" {
			u.result, u.lastExit = "success", "exit status 0"
			u.log.Info().Msg("oneshot: ExecStart= done")
			if cur != nil && (cur.kind == reqStart || cur.kind == reqRestart) {
				u.finishOp(cur)
			}
			if len(u.svc.ExecStartPost) > 0 {
				u.posts++
				u.startHelpers("ExecStartPost", u.svc.ExecStartPost, 0, u.svc.TimeoutStartSec, 0, nil)
			}
			return
		}
		u.preOK = true
		u.spawnMissing(u.preWhy)
		if cur != nil && cur.kind == reqStart {
			u.finishIfStarted(cur)
		}
	default: // ExecStartPost=
		u.posts--
		if e.err != nil {
			u.log.Error().Err(e.err).Str("command", e.what).Msg("failed")
		}
		if len(u.ops) > 0 && u.ops[0].kind == reqStart {
			u.finishIfStarted(u.ops[0])
		}
	}
}

func (u *unit) timerFired(e timerFired) {
	switch e.kind {
	case "auto-restart":
		if e.token != u.autoToken || u.autoToken == 0 {
			return
		}
		u.autoToken = 0
		if u.exiting {
			return
		}
		if len(u.ops) > 0 {
			u.restartDue = true // settle starts it once the op is done
			return
		}
		if !u.allowStart() {
			u.failStartLimit()
			return
		}
		u.spawnMissing("Restart=" + u.svc.Restart)
	case "start-timeout":
		p := e.p
		if p.ready || p.stopping || p.p == nil {
			return
		}
		select {
		case <-p.p.Done():
			return
		default:
		}
		p.timedOut = true
		u.log.Error().Int("pid", p.Pid()).Dur("timeout", u.svc.TimeoutStartSec).Msg("not ready within TimeoutStartSec=")
		u.stopProc(p)
	case "ready-after":
		p := e.p
		if p.ready || p.stopping {
			return
		}
		select {
		case <-p.p.Done():
			return
		default:
		}
		u.becameReady(p)
	case "watchdog":
		p := e.p
		if e.token != p.watchdogToken || p.stopping {
			return
		}
		p.watchdog = true
		u.log.Error().Int("pid", p.Pid()).Dur("WatchdogSec", u.svc.WatchdogSec).Msg("watchdog timeout")
		u.stopProc(p)
	}
}

// procExited handles the reaped process p: a draining one leaving, a new
// one failing a restart, or one of the current generation exiting.
func (u *unit) procExited(p *proc) {
	st := p.p.Exit()
	u.pids.remove(p.Pid(), u)
	u.pids.remove(p.mainPid, u)
	lg := u.log.Info()
	if !st.Success() && !p.stopping {
		lg = u.log.Warn()
	}
	lg.Int("pid", p.Pid()).Str("exit", st.String()).Msg("exited")
	for i, d := range u.draining {
		if d == p {
			u.draining = append(u.draining[:i], u.draining[i+1:]...)
			break
		}
	}
	var cur *op
	if len(u.ops) > 0 {
		cur = u.ops[0]
	}
	// The new process of a restart, before it was ready: roll back.
	if o := p.restartOp; o != nil {
		p.restartOp = nil
		o.newProc = nil
		switch {
		case o.failure != "":
		case p.timedOut:
			o.failure = fmt.Sprintf("not ready within TimeoutStartSec=%s", u.svc.TimeoutStartSec)
		default:
			o.failure = "exited before ready: " + st.String()
		}
		o.tail = p.Tail()
		u.finishOp(o)
		return
	}
	if cur != nil && cur.kind == reqRestart {
		for _, old := range cur.old {
			if old == p {
				cur.emit(api.PhaseStopped, p.Pid(), st.String())
			}
		}
	}
	slotted := p.slot < len(u.slots) && u.slots[p.slot] == p
	if slotted {
		u.slots[p.slot] = nil
	}
	if slotted && (!p.stopping || p.timedOut || p.watchdog) {
		u.unexpectedExit(p, st, cur)
	}
	if cur != nil {
		switch cur.kind {
		case reqStop:
			u.finishIfStopped(cur)
		case reqRestart:
			if cur.opts.StopFirst && len(u.draining) == 0 && cur.slot == 0 && cur.newProc == nil && !cur.aborted {
				u.restartStep(cur)
			} else {
				u.finishIfRestarted(cur)
			}
		case reqStart:
			if slotted && !p.ready {
				cur.failure = "exited before ready: " + st.String()
				cur.tail = p.Tail()
			}
			u.finishIfStarted(cur)
		}
	}
}

func (u *unit) finishIfStarted(o *op) {
	if (u.preToken != 0 || u.posts > 0) && o.failure == "" {
		return // ExecStartPre= or ExecStartPost= under way
	}
	n, ready := 0, 0
	for _, p := range u.slots {
		if p != nil {
			n++
			if p.ready {
				ready++
			}
		}
	}
	if o.failure != "" && len(u.draining) == 0 {
		u.finishOp(o)
	} else if n > 0 && ready == n || n == 0 && len(u.draining) == 0 {
		if n == 0 && o.failure == "" {
			o.failure = "no process running"
		}
		u.finishOp(o)
	}
}

// unexpectedExit records an exit sockd did not ask for and applies Restart=.
func (u *unit) unexpectedExit(p *proc, st children.ExitStatus, cur *op) {
	u.lastExit = st.String()
	clean := u.cleanExit(st)
	switch {
	case p.timedOut:
		u.result = "timeout"
	case p.watchdog:
		u.result = "watchdog"
	case clean:
		u.result = "success"
	case st.Signal != 0:
		u.result = "signal"
	default:
		u.result = "exit-code"
	}
	if u.exiting || cur != nil && cur.kind == reqStop {
		return
	}
	if u.restartPolicy(st, clean, p) {
		u.tokens++
		u.autoToken = u.tokens
		d := u.svc.RestartSec
		u.log.Info().Dur("RestartSec", d).Msg("scheduling restart")
		u.after(d, timerFired{kind: "auto-restart", token: u.autoToken})
	}
}

// cleanExit is systemd's notion of a clean exit: code 0, SIGHUP, SIGINT,
// SIGTERM, SIGPIPE, or what SuccessExitStatus= lists.
func (u *unit) cleanExit(st children.ExitStatus) bool {
	if st.Err != nil {
		return false
	}
	if st.Signal == 0 {
		if st.Code == 0 {
			return true
		}
		for _, c := range u.svc.SuccessExitStatus {
			if c == st.Code {
				return true
			}
		}
		return false
	}
	switch st.Signal {
	case 1, 2, 13, 15:
		return true
	}
	for _, s := range u.svc.SuccessSignals {
		if s == st.Signal {
			return true
		}
	}
	return false
}

func (u *unit) restartPolicy(st children.ExitStatus, clean bool, p *proc) bool {
	abnormal := !clean && (st.Signal != 0 || p.timedOut || p.watchdog)
	switch u.svc.Restart {
	case "always":
		return true
	case "on-success":
		return clean
	case "on-failure":
		return !clean
	case "on-abnormal":
		return abnormal
	case "on-abort":
		return !clean && st.Signal != 0
	case "on-watchdog":
		return p.watchdog
	}
	return false
}

// handleNotify applies one sd_notify message from one of the unit's
// processes, as NotifyAccess= allows.
func (u *unit) handleNotify(n children.Notification) {
	p := u.notifySender(n.Pid)
	if p == nil {
		u.log.Debug().Int("pid", n.Pid).Str("msg", n.Raw).Msg("notify message from a foreign process ignored")
		return
	}
	if v, ok := n.Fields["MAINPID"]; ok {
		var pid int
		if _, err := fmt.Sscan(v, &pid); err == nil && pid > 0 && pid != p.mainPid {
			if p.mainPid != p.Pid() {
				u.pids.remove(p.mainPid, u)
			}
			p.mainPid = pid
			for _, n := range u.pids.add(pid, u) {
				u.deliverNotify(n)
			}
		}
	}
	if v, ok := n.Fields["STATUS"]; ok {
		p.status = v
	}
	if n.Fields["WATCHDOG"] == "1" && !p.stopping {
		u.armWatchdog(p)
	}
	if n.Fields["RELOADING"] == "1" {
		p.announced = "reloading" // until READY=1 again
	}
	if n.Fields["STOPPING"] == "1" {
		p.announced = "stopping" // it exits soon; Restart= decides then
	}
	if n.Fields["READY"] == "1" && p.announced == "reloading" {
		p.announced = ""
	}
	if n.Fields["READY"] == "1" && !p.ready && !p.stopping {
		u.log.Info().Int("pid", p.Pid()).Msg("ready")
		u.becameReady(p)
		if len(u.ops) > 0 && u.ops[0].kind == reqStart {
			u.finishIfStarted(u.ops[0])
		}
	}
}

// notifySender finds the process a notify message came from, as
// NotifyAccess= allows: main (the main pid), exec/all (anything in the
// process group of one of the unit's processes).
func (u *unit) notifySender(pid int) *proc {
	access := u.svc.NotifyAccess
	if access == "" || access == "none" || pid <= 0 {
		return nil
	}
	all := append(append([]*proc{}, u.slots...), u.draining...)
	if len(u.ops) > 0 && u.ops[0].newProc != nil {
		all = append(all, u.ops[0].newProc)
	}
	for _, p := range all {
		if p != nil && (p.mainPid == pid || p.Pid() == pid) {
			return p
		}
	}
	if access == "main" {
		return nil
	}
	pgid, err := getpgid(pid)
	if err != nil {
		return nil
	}
	for _, p := range all {
		if p != nil && p.Pid() == pgid {
			return p
		}
	}
	return nil
}

// reloadApp runs ExecReload= (or sends SIGHUP) to the running processes,
// off the actor, and answers r when done.
func (u *unit) reloadApp(r *request) {
	var pids []int
	for _, p := range u.slots {
		if p != nil {
			pids = append(pids, p.mainPid)
		}
	}
	if len(pids) == 0 {
		r.reply <- reply{err: fmt.Errorf("reload-app %s: not running: %w", u.name, api.ErrConflict)}
		return
	}
	svc, cmds := u.svc, u.svc.ExecReload
	env, _ := u.environment()
	logLine := u.helperLog("ExecReload")
	go func() {
		var errs []error
		for _, pid := range pids {
			if len(cmds) == 0 {
				if err := killPid(pid, 1); err != nil {
					errs = append(errs, err)
				}
				continue
			}
			// Bounded by TimeoutStartSec=, as systemd bounds a reload.
			if err := runHelpers(context.Background(), svc, env, "ExecReload", cmds, pid, svc.TimeoutStartSec, logLine); err != nil {
				errs = append(errs, err)
			}
		}
		err := errors.Join(errs...)
		if err != nil {
			err = fmt.Errorf("reload-app %s: %w: %w", u.name, err, api.ErrFailed)
		}
		r.reply <- reply{err: err}
	}()
}

func (u *unit) status() api.UnitStatus {
	st := api.ServiceStatus{
		State:       u.state,
		Pids:        []int{},
		Generation:  u.gen,
		Since:       u.since,
		Restarts:    u.restarts,
		LastExit:    u.lastExit,
		Result:      u.result,
		Instances:   len(u.slots),
		LastRestart: u.lastRst,
	}
	for _, p := range u.slots {
		if p != nil {
			st.Pids = append(st.Pids, p.Pid())
			if st.MainPID == 0 {
				st.MainPID = p.mainPid
			}
			if p.status != "" {
				st.Status = p.status
			}
		}
	}
	if len(u.ops) > 0 && u.ops[0].newProc != nil {
		st.Pids = append(st.Pids, u.ops[0].newProc.Pid())
	}
	for _, p := range u.draining {
		st.Pids = append(st.Pids, p.Pid())
	}
	switch {
	case u.waitCancel != nil:
		st.SubState = "listening"
	case len(u.ops) > 0:
		st.SubState = u.ops[0].kind.String()
	case u.running() > 0:
		st.SubState = "running"
		for _, p := range u.slots {
			if p != nil && p.announced != "" {
				st.SubState = p.announced // RELOADING=1 or STOPPING=1
			}
		}
	case u.autoToken != 0:
		st.SubState = "auto-restart"
	case u.failed:
		st.SubState = "failed"
	default:
		st.SubState = "dead"
	}
	return api.UnitStatus{Name: u.name, Service: st, Sockets: u.sockSt}
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
