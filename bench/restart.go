package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sockd/sockd/api"
)

// restarts is how many restarts each loaded run does.
const restarts = 20

// wsgiApp is the gunicorn app.
const wsgiApp = `import os
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("gunicorn worker %d\n" % os.getpid()).encode()]
`

// restartUnderLoad runs load against a unit while it is restarted 20
// times, sockd's overlapping way and systemd's stop-then-start way, with
// a new connection per request and with keep-alive, for the demo and for
// gunicorn; steady state (no restarts) is the latency baseline.
func restartUnderLoad(ctx context.Context, b *bins, p *ports, res *results) error {
	appDir, cleanup, err := shortDir("sockd-bench-wsgi")
	if err != nil {
		return err
	}
	defer cleanup()
	if err := os.WriteFile(filepath.Join(appDir, "app.py"), []byte(wsgiApp), 0o644); err != nil {
		return err
	}
	apps := []struct{ name, service string }{
		{"demo", b.demoService()},
		{"gunicorn", "[Service]\nType=notify\nWorkingDirectory=" + appDir +
			"\nExecStart=" + b.python + " -m gunicorn --workers 2 app:app\nTimeoutStopSec=10\n"},
	}
	for _, a := range apps {
		if err := restartApp(ctx, b, p, res, a.name, a.service); err != nil {
			res.fail("restart under load, "+a.name, err)
		}
	}
	if err := selfBoundRestarts(ctx, b, p, res); err != nil {
		res.fail("restart under load, demo binding its own socket", err)
	}
	return nil
}

func restartApp(ctx context.Context, b *bins, p *ports, res *results, name, service string) error {
	port, err := p.one()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s, stop, err := startUnit(ctx, b, "app", addr, service, 20*time.Second)
	if err != nil {
		return err
	}
	defer stop()
	for _, mode := range []struct {
		name      string
		keepAlive bool
	}{{"new conn/request", false}, {"keep-alive", true}} {
		l := load{addr: addr, conc: 4, keepAlive: mode.keepAlive}
		steady, err := runLoad(ctx, b, load{addr: addr, conc: 4, keepAlive: mode.keepAlive, dur: 3 * time.Second}, nil)
		if err != nil {
			return err
		}
		for _, order := range []struct {
			name      string
			stopFirst bool
		}{{"overlapping (sockd)", false}, {"stop-then-start (systemd's order)", true}} {
			var took []time.Duration
			rolledBack := 0
			r, err := runLoad(ctx, b, l, func() error {
				for range restarts {
					rr, err := s.client.Restart(ctx, "app", api.RestartOptions{Wait: true, StopFirst: order.stopFirst}, nil)
					if err != nil {
						return fmt.Errorf("restart %s: %w", name, err)
					}
					if !rr.OK {
						rolledBack++
					}
					took = append(took, time.Duration(rr.Millis)*time.Millisecond)
					// Let the new generation serve a while before the next.
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
			x := row{
				figure: fmt.Sprintf("restart under load: %s, %s, %s, %d restarts, 4 clients", name, mode.name, order.name, restarts),
				sockd:  fmt.Sprintf("%d req, %s, %s", r.Requests, r.failures(), r.latency()),
				peer:   fmt.Sprintf("steady state: %d req in 3 s, %s, %s", steady.Requests, steady.failures(), steady.latency()),
				diff:   fmt.Sprintf("p99 ×%.1f, max ×%.1f; restart median %s", r.P99/steady.P99, r.Max/steady.Max, ms(median(took))),
			}
			if !order.stopFirst {
				x.target = "0 failed"
				x.met = yesNo(r.failed() == 0 && rolledBack == 0)
			}
			res.add(x)
			if rolledBack > 0 {
				res.note("restart under load, %s, %s, %s: %d of %d restarts rolled back", name, mode.name, order.name, rolledBack, restarts)
			}
			if r.failed() > 0 {
				first := r.Errors
				if len(first) > 2 {
					first = first[:2]
				}
				res.note("restart under load, %s, %s, %s: %s; first errors: %q", name, mode.name, order.name, r.failures(), first)
				if name == "demo" && r.Failures["eof"] == r.failed() {
					res.note("restart under load, demo, %s, %s: the EOFs are connections an old process accepted and closed unanswered; "+
						"the socket and its queue (sockd's) lose nothing, and gunicorn on the same path fails none: look at the app's drain (contrib/demo: drain)", mode.name, order.name)
				}
			}
		}
	}
	return nil
}
