package supervisord

// Accept=yes (inetd-style) socket units: sockd accepts every connection
// itself and starts one instance of the template NAME@.service per
// connection, with the connection as fd 3 (systemd.socket(5), Accept=).
//
// An acceptor is the actor of one such unit, an actor of its own kind
// beside unit. The Daemon knows it through its handle, registered under
// the template's name, so every API call reaches it the way it reaches a
// unit. Its instances get their process set-up (processSpec), exit
// judgement (cleanExit) and stop targets (killTargets) from the same
// functions as a unit's processes.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/sockd/sockd/activation"
	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/units"
)

// acceptRetryDelay is the pause after a failed accept (EMFILE, ENOBUFS…)
// before sockd accepts again: the connection stays queued, and accepting
// at once would spin.
const acceptRetryDelay = time.Second

// acceptFDName is the name of the connection fd in LISTEN_FDNAMES, as
// systemd sets it for Accept=yes instances.
const acceptFDName = "connection"

// acceptor runs one Accept=yes socket unit and its instances. The
// handle, log, evs and the limits are set before run starts; run owns
// the rest.
type acceptor struct {
	*handle
	log       zerolog.Logger
	evs       chan any
	start     startFunc
	cg        *unitCG // the socket's cgroup, a leaf per instance; nil: process groups (cgroup.go)
	roots     execRoots
	lockDir   string
	staging   string // the exec helper's staging directory (sandboxSetup)
	observe   func(string, api.ServiceStatus)
	sockSt    []api.SocketStatus
	maxConns  int
	perSource int
	observed  string
	events    *eventBus // spawned and exited of its instances (eventsapi.go)

	// ---- owned by run ----
	svc      *units.Service // the template; reqUpdate replaces it
	insts    []*instance    // live instances, oldest first
	sources  map[string]int // live instances per source (remote IP or Unix peer UID)
	accepted int            // connections that got an instance: the next instance number
	exiting  bool
	cancel   context.CancelFunc // of the accept goroutine, nil if none runs
	done     chan struct{}      // identifies the accept goroutine
	retrying bool               // waiting out acceptRetryDelay
	waits    []*stopWait
	state    string
	since    time.Time
	result   string
	lastExit string
	gen      int
	restarts int
	lastRst  *api.RestartResult
}

// stopWait is a stop or restart waiting for the instances it stopped.
type stopWait struct {
	req     *request
	pending map[*instance]bool
	res     api.RestartResult
	begun   time.Time
}

type acceptResult struct {
	l    *activation.Listener
	conn *os.File
	peer net.Addr
	err  error
	done chan struct{}
}

type instExited struct{ in *instance }

// instKill is TimeoutStopSec= passing for a stopping instance.
type instKill struct{ in *instance }

type acceptRetry struct{}

// hasAcceptSocket reports whether one of socks is Accept=yes.
func hasAcceptSocket(socks []*units.Socket) bool {
	for _, s := range socks {
		if s.Accept {
			return true
		}
	}
	return false
}

// addAcceptUnit opens the Accept=yes socket of the template svc and
// starts its acceptor, registered under the template's name.
func (d *Daemon) addAcceptUnit(svc *units.Service, socks []*units.Socket) error {
	var sock *units.Socket
	for _, s := range socks {
		switch {
		case !s.Accept:
			d.log.Warn().Str("unit", svc.Name).Str("socket", s.Name).
				Msg("Sockets= of an Accept=yes template is ignored: instances get their connection only")
		case sock != nil:
			return fmt.Errorf("%s: more than one Accept=yes socket (%s, %s)", svc.Name, sock.Name, s.Name)
		default:
			sock = s
		}
	}
	if sock == nil {
		return fmt.Errorf("%s: a template is started only by an Accept=yes socket", svc.Name)
	}
	ls, reused, err := activation.Reuse(sock, d.keep.takeSocket(sock.Name, len(sock.Listens)))
	if err != nil {
		return err
	}
	warnSocketOptions(d.log, svc.Name, ls...)
	var lsNames []string
	for i, l := range ls {
		if reused[i] {
			d.keep.putReused(listenName(sock.Name, i), l.File())
		} else {
			d.keep.put(listenName(sock.Name, i), l.File())
		}
		lsNames = append(lsNames, listenName(sock.Name, i))
	}
	var sockSt []api.SocketStatus
	for _, l := range ls {
		sockSt = append(sockSt, api.SocketStatus{Unit: sock.Name, Type: l.Spec().Kind.String(), Listen: l.Addr(), FDName: acceptFDName})
	}
	h := newHandle(svc.Name, svc, socks)
	h.ls, h.lsNames, h.out = ls, lsNames, d.cfg.Output
	a := newAcceptor(h, svc, sock, d.log)
	a.observe, a.sockSt = d.cfg.Observe, sockSt
	a.events = d.events
	a.cg = d.unitCgroup(svc.Name)
	a.start = d.fds.starter(procFDs(a.cg != nil), d.start) // fdbudget.go
	a.roots, a.lockDir = d.roots, filepath.Join(d.runDir, "dynamic-uid")
	a.staging = filepath.Join(d.runDir, "sandbox")
	d.bound(svc.Name)
	d.events.publish(api.UnitEvent{Unit: svc.Name, Kind: api.EventAdded})
	for _, l := range ls {
		d.events.publish(api.UnitEvent{Unit: svc.Name, Kind: api.EventBound, Socket: sock.Name, Listen: l.Addr()})
	}
	d.mu.Lock()
	d.units[svc.Name] = h
	d.sockets[sock.Name] = svc.Name
	d.mu.Unlock()
	go a.run()
	return nil
}

func newAcceptor(h *handle, svc *units.Service, sock *units.Socket, log zerolog.Logger) *acceptor {
	maxConns := sock.MaxConnections
	if maxConns <= 0 {
		maxConns = 64
	}
	return &acceptor{
		handle:    h,
		log:       log.Hook(unitField(h.name)),
		evs:       make(chan any, 16),
		start:     startChild,
		maxConns:  maxConns,
		perSource: sock.MaxConnectionsPerSource,
		svc:       svc,
		sources:   map[string]int{},
		state:     api.StateInactive,
		since:     time.Now(),
	}
}

// run is the acceptor's actor. It ends, closing h.quit, after a
// shutdown once every instance has exited.
func (a *acceptor) run() {
	defer close(a.quit)
	a.settle()
	for !a.exiting || len(a.insts) > 0 {
		select {
		case r := <-a.reqs:
			a.handleRequest(r)
		case e := <-a.evs:
			a.handleEvent(e)
		}
		a.settle()
	}
	a.stopAccepting()
	a.cg.close()
}

// settle runs after every event: it keeps one accept goroutine running
// while there is room for another instance, and records state changes.
func (a *acceptor) settle() {
	want := !a.exiting && !a.retrying && len(a.insts) < a.maxConns
	if want && a.cancel == nil {
		a.startAccepting()
	} else if !want {
		a.stopAccepting()
	}
	st := a.computeState()
	if st != a.state {
		a.state, a.since = st, time.Now()
	}
	if a.observe != nil {
		s := a.status().Service
		key := fmt.Sprint(s.State, s.SubState, s.Pids, s.Result)
		if key != a.observed {
			a.observed = key
			a.observe(a.name, s)
		}
	}
}

func (a *acceptor) computeState() string {
	switch {
	case len(a.insts) > 0 && (a.exiting || a.stoppingAll()):
		return api.StateDeactivating
	case len(a.insts) > 0:
		return api.StateActive
	}
	return api.StateInactive
}

func (a *acceptor) stoppingAll() bool {
	for _, in := range a.insts {
		if !in.stopping {
			return false
		}
	}
	return true
}

// startAccepting starts the goroutine that waits for a connection on
// any of the unit's listeners (through the netpoller), accepts it and
// hands it to the actor. One runs at a time; it accepts one connection.
func (a *acceptor) startAccepting() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	a.cancel, a.done = cancel, done
	ls := a.ls
	go func() {
		defer close(done)
		l, err := activation.Wait(ctx, ls)
		if ctx.Err() != nil {
			return
		}
		res := acceptResult{l: l, err: err, done: done}
		if err == nil {
			res.conn, res.peer, res.err = l.Accept()
		}
		select {
		case a.evs <- res:
		case <-ctx.Done():
			if res.conn != nil {
				res.conn.Close()
			}
		}
	}()
}

// stopAccepting cancels the accept goroutine. It does not wait for it:
// the goroutine ends by itself (a connection it accepted meanwhile is
// closed, or reaches the actor marked stale and is closed there).
func (a *acceptor) stopAccepting() {
	if a.cancel == nil {
		return
	}
	a.cancel()
	a.cancel, a.done = nil, nil
}

// send delivers e to the actor from another goroutine.
func (a *acceptor) send(e any) {
	select {
	case a.evs <- e:
	case <-a.quit:
	}
}

func (a *acceptor) handleEvent(e any) {
	switch e := e.(type) {
	case acceptResult:
		if e.done != a.done || a.done == nil {
			if e.conn != nil {
				e.conn.Close()
			}
			return
		}
		a.cancel()
		a.cancel, a.done = nil, nil
		if e.err != nil {
			a.log.Error().Err(e.err).Dur("retry", acceptRetryDelay).Msg("accept")
			a.retrying = true
			time.AfterFunc(acceptRetryDelay, func() { a.send(acceptRetry{}) })
			return
		}
		a.connection(e.conn, e.peer, e.l)
	case acceptRetry:
		a.retrying = false
	case instExited:
		a.instExited(e.in)
	case instKill:
		if !e.in.exited {
			_, kill := killTargets(e.in.svc)
			a.log.Warn().Int("pid", e.in.pr.Pid()).Str("instance", e.in.name).Msg("not stopped in time: SIGKILL")
			signalTarget(e.in.pr.p, kill, syscall.SIGKILL)
		}
	}
}

// connection starts the instance for one accepted connection. sockd's
// copy of the connection is closed on return: the instance has its own.
func (a *acceptor) connection(conn *os.File, peer net.Addr, l *activation.Listener) {
	defer conn.Close()
	info, err := connInfo(conn, peer)
	if err != nil {
		a.log.Error().Err(err).Msg("accepted connection dropped")
		return
	}
	if a.exiting {
		return
	}
	if a.perSource > 0 && a.sources[info.source] >= a.perSource {
		a.log.Warn().Str("source", info.source).Int("connections", a.sources[info.source]).
			Int("MaxConnectionsPerSource", a.perSource).Msg("too many connections from one source, dropping connection")
		return
	}
	inst := strconv.Itoa(a.accepted) + "-" + info.instance
	svc, err := a.svc.Instantiate(inst)
	if err != nil {
		a.log.Error().Err(err).Msg("accepted connection dropped")
		a.result, a.lastExit = "resources", err.Error()
		return
	}
	in := &instance{name: svc.Name, svc: svc, source: info.source}
	env, release, err := setUpExec(svc, a.roots, a.lockDir)
	if err != nil {
		a.log.Error().Err(err).Str("instance", svc.Name).Msg("set-up failed; connection dropped")
		a.result, a.lastExit = "resources", err.Error()
		return
	}
	in.execEnv, in.execRelease = env, release
	if svc.Sandbox.PrivateTmp {
		in.privTmp, err = newPrivateTmp(svc.Name)
	}
	var pr *proc
	if err == nil {
		pr, err = a.spawn(in, conn, info)
	}
	if err != nil {
		a.tearDownExec(in)
	}
	if err != nil {
		a.log.Error().Err(err).Str("instance", svc.Name).Msg("spawn failed; connection dropped")
		a.result, a.lastExit = "resources", err.Error()
		return
	}
	in.pr = pr
	a.accepted++
	a.insts = append(a.insts, in)
	a.sources[in.source]++
	a.log.Info().Int("pid", pr.Pid()).Str("instance", in.name).Str("listen", l.Addr()).Msg("spawned")
	a.publishSpawned(in, l.Addr())
}

func (a *acceptor) handleRequest(r *request) {
	switch r.kind {
	case reqStatus:
		st := a.status()
		if r.full {
			st.Service.CgroupPids = a.cg.pids()
		}
		r.reply <- reply{status: st}
	case reqStart:
		// The socket is listening: every connection starts an instance.
		r.reply <- reply{}
	case reqStop, reqRestart:
		a.stopAll(r)
	case reqReloadApp:
		a.reloadApp(r)
	case reqUpdate:
		// The new definition applies to the next connection.
		a.svc = r.svc
		r.reply <- reply{}
	case reqShutdown:
		a.exiting = true
		for _, in := range a.insts {
			a.stopInstance(in)
		}
		r.reply <- reply{}
	default:
		r.reply <- reply{err: fmt.Errorf("%s %s: %w", r.kind, a.name, api.ErrInvalid)}
	}
}

// stopAll stops every instance for a stop or a restart, and answers r
// once they have exited (a restart without Wait is answered at once).
// The socket keeps accepting: new connections get instances of the
// current definition.
func (a *acceptor) stopAll(r *request) {
	w := &stopWait{req: r, pending: map[*instance]bool{}, begun: time.Now(),
		res: api.RestartResult{Unit: a.name, OK: true, Outcome: "done", OldPids: []int{}, NewPids: []int{}}}
	if r.kind == reqRestart {
		a.restarts++
		a.gen++
	}
	for _, in := range a.insts {
		w.pending[in] = true
		w.res.OldPids = append(w.res.OldPids, in.pr.Pid())
		a.stopInstance(in)
		a.emit(w, api.PhaseDraining, in.pr.Pid(), in.name)
	}
	if r.kind == reqRestart && !r.opts.Wait {
		r.reply <- reply{}
		r.reply = nil
	}
	if len(w.pending) == 0 {
		a.finishWait(w)
		return
	}
	a.waits = append(a.waits, w)
}

func (a *acceptor) finishWait(w *stopWait) {
	w.res.Millis = time.Since(w.begun).Milliseconds()
	if w.req.kind == reqRestart {
		res := w.res
		a.lastRst = &res
		a.log.Info().Ints("old", res.OldPids).Int64("ms", res.Millis).Msg("restart: instances stopped; new connections get the current definition")
		a.emit(w, api.PhaseDone, 0, fmt.Sprintf("done in %d ms", res.Millis))
	}
	if w.req.reply != nil {
		w.req.reply <- reply{result: w.res}
	}
}

func (a *acceptor) emit(w *stopWait, phase string, pid int, msg string) {
	if w.req.events == nil {
		return
	}
	select {
	case w.req.events <- api.Event{Time: time.Now(), Phase: phase, Pid: pid, Message: msg}:
	default: // a slow reader loses progress, never the result
	}
}

// reloadApp sends ReloadSignal= (SIGHUP) to every instance; ExecReload=
// does not apply to instances.
func (a *acceptor) reloadApp(r *request) {
	var errs []error
	n := 0
	for _, in := range a.insts {
		if in.stopping {
			continue
		}
		n++
		sig := in.svc.ReloadSignal
		if sig == 0 {
			sig = syscall.SIGHUP
		}
		if err := in.pr.p.Signal(sig); err != nil {
			errs = append(errs, fmt.Errorf("signal %s: %w", in.name, err))
		}
	}
	if n == 0 {
		r.reply <- reply{err: fmt.Errorf("reload-app %s: no instance running: %w", a.name, api.ErrConflict)}
		return
	}
	err := errors.Join(errs...)
	if err != nil {
		err = fmt.Errorf("reload-app %s: %w: %w", a.name, err, api.ErrFailed)
	}
	r.reply <- reply{err: err}
}

func (a *acceptor) status() api.UnitStatus {
	st := api.ServiceStatus{
		State:       a.state,
		Pids:        []int{},
		Generation:  a.gen,
		Since:       a.since,
		Restarts:    a.restarts,
		LastExit:    a.lastExit,
		Result:      a.result,
		Instances:   len(a.insts),
		LastRestart: a.lastRst,
	}
	names := make([]string, 0, len(a.insts))
	for _, in := range a.insts {
		st.Pids = append(st.Pids, in.pr.Pid())
		names = append(names, in.name)
	}
	st.ControlGroup = a.cg.name()
	st.Status = fmt.Sprintf("%d connections (max %d), %d accepted", len(a.insts), a.maxConns, a.accepted)
	if len(names) > 0 {
		st.Status += ": " + strings.Join(names, " ")
	}
	switch {
	case a.retrying:
		st.SubState = "accept-error"
	case len(a.insts) >= a.maxConns:
		st.SubState = "max-connections" // not accepting until one exits
	case len(a.insts) > 0:
		st.SubState = "running"
	case a.exiting:
		st.SubState = "dead"
	default:
		st.SubState = "listening"
	}
	return api.UnitStatus{Name: a.name, Service: st, Sockets: a.sockSt}
}
