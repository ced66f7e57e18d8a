package supervisord

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockd/sockd/internal/testutil"
)

// notifyService is childMain's "serve" mode as a Type=notify service:
// it is started once it says READY=1.
const notifyService = "Type=notify\nEnvironment=SOCKD_TEST_CHILD=serve\n"

// mustStop stops the unit, and fails the test if the stop fails.
func (e *env) mustStop() {
	e.t.Helper()
	if err := e.d.Stop(e.ctx(), "app"); err != nil {
		e.t.Fatalf("stop: %v", err)
	}
}

// stopGate is an ExecStop= that blocks until release is called, so that a
// stop (or a shutdown) stays under way as long as a test needs; once
// released, later ExecStop= runs return at once.
type stopGate struct {
	t          *testing.T
	fifo, open string
}

func newStopGate(t *testing.T) *stopGate {
	t.Helper()
	dir := testutil.ShortDir(t)
	g := &stopGate{t: t, fifo: filepath.Join(dir, "gate"), open: filepath.Join(dir, "open")}
	if err := syscall.Mkfifo(g.fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	return g
}

// line is the [Service] line that installs the gate.
func (g *stopGate) line() string {
	return "ExecStop=/bin/sh -c \"test -e " + g.open + " || cat " + g.fifo + " >/dev/null\"\nTimeoutStopSec=30s\n"
}

// release lets the ExecStop= waiting on the gate (or about to) finish;
// it waits until that ExecStop= has opened it.
func (g *stopGate) release() {
	g.t.Helper()
	opened := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(g.fifo, os.O_WRONLY, 0) // waits for the reader
		if err == nil {
			f.Close()
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		if err != nil {
			g.t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		g.t.Fatal("ExecStop= never opened the gate")
	}
	// Only now: before, the ExecStop= under way could skip the FIFO.
	if err := os.WriteFile(g.open, nil, 0o644); err != nil {
		g.t.Fatal(err)
	}
}

// queueRestart hands the actor a restart that does not wait, as
// Daemon.Restart does, but on the actor's request channel directly and
// with its own reply channel. It returns once the restart is queued
// (acked), or its error.
func (e *env) queueRestart() error {
	e.t.Helper()
	u, err := e.d.lookup("app")
	if err != nil {
		e.t.Fatal(err)
	}
	rc := make(chan reply, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := u.ask(ctx, &request{kind: reqRestart, reply: rc}); err != nil {
		e.t.Fatalf("actor does not take requests: %v", err)
	}
	select {
	case rep := <-rc:
		return rep.err
	case <-time.After(20 * time.Second):
		e.t.Fatal("restart without wait not acked")
	}
	return nil
}

// readFIFO waits for a writer on path and reads what it writes.
func readFIFO(t *testing.T, path string) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := os.ReadFile(path)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("nobody wrote to %s", path)
	}
}

func countFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// settleFDs gives descriptors that close once a goroutine ends (an
// exited process's output pipes, read until their grace ends) a moment
// to close; it returns as soon as the count is back to want.
func settleFDs(t *testing.T, want int) int {
	n := countFDs(t)
	for i := 0; i < 100 && n > want; i++ {
		time.Sleep(10 * time.Millisecond)
		n = countFDs(t)
	}
	return n
}

// fdList names this process's open fds, for a failure message.
func fdList(t *testing.T) string {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		fmt.Fprintf(&b, " %s→%s", e.Name(), l)
	}
	return b.String()
}

// settleGoroutines gives exiting goroutines (timer funcs, wait
// goroutines) a moment to finish; it returns as soon as the count is back
// to want.
func settleGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for i := 0; i < 100 && n > want; i++ {
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

// zombies lists our children in state Z.
func zombies(t *testing.T) []int {
	var out []int
	for _, c := range ourChildren(t) {
		if c.state == "Z" {
			out = append(out, c.pid)
		}
	}
	return out
}

// child is one of the test process's children, from /proc.
type child struct {
	pid     int
	state   string // "R", "S", "Z", …
	cmdline string
}

// ourChildren lists the processes whose parent is this test process.
func ourChildren(t *testing.T) []child {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	me := strconv.Itoa(os.Getpid())
	var out []child
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + ent.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[1] != me {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + ent.Name() + "/cmdline")
		out = append(out, child{pid: pid, state: f[0], cmdline: string(cmd)})
	}
	return out
}

// childrenRunning lists our children (not zombies) whose command line
// contains arg.
func childrenRunning(t *testing.T, arg string) []int {
	var out []int
	for _, c := range ourChildren(t) {
		if c.state != "Z" && strings.Contains(c.cmdline, arg) {
			out = append(out, c.pid)
		}
	}
	return out
}
