package api

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// reset-failed: one unit's route and the route for every failed unit,
// both write routes; the backend gets "" for all; an empty answer is
// [], and errors map as for every route.
func TestResetFailedRoutes(t *testing.T) {
	var (
		mu    sync.Mutex
		calls []string
	)
	ts := startServer(t, &fakeBackend{reset: func(_ context.Context, unit string) ([]string, error) {
		mu.Lock()
		calls = append(calls, "reset-failed "+unit)
		mu.Unlock()
		switch unit {
		case "":
			return []string{"a.service", "b.service"}, nil
		case "app", "app.service":
			return []string{"app.service"}, nil
		case "ok":
			return nil, nil // not failed: nothing to do
		}
		return nil, notFound(unit)
	}})
	c, ctx := ts.client, testCtx(t)

	for _, tc := range []struct {
		unit string
		want []string
	}{
		{"app", []string{"app.service"}},
		{"", []string{"a.service", "b.service"}},
		{"ok", []string{}},
	} {
		got, err := c.ResetFailed(ctx, tc.unit)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ResetFailed(%q) = %q, %v; want %q", tc.unit, got, err, tc.want)
		}
	}
	if _, err := c.ResetFailed(ctx, "nosuch"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ResetFailed(nosuch) = %v, want ErrNotFound", err)
	}
	want := []string{"reset-failed app", "reset-failed ", "reset-failed ok", "reset-failed nosuch"}
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("backend calls %q, want %q", calls, want)
	}

	// The wire: POST only, a JSON object with the list, [] when empty.
	code, _, body := ts.raw(t, "POST", "/v1/units/ok/reset-failed", "{}")
	if code != 200 || strings.TrimSpace(string(body)) != `{"units":[]}` {
		t.Errorf("POST reset-failed of a unit not failed: %d %s", code, body)
	}
	code, _, body = ts.raw(t, "POST", "/v1/reset-failed", "")
	if code != 200 || strings.TrimSpace(string(body)) != `{"units":["a.service","b.service"]}` {
		t.Errorf("POST /v1/reset-failed: %d %s", code, body)
	}
	if code, _, body := ts.raw(t, "GET", "/v1/reset-failed", ""); code != 405 {
		t.Errorf("GET /v1/reset-failed: %d %s, want 405", code, body)
	}
	if code, _, body := ts.raw(t, "POST", "/v1/units/..%2f/reset-failed", "{}"); code != 400 {
		t.Errorf("bad unit name: %d %s, want 400", code, body)
	}
	if code, _, body := ts.raw(t, "POST", "/v1/reset-failed", `{"x":1}`); code != 400 {
		t.Errorf("unknown body field: %d %s, want 400", code, body)
	}

	// Both change state: only admins may use them.
	n := 0
	for _, rt := range routes {
		if strings.Contains(rt.pattern, "reset-failed") {
			n++
			if !rt.write || !strings.HasPrefix(rt.pattern, "POST ") {
				t.Errorf("route %q: write %v, want a POST write route", rt.pattern, rt.write)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d reset-failed routes, want 2", n)
	}
}
