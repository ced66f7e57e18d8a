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
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sockd/sockd/activation"
	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/units"
)

// Config is what a Daemon needs to run.
type Config struct {
	// UnitsDir is the directory of unit files.
	UnitsDir string
	// RuntimeDir holds sockd's NOTIFY_SOCKETs; "" makes a temporary one,
	// removed at Shutdown.
	RuntimeDir string
	Log        zerolog.Logger
	// Observe, if set, is called by a unit's actor whenever the unit's
	// state, sub-state or processes change. It must not block.
	Observe func(unit string, st api.ServiceStatus)
	// Reloaded, if set, is called after Watch has reloaded the directory.
	Reloaded func(api.ReloadResult)
}

// Daemon supervises the units of one directory.
type Daemon struct {
	cfg      Config
	log      zerolog.Logger
	runDir   string
	ownRun   bool
	reloadMu sync.Mutex // one reload at a time

	pids       *pidTable
	waiter     *activation.Waiter     // waits for first connections, for all units
	notify     *children.NotifySocket // the NOTIFY_SOCKET of every unit
	notifyDone chan struct{}

	mu      sync.Mutex // guards the maps below
	units   map[string]*unit
	sockets map[string]string // socket unit name → service name
	closed  bool
}

var _ api.Backend = (*Daemon)(nil)

// New returns a Daemon for cfg; Open loads and runs the units.
func New(cfg Config) *Daemon {
	return &Daemon{cfg: cfg, log: cfg.Log, units: map[string]*unit{}, sockets: map[string]string{}, pids: newPidTable()}
}

// Open loads the unit directory, opens every socket and starts each
// unit's actor. Problems of single units are logged and leave those
// units out; the error is for a directory that cannot be read at all.
func (d *Daemon) Open() error {
	d.runDir = d.cfg.RuntimeDir
	if d.runDir == "" {
		dir, err := os.MkdirTemp("", "sockd-")
		if err != nil {
			return err
		}
		d.runDir, d.ownRun = dir, true
	} else if err := os.MkdirAll(d.runDir, 0o755); err != nil {
		return err
	}
	w, err := activation.NewWaiter()
	if err != nil {
		return err
	}
	d.waiter = w
	if err := d.listenNotify(); err != nil {
		return fmt.Errorf("notify socket: %w", err)
	}
	_, err = d.reload()
	return err
}

// Shutdown stops every unit's processes gracefully, closes every socket
// and removes the socket files sockd created.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	d.mu.Lock()
	d.closed = true
	all := make([]*unit, 0, len(d.units))
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
	if d.ownRun {
		os.RemoveAll(d.runDir)
	}
	return errors.Join(errs...)
}

// removeUnitBounded removes u for a reload, giving its processes twice
// their TimeoutStopSec= (5 min when infinite) to stop: a process that
// ignores SIGTERM under SendSIGKILL=no must not hold every later reload.
// Past that the unit is left as it is and the error says so.
func (d *Daemon) removeUnitBounded(u *unit) error {
	limit := 5 * time.Minute
	if t := u.svcSnapshot.TimeoutStopSec; t > 0 && t != units.Infinity {
		limit = 2*t + 30*time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	return d.removeUnit(ctx, u)
}

// removeUnit stops u's processes, ends its actor and closes its sockets.
func (d *Daemon) removeUnit(ctx context.Context, u *unit) error {
	if _, err := u.call(ctx, &request{kind: reqShutdown}); err != nil && !errors.Is(err, api.ErrNotFound) {
		return err
	}
	select {
	case <-u.quit:
	case <-ctx.Done():
		return fmt.Errorf("stop %s: %w", u.name, ctx.Err())
	}
	u.helpers.Wait() // canceled with the actor; each kills its command
	activation.CloseAll(u.ls)
	d.mu.Lock()
	if d.units[u.name] == u {
		delete(d.units, u.name)
	}
	for _, s := range u.socks {
		if d.sockets[s.Name] == u.name {
			delete(d.sockets, s.Name)
		}
	}
	d.mu.Unlock()
	return nil
}

// reload reads the unit directory and brings the running units in line:
// new units start, removed ones stop, changed services apply at their
// next start, changed sockets re-open. A unit whose files now have errors
// keeps running as it was.
func (d *Daemon) reload() (api.ReloadResult, error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	var res api.ReloadResult
	set, diags, err := units.LoadDir(d.cfg.UnitsDir)
	if err != nil {
		return res, fmt.Errorf("load %s: %w", d.cfg.UnitsDir, err)
	}
	broken := map[string]bool{}
	for _, dg := range diags {
		ev := d.log.Warn()
		sev := "warning"
		if dg.Severity == units.Error {
			ev, sev = d.log.Error(), "error"
			broken[dg.Unit] = true
		}
		ev.Str("file", dg.File).Int("line", dg.Line).Str("option", dg.Option).Msg(dg.Msg)
		res.Diagnostics = append(res.Diagnostics, api.Diagnostic{File: dg.File, Line: dg.Line, Option: dg.Option,
			Severity: sev, Message: dg.Msg, Text: dg.Error()})
	}
	want := map[string]bool{}
	names := make([]string, 0, len(set.Services))
	for name := range set.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		svc := set.Services[name]
		if svc.Template && !hasAcceptSocket(set.SocketsFor(name)) {
			continue // instantiated only by an Accept=yes socket (accept.go)
		}
		want[name] = true
		if dep := brokenDependency(svc, broken); dep != "" {
			// Its socket did not load: starting it as a socket-less
			// service would be wrong. A running old version stays.
			d.log.Error().Str("unit", name).Str("socket", dep).Msg("not loaded: its socket has errors")
			continue
		}
		socks := set.SocketsFor(name)
		d.mu.Lock()
		old := d.units[name]
		d.mu.Unlock()
		switch {
		case old == nil:
			if err := d.addUnit(svc, socks); err != nil {
				d.log.Error().Err(err).Str("unit", name).Msg("unit not started")
				res.Diagnostics = append(res.Diagnostics, api.Diagnostic{File: svc.File, Severity: "error",
					Message: err.Error(), Text: err.Error()})
				continue
			}
			res.Added = append(res.Added, name)
		case !sameSockets(old.socks, socks):
			if err := d.removeUnitBounded(old); err != nil {
				d.log.Error().Err(err).Str("unit", name).Msg("stop for reload")
			}
			if err := d.addUnit(svc, socks); err != nil {
				d.log.Error().Err(err).Str("unit", name).Msg("unit not restarted")
				continue
			}
			res.Changed = append(res.Changed, name)
		case !reflect.DeepEqual(old.svcSnapshot, svc):
			old.svcSnapshot = svc
			if _, err := old.call(context.Background(), &request{kind: reqUpdate, svc: svc}); err == nil {
				res.Changed = append(res.Changed, name)
			}
		}
	}
	d.mu.Lock()
	var gone []*unit
	for name, u := range d.units {
		if !want[name] && !broken[name] && !brokenSocket(u, broken) {
			gone = append(gone, u)
		}
	}
	d.mu.Unlock()
	for _, u := range gone {
		if err := d.removeUnitBounded(u); err != nil {
			d.log.Error().Err(err).Str("unit", u.name).Msg("remove")
		}
		res.Removed = append(res.Removed, u.name)
	}
	return res, nil
}

// brokenDependency names the socket unit of svc (NAME.socket or one in
// Sockets=) that failed to load, or "".
func brokenDependency(svc *units.Service, broken map[string]bool) string {
	own := strings.TrimSuffix(svc.Name, ".service") + ".socket"
	if broken[own] {
		return own
	}
	for _, s := range svc.Sockets {
		if broken[s] {
			return s
		}
	}
	return ""
}

func brokenSocket(u *unit, broken map[string]bool) bool {
	for _, s := range u.socks {
		if broken[s.Name] {
			return true
		}
	}
	return false
}

// sameSockets compares socket units, ignoring line numbers.
func sameSockets(a, b []*units.Socket) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := *a[i], *b[i]
		x.Listens = stripLines(x.Listens)
		y.Listens = stripLines(y.Listens)
		x.File, y.File = "", ""
		x.DropIns, y.DropIns = nil, nil
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

func stripLines(ls []units.Listen) []units.Listen {
	out := make([]units.Listen, len(ls))
	for i, l := range ls {
		l.Line = 0
		out[i] = l
	}
	return out
}

// addUnit opens a unit's sockets and starts its actor.
func (d *Daemon) addUnit(svc *units.Service, socks []*units.Socket) error {
	if svc.Template {
		return d.addAcceptUnit(svc, socks) // accept.go
	}
	var ls []*activation.Listener
	var lsSock []*units.Socket // the socket unit of each listener
	var sockSt []api.SocketStatus
	for _, s := range socks {
		if s.Accept {
			activation.CloseAll(ls)
			return fmt.Errorf("%s: Sockets=%s: an Accept=yes socket is passed to no service, only its connections to instances", svc.Name, s.Name)
		}
		opened, err := activation.Open(s)
		if err != nil {
			activation.CloseAll(ls)
			return err
		}
		for _, l := range opened {
			sockSt = append(sockSt, api.SocketStatus{Unit: s.Name, Type: l.Spec().Kind.String(), Listen: l.Addr(), FDName: l.Name()})
		}
		ls = append(ls, opened...)
		for range opened {
			lsSock = append(lsSock, s)
		}
	}
	u := newUnit(svc.Name, svc, socks, d.log)
	u.observe = d.cfg.Observe
	u.svcSnapshot = svc
	u.ls, u.lsSock, u.sockSt = ls, lsSock, sockSt
	u.pids = d.pids
	u.waiter = d.waiter
	if svc.Type == "notify" || (svc.NotifyAccess != "" && svc.NotifyAccess != "none") || svc.WatchdogSec > 0 {
		u.notifyPath = d.notify.Path()
		// Buffered so that the router never waits for an actor; a few
		// messages per spawn at most (READY=1, STATUS=, MAINPID=).
		u.notifyC = make(chan children.Notification, 16)
	}
	d.mu.Lock()
	d.units[svc.Name] = u
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
func (d *Daemon) lookup(name string) (*unit, error) {
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
	d.mu.Lock()
	all := make([]*unit, 0, len(d.units))
	for _, u := range d.units {
		all = append(all, u)
	}
	d.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return all[i].name < all[j].name })
	out := make([]api.UnitStatus, 0, len(all))
	for _, u := range all {
		rep, err := u.call(ctx, &request{kind: reqStatus})
		if errors.Is(err, api.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rep.status)
	}
	return out, nil
}

// Status returns one unit's status.
func (d *Daemon) Status(ctx context.Context, name string) (api.UnitStatus, error) {
	u, err := d.lookup(name)
	if err != nil {
		return api.UnitStatus{}, err
	}
	rep, err := u.call(ctx, &request{kind: reqStatus})
	return rep.status, err
}

// Start starts a unit's processes now and waits until they are ready.
func (d *Daemon) Start(ctx context.Context, name string) error {
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
	u, err := d.lookup(name)
	if err != nil {
		return err
	}
	_, err = u.call(ctx, &request{kind: reqStop})
	return err
}

// Restart restarts a unit as api.Backend describes.
func (d *Daemon) Restart(ctx context.Context, name string, opts api.RestartOptions, progress func(api.Event)) (api.RestartResult, error) {
	u, err := d.lookup(name)
	if err != nil {
		return api.RestartResult{}, err
	}
	r := &request{kind: reqRestart, opts: opts, reply: make(chan reply, 1)}
	if opts.Wait {
		r.events = make(chan api.Event, 64)
	}
	select {
	case u.reqs <- r:
	case <-u.quit:
		return api.RestartResult{}, fmt.Errorf("unit %s: %w", name, api.ErrNotFound)
	case <-ctx.Done():
		return api.RestartResult{}, ctx.Err()
	}
	for {
		select {
		case ev := <-r.events:
			if progress != nil {
				progress(ev)
			}
		case rep := <-r.reply:
			for {
				select {
				case ev := <-r.events:
					if progress != nil {
						progress(ev)
					}
					continue
				default:
				}
				break
			}
			return rep.result, rep.err
		case <-ctx.Done():
			return api.RestartResult{}, ctx.Err()
		}
	}
}

// ReloadApp asks the unit's processes to reload themselves.
func (d *Daemon) ReloadApp(ctx context.Context, name string) error {
	u, err := d.lookup(name)
	if err != nil {
		return err
	}
	_, err = u.call(ctx, &request{kind: reqReloadApp})
	return err
}

// Reload re-reads the unit directory.
func (d *Daemon) Reload(ctx context.Context) (api.ReloadResult, error) {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return api.ReloadResult{}, fmt.Errorf("reload: sockd is shutting down: %w", api.ErrConflict)
	}
	return d.reload()
}

// Logs returns a unit's last output lines.
func (d *Daemon) Logs(ctx context.Context, name string, n int) ([]api.LogLine, error) {
	u, err := d.lookup(name)
	if err != nil {
		return nil, err
	}
	return u.logs.last(n), nil
}
