package supervisord

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/units"
)

// fakeProc is a process behind the seam: it exits when the test says,
// or on a signal its behaviour accepts. Its pids are far above pid_max,
// so nothing real is ever signalled.
type fakeProc struct {
	pid  int
	path string
	env  []string
	done chan struct{}
	once sync.Once
	exit children.ExitStatus

	mu   sync.Mutex
	sigs []string // "TERM", "group KILL", …
	// ignore lists signals the process survives (SIGTERM for a stubborn
	// one); every other signal ends it.
	ignore map[syscall.Signal]bool
}

func (f *fakeProc) Pid() int                  { return f.pid }
func (f *fakeProc) Done() <-chan struct{}     { return f.done }
func (f *fakeProc) Exit() children.ExitStatus { return f.exit }

func (f *fakeProc) Signal(sig syscall.Signal) error      { return f.signal("", sig) }
func (f *fakeProc) SignalGroup(sig syscall.Signal) error { return f.signal("group ", sig) }

func (f *fakeProc) signal(to string, sig syscall.Signal) error {
	f.mu.Lock()
	f.sigs = append(f.sigs, to+sigName(sig))
	ignore := f.ignore[sig]
	f.mu.Unlock()
	if !ignore && sig != syscall.SIGHUP {
		f.exitWith(children.ExitStatus{Code: -1, Signal: sig})
	}
	return nil
}

// exitWith ends the process with st (once).
func (f *fakeProc) exitWith(st children.ExitStatus) {
	f.once.Do(func() {
		f.exit = st
		close(f.done)
	})
}

func (f *fakeProc) signals() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.sigs...)
}

func sigName(s syscall.Signal) string {
	switch s {
	case syscall.SIGTERM:
		return "TERM"
	case syscall.SIGKILL:
		return "KILL"
	case syscall.SIGHUP:
		return "HUP"
	case syscall.SIGINT:
		return "INT"
	}
	return s.String()
}

// fakeKernel starts fake processes. Helper commands (Exec*= lines) exit
// at once with the code their path names: /bin/true 0, /bin/false 1,
// /bin/exitN N;
// anything else is a main process and runs until the test ends it.
type fakeKernel struct {
	mu      sync.Mutex
	next    int
	procs   []*fakeProc // main processes, in start order
	helpers []string    // paths of helper commands run
	started chan *fakeProc
	fail    error // the next start fails with it
}

func newFakeKernel() *fakeKernel {
	return &fakeKernel{next: 100_000_000, started: make(chan *fakeProc, 64)}
}

// adopt watches a fake daemon of a Type=forking service: pid becomes a
// main process the test can end.
func (k *fakeKernel) adopt(pid int) (process, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f := &fakeProc{pid: pid, path: "(adopted)", done: make(chan struct{})}
	k.procs = append(k.procs, f)
	k.started <- f
	return f, nil
}

func (k *fakeKernel) start(s children.Spec) (process, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail != nil {
		err := k.fail
		k.fail = nil
		return nil, err
	}
	k.next++
	f := &fakeProc{pid: k.next, path: s.Path, env: s.Env, done: make(chan struct{})}
	switch s.Path {
	case "/bin/true":
		k.helpers = append(k.helpers, s.Path)
		f.exitWith(children.ExitStatus{})
		return f, nil
	case "/bin/false":
		k.helpers = append(k.helpers, s.Path)
		f.exitWith(children.ExitStatus{Code: 1})
		return f, nil
	}
	if code, ok := strings.CutPrefix(s.Path, "/bin/exit"); ok { // "/bin/exit255"
		n, _ := strconv.Atoi(code)
		k.helpers = append(k.helpers, s.Path)
		f.exitWith(children.ExitStatus{Code: n})
		return f, nil
	}
	k.procs = append(k.procs, f)
	k.started <- f
	return f, nil
}

// actorEnv is one unit actor on a fake kernel, without a Daemon: no
// socket (so it starts at once unless told otherwise), no notify socket;
// notifications are handed to it directly.
type actorEnv struct {
	t   *testing.T
	k   *fakeKernel
	u   *unit
	obs chan api.ServiceStatus
	// parked has a value each time the actor parks (park.go).
	parked chan struct{}
}

// newActor loads a service from [Service] lines and runs its actor on a
// fake kernel. With idle set the actor starts listening-less and dead
// (it is given a stop first), so that a test drives the first start.
func newActor(t *testing.T, serviceLines string) *actorEnv {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.service")
	if err := os.WriteFile(path, []byte("[Service]\n"+serviceLines+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	set, diags, err := units.LoadFiles(path)
	if err == nil {
		err = diags.Err()
	}
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	svc := set.Services["app.service"]
	e := &actorEnv{t: t, k: newFakeKernel(), obs: make(chan api.ServiceStatus, 1024)}
	e.u = newUnit(newHandle("app.service", svc, nil), svc, zerolog.New(zerolog.NewTestWriter(t)))
	e.u.start, e.u.adopt = e.k.start, e.k.adopt
	e.u.roots, e.u.lockDir = testRoots(t), filepath.Join(t.TempDir(), "dynamic-uid")
	e.u.observe = func(_ string, st api.ServiceStatus) {
		select {
		case e.obs <- st:
		default:
		}
	}
	e.u.enableParking()
	e.parked = make(chan struct{}, 1)
	e.u.park.onPark = func() {
		select {
		case e.parked <- struct{}{}:
		default:
		}
	}
	go e.u.run()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.u.call(ctx, &request{kind: reqShutdown})
		for _, p := range e.k.procs {
			p.exitWith(children.ExitStatus{Code: -1, Signal: syscall.SIGKILL})
		}
		select {
		case <-e.u.quit:
		case <-ctx.Done():
			t.Error("actor did not end")
		}
		e.u.helpers.Wait()
	})
	return e
}

// proc waits for the next main process the unit starts.
func (e *actorEnv) proc() *fakeProc {
	e.t.Helper()
	select {
	case p := <-e.k.started:
		return p
	case <-time.After(5 * time.Second):
		e.t.Fatal("no process started")
		return nil
	}
}

// noProc asserts that no main process is started before the unit next
// reports a status change.
func (e *actorEnv) noProc() {
	e.t.Helper()
	select {
	case p := <-e.k.started:
		e.t.Fatalf("unexpected process %d", p.pid)
	default:
	}
}

func (e *actorEnv) status() api.ServiceStatus {
	e.t.Helper()
	rep, err := e.u.call(context.Background(), &request{kind: reqStatus})
	if err != nil {
		e.t.Fatal(err)
	}
	return rep.status.Service
}

// await waits for a status that matches.
func (e *actorEnv) await(what string, match func(api.ServiceStatus) bool) api.ServiceStatus {
	e.t.Helper()
	if st := e.status(); match(st) {
		return st
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case st := <-e.obs:
			if match(st) {
				return st
			}
		case <-deadline:
			e.t.Fatalf("waiting for %s: status %+v", what, e.status())
		}
	}
}

// awaitSub waits for a sub-state.
func (e *actorEnv) awaitSub(sub string) api.ServiceStatus {
	e.t.Helper()
	return e.await(sub, func(st api.ServiceStatus) bool { return st.SubState == sub })
}

// notify hands the actor a message from pid, sent by root.
func (e *actorEnv) notify(pid int, msg string) { e.notifyAs(pid, 0, msg) }

// notifyAs hands the actor a message from pid, sent by uid.
func (e *actorEnv) notifyAs(pid, uid int, msg string) {
	n := children.Notification{Pid: pid, UID: uid, Raw: msg, Fields: map[string]string{}}
	for _, line := range splitLines(msg) {
		if k, v, ok := cutEq(line); ok {
			n.Fields[k] = v
		}
	}
	e.u.mail.put(n)
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func cutEq(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '=' {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}

// async sends a request without waiting for its answer.
func (e *actorEnv) async(kind reqKind, opts api.RestartOptions) chan reply {
	r := &request{kind: kind, opts: opts, reply: make(chan reply, 1)}
	if kind == reqRestart {
		r.events = make(chan api.Event, 64)
	}
	if err := e.u.ask(context.Background(), r); err != nil { // the actor takes requests in the order sent
		e.t.Fatal(err)
	}
	return r.reply
}

func (e *actorEnv) wait(ch chan reply) reply {
	e.t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		e.t.Fatal("no answer")
		return reply{}
	}
}
