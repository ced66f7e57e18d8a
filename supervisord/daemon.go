// Package supervisord is sockd's policy: it loads the unit directory,
// opens every unit's sockets, and runs one actor goroutine per unit that
// owns that unit's state — lazy start on the first connection,
// readiness, Restart= with a start limit, overlapping restarts with
// rollback, rolling restarts of instances. It implements api.Backend.
package supervisord

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"github.com/sockd/sockd/activation"
	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/internal/cgroup"
	"github.com/sockd/sockd/units"
)

// Config is what a Daemon needs to run.
type Config struct {
	// UnitsDir is the directory of unit files.
	UnitsDir string
	// AllowUntrustedUnits loads, with a warning, unit files and
	// directories a user other than root can write; as root they are
	// otherwise refused (see units.LoadOptions).
	AllowUntrustedUnits bool
	// RuntimeDir holds sockd's NOTIFY_SOCKETs; "" makes a temporary one,
	// removed at Shutdown.
	RuntimeDir string
	Log        zerolog.Logger
	// Observe, if set, is called by a unit's actor whenever the unit's
	// state, sub-state, processes, result, main pid or STATUS= change. It
	// must not block.
	Observe func(unit string, st api.ServiceStatus)
	// OnEvent, if set, is called with every lifecycle event (events.go),
	// synchronously from the goroutine that publishes it (a unit's
	// actor): it must be cheap and must not block. The metrics count
	// with it.
	OnEvent func(api.UnitEvent)
	// Output, if set, gets every line the units' processes print, from
	// the goroutine that reads it (after the unit's log ring has it),
	// in place of a line in Log: the journal (cmd/sockd). It must not
	// keep l's goroutine long: the process's pipe fills meanwhile.
	Output func(l OutputLine)
	// Reloaded, if set, is called after Watch has reloaded the directory.
	Reloaded func(api.ReloadResult)
	// Keepers keep copies of every listening socket and output pipe
	// outside sockd (keep.go); Held is what they gave back at start.
	// With the state file (state.go), a sockd started again after a
	// crash or re-exec takes its sockets and processes back.
	Keepers []FDKeeper
	Held    *Held
	// Keep, if set, is called by Open once the runtime directory is
	// known, and its keepers and held fds are added to the above (the fd
	// holder lives in the runtime directory).
	Keep func(runDir string) ([]FDKeeper, *Held, error)
	// Cgroup is where the units' cgroups are made (cgroup.go): "" or
	// "off" for none (process groups), "auto" for the hierarchy sockd
	// finds, or a cgroup v2 directory.
	Cgroup string
}

// Daemon supervises the units of one directory.
type Daemon struct {
	cfg      Config
	log      zerolog.Logger
	runDir   string
	ownRun   bool
	reloadMu sync.Mutex   // one reload at a time
	loads    *units.Cache // what the last load read (reload.go); under reloadMu
	start    startFunc    // children.Start; tests put a fake here
	roots    execRoots    // of RuntimeDirectory= and friends; tests move them
	// life ends when Shutdown begins: a reload under way stops waiting
	// for the units it removes, and leaves them to Shutdown.
	life    context.Context
	endLife context.CancelFunc

	pids       *pidTable
	waiter     *activation.Waiter     // waits for first connections, for all units
	notify     *children.NotifySocket // the NOTIFY_SOCKET of every unit
	notifyDone chan struct{}

	keep  *keepers
	state *stateWriter
	// recovering is the state file found at Open, while Open adds the
	// units; replace tells to replace the processes taken back (after a
	// crash; not after a re-exec, whose processes are sockd's children).
	recovering *stateFile
	replace    bool
	recovered  bool              // Open found a state file
	busy       busyUnits         // units not opened: address in use, too few fds (busy.go)
	fds        fdBudget          // the units' share of RLIMIT_NOFILE (fdbudget.go)
	events     *eventBus         // lifecycle events to subscribers (events.go)
	trim       *memTrim          // gives the heap back after a burst of exits (trim.go)
	idle       *idleMonitor      // X-IdleTimeoutSec= checks (idle.go)
	cg         *cgroup.Hierarchy // the units' cgroups; nil: process groups (cgroup.go)
	cgOwn      bool              // cg is sockd's own delegated cgroup
	// reexec is set (under mu) while sockd prepares to re-exec; closed
	// and cleared if it does not.
	reexec chan struct{}

	mu      sync.Mutex // guards the maps below
	units   map[string]*handle
	sockets map[string]string // socket unit name → service name
	closed  bool
	// loadErrs are the last reload's errors by service (eventsapi.go).
	loadErrs map[string][]api.Diagnostic
}

var _ api.Backend = (*Daemon)(nil)

// New returns a Daemon for cfg; Open loads and runs the units.
func New(cfg Config) *Daemon {
	life, end := context.WithCancel(context.Background())
	trim := newMemTrim()
	hook := trim.note
	if cfg.OnEvent != nil {
		hook = func(ev api.UnitEvent) {
			trim.note(ev)
			cfg.OnEvent(ev)
		}
	}
	return &Daemon{cfg: cfg, log: cfg.Log, units: map[string]*handle{}, sockets: map[string]string{}, pids: newPidTable(),
		start: startChild, roots: defaultExecRoots(), life: life, endLife: end, events: newEventBus(hook), trim: trim,
		idle: newIdleMonitor(func(err error) { cfg.Log.Warn().Err(err).Msg("X-IdleTimeoutSec=: counting connections") })}
}

// Open loads the unit directory, opens every socket and starts each
// unit's actor. Problems of single units are logged and leave those
// units out; the error is for a directory that cannot be read at all.
func (d *Daemon) Open() error {
	if err := d.openRunDir(); err != nil {
		return err
	}
	// Before the fd holder starts: in sockd's own delegated cgroup, sockd
	// moves into its leaf first, and the holder is born there with it.
	if err := d.openCgroup(); err != nil {
		return err
	}
	w, err := activation.NewWaiter()
	if err != nil {
		return err
	}
	d.waiter = w
	logErr := func(err error) { d.log.Warn().Err(err).Msg("keeping state") }
	keepList, held := d.cfg.Keepers, d.cfg.Held
	gave := map[string][]FDKeeper{} // which keepers hold each name already
	note := func(ks []FDKeeper, h *Held) {
		if h != nil {
			for n := range h.Files {
				gave[n] = append(gave[n], ks...)
			}
		}
	}
	note(keepList, held)
	if d.cfg.Keep != nil {
		more, h, err := d.cfg.Keep(d.runDir)
		if err != nil {
			d.log.Error().Err(err).Msg("no fd holder: sockets and output pipes do not outlive sockd")
		}
		note(more, h)
		keepList = append(append([]FDKeeper(nil), keepList...), more...)
		held = mergeHeld(held, h)
	}
	d.keep = newKeepers(keepList, held, logErr)
	d.keep.gave = gave
	if err := d.listenNotify(); err != nil {
		return fmt.Errorf("notify socket: %w", err)
	}
	st, err := readState(d.runDir)
	if err != nil {
		d.log.Warn().Err(err).Msg("not recovering: units start afresh")
	}
	d.recovering, d.recovered = st, st != nil
	if st != nil {
		d.replace = !(st.Reexec && st.Pid == os.Getpid())
		d.log.Info().Int("units", len(st.Units)).Bool("reexec", !d.replace).Msg("recovering the previous sockd's processes")
	}
	d.state = newStateWriter(d.runDir, logErr)
	d.initFDs()
	_, err = d.reload(context.Background())
	if d.recovering != nil && d.replace {
		var keeperPids []int
		for _, k := range keepList {
			if p, ok := k.(interface{ Pid() int }); ok {
				keeperPids = append(keeperPids, p.Pid())
			}
		}
		d.reportStrays(keeperPids)
	}
	d.recovering = nil
	if gone := d.keep.leftover(); len(gone) > 0 {
		d.log.Info().Strs("names", gone).Msg("closed kept fds no unit took back")
	}
	return err
}

// DefaultRuntimeDir is where sockd keeps its NOTIFY_SOCKET (and, later,
// its state) when it runs as root and Config.RuntimeDir is empty.
const DefaultRuntimeDir = "/run/sockd"

// defaultRuntimeDir is DefaultRuntimeDir; tests move it.
var defaultRuntimeDir = DefaultRuntimeDir

// openRunDir makes the runtime directory: Config.RuntimeDir, else
// /run/sockd as root, else a temporary directory removed at Shutdown.
// It must be searchable by every user: a User= service's sd_notify
// reaches the notify socket in it (the socket is 0666; messages are
// authenticated by the sender's pid, as systemd's are).
func (d *Daemon) openRunDir() error {
	d.runDir = d.cfg.RuntimeDir
	switch {
	case d.runDir == "" && os.Geteuid() == 0:
		d.runDir = defaultRuntimeDir
	case d.runDir == "":
		dir, err := os.MkdirTemp("", "sockd-")
		if err != nil {
			return err
		}
		d.runDir, d.ownRun = dir, true
		return os.Chmod(dir, 0o755)
	}
	if err := os.MkdirAll(d.runDir, 0o755); err != nil {
		return err
	}
	fi, err := os.Lstat(d.runDir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("runtime directory %s: not a directory", d.runDir)
	}
	if dir, mode, ok := searchable(d.runDir); !ok {
		d.log.Warn().Str("runtime_dir", d.runDir).Str("dir", dir).Str("mode", mode.String()).
			Msg("runtime directory not searchable by other users: a User= service cannot reach NOTIFY_SOCKET")
	}
	return nil
}

// searchable reports whether dir and every directory above it let group
// and others search them (a User= or DynamicUser= service must reach the
// notify socket through all of them); if not, it returns the first that
// does not, and its mode.
func searchable(dir string) (string, os.FileMode, bool) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return dir, 0, false
	}
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return p, 0, false
		}
		if fi.Mode().Perm()&0o011 != 0o011 {
			return p, fi.Mode().Perm(), false
		}
		if p == filepath.Dir(p) {
			return "", 0, true
		}
	}
}

// Shutdown stops every unit's processes gracefully, closes every socket
// and removes the socket files sockd created.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.trim.close()
	d.endLife() // a reload under way stops waiting
	d.stopBusy()
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	d.mu.Lock()
	all := make([]*handle, 0, len(d.units))
	for _, u := range d.units {
		all = append(all, u)
	}
	d.mu.Unlock()
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var errs []error
	for _, u := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.removeUnit(ctx, u); err != nil {
				errMu.Lock()
				errs = append(errs, err)
				errMu.Unlock()
			}
		}()
	}
	wg.Wait()
	if d.waiter != nil {
		d.waiter.Close()
	}
	if d.notify != nil {
		d.notify.Close()
		<-d.notifyDone
	}
	d.state.close(len(errs) == 0) // a clean stop leaves nothing to take back
	d.closeCgroup(len(errs) == 0)
	if d.ownRun {
		os.RemoveAll(d.runDir)
	}
	return errors.Join(errs...)
}

// addUnit opens a unit's sockets and starts its actor, if the fds it
// needs fit in the budget (fdbudget.go) or its sockets are taken back
// (a re-exec, a recovery). An error for too many open files names the
// limit.
func (d *Daemon) addUnit(svc *units.Service, socks []*units.Socket) error {
	if err := d.fds.take(svc.Name, unitFDs(svc, socks, d.cg != nil), socketNames(svc, socks), d.holdsSockets(socks)); err != nil {
		return err
	}
	if err := d.openUnit(svc, socks); err != nil {
		d.fds.release(svc.Name)
		return d.fds.explain(err)
	}
	return nil
}

// openUnit is addUnit once the budget has room.
func (d *Daemon) openUnit(svc *units.Service, socks []*units.Socket) error {
	if svc.Template {
		return d.addAcceptUnit(svc, socks) // accept.go
	}
	var ls []*activation.Listener
	var lsSock []*units.Socket // the socket unit of each listener
	var sockSt []api.SocketStatus
	var lsNames []string
	for _, s := range socks {
		if s.Accept {
			activation.CloseAll(ls)
			return fmt.Errorf("%s: Sockets=%s: an Accept=yes socket is passed to no service, only its connections to instances", svc.Name, s.Name)
		}
		opened, reused, err := activation.Reuse(s, d.keep.takeSocket(s.Name, len(s.Listens)))
		if err != nil {
			activation.CloseAll(ls)
			return err
		}
		warnSocketOptions(d.log, svc.Name, opened...)
		n := 0
		for i, l := range opened {
			// A socket taken back is the very one the keepers hold
			// under that name: no need to hand it to them again.
			if reused[i] {
				n++
				d.keep.putReused(listenName(s.Name, i), l.File())
			} else {
				d.keep.put(listenName(s.Name, i), l.File())
			}
			lsNames = append(lsNames, listenName(s.Name, i))
		}
		if n > 0 {
			d.log.Debug().Str("socket", s.Name).Int("reused", n).Msg("took back the previous sockd's sockets")
		}
		for _, l := range opened {
			sockSt = append(sockSt, api.SocketStatus{Unit: s.Name, Type: l.Spec().Kind.String(), Listen: l.Addr(), FDName: l.Name()})
		}
		ls = append(ls, opened...)
		for range opened {
			lsSock = append(lsSock, s)
		}
	}
	h := newHandle(svc.Name, svc, socks)
	h.ls, h.lsNames, h.out = ls, lsNames, d.cfg.Output
	u := newUnit(h, svc, d.log)
	u.enableParking()
	u.keep, u.state = d.keep, d.state
	u.observe = d.cfg.Observe
	u.events = d.events
	u.lsSock, u.sockSt = lsSock, sockSt
	u.pids = d.pids
	u.waiter = d.waiter
	u.idleMon = d.idle
	if d.cg != nil {
		u.cgd = d // its cgroup is made and opened at its first process (cgroup.go)
	}
	u.start = d.fds.starter(procFDs(d.cg != nil), d.start) // fdbudget.go
	u.roots, u.lockDir = d.roots, filepath.Join(d.runDir, "dynamic-uid")
	u.staging = filepath.Join(d.runDir, "sandbox")
	if svc.Type == units.TypeNotify || (svc.NotifyAccess != "" && svc.NotifyAccess != units.NotifyNone) || svc.WatchdogSec > 0 {
		u.notifyPath = d.notify.Path()
	}
	if st, ok := d.recovering.unit(svc.Name); ok {
		u.recoverProcs(st, d.replace)
	}
	d.bound(svc.Name) // no longer waiting for an address, before anyone sees it run
	d.events.publish(api.UnitEvent{Unit: svc.Name, Kind: api.EventAdded})
	for i, l := range ls {
		d.events.publish(api.UnitEvent{Unit: svc.Name, Kind: api.EventBound, Socket: lsSock[i].Name, Listen: l.Addr()})
	}
	d.mu.Lock()
	d.units[svc.Name] = h
	for _, s := range socks {
		d.sockets[s.Name] = svc.Name
	}
	d.mu.Unlock()
	go u.run()
	return nil
}

// lookup finds a unit by "app", "app.service" or one of its sockets'
// names ("app.socket"). An Accept=yes unit is found by its template's
// name ("app@", "app@.service"), or by "app" if there is no app.service.
func (d *Daemon) lookup(name string) (*handle, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if name == "" {
		return nil, fmt.Errorf("unit: empty name: %w", api.ErrInvalid)
	}
	full := name
	if strings.HasSuffix(name, ".socket") {
		full = d.sockets[name]
	} else if !strings.HasSuffix(name, ".service") {
		full = name + ".service"
	}
	u := d.units[full]
	if base, ok := strings.CutSuffix(full, ".service"); u == nil && ok && !strings.Contains(base, "@") {
		u = d.units[base+"@.service"]
	}
	if u == nil {
		return nil, fmt.Errorf("unit %s: %w", name, api.ErrNotFound)
	}
	return u, nil
}

// List returns the status of every unit, sorted by name.
func (d *Daemon) List(ctx context.Context) ([]api.UnitStatus, error) {
	return d.ListUnits(ctx, api.ListOptions{})
}

// ListUnits returns the status of the units that pass opts (Normalized),
// sorted by name (list.go).
func (d *Daemon) ListUnits(ctx context.Context, opts api.ListOptions) ([]api.UnitStatus, error) {
	return d.listUnits(ctx, opts)
}

// Status returns one unit's status.
func (d *Daemon) Status(ctx context.Context, name string) (api.UnitStatus, error) {
	u, err := d.lookup(name)
	if err != nil {
		if w := d.busyStatus(name); len(w) == 1 {
			return d.withLoadErrors(w[0]), nil
		}
		if w := d.unloadedStatus(name); len(w) == 1 {
			return w[0], nil
		}
		return api.UnitStatus{}, err
	}
	rep, err := u.call(ctx, &request{kind: reqStatus, full: true})
	if err != nil {
		return api.UnitStatus{}, err
	}
	sts := []api.UnitStatus{d.withLoadErrors(rep.status)}
	d.fillQueues(sts, []*handle{u})
	return sts[0], nil
}

// Start starts a unit's processes now and waits until they are ready.
func (d *Daemon) Start(ctx context.Context, name string) error {
	if err := d.reexecuting(); err != nil {
		return err
	}
	u, err := d.lookup(name)
	if err != nil {
		return err
	}
	_, err = u.call(ctx, &request{kind: reqStart})
	return err
}

// Stop stops a unit's processes; its sockets stay open, so the next
// connection starts it again.
func (d *Daemon) Stop(ctx context.Context, name string) error {
	if err := d.reexecuting(); err != nil {
		return err
	}
	u, err := d.lookup(name)
	if err != nil {
		return err
	}
	_, err = u.call(ctx, &request{kind: reqStop})
	return err
}

// Restart restarts a unit as api.Backend describes.
func (d *Daemon) Restart(ctx context.Context, name string, opts api.RestartOptions, progress func(api.Event)) (api.RestartResult, error) {
	if err := d.reexecuting(); err != nil {
		return api.RestartResult{Unit: name}, err
	}
	u, err := d.lookup(name)
	if err != nil {
		return api.RestartResult{}, err
	}
	return u.restart(ctx, opts, progress)
}

// ReloadApp asks the unit's processes to reload themselves.
func (d *Daemon) ReloadApp(ctx context.Context, name string) error {
	if err := d.reexecuting(); err != nil {
		return err
	}
	u, err := d.lookup(name)
	if err != nil {
		return err
	}
	_, err = u.call(ctx, &request{kind: reqReloadApp})
	return err
}

// ResetFailed makes a failed unit forget its failure, its start and
// trigger limits and its back-off, as systemctl reset-failed; name ""
// does so for every failed unit. It returns the units that were failed.
// A unit that is not failed (an Accept=yes unit never is) is left alone,
// and is no error. A unit whose sockets cannot be bound again stays
// failed: its error is returned, joined with the others' for name "",
// after every unit was tried.
func (d *Daemon) ResetFailed(ctx context.Context, name string) ([]string, error) {
	if err := d.reexecuting(); err != nil {
		return nil, err
	}
	var hs []*handle
	if name != "" {
		h, err := d.lookup(name)
		if err != nil {
			return nil, err
		}
		hs = append(hs, h)
	} else {
		d.mu.Lock()
		for _, h := range d.units {
			hs = append(hs, h)
		}
		d.mu.Unlock()
		sort.Slice(hs, func(i, j int) bool { return hs[i].name < hs[j].name })
	}
	reset := []string{}
	var errs []error
	for _, h := range hs {
		if strings.HasSuffix(h.name, "@.service") {
			continue // an acceptor: no failed phase
		}
		rep, err := h.call(ctx, &request{kind: reqResetFailed})
		switch {
		case name == "" && errors.Is(err, api.ErrNotFound):
			continue // removed meanwhile
		case ctx.Err() != nil:
			return reset, ctx.Err()
		case err != nil:
			errs = append(errs, err)
		case rep.reset:
			reset = append(reset, h.name)
		}
	}
	return reset, errors.Join(errs...)
}

// Reload re-reads the unit directory. ctx bounds the wait for units it
// removes or whose sockets change; past it they go on stopping and the
// error says so.
func (d *Daemon) Reload(ctx context.Context) (api.ReloadResult, error) {
	if err := d.reexecuting(); err != nil {
		return api.ReloadResult{}, err
	}
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return api.ReloadResult{}, fmt.Errorf("reload: sockd is shutting down: %w", api.ErrConflict)
	}
	return d.reload(ctx)
}

// Logs returns a unit's last output lines that match q.
func (d *Daemon) Logs(ctx context.Context, name string, q api.LogQuery) ([]api.LogLine, error) {
	u, err := d.lookup(name)
	if err != nil {
		return nil, err
	}
	return u.logs.query(q), nil
}

// FollowLogs returns a follower of a unit's log ring (logs.go).
func (d *Daemon) FollowLogs(ctx context.Context, name string, q api.LogQuery) (api.LogFollower, error) {
	u, err := d.lookup(name)
	if err != nil {
		return nil, err
	}
	return u.logs.follow(q), nil
}
