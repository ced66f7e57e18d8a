package supervisord

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/testutil"
)

// subscribers counts the event bus's subscribers.
func (d *Daemon) subscribers() int {
	d.events.mu.Lock()
	defer d.events.mu.Unlock()
	return len(d.events.subs)
}

// serveAPI serves d's API on a Unix socket and returns its path.
func serveAPI(t *testing.T, d *Daemon, writeTimeout time.Duration) string {
	t.Helper()
	path := filepath.Join(testutil.ShortDir(t), "api.sock")
	l, err := api.Listen(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	srv := &api.Server{Backend: d, Log: zerolog.New(zerolog.NewTestWriter(t)), StreamWriteTimeout: writeTimeout}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	})
	return path
}

// An API client that opens the event stream and never reads holds no
// restart back: they go on, each in its usual time, while the kernel's
// buffers and then the subscription's fill; sockd drops the subscriber
// (lagged), the server's write times out, and the handler, its
// connection and its subscription are gone.
func TestEventsAPIClientNeverReads(t *testing.T) {
	e := newEnv(t, notifyService)
	path := serveAPI(t, e.d, 500*time.Millisecond)
	e.mustGet()
	before := runtime.NumGoroutine()
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/events?unit=app HTTP/1.1\r\nHost: sockd\r\n\r\n") // and never a read
	deadline := time.Now().Add(10 * time.Second)
	for e.d.subscribers() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the stream did not subscribe")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var slowest time.Duration
	n := 0
	for ; n < 50 || e.d.subscribers() > 0; n++ {
		if n == 400 {
			t.Fatal("400 restarts, and a reader that never reads is still subscribed")
		}
		start := time.Now()
		done := make(chan api.RestartResult, 1)
		go func() { r, _ := e.restart(api.RestartOptions{}); done <- r }()
		select {
		case r := <-done:
			if !r.OK {
				t.Fatalf("restart %d: %+v", n, r)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("restart %d blocked behind a reader that does not read", n)
		}
		slowest = max(slowest, time.Since(start))
	}
	t.Logf("%d restarts, the slowest %v; the reader was dropped", n, slowest)
	if g := settleGoroutines(before); g > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines, %d before the stream:\n%s", g, before, buf[:runtime.Stack(buf, true)])
	}
}

// The stream of one unit, through the API: subscribed first, then a
// restart's phases in order, each event of that unit.
func TestEventsAPIFollowsRestart(t *testing.T) {
	e := newEnv(t, notifyService)
	c := &api.Client{Path: serveAPI(t, e.d, 0)}
	e.mustGet()
	ctx, cancel := context.WithCancel(e.ctx())
	defer cancel()
	evs := make(chan api.UnitEvent, 64)
	done := make(chan error, 1)
	go func() { done <- c.Events(ctx, "app.socket", func(ev api.UnitEvent) error { evs <- ev; return nil }) }()
	if ev := <-evs; ev.Kind != api.EventSubscribed || ev.Unit != "app.service" {
		t.Fatalf("first event %+v", ev)
	}
	if err := c.Events(ctx, "nosuch", func(api.UnitEvent) error { return nil }); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("events of an unknown unit: %v, want ErrNotFound", err)
	}
	if r, _ := e.restart(api.RestartOptions{}); !r.OK {
		t.Fatalf("restart: %+v", r)
	}
	want := []string{"restart/spawned", "restart/ready", "restart/draining", "restart/done", "restart-done/done"}
	for i := 0; i < len(want); {
		select {
		case ev := <-evs:
			if ev.Unit != "app.service" {
				t.Fatalf("event of another unit: %+v", ev)
			}
			if ev.Kind+"/"+ev.Phase+ev.Outcome == want[i] {
				i++
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("missing %q on", want[i:])
		}
	}
	cancel()
	<-done
}

// A unit whose file breaks while it runs keeps running, and its status
// and the list show the error with its file and line until a reload
// finds the file fixed; a unit that never loaded is listed as failed
// with its error.
func TestLoadErrorsInStatus(t *testing.T) {
	e := newEnv(t, notifyService)
	pid, _ := e.mustGet()
	// The app may answer before its READY=1 is taken (a CI run saw
	// "activating" under load).
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
	ch, cancel := e.d.subscribeEvents("app.service")
	defer cancel()
	e.write("app.service", e.service(notifyService+"Type=bogus\n"))
	e.write("never.socket", "[Socket]\nListenStream="+filepath.Join(filepath.Dir(e.sock), "never.sock")+"\nBacklog=many\n")
	e.write("never.service", e.service(""))
	if _, err := e.d.Reload(e.ctx()); err != nil {
		t.Fatal(err)
	}
	st, err := e.d.Status(e.ctx(), "app")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(e.dir, "app.service")
	// The service's error, and the socket's that follows from it.
	if len(st.LoadErrors) != 2 || st.LoadErrors[0].File != file || st.LoadErrors[0].Line != 7 ||
		!strings.HasPrefix(st.LoadErrors[0].Text, file+":7: Type: ") {
		t.Fatalf("load errors %+v, want %s line 7", st.LoadErrors, file)
	}
	if got, _ := e.mustGet(); got != pid || st.Service.State != api.StateActive {
		t.Fatalf("served by %d (%s), want %d running on", got, st.Service.State, pid)
	}
	for ev := range ch {
		if ev.Kind == api.EventLoadError {
			if ev.File != file || ev.Line != 7 {
				t.Fatalf("load-error event %+v", ev)
			}
			break
		}
	}
	list, err := e.d.List(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "app.service" || len(list[0].LoadErrors) != 2 ||
		list[1].Name != "never.service" || list[1].Service.State != api.StateFailed || list[1].Service.SubState != "load-error" ||
		len(list[1].LoadErrors) != 1 || list[1].LoadErrors[0].Line != 3 || list[1].LoadErrors[0].Option != "Backlog" {
		t.Fatalf("list %+v", list)
	}
	if st, err := e.d.Status(e.ctx(), "never.socket"); err != nil || st.Name != "never.service" {
		t.Fatalf("status of the unit that never loaded: %+v, %v", st, err)
	}

	// Fixed: the errors are gone, and the unit that never loaded runs.
	e.write("app.service", e.service(notifyService))
	e.write("never.socket", "[Socket]\nListenStream="+filepath.Join(filepath.Dir(e.sock), "never.sock")+"\n")
	if _, err := e.d.Reload(e.ctx()); err != nil {
		t.Fatal(err)
	}
	list, err = e.d.List(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || len(list[0].LoadErrors)+len(list[1].LoadErrors) != 0 || list[1].Service.SubState != "listening" {
		t.Fatalf("after the fix: %+v", list)
	}
}

// An Accept=yes unit's instances publish spawned and exited, under the
// template's name as the API shows it.
func TestAcceptEvents(t *testing.T) {
	e := newAcceptEnv(t, "ListenStream="+freeTCP(t)+"\n", "")
	ch, cancel := e.d.subscribeEvents("echo@.service")
	defer cancel()
	c := e.dial("tcp", nil)
	pid := pidOf(t, c.greeting())
	c.Close()
	var kinds []string
	timeout := time.After(20 * time.Second)
	for len(kinds) == 0 || kinds[len(kinds)-1] != api.EventExited {
		select {
		case ev := <-ch:
			if ev.Unit != "echo@.service" {
				t.Fatalf("event of %q: %+v", ev.Unit, ev)
			}
			if ev.Kind == api.EventSubscribed {
				continue
			}
			if ev.Pid != pid || !strings.HasPrefix(ev.Message, "echo@0-") {
				t.Fatalf("event %+v, want pid %d of instance echo@0-…", ev, pid)
			}
			if ev.Kind == api.EventExited && (ev.Code == nil || ev.Result == "") {
				t.Fatalf("exited: %+v", ev)
			}
			kinds = append(kinds, ev.Kind)
		case <-timeout:
			t.Fatalf("events %q", kinds)
		}
	}
	if len(kinds) != 2 || kinds[0] != api.EventSpawned {
		t.Fatalf("events %q, want spawned, exited", kinds)
	}
}
