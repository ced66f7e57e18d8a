package supervisord

// Reloading the unit directory: what changed, and bringing the running
// units in line without stopping those that serve.

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sockd/sockd/activation"
	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/units"
)

// reload reads the unit directory and brings the running units in line:
// new units start, removed ones stop, changed services apply at their
// next start, socket options the kernel can change on an open socket
// change in place (updateSockets) while the unit runs, and other changed
// sockets re-open. A unit whose files now have errors
// (or are refused as writable by a user other than root) keeps running
// as it was. Units to remove (and those whose sockets
// change, which must close before they re-open) stop concurrently,
// bounded by ctx, by Shutdown, and each by twice its TimeoutStopSec=.
func (d *Daemon) reload(ctx context.Context) (api.ReloadResult, error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	// The fd holder's answers to the copies this reload gave it (put
	// without waiting, one round trip each otherwise), and its refusals.
	defer d.keep.flush()
	var res api.ReloadResult
	if err := d.life.Err(); err != nil {
		return res, fmt.Errorf("reload: sockd is shutting down: %w", api.ErrConflict)
	}
	if d.loads == nil {
		d.loads = units.NewCache()
	}
	parsed := d.loads.Parsed()
	set, diags, err := units.LoadOptions{AllowUntrusted: d.cfg.AllowUntrustedUnits, Cache: d.loads}.LoadDir(d.cfg.UnitsDir)
	if err != nil {
		err = fmt.Errorf("load %s: %w", d.cfg.UnitsDir, err)
		d.events.publish(api.UnitEvent{Kind: api.EventReload, Outcome: api.ReloadFailed, Message: err.Error()})
		return res, err
	}
	d.log.Debug().Int64("parsed", d.loads.Parsed()-parsed).Int("units", len(set.Services)).Msg("unit files read")
	diags = append(diags, d.resourceDiagnostics(set)...)
	d.setLoadErrors(diags)       // status and list show them (eventsapi.go)
	socksOf := set.SocketIndex() // each service's sockets, in one pass
	d.planFDs(set, socksOf)      // fdbudget.go
	broken := map[string]bool{}
	for _, dg := range diags {
		ev := d.log.Warn()
		sev := "warning"
		if dg.Severity == units.Error {
			ev, sev = d.log.Error(), "error"
			broken[dg.Unit] = true
		}
		ev.Str("file", dg.File).Int("line", dg.Line).Str("option", dg.Option).Msg(dg.Msg)
		if dg.Severity == units.Error {
			// A socket's error is its service's: a subscriber follows the service.
			le := api.UnitEvent{Unit: d.serviceOf(dg.Unit), Kind: api.EventLoadError, File: dg.File, Line: dg.Line, Message: dg.Error()}
			if strings.HasSuffix(dg.Unit, ".socket") {
				le.Socket = dg.Unit
			}
			if le.Unit == "" {
				le.Unit = dg.Unit
			}
			d.events.publish(le)
		}
		res.Diagnostics = append(res.Diagnostics, api.Diagnostic{File: dg.File, Line: dg.Line, Option: dg.Option,
			Severity: sev, Message: dg.Msg, Text: dg.Error()})
	}
	want := map[string]bool{}
	names := make([]string, 0, len(set.Services))
	for name := range set.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	var added, reopen []*units.Service
	var reopenOld []*handle
	for _, name := range names {
		svc := set.Services[name]
		socks := socksOf[name]
		if svc.Template && !hasAcceptSocket(socks) {
			continue // instantiated only by an Accept=yes socket (accept.go)
		}
		want[name] = true
		if dep := brokenDependency(svc, broken); dep != "" {
			// Its socket did not load: starting it as a socket-less
			// service would be wrong. A running old version stays.
			d.log.Error().Str("unit", name).Str("socket", dep).Msg("not loaded: its socket has errors")
			continue
		}
		d.mu.Lock()
		old := d.units[name]
		d.mu.Unlock()
		if old == nil {
			added = append(added, svc)
			continue
		}
		changed := false
		// The service first: a restart onto new sockets runs the new
		// definition. A unit whose files did not change is the very
		// value of the last load (units.Cache): nothing to compare, no
		// call to its actor.
		if old.svcSnapshot != svc && !reflect.DeepEqual(old.svcSnapshot, svc) {
			old.svcSnapshot = svc
			old.logs.setBudget(logBudget(svc)) // X-LogBufferBytes=
			if _, err := old.call(ctx, &request{kind: reqUpdate, svc: svc}); err == nil {
				changed = true
			}
		}
		if !sameSockets(old.socketDefs(), socks) {
			if d.updateSockets(old, socks) {
				res.Changed = append(res.Changed, name)
				continue
			}
			err := d.changeSockets(ctx, old, socks)
			if errors.Is(err, errReopen) {
				d.log.Info().Str("unit", name).Str("why", err.Error()).Msg("sockets re-open: the unit stops and starts again")
				reopen, reopenOld = append(reopen, svc), append(reopenOld, old)
				continue
			}
			if err != nil {
				d.log.Error().Err(err).Str("unit", name).Msg("socket change not applied: the unit keeps its sockets")
				res.Diagnostics = append(res.Diagnostics, api.Diagnostic{File: svc.File, Severity: "error",
					Message: err.Error(), Text: err.Error()})
				continue
			}
			changed = true
		}
		if changed {
			res.Changed = append(res.Changed, name)
		}
	}
	d.mu.Lock()
	var gone []*handle
	for name, u := range d.units {
		if !want[name] && !broken[name] && !brokenSocket(u, broken) {
			gone = append(gone, u)
		}
	}
	d.mu.Unlock()
	sort.Slice(gone, func(i, j int) bool { return gone[i].name < gone[j].name })
	stopped, stopErr := d.removeAll(ctx, append(append([]*handle{}, gone...), reopenOld...))
	isStopped := map[string]bool{}
	for _, n := range stopped {
		isStopped[n] = true
	}
	for _, u := range gone {
		if isStopped[u.name] {
			res.Removed = append(res.Removed, u.name)
		}
	}
	for _, st := range d.Failed() {
		if !want[st.Name] {
			d.bound(st.Name) // gone from the unit files
		}
	}
	for _, svc := range added {
		if err := d.addUnit(svc, socksOf[svc.Name]); err != nil {
			d.addFailed(svc, err) // listed as failed (busy.go)
			res.Diagnostics = append(res.Diagnostics, api.Diagnostic{File: svc.File, Severity: "error",
				Message: err.Error(), Text: err.Error()})
			continue
		}
		res.Added = append(res.Added, svc.Name)
	}
	for _, svc := range reopen {
		if !isStopped[svc.Name] {
			continue // still stopping: its sockets are still open
		}
		if err := d.addUnit(svc, socksOf[svc.Name]); err != nil {
			d.addFailed(svc, err) // listed as failed (busy.go)
			d.log.Error().Err(err).Str("unit", svc.Name).Msg("unit not restarted")
			continue
		}
		res.Changed = append(res.Changed, svc.Name)
	}
	sort.Strings(res.Changed)
	outcome := api.ReloadSuccess
	for _, dg := range res.Diagnostics {
		if dg.Severity == "error" {
			outcome = api.ReloadUnitErrors
		}
	}
	err = ctx.Err()
	if err == nil {
		err = stopErr
	}
	if err != nil {
		outcome = api.ReloadFailed
	}
	d.events.publish(api.UnitEvent{Kind: api.EventReload, Outcome: outcome, Message: fmt.Sprintf("added %v, removed %v, changed %v, %d diagnostics",
		res.Added, res.Removed, res.Changed, len(res.Diagnostics))})
	if err != nil {
		return res, fmt.Errorf("reload: %w", err)
	}
	return res, nil
}

// removeUnitBounded removes u for a reload, giving its processes twice
// their TimeoutStopSec= (5 min when infinite) to stop: a process that
// ignores SIGTERM under SendSIGKILL=no must not hold every later reload.
// Past that the unit is left as it is and the error says so.
// ctx (the reload's caller) and Shutdown cut the wait short too.
func (d *Daemon) removeUnitBounded(ctx context.Context, u *handle) error {
	limit := 5 * time.Minute
	if t := u.svcSnapshot.TimeoutStopSec; t > 0 && t != units.Infinity {
		limit = 2*t + 30*time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	stop := context.AfterFunc(d.life, cancel)
	defer stop()
	return d.removeUnit(ctx, u)
}

// removeAll removes us concurrently, as removeUnitBounded, and returns
// the names of those it removed, and an error for those it left running.
func (d *Daemon) removeAll(ctx context.Context, us []*handle) ([]string, error) {
	errs := make([]error, len(us))
	var wg sync.WaitGroup
	for i, u := range us {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.removeUnitBounded(ctx, u)
		}()
	}
	wg.Wait()
	var gone []string
	for i, u := range us {
		if errs[i] != nil {
			d.log.Error().Err(errs[i]).Str("unit", u.name).Msg("stop for reload: left running")
			continue
		}
		gone = append(gone, u.name)
	}
	return gone, errors.Join(errs...)
}

// removeUnit stops u's processes, ends its actor and closes its sockets.
func (d *Daemon) removeUnit(ctx context.Context, u *handle) error {
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
	stopping := d.closed
	d.mu.Unlock()
	if !stopping {
		// At sockd's own stop the keepers keep them: systemd's fd store
		// hands them to the next sockd if this is a restart, and forgets
		// them at a real stop; the fd holder is shut down.
		d.keep.remove(u.lsNames...)
	}
	d.state.set(u.name, unitState{})
	d.events.publish(api.UnitEvent{Unit: u.name, Kind: api.EventRemoved})
	d.mu.Lock()
	if d.units[u.name] == u {
		delete(d.units, u.name)
		u.logs.close()        // its followers end
		d.fds.release(u.name) // its sockets are closed
	}
	for _, s := range u.socks {
		if d.sockets[s.Name] == u.name {
			delete(d.sockets, s.Name)
		}
	}
	d.mu.Unlock()
	return nil
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

func brokenSocket(u *handle, broken map[string]bool) bool {
	for _, s := range u.socketDefs() {
		if broken[s.Name] {
			return true
		}
	}
	return false
}

// changeSockets hands h's actor its new socket units (sockets.go), and
// keeps the Daemon's index of socket names in line.
func (d *Daemon) changeSockets(ctx context.Context, h *handle, socks []*units.Socket) error {
	before := h.socketDefs()
	if _, err := h.call(ctx, &request{kind: reqSockets, socks: socks}); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range before {
		if d.sockets[s.Name] == h.name {
			delete(d.sockets, s.Name)
		}
	}
	for _, s := range socks {
		d.sockets[s.Name] = h.name
	}
	return nil
}

// updateSockets applies to h's open sockets the options of socks that
// changed from h.socks, if every change is one activation.InPlace allows,
// and makes socks h's definitions: the unit, its processes and its
// sockets stay as they are. It reports false when a change needs new
// sockets, or when one could not be applied (then some options may be
// applied and others not, and the re-open that follows sets them all).
func (d *Daemon) updateSockets(h *handle, socks []*units.Socket) bool {
	cur := h.socketDefs()
	if len(cur) != len(socks) {
		return false
	}
	for i, s := range socks {
		if !activation.InPlace(cur[i], s) {
			return false
		}
	}
	ls, names := h.listeners()
	byName := make(map[string]*activation.Listener, len(ls))
	for i, n := range names {
		byName[n] = ls[i]
	}
	for _, s := range socks {
		for i := range s.Listens {
			l := byName[listenName(s.Name, i)]
			if l == nil {
				continue // Sockets= of an Accept=yes template: never opened
			}
			if err := l.Update(s); err != nil {
				d.log.Warn().Err(err).Str("unit", h.name).Str("socket", s.Name).
					Msg("socket options not applied in place: re-opening the sockets")
				return false
			}
			warnSocketOptions(d.log, h.name, l)
		}
	}
	h.mu.Lock()
	h.socks = socks
	h.mu.Unlock()
	d.log.Info().Str("unit", h.name).Msg("socket options applied in place")
	return true
}

// sameSockets compares socket units, ignoring line numbers.
func sameSockets(a, b []*units.Socket) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] == b[i] {
			continue // the same load's value (units.Cache)
		}
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
