package children

// sockd as the child subreaper (prctl(2) PR_SET_CHILD_SUBREAPER): a
// process whose parent dies is reparented to sockd rather than to init,
// so that the main process of a forking daemon stays sockd's child and
// sockd learns its exit status (see Adopt). Reparented orphans that no
// Process waits for must be reaped by somebody, or they stay zombies:
// that is the reaper's work.
//
// The reaper never calls wait4(-1): that would take the exit status of a
// child a Process waits for. It reaps by pid, and only pids missing from
// owned, the registry of the pids a Process waits for. Start registers
// its child under the registry lock, which it holds across the fork, so
// the reaper never sees the child unregistered; a waiter reaps and
// unregisters under the same lock, so the pid of a registered child is
// never a reused one.

import (
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// owned is the registry of the pids a Process waits for: every pid Start
// forked and every pid Adopt watches, until its waiter is done.
var owned = registry{n: make(map[int]int)}

type registry struct {
	mu sync.Mutex // held across Start's fork and while anybody reaps
	// n counts the Processes that wait for a pid. It is 1, except when
	// an adopted process that was not sockd's child has been reaped by
	// its parent and its pid reused before its waiter unregistered it.
	n map[int]int
}

func (r *registry) addLocked(pid int) { r.n[pid]++ }

func (r *registry) dropLocked(pid int) {
	if r.n[pid]--; r.n[pid] <= 0 {
		delete(r.n, pid)
	}
}

// The reaper is the goroutine BecomeSubreaper starts.
var (
	reaperOnce sync.Once
	reaperWake = make(chan os.Signal, 1) // SIGCHLD, or a nudge (see nudgeReaper)
	reaperStop = make(chan struct{})     // closed by the tests' stopReaper
	reaperDone = make(chan struct{})
)

// BecomeSubreaper makes sockd the child subreaper of its descendants
// (prctl(2) PR_SET_CHILD_SUBREAPER, for the whole process): a process
// whose parent exits is reparented to sockd, not to init. This is what
// lets Adopt report the exit status of a forking daemon's main process.
//
// The first call that succeeds starts a goroutine that reaps the
// reparented orphans no Process waits for, each time a SIGCHLD arrives:
// it lists sockd's children (/proc/self/task/*/children, or every
// /proc/PID/stat without CONFIG_PROC_CHILDREN) and reaps, by pid and
// without blocking, those that exited and that neither Start nor Adopt
// returned a Process for. It runs for the rest of the process.
//
// After BecomeSubreaper, children must be started with Start only. A
// child forked in any other way, os/exec in particular, is not in the
// registry, and the reaper takes its exit status: exec.Cmd.Wait then
// fails with "no child processes". (A short-lived exec.Cmd may win that
// race most of the time; it is still a race.)
func BecomeSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl PR_SET_CHILD_SUBREAPER", err)
	}
	reaperOnce.Do(func() {
		signal.Notify(reaperWake, syscall.SIGCHLD)
		live.Add(1)
		go reap()
	})
	return nil
}

// reap is the reaper: one scan at the start (for orphans that died
// before the SIGCHLD handler was installed), then one per wake-up. The
// channel holds one wake-up, and a scan starts after the signal is
// taken from it, so a SIGCHLD is never lost.
func reap() {
	defer live.Done()
	defer close(reaperDone)
	defer signal.Stop(reaperWake)
	for {
		reapOrphans()
		select {
		case <-reaperWake:
		case <-reaperStop:
			return
		}
	}
}

// nudgeReaper wakes the reaper after a pid left the registry without
// being reaped by its owner: an adopted process that was not sockd's
// child may have been reparented to sockd as a zombie while it was still
// registered, its SIGCHLD come and gone. Without a reaper the nudge
// waits in the channel and costs one scan when one starts.
func nudgeReaper() {
	select {
	case reaperWake <- syscall.SIGCHLD:
	default:
	}
}

// reapOrphans reaps sockd's exited children that no Process owns. It
// lists them under the registry lock, so that no owner reaps meanwhile:
// /proc/self/task/*/children can skip a child only when others leave
// the list while it is read, and then only because the thread that
// forked them ended (Go rarely ends threads). A child skipped so is
// reaped at the next SIGCHLD.
func reapOrphans() {
	owned.mu.Lock()
	defer owned.mu.Unlock()
	kids, _ := childPids() // on error, the next SIGCHLD tries again
	for _, pid := range kids {
		if owned.n[pid] > 0 {
			continue
		}
		var info unix.Siginfo
		ignoringEINTR(func() error {
			return unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG, nil)
		})
	}
}

// Orphans returns the pids of sockd's children, running or exited but
// not yet reaped, that no Process owns (neither Start nor Adopt returned
// one for them), in increasing order. With BecomeSubreaper, these are
// the orphans reparented to sockd: after a forking service's first
// process exits, its daemon (systemd's GuessMainPID=).
func Orphans() []int {
	owned.mu.Lock()
	defer owned.mu.Unlock()
	kids, _ := childPids()
	var orphans []int
	for _, pid := range kids {
		if owned.n[pid] == 0 {
			orphans = append(orphans, pid)
		}
	}
	slices.Sort(orphans)
	return orphans
}

// childPids lists this process's children: every thread's
// /proc/self/task/TID/children (children are the forking thread's, and
// orphans go to any thread of the subreaper), or, on a kernel without
// CONFIG_PROC_CHILDREN, the processes whose /proc/PID/stat names sockd
// as their parent.
func childPids() ([]int, error) {
	files, err := filepath.Glob("/proc/self/task/*/children")
	if err == nil && len(files) == 0 {
		err = os.ErrNotExist
	}
	if err != nil {
		return childPidsByStat()
	}
	var pids []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread ended; its children went to another
		}
		if err != nil {
			return nil, err
		}
		for _, s := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(s); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids, nil
}

// childPidsByStat lists this process's children from /proc/PID/stat,
// whose fourth field is the parent's pid.
func childPidsByStat() ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := strconv.Itoa(os.Getpid())
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := statPPid(pid); ok && ppid == self {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// statPPid returns the parent pid field of /proc/PID/stat, read after
// the command name, which may hold spaces and parentheses.
func statPPid(pid int) (string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", false // gone meanwhile
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", false
	}
	f := strings.Fields(s[i+1:]) // state ppid …
	if len(f) < 2 {
		return "", false
	}
	return f[1], true
}
