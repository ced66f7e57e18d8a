package supervisord

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/testutil"
)

// shutdownAsync shuts the daemon down within d and sends the result on
// the channel it returns.
func (e *env) shutdownAsync(d time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		done <- e.d.Shutdown(ctx)
	}()
	return done
}

// A restart queued while Shutdown drains the old process starts no new
// generation (it may be refused): Shutdown returns in time and the old
// process is gone. (Such a restart used to spawn a process that nothing
// stopped, so Shutdown timed out and the child outlived it.)
func TestRestartDuringShutdownStartsNothing(t *testing.T) {
	g := newStopGate(t)
	e := newEnv(t, notifyService+g.line())
	old, _ := e.mustGet()
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
	shut := e.shutdownAsync(5 * time.Second)
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateDeactivating })
	// Acked once queued (Wait=false), so it is queued before the release.
	// An error (refused: shutting down) is the right answer too.
	e.queueRestart()
	g.release()
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("shutdown: %v (a restart queued during the shutdown started a process that nothing stops)", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("shutdown never returned")
	}
	if alive(old) {
		t.Fatalf("old pid %d alive after shutdown", old)
	}
}

// A start queued while Shutdown drains the unit is answered with an error
// once the shutdown is done. With ExecStartPre= no process runs at first,
// so this is the case where the unit's actor could end with the start
// still queued. (Its caller used to be left waiting.)
func TestStartDuringShutdownRefused(t *testing.T) {
	g := newStopGate(t)
	e := newEnv(t, notifyService+"ExecStartPre=/bin/true\n"+g.line())
	e.mustGet()
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
	u, err := e.d.lookup("app")
	if err != nil {
		t.Fatal(err)
	}
	shut := e.shutdownAsync(20 * time.Second)
	e.await(func(st api.ServiceStatus) bool { return st.State == api.StateDeactivating })
	// Sent on u.reqs directly: the send returns once the actor has it.
	r := &request{kind: reqStart, reply: make(chan reply, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := u.ask(ctx, r); err != nil {
		t.Fatalf("actor does not take requests: %v", err)
	}
	g.release()
	if err := <-shut; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	select {
	case rep := <-r.reply:
		if rep.err == nil {
			t.Fatalf("start during shutdown succeeded: %+v", rep)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("start queued during shutdown never answered (actor exited with it in u.ops)")
	}
}

// Shutdown during ExecStartPre= stops the command: nothing of it runs once
// Shutdown returns. (Exec*= helpers used to run on until TimeoutStartSec=,
// or for good if sockd exited first.)
func TestShutdownStopsExecStartPre(t *testing.T) {
	dir := testutil.ShortDir(t)
	up := filepath.Join(dir, "up")
	if err := syscall.Mkfifo(up, 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, notifyService+"ExecStartPre=/bin/sh -c \"echo up >"+up+"; exec sleep 61.25\"\n")
	t.Cleanup(func() {
		for _, pid := range childrenRunning(t, "61.25") {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	started := make(chan error, 1)
	go func() { started <- e.d.Start(e.ctx(), "app") }()
	readFIFO(t, up)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-started
	if left := childrenRunning(t, "61.25"); len(left) > 0 {
		t.Fatalf("ExecStartPre= still running after shutdown: pids %v", left)
	}
}
