package main

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sockd/sockd/api"
)

var sampleEvents = func() []api.UnitEvent {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.Local)
	code := 3
	return []api.UnitEvent{
		{Seq: 7, Time: at, Unit: "app.service", Kind: api.EventSubscribed},
		{Seq: 8, Time: at, Unit: "app.service", Kind: api.EventSpawned, Pid: 1300, Gen: 3},
		{Seq: 9, Time: at, Unit: "app.service", Kind: api.EventExited, Pid: 1300, Gen: 3, Code: &code, Result: "exit-code"},
		{Seq: 10, Time: at, Unit: "app.service", Kind: api.EventRestartDone, Outcome: "rolled-back", Millis: 40, Message: "exited before ready"},
		{Seq: 11, Time: at, Unit: "app.service", Kind: api.EventLoadError, File: "/u/app.service", Line: 4, Message: "/u/app.service:4: Type: invalid"},
		{Seq: 12, Time: at, Kind: api.EventReload, Message: "added []"},
		{Seq: 12, Time: at, Unit: "app.service", Kind: api.EventLagged, Message: "the reader did not keep up"},
	}
}()

// sockctl events prints one line per event with the fields that apply,
// or the NDJSON; the stream's end by sockd (a lag) is exit 1.
func TestEvents(t *testing.T) {
	b := &backend{events: sampleEvents}
	path := serve(t, b)
	r := sockctl(t, nil, false, "--api", path, "events", "app")
	want := "2025-01-02 03:04:05.000 app.service subscribed\n" +
		"2025-01-02 03:04:05.000 app.service spawned pid=1300 gen=3\n" +
		"2025-01-02 03:04:05.000 app.service exited pid=1300 gen=3 code=3 result=exit-code\n" +
		"2025-01-02 03:04:05.000 app.service restart-done outcome=rolled-back ms=40 \"exited before ready\"\n" +
		"2025-01-02 03:04:05.000 app.service load-error \"/u/app.service:4: Type: invalid\"\n" +
		"2025-01-02 03:04:05.000 sockd reload \"added []\"\n" +
		"2025-01-02 03:04:05.000 app.service lagged \"the reader did not keep up\"\n"
	if r.code != 1 || r.stdout != want || !strings.Contains(r.stderr, "did not keep up") {
		t.Errorf("exit %d\n%s\nwant\n%s\nstderr: %s", r.code, r.stdout, want, r.stderr)
	}
	if got := b.lastCall(); got != "events app" {
		t.Errorf("backend call %q", got)
	}

	r = sockctl(t, nil, false, "--api", path, "events", "--json")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != len(sampleEvents) {
		t.Fatalf("--json: %d lines:\n%s", len(lines), r.stdout)
	}
	for i, l := range lines {
		var ev api.UnitEvent
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Seq != sampleEvents[i].Seq || ev.Kind != sampleEvents[i].Kind {
			t.Errorf("line %d: %s (%v)", i, l, err)
		}
	}
	if got := b.lastCall(); got != "events " {
		t.Errorf("backend call %q, want every unit's", got)
	}

	if r := sockctl(t, nil, false, "--api", path, "events", "nosuch"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("unknown unit: exit %d: %s", r.code, r.stderr)
	}
	if r := sockctl(t, nil, false, "--api", path, "events", "a", "b"); r.code != 2 {
		t.Errorf("two units: exit %d", r.code)
	}
}

// Ctrl-C ends sockctl events with exit 0.
func TestEventsInterrupt(t *testing.T) {
	path := serve(t, &eventsBackend{})
	sub := make(chan struct{})
	out := &firstWrite{first: sub}
	var errb strings.Builder
	c := &cli{stdout: out, stderr: &errb, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background()) // as main's signal.NotifyContext
	done := make(chan error, 1)
	go func() { done <- c.run(ctx, []string{"--api", path, "events"}) }()
	<-sub
	cancel()
	select {
	case err := <-done:
		if exitCode(err) != 0 || !strings.Contains(out.String(), " subscribed") {
			t.Errorf("exit %d (%v), stdout %q", exitCode(err), err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sockctl events did not end on its context")
	}
}

// eventsBackend's stream is "subscribed", then nothing until canceled.
type eventsBackend struct{ backend }

func (b *eventsBackend) Events(context.Context, string) (<-chan api.UnitEvent, func(), error) {
	ch := make(chan api.UnitEvent, 1)
	ch <- api.UnitEvent{Time: time.Now(), Kind: api.EventSubscribed}
	return ch, func() {}, nil
}

// firstWrite is a buffer that closes first at its first write.
type firstWrite struct {
	mu    sync.Mutex
	b     strings.Builder
	first chan struct{}
}

func (w *firstWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.b.Len() == 0 {
		close(w.first)
	}
	return w.b.Write(p)
}

func (w *firstWrite) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// list marks a unit running with load errors and names them; status
// prints them; a unit that never loaded is shown, with exit 1.
func TestLoadErrorsShown(t *testing.T) {
	diag := api.Diagnostic{File: "/u/app.service", Line: 4, Option: "Type", Severity: "error", Message: "invalid", Text: "/u/app.service:4: Type: invalid"}
	running := app
	running.LoadErrors = []api.Diagnostic{diag}
	never := api.UnitStatus{Name: "never.service", LoadErrors: []api.Diagnostic{{File: "/u/never.socket", Line: 2, Message: "bad"}},
		Service: api.ServiceStatus{State: api.StateFailed, SubState: "load-error", Result: "load-error"}}
	path := serveServer(t, &api.Server{Backend: &loadErrBackend{units: []api.UnitStatus{running, never}}, Log: zerolog.New(zerolog.NewTestWriter(t))})
	r := sockctl(t, nil, false, "--api", path, "list")
	if r.code != 0 || !strings.Contains(r.stdout, "active (running), load error") || !strings.Contains(r.stdout, "failed (load-error)") ||
		!strings.Contains(r.stderr, "app.service: load error: /u/app.service:4: Type: invalid\n") ||
		!strings.Contains(r.stderr, "never.service: load error: /u/never.socket:2: bad\n") {
		t.Errorf("list: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = sockctl(t, nil, false, "--api", path, "status", "app")
	if r.code != 0 || !strings.Contains(r.stdout, "  Load error: /u/app.service:4: Type: invalid\n") || !strings.Contains(r.stdout, "runs as loaded before") {
		t.Errorf("status: exit %d\n%s", r.code, r.stdout)
	}
	r = sockctl(t, nil, false, "--api", path, "status", "never")
	if r.code != 1 || !strings.Contains(r.stdout, "  Load error: /u/never.socket:2: bad\n") || !strings.Contains(r.stdout, "did not load") {
		t.Errorf("status of a unit that never loaded: exit %d\n%s", r.code, r.stdout)
	}
}

type loadErrBackend struct {
	backend
	units []api.UnitStatus
}

func (b *loadErrBackend) List(context.Context) ([]api.UnitStatus, error) { return b.units, nil }

func (b *loadErrBackend) Status(_ context.Context, unit string) (api.UnitStatus, error) {
	for _, u := range b.units {
		if u.Name == unit || u.Name == unit+".service" {
			return u, nil
		}
	}
	return b.backend.Status(context.Background(), unit)
}
