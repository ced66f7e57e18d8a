package supervisord

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sockd/sockd/activation"
	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/units"
)

// process is what the actors need of a running child. *children.Process
// is the real one; policy tests use a fake.
type process interface {
	Pid() int
	Signal(syscall.Signal) error
	SignalGroup(syscall.Signal) error
	// Done is closed once the process has been reaped and its output
	// read; Exit is valid then.
	Done() <-chan struct{}
	Exit() children.ExitStatus
}

// startFunc starts a process: the seam between policy and the kernel.
type startFunc func(children.Spec) (process, error)

func startChild(s children.Spec) (process, error) {
	p, err := children.Start(s)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// adoptFunc watches a process sockd did not start (children.Adopt).
type adoptFunc func(pid int) (process, error)

func adoptChild(pid int) (process, error) {
	if !ourDescendant(pid) {
		// A stale PID file, or one its writer aimed at another process:
		// sockd would signal a stranger.
		return nil, fmt.Errorf("pid %d is not a process the service started (not a descendant of an orphan sockd reaps)", pid)
	}
	p, err := children.Adopt(pid)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// proc is one child process of a unit, as the unit's actor sees it. Its
// fields are owned by the actor, except pid and tail, which the output
// goroutines read.
type proc struct {
	p       process
	pid     atomic.Int64
	gen     int
	slot    int
	started time.Time
	// startTicks is the process's start time in /proc (names it in the
	// state file); 0 if unknown.
	startTicks uint64
	// kept are the names of its output pipes in the fd keepers.
	kept []string

	ready    bool
	starter  bool // Type=forking's first process, not yet replaced by the main one
	startPid int  // Type=forking: the first process's pid, once replaced
	// pidWait stops the wait for a Type=forking PID file.
	pidWait  context.CancelFunc
	stopping bool // sockd asked it to stop
	killed   bool // SIGKILL sent after TimeoutStopSec=
	exited   bool
	timedOut bool // not ready within TimeoutStartSec=
	watchdog bool // missed its watchdog
	mainPid  int  // MAINPID= from sd_notify, else the pid
	status   string

	startTok   token         // TimeoutStartSec= or X-ReadyAfterSec=
	stopTok    token         // TimeoutStopSec=
	wdTok      token         // WatchdogSec=
	wdInterval time.Duration // set by WATCHDOG_USEC=; 0: WatchdogSec=, <0: off
	wdTimer    *time.Timer
	// startTimer and stopTimer are startTok's and stopTok's: stopped at
	// the exit, so that a timer of 90 s does not keep the process's
	// books alive long after it (memory under churn).
	startTimer, stopTimer *time.Timer
	stopCancel            context.CancelFunc // of its ExecStop=, nil if none runs

	// stopList is closed when its ExecStop= has ended; nil if none
	// runs. The exit is reported only after it: a stop is done when
	// ExecStop= is, as in systemd.
	stopMu   sync.Mutex
	stopList chan struct{}

	tailMu sync.Mutex
	tail   []string // last output lines, for a failed restart's report

	pidKnown chan struct{} // closed when the spawn has stored the pid (spawning)
}

const tailLines = 20

func (p *proc) Pid() int { return int(p.pid.Load()) }

// spawning marks p as being started: its output readers run from the
// fork on, so a line can come before the spawn has stored the pid;
// linePid waits for the returned func, which the spawn defers.
func (p *proc) spawning() (done func()) {
	p.pidKnown = make(chan struct{})
	return func() { close(p.pidKnown) }
}

// linePid is the pid an output line of p carries: it waits, if need
// be, for the spawn under way to have stored it (0 if the start failed).
func (p *proc) linePid() int {
	if pid := p.Pid(); pid != 0 || p.pidKnown == nil {
		return pid
	}
	<-p.pidKnown
	return p.Pid()
}

// tailLineMax bounds each line a failed restart reports: 20 lines of up
// to 64 KiB each would hold 1.25 MiB per process.
const tailLineMax = 1024

func (p *proc) addTail(line string) {
	if len(line) > tailLineMax {
		line = strings.Clone(line[:tailLineMax]) // not the 64 KiB it came in
	}
	p.tailMu.Lock()
	defer p.tailMu.Unlock()
	if len(p.tail) == tailLines {
		copy(p.tail, p.tail[1:])
		p.tail = p.tail[:tailLines-1]
	}
	p.tail = append(p.tail, line)
}

func (p *proc) Tail() []string {
	p.tailMu.Lock()
	defer p.tailMu.Unlock()
	return append([]string(nil), p.tail...)
}

// spawn starts one process of the unit's service on its listeners.
func (u *unit) spawn(slot, gen int) (*proc, error) {
	svc := u.svc
	pr := &proc{gen: gen, slot: slot, started: time.Now(), starter: svc.Type == units.TypeForking}
	defer pr.spawning()()
	env, err := environment(svc)
	if err != nil {
		return nil, err
	}
	env = addEnvDefaults(env, u.currentExecEnv()...)
	box, err := sandboxSetup(svc, u.roots, u.privTmp, u.staging)
	if err != nil {
		return nil, err
	}
	spec, closers, err := processSpec(svc, env, u.outputSink(pr), listenerFiles(u.ls), box)
	defer closeAll(closers)
	if err != nil {
		return nil, err
	}
	for i, l := range u.ls {
		// No child holds the sockets: put back the unit's mode, which
		// the previous child may have changed. While one serves, only
		// NonBlocking=yes, which each new process must get whatever an
		// old one did to the shared open file description (as systemd
		// sets it for every process it starts); blocking is never
		// forced under a serving child, whose runtime may have made it
		// non-blocking for its own use (see activation.Listener.File).
		if u.noProcess() || (i < len(u.lsSock) && u.lsSock[i].NonBlocking) {
			if err := l.ResetMode(); err != nil {
				return nil, fmt.Errorf("%s: %w", svc.Name, err)
			}
		}
	}
	if len(u.ls) > 0 && !stdioSocket(svc) {
		for _, l := range u.ls {
			spec.ExtraFiles = append(spec.ExtraFiles, l.File())
		}
		// The protocol's variables win over the unit's: a child reads
		// the first of duplicate entries, and LISTEN_PID is the helper's.
		spec.Env = setEnv(spec.Env, activation.Env(u.ls)...)
		spec.PIDEnv = "LISTEN_PID"
	}
	if u.notifyPath != "" {
		spec.Env = setEnv(spec.Env, "NOTIFY_SOCKET="+u.notifyPath)
	}
	if svc.WatchdogSec > 0 && svc.WatchdogSec != units.Infinity {
		spec.Env = setEnv(spec.Env, "WATCHDOG_USEC="+strconv.FormatInt(svc.WatchdogSec.Microseconds(), 10))
	}
	var pipes []namedPipe
	if u.keep != nil {
		spec.OutputPipe = func(stream string, r *os.File) { pipes = append(pipes, namedPipe{stream, r}) }
	}
	u.applyResources()
	p, err := u.starter()(spec)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", svc.Name, err)
	}
	pr.p = p
	pr.pid.Store(int64(p.Pid()))
	pr.mainPid = p.Pid()
	pr.startTicks, _ = processStart(p.Pid())
	for _, np := range pipes {
		pr.kept = append(pr.kept, outputName(u.name, p.Pid(), np.stream))
		u.keep.put(outputName(u.name, p.Pid(), np.stream), np.f)
	}
	for _, n := range u.pids.add(p.Pid(), u) {
		u.deliverNotify(n)
	}
	go pr.reportExit(u, p)
	u.publish(api.UnitEvent{Time: pr.started, Kind: api.EventSpawned, Pid: pr.Pid(), Gen: gen})
	return pr, nil
}

// noProcess reports that no process of the unit runs.
func (u *unit) noProcess() bool {
	return u.running() == 0 && len(u.draining) == 0 && (u.job == nil || u.job.newProc == nil)
}

// outputSink is where pr's output lines go: its tail, the unit's log
// ring and sockd's log.
func (u *unit) outputSink(pr *proc) func(stream, line string) {
	return func(stream, line string) { u.outputLine(pr, stream, line) }
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// currentExecEnv is setUpExec's environment for a process started now:
// the new definition's during an overlapping restart.
func (u *unit) currentExecEnv() []string {
	if j := u.job; j != nil && j.execSet {
		return j.execEnv
	}
	return u.execEnv
}

// tearDownExec removes what setUpExec made once no process is left:
// the PrivateTmp= directories, RuntimeDirectory= (unless RuntimeDirectoryPreserve= keeps it; final
// is false between a stop and the start that follows), and frees a
// dynamic user.
func (u *unit) tearDownExec(final bool) {
	if err := u.privTmp.remove(); err != nil {
		u.log.Error().Err(err).Msg("removing PrivateTmp= directories")
	}
	u.privTmp = nil
	if u.execRelease == nil {
		return
	}
	if err := tearDownExecDirs(u.svc, u.roots, final); err != nil {
		u.log.Error().Err(err).Msg("removing RuntimeDirectory=")
	}
	u.execRelease()
	u.execEnv, u.execRelease = nil, nil
}

// ourDescendant reports whether pid is one of sockd's orphans (as the
// child subreaper, a daemon whose parents exited is reparented to sockd)
// or a descendant of one: the processes a Type=forking service may name
// as its main process.
func ourDescendant(pid int) bool {
	orphans := map[int]bool{}
	for _, o := range children.Orphans() {
		orphans[o] = true
	}
	for range 64 { // a chain of parents, bounded
		if orphans[pid] {
			return true
		}
		ppid, err := parentOf(pid)
		if err != nil || ppid <= 1 || ppid == os.Getpid() {
			return false
		}
		pid = ppid
	}
	return false
}

// parentOf reads pid's parent from /proc/PID/stat.
func parentOf(pid int) (int, error) {
	f, err := statFields(pid, 2)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(f[1])
}

// statFields returns the fields of /proc/PID/stat after the command
// ("state ppid …": field 3 of proc(5) is f[0]), at least n of them. The
// command may contain spaces and parentheses: the fields start after the
// last ')'.
func statFields(pid, n int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < n {
		return nil, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	return f, nil
}

// reportExit sends evExit once p (pr's process) has exited and the
// ExecStop= sockd runs for it, if any, has ended.
func (pr *proc) reportExit(u *unit, p process) {
	<-p.Done()
	pr.stopMu.Lock()
	list := pr.stopList
	pr.stopMu.Unlock()
	if list != nil {
		<-list
	}
	u.send(event{kind: evExit, p: pr})
}
