package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
)

// ListOptions filter GET /v1/units, as systemctl list-units PATTERN...
// --state=... does. Within a field the values are alternatives (a unit
// passes if one matches); the fields combine (a unit passes every field
// given). The zero ListOptions lists every unit.
type ListOptions struct {
	// Names are path.Match patterns ("app-*", "web@*", "app.socket"),
	// matched against the unit's name and the names of its sockets. A
	// pattern with neither a glob character nor a ".service" or ".socket"
	// suffix gets ".service", as systemctl mangles a plain name: "app"
	// is "app.service"; "app-*" matches "app-1.service".
	Names []string
	// States are service states (the State* constants).
	States []string
	// SubStates are sub-states ("running", "listening", "auto-restart", …);
	// one no unit is in matches nothing.
	SubStates []string
}

// states are the values ListOptions.States takes.
var states = []string{StateInactive, StateActivating, StateActive, StateDeactivating, StateFailed}

// UnitLister is what a Backend implements to filter the list itself, so
// that units whose names do not match are not asked for their status.
// The server filters what List returns for a Backend without it.
type UnitLister interface {
	ListUnits(ctx context.Context, opts ListOptions) ([]UnitStatus, error)
}

// Normalize returns o checked, its Names as matched (a plain name with
// ".service"): a bad pattern or an unknown state is a *FieldError naming
// the query parameter ("name", "state", "sub").
func (o ListOptions) Normalize() (ListOptions, error) {
	n := ListOptions{States: o.States, SubStates: o.SubStates}
	for _, p := range o.Names {
		m := mangleName(p)
		if _, err := path.Match(m, ""); err != nil || p == "" {
			return n, &FieldError{Field: "name", Message: fmt.Sprintf("not a glob pattern: %q", p)}
		}
		n.Names = append(n.Names, m)
	}
	for _, s := range o.States {
		if !slices.Contains(states, s) {
			return n, &FieldError{Field: "state", Message: fmt.Sprintf("unknown state %q: one of %s", s, strings.Join(states, ", "))}
		}
	}
	for _, s := range o.SubStates {
		if s == "" || strings.IndexFunc(s, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') }) >= 0 {
			return n, &FieldError{Field: "sub", Message: fmt.Sprintf("not a sub-state: %q", s)}
		}
	}
	return n, nil
}

// mangleName is systemctl's treatment of a pattern: a plain name without
// a unit suffix means the service.
func mangleName(p string) string {
	if strings.ContainsAny(p, `*?[\`) || strings.HasSuffix(p, ".service") || strings.HasSuffix(p, ".socket") {
		return p
	}
	return p + ".service"
}

// MatchName reports whether a unit named name, with sockets named
// sockets, passes the Names filter of a Normalized o.
func (o *ListOptions) MatchName(name string, sockets ...string) bool {
	if len(o.Names) == 0 {
		return true
	}
	for _, p := range o.Names {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
		for _, s := range sockets {
			if ok, _ := path.Match(p, s); ok {
				return true
			}
		}
	}
	return false
}

// MatchState reports whether st passes the States and SubStates filters.
func (o *ListOptions) MatchState(st ServiceStatus) bool {
	return (len(o.States) == 0 || slices.Contains(o.States, st.State)) &&
		(len(o.SubStates) == 0 || slices.Contains(o.SubStates, st.SubState))
}

// Match reports whether u passes every filter of a Normalized o.
func (o *ListOptions) Match(u UnitStatus) bool {
	if !o.MatchState(u.Service) {
		return false
	}
	if len(o.Names) == 0 {
		return true
	}
	socks := make([]string, 0, len(u.Sockets))
	for _, s := range u.Sockets {
		socks = append(socks, s.Unit)
	}
	return o.MatchName(u.Name, socks...)
}

// query is o as the query string of GET /v1/units.
func (o ListOptions) query() string {
	q := url.Values{}
	for _, n := range o.Names {
		q.Add("name", n)
	}
	for _, s := range o.States {
		q.Add("state", s)
	}
	for _, s := range o.SubStates {
		q.Add("sub", s)
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// listOptions parses the query of GET /v1/units. A parameter may repeat
// (state=failed&state=activating) or list values with commas
// (state=failed,activating).
func listOptions(q url.Values) (ListOptions, error) {
	for k := range q {
		if k != "name" && k != "state" && k != "sub" {
			return ListOptions{}, &FieldError{Field: k, Message: "unknown parameter: name, state and sub filter the list"}
		}
	}
	split := func(vs []string) []string {
		var out []string
		for _, v := range vs {
			out = append(out, strings.Split(v, ",")...)
		}
		return out
	}
	o := ListOptions{Names: split(q["name"]), States: split(q["state"]), SubStates: split(q["sub"])}
	return o.Normalize()
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) error {
	opts, err := listOptions(r.URL.Query())
	if err != nil {
		return err
	}
	var units []UnitStatus
	if l, ok := s.Backend.(UnitLister); ok {
		units, err = l.ListUnits(r.Context(), opts)
	} else {
		units, err = s.Backend.List(r.Context())
		units = slices.DeleteFunc(units, func(u UnitStatus) bool { return !opts.Match(u) })
	}
	if err != nil {
		return err
	}
	writeList(w, units)
	return nil
}

// writeList writes units as a JSON array, one unit at a time through a
// buffer it reuses, so that the answer is never held whole in memory.
// The wire types always encode; a unit that did not would end the
// answer short, which the client reports as bad JSON.
func writeList(w http.ResponseWriter, units []UnitStatus) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	bw.WriteByte('[')
	for i := range units {
		buf.Reset()
		if err := enc.Encode(&units[i]); err != nil {
			return
		}
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	}
	bw.WriteString("]\n")
	bw.Flush()
}
