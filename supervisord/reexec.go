package supervisord

// Re-executing sockd in place (cmd/sockd execs the new binary): the
// Daemon stops changing anything, writes its state for the next sockd,
// and leaves its sockets, pipes and children as they are. The next
// sockd, the same process, takes them back (recover.go): its children
// are still its children.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sockd/sockd/api"
)

// PrepareReexec readies the Daemon for sockd to exec itself: requests
// that change units are refused from now on, a reload under way ends
// first, and each unit finishes the job it has under way (a restart
// completes, or rolls back, before the exec: none is left half done)
// and then freezes: its actor handles nothing more, so no process starts
// or stops unseen. It then writes the state file for the next sockd. On
// an error (ctx ended first), AbortReexec undoes it.
func (d *Daemon) PrepareReexec(ctx context.Context) error {
	d.mu.Lock()
	if d.closed || d.reexec != nil {
		d.mu.Unlock()
		return fmt.Errorf("re-exec: sockd is shutting down or re-executing: %w", api.ErrConflict)
	}
	d.reexec = make(chan struct{})
	all := make([]*handle, 0, len(d.units))
	for _, u := range d.units {
		all = append(all, u)
	}
	d.mu.Unlock()
	if err := lockCtx(ctx, &d.reloadMu); err != nil {
		d.thaw(false)
		return fmt.Errorf("re-exec: waiting for the reload under way: %w", err)
	}
	for _, u := range all {
		r := &request{kind: reqFreeze, thaw: d.reexec}
		if _, err := u.call(ctx, r); err != nil {
			d.thaw(true)
			return fmt.Errorf("re-exec: %s: %w", u.name, err)
		}
	}
	d.state.close(false)
	f := d.state.snapshot()
	f.Reexec = true
	if err := writeState(filepath.Join(d.runDir, stateFileName), &f); err != nil {
		d.thaw(true)
		return fmt.Errorf("re-exec: %w", err)
	}
	return nil
}

// AbortReexec lets the Daemon go on after PrepareReexec when the exec
// did not happen.
func (d *Daemon) AbortReexec() {
	os.Remove(filepath.Join(d.runDir, stateFileName))
	d.state = newStateWriter(d.runDir, d.state.log)
	d.thaw(true)
}

// thaw ends a re-exec's freeze; locked tells whether reloadMu is held.
func (d *Daemon) thaw(locked bool) {
	d.mu.Lock()
	if d.reexec != nil {
		close(d.reexec)
		d.reexec = nil
	}
	d.mu.Unlock()
	if locked {
		d.reloadMu.Unlock()
	}
}

// reexecuting is the error for a request that would change a unit while
// sockd re-executes.
func (d *Daemon) reexecuting() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.reexec != nil {
		return fmt.Errorf("sockd is re-executing: %w", api.ErrConflict)
	}
	return nil
}

// lockCtx locks mu, or gives up when ctx ends (the lock is then taken
// and released by a goroutine once it comes free).
func lockCtx(ctx context.Context, mu interface {
	Lock()
	Unlock()
}) error {
	got := make(chan struct{})
	go func() {
		mu.Lock()
		close(got)
	}()
	select {
	case <-got:
		return nil
	case <-ctx.Done():
		go func() {
			<-got
			mu.Unlock()
		}()
		return ctx.Err()
	}
}
