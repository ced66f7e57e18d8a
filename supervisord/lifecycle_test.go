package supervisord

// Locks and contexts of the Daemon's own life: reloads that stop units,
// a shutdown during a reload, helper commands at shutdown.

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/testutil"
)

// fifoLines opens the FIFO path for reading and returns its lines as
// they come; the channel closes when every writer has gone and the test
// ends.
func fifoLines(t *testing.T, path string) <-chan string {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	out := make(chan string, 16)
	go func() {
		defer close(out)
		// O_RDWR: the read end stays open between writers.
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return
		}
		t.Cleanup(func() { f.Close() })
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			out <- sc.Text()
		}
	}()
	return out
}

func nextLine(t *testing.T, lines <-chan string) string {
	t.Helper()
	select {
	case l := <-lines:
		return l
	case <-time.After(20 * time.Second):
		t.Fatal("no line")
		return ""
	}
}

// A reload stops the units it removes at the same time, not one after
// another: both ExecStop= run before either is let go.
func TestReloadRemovesConcurrently(t *testing.T) {
	e := newEnv(t, notifyService)
	dir := testutil.ShortDir(t)
	up := fifoLines(t, filepath.Join(dir, "up"))
	for _, n := range []string{"b", "c"} {
		gate := filepath.Join(dir, "gate-"+n)
		if err := syscall.Mkfifo(gate, 0o600); err != nil {
			t.Fatal(err)
		}
		e.write(n+".service", "[Service]\nExecStart=/bin/sleep 60\nTimeoutStopSec=30s\n"+
			"ExecStop=/bin/sh -c 'echo "+n+" >"+dir+"/up; cat "+gate+" >/dev/null'\n")
	}
	if res, err := e.d.Reload(e.ctx()); err != nil || len(res.Added) != 2 {
		t.Fatalf("reload: %+v %v", res, err)
	}
	for _, n := range []string{"b", "c"} {
		e.awaitUnit(n, func(st api.ServiceStatus) bool { return st.State == api.StateActive })
	}
	os.Remove(filepath.Join(e.dir, "b.service"))
	os.Remove(filepath.Join(e.dir, "c.service"))
	done := make(chan api.ReloadResult, 1)
	go func() {
		res, _ := e.d.Reload(e.ctx())
		done <- res
	}()
	got := map[string]bool{nextLine(t, up): true, nextLine(t, up): true}
	if !got["b"] || !got["c"] {
		t.Fatalf("ExecStop= lines %v", got)
	}
	for _, n := range []string{"b", "c"} {
		f, err := os.OpenFile(filepath.Join(dir, "gate-"+n), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if res := <-done; strings.Join(res.Removed, ",") != "b.service,c.service" {
		t.Fatalf("removed %v", res.Removed)
	}
}

// stubborn writes a unit "b" whose process ignores SIGTERM and is never
// sent SIGKILL; it says "ready" on up once it ignores SIGTERM, and its
// ExecStop= says on up that the stop began. It returns the process's
// pid and kills it at the end of the test.
func stubborn(t *testing.T, e *env, up string, lines <-chan string) int {
	t.Helper()
	e.write("b.service", "[Service]\nExecStart=/bin/sh -c \"trap '' TERM; echo ready >"+up+"; exec sleep 60\"\n"+
		"SendSIGKILL=no\nTimeoutStopSec=1s\nExecStop=/bin/sh -c 'echo stopping >"+up+"'\n")
	if _, err := e.d.Reload(e.ctx()); err != nil {
		t.Fatal(err)
	}
	st := e.awaitUnit("b", func(st api.ServiceStatus) bool { return len(st.Pids) == 1 })
	pid := st.Pids[0]
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if l := nextLine(t, lines); l != "ready" {
		t.Fatalf("%q from b", l)
	}
	return pid
}

// Reload honours its context: a removed unit that does not stop leaves
// the reload when the caller gives up, not after twice TimeoutStopSec=
// plus 30 s.
func TestReloadHonoursContext(t *testing.T) {
	e := newEnv(t, notifyService)
	dir := testutil.ShortDir(t)
	up := fifoLines(t, filepath.Join(dir, "up"))
	stubborn(t, e, filepath.Join(dir, "up"), up)
	os.Remove(filepath.Join(e.dir, "b.service"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := e.d.Reload(ctx)
		done <- err
	}()
	nextLine(t, up) // the stop began
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("reload: %v, want context canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reload did not return when its context ended")
	}
}

// A shutdown during a reload does not wait behind it: the reload stops
// waiting for the unit it removes, and the shutdown's own context bounds
// the stop.
func TestShutdownDuringReload(t *testing.T) {
	e := newEnv(t, notifyService)
	dir := testutil.ShortDir(t)
	up := fifoLines(t, filepath.Join(dir, "up"))
	pid := stubborn(t, e, filepath.Join(dir, "up"), up)
	os.Remove(filepath.Join(e.dir, "b.service"))
	done := make(chan error, 1)
	go func() {
		_, err := e.d.Reload(context.Background())
		done <- err
	}()
	nextLine(t, up)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := e.d.Shutdown(ctx)
	if err == nil || !strings.Contains(err.Error(), "b.service") {
		t.Fatalf("shutdown: %v, want b.service left running", err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("reload succeeded although its unit never stopped")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reload still waiting after shutdown")
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// ExecReload= runs on the unit's life: a shutdown kills one under way.
func TestShutdownStopsExecReload(t *testing.T) {
	dir := testutil.ShortDir(t)
	up := fifoLines(t, filepath.Join(dir, "up"))
	e := newEnv(t, notifyService+"ExecReload=/bin/sh -c \"echo up >"+dir+"/up; exec sleep 61.5\"\n")
	t.Cleanup(func() {
		for _, pid := range childrenRunning(t, "61.5") {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	e.mustGet()
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
	reloaded := make(chan error, 1)
	go func() { reloaded <- e.d.ReloadApp(e.ctx(), "app") }()
	nextLine(t, up)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-reloaded; err == nil {
		t.Fatal("reload-app succeeded although shutdown killed it")
	}
	if left := childrenRunning(t, "61.5"); len(left) > 0 {
		t.Fatalf("ExecReload= still running after shutdown: %v", left)
	}
}

// An ExecStop= whose EnvironmentFile= became unreadable fails with a
// message naming the file, instead of running without PATH; the process
// is stopped all the same.
func TestExecStopEnvironmentFileGone(t *testing.T) {
	dir := testutil.ShortDir(t)
	envFile := filepath.Join(dir, "env")
	if err := os.WriteFile(envFile, []byte("A=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, notifyService+"EnvironmentFile="+envFile+"\nExecStop=/bin/echo stop-ran\n")
	e.mustGet()
	st := e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
	os.Remove(envFile)
	if err := e.d.Stop(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	if alive(st.Pids[0]) {
		t.Fatalf("pid %d alive after stop", st.Pids[0])
	}
	logs, _ := e.d.Logs(e.ctx(), "app", api.LogQuery{N: 50})
	var text []string
	for _, l := range logs {
		text = append(text, l.Line)
	}
	all := strings.Join(text, "\n")
	if strings.Contains(all, "stop-ran") || !strings.Contains(all, "EnvironmentFile="+envFile) {
		t.Fatalf("logs:\n%s", all)
	}
}

// awaitUnit waits until the unit name's status matches.
func (e *env) awaitUnit(name string, match func(api.ServiceStatus) bool) api.ServiceStatus {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := e.d.Status(e.ctx(), name)
		if err == nil && match(st.Service) {
			return st.Service
		}
		select {
		case <-e.obs: // every change of every unit is observed
		case <-time.After(time.Until(deadline)):
			e.t.Fatalf("unit %s: %+v %v", name, st, err)
		}
	}
}

// A stop is done when ExecStop= is: a process that exits while its
// ExecStop= still runs keeps the unit deactivating until that ends.
func TestStopWaitsForExecStop(t *testing.T) {
	dir := testutil.ShortDir(t)
	log := filepath.Join(dir, "log")
	e := newEnv(t, notifyService+"ExecStop=/bin/sh -c 'kill $MAINPID; sleep 0.3; echo ended >>"+log+"'\n")
	e.mustGet()
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
	if err := e.d.Stop(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(log); string(b) != "ended\n" {
		t.Fatalf("stop answered before ExecStop= ended (log %q)", b)
	}
}
