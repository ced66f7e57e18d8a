package main

import (
	"context"
	"fmt"
	"time"

	"github.com/sockd/sockd/api"
)

// leakRestarts is how many restarts the leak step does.
const leakRestarts = 1000

// leaks restarts a demo unit 1,000 times, one after the other, and
// compares sockd's fds, goroutines and threads after the first restart
// with after the last, and counts zombie children.
func leaks(ctx context.Context, b *bins, p *ports, res *results) error {
	port, err := p.one()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s, stop, err := startUnit(ctx, b, "leak", addr, b.demoService(), 10*time.Second)
	if err != nil {
		return err
	}
	defer stop()
	var took []time.Duration
	restart := func() error {
		r, err := s.client.Restart(ctx, "leak", api.RestartOptions{Wait: true}, nil)
		if err != nil {
			return err
		}
		if !r.OK {
			return fmt.Errorf("restart %d: %s: %s", len(took)+1, r.Outcome, r.Cause)
		}
		took = append(took, time.Duration(r.Millis)*time.Millisecond)
		return nil
	}
	if err := restart(); err != nil {
		return err
	}
	before, err := s.client.Runtime(ctx)
	if err != nil {
		return fmt.Errorf("debug runtime: %w", err)
	}
	// Go never ends idle OS threads: their count rises to the most
	// blocking syscalls (fork, exec, wait4) ever under way at once, then
	// stays. Growth is judged from restart 100 on; restart 1 is shown.
	const warm = 100
	var at100 api.RuntimeInfo
	done := 1
	for ; done < leakRestarts; done++ {
		if err := restart(); err != nil {
			return fmt.Errorf("after %d restarts: %w", done, err)
		}
		if done == warm {
			if at100, err = s.client.Runtime(ctx); err != nil {
				return fmt.Errorf("debug runtime: %w", err)
			}
		}
		if done%100 == 0 {
			if _, err := firstByte("tcp", addr, 10*time.Second); err != nil {
				return fmt.Errorf("request after %d restarts: %w", done, err)
			}
		}
	}
	if _, err := firstByte("tcp", addr, 10*time.Second); err != nil {
		return fmt.Errorf("request after %d restarts: %w", done, err)
	}
	// The last old generation's goroutines may take a moment to end:
	// read again for up to 2 s while anything is above the first count.
	var after api.RuntimeInfo
	for deadline := time.Now().Add(2 * time.Second); ; {
		if after, err = s.client.Runtime(ctx); err != nil {
			return fmt.Errorf("debug runtime: %w", err)
		}
		grew := after.FDs > before.FDs || after.Goroutines > before.Goroutines || after.Threads > at100.Threads
		if !grew || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	kids := childrenOf(s.pid())
	zombies := 0
	for _, k := range kids {
		if k.state == 'Z' {
			zombies++
		}
	}
	fig := fmt.Sprintf("leaks: sockd after %d restarts (median restart %s)", done, ms(median(took)))
	for _, c := range []struct {
		name              string
		first, base, last int
	}{
		{"fds", before.FDs, at100.FDs, after.FDs},
		{"goroutines", before.Goroutines, at100.Goroutines, after.Goroutines},
		{"threads", before.Threads, at100.Threads, after.Threads},
	} {
		res.add(row{
			figure: fig + ": " + c.name,
			sockd:  fmt.Sprintf("%d → %d", c.base, c.last),
			peer:   fmt.Sprintf("after restart 1: %d", c.first),
			diff:   fmt.Sprintf("%+d since restart %d, %+d since restart 1", c.last-c.base, warm, c.last-c.first),
			target: "no growth",
			met:    yesNo(c.last <= c.base),
		})
		if c.last > c.base {
			res.note("leaks: %s grew by %d from restart %d to %d", c.name, c.last-c.base, warm, done)
		}
		if c.name == "threads" && c.last > c.first {
			res.note("leaks: threads went %d → %d → %d (restarts 1, %d, %d): Go keeps every OS thread it made (it ends none), so the count rises to the most blocking syscalls (fork+exec, wait4 per child) once under way at the same time, then stays; growth per restart is what would be a leak", c.first, c.base, c.last, warm, done)
		}
	}
	res.add(row{
		figure: fig + ": zombie children",
		sockd:  fmt.Sprintf("%d (of %d children)", zombies, len(kids)),
		target: "0",
		met:    yesNo(zombies == 0),
	})
	return nil
}
