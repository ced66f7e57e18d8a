package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The recovery step's sizes: 1,000 units, 10 of them running, and 5
// rounds, each a cold start, a re-exec and a crash.
const (
	recoveryUnits   = 1000
	recoveryRunning = 10
	recoveryRounds  = 5
)

// Units the recovery step starts by a request, by index: 0 to
// recoveryRunning-1 run (the last of them is the cold start's idle
// unit), then the re-exec's and the crash's idle units.
const (
	probedUnit    = 0
	runningUnit   = 1
	coldIdleUnit  = recoveryRunning - 1
	reexecIdle    = recoveryRunning
	crashIdleUnit = recoveryRunning + 1
)

// Messages of sockd's log the recovery step waits for or times.
const (
	msgReady      = "sockd ready"
	msgReexecNow  = "re-executing now"
	msgRecovering = "recovering the previous sockd's processes"
	msgTookBack   = "took back the previous sockd's sockets"
	msgSIGKILL    = "not stopped in time: SIGKILL"
)

// recovery measures how long sockd with 1,000 units (10 of them running)
// takes to serve again after it re-executes itself (SIGUSR2), and after
// it is SIGKILLed and started again at once on the same runtime
// directory, where its fd holder kept every socket; beside it, a cold
// start of the same units from a fresh runtime directory, the cost of
// starting afresh. Each round does all three, so that the machine's
// noise falls on each alike: a cold start, 10 units started, a re-exec,
// a crash, a clean stop. A light load on a running unit counts failed
// requests across the re-execs and across the crashes.
func recovery(ctx context.Context, b *bins, p *ports, res *results) (err error) {
	ps, err := p.take(recoveryUnits)
	if err != nil {
		return err
	}
	unitDir, cleanupUnits, err := shortDir("sockd-bench-recovery")
	if err != nil {
		return err
	}
	defer cleanupUnits()
	base, cleanupBase, err := shortDir("sockd-bench-rec")
	if err != nil {
		return err
	}
	defer cleanupBase()
	files := map[string]string{}
	for i, port := range ps {
		files[fmt.Sprintf("r%04d.socket", i)] = fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\n", port)
		files[fmt.Sprintf("r%04d.service", i)] = b.demoService()
	}
	if err := writeFiles(unitDir, files); err != nil {
		return err
	}
	r := &recoveryRun{b: b, unitDir: unitDir, ports: ps, apps: &pidSet{m: map[int]bool{}},
		coldSpans: newSpans(), reSpans: newSpans(), crashSpans: newSpans(), cpu: newSpans()}
	// Whatever happens, nothing is left behind: sockd is stopped with
	// SIGTERM (which ends its fd holder), and a holder or app a failed
	// run left is killed and named.
	defer func() {
		if left := r.cleanup(); len(left) > 0 {
			res.note("recovery: killed what was left behind: %s", strings.Join(left, ", "))
			if err == nil {
				err = fmt.Errorf("processes left behind: %s", strings.Join(left, ", "))
			}
		}
	}()
	for i := range recoveryRounds {
		if err := r.round(ctx, filepath.Join(base, fmt.Sprintf("r%d", i))); err != nil {
			return fmt.Errorf("round %d: %w", i+1, err)
		}
	}

	mc, mr, mk := median(r.cold), median(r.reexec), median(r.crash)
	res.add(row{
		figure: fmt.Sprintf("recovery: re-exec (SIGUSR2) → new image's \"sockd ready\" and an idle and a running unit answered, %d units, %d running (median of %d)",
			recoveryUnits, recoveryRunning, recoveryRounds),
		sockd:  fmt.Sprintf("%s; light load: %d failed", ms(mr), r.reLoad.failed),
		diff:   fmt.Sprintf("cold start %s: %s", ms(mc), signed(mr-mc)),
		target: "< cold start, 0 failed",
		met:    yesNo(mr < mc && r.reLoad.failed == 0),
	})
	res.add(row{
		figure: fmt.Sprintf("recovery: SIGKILL, sockd started again → \"sockd ready\" and an idle unit's connection made meanwhile answered, %d units, %d running (median of %d)",
			recoveryUnits, recoveryRunning+1, recoveryRounds),
		sockd:  fmt.Sprintf("%s; light load: %d failed", ms(mk), r.crashLoad.failed),
		diff:   fmt.Sprintf("cold start %s: %s", ms(mc), signed(mk-mc)),
		target: "< cold start, 0 failed",
		met:    yesNo(mk < mc && r.crashLoad.failed == 0),
	})
	res.note("recovery: %d units on 127.0.0.1 TCP ports, served by sockd-demo (Type=notify); %d rounds, each: a cold start from a fresh runtime directory, "+
		"%d units started by a request, a re-exec, a SIGKILL and a start again, a clean stop (SIGTERM, which ends the fd holder too). "+
		"No peer does both: systemd's daemon-reexec would be the comparison, and there is no systemd as PID 1 here; "+
		"the diff column compares with sockd's own cold start of the same units in the same rounds (no holder, no state): "+
		"exec → \"sockd ready\", then a request to an idle unit answered: median %s (min %s, max %s); %s",
		recoveryUnits, recoveryRounds, recoveryRunning, ms(mc), ms(minD(r.cold)), ms(maxD(r.cold)), r.coldSpans)
	res.note("recovery, re-exec: min %s, max %s; measured from SIGUSR2 to the new image's \"sockd ready\" on the same stderr, then a request to an idle unit "+
		"(a new connection, which starts its app) and one to a running unit, sent at once, both answered. "+
		"Where the time goes (medians, sockd's log timestamps): %s", ms(minD(r.reexec)), ms(maxD(r.reexec)), r.reSpans)
	res.note("recovery, SIGKILL: min %s, max %s; measured from the exec of the new sockd (same --units, --api, --runtime-dir; the old one's holder kept the sockets) "+
		"to \"sockd ready\" and the answer on a connection to an idle unit made while no sockd ran, whichever is later: the answer alone came at median %s; "+
		"the adopted apps were all replaced by overlapping restarts %s after the exec (median). Where the time goes (medians, sockd's log timestamps): %s",
		ms(minD(r.crash)), ms(maxD(r.crash)), ms(median(r.answered)), ms(median(r.replaced)), r.crashSpans)
	res.note("recovery: CPU time (utime+stime, 10 ms ticks) used until \"sockd ready\", medians: %s", r.cpu)
	res.note("recovery, light load: one request every 10 ms on a new connection to a running unit, from the bench process; across the re-execs %s; across the crashes %s",
		r.reLoad, r.crashLoad)
	if r.sigkilled > 0 {
		res.note("recovery, SIGKILL: %d adopted apps did not stop on SIGTERM within TimeoutStopSec= and were SIGKILLed (sockd: %q): "+
			"their graceful stop hung (one known cause, fixed in bc17b06: a recovery that left a served socket blocking, so the app's accept blocked in the kernel and its drain never ended)", r.sigkilled, msgSIGKILL)
	}
	for _, l := range []probeResult{r.reLoad, r.crashLoad} {
		if len(l.errors) > 0 {
			res.note("recovery, light load: first errors: %q", l.errors)
		}
	}
	return nil
}

// recoveryRun is the state and the figures of one recovery step.
type recoveryRun struct {
	b       *bins
	unitDir string
	ports   []int

	cur     *recSockd // the sockd running now, if any
	runDirs []string  // every runtime directory used
	apps    *pidSet   // the demo processes seen

	cold, reexec, crash []time.Duration
	answered, replaced  []time.Duration // crash: the queued connection answered; the adopted apps replaced
	coldSpans, reSpans  *spans
	crashSpans          *spans
	cpu                 *spans // CPU time used until "sockd ready", by sockd and by its holder
	reLoad, crashLoad   probeResult
	sigkilled           int // apps that did not stop on SIGTERM within TimeoutStopSec=
}

func (r *recoveryRun) addr(i int) string { return fmt.Sprintf("127.0.0.1:%d", r.ports[i]) }

// ask makes one request to unit i and notes the pid that answered.
func (r *recoveryRun) ask(i int) error {
	pid, err := ask(r.addr(i), 30*time.Second)
	if err == nil {
		r.apps.add(pid)
	}
	return err
}

// start starts a sockd with its API socket and runtime directory in dir.
func (r *recoveryRun) start(dir string) (*recSockd, error) {
	if !slices.Contains(r.runDirs, filepath.Join(dir, "run")) {
		r.runDirs = append(r.runDirs, filepath.Join(dir, "run"))
	}
	s, err := startRecSockd(r.b, r.unitDir, dir)
	if err == nil {
		r.cur = s
	}
	return s, err
}

// round is one cold start in dir, a re-exec and a crash of that sockd,
// and its clean stop.
func (r *recoveryRun) round(ctx context.Context, dir string) error {
	if err := r.coldStart(ctx, dir); err != nil {
		return err
	}
	for i := range recoveryRunning {
		if i != coldIdleUnit {
			if err := r.ask(i); err != nil {
				return fmt.Errorf("first request to unit %d: %w", i, err)
			}
		}
	}
	if err := r.reexecOnce(ctx, dir); err != nil {
		return err
	}
	if err := r.crashOnce(ctx, dir); err != nil {
		return err
	}
	// A clean stop (SIGTERM) ends sockd, its apps and the fd holder.
	s := r.cur
	r.cur = nil
	r.apps.add(demoChildren(s.pid(), r.b.demo)...)
	if err := s.stop(); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	if h := holdersOf(filepath.Join(dir, "run")); len(h) > 0 {
		return fmt.Errorf("fd holder %v still runs after sockd's clean stop", h)
	}
	return nil
}

// coldStart starts sockd from a fresh runtime directory (no holder, no
// state) and times exec → "sockd ready", then a request to an idle unit
// answered.
func (r *recoveryRun) coldStart(ctx context.Context, dir string) error {
	s, err := r.start(dir)
	if err != nil {
		return err
	}
	if _, _, err := s.waitFor(ctx, 0, msgReady); err != nil {
		return fmt.Errorf("cold start: %w", err)
	}
	cpu := cpuSince(s.pid(), 0)
	if err := r.ask(coldIdleUnit); err != nil {
		return fmt.Errorf("cold start: request to an idle unit: %w", err)
	}
	end := time.Now()
	r.cpu.addD("cold start: sockd", cpu)
	r.cpu.addD("its new holder", cpuSince(holderOf(filepath.Join(dir, "run")), 0))

	r.cold = append(r.cold, end.Sub(s.started))
	m := s.marks(0)
	r.coldSpans.add("exec → first log line (Go start)", s.started, m.first)
	r.coldSpans.add("→ \"sockd ready\" (holder started, 1,000 sockets bound and given to it, units added)", m.first, m.ready)
	r.coldSpans.add("→ idle unit answered", m.ready, end)
	return nil
}

// reexecOnce sends SIGUSR2 to the sockd running in dir and times it to
// the new image's "sockd ready" (the same process, the same stderr),
// then a request to an idle unit (a new connection: it starts that
// unit's app) and one to a running unit, sent at once, both answered.
func (r *recoveryRun) reexecOnce(ctx context.Context, dir string) error {
	probe := startProbe(r.addr(probedUnit))
	defer func() { r.reLoad.merge(probe.end()) }()
	s := r.cur
	holder := holderOf(filepath.Join(dir, "run"))
	cpu0, hcpu0 := cpuSince(s.pid(), 0), cpuSince(holder, 0)
	from := s.mark()
	t0 := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		return err
	}
	j, now, err := s.waitFor(ctx, from, msgReexecNow)
	if err == nil {
		_, _, err = s.waitFor(ctx, j+1, msgReady)
	}
	if err != nil {
		return fmt.Errorf("re-exec: %w", err)
	}
	cpu := cpuSince(s.pid(), cpu0)
	var wg sync.WaitGroup
	var idleErr, runErr error
	wg.Add(2)
	go func() { defer wg.Done(); idleErr = r.ask(reexecIdle) }()
	go func() { defer wg.Done(); runErr = r.ask(runningUnit) }()
	wg.Wait()
	end := time.Now()
	if err := errors.Join(idleErr, runErr); err != nil {
		return fmt.Errorf("re-exec: %w", err)
	}
	r.reexec = append(r.reexec, end.Sub(t0))
	r.cpu.addD("re-exec: sockd (both images)", cpu)
	r.cpu.addD("its holder", cpuSince(holder, hcpu0))
	m := s.marks(j + 1)
	r.reSpans.add("SIGUSR2 → \"re-executing now\" (self-test, 1,000 units frozen, state written)", t0, now.at)
	r.reSpans.add("→ new image's first log line (exec, Go start)", now.at, m.first)
	m.addTo(r.reSpans)
	r.reSpans.add("→ idle and running unit answered", m.ready, end)
	return sleepCtx(ctx, 200*time.Millisecond) // the probe on, with nothing happening
}

// crashOnce SIGKILLs sockd, makes a connection to an idle unit while no
// sockd runs (the holder's copy of the socket queues it) and starts
// sockd again at once with the same arguments (dir); it times the new
// sockd's exec to "sockd ready" and that connection answered, whichever
// comes last. It returns once the adopted apps have been replaced
// (overlapping restarts).
func (r *recoveryRun) crashOnce(ctx context.Context, dir string) error {
	probe := startProbe(r.addr(probedUnit))
	defer func() { r.crashLoad.merge(probe.end()) }()
	old := demoChildren(r.cur.pid(), r.b.demo)
	r.apps.add(old...)
	r.cur.kill()
	c, err := request(r.addr(crashIdleUnit), 30*time.Second)
	if err != nil {
		return fmt.Errorf("crash: request while no sockd runs: %w", err)
	}
	defer c.Close()
	holder := holderOf(filepath.Join(dir, "run"))
	hcpu0 := cpuSince(holder, 0)
	s, err := r.start(dir)
	if err != nil {
		return fmt.Errorf("crash: start sockd again: %w", err)
	}
	type answered struct {
		at  time.Time
		err error
	}
	got := make(chan answered, 1)
	go func() {
		pid, err := answer(c)
		if err == nil {
			r.apps.add(pid)
		}
		got <- answered{time.Now(), err}
	}()
	_, _, err = s.waitFor(ctx, 0, msgReady)
	readyAt := time.Now()
	if err != nil {
		return fmt.Errorf("crash: %w", err)
	}
	cpu := cpuSince(s.pid(), 0)
	var a answered
	select {
	case a = <-got:
	case <-ctx.Done():
		return fmt.Errorf("crash: the connection made while no sockd ran: %w", ctx.Err())
	}
	if a.err != nil {
		return fmt.Errorf("crash: the connection made while no sockd ran: %w", a.err)
	}
	r.answered = append(r.answered, a.at.Sub(s.started))
	r.crash = append(r.crash, max(readyAt.Sub(s.started), a.at.Sub(s.started)))
	r.cpu.addD("SIGKILL: the new sockd", cpu)
	r.cpu.addD("the holder", cpuSince(holder, hcpu0))
	m := s.marks(0)
	r.crashSpans.add("exec → first log line (Go start)", s.started, m.first)
	m.addTo(r.crashSpans)
	if err := waitGone(ctx, old, 30*time.Second); err != nil {
		return fmt.Errorf("crash: adopted apps not replaced: %w", err)
	}
	r.replaced = append(r.replaced, time.Since(s.started))
	r.sigkilled += s.count(msgSIGKILL)
	return sleepCtx(ctx, 200*time.Millisecond)
}

// cleanup stops the running sockd, if any, with SIGTERM, then kills
// every fd holder serving one of the runtime directories and every demo
// process seen that is still alive, and names what it had to kill.
func (r *recoveryRun) cleanup() []string {
	if r.cur != nil && !r.cur.exited() {
		r.apps.add(demoChildren(r.cur.pid(), r.b.demo)...)
		r.cur.stop()
	}
	var left []string
	for _, dir := range r.runDirs {
		for _, pid := range holdersOf(dir) {
			syscall.Kill(pid, syscall.SIGKILL)
			left = append(left, fmt.Sprintf("fd holder %d", pid))
		}
	}
	for _, pid := range r.apps.list() {
		if alive(pid) && isExe(pid, r.b.demo) {
			syscall.Kill(-pid, syscall.SIGKILL) // each app leads its group
			syscall.Kill(pid, syscall.SIGKILL)
			left = append(left, fmt.Sprintf("app %d", pid))
		}
	}
	return left
}

// pidSet is a set of pids safe for concurrent use.
type pidSet struct {
	mu sync.Mutex
	m  map[int]bool
}

func (s *pidSet) add(pids ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range pids {
		s.m[p] = true
	}
}

func (s *pidSet) list() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for p := range s.m {
		out = append(out, p)
	}
	return out
}

// recSockd is a sockd the recovery step re-executes, kills and starts
// again: it reads every line of sockd's log, since a re-exec logs "sockd
// ready" once more on the same stderr.
type recSockd struct {
	cmd     *exec.Cmd
	started time.Time
	log     *tail // warnings, errors and lines that are not JSON
	more    chan struct{}
	done    chan struct{} // closed when the process has exited
	waitErr error

	mu    sync.Mutex
	lines []logLine
}

// logLine is one line of sockd's JSON log.
type logLine struct {
	msg string
	at  time.Time // sockd's timestamp
}

// startRecSockd starts sockd on unitsDir with its API socket and runtime
// directory in dir: the same dir after a crash is the same command line.
// It does not wait for "sockd ready".
func startRecSockd(b *bins, unitsDir, dir string) (*recSockd, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s := &recSockd{log: &tail{}, more: make(chan struct{}, 1), done: make(chan struct{})}
	s.cmd = exec.Command(b.sockd, "--units", unitsDir, "--api", filepath.Join(dir, "api.sock"), "--log-format", "json",
		"--runtime-dir", filepath.Join(dir, "run"))
	s.cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(b.sockd)+":"+os.Getenv("PATH"))
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	s.started = time.Now()
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", b.sockd, err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var l struct {
				Level   string    `json:"level"`
				Message string    `json:"message"`
				Time    time.Time `json:"time"`
			}
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil || l.Level == "warn" || l.Level == "error" {
				s.log.add(sc.Text())
			}
			s.mu.Lock()
			s.lines = append(s.lines, logLine{msg: l.Message, at: l.Time})
			s.mu.Unlock()
			select {
			case s.more <- struct{}{}:
			default:
			}
		}
		io.Copy(io.Discard, stderr)
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	return s, nil
}

func (s *recSockd) pid() int { return s.cmd.Process.Pid }

// mark is the index of the next line sockd logs.
func (s *recSockd) mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

// waitFor waits for a line with message msg at index from or later, and
// returns its index and the line.
func (s *recSockd) waitFor(ctx context.Context, from int, msg string) (int, logLine, error) {
	exited := false
	for {
		s.mu.Lock()
		for i := from; i < len(s.lines); i++ {
			if s.lines[i].msg == msg {
				l := s.lines[i]
				s.mu.Unlock()
				return i, l, nil
			}
		}
		from = len(s.lines)
		s.mu.Unlock()
		if exited {
			return 0, logLine{}, fmt.Errorf("sockd exited (%v) before logging %q:\n%s", s.waitErr, msg, s.log)
		}
		select {
		case <-s.more:
		case <-s.done:
			exited = true // one more look: the line may have come last
		case <-ctx.Done():
			return 0, logLine{}, fmt.Errorf("no %q from sockd: %w\n%s", msg, ctx.Err(), s.log)
		}
	}
}

// count is how many lines with message msg sockd logged.
func (s *recSockd) count(msg string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.lines {
		if l.msg == msg {
			n++
		}
	}
	return n
}

// startMarks are when one start of sockd (a new process or a re-exec's
// new image) reached each step, on sockd's clock; a zero time is a line
// it did not log.
type startMarks struct {
	first      time.Time // its first line: the Go runtime is up
	recovering time.Time // the holder's fds taken, the state file read
	firstTook  time.Time // the unit files read, the first unit's sockets taken back
	lastTook   time.Time // the last unit's
	ready      time.Time
}

// marks reads the marks of the start whose first line is at index from.
func (s *recSockd) marks(from int) startMarks {
	s.mu.Lock()
	defer s.mu.Unlock()
	var m startMarks
	for _, l := range s.lines[from:] {
		if m.first.IsZero() {
			m.first = l.at
		}
		switch l.msg {
		case msgRecovering:
			m.recovering = l.at
		case msgTookBack:
			if m.firstTook.IsZero() {
				m.firstTook = l.at
			}
			m.lastTook = l.at
		case msgReady:
			m.ready = l.at
			return m
		}
	}
	return m
}

// addTo adds the stretches from the first line to "sockd ready" to sp.
func (m startMarks) addTo(sp *spans) {
	sp.add("→ \"recovering\" (holder connected, every fd taken back, state read)", m.first, m.recovering)
	sp.add("→ first unit's sockets taken back (1,000 unit files read)", m.recovering, m.firstTook)
	sp.add("→ last unit's (1,000 units added: sockets reused, copies given to the holder, apps adopted)", m.firstTook, m.lastTook)
	sp.add("→ \"sockd ready\" (API socket)", m.lastTook, m.ready)
}

// stop ends sockd with SIGTERM (SIGKILL after 30 s): it stops every
// unit and, having stopped them all, its fd holder.
func (s *recSockd) stop() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return s.waitErr
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("sockd did not stop within 30 s of SIGTERM")
	}
}

// kill SIGKILLs sockd and waits until it is gone.
func (s *recSockd) kill() {
	s.cmd.Process.Kill()
	<-s.done
}

// exited reports whether the process has exited.
func (s *recSockd) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// holdersOf lists the fd holders serving the runtime directory dir (their
// command line is "sockd-fdholder __sockd-fdholder DIR").
func holdersOf(dir string) []int {
	var pids []int
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, c := range cmdlines {
		b, err := os.ReadFile(c)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) >= 3 && args[1] == "__sockd-fdholder" && args[2] == dir {
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(c))); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// holderOf returns the pid of the fd holder serving dir, 0 if none.
func holderOf(dir string) int {
	if pids := holdersOf(dir); len(pids) == 1 {
		return pids[0]
	}
	return 0
}

// cpuSince returns the CPU time (utime+stime, in clock ticks of 10 ms)
// pid has used, less since; -1 if there is no such process.
func cpuSince(pid int, since time.Duration) time.Duration {
	if pid == 0 || since < 0 {
		return -1
	}
	t, err := cpuTicks(pid)
	if err != nil {
		return -1
	}
	return time.Duration(t)*10*time.Millisecond - since
}

// demoChildren lists pid's children that run the demo binary.
func demoChildren(pid int, demo string) []int {
	var out []int
	for _, k := range childrenOf(pid) {
		if k.state != 'Z' && isExe(k.pid, demo) {
			out = append(out, k.pid)
		}
	}
	return out
}

func isExe(pid int, path string) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && exe == path
}

// alive reports whether pid is a process that has not exited.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}

// waitGone waits until none of pids is alive.
func waitGone(ctx context.Context, pids []int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var left []int
		for _, pid := range pids {
			if alive(pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pids %v still alive after %s", left, timeout)
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// request connects to addr and sends one HTTP request, leaving the answer
// unread: the kernel queues the connection on a listening socket even
// while nobody accepts. The connection's deadline is now + timeout.
func request(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"); err != nil {
		c.Close()
		return nil, fmt.Errorf("write to %s: %w", addr, err)
	}
	return c, nil
}

// answer reads the whole answer on c, checks it is a 200 and returns the
// pid the demo names in it ("... (pid N)").
func answer(c net.Conn) (int, error) {
	b, err := io.ReadAll(c)
	if err != nil {
		return 0, fmt.Errorf("read from %s: %w", c.RemoteAddr(), err)
	}
	s := string(b)
	if !strings.HasPrefix(s, "HTTP/1.1 200") {
		return 0, fmt.Errorf("answer from %s: %.40q", c.RemoteAddr(), s)
	}
	i := strings.LastIndex(s, "(pid ")
	j := strings.LastIndexByte(s, ')')
	if i < 0 || j < i {
		return 0, fmt.Errorf("answer from %s names no pid: %.80q", c.RemoteAddr(), s)
	}
	return strconv.Atoi(s[i+len("(pid ") : j])
}

// ask makes one request to addr and returns the pid that answered.
func ask(addr string, timeout time.Duration) (int, error) {
	c, err := request(addr, timeout)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return answer(c)
}

// probe is a light load: one request every 10 ms, each on a new
// connection, from the bench process.
type probe struct {
	stop chan struct{}
	done chan probeResult
	once sync.Once
	res  probeResult
}

// probeResult counts a probe's requests.
type probeResult struct {
	ok, failed int
	max        time.Duration
	errors     []string // the first 3
}

// merge adds o's counts to r's.
func (r *probeResult) merge(o probeResult) {
	r.ok += o.ok
	r.failed += o.failed
	r.max = max(r.max, o.max)
	for _, e := range o.errors {
		if len(r.errors) < 3 {
			r.errors = append(r.errors, e)
		}
	}
}

func (r probeResult) String() string {
	return fmt.Sprintf("%d requests, %d failed, slowest %s", r.ok+r.failed, r.failed, ms(r.max))
}

func startProbe(addr string) *probe {
	p := &probe{stop: make(chan struct{}), done: make(chan probeResult, 1)}
	go func() {
		var r probeResult
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				p.done <- r
				return
			case <-tick.C:
			}
			d, err := firstByte("tcp", addr, 10*time.Second)
			if err != nil {
				r.failed++
				if len(r.errors) < 3 {
					r.errors = append(r.errors, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
				}
				continue
			}
			r.ok++
			r.max = max(r.max, d)
		}
	}()
	return p
}

// end stops the probe and returns its counts; it may be called again.
func (p *probe) end() probeResult {
	p.once.Do(func() {
		close(p.stop)
		p.res = <-p.done
	})
	return p.res
}

// spans collects named stretches of time over several runs, in the
// order first added, and formats their medians.
type spans struct {
	names []string
	ds    map[string][]time.Duration
}

func newSpans() *spans { return &spans{ds: map[string][]time.Duration{}} }

// add adds the stretch from a to b, unless either is missing.
func (sp *spans) add(name string, a, b time.Time) {
	if a.IsZero() || b.IsZero() {
		return
	}
	if _, ok := sp.ds[name]; !ok {
		sp.names = append(sp.names, name)
	}
	sp.ds[name] = append(sp.ds[name], b.Sub(a))
}

// addD adds a stretch of length d, unless d is negative (not measured).
func (sp *spans) addD(name string, d time.Duration) {
	if d < 0 {
		return
	}
	if _, ok := sp.ds[name]; !ok {
		sp.names = append(sp.names, name)
	}
	sp.ds[name] = append(sp.ds[name], d)
}

func (sp *spans) String() string {
	var parts []string
	for _, n := range sp.names {
		parts = append(parts, fmt.Sprintf("%s %s", n, ms(median(sp.ds[n]))))
	}
	return strings.Join(parts, "; ")
}
