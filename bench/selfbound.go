package main

import (
	"context"
	"fmt"
	"time"
)

// selfBoundRestarts is the peer without socket activation: the demo binds
// its own socket and is restarted the only way it can be, stop then
// start; while no process holds the port, connections are refused.
func selfBoundRestarts(ctx context.Context, b *bins, p *ports, res *results) error {
	port, err := p.one()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	start := func() (*app, error) {
		a, _, err := startApp(ctx, []string{b.demo}, []string{"DEMO_ADDR=" + addr}, "listening on")
		return a, err
	}
	cur, err := start()
	if err != nil {
		return err
	}
	defer func() { cur.stop() }()
	for _, mode := range []struct {
		name      string
		keepAlive bool
	}{{"new conn/request", false}, {"keep-alive", true}} {
		var took []time.Duration
		r, err := runLoad(ctx, b, load{addr: addr, conc: 4, keepAlive: mode.keepAlive}, func() error {
			for range restarts {
				t0 := time.Now()
				cur.stop()
				next, err := start()
				if err != nil {
					return err
				}
				cur = next
				took = append(took, time.Since(t0))
				select {
				case <-time.After(100 * time.Millisecond):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		res.add(row{
			figure: fmt.Sprintf("restart under load: demo binding its own socket (no socket activation), %s, stop then start, %d restarts, 4 clients", mode.name, restarts),
			sockd:  "–",
			peer:   fmt.Sprintf("%d req, %s, %s", r.Requests, r.failures(), r.latency()),
			diff:   fmt.Sprintf("restart median %s", ms(median(took))),
		})
	}
	return nil
}
