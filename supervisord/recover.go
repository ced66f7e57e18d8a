package supervisord

// Taking a unit's processes back after sockd itself was gone: crashed,
// killed, or re-executed (state.go has the file, keep.go the fds).

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
)

// saveState writes u's processes to the state file when they changed.
func (u *unit) saveState() {
	if u.state == nil {
		return
	}
	st := u.unitStateOf()
	var b strings.Builder
	fmt.Fprint(&b, st.Gen)
	for _, p := range st.Procs {
		fmt.Fprintf(&b, " %d/%d/%d/%d/%v/%v", p.Pid, p.Gen, p.Slot, p.MainPid, p.Ready, p.Draining)
	}
	if key := b.String(); key != u.stateKey {
		u.stateKey = key
		u.state.set(u.name, st)
	}
}

// recoverProcs takes back the processes a previous sockd ran for u, as
// st lists them, before u's actor runs. Each must still be the same
// process (its pid and start time); it is adopted through a pidfd, its
// output read on from the pipes the fd holder kept (with what the holder
// buffered meanwhile first). After a re-exec (replace false) they are
// sockd's own children and stay; after a crash (replace true) sockd is
// not their parent and cannot know their exit status, so an overlapping
// restart replaces them at once, bringing back full supervision.
// Processes that were being drained, or were a restart's unready new
// generation, are stopped. It returns how many processes it adopted.
func (u *unit) recoverProcs(st unitState, replace bool) int {
	n := 0
	for _, ps := range st.Procs {
		if start, err := processStart(ps.Pid); err != nil || start != ps.Start {
			u.log.Info().Int("pid", ps.Pid).Msg("recovery: process gone")
			u.dropPipes(ps.Pid)
			continue
		}
		pr := &proc{gen: ps.Gen, slot: ps.Slot, started: time.Now(), startTicks: ps.Start, ready: ps.Ready, mainPid: ps.MainPid}
		if pr.mainPid == 0 {
			pr.mainPid = ps.Pid
		}
		pr.pid.Store(int64(ps.Pid))
		var pipes []children.Pipe
		for _, stream := range []string{"stdout", "stderr"} {
			name := outputName(u.name, ps.Pid, stream)
			f, buffered := u.keep.take(name)
			for _, line := range outputLines(buffered) {
				u.outputLine(pr, stream, line)
			}
			if f != nil {
				pipes = append(pipes, children.Pipe{Stream: stream, File: f, Lines: func(line string) { u.outputLine(pr, stream, line) }})
				pr.kept = append(pr.kept, name)
			}
		}
		p, err := children.AdoptOutput(ps.Pid, pipes)
		if err != nil {
			u.log.Warn().Err(err).Int("pid", ps.Pid).Msg("recovery: cannot adopt")
			continue
		}
		pr.p = u.adoptInto(p, killGroupOnExit(u.svc))
		n++
		u.pids.add(ps.Pid, u)
		if pr.mainPid != ps.Pid {
			u.pids.add(pr.mainPid, u)
		}
		slotFree := ps.Slot >= 0 && ps.Slot < len(u.slots) && u.slots[ps.Slot] == nil
		if ps.Draining || !slotFree || !ps.Ready {
			pr.stopping = true
			p.Signal(syscall.SIGTERM)
			u.draining = append(u.draining, pr)
		} else {
			u.slots[ps.Slot] = pr
			// WatchdogSec= watches it again from now, a full interval
			// (a WATCHDOG_USEC= it sent the previous sockd is lost).
			u.armWatchdog(pr)
		}
		if ps.Gen > u.gen {
			u.gen = ps.Gen
		}
		go pr.reportExit(u, p)
		u.log.Info().Int("pid", ps.Pid).Int("gen", ps.Gen).Int("instance", ps.Slot).Bool("draining", pr.stopping).Msg("recovery: adopted")
	}
	if st.Gen > u.gen {
		u.gen = st.Gen
	}
	if u.running() > 0 {
		u.recovered = true
		if replace {
			// Not sockd's children: replaced with an overlapping restart
			// as soon as the actor runs.
			u.queue = append(u.queue, &job{unit: u, kind: reqRestart})
		}
	}
	return n
}

// dropPipes closes the held pipes of a process that is gone.
func (u *unit) dropPipes(pid int) {
	for _, stream := range []string{"stdout", "stderr"} {
		name := outputName(u.name, pid, stream)
		f, buffered := u.keep.take(name)
		for _, line := range outputLines(buffered) {
			u.logs.add(api.LogLine{Time: time.Now(), Pid: pid, Stream: stream, Line: line})
		}
		if f != nil {
			f.Close()
		}
		u.keep.remove(name)
	}
}

// Recovering reports whether Open found a previous sockd's state (its
// processes taken back, or attempted).
func (d *Daemon) Recovering() bool { return d.recovered }

// reportStrays logs every process that holds a unit's listening socket
// but is neither one sockd tracks, nor in the process group of one, nor a
// descendant of one, nor a keeper: after a crash, a process the previous
// sockd started in its last moments, before the state file said so, or
// any stranger given the socket. sockd does not signal a process it
// cannot tie to a unit; it says so.
func (d *Daemon) reportStrays(keeperPids []int) {
	inodes := map[uint64]string{} // listening socket inode → unit
	d.mu.Lock()
	for _, h := range d.units {
		for _, l := range h.ls {
			if fi, err := l.File().Stat(); err == nil {
				if st, ok := fi.Sys().(*syscall.Stat_t); ok {
					inodes[st.Ino] = h.name
				}
			}
		}
	}
	d.mu.Unlock()
	if len(inodes) == 0 {
		return
	}
	skip := map[int]bool{os.Getpid(): true, 1: true}
	for _, p := range keeperPids {
		skip[p] = true
	}
	seen := map[int]bool{}
	socketHolders(func(pid int, ino uint64) bool {
		unit, ours := inodes[ino]
		if !ours || skip[pid] || seen[pid] {
			return true
		}
		seen[pid] = true
		if !d.tracked(pid) {
			d.log.Warn().Str("unit", unit).Int("pid", pid).Str("comm", commOf(pid)).
				Msg("recovery: a process sockd does not know holds the unit's socket; not signalled")
		}
		return true
	})
}

// tracked reports whether pid is a process of a unit, in the process
// group of one, or a descendant of one.
func (d *Daemon) tracked(pid int) bool {
	pgid, _ := syscall.Getpgid(pid)
	for p, hops := pid, 0; p > 1 && hops < 64; hops++ {
		if d.pids.owner(p) != nil || (pgid > 1 && d.pids.owner(pgid) != nil) {
			return true
		}
		ppid, err := parentOf(p)
		if err != nil {
			return false
		}
		p = ppid
	}
	return false
}
