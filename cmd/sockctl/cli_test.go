package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/sockd/sockd/api"
)

// backend is a fake api.Backend: a few canned answers and a record of
// calls. It is a test seam; the real one is supervisord.
type backend struct {
	mu      sync.Mutex
	calls   []string
	restart func(progress func(api.Event)) (api.RestartResult, error)
	hold    func(unit string, holder api.Peer) (*api.Hold, error)
	reload  api.ReloadResult
	// listFailed adds a failed unit, broken.service, to the list.
	listFailed bool
	// events, if set, is every event stream's events.
	events []api.UnitEvent
}

func (b *backend) record(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, s)
}

func (b *backend) lastCall() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.calls) == 0 {
		return ""
	}
	return b.calls[len(b.calls)-1]
}

var app = api.UnitStatus{
	Name: "app.service",
	Service: api.ServiceStatus{
		State: api.StateActive, SubState: "running", Pids: []int{1234, 1200}, MainPID: 1234,
		Generation: 2, Since: time.Now().Add(-time.Minute), Restarts: 1, Instances: 1,
	},
	Sockets: []api.SocketStatus{
		{Unit: "app.socket", Type: "Stream", Listen: "127.0.0.1:8080", FDName: "http"},
		{Unit: "app.socket", Type: "Stream", Listen: "/run/app.sock", FDName: "local",
			Replaced: 2, ReplacedAt: ptr(time.Now().Add(-time.Minute)), ReplacedCause: "hung up (EPOLLHUP)"},
	},
}

func ptr[T any](v T) *T { return &v }

// exited units: a last exit without a result, and a result alone.
var exited = map[string]api.UnitStatus{
	"exit":   {Name: "exit.service", Service: api.ServiceStatus{State: api.StateInactive, LastExit: "exit status 0"}},
	"result": {Name: "result.service", Service: api.ServiceStatus{State: api.StateFailed, Result: "protocol"}},
	"held":   {Name: "held.service", Service: api.ServiceStatus{State: api.StateInactive, SubState: "held", HeldBy: 4242}},
	"cg": {Name: "cg.service", Service: api.ServiceStatus{State: api.StateActive, Pids: []int{10}, ControlGroup: "cgroup /sys/fs/cgroup/unified/sockd/cg.service",
		CgroupPids: []int{10, 12}}},
	"pg": {Name: "pg.service", Service: api.ServiceStatus{State: api.StateActive, Pids: []int{10}, ControlGroup: "process group"}},
	"backoff": {Name: "backoff.service", Service: api.ServiceStatus{State: api.StateFailed, SubState: "listening",
		Result: "exit-code", NextStart: time.Now().Add(90 * time.Second)}},
	"queued": {Name: "queued.service", Service: api.ServiceStatus{State: api.StateActive}, Sockets: []api.SocketStatus{
		{Unit: "queued.socket", Type: "Stream", Listen: "127.0.0.1:8080", FDName: "http", QueueDepth: ptr(3), Backlog: 4096},
		{Unit: "queued.socket", Type: "Stream", Listen: "/run/queued.sock", FDName: "local", QueueDepth: ptr(5), Backlog: 8},
		{Unit: "queued.socket", Type: "Datagram", Listen: "127.0.0.1:5353", FDName: "dns"},
	}},
	"restarting": {Name: "restarting.service", Service: api.ServiceStatus{State: api.StateActivating, SubState: "auto-restart",
		Result: "exit-code", NextStart: time.Now().Add(time.Hour)}},
}

func (b *backend) find(unit string) (api.UnitStatus, error) {
	if unit == "app" || unit == "app.service" {
		return app, nil
	}
	if u, ok := exited[unit]; ok {
		return u, nil
	}
	return api.UnitStatus{}, fmt.Errorf("unit %s: %w", unit, api.ErrNotFound)
}

func (b *backend) List(context.Context) ([]api.UnitStatus, error) {
	idle := api.UnitStatus{Name: "idle.service", Service: api.ServiceStatus{State: api.StateInactive}}
	if b.listFailed {
		broken := api.UnitStatus{Name: "broken.service", Service: api.ServiceStatus{State: api.StateFailed, SubState: "listening"}}
		return []api.UnitStatus{app, idle, broken}, nil
	}
	return []api.UnitStatus{app, idle}, nil
}

func (b *backend) Status(_ context.Context, unit string) (api.UnitStatus, error) {
	return b.find(unit)
}

func (b *backend) Start(_ context.Context, unit string) error {
	b.record("start " + unit)
	_, err := b.find(unit)
	return err
}

func (b *backend) Stop(_ context.Context, unit string) error {
	b.record("stop " + unit)
	_, err := b.find(unit)
	return err
}

func (b *backend) Restart(_ context.Context, unit string, o api.RestartOptions, progress func(api.Event)) (api.RestartResult, error) {
	b.record(fmt.Sprintf("restart %s wait=%v stop-first=%v", unit, o.Wait, o.StopFirst))
	if _, err := b.find(unit); err != nil {
		return api.RestartResult{}, err
	}
	if !o.Wait || b.restart == nil {
		return api.RestartResult{}, nil
	}
	return b.restart(progress)
}

func (b *backend) ReloadApp(_ context.Context, unit string) error {
	b.record("reload-app " + unit)
	_, err := b.find(unit)
	return err
}

func (b *backend) Reload(context.Context) (api.ReloadResult, error) {
	return b.reload, nil
}

func (b *backend) Logs(_ context.Context, unit string, q api.LogQuery) ([]api.LogLine, error) {
	b.record(logsCall("logs", unit, q))
	if _, err := b.find(unit); err != nil {
		return nil, err
	}
	return cannedLines(q), nil
}

// logsCall records a logs call with its query.
func logsCall(what, unit string, q api.LogQuery) string {
	s := fmt.Sprintf("%s %s %d", what, unit, q.N)
	if q.Stream != "" {
		s += " stream=" + q.Stream
	}
	if !q.Since.IsZero() {
		s += " since=" + q.Since.UTC().Format(time.RFC3339)
	}
	return s
}

// cannedLines are the backend's log lines that match q.
func cannedLines(q api.LogQuery) []api.LogLine {
	t := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var out []api.LogLine
	for _, l := range []api.LogLine{
		{Time: t, Pid: 1234, Stream: "stdout", Line: "listening"},
		{Time: t.Add(time.Minute), Pid: 1234, Stream: "stderr", Line: "warning: x"},
	} {
		if q.Match(l) {
			out = append(out, l)
		}
	}
	return out
}

// FollowLogs gives the canned lines, then "new line" (stdout), then, for
// unit "gone", the end of a removed unit; "app" waits for the reader to
// go.
func (b *backend) FollowLogs(_ context.Context, unit string, q api.LogQuery) (api.LogFollower, error) {
	b.record(logsCall("follow", unit, q))
	if _, err := b.find(unit); err != nil && unit != "gone" {
		return nil, err
	}
	batches := [][]api.LogLine{cannedLines(q)}
	if l := (api.LogLine{Time: time.Now(), Pid: 1234, Stream: "stdout", Line: "new line"}); q.Match(l) {
		batches = append(batches, []api.LogLine{l})
	}
	return &cannedFollower{batches: batches, removed: unit == "gone"}, nil
}

type cannedFollower struct {
	batches [][]api.LogLine
	removed bool
}

func (f *cannedFollower) Next(ctx context.Context) ([]api.LogLine, error) {
	if len(f.batches) > 0 {
		b := f.batches[0]
		f.batches = f.batches[1:]
		return b, nil
	}
	if f.removed {
		return nil, &api.LogEndError{End: api.LogEndRemoved, Message: "the unit was removed"}
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

func (f *cannedFollower) Close() {}

// ResetFailed answers as a daemon whose failed units are "result" and
// "backoff".
func (b *backend) ResetFailed(_ context.Context, unit string) ([]string, error) {
	b.record("reset-failed " + unit)
	if unit == "" {
		return []string{"backoff.service", "result.service"}, nil
	}
	u, err := b.find(unit)
	if err != nil || u.Service.State != api.StateFailed {
		return nil, err
	}
	return []string{u.Name}, nil
}

func (b *backend) Hold(_ context.Context, unit string, holder api.Peer) (*api.Hold, error) {
	b.record("hold " + unit)
	if b.hold == nil {
		_, err := b.find(unit)
		if err == nil {
			err = fmt.Errorf("hold %s: the service runs: %w", unit, api.ErrConflict)
		}
		return nil, err
	}
	return b.hold(unit, holder)
}

// Events sends b.events, then ends the stream as a lagging reader's.
func (b *backend) Events(_ context.Context, unit string) (<-chan api.UnitEvent, func(), error) {
	b.record("events " + unit)
	if unit != "" {
		if _, err := b.find(unit); err != nil {
			return nil, nil, err
		}
	}
	ch := make(chan api.UnitEvent, len(b.events)+1)
	for _, ev := range b.events {
		ch <- ev
	}
	close(ch)
	return ch, func() {}, nil
}

func okRestart(progress func(api.Event)) (api.RestartResult, error) {
	for _, e := range []api.Event{
		{Phase: api.PhaseSpawned, Pid: 1300},
		{Phase: api.PhaseWaiting},
		{Phase: api.PhaseReady, Pid: 1300},
		{Phase: api.PhaseDraining, Pid: 1234},
		{Phase: api.PhaseStopped, Pid: 1234},
		{Phase: api.PhaseDone},
	} {
		progress(e)
	}
	return api.RestartResult{Unit: "app.service", OK: true, Outcome: "done", OldPids: []int{1234}, NewPids: []int{1300}, Millis: 812}, nil
}

func rolledBack(progress func(api.Event)) (api.RestartResult, error) {
	progress(api.Event{Phase: api.PhaseSpawned, Pid: 1300})
	progress(api.Event{Phase: api.PhaseWaiting})
	progress(api.Event{Phase: api.PhaseFailed, Pid: 1300, Message: "exited with status 1 before READY=1"})
	return api.RestartResult{Unit: "app.service", OK: false, Outcome: "rolled-back", Cause: "exited with status 1 before READY=1",
		OldPids: []int{1234}, Millis: 40, LogTail: []string{"config error: no such file", "exiting"}}, nil
}

// serve starts a real api.Server for b on a Unix socket and returns its
// path.
func serve(t *testing.T, b api.Backend) string {
	t.Helper()
	return serveServer(t, &api.Server{Backend: b, Log: zerolog.New(zerolog.NewTestWriter(t))})
}

// serveServer is serve with a Server set up by the caller.
func serveServer(t *testing.T, s *api.Server) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sockctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "api.sock")
	l, err := api.Listen(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		<-done
	})
	return path
}

type result struct {
	code           int
	stdout, stderr string
}

// sockctl runs the command in-process as main would, with SOCKD_API from
// env.
func sockctl(t *testing.T, env map[string]string, terminal bool, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	c := &cli{stdout: &out, stderr: &errb, getenv: func(k string) string { return env[k] }, terminal: terminal}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.run(ctx, args)
	if msg := errorText(err); msg != "" {
		fmt.Fprintln(&errb, msg)
	}
	return result{exitCode(err), out.String(), errb.String()}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{}, {"frobnicate"}, {"status"}, {"list", "--bogus"}, {"status", "app", "extra"},
		{"status", "app", "--wait"}, {"logs", "app", "-n", "0"}, {"logs", "app", "-n", "many"},
		{"logs", "app", "--since", "yesterday"}, {"logs", "app", "--stream", "both"}, {"status", "app", "-f"},
		{"--api"}, {"restart", "app", "--timeout", "soon"},
	} {
		r := sockctl(t, nil, false, args...)
		if r.code != 2 || !strings.Contains(r.stderr, "usage: sockctl") || r.stdout != "" {
			t.Errorf("%q: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
		}
	}
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"status", "-h"}} {
		r := sockctl(t, nil, false, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Exit codes") {
			t.Errorf("%q: exit %d: %s", args, r.code, r.stderr)
		}
	}
}

func TestUnreachable(t *testing.T) {
	r := sockctl(t, nil, false, "--api", "/nonexistent/sockd.sock", "list")
	if r.code != 3 || !strings.Contains(r.stderr, "cannot reach sockd at /nonexistent/sockd.sock") {
		t.Errorf("exit %d: %s", r.code, r.stderr)
	}
}

func TestList(t *testing.T) {
	path := serve(t, &backend{})
	r := sockctl(t, nil, false, "list", "--api", path)
	want := "UNIT          STATE             PIDS       LISTEN\n" +
		"app.service   active (running)  1234,1200  127.0.0.1:8080,/run/app.sock\n" +
		"idle.service  inactive          -          -\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("exit %d\n%s\nwant\n%s\n%s", r.code, r.stdout, want, r.stderr)
	}
	// SOCKD_API, and --json: one JSON array.
	r = sockctl(t, map[string]string{"SOCKD_API": path}, false, "--json", "list")
	var units []api.UnitStatus
	if err := json.Unmarshal([]byte(r.stdout), &units); err != nil || len(units) != 2 || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("list --json: %v\n%s", err, r.stdout)
	}
}

// sockd's own problems (a unit directory it does not watch) follow the
// list, on stderr.
func TestListWarnings(t *testing.T) {
	path := serveServer(t, &api.Server{Backend: &backend{}, Log: zerolog.New(zerolog.NewTestWriter(t)),
		Warnings: func() []string { return []string{"not watching the unit directory (too many open files)"} }})
	r := sockctl(t, nil, false, "list", "--api", path)
	if r.code != 0 || !strings.Contains(r.stdout, "app.service") ||
		r.stderr != "warning: sockd: not watching the unit directory (too many open files)\n" {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

func TestStatus(t *testing.T) {
	path := serve(t, &backend{})
	r := sockctl(t, nil, false, "--api", path, "status", "app", "--json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var m struct {
		Service struct {
			State string `json:"state"`
			Pids  []int  `json:"pids"`
		} `json:"service"`
		Sockets []struct {
			Listen string `json:"listen"`
		} `json:"sockets"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatal(err)
	}
	if m.Service.State != "active" || !reflect.DeepEqual(m.Service.Pids, []int{1234, 1200}) || m.Sockets[0].Listen != "127.0.0.1:8080" {
		t.Errorf("status --json: %s", r.stdout)
	}

	r = sockctl(t, nil, false, "--api", path, "status", "app.service")
	for _, s := range []string{"app.service - active (running) since", "1234 (main), 1200", "127.0.0.1:8080 app.socket (Stream, fd http)", "/run/app.sock",
		"socket-replaced 2×, last 1m0s ago: hung up (EPOLLHUP)"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("status lacks %q:\n%s", s, r.stdout)
		}
	}

	for unit, want := range map[string]string{"exit": "   Last exit: exit status 0\n", "result": "   Last exit: result protocol\n"} {
		if r := sockctl(t, nil, false, "--api", path, "status", unit); !strings.HasSuffix(r.stdout, want) {
			t.Errorf("status %s: want %q last:\n%s", unit, want, r.stdout)
		}
	}

	r = sockctl(t, nil, false, "--api", path, "status", "nope")
	if r.code != 1 || r.stderr != "sockctl: unit nope: not found\n" {
		t.Errorf("status nope: exit %d: %q", r.code, r.stderr)
	}
}

// The status shows each listening socket's accept queue, and warns when
// it is over half the backlog; a socket whose queue is unknown shows none.
func TestStatusQueue(t *testing.T) {
	path := serve(t, &backend{})
	r := sockctl(t, nil, false, "--api", path, "status", "queued")
	want := "      Listen: 127.0.0.1:8080 queued.socket (Stream, fd http) queue 3/4096\n" +
		"            : /run/queued.sock queued.socket (Stream, fd local) queue 5/8\n" +
		"            :   warning: the app does not accept fast enough: 5 of 8 queued\n" +
		"            : 127.0.0.1:5353 queued.socket (Datagram, fd dns)\n"
	if r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("exit %d:\n%s\nwant:\n%s", r.code, r.stdout, want)
	}
	if strings.Count(r.stdout, "warning") != 1 {
		t.Errorf("one warning expected:\n%s", r.stdout)
	}
}

// The status names the unit's control group, and every process in its
// cgroup (a daemonized grandchild too).
func TestStatusControlGroup(t *testing.T) {
	path := serve(t, &backend{})
	for unit, want := range map[string]string{
		"cg": "      CGroup: cgroup /sys/fs/cgroup/unified/sockd/cg.service\n            : 10, 12\n",
		"pg": "      CGroup: process group\n",
	} {
		r := sockctl(t, nil, false, "--api", path, "status", unit)
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("status %s: exit %d, want %q in:\n%s%s", unit, r.code, want, r.stdout, r.stderr)
		}
	}
}

// A held unit says who holds it.
func TestStatusHeld(t *testing.T) {
	path := serve(t, &backend{})
	r := sockctl(t, nil, false, "--api", path, "status", "held")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "held.service - inactive (held)") || !strings.Contains(r.stdout, "     Held by: pid 4242, outside sockd") {
		t.Errorf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestSimpleVerbs(t *testing.T) {
	b := &backend{}
	path := serve(t, b)
	for _, tc := range []struct {
		args []string
		call string
	}{
		{[]string{"start", "app"}, "start app"},
		{[]string{"stop", "app.service"}, "stop app.service"},
		{[]string{"reload-app", "app"}, "reload-app app"},
		{[]string{"restart", "app"}, "restart app wait=false stop-first=false"},
		{[]string{"restart", "--stop-first", "app"}, "restart app wait=false stop-first=true"},
	} {
		r := sockctl(t, nil, false, append([]string{"--api=" + path}, tc.args...)...)
		if r.code != 0 || r.stdout != "" || r.stderr != "" || b.lastCall() != tc.call {
			t.Errorf("%q: exit %d, call %q\n%s%s", tc.args, r.code, b.lastCall(), r.stdout, r.stderr)
		}
	}
	if r := sockctl(t, nil, false, "--api", path, "stop", "nope"); r.code != 1 {
		t.Errorf("stop nope: exit %d", r.code)
	}
}

func TestRestartWait(t *testing.T) {
	b := &backend{restart: okRestart}
	path := serve(t, b)

	r := sockctl(t, nil, false, "--api", path, "restart", "app", "--wait")
	want := "spawned pid 1300\nwaiting for ready...\nready (pid 1300)\ndraining pid 1234\npid 1234 stopped\ndone in 812 ms\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("exit %d\n%s\nwant\n%s\n%s", r.code, r.stdout, want, r.stderr)
	}

	// On a terminal the waiting line is replaced by the next one.
	r = sockctl(t, nil, true, "--api", path, "restart", "app", "--wait")
	if r.code != 0 || !strings.Contains(r.stdout, "waiting for ready…\r\x1b[Kready (pid 1300)\n") {
		t.Errorf("terminal: exit %d %q", r.code, r.stdout)
	}

	r = sockctl(t, nil, false, "--api", path, "--json", "restart", "app", "--wait")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var last struct{ Result api.RestartResult }
	if r.code != 0 || len(lines) != 7 || json.Unmarshal([]byte(lines[6]), &last) != nil || !last.Result.OK {
		t.Errorf("--json: exit %d\n%s", r.code, r.stdout)
	}
	var e api.Event
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil || e.Phase != api.PhaseSpawned || e.Pid != 1300 {
		t.Errorf("first line %s: %v", lines[0], err)
	}

	// A note is printed once, as it is.
	b.restart = func(progress func(api.Event)) (api.RestartResult, error) {
		progress(api.Event{Phase: api.PhaseNote, Message: "Type=forking: stop, then start"})
		return okRestart(progress)
	}
	r = sockctl(t, nil, false, "--api", path, "restart", "app", "--wait")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "Type=forking: stop, then start\nspawned pid 1300\n") {
		t.Errorf("note: exit %d\n%s", r.code, r.stdout)
	}

	b.restart = rolledBack
	r = sockctl(t, nil, false, "--api", path, "restart", "app", "--wait")
	if r.code != 1 ||
		!strings.Contains(r.stdout, "failed: exited with status 1 before READY=1\n") ||
		!strings.Contains(r.stderr, "sockctl: restart app.service: rolled-back: exited with status 1 before READY=1\n") ||
		!strings.Contains(r.stderr, "  config error: no such file\n  exiting\n") {
		t.Errorf("rollback: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if r := sockctl(t, nil, false, "--api", path, "restart", "nope", "--wait"); r.code != 1 {
		t.Errorf("restart nope: exit %d", r.code)
	}
}

func TestRestartTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	path := serve(t, &backend{restart: func(progress func(api.Event)) (api.RestartResult, error) {
		progress(api.Event{Phase: api.PhaseWaiting})
		<-release
		return api.RestartResult{OK: true}, nil
	}})
	r := sockctl(t, nil, false, "--api", path, "restart", "app", "--wait", "--timeout", "200ms")
	if r.code != 1 || !strings.Contains(r.stderr, "timed out after 200ms") {
		t.Errorf("exit %d: %s", r.code, r.stderr)
	}
}

func TestReload(t *testing.T) {
	b := &backend{}
	path := serve(t, b)
	r := sockctl(t, nil, false, "--api", path, "reload")
	if r.code != 0 || r.stdout != "no changes\n" {
		t.Errorf("exit %d %q", r.code, r.stdout)
	}
	b.reload = api.ReloadResult{Added: []string{"new.service"}, Changed: []string{"app.service"},
		Diagnostics: []api.Diagnostic{
			{File: "old.socket", Severity: "warning", Message: "m", Text: "old.socket:2: Backlog: ignored"},
			{File: "bad.socket", Line: 4, Option: "ListenStream", Severity: "error", Message: "bad address"},
		}}
	r = sockctl(t, nil, false, "--api", path, "reload")
	if r.code != 1 || r.stdout != "added: new.service\nchanged: app.service\n" ||
		!strings.Contains(r.stderr, "warning: old.socket:2: Backlog: ignored\nerror: bad.socket:4: ListenStream: bad address\n") {
		t.Errorf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = sockctl(t, nil, false, "--api", path, "reload", "--json")
	var res api.ReloadResult
	if r.code != 1 || json.Unmarshal([]byte(r.stdout), &res) != nil || len(res.Diagnostics) != 2 {
		t.Errorf("--json: exit %d\n%s", r.code, r.stdout)
	}
}

func TestLogs(t *testing.T) {
	b := &backend{}
	path := serve(t, b)
	r := sockctl(t, nil, false, "--api", path, "logs", "app", "-n", "5")
	if r.code != 0 || b.lastCall() != "logs app 5" || !strings.Contains(r.stdout, "[1234] listening\n") || !strings.Contains(r.stdout, "[1234 stderr] warning: x\n") {
		t.Errorf("exit %d %q\n%s", r.code, b.lastCall(), r.stdout)
	}
	r = sockctl(t, nil, false, "--api", path, "logs", "app", "--json")
	var lines []api.LogLine
	if r.code != 0 || b.lastCall() != "logs app 100" || json.Unmarshal([]byte(r.stdout), &lines) != nil || len(lines) != 2 {
		t.Errorf("--json: exit %d %q\n%s", r.code, b.lastCall(), r.stdout)
	}
}

func TestLogsFilters(t *testing.T) {
	b := &backend{}
	path := serve(t, b)
	r := sockctl(t, nil, false, "--api", path, "logs", "app", "--stream", "stderr", "--since", "2025-06-01T12:00:30Z")
	if r.code != 0 || b.lastCall() != "logs app 100 stream=stderr since=2025-06-01T12:00:30Z" || r.stdout == "" ||
		strings.Contains(r.stdout, "listening") || !strings.Contains(r.stdout, "[1234 stderr] warning: x\n") {
		t.Errorf("exit %d %q\n%s%s", r.code, b.lastCall(), r.stdout, r.stderr)
	}
	r = sockctl(t, nil, false, "--api", path, "logs", "app", "--since=2025-06-01T12:05:00Z")
	if r.code != 0 || r.stdout != "" {
		t.Errorf("nothing since: exit %d\n%s", r.code, r.stdout)
	}
}

func TestLogsFollow(t *testing.T) {
	b := &backend{}
	path := serve(t, b)
	// Followed until sockd ends the stream: the lines, then the reason,
	// exit 1.
	r := sockctl(t, nil, false, "--api", path, "logs", "gone", "-f", "--stream", "stdout")
	if r.code != 1 || b.lastCall() != "follow gone 100 stream=stdout" ||
		!strings.Contains(r.stdout, "[1234] listening\n") || !strings.Contains(r.stdout, "[1234] new line\n") || strings.Contains(r.stdout, "warning") ||
		!strings.Contains(r.stderr, "the unit was removed") {
		t.Errorf("exit %d %q\nstdout:\n%s\nstderr:\n%s", r.code, b.lastCall(), r.stdout, r.stderr)
	}
	// Followed until the user's end (here --timeout): exit 0; --json is
	// one object per line.
	r = sockctl(t, nil, false, "--api", path, "logs", "app", "--follow", "--json", "-n", "7", "--timeout", "300ms")
	if r.code != 0 || b.lastCall() != "follow app 7" || strings.Count(r.stdout, "\n") != 3 {
		t.Fatalf("exit %d %q\nstdout:\n%s\nstderr:\n%s", r.code, b.lastCall(), r.stdout, r.stderr)
	}
	for i, s := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var l api.LogLine
		if err := json.Unmarshal([]byte(s), &l); err != nil || l.Pid != 1234 {
			t.Errorf("line %d: %q: %v", i, s, err)
		}
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2025-06-01T11:00:00Z":      now.Add(-time.Hour),
		"2025-06-01T13:00:00+02:00": now.Add(-time.Hour),
		"10m":                       now.Add(-10 * time.Minute),
		"-1h30m":                    now.Add(-90 * time.Minute),
		"2h ago":                    now.Add(-2 * time.Hour),
		"2025-06-01 10:11:12":       time.Date(2025, 6, 1, 10, 11, 12, 0, time.Local),
		"2025-06-01":                time.Date(2025, 6, 1, 0, 0, 0, 0, time.Local),
	} {
		if got, err := parseSince(in, now); err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "yesterday", "ago", "10", "1x", "2025-13-01"} {
		if got, err := parseSince(in, now); err == nil {
			t.Errorf("parseSince(%q) = %v, want an error", in, got)
		}
	}
}

// buildSockctl builds the real binary once per test that needs it.
func buildSockctl(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("linux only")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, "sockctl"), ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// TestBinaryAndDeployHook runs the built sockctl, and contrib/deploy-hook
// with it on PATH, against the fake server.
func TestBinaryAndDeployHook(t *testing.T) {
	bin := buildSockctl(t)
	b := &backend{restart: okRestart, listFailed: true}
	path := serve(t, b)
	hook, err := filepath.Abs("../../contrib/deploy-hook")
	if err != nil {
		t.Fatal(err)
	}
	run := func(api string, name string, args ...string) result {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if name == "sockctl" {
			name = filepath.Join(bin, name)
		}
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "SOCKD_API="+api)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return result{code, out.String(), errb.String()}
	}

	if r := run(path, "sockctl", "list"); r.code != 0 || !strings.HasPrefix(r.stdout, "UNIT") {
		t.Errorf("sockctl list: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := run("/nonexistent/api.sock", "sockctl", "list"); r.code != 3 || !strings.HasPrefix(r.stderr, "sockctl: cannot reach sockd at /nonexistent/api.sock") {
		t.Errorf("unreachable: %d %s", r.code, r.stderr)
	}
	if r := run(path, "sockctl", "jump"); r.code != 2 {
		t.Errorf("usage: %d %s", r.code, r.stderr)
	}

	r := run(path, hook, "app", "--timeout", "20s")
	if r.code != 0 || !strings.Contains(r.stdout, "done in 812 ms") || !strings.Contains(r.stdout, "deploy-hook: app restarted") {
		t.Errorf("deploy-hook ok: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := b.lastCall(); got != "restart app wait=true stop-first=false" {
		t.Errorf("backend saw %q", got)
	}
	b.restart = rolledBack
	r = run(path, hook, "app")
	if r.code != 1 || !strings.Contains(r.stderr, "rolled-back") || !strings.Contains(r.stderr, "deploy-hook: app: restart failed") {
		t.Errorf("deploy-hook rollback: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := run("/nonexistent/api.sock", hook, "app"); r.code != 3 {
		t.Errorf("deploy-hook unreachable: %d %s", r.code, r.stderr)
	}
	if r := run(path, hook); r.code != 2 {
		t.Errorf("deploy-hook no unit: %d %s", r.code, r.stderr)
	}

	// Bash completion asks the built sockctl for unit names.
	if _, err := exec.LookPath("bash"); err == nil {
		script, err := filepath.Abs("../../contrib/completion/sockctl.bash")
		if err != nil {
			t.Fatal(err)
		}
		r := run(path, "bash", "-c", `source "$1"; COMP_WORDS=(sockctl restart ""); COMP_CWORD=2; _sockctl; echo "${COMPREPLY[*]}"`, "bash", script)
		if r.code != 0 || r.stdout != "app idle broken\n" {
			t.Errorf("completion: %d %q %s", r.code, r.stdout, r.stderr)
		}
		r = run(path, "bash", "-c", `source "$1"; COMP_WORDS=(sockctl ev); COMP_CWORD=1; _sockctl; echo "${COMPREPLY[*]}"`, "bash", script)
		if r.code != 0 || r.stdout != "events\n" {
			t.Errorf("completion of the events verb: %d %q %s", r.code, r.stdout, r.stderr)
		}
		r = run(path, "bash", "-c", `source "$1"; COMP_WORDS=(sockctl events ""); COMP_CWORD=2; _sockctl; echo "${COMPREPLY[*]}"`, "bash", script)
		if r.code != 0 || r.stdout != "app idle broken\n" {
			t.Errorf("completion of events UNIT: %d %q %s", r.code, r.stdout, r.stderr)
		}
		// Flags come from sockctl itself, per verb; a flag's value is not
		// taken for the verb.
		r = run(path, "bash", "-c", `source "$1"; COMP_WORDS=(sockctl restart --w); COMP_CWORD=2; _sockctl; echo "${COMPREPLY[*]}"`, "bash", script)
		if r.code != 0 || r.stdout != "--wait\n" {
			t.Errorf("completion of restart's flags: %d %q %s", r.code, r.stdout, r.stderr)
		}
		r = run(path, "bash", "-c", `source "$1"; COMP_WORDS=(sockctl --timeout 5s da); COMP_CWORD=3; _sockctl; echo "${COMPREPLY[*]}"`, "bash", script)
		if r.code != 0 || r.stdout != "daemon-reexec\n" {
			t.Errorf("completion after --timeout VALUE: %d %q %s", r.code, r.stdout, r.stderr)
		}
		// reset-failed offers the failed units only.
		r = run(path, "bash", "-c", `source "$1"; COMP_WORDS=(sockctl reset-failed ""); COMP_CWORD=2; _sockctl; echo "${COMPREPLY[*]}"`, "bash", script)
		if r.code != 0 || r.stdout != "broken\n" {
			t.Errorf("completion of reset-failed: %d %q %s", r.code, r.stdout, r.stderr)
		}
	}
}

// status says when a unit starts again by itself: after RestartSec=, or
// (back-off) no connection starts it before.
func TestStatusNextStart(t *testing.T) {
	path := serve(t, &backend{})
	r := sockctl(t, nil, false, "--api", path, "status", "backoff")
	if r.code != 0 || !strings.Contains(r.stdout, "  Next start: ") || !strings.Contains(r.stdout, "(in 1m") ||
		!strings.Contains(r.stdout, "on a connection: back-off after a failed start") {
		t.Errorf("status backoff: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = sockctl(t, nil, false, "--api", path, "status", "restarting")
	if r.code != 0 || !strings.Contains(r.stdout, "  Next start: ") || !strings.Contains(r.stdout, "(in 59m") ||
		strings.Contains(r.stdout, "back-off") {
		t.Errorf("status restarting: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = sockctl(t, nil, false, "--api", path, "status", "--json", "backoff")
	var m struct {
		Service struct {
			NextStart time.Time `json:"next_start"`
		} `json:"service"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil || time.Until(m.Service.NextStart) < time.Minute {
		t.Errorf("status --json backoff: %v\n%s", err, r.stdout)
	}
	if r := sockctl(t, nil, false, "--api", path, "status", "--json", "app"); strings.Contains(r.stdout, "next_start") {
		t.Errorf("next_start of a running unit: %s", r.stdout)
	}
}

// reset-failed UNIT, reset-failed (every unit), --json, and its errors.
func TestResetFailed(t *testing.T) {
	b := &backend{}
	path := serve(t, b)
	for _, tc := range []struct {
		args       []string
		call, json string
	}{
		{[]string{"reset-failed", "result"}, "reset-failed result", ""},
		{[]string{"reset-failed"}, "reset-failed ", ""},
		{[]string{"reset-failed", "app"}, "reset-failed app", ""}, // not failed: nothing to do, no error
		{[]string{"--json", "reset-failed"}, "reset-failed ", `{"units":["backoff.service","result.service"]}` + "\n"},
		{[]string{"reset-failed", "backoff", "--json"}, "reset-failed backoff", `{"units":["backoff.service"]}` + "\n"},
		{[]string{"reset-failed", "app", "--json"}, "reset-failed app", `{"units":[]}` + "\n"},
	} {
		r := sockctl(t, nil, false, append([]string{"--api=" + path}, tc.args...)...)
		if r.code != 0 || r.stdout != tc.json || r.stderr != "" || b.lastCall() != tc.call {
			t.Errorf("%q: exit %d, call %q\nstdout %q\n%s", tc.args, r.code, b.lastCall(), r.stdout, r.stderr)
		}
	}
	if r := sockctl(t, nil, false, "--api", path, "reset-failed", "nope"); r.code != 1 || r.stderr != "sockctl: unit nope: not found\n" {
		t.Errorf("reset-failed nope: exit %d: %q", r.code, r.stderr)
	}
	if r := sockctl(t, nil, false, "--api", path, "reset-failed", "a", "b"); r.code != 2 ||
		!strings.Contains(r.stderr, `reset-failed: unexpected argument "b"`) {
		t.Errorf("reset-failed a b: exit %d: %q", r.code, r.stderr)
	}
	if r := sockctl(t, nil, false, "help"); !strings.Contains(r.stdout, "reset-failed [UNIT]") {
		t.Errorf("usage lacks reset-failed:\n%s", r.stdout)
	}
}

// TestListFilters: PATTERN and --state reach the API's filters, and a bad
// one is a usage error naming it.
func TestListFilters(t *testing.T) {
	path := serve(t, &backend{})
	for _, tc := range []struct {
		args []string
		code int
		rows string // the units listed, in order
	}{
		{[]string{"list", "app*"}, 0, "app.service"},
		{[]string{"list", "app"}, 0, "app.service"},
		{[]string{"list", "idle.service"}, 0, "idle.service"},
		{[]string{"list", "app,idle"}, 0, "app.service idle.service"},
		{[]string{"list", "--state", "inactive"}, 0, "idle.service"},
		{[]string{"list", "--state=running"}, 0, "app.service"},
		{[]string{"list", "--state", "failed,active"}, 0, "app.service"},
		{[]string{"list", "idle", "--state", "active"}, 0, ""},
		{[]string{"list", "--state", "Running!"}, 2, ""},
		{[]string{"list", "["}, 2, ""},
		{[]string{"status", "app", "--state", "active"}, 2, ""},
	} {
		r := sockctl(t, nil, false, append(tc.args, "--api", path)...)
		var rows []string
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n")[1:] {
			rows = append(rows, strings.Fields(line)[0])
		}
		if r.code != tc.code || tc.code == 0 && strings.Join(rows, " ") != tc.rows {
			t.Errorf("%q: exit %d, rows %q; want %d, %q\n%s", tc.args, r.code, rows, tc.code, tc.rows, r.stderr)
		}
		if tc.code == 2 && !strings.Contains(r.stderr, "--state") && !strings.Contains(r.stderr, "PATTERN") {
			t.Errorf("%q: the error names neither --state nor PATTERN: %s", tc.args, r.stderr)
		}
	}
}
