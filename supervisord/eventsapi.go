package supervisord

// The API's side of the event stream (Daemon.Events), the events of
// Accept=yes instances, and the load errors List and Status show: the
// errors of a unit's files at the last reload, for a unit that runs on as
// it was loaded before, and for one that never loaded (listed as failed,
// sub-state "load-error").

import (
	"context"
	"sort"
	"strings"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/units"
	"golang.org/x/sys/unix"
)

// subLoadError is the sub-state (and result) of a unit whose files never
// loaded.
const subLoadError = "load-error"

// Events subscribes to the events of a unit ("" for all), found as other
// API calls find it, or among the units not opened or never loaded; see
// api.Backend.
func (d *Daemon) Events(_ context.Context, name string) (<-chan api.UnitEvent, func(), error) {
	full := ""
	if name != "" {
		h, err := d.lookup(name)
		switch {
		case err == nil:
			full = h.name
		default:
			st := d.busyStatus(name)
			if len(st) == 0 {
				st = d.unloadedStatus(name)
			}
			if len(st) != 1 {
				return nil, nil, err
			}
			full = st[0].Name
		}
	}
	ch, cancel := d.subscribeEvents(full)
	return ch, cancel, nil
}

// serviceOf is the service a diagnostic's unit belongs to: itself for a
// service, the service a socket unit activates (as running, else by its
// name), "" for anything else (sockets.target).
func (d *Daemon) serviceOf(unit string) string {
	switch {
	case strings.HasSuffix(unit, ".service"):
		return unit
	case strings.HasSuffix(unit, ".socket"):
		d.mu.Lock()
		svc := d.sockets[unit]
		d.mu.Unlock()
		if svc != "" {
			return svc
		}
		return strings.TrimSuffix(unit, ".socket") + ".service"
	}
	return ""
}

// setLoadErrors keeps the errors of the last reload by the service they
// belong to, replacing the previous reload's: a fixed file clears them.
func (d *Daemon) setLoadErrors(diags []units.Diagnostic) {
	errs := map[string][]api.Diagnostic{}
	for _, dg := range diags {
		svc := d.serviceOf(dg.Unit)
		if dg.Severity != units.Error || svc == "" {
			continue
		}
		errs[svc] = append(errs[svc], api.Diagnostic{File: dg.File, Line: dg.Line, Option: dg.Option,
			Severity: "error", Message: dg.Msg, Text: dg.Error()})
	}
	for _, ds := range errs { // the same order at each reload
		sort.SliceStable(ds, func(i, j int) bool {
			if ds[i].File != ds[j].File {
				return ds[i].File < ds[j].File
			}
			return ds[i].Line < ds[j].Line
		})
	}
	d.mu.Lock()
	d.loadErrs = errs
	d.mu.Unlock()
}

// withLoadErrors adds the unit's load errors to st.
func (d *Daemon) withLoadErrors(st api.UnitStatus) api.UnitStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	st.LoadErrors = d.loadErrs[st.Name]
	return st
}

// unloadedStatus lists, as failed with sub-state and result
// "load-error", the services with load errors that neither run nor wait
// for their sockets (busy.go): their files never loaded. name, if not
// "", picks one ("app", "app.service" or "app.socket").
func (d *Daemon) unloadedStatus(name string) []api.UnitStatus {
	busy := map[string]bool{}
	for _, st := range d.busyStatus("") {
		busy[st.Name] = true
	}
	if s, ok := strings.CutSuffix(name, ".socket"); ok {
		name = s + ".service"
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []api.UnitStatus
	for svc, errs := range d.loadErrs {
		if d.units[svc] != nil || busy[svc] {
			continue
		}
		if name != "" && svc != name && strings.TrimSuffix(svc, ".service") != name {
			continue
		}
		out = append(out, api.UnitStatus{Name: svc, Sockets: []api.SocketStatus{}, LoadErrors: errs,
			Service: api.ServiceStatus{State: api.StateFailed, SubState: subLoadError, Pids: []int{},
				Result: subLoadError, LastExit: errs[0].Text}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// publish sends an event of the acceptor (Unit: the template, as the
// API shows it).
func (a *acceptor) publish(ev api.UnitEvent) {
	ev.Unit = a.name
	a.events.publish(ev)
}

// publishSpawned sends "spawned" for an instance (Message: its name).
func (a *acceptor) publishSpawned(in *instance, listen string) {
	a.publish(api.UnitEvent{Time: in.pr.started, Kind: api.EventSpawned, Pid: in.pr.Pid(), Gen: a.gen,
		Listen: listen, Message: in.name})
}

// publishExited sends "exited" for an instance: its code or signal, and
// result.
func (a *acceptor) publishExited(in *instance, st children.ExitStatus, result string) {
	ev := api.UnitEvent{Kind: api.EventExited, Pid: in.pr.Pid(), Gen: a.gen, Result: result, Message: in.name}
	switch {
	case st.Err != nil:
		ev.Message += ": " + st.Err.Error()
	case st.Signal != 0:
		ev.Signal = unix.SignalName(st.Signal)
	default:
		code := st.Code
		ev.Code = &code
	}
	a.publish(ev)
}
