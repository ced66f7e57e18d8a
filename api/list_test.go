package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// listerBackend is a fakeBackend that filters itself, and records the
// options it was given.
type listerBackend struct {
	fakeBackend
	got []ListOptions
}

func (b *listerBackend) ListUnits(ctx context.Context, o ListOptions) ([]UnitStatus, error) {
	b.got = append(b.got, o)
	return nil, nil
}

func listUnits() []UnitStatus {
	return []UnitStatus{
		{Name: "app-1.service", Service: ServiceStatus{State: StateActive, SubState: "running"}, Sockets: []SocketStatus{{Unit: "web.socket"}}},
		{Name: "app-2.service", Service: ServiceStatus{State: StateFailed, SubState: "listening"}},
		{Name: "db.service", Service: ServiceStatus{State: StateInactive, SubState: "listening"}},
	}
}

// TestListFilters: GET /v1/units with name, state and sub, filtered by
// the server for a Backend that does not filter itself; a bad filter is
// a 400 naming the parameter.
func TestListFilters(t *testing.T) {
	ts := startServer(t, &fakeBackend{list: func(context.Context) ([]UnitStatus, error) { return listUnits(), nil }})
	for _, tc := range []struct {
		query  string
		status int
		want   string // names, or the field of the error
	}{
		{"", 200, "app-1.service app-2.service db.service"},
		{"?name=app-*", 200, "app-1.service app-2.service"},
		{"?name=db", 200, "db.service"},
		{"?name=web.socket", 200, "app-1.service"},
		{"?name=db&name=app-1", 200, "app-1.service db.service"},
		{"?name=db,app-2", 200, "app-2.service db.service"},
		{"?state=failed", 200, "app-2.service"},
		{"?state=failed&state=active", 200, "app-1.service app-2.service"},
		{"?sub=listening", 200, "app-2.service db.service"},
		{"?sub=listening&state=inactive", 200, "db.service"},
		{"?name=app-*&sub=running", 200, "app-1.service"},
		{"?name=nothing", 200, ""},
		{"?state=bogus", 400, "state"},
		{"?state=", 400, "state"},
		{"?sub=Running!", 400, "sub"},
		{"?name=[", 400, "name"},
		{"?limit=1", 400, "limit"},
	} {
		code, _, body := ts.raw(t, http.MethodGet, "/v1/units"+tc.query, "")
		if code != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.query, code, body, tc.status)
			continue
		}
		if code != 200 {
			var e errorBody
			if err := json.Unmarshal(body, &e); err != nil || e.Field != tc.want {
				t.Errorf("%s: error %s (%v), want field %q", tc.query, body, err, tc.want)
			}
			continue
		}
		var units []UnitStatus
		if err := json.Unmarshal(body, &units); err != nil || units == nil {
			t.Fatalf("%s: %v: %s", tc.query, err, body)
		}
		var names []string
		for _, u := range units {
			names = append(names, u.Name)
		}
		if got := strings.Join(names, " "); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.query, got, tc.want)
		}
	}

	// The client checks before asking, and filters what it gets.
	_, err := ts.client.ListFiltered(context.Background(), ListOptions{States: []string{"bogus"}})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "state" {
		t.Errorf("ListFiltered with a bad state: %v", err)
	}
	l, err := ts.client.ListFiltered(context.Background(), ListOptions{Names: []string{"app-2"}})
	if err != nil || len(l) != 1 || l[0].Name != "app-2.service" {
		t.Errorf("ListFiltered app-2: %v, %v", l, err)
	}
}

// TestListUnitLister: a Backend that filters gets the options normalized
// (a plain name with .service), and an empty list is [].
func TestListUnitLister(t *testing.T) {
	b := &listerBackend{}
	ts := startServer(t, b)
	code, _, body := ts.raw(t, http.MethodGet, "/v1/units?name=app&name=b*&state=failed", "")
	if code != 200 || string(body) != "[]\n" {
		t.Fatalf("%d %q", code, body)
	}
	if len(b.got) != 1 || !slices.Equal(b.got[0].Names, []string{"app.service", "b*"}) || !slices.Equal(b.got[0].States, []string{StateFailed}) {
		t.Errorf("backend got %+v", b.got)
	}
}

// TestWriteListIsMarshal: the streamed list is byte for byte what
// json.Marshal of the slice gives.
func TestWriteListIsMarshal(t *testing.T) {
	units := listUnits()
	units[0].Service.Status = "<html> & \u2028"
	ts := startServer(t, &fakeBackend{list: func(context.Context) ([]UnitStatus, error) { return units, nil }})
	_, _, body := ts.raw(t, http.MethodGet, "/v1/units", "")
	want, _ := json.Marshal(units)
	if string(body) != string(want)+"\n" {
		t.Errorf("got\n%s\nwant\n%s", body, want)
	}
}
