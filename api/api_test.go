package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sockd/sockd/internal/testutil"
)

// fakeBackend is a Backend made of functions; a nil function answers
// ErrNotFound. It is a test seam, not a model of supervisord.
type fakeBackend struct {
	list      func(ctx context.Context) ([]UnitStatus, error)
	status    func(ctx context.Context, unit string) (UnitStatus, error)
	start     func(ctx context.Context, unit string) error
	stop      func(ctx context.Context, unit string) error
	restart   func(ctx context.Context, unit string, opts RestartOptions, progress func(Event)) (RestartResult, error)
	reloadApp func(ctx context.Context, unit string) error
	reload    func(ctx context.Context) (ReloadResult, error)
	logs      func(ctx context.Context, unit string, q LogQuery) ([]LogLine, error)
	follow    func(ctx context.Context, unit string, q LogQuery) (LogFollower, error)
	hold      func(ctx context.Context, unit string, holder Peer) (*Hold, error)
	reset     func(ctx context.Context, unit string) ([]string, error)
	events    func(ctx context.Context, unit string) (<-chan UnitEvent, func(), error)
}

func notFound(unit string) error { return fmt.Errorf("unit %s: %w", unit, ErrNotFound) }

func (f *fakeBackend) List(ctx context.Context) ([]UnitStatus, error) {
	if f.list == nil {
		return nil, nil
	}
	return f.list(ctx)
}

func (f *fakeBackend) Status(ctx context.Context, unit string) (UnitStatus, error) {
	if f.status == nil {
		return UnitStatus{}, notFound(unit)
	}
	return f.status(ctx, unit)
}

func (f *fakeBackend) Start(ctx context.Context, unit string) error {
	if f.start == nil {
		return notFound(unit)
	}
	return f.start(ctx, unit)
}

func (f *fakeBackend) Stop(ctx context.Context, unit string) error {
	if f.stop == nil {
		return notFound(unit)
	}
	return f.stop(ctx, unit)
}

func (f *fakeBackend) Restart(ctx context.Context, unit string, opts RestartOptions, progress func(Event)) (RestartResult, error) {
	if f.restart == nil {
		return RestartResult{}, notFound(unit)
	}
	return f.restart(ctx, unit, opts, progress)
}

func (f *fakeBackend) ReloadApp(ctx context.Context, unit string) error {
	if f.reloadApp == nil {
		return notFound(unit)
	}
	return f.reloadApp(ctx, unit)
}

func (f *fakeBackend) Reload(ctx context.Context) (ReloadResult, error) {
	if f.reload == nil {
		return ReloadResult{}, nil
	}
	return f.reload(ctx)
}

func (f *fakeBackend) Logs(ctx context.Context, unit string, q LogQuery) ([]LogLine, error) {
	if f.logs == nil {
		return nil, notFound(unit)
	}
	return f.logs(ctx, unit, q)
}

func (f *fakeBackend) FollowLogs(ctx context.Context, unit string, q LogQuery) (LogFollower, error) {
	if f.follow == nil {
		return nil, notFound(unit)
	}
	return f.follow(ctx, unit, q)
}

func (f *fakeBackend) Hold(ctx context.Context, unit string, holder Peer) (*Hold, error) {
	if f.hold == nil {
		return nil, notFound(unit)
	}
	return f.hold(ctx, unit, holder)
}

func (f *fakeBackend) ResetFailed(ctx context.Context, unit string) ([]string, error) {
	if f.reset == nil {
		return nil, notFound(unit)
	}
	return f.reset(ctx, unit)
}

func (f *fakeBackend) Events(ctx context.Context, unit string) (<-chan UnitEvent, func(), error) {
	if f.events == nil {
		return nil, nil, notFound(unit)
	}
	return f.events(ctx, unit)
}

// testServer is a real Server on a real Unix socket.
type testServer struct {
	srv    *Server
	path   string
	client *Client
	served chan error
}

func startServer(t *testing.T, b Backend) *testServer {
	t.Helper()
	return startServerWith(t, &Server{Backend: b})
}

// startServerWith is startServer with a Server set up by the test.
func startServerWith(t *testing.T, srv *Server) *testServer {
	t.Helper()
	path := filepath.Join(testutil.ShortDir(t), "api.sock")
	l, err := Listen(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	srv.Log, srv.Version = zerolog.New(zerolog.NewTestWriter(t)), "test"
	ts := &testServer{
		srv:    srv,
		path:   path,
		client: &Client{Path: path},
		served: make(chan error, 1),
	}
	go func() { ts.served <- ts.srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ts.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-ts.served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	// Serving (with its spare fd open) before the test counts fds.
	if _, err := ts.client.Version(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return ts
}

// ctx returns a context bounding one test.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// raw makes a request without the Client, for what the Client never sends.
func (ts *testServer) raw(t *testing.T, method, path, body string) (int, http.Header, []byte) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", ts.path)
		},
		DisableKeepAlives: true,
	}}
	req, err := http.NewRequestWithContext(testCtx(t), method, "http://sockd"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

var sampleStatus = UnitStatus{
	Name: "app.service",
	Service: ServiceStatus{
		State: StateActive, SubState: "running", Pids: []int{42, 41}, MainPID: 42,
		Generation: 3, Since: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Restarts: 2,
	},
	Sockets: []SocketStatus{{Unit: "app.socket", Type: "Stream", Listen: "127.0.0.1:8080", FDName: "app.socket"}},
}

func TestRoutes(t *testing.T) {
	var (
		mu    sync.Mutex
		calls []string
	)
	record := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, s)
	}
	b := &fakeBackend{
		list: func(context.Context) ([]UnitStatus, error) { return []UnitStatus{sampleStatus}, nil },
		status: func(_ context.Context, unit string) (UnitStatus, error) {
			if unit != "app" && unit != "app.service" {
				return UnitStatus{}, notFound(unit)
			}
			return sampleStatus, nil
		},
		start:     func(_ context.Context, unit string) error { record("start " + unit); return nil },
		stop:      func(_ context.Context, unit string) error { record("stop " + unit); return nil },
		reloadApp: func(_ context.Context, unit string) error { record("reload-app " + unit); return nil },
		reload: func(context.Context) (ReloadResult, error) {
			return ReloadResult{Added: []string{"new.service"}, Diagnostics: []Diagnostic{{File: "x.socket", Line: 3, Severity: "warning", Message: "m", Text: "x.socket:3: m"}}}, nil
		},
		logs: func(_ context.Context, unit string, q LogQuery) ([]LogLine, error) {
			record(fmt.Sprintf("logs %s %d", unit, q.N))
			return []LogLine{{Time: sampleStatus.Service.Since, Pid: 42, Stream: "stdout", Line: "hello"}}, nil
		},
	}
	ts := startServer(t, b)
	c, ctx := ts.client, testCtx(t)

	units, err := c.List(ctx)
	if err != nil || !reflect.DeepEqual(units, []UnitStatus{sampleStatus}) {
		t.Fatalf("List = %+v, %v", units, err)
	}
	for _, name := range []string{"app", "app.service"} {
		st, err := c.Status(ctx, name)
		if err != nil || !reflect.DeepEqual(st, sampleStatus) {
			t.Fatalf("Status(%s) = %+v, %v", name, st, err)
		}
	}
	if err := c.Start(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx, "app.service"); err != nil {
		t.Fatal(err)
	}
	if err := c.ReloadApp(ctx, "web@1.service"); err != nil {
		t.Fatal(err)
	}
	rr, err := c.Reload(ctx)
	if err != nil || len(rr.Added) != 1 || rr.Diagnostics[0].Line != 3 {
		t.Fatalf("Reload = %+v, %v", rr, err)
	}
	lines, err := c.Logs(ctx, "app", LogQuery{})
	if err != nil || len(lines) != 1 || lines[0].Line != "hello" {
		t.Fatalf("Logs = %+v, %v", lines, err)
	}
	if _, err := c.Logs(ctx, "app", LogQuery{N: 7}); err != nil {
		t.Fatal(err)
	}
	v, err := c.Version(ctx)
	if err != nil || !reflect.DeepEqual(v, VersionInfo{Version: "test", API: 1, Pid: os.Getpid()}) {
		t.Fatalf("Version = %+v, %v", v, err)
	}
	want := []string{"start app", "stop app.service", "reload-app web@1.service", "logs app 100", "logs app 7"}
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("backend calls = %q, want %q", calls, want)
	}

	// An empty list is [], never null.
	b.list = func(context.Context) ([]UnitStatus, error) { return nil, nil }
	code, h, body := ts.raw(t, "GET", "/v1/units", "")
	if code != 200 || strings.TrimSpace(string(body)) != "[]" || h.Get("Content-Type") != "application/json" {
		t.Errorf("empty list: %d %q %q", code, h.Get("Content-Type"), body)
	}
}

func TestStatusJSONShape(t *testing.T) {
	ts := startServer(t, &fakeBackend{status: func(context.Context, string) (UnitStatus, error) { return sampleStatus, nil }})
	code, _, body := ts.raw(t, "GET", "/v1/units/app", "")
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	svc := m["service"].(map[string]any)
	if svc["state"] != "active" || !reflect.DeepEqual(svc["pids"], []any{42.0, 41.0}) {
		t.Errorf("service = %v", svc)
	}
	if l := m["sockets"].([]any)[0].(map[string]any)["listen"]; l != "127.0.0.1:8080" {
		t.Errorf("sockets[0].listen = %v", l)
	}
}

func TestErrorMapping(t *testing.T) {
	var backendErr error
	ts := startServer(t, &fakeBackend{start: func(context.Context, string) error { return backendErr }})
	for _, tc := range []struct {
		err      error
		status   int
		sentinel error
		field    string
	}{
		{fmt.Errorf("unit x.service: %w", ErrNotFound), 404, ErrNotFound, ""},
		{fmt.Errorf("start x.service: %w", ErrInvalid), 400, ErrInvalid, ""},
		{fmt.Errorf("start x.service: already stopping: %w", ErrConflict), 409, ErrConflict, ""},
		{fmt.Errorf("start x.service: exec: no such file: %w", ErrFailed), 422, ErrFailed, ""},
		{errors.New("boom"), 500, nil, ""},
		{fmt.Errorf("start: %w", &FieldError{Field: "unit", Message: "bad name"}), 400, ErrInvalid, "unit"},
	} {
		backendErr = tc.err
		err := ts.client.Start(testCtx(t), "x")
		var ae *Error
		if !errors.As(err, &ae) {
			t.Fatalf("%v: got %T %v, want *Error", tc.err, err, err)
		}
		if ae.Status != tc.status || ae.Message != tc.err.Error() || ae.Field != tc.field {
			t.Errorf("%v: got %+v", tc.err, ae)
		}
		for _, s := range []error{ErrNotFound, ErrInvalid, ErrConflict, ErrFailed} {
			if errors.Is(err, s) != (s == tc.sentinel) {
				t.Errorf("%v: errors.Is(%v) = %v", tc.err, s, !(s == tc.sentinel))
			}
		}
	}
}

func TestLogsN(t *testing.T) {
	ts := startServer(t, &fakeBackend{logs: func(context.Context, string, LogQuery) ([]LogLine, error) { return nil, nil }})
	for _, q := range []string{"0", "-1", "10001", "abc", "", "1.5"} {
		code, _, body := ts.raw(t, "GET", "/v1/units/app/logs?n="+q, "")
		var eb errorBody
		json.Unmarshal(body, &eb)
		if code != 400 || eb.Field != "n" || !strings.Contains(eb.Error, "n") {
			t.Errorf("n=%q: %d %s", q, code, body)
		}
	}
	for _, q := range []string{"1", "10000"} {
		code, _, body := ts.raw(t, "GET", "/v1/units/app/logs?n="+q, "")
		if code != 200 || strings.TrimSpace(string(body)) != "[]" {
			t.Errorf("n=%q: %d %s", q, code, body)
		}
	}
	_, err := ts.client.Logs(testCtx(t), "app", LogQuery{N: -3})
	var ae *Error
	if !errors.As(err, &ae) || ae.Field != "n" || !errors.Is(err, ErrInvalid) {
		t.Errorf("Logs(-3) = %v", err)
	}
}

func TestBadBodies(t *testing.T) {
	var got RestartOptions
	ts := startServer(t, &fakeBackend{
		restart: func(_ context.Context, _ string, o RestartOptions, _ func(Event)) (RestartResult, error) {
			got = o
			return RestartResult{}, nil
		},
		start: func(context.Context, string) error { return nil },
	})
	for _, tc := range []struct {
		path, body string
		field      string
		msg        string
	}{
		{"/v1/units/a/restart", `{"wait":false,"bogus":1}`, "bogus", "unknown field"},
		{"/v1/units/a/restart", `{"wait":"yes"}`, "wait", "boolean"},
		{"/v1/units/a/restart", `{"wait":`, "", "truncated"},
		{"/v1/units/a/restart", `{wait}`, "", "bad JSON"},
		{"/v1/units/a/restart", `[true]`, "", "JSON object"},
		{"/v1/units/a/restart", `{} {}`, "", "after the JSON object"},
		{"/v1/units/a/start", `{"force":true}`, "force", "unknown field"},
	} {
		code, _, body := ts.raw(t, "POST", tc.path, tc.body)
		var eb errorBody
		if err := json.Unmarshal(body, &eb); err != nil {
			t.Fatalf("%s: body %q: %v", tc.body, body, err)
		}
		if code != 400 || eb.Field != tc.field || !strings.Contains(eb.Error, tc.msg) {
			t.Errorf("%s: %d %+v", tc.body, code, eb)
		}
	}
	// An empty body is allowed and means the defaults.
	code, _, body := ts.raw(t, "POST", "/v1/units/a/restart", "")
	if code != 202 || strings.TrimSpace(string(body)) != "{}" {
		t.Errorf("empty body: %d %s", code, body)
	}
	code, _, body = ts.raw(t, "POST", "/v1/units/a/restart", `{"stop_first":true}`)
	if code != 202 || !got.StopFirst || got.Wait {
		t.Errorf("stop_first: %d %s %+v", code, body, got)
	}
}

func TestNoRoute(t *testing.T) {
	ts := startServer(t, &fakeBackend{})
	code, _, body := ts.raw(t, "GET", "/v2/units", "")
	if code != 404 || !strings.Contains(string(body), `"error"`) {
		t.Errorf("unknown path: %d %s", code, body)
	}
	code, h, body := ts.raw(t, "DELETE", "/v1/units/app", "")
	if code != 405 || h.Get("Allow") != "GET" || !strings.Contains(string(body), `"error"`) {
		t.Errorf("wrong method: %d %q %s", code, h.Get("Allow"), body)
	}
	code, _, body = ts.raw(t, "GET", "/v1/units/app/restart", "")
	if code != 405 {
		t.Errorf("GET restart: %d %s", code, body)
	}
}

func TestRestartNoWait(t *testing.T) {
	ts := startServer(t, &fakeBackend{restart: func(_ context.Context, unit string, o RestartOptions, _ func(Event)) (RestartResult, error) {
		if o.Wait || !o.StopFirst || unit != "app" {
			return RestartResult{}, fmt.Errorf("unexpected %s %+v: %w", unit, o, ErrInvalid)
		}
		return RestartResult{}, nil
	}})
	res, err := ts.client.Restart(testCtx(t), "app", RestartOptions{StopFirst: true}, nil)
	if err != nil || !reflect.DeepEqual(res, RestartResult{}) {
		t.Fatalf("Restart = %+v, %v", res, err)
	}
}

// TestRestartStream shows events reach the client while the restart is
// still under way: the backend waits for the test after each event.
func TestRestartStream(t *testing.T) {
	release := make(chan struct{})
	want := RestartResult{Unit: "app.service", OK: true, Outcome: "done", OldPids: []int{1}, NewPids: []int{2}, Millis: 812}
	ts := startServer(t, &fakeBackend{restart: func(ctx context.Context, _ string, o RestartOptions, progress func(Event)) (RestartResult, error) {
		for _, e := range []Event{{Phase: PhaseSpawned, Pid: 2}, {Phase: PhaseReady, Pid: 2}, {Phase: PhaseDraining, Pid: 1}} {
			progress(e)
			select {
			case <-release:
			case <-ctx.Done():
				return RestartResult{}, ctx.Err()
			}
		}
		return want, nil
	}})
	events := make(chan Event)
	type outcome struct {
		res RestartResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := ts.client.Restart(testCtx(t), "app", RestartOptions{Wait: true}, func(e Event) { events <- e })
		done <- outcome{res, err}
	}()
	timeout := time.After(10 * time.Second)
	for _, phase := range []string{PhaseSpawned, PhaseReady, PhaseDraining} {
		select {
		case e := <-events:
			if e.Phase != phase || e.Time.IsZero() {
				t.Fatalf("event %+v, want phase %s with a time", e, phase)
			}
		case o := <-done:
			t.Fatalf("restart ended before event %s: %+v", phase, o)
		case <-timeout:
			t.Fatalf("no event %s", phase)
		}
		release <- struct{}{}
	}
	select {
	case o := <-done:
		if o.err != nil || !reflect.DeepEqual(o.res, want) {
			t.Fatalf("Restart = %+v, %v", o.res, o.err)
		}
	case <-timeout:
		t.Fatal("no result")
	}
}

func TestRestartStreamWire(t *testing.T) {
	ts := startServer(t, &fakeBackend{restart: func(_ context.Context, _ string, _ RestartOptions, progress func(Event)) (RestartResult, error) {
		progress(Event{Phase: PhaseSpawned, Pid: 7})
		return RestartResult{Unit: "app.service", OK: false, Outcome: "rolled-back", Cause: "exited 1", LogTail: []string{"boom"}}, nil
	}})
	code, h, body := ts.raw(t, "POST", "/v1/units/app/restart", `{"wait":true}`)
	if code != 200 || h.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("%d %q", code, h.Get("Content-Type"))
	}
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"phase":"spawned"`) || !strings.HasPrefix(lines[1], `{"result":{"unit":"app.service","ok":false,"outcome":"rolled-back"`) {
		t.Errorf("stream:\n%s", body)
	}
	// A rolled-back restart is a result, not an error.
	res, err := ts.client.Restart(testCtx(t), "app", RestartOptions{Wait: true}, nil)
	if err != nil || res.OK || res.Outcome != "rolled-back" || res.LogTail[0] != "boom" {
		t.Errorf("Restart = %+v, %v", res, err)
	}
}

func TestRestartErrors(t *testing.T) {
	var streamFirst bool
	ts := startServer(t, &fakeBackend{restart: func(_ context.Context, _ string, _ RestartOptions, progress func(Event)) (RestartResult, error) {
		if streamFirst {
			progress(Event{Phase: PhaseQueued})
			return RestartResult{}, fmt.Errorf("restart app.service: spawn: %w", ErrFailed)
		}
		return RestartResult{}, fmt.Errorf("restart app.service: unit is stopping: %w", ErrConflict)
	}})
	// Before the stream: a plain error answer.
	code, h, body := ts.raw(t, "POST", "/v1/units/app/restart", `{"wait":true}`)
	if code != 409 || h.Get("Content-Type") != "application/json" {
		t.Errorf("error before stream: %d %s", code, body)
	}
	_, err := ts.client.Restart(testCtx(t), "app", RestartOptions{Wait: true}, nil)
	if !errors.Is(err, ErrConflict) {
		t.Errorf("error before stream: %v", err)
	}
	// After: the last line.
	streamFirst = true
	code, _, body = ts.raw(t, "POST", "/v1/units/app/restart", `{"wait":true}`)
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if code != 200 || len(lines) != 2 || !strings.HasPrefix(lines[1], `{"error":"restart app.service: spawn: failed"`) {
		t.Errorf("error in stream: %d\n%s", code, body)
	}
	var seen []string
	_, err = ts.client.Restart(testCtx(t), "app", RestartOptions{Wait: true}, func(e Event) { seen = append(seen, e.Phase) })
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != 422 || !errors.Is(err, ErrFailed) || len(seen) != 1 {
		t.Errorf("error in stream: %v %v", err, seen)
	}
}

// TestClientGoneCancels shows a request's context ends when the client
// hangs up, so the backend can stop waiting.
func TestClientGoneCancels(t *testing.T) {
	started := make(chan struct{})
	cancelled := make(chan struct{})
	ts := startServer(t, &fakeBackend{restart: func(ctx context.Context, _ string, _ RestartOptions, progress func(Event)) (RestartResult, error) {
		progress(Event{Phase: PhaseWaiting})
		close(started)
		<-ctx.Done()
		close(cancelled)
		return RestartResult{}, ctx.Err()
	}})
	ctx, cancel := context.WithCancel(testCtx(t))
	errc := make(chan error, 1)
	go func() {
		_, err := ts.client.Restart(ctx, "app", RestartOptions{Wait: true}, nil)
		errc <- err
	}()
	timeout := time.After(10 * time.Second)
	select {
	case <-started:
	case <-timeout:
		t.Fatal("backend not called")
	}
	cancel()
	select {
	case <-cancelled:
	case <-timeout:
		t.Fatal("backend context not cancelled after the client left")
	}
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("client error = %v, want context.Canceled", err)
	}
}

func TestPeerCredentials(t *testing.T) {
	peers := make(chan Peer, 1)
	ts := startServer(t, &fakeBackend{start: func(ctx context.Context, _ string) error {
		p, ok := PeerFromContext(ctx)
		if !ok {
			return errors.New("no peer")
		}
		peers <- p
		return nil
	}})
	if err := ts.client.Start(testCtx(t), "app"); err != nil {
		t.Fatal(err)
	}
	if p := <-peers; p.UID != os.Getuid() || p.PID != os.Getpid() || p.GID != os.Getgid() {
		t.Errorf("peer = %+v, want uid %d pid %d", p, os.Getuid(), os.Getpid())
	}
}

func TestListen(t *testing.T) {
	dir := testutil.ShortDir(t)

	t.Run("creates parent and sets mode", func(t *testing.T) {
		path := filepath.Join(dir, "sub", "a.sock")
		l, err := Listen(path, 0o660)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		fi, err := os.Stat(path)
		if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
			t.Fatalf("socket %v, %v", fi.Mode(), err)
		}
		if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o755 {
			t.Errorf("parent mode %v", di.Mode())
		}
		l.Close()
		if _, err := os.Stat(path); err != nil {
			t.Errorf("Close unlinked the socket: %v", err)
		}
	})

	t.Run("stale socket removed", func(t *testing.T) {
		path := filepath.Join(dir, "stale.sock")
		old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		old.SetUnlinkOnClose(false)
		old.Close() // the file stays, nobody listens: stale
		l, err := Listen(path, 0)
		if err != nil {
			t.Fatalf("Listen over a stale socket: %v", err)
		}
		defer l.Close()
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
			t.Errorf("default mode %v", fi.Mode())
		}
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("new socket does not answer: %v", err)
		}
		c.Close()
	})

	t.Run("live socket kept", func(t *testing.T) {
		path := filepath.Join(dir, "live.sock")
		live, err := Listen(path, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer live.Close()
		_, err = Listen(path, 0o600)
		if err == nil || !strings.Contains(err.Error(), "already in use") || !strings.Contains(err.Error(), path) {
			t.Fatalf("Listen over a live socket: %v", err)
		}
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("live socket broken: %v", err)
		}
		c.Close()
	})

	t.Run("regular file kept", func(t *testing.T) {
		path := filepath.Join(dir, "file")
		if err := os.WriteFile(path, []byte("precious"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Listen(path, 0o600)
		if err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Fatalf("Listen over a file: %v", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "precious" {
			t.Error("file removed or changed")
		}
	})

	t.Run("path too long", func(t *testing.T) {
		_, err := Listen(filepath.Join(dir, strings.Repeat("x", 120)), 0o600)
		if err == nil || !strings.Contains(err.Error(), "longer than") {
			t.Fatalf("long path: %v", err)
		}
	})
}

func TestShutdownRemovesSocket(t *testing.T) {
	path := filepath.Join(testutil.ShortDir(t), "api.sock")
	l, err := Listen(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Backend: &fakeBackend{}, Log: zerolog.New(zerolog.NewTestWriter(t))}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	c := &Client{Path: path}
	if _, err := c.List(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v, want nil after Shutdown", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file still there: %v", err)
	}
	var ue *UnreachableError
	if _, err := c.List(testCtx(t)); !errors.As(err, &ue) {
		t.Errorf("after Shutdown: %v", err)
	}
}

// TestShutdownCutsStreams shows Shutdown waits for a restart stream only
// until its context ends, then cuts it and cancels the backend.
func TestShutdownCutsStreams(t *testing.T) {
	path := filepath.Join(testutil.ShortDir(t), "api.sock")
	l, err := Listen(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	backendDone := make(chan struct{})
	s := &Server{Log: zerolog.New(zerolog.NewTestWriter(t)), Backend: &fakeBackend{restart: func(ctx context.Context, _ string, _ RestartOptions, progress func(Event)) (RestartResult, error) {
		defer close(backendDone)
		progress(Event{Phase: PhaseWaiting})
		close(started)
		<-ctx.Done()
		return RestartResult{}, ctx.Err()
	}}}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	errc := make(chan error, 1)
	go func() {
		_, err := (&Client{Path: path}).Restart(testCtx(t), "app", RestartOptions{Wait: true}, nil)
		errc <- err
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want deadline exceeded", err)
	}
	<-backendDone
	if err := <-errc; err == nil {
		t.Error("client saw no error from a cut stream")
	}
	if err := <-served; err != nil {
		t.Error(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file still there: %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	dir := testutil.ShortDir(t)
	missing := filepath.Join(dir, "none.sock")
	_, err := (&Client{Path: missing}).List(testCtx(t))
	var ue *UnreachableError
	if !errors.As(err, &ue) || ue.Path != missing {
		t.Fatalf("got %T %v", err, err)
	}
	want := "cannot reach sockd at " + missing + ": connect: no such file or directory"
	if err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	var op *net.OpError
	if !errors.As(err, &op) {
		t.Error("does not unwrap to the net error")
	}

	// A stale socket refuses.
	stale := filepath.Join(dir, "stale.sock")
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close()
	if _, err := (&Client{Path: stale}).Status(testCtx(t), "x"); !errors.As(err, &ue) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("stale: %v", err)
	}
}

func TestClientPathAndDial(t *testing.T) {
	ts := startServer(t, &fakeBackend{})
	t.Setenv("SOCKD_API", ts.path)
	var zero Client
	if zero.SocketPath() != ts.path {
		t.Errorf("SocketPath = %q", zero.SocketPath())
	}
	if _, err := zero.List(testCtx(t)); err != nil {
		t.Errorf("zero Client with SOCKD_API: %v", err)
	}
	t.Setenv("SOCKD_API", "")
	if zero.SocketPath() != DefaultPath {
		t.Errorf("SocketPath = %q", zero.SocketPath())
	}

	dialed := 0
	c := &Client{Path: "/nonexistent/but/dial/overrides", Dial: func(ctx context.Context) (net.Conn, error) {
		dialed++
		var d net.Dialer
		return d.DialContext(ctx, "unix", ts.path)
	}}
	if _, err := c.List(testCtx(t)); err != nil || dialed != 1 {
		t.Errorf("custom Dial: %v, dialed %d", err, dialed)
	}
	c.Dial = func(context.Context) (net.Conn, error) { return nil, errors.New("no way") }
	var ue *UnreachableError
	if _, err := c.List(testCtx(t)); !errors.As(err, &ue) || !strings.Contains(err.Error(), "no way") {
		t.Errorf("failing Dial: %v", err)
	}
	if _, err := c.Status(testCtx(t), ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty unit: %v", err)
	}
}
