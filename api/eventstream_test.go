package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// errStopEvents ends a Client.Events in tests.
var errStopEvents = errors.New("enough events")

// subscribedOnly is a Backend's Events that sends "subscribed" and then
// nothing.
func subscribedOnly(_ context.Context, unit string) (<-chan UnitEvent, func(), error) {
	ch := make(chan UnitEvent, 1)
	ch <- UnitEvent{Kind: EventSubscribed, Unit: unit}
	return ch, func() {}, nil
}

// bus is a Backend's event source as supervisord's: a bounded buffer per
// subscriber, never blocking the publisher, a lagging subscriber dropped
// after a "lagged" event; it records each cancel.
type bus struct {
	mu       sync.Mutex
	subs     map[chan UnitEvent]bool
	units    []string
	canceled int
	seq      uint64
}

func newBus() *bus { return &bus{subs: map[chan UnitEvent]bool{}} }

func (b *bus) events(_ context.Context, unit string) (<-chan UnitEvent, func(), error) {
	if unit == "missing" {
		return nil, nil, notFound(unit)
	}
	ch := make(chan UnitEvent, 8)
	b.mu.Lock()
	defer b.mu.Unlock()
	ch <- UnitEvent{Seq: b.seq, Kind: EventSubscribed, Unit: unit}
	b.subs[ch] = true
	b.units = append(b.units, unit)
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.canceled++
		if b.subs[ch] {
			delete(b.subs, ch)
			close(ch)
		}
	}, nil
}

func (b *bus) publish(ev UnitEvent) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	ev.Seq = b.seq
	for ch := range b.subs {
		if len(ch) < cap(ch)-1 {
			ch <- ev
			continue
		}
		ch <- UnitEvent{Seq: ev.Seq, Kind: EventLagged}
		close(ch)
		delete(b.subs, ch)
	}
}

// pending is how many events wait in the subscriptions' buffers.
func (b *bus) pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for ch := range b.subs {
		n += len(ch)
	}
	return n
}

func (b *bus) count() (subs, canceled int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs), b.canceled
}

// waitFor polls cond until it holds, failing the test after d: the
// server's goroutines end on their own, with no event to wait on.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The stream is NDJSON, one event a line as it is published; the unit is
// passed on; the client gets the events in order, and its end (ctx)
// cancels the subscription.
func TestEventsRoute(t *testing.T) {
	b := newBus()
	ts := startServer(t, &fakeBackend{events: b.events})
	ctx, cancel := context.WithCancel(testCtx(t))
	got := make(chan UnitEvent, 16)
	done := make(chan error, 1)
	go func() {
		done <- ts.client.Events(ctx, "app.socket", func(ev UnitEvent) error { got <- ev; return nil })
	}()
	if ev := <-got; ev.Kind != EventSubscribed || ev.Unit != "app.socket" {
		t.Fatalf("first event %+v, want subscribed", ev)
	}
	code := 7
	sent := []UnitEvent{{Unit: "app.service", Kind: EventSpawned, Pid: 42}, {Unit: "app.service", Kind: EventExited, Pid: 42, Code: &code, Result: "exit-code"}}
	for _, ev := range sent {
		b.publish(ev)
	}
	for i, want := range sent {
		ev := <-got
		if ev.Kind != want.Kind || ev.Pid != 42 || ev.Seq != uint64(i+1) {
			t.Fatalf("event %d: %+v, want %+v", i, ev, want)
		}
		if ev.Kind == EventExited && (ev.Code == nil || *ev.Code != 7) {
			t.Fatalf("exited without its code: %+v", ev)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Events after cancel: %v", err)
	}
	waitFor(t, 5*time.Second, "subscription canceled after the client left", func() bool {
		subs, canceled := b.count()
		return subs == 0 && canceled == 1
	})

	// On the wire: application/x-ndjson, one JSON object a line.
	status, hdr, body := ts.rawStream(t, "/v1/events?unit=app", func() { b.publish(UnitEvent{Kind: EventReload, Message: "x"}) }, 2)
	if status != 200 || hdr.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d, %v", status, hdr)
	}
	if len(body) != 2 || !strings.Contains(body[0], `"kind":"subscribed"`) || !strings.Contains(body[1], `"kind":"reload"`) {
		t.Fatalf("lines %q", body)
	}
	b.mu.Lock()
	units := slices.Clone(b.units)
	b.mu.Unlock()
	if !slices.Equal(units, []string{"app.socket", "app"}) {
		t.Fatalf("backend saw units %q", units)
	}
}

// rawStream GETs path on a connection of its own, calls then once the
// first line is in, reads n lines and hangs up.
func (ts *testServer) rawStream(t *testing.T, path string, then func(), n int) (int, http.Header, []string) {
	t.Helper()
	conn, err := net.Dial("unix", ts.path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: sockd\r\n\r\n", path)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	var lines []string
	for len(lines) < n && sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) == 1 {
			then()
		}
	}
	return resp.StatusCode, resp.Header, lines
}

func TestEventsErrors(t *testing.T) {
	b := newBus()
	ts := startServer(t, &fakeBackend{events: b.events})
	err := ts.client.Events(testCtx(t), "missing", func(UnitEvent) error { return nil })
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown unit: %v, want ErrNotFound", err)
	}
	if status, _, _ := ts.raw(t, "GET", "/v1/events?unit=a%2Fb", ""); status != http.StatusBadRequest {
		t.Errorf("unit with a slash: %d, want 400", status)
	}
	if status, _, _ := ts.raw(t, "POST", "/v1/events", ""); status != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", status)
	}
	// fn's error ends the stream and is returned.
	if err := ts.client.Events(testCtx(t), "", func(UnitEvent) error { return errStopEvents }); !errors.Is(err, errStopEvents) {
		t.Errorf("Events: %v, want fn's error", err)
	}
}

// A reader that lags gets "lagged" as its last event, and Client.Events
// returns ErrLagged.
func TestEventsLagged(t *testing.T) {
	b := newBus()
	ts := startServer(t, &fakeBackend{events: b.events})
	var kinds []string
	first := true
	err := ts.client.Events(testCtx(t), "", func(ev UnitEvent) error {
		kinds = append(kinds, ev.Kind)
		if first {
			first = false
			for range 20 { // more than the bus holds, before the reader goes on
				b.publish(UnitEvent{Kind: EventTriggered})
			}
		}
		return nil
	})
	if !errors.Is(err, ErrLagged) || kinds[len(kinds)-1] != EventLagged {
		t.Fatalf("Events: %v after %q, want ErrLagged after lagged", err, kinds)
	}
}

// A client that never reads never holds the publisher, and the server
// ends its stream and its subscription: the kernel's buffers fill, the
// bus drops the subscriber, and the write the handler is stuck in times
// out (StreamWriteTimeout).
func TestEventsClientNeverReads(t *testing.T) {
	b := newBus()
	path := filepath.Join(t.TempDir(), "api.sock")
	l, err := Listen(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Backend: &fakeBackend{events: b.events}, Log: zerolog.New(zerolog.NewTestWriter(t)), StreamWriteTimeout: 300 * time.Millisecond}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	}()
	before := runtime.NumGoroutine()
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/events HTTP/1.1\r\nHost: sockd\r\n\r\n")
	waitFor(t, 5*time.Second, "subscribed", func() bool { subs, _ := b.count(); return subs == 1 })
	msg := strings.Repeat("x", 1000)
	start := time.Now()
	for i := 0; ; i++ {
		b.publish(UnitEvent{Kind: EventRestart, Phase: PhaseSpawned, Message: msg}) // never blocks
		if subs, _ := b.count(); subs == 0 {
			t.Logf("dropped after %d events", i+1)
			break
		}
		if i > 100000 {
			t.Fatal("a reader that never reads is never dropped")
		}
		// Give the handler the time to take it: until the kernel's
		// buffers are full, the subscription does not lag.
		for t0 := time.Now(); b.pending() > 0 && time.Since(t0) < 20*time.Millisecond; {
			time.Sleep(200 * time.Microsecond)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("publishing took %v", d)
	}
	waitFor(t, 5*time.Second, "the handler ended and canceled its subscription", func() bool {
		_, canceled := b.count()
		return canceled == 1
	})
	waitFor(t, 5*time.Second, "goroutines back", func() bool { return runtime.NumGoroutine() <= before })
}

// Shutdown ends the event streams at once: they never end by
// themselves.
func TestEventsShutdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.sock")
	l, err := Listen(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	b := newBus()
	srv := &Server{Backend: &fakeBackend{events: b.events}, Log: zerolog.New(zerolog.NewTestWriter(t))}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	got := make(chan UnitEvent, 4)
	done := make(chan error, 1)
	go func() {
		done <- (&Client{Path: path}).Events(context.Background(), "", func(ev UnitEvent) error { got <- ev; return nil })
	}()
	<-got
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %v with a stream open", d)
	}
	<-served
	select {
	case err := <-done:
		if err == nil || errors.Is(err, ErrLagged) {
			t.Errorf("Events after shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the client's stream did not end")
	}
}
