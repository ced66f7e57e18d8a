package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"
)

// coldReps is how many cold starts each side gets.
const coldReps = 30

// coldStart measures connect → first response byte for a demo app that
// is not running yet, spawned by sockd and by systemd-socket-activate
// (which, like sockd, waits for the first connection and then execs the
// app), beside the app's own start (exec of the app binding its own
// socket → first byte) and the app already running. Sides alternate.
func coldStart(ctx context.Context, b *bins, p *ports, res *results) error {
	n := coldReps + 1 // the first round warms caches and is dropped
	sockdPorts, err := p.take(n)
	if err != nil {
		return err
	}
	ssaPorts, err := p.take(n)
	if err != nil {
		return err
	}
	ownPorts, err := p.take(n)
	if err != nil {
		return err
	}
	unitDir, cleanup, err := shortDir("sockd-bench-cold")
	if err != nil {
		return err
	}
	defer cleanup()
	files := map[string]string{}
	for i, port := range sockdPorts {
		files[fmt.Sprintf("c%02d.socket", i)] = fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\n", port)
		files[fmt.Sprintf("c%02d.service", i)] = b.demoService()
	}
	if err := writeFiles(unitDir, files); err != nil {
		return err
	}
	s, err := startSockd(ctx, b, unitDir)
	if err != nil {
		return err
	}
	defer s.stop()

	var viaSockd, viaSSA, own, warmSockd, warmOwn []time.Duration
	const timeout = 10 * time.Second
	for i := range n {
		if ctx.Err() != nil {
			return fmt.Errorf("cold start, round %d: %w", i, ctx.Err())
		}
		// sockd: the unit's socket is listening, nothing runs yet.
		addr := fmt.Sprintf("127.0.0.1:%d", sockdPorts[i])
		d, err := firstByte("tcp", addr, timeout)
		if err != nil {
			return fmt.Errorf("cold start via sockd: %w", err)
		}
		w, err := firstByte("tcp", addr, timeout)
		if err != nil {
			return fmt.Errorf("warm request via sockd: %w", err)
		}
		// systemd-socket-activate: listening, waits for a connection.
		ssaAddr := fmt.Sprintf("127.0.0.1:%d", ssaPorts[i])
		a, _, err := startApp(ctx, []string{b.ssa, "-l", ssaAddr, b.demo}, nil, "Listening on")
		if err != nil {
			return err
		}
		ds, err := firstByte("tcp", ssaAddr, timeout)
		a.stop()
		if err != nil {
			return fmt.Errorf("cold start via systemd-socket-activate: %w", err)
		}
		// The app binding its own socket: exec → first byte.
		ownAddr := fmt.Sprintf("127.0.0.1:%d", ownPorts[i])
		a, t0, err := startApp(ctx, []string{b.demo}, []string{"DEMO_ADDR=" + ownAddr}, "listening on")
		if err != nil {
			return err
		}
		_, err = firstByte("tcp", ownAddr, timeout)
		do := time.Since(t0)
		var wo time.Duration
		if err == nil {
			wo, err = firstByte("tcp", ownAddr, timeout)
		}
		a.stop()
		if err != nil {
			return fmt.Errorf("app's own start: %w", err)
		}
		if i == 0 {
			continue
		}
		viaSockd, viaSSA, own = append(viaSockd, d), append(viaSSA, ds), append(own, do)
		warmSockd, warmOwn = append(warmSockd, w), append(warmOwn, wo)
	}
	ms0, mssa, mown := median(viaSockd), median(viaSSA), median(own)
	res.add(row{
		figure: fmt.Sprintf("cold start: connect → first byte, lazily spawned demo (median of %d)", coldReps),
		sockd:  ms(ms0),
		peer:   "systemd-socket-activate " + ms(mssa),
		diff:   signed(ms0 - mssa),
	})
	added := ms0 - mown
	res.add(row{
		figure: "cold start: what sockd adds over the app's own start",
		sockd:  signed(added),
		peer:   "app's own start (exec, bind, first byte) " + ms(mown),
		diff:   fmt.Sprintf("%s − %s", ms(ms0), ms(mown)),
		target: "< 1 ms",
		met:    yesNo(added < time.Millisecond),
	})
	res.add(row{
		figure: "already running: connect → first byte",
		sockd:  "via sockd's socket " + ms(median(warmSockd)),
		peer:   "own socket " + ms(median(warmOwn)),
		diff:   signed(median(warmSockd) - median(warmOwn)),
	})
	if err := helperCost(ctx, b, res); err != nil {
		return err
	}
	if added >= time.Millisecond {
		res.note("cold start misses its target by %s: sockd adds %s over the app's own start (sockd's cold starts spread %s–%s). "+
			"No exec helper is on this path: children.Start spawns the app from C (children/spawn_cgo.c) and the child sets LISTEN_PID to its own pid before its exec. "+
			"What sockd adds is noticing the connection (the epoll waiter, the unit's actor), preparing the spawn (the process's cgroup leaf, its environment and fds), "+
			"the clone and exec, and the machine's noise (2 shared cores)",
			ms(added-time.Millisecond), ms(added), ms(minD(viaSockd)), ms(maxD(viaSockd)))
	}
	return nil
}

// helperCost isolates the exec helper, which only sandboxed starts take
// now: sockd re-executing itself to set LISTEN_PID before exec'ing the
// app, timed on /bin/true against exec'ing /bin/true directly.
func helperCost(ctx context.Context, b *bins, res *results) error {
	truePath, err := exec.LookPath("true")
	if err != nil {
		return err
	}
	run := func(argv ...string) (time.Duration, error) {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "LISTEN_FDS=0")
		t0 := time.Now()
		err := cmd.Run()
		return time.Since(t0), err
	}
	var direct, helper []time.Duration
	for range coldReps {
		d, err := run(truePath)
		if err != nil {
			return fmt.Errorf("run %s: %w", truePath, err)
		}
		h, err := run(b.sockd, "__sockd-exec", "files=0,pidenv=LISTEN_PID", truePath, "true")
		if err != nil {
			return fmt.Errorf("run %s through the exec helper: %w", truePath, err)
		}
		direct, helper = append(direct, d), append(helper, h)
	}
	res.add(row{
		figure: "exec helper (re-exec of sockd; sandboxed starts only), on /bin/true",
		sockd:  "through the helper " + ms(median(helper)),
		peer:   "direct exec " + ms(median(direct)),
		diff:   signed(median(helper) - median(direct)),
	})
	return nil
}

// signed formats a difference with its sign.
func signed(d time.Duration) string {
	if d >= 0 {
		return "+" + ms(d)
	}
	return "−" + ms(-d)
}

func minD(ds []time.Duration) time.Duration {
	m := ds[0]
	for _, d := range ds {
		m = min(m, d)
	}
	return m
}

func maxD(ds []time.Duration) time.Duration {
	m := ds[0]
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}
