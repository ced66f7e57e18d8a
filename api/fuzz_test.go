package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// FuzzRequest sends arbitrary requests through the handler as root: the
// route and unit name parsing, the JSON bodies of every write route, and
// the logs query. Whatever comes in, the answer is one of the expected
// statuses, an error answer has a JSON error body, and a unit name the
// backend sees comes back the same through the Client's own path.
func FuzzRequest(f *testing.F) {
	for _, seed := range []struct{ method, target, body string }{
		{"GET", "/v1/version", ""},
		{"GET", "/v1/units", ""},
		{"GET", "/v1/units/app", ""},
		{"GET", "/v1/units/web@1.service", ""},
		{"GET", "/v1/units/app/logs?n=5", ""},
		{"GET", "/v1/units/app/logs?n=-1", ""},
		{"POST", "/v1/units/app/start", "{}"},
		{"POST", "/v1/units/app/stop", ""},
		{"POST", "/v1/units/app/restart", `{"wait":true,"stop_first":true}`},
		{"POST", "/v1/units/app/restart", `{"wait":false}`},
		{"POST", "/v1/units/app/restart", `{"wait":"yes"}`},
		{"POST", "/v1/units/app/restart", `{"nope":1}`},
		{"POST", "/v1/units/app/restart", `{"wait":true}{}`},
		{"POST", "/v1/units/app/restart", `[1]`},
		{"POST", "/v1/units/a%2Fb/reload-app", `{"wait":tru`},
		{"POST", "/v1/units/%2E%2E/start", ""},
		{"POST", "/v1/reload", "{}"},
		{"POST", "/v1/reload", "null"},
		{"GET", "/v1/debug/runtime", ""},
		{"PUT", "/v1/units/app", ""},
		{"GET", "/v1//units/x/../y", ""},
	} {
		f.Add(seed.method, seed.target, seed.body)
	}
	f.Fuzz(func(t *testing.T, method, target, body string) {
		if method != "GET" && method != "POST" && method != "PUT" {
			method = "POST"
		}
		var names []string
		unit := func(name string) error {
			names = append(names, name)
			return nil
		}
		b := &fakeBackend{
			list:   func(context.Context) ([]UnitStatus, error) { return nil, nil },
			status: func(_ context.Context, n string) (UnitStatus, error) { return UnitStatus{Name: n}, unit(n) },
			start:  func(_ context.Context, n string) error { return unit(n) },
			stop:   func(_ context.Context, n string) error { return unit(n) },
			restart: func(_ context.Context, n string, opts RestartOptions, progress func(Event)) (RestartResult, error) {
				progress(Event{Phase: "done"})
				return RestartResult{Unit: n, OK: true}, unit(n)
			},
			reloadApp: func(_ context.Context, n string) error { return unit(n) },
			reload:    func(context.Context) (ReloadResult, error) { return ReloadResult{}, nil },
			logs:      func(_ context.Context, n string, _ LogQuery) ([]LogLine, error) { return nil, unit(n) },
			follow:    func(_ context.Context, n string, _ LogQuery) (LogFollower, error) { return nil, unit(n) },
		}
		h := (&Server{Backend: b, Log: zerolog.Nop()}).Handler()
		serve := func(method, target, body string) (*httptest.ResponseRecorder, bool) {
			req, err := http.NewRequest(method, "http://sockd"+target, strings.NewReader(body))
			if err != nil || req.URL.Host != "sockd" {
				return nil, false
			}
			req = req.WithContext(context.WithValue(req.Context(), peerKey{}, Peer{UID: 0}))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec, true
		}
		rec, ok := serve(method, target, body)
		if !ok {
			return
		}
		switch rec.Code {
		case 200, 202:
		case 301, 307, 308: // the mux cleaning the path
			return
		case 400, 404, 405:
			var eb errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error == "" {
				t.Fatalf("%s %s %q: %d with body %q (%v)", method, target, body, rec.Code, rec.Body, err)
			}
			return
		default:
			t.Fatalf("%s %s %q: status %d: %s", method, target, body, rec.Code, rec.Body)
		}
		if len(names) == 0 {
			return
		}
		if len(names) != 1 || names[0] == "" {
			t.Fatalf("%s %s: backend saw names %q", method, target, names)
		}
		// The name round-trips through the client's path building.
		name := names[0]
		names = nil
		p, err := unitPath(name)
		if err != nil {
			t.Fatalf("unitPath(%q): %v", name, err)
		}
		if rec, ok := serve("GET", p, ""); !ok || rec.Code != 200 || len(names) != 1 || names[0] != name {
			t.Fatalf("name %q via %s: saw %q (answer %v)", name, p, names, rec)
		}
	})
}

// FuzzDecodeBody checks decodeBody alone: it never panics, and what it
// accepts into RestartOptions decodes the same once re-encoded.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{"", "{}", `{"wait":true}`, `{"stop_first":1}`, `{"wait":true} x`, "\x00", `{"wait":null}`, " \n{}\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/v1/units/app/restart", strings.NewReader(body))
		var opts RestartOptions
		if err := decodeBody(httptest.NewRecorder(), r, &opts); err != nil {
			if statusFor(err) != http.StatusBadRequest {
				t.Fatalf("%q: %v is not a 400", body, err)
			}
			return
		}
		b, _ := json.Marshal(opts)
		var again RestartOptions
		r = httptest.NewRequest("POST", "/", strings.NewReader(string(b)))
		if err := decodeBody(httptest.NewRecorder(), r, &again); err != nil || again != opts {
			t.Fatalf("%q: %+v re-encoded as %s decodes as %+v, %v", body, opts, b, again, err)
		}
	})
}

// TestUnitNameChecks holds what FuzzRequest found: "%2E%2E" reached the
// backend as the unit "..", a name the Client could not send.
func TestUnitNameChecks(t *testing.T) {
	ts := startServer(t, &fakeBackend{})
	for _, target := range []string{"/v1/units/%2E%2E/start", "/v1/units/%2e", "/v1/units/a%2Fb/logs", "/v1/units/a%00b", "/v1/units/" + strings.Repeat("a", 256)} {
		method := "GET"
		if strings.HasSuffix(target, "/start") {
			method = "POST"
		}
		status, _, body := ts.raw(t, method, target, "")
		if status != 400 || !strings.Contains(string(body), `"field":"unit"`) {
			t.Errorf("%s %s: %d %s", method, target, status, body)
		}
	}
	for _, name := range []string{"", ".", "..", "a/b", "a\x00"} {
		if _, err := ts.client.Status(testCtx(t), name); !errors.Is(err, ErrInvalid) {
			t.Errorf("Status(%q): %v, want ErrInvalid", name, err)
		}
	}
}
