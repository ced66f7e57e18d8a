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
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// tenantUnits is how many units the tenants step loads, if the
	// open-files limit lets sockd's fd budget hold them (tenantCount):
	// a host of 10,000 idle tenants, each one service with one socket.
	tenantUnits = 10000
	// tenantFDs is what sockd's fd budget counts an idle unit of one
	// socket for: the socket (supervisord/fdbudget.go, unitFDs; its
	// cgroup is open only while it has a process). A running process is
	// counted while it runs: its two output pipes and its pidfd, and
	// with cgroups its leaf and its unit's cgroup (procFDs): tenantProcFDs.
	tenantFDs = 1
	// tenantProcFDs is procFDs with cgroups, and without.
	tenantProcFDs, tenantProcFDsNoCgroup = 5, 3
	// tenantSmall is the same shape at 1,000 units, for the per-unit
	// cost: (RSS(10,000) − RSS(1,000)) / 9,000.
	tenantSmall = 1000
	// churnBatch is how many cold tenants the churn triggers at once.
	churnBatch = 250
	// tenantNofile is the open-files limit the bench gives sockd for
	// 10,000 units, as a host of that many tenants would set it
	// (LimitNOFILE=), if it may raise its hard limit (CAP_SYS_RESOURCE):
	// the units, and the churn's processes running at once.
	tenantNofile = tenantUnits*tenantFDs + churnBatch*tenantProcFDs + 1000
	// tenantOwnFDs is what sockd opens besides the units (about 20) and
	// keeps in reserve (32), with room to spare.
	tenantOwnFDs = 200
)

// tenantsWant is how many tenants the step loads at most (-tenants).
var tenantsWant = tenantUnits

// tenantCount raises the bench's RLIMIT_NOFILE (sockd inherits it) as
// far as it may and returns how many tenants fit sockd's fd budget, and
// sockd's extra arguments: tenantUnits with cgroups, else tenantUnits
// without them ("--cgroup=off": 3 fds per running process, not 5) where
// the hard limit is lower and cannot be raised, else fewer, in steps of
// 500. The rows then say how many, and the figures that grow with the
// units are extrapolated to 10,000.
func tenantCount() (int, []string, uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, nil, 0, fmt.Errorf("getrlimit nofile: %w", err)
	}
	if rl.Max < tenantNofile {
		want := rl
		want.Cur, want.Max = tenantNofile, tenantNofile
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
			rl = want
		}
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, nil, 0, fmt.Errorf("setrlimit nofile %d: %w", rl.Cur, err)
		}
	}
	fit := func(perUnit, perProc int) int {
		n := (int(rl.Cur) - tenantOwnFDs - churnBatch*perProc) / perUnit
		return min(tenantsWant, n-n%500)
	}
	n, args := fit(tenantFDs, tenantProcFDs), []string{"--watch=false"}
	if n < tenantsWant {
		if m := fit(tenantFDs, tenantProcFDsNoCgroup); m > n {
			n, args = m, append(args, "--cgroup=off")
		}
	}
	if n <= tenantSmall {
		return 0, nil, rl.Cur, fmt.Errorf("RLIMIT_NOFILE %d fits only %d tenants", rl.Cur, n)
	}
	return n, args, rl.Cur, nil
}

// tenants loads 10,000 units, each one service (bench/acceptone: sleeps,
// after answering one request) with one socket, and measures what a host
// of idle tenants costs: load time beside a floor program that reads the
// same files and binds the same sockets in the same run (Unix sockets,
// then TCP), idle RSS and CPU, `sockctl list`, a reload with nothing
// changed and with one unit changed, RSS after churn, and the per-unit
// idle cost against the same shape at 1,000 units. Where the open-files
// limit holds fewer units (tenantCount), it loads those, says so, and
// extrapolates to 10,000 what grows with the units.
func tenants(ctx context.Context, b *bins, p *ports, res *results) error {
	n, args, limit, err := tenantCount()
	if err != nil {
		return err
	}
	if slices.Contains(args, "--cgroup=off") {
		res.note("tenants: sockd's open-files limit here is %d and the bench cannot raise it (no CAP_SYS_RESOURCE); "+
			"with cgroups sockd's fd budget counts each of the churn's running processes for %d fds (its pipes, pidfd, leaf and unit cgroup), "+
			"so the tenants rows run sockd with --cgroup=off (%d) to load %d", limit, tenantProcFDs, tenantProcFDsNoCgroup, n)
	}
	label := "10,000 units"
	scale := 1.0
	if n < tenantUnits {
		label = fmt.Sprintf("%d units (10,000 do not fit: see note)", n)
		scale = float64(tenantUnits) / float64(n)
	}
	if n < tenantsWant {
		res.note("tenants: sockd's open-files limit here is %d and the bench cannot raise it (no CAP_SYS_RESOURCE); "+
			"sockd's fd budget counts each idle unit of one socket for 1 fd, and %d for the churn's processes, so %d tenants are loaded, not %d; "+
			"figures that grow with the units are also given extrapolated to 10,000 (× %.2f, or with the per-unit cost for RSS), "+
			"and the targets are checked against those", limit, churnBatch*tenantProcFDs, n, tenantsWant, scale)
	} else if n < tenantUnits {
		label = fmt.Sprintf("%d units (-tenants)", n)
	}
	extra := func(d time.Duration) string {
		if scale == 1 {
			return ""
		}
		return fmt.Sprintf("; at 10,000: ~%s", ms(time.Duration(float64(d)*scale)))
	}
	at10k := func(d time.Duration) time.Duration { return time.Duration(float64(d) * scale) }
	const mb = 1 << 20

	// The same shape at 1,000 units first, for the per-unit cost.
	rss1k, err := smallTenants(ctx, b, args)
	if err != nil {
		return err
	}

	dir, cleanup, err := shortDir("sockd-bt-")
	if err != nil {
		return err
	}
	defer cleanup()
	unitDir := filepath.Join(dir, "units")
	sockDir := filepath.Join(dir, "s")
	if err := writeTenants(b, unitDir, n, func(i int) string { return fmt.Sprintf("%s/t%05d.sock", sockDir, i) }); err != nil {
		return err
	}
	if err := os.Mkdir(sockDir, 0o755); err != nil {
		return err
	}

	// (a) Unix sockets: the floor, then sockd.
	floor, err := floorLoad(ctx, b, unitDir, 3, n, func() (int, error) { return listeningUnix(sockDir) })
	if err != nil {
		return err
	}
	s, err := startSockd(ctx, b, unitDir, args...)
	if err != nil {
		return err
	}
	defer s.stop()
	cpu, _ := cpuTime(s.pid())
	listening, err := listeningUnix(sockDir)
	if err != nil {
		return err
	}
	res.add(row{
		figure: "tenants: " + label + ", one Unix socket each: exec → \"sockd ready\"",
		sockd:  fmt.Sprintf("%s (%s of CPU, %.0f µs per unit; fd holder %s)", ms(s.ready), ms(cpu), float64(cpu.Microseconds())/float64(n), ms(holderCPU(s.pid()))),
		peer:   fmt.Sprintf("floor (reads the files, binds the sockets; median of 3): %s", ms(floor)),
		diff:   fmt.Sprintf("%.1f×", ratio(s.ready, floor)),
		target: "≤ 2× the floor",
		met:    yesNo(s.ready <= 2*floor && listening == n),
	})
	if listening != n {
		res.note("tenants: only %d of %d Unix sockets were listening at \"sockd ready\"", listening, n)
	}

	// (c), (e) Idle RSS and CPU over 10 s; the per-unit cost.
	idleRSS, pct, idleCPU, err := idle(ctx, s.pid(), 10*time.Second)
	if err != nil {
		return err
	}
	per := float64(idleRSS-rss1k) / float64(n-tenantSmall)
	rss10k := idleRSS + int64(per*float64(tenantUnits-n))
	res.add(row{
		figure: "tenants: per-unit idle cost, (RSS(N) − RSS(1,000)) / (N − 1,000), one Unix socket per unit",
		sockd:  fmt.Sprintf("%.0f bytes", per),
		peer:   fmt.Sprintf("RSS with 1,000: %.1f MB, with %d: %.1f MB", float64(rss1k)/mb, n, float64(idleRSS)/mb),
		target: "falls; TestIdleUnitCost bounds the heap's share",
		met:    "–",
	})
	rssPeer := ""
	if scale != 1 {
		rssPeer = fmt.Sprintf("at 10,000 (with the per-unit cost): ~%.1f MB", float64(rss10k)/mb)
	}
	res.add(row{
		figure: "tenants: sockd's idle RSS with " + label,
		sockd:  fmt.Sprintf("%.1f MB", float64(idleRSS)/mb),
		peer:   rssPeer,
		target: "< 40 MB at 10,000",
		met:    yesNo(rss10k < 40*mb),
	})
	res.add(row{
		figure: "tenants: sockd's idle CPU over 10 s with " + label,
		sockd:  fmt.Sprintf("%.3f %% (%s of CPU)", pct, ms(idleCPU)),
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
		if l := bytes.Count(out, []byte("\n")); l < n {
			return fmt.Errorf("sockctl list printed %d lines for %d units", l, n)
		}
		lists = append(lists, d)
	}
	res.add(row{
		figure: "tenants: `sockctl list` of " + label + ", wall time (median of 5)",
		sockd:  ms(median(lists)),
		peer:   fmt.Sprintf("min %s, max %s%s", ms(minD(lists)), ms(maxD(lists)), extra(median(lists))),
		target: "< 150 ms at 10,000",
		met:    yesNo(at10k(median(lists)) < 150*time.Millisecond),
	})

	// (f) A reload with nothing changed.
	var same, sameCPU []time.Duration
	for range 3 {
		c0, _ := cpuTime(s.pid())
		r, d, err := reload(ctx, b, s)
		if err != nil {
			return err
		}
		c1, _ := cpuTime(s.pid())
		sameCPU = append(sameCPU, c1-c0)
		if len(r.Changed)+len(r.Added)+len(r.Removed) != 0 {
			return fmt.Errorf("reload with nothing changed: changed %v, added %v, removed %v", r.Changed, r.Added, r.Removed)
		}
		same = append(same, d)
	}
	res.add(row{
		figure: "tenants: `sockctl reload` of " + label + ", nothing changed (median of 3)",
		sockd:  fmt.Sprintf("%s (%s of sockd's CPU)", ms(median(same)), ms(median(sameCPU))),
		peer:   fmt.Sprintf("min %s, max %s%s", ms(minD(same)), ms(maxD(same)), extra(median(same))),
		target: "little (no figure set)",
		met:    "–",
	})

	// (g) One unit changed. The daemon runs without its file watch
	// (--watch=false), so the time is that of `sockctl reload` alone:
	// what follows the end of the watch's quiet period.
	var one, oneCPU []time.Duration
	for i := range 5 {
		svc := filepath.Join(unitDir, "t00000.service")
		if err := os.WriteFile(svc, []byte(tenantService(b, fmt.Sprintf("Environment=EDIT=%d\n", i))), 0o644); err != nil {
			return err
		}
		c0, _ := cpuTime(s.pid())
		r, d, err := reload(ctx, b, s)
		if err != nil {
			return err
		}
		c1, _ := cpuTime(s.pid())
		oneCPU = append(oneCPU, c1-c0)
		if len(r.Changed) != 1 || !strings.HasPrefix(r.Changed[0], "t00000") {
			return fmt.Errorf("reload after editing t00000.service: changed %v, want t00000 alone", r.Changed)
		}
		one = append(one, d)
	}
	res.add(row{
		figure: "tenants: one unit changed among " + label + ": `sockctl reload` (median of 5)",
		sockd:  fmt.Sprintf("%s (%s of sockd's CPU)", ms(median(one)), ms(median(oneCPU))),
		peer:   fmt.Sprintf("min %s, max %s%s", ms(minD(one)), ms(maxD(one)), extra(median(one))),
		target: "< 100 ms at 10,000",
		met:    yesNo(at10k(median(one)) < 100*time.Millisecond),
	})

	// (h) Churn: every tenant triggered once, churnBatch at a time, each
	// by one request, then stopped.
	if err := churn(ctx, s, sockDir, n, idleRSS, res); err != nil {
		res.fail("tenants: RSS after churn", err)
	}
	if err := s.stop(); err != nil {
		res.note("tenants: stopping sockd with %d units: %v", n, err)
	}

	// (b) TCP: one socket per unit on 127.0.0.1.
	if err := tenantsTCP(ctx, b, p, n, args, label, scale, res); err != nil {
		res.fail("tenants: "+label+", one TCP socket each", err)
	}
	return nil
}

// writeTenants writes n tenants into a new directory unitDir, tenant i
// listening on addr(i).
func writeTenants(b *bins, unitDir string, n int, addr func(int) string) error {
	if err := os.Mkdir(unitDir, 0o755); err != nil {
		return err
	}
	files := map[string]string{}
	for i := range n {
		files[fmt.Sprintf("t%05d.socket", i)] = "[Socket]\nListenStream=" + addr(i) + "\n"
		files[fmt.Sprintf("t%05d.service", i)] = tenantService(b, "")
	}
	return writeFiles(unitDir, files)
}

// holderCPU is the CPU time so far of sockd's fd holder, the child of
// sockd (pid) that keeps a copy of every socket: its share of a load is
// not in sockd's own figure.
func holderCPU(pid int) time.Duration {
	for _, k := range childrenOf(pid) {
		if cmdline(k.pid, "__sockd-fdholder") {
			d, _ := cpuTime(k.pid)
			return d
		}
	}
	return 0
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

// floorLoad runs bench/floor on dir reps times and returns the median
// time from exec to its "floor ready" line; count says how many sockets
// listen meanwhile, which must be want.
func floorLoad(ctx context.Context, b *bins, dir string, reps, want int, count func() (int, error)) (time.Duration, error) {
	var ds []time.Duration
	for range reps {
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
		if !strings.HasPrefix(line, "floor ready") || n != want {
			return 0, fmt.Errorf("floor %s: said %q, %d of %d sockets listening", dir, strings.TrimSpace(line), n, want)
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

// churnBudget bounds the churn: batches start until every tenant has
// been triggered or this much time has passed, so that the step stays
// within minutes on a busy machine; the row says how many were churned.
const churnBudget = 45 * time.Second

// churn triggers the tenants in turn, churnBatch at a time: one
// connection each, answered by the tenant's freshly spawned process,
// then a stop of each unit of the batch through the API. It reports
// sockd's RSS 10 s after the last batch beside its idle RSS, what each
// churned tenant left behind, and sockd's goroutines before and after.
//
// The stop stands in for an idle timeout (X-IdleTimeoutSec=, being added
// in supervisord/idle.go): once that lands, the tenants' service files
// can set it and this loop can wait for the units to go back to
// listening on their own instead of calling stop.
func churn(ctx context.Context, s *sockdProc, sockDir string, n int, idleRSS int64, res *results) error {
	const mb = 1 << 20
	rt0, err := s.client.Runtime(ctx)
	if err != nil {
		return err
	}
	t0 := time.Now()
	var (
		peak       int64
		trig, stop time.Duration
		churned    int
	)
	for start := 0; start < n && time.Since(t0) < churnBudget; start += churnBatch {
		if ctx.Err() != nil {
			return fmt.Errorf("churn at tenant %d: %w", start, ctx.Err())
		}
		end := min(start+churnBatch, n)
		t1 := time.Now()
		if err := parallel(start, end, 64, func(i int) error {
			return oneRequest(filepath.Join(sockDir, fmt.Sprintf("t%05d.sock", i)))
		}); err != nil {
			return err
		}
		t2 := time.Now()
		if r, err := vmRSS(s.pid()); err == nil {
			peak = max(peak, r)
		}
		if err := parallel(start, end, 16, func(i int) error {
			sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			return s.client.Stop(sctx, fmt.Sprintf("t%05d.service", i))
		}); err != nil {
			return err
		}
		trig += t2.Sub(t1)
		stop += time.Since(t2)
		churned = end
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
	rt1, err := s.client.Runtime(ctx)
	if err != nil {
		return err
	}
	left := 0
	for _, k := range childrenOf(s.pid()) {
		if !cmdline(k.pid, "__sockd-fdholder") {
			left++
		}
	}
	if left > 0 {
		res.note("tenants: %d processes besides the fd holder still children of sockd after the churn", left)
	}
	res.add(row{
		figure: fmt.Sprintf("tenants: RSS after churn (%d of %d cold tenants, %d at a time, one request each, then stopped), 10 s later", churned, n, churnBatch),
		sockd:  fmt.Sprintf("%.1f MB", float64(settled)/mb),
		peer: fmt.Sprintf("idle before: %.1f MB; right after: %.1f MB; peak: %.1f MB; %.0f bytes per churned tenant; goroutines %d → %d; "+
			"churn took %.1f s (requests %.1f s, stops %.1f s)",
			float64(idleRSS)/mb, float64(after)/mb, float64(peak)/mb, float64(settled-idleRSS)/float64(max(churned, 1)),
			rt0.Goroutines, rt1.Goroutines, took.Seconds(), trig.Seconds(), stop.Seconds()),
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

// smallTenants loads the tenants' shape at 1,000 units and returns
// sockd's idle RSS after 10 s.
func smallTenants(ctx context.Context, b *bins, args []string) (int64, error) {
	dir, cleanup, err := shortDir("sockd-bt1k-")
	if err != nil {
		return 0, err
	}
	defer cleanup()
	unitDir := filepath.Join(dir, "units")
	if err := writeTenants(b, unitDir, tenantSmall, func(i int) string { return fmt.Sprintf("%s/t%05d.sock", dir, i) }); err != nil {
		return 0, err
	}
	s, err := startSockd(ctx, b, unitDir, args...)
	if err != nil {
		return 0, err
	}
	defer s.stop()
	rss, _, _, err := idle(ctx, s.pid(), 10*time.Second)
	return rss, err
}

// tenantsTCP loads n tenants with one TCP socket each on 127.0.0.1
// beside the floor doing the same.
func tenantsTCP(ctx context.Context, b *bins, p *ports, n int, args []string, label string, scale float64, res *results) error {
	ps, err := p.take(n)
	if err != nil {
		return err
	}
	dir, cleanup, err := shortDir("sockd-bt-tcp-")
	if err != nil {
		return err
	}
	defer cleanup()
	unitDir := filepath.Join(dir, "units")
	want := map[int]bool{}
	for _, port := range ps {
		want[port] = true
	}
	if err := writeTenants(b, unitDir, n, func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ps[i]) }); err != nil {
		return err
	}
	floor, err := floorLoad(ctx, b, unitDir, 1, n, func() (int, error) { return listeningTCP(want) })
	if err != nil {
		return err
	}
	s, err := startSockd(ctx, b, unitDir, args...)
	if err != nil {
		return err
	}
	defer s.stop()
	cpu, err := cpuTime(s.pid())
	if err != nil {
		return err
	}
	listening, err := listeningTCP(want)
	if err != nil {
		return err
	}
	at10k := time.Duration(float64(s.ready) * scale)
	peer := fmt.Sprintf("floor (one run): %s", ms(floor))
	if scale != 1 {
		peer += fmt.Sprintf("; sockd at 10,000: ~%s", ms(at10k))
	}
	res.add(row{
		figure: "tenants: " + label + ", one TCP socket each on 127.0.0.1: exec → \"sockd ready\"",
		sockd:  fmt.Sprintf("%s (%s of CPU, %.0f µs per unit; fd holder %s)", ms(s.ready), ms(cpu), float64(cpu.Microseconds())/float64(n), ms(holderCPU(s.pid()))),
		peer:   peer,
		diff:   fmt.Sprintf("%.1f×", ratio(s.ready, floor)),
		target: "< 1.5 s at 10,000",
		met:    yesNo(at10k < 1500*time.Millisecond && listening == n),
	})
	if listening != n {
		res.note("tenants: only %d of %d TCP sockets were listening at \"sockd ready\"", listening, n)
	}
	return nil
}
