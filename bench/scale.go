package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// scaleUnits is how many units the scale step loads.
const scaleUnits = 1000

// scale loads 1,000 units, each with a TCP and a Unix socket, and
// measures the time until all listen, sockd's idle RSS and CPU, sockctl
// list, 100 cold units triggered at once, and a /metrics scrape.
func scale(ctx context.Context, b *bins, p *ports, res *results) error {
	ps, err := p.take(scaleUnits)
	if err != nil {
		return err
	}
	unitDir, cleanup, err := shortDir("sockd-bench-scale")
	if err != nil {
		return err
	}
	defer cleanup()
	sockDir, cleanupSocks, err := shortDir("sockd-bs")
	if err != nil {
		return err
	}
	defer cleanupSocks()
	files := map[string]string{}
	want := map[int]bool{}
	for i, port := range ps {
		files[fmt.Sprintf("u%04d.socket", i)] = fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\nListenStream=%s/u%04d.sock\n", port, sockDir, i)
		files[fmt.Sprintf("u%04d.service", i)] = b.demoService()
		want[port] = true
	}
	if err := writeFiles(unitDir, files); err != nil {
		return err
	}
	s, err := startSockd(ctx, b, unitDir)
	if err != nil {
		return err
	}
	defer s.stop()
	tcp, err := listeningTCP(want)
	if err != nil {
		return err
	}
	unix, err := listeningUnix(sockDir)
	if err != nil {
		return err
	}
	allAt := time.Since(s.started)
	res.add(row{
		figure: fmt.Sprintf("scale: %d units (%d TCP + %d Unix sockets): exec → \"sockd ready\"", scaleUnits, scaleUnits, scaleUnits),
		sockd:  ms(s.ready),
		peer:   fmt.Sprintf("all listening (checked in /proc/net): %s (%d TCP, %d Unix)", ms(allAt), tcp, unix),
		target: "< 1 s",
		met:    yesNo(allAt < time.Second && tcp == scaleUnits && unix == scaleUnits),
	})
	if tcp != scaleUnits || unix != scaleUnits {
		res.note("scale: only %d TCP and %d Unix sockets of %d each were listening at \"sockd ready\"", tcp, unix, scaleUnits)
	}
	if allAt >= time.Second {
		res.note("scale: serving all took %s, %s over the 1 s target", ms(allAt), ms(allAt-time.Second))
	}
	if lim := nofile(s.pid()); lim != "" {
		res.note("scale: sockd's open-files limit is %s (soft hard); it holds %d listening sockets plus its own fds", lim, 2*scaleUnits)
	}

	// Idle: RSS and CPU over 10 s with nothing happening.
	cpu0, err := cpuTime(s.pid())
	if err != nil {
		return err
	}
	ticks0, _ := cpuTicks(s.pid())
	select {
	case <-time.After(10 * time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	cpu1, err := cpuTime(s.pid())
	if err != nil {
		return err
	}
	ticks1, _ := cpuTicks(s.pid())
	rss, err := vmRSS(s.pid())
	if err != nil {
		return err
	}
	const mb = 1 << 20
	res.add(row{
		figure: "scale: sockd's idle RSS with 1,000 units",
		sockd:  fmt.Sprintf("%.1f MB", float64(rss)/mb),
		target: "< 30 MB",
		met:    yesNo(rss < 30*mb),
	})
	if rss >= 30*mb {
		res.note("scale: idle RSS %.1f MB is %.1f MB over 30 MB: what stays is the parsed units (about 10 MB of heap), "+
			"one actor and one socket-waiter goroutine per unit (about 9 MB of stacks), and the binary's and libc's pages (about 7 MB)", float64(rss)/mb, float64(rss-30*mb)/mb)
	}
	pct := float64(cpu1-cpu0) / float64(10*time.Second) * 100
	res.add(row{
		figure: "scale: sockd's idle CPU over 10 s with 1,000 units",
		sockd:  fmt.Sprintf("%.3f %% (%s of CPU)", pct, ms(cpu1-cpu0)),
		peer:   fmt.Sprintf("utime+stime: %d ticks", ticks1-ticks0),
		target: "< 0.1 %",
		met:    yesNo(pct < 0.1),
	})
	if pct >= 0.1 {
		res.note("scale: idle CPU %.3f %% is %.3f points over 0.1 %%", pct, pct-0.1)
	}

	// sockctl list.
	var lists []time.Duration
	for range 20 {
		cmd := exec.CommandContext(ctx, b.sockctl, "--api", s.apiPath, "list")
		var out bytes.Buffer
		cmd.Stdout = &out
		t0 := time.Now()
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("sockctl list: %w", err)
		}
		lists = append(lists, time.Since(t0))
		if n := bytes.Count(out.Bytes(), []byte("\n")); n < scaleUnits {
			return fmt.Errorf("sockctl list printed %d lines for %d units", n, scaleUnits)
		}
	}
	ml := median(lists)
	res.add(row{
		figure: "scale: `sockctl list` of 1,000 units, wall time (median of 20)",
		sockd:  ms(ml),
		peer:   fmt.Sprintf("min %s, max %s", ms(minD(lists)), ms(maxD(lists))),
		target: "< 50 ms",
		met:    yesNo(ml < 50*time.Millisecond),
	})
	if ml >= 50*time.Millisecond {
		res.note("scale: sockctl list takes %s, %s over 50 ms", ms(ml), ms(ml-50*time.Millisecond))
	}

	// 100 cold units at once.
	const burst = 100
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		each   []time.Duration
		failed []error
	)
	t0 := time.Now()
	for i := range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := firstByte("tcp", fmt.Sprintf("127.0.0.1:%d", ps[i]), 30*time.Second)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, err)
				return
			}
			each = append(each, d)
		}()
	}
	wg.Wait()
	all := time.Since(t0)
	x := row{
		figure: fmt.Sprintf("scale: %d cold units triggered at once: time until all answered", burst),
		sockd:  ms(all),
		peer:   fmt.Sprintf("per connection: median %s, max %s", ms(median(each)), ms(maxOr0(each))),
		diff:   fmt.Sprintf("%d failed", len(failed)),
		target: "0 failed",
		met:    yesNo(len(failed) == 0),
	}
	res.add(x)
	if len(failed) > 0 {
		res.note("scale: %d of %d cold units failed, first: %v", len(failed), burst, failed[0])
	}

	// A Prometheus scrape, with 100 of the units running.
	if err := metricsScrape(ctx, s, res); err != nil {
		res.fail("scale: `GET /metrics` with 1,000 units", err)
	}
	return nil
}

func maxOr0(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return maxD(ds)
}

// listeningTCP counts the ports of want in LISTEN state on 127.0.0.1.
func listeningTCP(want map[int]bool) (int, error) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 4 || fl[3] != "0A" || !strings.HasPrefix(fl[1], "0100007F:") {
			continue
		}
		port, err := strconv.ParseInt(strings.TrimPrefix(fl[1], "0100007F:"), 16, 32)
		if err == nil && want[int(port)] {
			n++
		}
	}
	return n, sc.Err()
}

// listeningUnix counts listening Unix sockets bound in dir.
func listeningUnix(dir string) (int, error) {
	f, err := os.Open("/proc/net/unix")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Num RefCount Protocol Flags Type St Inode Path
		fl := strings.Fields(sc.Text())
		if len(fl) < 8 || filepath.Dir(fl[7]) != dir {
			continue
		}
		flags, err := strconv.ParseUint(fl[3], 16, 32)
		if err == nil && flags&0x10000 != 0 { // __SO_ACCEPTCON: listening
			n++
		}
	}
	return n, sc.Err()
}

// cpuTime sums the CPU time of every thread of pid (schedstat, in ns).
func cpuTime(pid int) (time.Duration, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var sum time.Duration
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if err != nil {
			continue // the thread ended
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			sum += time.Duration(ns)
		}
	}
	return sum, nil
}

// cpuTicks returns utime+stime of pid in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s, nil
}

// vmRSS returns pid's resident set size in bytes.
func vmRSS(pid int) (int64, error) {
	return statusField(pid, "VmRSS:")
}

// statusField returns a kB field of /proc/PID/status in bytes, or a
// count field as it is.
func statusField(pid int, key string) (int64, error) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key); ok {
			f := strings.Fields(v)
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %s %w", path, key, err)
			}
			if len(f) > 1 && f[1] == "kB" {
				n *= 1024
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}

// nofile returns pid's open-files limit as "soft hard".
func nofile(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Max open files"); ok {
			f := strings.Fields(v)
			if len(f) >= 2 {
				return f[0] + " " + f[1]
			}
		}
	}
	return ""
}
