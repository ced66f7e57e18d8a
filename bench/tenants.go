package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// tenantUnits is how many units the tenants step loads: a host of
	// 10,000 idle tenants, each one service with one socket.
	tenantUnits = 10000
	// tenantSmall is the same shape at 1,000 units, for the per-unit
	// cost: (RSS(10,000) − RSS(1,000)) / 9,000.
	tenantSmall = 1000
	// churnBatch is how many cold tenants the churn triggers at once.
	churnBatch = 250
	// tenantNofile is the open-files limit the bench gives sockd for
	// 10,000 units, as a host of that many tenants would set it
	// (LimitNOFILE=): a socket per unit and sockd's budget of two pipes
	// per running process (supervisord/fdbudget.go) do not fit the
	// machine's usual 20,000.
	tenantNofile = 65536
)

// tenants loads 10,000 units, each one service (bench/acceptone: sleeps,
// after answering one request) with one socket, and measures what a host
// of idle tenants costs: load time beside a floor program that reads the
// same files and binds the same sockets in the same run (Unix sockets,
// then TCP), idle RSS and CPU, `sockctl list`, a reload with nothing
// changed and with one unit changed, RSS after churn, and the per-unit
// idle cost against the same shape at 1,000 units.
func tenants(ctx context.Context, b *bins, p *ports, res *results) error {
	if err := raiseNofile(tenantNofile); err != nil {
		return err
	}
	unixDir, cleanup, err := shortDir("sockd-bt-")
	if err != nil {
		return err
	}
	defer cleanup()
	unitDir := filepath.Join(unixDir, "units")
	sockDir := filepath.Join(unixDir, "s")
	for _, d := range []string{unitDir, sockDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	files := map[string]string{}
	for i := range tenantUnits {
		files[fmt.Sprintf("t%05d.socket", i)] = fmt.Sprintf("[Socket]\nListenStream=%s/t%05d.sock\n", sockDir, i)
		files[fmt.Sprintf("t%05d.service", i)] = tenantService(b, "")
	}
	if err := writeFiles(unitDir, files); err != nil {
		return err
	}
	const mb = 1 << 20

	// (a) Unix sockets: the floor, then sockd.
	floor, err := floorLoad(ctx, b, unitDir, func() (int, error) { return listeningUnix(sockDir) })
	if err != nil {
		return err
	}
	s, err := startSockd(ctx, b, unitDir, "--watch=false")
	if err != nil {
		return err
	}
	defer s.stop()
	n, err := listeningUnix(sockDir)
	if err != nil {
		return err
	}
	res.add(row{
		figure: "tenants: 10,000 units, one Unix socket each: exec → \"sockd ready\"",
		sockd:  ms(s.ready),
		peer:   fmt.Sprintf("floor (reads the files, binds the sockets; median of 3): %s", ms(floor)),
		diff:   fmt.Sprintf("%.1f×", ratio(s.ready, floor)),
		target: "≤ 2× the floor",
		met:    yesNo(s.ready <= 2*floor && n == tenantUnits),
	})
	if n != tenantUnits {
		res.note("tenants: only %d of %d Unix sockets were listening at \"sockd ready\"", n, tenantUnits)
	}

	// (c), (e) Idle RSS and CPU over 10 s.
	idleRSS, pct, cpu, err := idle(ctx, s.pid(), 10*time.Second)
	if err != nil {
		return err
	}
	res.add(row{
		figure: "tenants: sockd's idle RSS with 10,000 units",
		sockd:  fmt.Sprintf("%.1f MB", float64(idleRSS)/mb),
		target: "< 40 MB",
		met:    yesNo(idleRSS < 40*mb),
	})
	res.add(row{
		figure: "tenants: sockd's idle CPU over 10 s with 10,000 units",
		sockd:  fmt.Sprintf("%.3f %% (%s of CPU)", pct, ms(cpu)),
		target: "0 (< 0.1 %)",
		met:    yesNo(pct < 0.1),
	})

	// (d) sockctl list.
	var lists []time.Duration
	for range 5 {
		out, d, err := sockctl(ctx, b, s, "list")
		if err != nil {
			return err
		}
		if l := bytes.Count(out, []byte("\n")); l < tenantUnits {
			return fmt.Errorf("sockctl list printed %d lines for %d units", l, tenantUnits)
		}
		lists = append(lists, d)
	}
	res.add(row{
		figure: "tenants: `sockctl list` of 10,000 units, wall time (median of 5)",
		sockd:  ms(median(lists)),
		peer:   fmt.Sprintf("min %s, max %s", ms(minD(lists)), ms(maxD(lists))),
		target: "< 150 ms",
		met:    yesNo(median(lists) < 150*time.Millisecond),
	})

	// (f) A reload with nothing changed.
	var same []time.Duration
	for range 5 {
		r, d, err := reload(ctx, b, s)
		if err != nil {
			return err
		}
		if len(r.Changed)+len(r.Added)+len(r.Removed) != 0 {
			return fmt.Errorf("reload with nothing changed: changed %v, added %v, removed %v", r.Changed, r.Added, r.Removed)
		}
		same = append(same, d)
	}
	res.add(row{
		figure: "tenants: `sockctl reload` of 10,000 units, nothing changed (median of 5)",
		sockd:  ms(median(same)),
		peer:   fmt.Sprintf("min %s, max %s", ms(minD(same)), ms(maxD(same))),
		target: "little (none set)",
		met:    "–",
	})

	// (g) One unit changed among 10,000. The daemon runs without its
	// file watch (--watch=false), so the time is that of `sockctl
	// reload` alone: what follows the end of the watch's quiet period.
	var one []time.Duration
	for i := range 5 {
		svc := filepath.Join(unitDir, "t00000.service")
		if err := os.WriteFile(svc, []byte(tenantService(b, fmt.Sprintf("Environment=EDIT=%d\n", i))), 0o644); err != nil {
			return err
		}
		r, d, err := reload(ctx, b, s)
		if err != nil {
			return err
		}
		if len(r.Changed) != 1 || !strings.HasPrefix(r.Changed[0], "t00000") {
			return fmt.Errorf("reload after editing t00000.service: changed %v, want t00000 alone", r.Changed)
		}
		one = append(one, d)
	}
	res.add(row{
		figure: "tenants: one unit changed among 10,000: `sockctl reload` (median of 5)",
		sockd:  ms(median(one)),
		peer:   fmt.Sprintf("min %s, max %s", ms(minD(one)), ms(maxD(one))),
		target: "< 100 ms",
		met:    yesNo(median(one) < 100*time.Millisecond),
	})

	// (h) Churn: every tenant triggered once, churnBatch at a time, each
	// by one request, then stopped.
	if err := churn(ctx, s, sockDir, idleRSS, res); err != nil {
		res.fail("tenants: RSS after churn", err)
	}
	if err := s.stop(); err != nil {
		res.note("tenants: stopping sockd with 10,000 units: %v", err)
	}

	// Per-unit idle cost: the same shape at 1,000 units.
	if err := perUnit(ctx, b, idleRSS, res); err != nil {
		res.fail("tenants: per-unit idle cost", err)
	}

	// (b) TCP: one socket per unit on 127.0.0.1.
	if err := tenantsTCP(ctx, b, p, res); err != nil {
		res.fail("tenants: 10,000 units, one TCP socket each", err)
	}
	return nil
}

// tenantService is the service file of a tenant, with extra lines.
func tenantService(b *bins, extra string) string {
	return "[Service]\nExecStart=" + b.acceptone + "\nTimeoutStopSec=5\n" + extra
}

// ratio is a/b.
func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// raiseNofile raises the bench's RLIMIT_NOFILE, soft and hard, to at
// least n; the processes it starts inherit it (the Go runtime leaves an
// explicitly set limit to its children).
func raiseNofile(n uint64) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("getrlimit nofile: %w", err)
	}
	if rl.Cur >= n && rl.Max >= n {
		return nil
	}
	rl.Cur = max(rl.Cur, n)
	rl.Max = max(rl.Max, n)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("setrlimit nofile %d (the bench runs as root): %w", n, err)
	}
	return nil
}

// floorLoad runs bench/floor on dir three times and returns the median
// time from exec to its "floor ready" line; count says how many sockets
// listen meanwhile, which must be every unit's.
func floorLoad(ctx context.Context, b *bins, dir string, count func() (int, error)) (time.Duration, error) {
	var ds []time.Duration
	for range 3 {
		cmd := exec.CommandContext(ctx, b.floor, dir)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return 0, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return 0, err
		}
		var errb bytes.Buffer
		cmd.Stderr = &errb
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			return 0, fmt.Errorf("start floor: %w", err)
		}
		line, rerr := bufio.NewReader(stdout).ReadString('\n')
		d := time.Since(t0)
		var n int
		var cerr error
		if rerr == nil {
			n, cerr = count()
		}
		stdin.Close()
		io.Copy(io.Discard, stdout)
		werr := cmd.Wait()
		if rerr != nil || werr != nil {
			return 0, fmt.Errorf("floor %s: %v %v: %s", dir, rerr, werr, errb.String())
		}
		if cerr != nil {
			return 0, cerr
		}
		if !strings.HasPrefix(line, "floor ready") || n != tenantUnits {
			return 0, fmt.Errorf("floor %s: said %q, %d of %d sockets listening", dir, strings.TrimSpace(line), n, tenantUnits)
		}
		ds = append(ds, d)
	}
	return median(ds), nil
}

// idle waits d and returns pid's RSS at its end and its CPU over it.
func idle(ctx context.Context, pid int, d time.Duration) (rss int64, pct float64, cpu time.Duration, err error) {
	cpu0, err := cpuTime(pid)
	if err != nil {
		return 0, 0, 0, err
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return 0, 0, 0, ctx.Err()
	}
	cpu1, err := cpuTime(pid)
	if err != nil {
		return 0, 0, 0, err
	}
	rss, err = vmRSS(pid)
	return rss, float64(cpu1-cpu0) / float64(d) * 100, cpu1 - cpu0, err
}

// sockctl runs sockctl with args against s and returns its stdout and
// wall time.
func sockctl(ctx context.Context, b *bins, s *sockdProc, args ...string) ([]byte, time.Duration, error) {
	cmd := exec.CommandContext(ctx, b.sockctl, append([]string{"--api", s.apiPath}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		return nil, d, fmt.Errorf("sockctl %s: %w: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes(), d, nil
}

// reloadResult is what `sockctl reload --json` prints.
type reloadResult struct {
	Added, Removed, Changed []string
}

func reload(ctx context.Context, b *bins, s *sockdProc) (reloadResult, time.Duration, error) {
	out, d, err := sockctl(ctx, b, s, "reload", "--json")
	if err != nil {
		return reloadResult{}, d, err
	}
	var r reloadResult
	if err := json.Unmarshal(out, &r); err != nil {
		return r, d, fmt.Errorf("sockctl reload --json: %w: %.200q", err, out)
	}
	return r, d, nil
}

// churn triggers every tenant once, churnBatch at a time: one connection
// each, answered by the tenant's freshly spawned process, then a stop of
// each unit of the batch through the API. It reports sockd's RSS 10 s
// after the last batch beside its idle RSS.
//
// The stop stands in for an idle timeout (X-IdleTimeoutSec=, being added
// in supervisord/idle.go): once that lands, the tenants' service files
// can set it and this loop can wait for the units to go back to
// listening on their own instead of calling stop.
func churn(ctx context.Context, s *sockdProc, sockDir string, idleRSS int64, res *results) error {
	const mb = 1 << 20
	t0 := time.Now()
	var peak int64
	for start := 0; start < tenantUnits; start += churnBatch {
		if ctx.Err() != nil {
			return fmt.Errorf("churn at tenant %d: %w", start, ctx.Err())
		}
		end := min(start+churnBatch, tenantUnits)
		if err := parallel(start, end, 64, func(i int) error {
			return oneRequest(filepath.Join(sockDir, fmt.Sprintf("t%05d.sock", i)))
		}); err != nil {
			return err
		}
		if r, err := vmRSS(s.pid()); err == nil {
			peak = max(peak, r)
		}
		if err := parallel(start, end, 16, func(i int) error {
			sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			return s.client.Stop(sctx, fmt.Sprintf("t%05d.service", i))
		}); err != nil {
			return err
		}
	}
	took := time.Since(t0)
	after, err := vmRSS(s.pid())
	if err != nil {
		return err
	}
	settled, _, _, err := idle(ctx, s.pid(), 10*time.Second)
	if err != nil {
		return err
	}
	if kids := childrenOf(s.pid()); len(kids) > 0 {
		res.note("tenants: %d processes still children of sockd after the churn", len(kids))
	}
	res.add(row{
		figure: fmt.Sprintf("tenants: RSS after churn (10,000 cold tenants, %d at a time, one request each, then stopped), 10 s later", churnBatch),
		sockd:  fmt.Sprintf("%.1f MB", float64(settled)/mb),
		peer:   fmt.Sprintf("idle before: %.1f MB; right after: %.1f MB; peak: %.1f MB; churn took %.1f s", float64(idleRSS)/mb, float64(after)/mb, float64(peak)/mb, took.Seconds()),
		diff:   fmt.Sprintf("%+.1f %%", (float64(settled)/float64(idleRSS)-1)*100),
		target: "within 10 % of idle",
		met:    yesNo(float64(settled) <= 1.1*float64(idleRSS)),
	})
	return nil
}

// oneRequest connects to the Unix socket path and reads the tenant's
// one-byte answer.
func oneRequest(path string) error {
	c, err := net.DialTimeout("unix", path, 20*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return fmt.Errorf("read from %s: %w", path, err)
	}
	return nil
}

// parallel runs fn for every i in [start, end) on at most conc
// goroutines and returns the first error.
func parallel(start, end, conc int, fn func(int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := start; i < end; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// perUnit loads the tenants' shape at 1,000 units, measures sockd's
// idle RSS after 10 s, and reports (RSS(10,000) − RSS(1,000)) / 9,000.
func perUnit(ctx context.Context, b *bins, rss10k int64, res *results) error {
	dir, cleanup, err := shortDir("sockd-bt1k-")
	if err != nil {
		return err
	}
	defer cleanup()
	unitDir := filepath.Join(dir, "units")
	if err := os.Mkdir(unitDir, 0o755); err != nil {
		return err
	}
	files := map[string]string{}
	for i := range tenantSmall {
		files[fmt.Sprintf("t%05d.socket", i)] = fmt.Sprintf("[Socket]\nListenStream=%s/t%05d.sock\n", dir, i)
		files[fmt.Sprintf("t%05d.service", i)] = tenantService(b, "")
	}
	if err := writeFiles(unitDir, files); err != nil {
		return err
	}
	s, err := startSockd(ctx, b, unitDir, "--watch=false")
	if err != nil {
		return err
	}
	defer s.stop()
	rss1k, _, _, err := idle(ctx, s.pid(), 10*time.Second)
	if err != nil {
		return err
	}
	per := float64(rss10k-rss1k) / (tenantUnits - tenantSmall)
	res.add(row{
		figure: "tenants: per-unit idle cost, (RSS(10,000) − RSS(1,000)) / 9,000, one Unix socket per unit",
		sockd:  fmt.Sprintf("%.0f bytes", per),
		peer:   fmt.Sprintf("RSS with 1,000: %.1f MB, with 10,000: %.1f MB", float64(rss1k)/(1<<20), float64(rss10k)/(1<<20)),
		target: "falls (the test TestIdleUnitCost bounds it)",
		met:    "–",
	})
	return nil
}

// tenantsTCP loads 10,000 units with one TCP socket each on 127.0.0.1
// beside the floor doing the same.
func tenantsTCP(ctx context.Context, b *bins, p *ports, res *results) error {
	ps, err := p.take(tenantUnits)
	if err != nil {
		return err
	}
	unitDir, cleanup, err := shortDir("sockd-bt-tcp-")
	if err != nil {
		return err
	}
	defer cleanup()
	files := map[string]string{}
	want := map[int]bool{}
	for i, port := range ps {
		files[fmt.Sprintf("t%05d.socket", i)] = fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\n", port)
		files[fmt.Sprintf("t%05d.service", i)] = tenantService(b, "")
		want[port] = true
	}
	if err := writeFiles(unitDir, files); err != nil {
		return err
	}
	floor, err := floorLoad(ctx, b, unitDir, func() (int, error) { return listeningTCP(want) })
	if err != nil {
		return err
	}
	s, err := startSockd(ctx, b, unitDir, "--watch=false")
	if err != nil {
		return err
	}
	defer s.stop()
	cpu, err := cpuTime(s.pid())
	if err != nil {
		return err
	}
	n, err := listeningTCP(want)
	if err != nil {
		return err
	}
	res.add(row{
		figure: "tenants: 10,000 units, one TCP socket each on 127.0.0.1: exec → \"sockd ready\"",
		sockd:  fmt.Sprintf("%s (%s of CPU so far, %.0f µs per unit)", ms(s.ready), ms(cpu), float64(cpu.Microseconds())/tenantUnits),
		peer:   fmt.Sprintf("floor (median of 3): %s", ms(floor)),
		diff:   fmt.Sprintf("%.1f×", ratio(s.ready, floor)),
		target: "< 1.5 s",
		met:    yesNo(s.ready < 1500*time.Millisecond && n == tenantUnits),
	})
	if n != tenantUnits {
		res.note("tenants: only %d of %d TCP sockets were listening at \"sockd ready\"", n, tenantUnits)
	}
	return nil
}
