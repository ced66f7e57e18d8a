package supervisord

// sockd's file descriptors: a budget so that units cannot take the fds
// sockd itself needs to keep working at its RLIMIT_NOFILE.
//
// When the units load, sockd counts the fds it has open (its own: the
// Go runtime's, the notify socket, the connection to the fd holder, the
// connection waiter's epoll) and keeps fdReserve more free for what it
// opens later and for a while: the API socket and its connections, the
// unit-directory watch, and what spawning a child takes for a moment
// (pipes, /dev/null, a pidfd, the exec helper's pipe). The rest of the
// limit is the units' budget. A unit is counted for what it keeps while
// idle: its listening sockets (unitFDs). A unit whose sockets do not fit
// is not opened: it is listed as failed with result "resources" and an
// error wrapping EMFILE that names the limit, like a unit whose address
// is taken (busy.go), and is tried again at every reload and with
// back-off. A process is counted while it runs, for the output pipes
// sockd reads (procFDs): taken from the budget when it spawns, given
// back when it has exited. A spawn that does not fit fails that start
// with result "resources" and the same error; the sockets stay, and the
// back-off applies as for any failed start.

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/units"
)

const (
	// fdReserve is how many fds the budget keeps free beyond those open
	// when the units load. Measured with 0 units: sockd has 16 open,
	// the API listener and inotify included; a spawn takes up to 8 more
	// for a moment (2 output pipes, the spawn's error pipe,
	// /dev/null, a pidfd); an API request takes 1, a reload a few
	// (directory and unit files, one at a time); the Go runtime's
	// cgroup files and a second start overlapping a restart take the
	// rest.
	fdReserve = 32
	// fdsPerProcess is what a running process costs sockd: the read
	// ends of its stdout and stderr pipes, and the pidfd the netpoller
	// waits on for its exit (children/exitwait.go). A restart's
	// overlapping process, an Accept=yes instance and an Exec*= command
	// are each counted as they spawn.
	fdsPerProcess = 3
)

// fdBudget counts the fds the loaded units are counted for against the
// units' share of RLIMIT_NOFILE.
type fdBudget struct {
	mu    sync.Mutex
	limit int // RLIMIT_NOFILE (soft); 0 when unlimited or unknown
	base  int // fds open when the units first loaded, sockd's own
	used  map[string]int
	total int // sum of used
	procs int // fds of the processes running (takeProc)
	// run is what one process takes (procFDs): a unit is opened only
	// with room left to run it, else its sockets would hold a
	// connection that no process could ever serve.
	run int
	// want and wantUnits are what every unit of the last load needs,
	// for the error and the log line.
	want, wantUnits int
	planned, fitted bool // a load has been planned; whether it fitted
	// limitOf reads the limit (nofileLimit); tests put a smaller one.
	limitOf func() int
}

// fdSummary is the budget at a glance, for the log line at start.
type fdSummary struct {
	Limit, Open, Reserve, Units, Need int
}

// String is the log line's message: "fds: limit 64, units need ~300,
// reserve 32 (and 15 open before the units)".
func (s fdSummary) String() string {
	if s.Limit == 0 {
		return fmt.Sprintf("fds: no limit, units need ~%d", s.Need)
	}
	return fmt.Sprintf("fds: limit %d, units need ~%d, reserve %d (and %d open before the units)", s.Limit, s.Need, s.Reserve, s.Open)
}

// fits reports whether the units' needs fit in the limit.
func (s fdSummary) fits() bool { return s.Limit == 0 || s.Open+s.Reserve+s.Need <= s.Limit }

// readLimit is the limit now.
func (b *fdBudget) readLimit() int {
	if b.limitOf != nil {
		return b.limitOf()
	}
	return nofileLimit()
}

// init sets the limit and sockd's own count, once.
func (b *fdBudget) init(limit, base int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.limit, b.base = limit, base
	if b.used == nil {
		b.used = map[string]int{}
	}
}

// plan records what all the units of a load need (n units, need fds),
// and returns the summary.
func (b *fdBudget) plan(n, need int) fdSummary {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.want, b.wantUnits = need, n
	return fdSummary{Limit: b.limit, Open: b.base, Reserve: fdReserve, Units: n, Need: need}
}

// take counts need fds for unit (replacing what it was counted for), or
// returns an error wrapping EMFILE if they, and one process (run), do
// not fit; what is the
// object the error names ("open app.socket"). A unit taken back (force:
// its sockets are open already, given back by the fd holder or systemd)
// is counted even past the budget: refusing it would close a socket
// that serves, and free nothing.
func (b *fdBudget) take(unit string, need int, what string, force bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used == nil {
		b.used = map[string]int{}
	}
	old := b.used[unit]
	if !force && b.limit > 0 && b.total-old+need+b.procs+b.run > b.limit-b.base-fdReserve {
		e := b.errorLocked(what, syscall.EMFILE)
		e.Budget = true
		return e
	}
	b.used[unit] = need
	b.total += need - old
	return nil
}

// takeProc counts n fds for a process about to spawn, or returns an
// error wrapping EMFILE if they do not fit (the caller names the unit).
func (b *fdBudget) takeProc(n int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.limit > 0 && b.total+b.procs+n > b.limit-b.base-fdReserve {
		e := b.errorLocked("", syscall.EMFILE)
		e.Budget = true
		return e
	}
	b.procs += n
	return nil
}

// releaseProc gives back what takeProc took.
func (b *fdBudget) releaseProc(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.procs -= n
}

// starter is start with each process's fds (n) taken from b while it
// runs: a spawn that does not fit fails with takeProc's error.
func (b *fdBudget) starter(n int, start startFunc) startFunc {
	return func(spec children.Spec) (process, error) {
		if err := b.takeProc(n); err != nil {
			return nil, err
		}
		p, err := start(spec)
		if err != nil {
			b.releaseProc(n)
			return nil, err
		}
		bp := &budgetProc{process: p, done: make(chan struct{})}
		go func() {
			<-p.Done()
			b.releaseProc(n)
			close(bp.done)
		}()
		return bp, nil
	}
}

// budgetProc is a process whose Done is closed once its fds are back in
// the budget: whoever sees it done may start another at once.
type budgetProc struct {
	process
	done chan struct{}
}

func (p *budgetProc) Done() <-chan struct{} { return p.done }

// Exited is the process's own, when it tells its exit apart from the
// end of its output (cgProc waits for it).
func (p *budgetProc) Exited() <-chan struct{} {
	if e, ok := p.process.(interface{ Exited() <-chan struct{} }); ok {
		return e.Exited()
	}
	return p.process.Done()
}

// release forgets what unit was counted for.
func (b *fdBudget) release(unit string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total -= b.used[unit]
	delete(b.used, unit)
}

// explain adds the limit to err if it is the kernel's EMFILE or ENFILE
// (the budget was not enough after all), and returns other errors as
// they are.
func (b *fdBudget) explain(err error) error {
	if !isTooManyFiles(err) || errors.As(err, new(*fdLimitError)) {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.errorLocked("", err)
}

func (b *fdBudget) errorLocked(what string, err error) *fdLimitError {
	return &fdLimitError{What: what, Err: err, Limit: b.limit, Own: b.base + fdReserve, Units: b.wantUnits, Need: b.want, Procs: b.procs}
}

// fdLimitError is a unit not opened for want of fds.
type fdLimitError struct {
	What  string // "open app.socket", or "" when Err names it
	Err   error  // EMFILE, or the kernel's error wrapping it or ENFILE
	Limit int
	Own   int // what sockd keeps for itself: open at start + reserve
	Units int
	Need  int // the units' sockets
	Procs int // the running processes' pipes
	// Budget is set when the budget refused the unit, rather than the
	// kernel: only a reload (units removed, a higher limit) changes that.
	Budget bool
}

func (e *fdLimitError) Error() string {
	msg := e.Err.Error()
	if e.What != "" {
		msg = e.What + ": " + msg
	}
	if e.Limit == 0 {
		return msg
	}
	return fmt.Sprintf("%s (fd limit %d; sockd keeps %d for itself, the sockets of %d units need about %d, running processes take %d)", msg, e.Limit, e.Own, e.Units, e.Need, e.Procs)
}

func (e *fdLimitError) Unwrap() error { return e.Err }

// isTooManyFiles reports whether err is the process's (EMFILE) or the
// system's (ENFILE) fd limit.
func isTooManyFiles(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// unitFDs is what an idle unit is counted for: one fd for each socket
// it opens, and with cgroups (cg) one more for an Accept=yes unit's
// cgroup, open while it is loaded (a service's is open only while it has
// a process: procFDs).
func unitFDs(svc *units.Service, socks []*units.Socket, cg bool) int {
	n := 0
	for _, s := range socks {
		if svc.Template && !s.Accept {
			continue // Sockets= of an Accept=yes template: never opened
		}
		n += len(s.Listens)
	}
	if cg && svc.Template {
		n++
	}
	return n
}

// procFDs is what a running process is counted for: its output pipes
// and pidfd, and with cgroups (cg) its leaf and its unit's cgroup (open
// while the unit has a process: counted for each, the safe side).
func procFDs(cg bool) int {
	if cg {
		return fdsPerProcess + 2
	}
	return fdsPerProcess
}

// socketNames is "open a.socket, b.socket", what a budget error names.
func socketNames(svc *units.Service, socks []*units.Socket) string {
	if len(socks) == 0 {
		return "start " + svc.Name
	}
	names := make([]string, len(socks))
	for i, s := range socks {
		names[i] = s.Name
	}
	return "open " + strings.Join(names, ", ")
}

// nofileLimit is the soft RLIMIT_NOFILE, 0 when unlimited or unknown.
func nofileLimit() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == unix.RLIM_INFINITY || rl.Cur > 1<<30 {
		return 0
	}
	return int(rl.Cur)
}

// openFDs counts the process's open fds (the directory's own fd
// included, which the reserve covers).
func openFDs() int {
	f, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0
	}
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	return len(names)
}

// initFDs starts the budget: the limit now, and what sockd has open
// before any unit, less the held fds the units take back (they are
// counted with their units).
func (d *Daemon) initFDs() {
	held := 0
	if d.keep != nil {
		d.keep.mu.Lock()
		held = len(d.keep.held)
		d.keep.mu.Unlock()
	}
	d.fds.init(d.fds.readLimit(), max(openFDs()-held, 0))
	d.fds.mu.Lock()
	d.fds.run = procFDs(d.cg != nil)
	d.fds.mu.Unlock()
}

// planFDs records what the units of set need (socksOf is
// set.SocketIndex()), and says it in the log:
// at the first load (sockd's start) and whenever they stop or start
// fitting, at Warn when they do not fit; at Debug otherwise.
func (d *Daemon) planFDs(set *units.Set, socksOf map[string][]*units.Socket) {
	n, need := 0, 0
	for name, svc := range set.Services {
		socks := socksOf[name]
		if svc.Template && !hasAcceptSocket(socks) {
			continue
		}
		n++
		need += unitFDs(svc, socks, d.cg != nil)
	}
	limit := d.fds.readLimit() // prlimit(1) may have changed it
	d.fds.mu.Lock()
	d.fds.limit = limit
	d.fds.mu.Unlock()
	sum := d.fds.plan(n, need)
	d.fds.mu.Lock()
	news := !d.fds.planned || d.fds.fitted != sum.fits()
	d.fds.planned, d.fds.fitted = true, sum.fits()
	d.fds.mu.Unlock()
	ev := d.log.Debug()
	switch {
	case news && !sum.fits():
		ev = d.log.Warn()
	case news:
		ev = d.log.Info()
	}
	ev.Int("limit", sum.Limit).Int("open", sum.Open).Int("reserve", sum.Reserve).Int("units", sum.Units).
		Int("units_need", sum.Need).Bool("fits", sum.fits()).Msg(sum.String())
}

// holdsSockets reports whether the keepers gave back one of socks's
// sockets at start, for a unit to take back.
func (d *Daemon) holdsSockets(socks []*units.Socket) bool {
	if d.keep == nil {
		return false
	}
	d.keep.mu.Lock()
	defer d.keep.mu.Unlock()
	for _, s := range socks {
		for i := range s.Listens {
			if d.keep.held[listenName(s.Name, i)] != nil {
				return true
			}
		}
	}
	return false
}
