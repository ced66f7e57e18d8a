package children

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNotChild is the Err of an adopted process's ExitStatus when the
// process was not sockd's child when it exited: its parent, not sockd,
// received the exit status, and nobody can tell it to sockd.
var ErrNotChild = errors.New("not a child of sockd")

// pidfdSignalProcessGroup is PIDFD_SIGNAL_PROCESS_GROUP (Linux 6.9):
// pidfd_send_signal(2) to the process group whose id is the pidfd's pid.
const pidfdSignalProcessGroup = 1 << 2

// adoption is what a Process that Adopt returned has beyond one that
// Start returned.
type adoption struct {
	pidfd   int // names the process whatever its pid becomes; closed once reaped
	pgid    int // its process group at Adopt time; 0 if unknown
	readers []*lineReader
}

// Pipe is an output pipe of an adopted process: the read end a previous
// sockd made for it (kept by the fd holder), read on by lines.
type Pipe struct {
	Stream string // "stdout" or "stderr"
	File   *os.File
	Lines  func(line string)
}

// AdoptOutput is Adopt for a process whose output a previous sockd
// captured: after sockd re-executed or restarted, the read ends of its
// pipes come back (from the fd holder) and are read on as Start's are.
// Done then also waits for them (at most OutputGrace after the exit).
// AdoptOutput takes the files; they are closed once read to the end, or
// at once if the adoption fails.
func AdoptOutput(pid int, pipes []Pipe) (*Process, error) {
	var readers []*lineReader
	for _, pp := range pipes {
		r, err := pipeReader(pp)
		if err != nil {
			for _, r := range readers {
				r.f.Close()
			}
			for _, pp := range pipes {
				pp.File.Close()
			}
			return nil, fmt.Errorf("adopt pid %d: %s: %w", pid, pp.Stream, err)
		}
		readers = append(readers, r)
	}
	p, err := adoptWith(pid, readers)
	if err != nil {
		for _, r := range readers {
			r.f.Close()
		}
		return nil, err
	}
	return p, nil
}

// pipeReader makes a lineReader of a held pipe: a non-blocking
// descriptor of its own, so that closing it ends a pending read.
func pipeReader(pp Pipe) (*lineReader, error) {
	defer pp.File.Close()
	rc, err := pp.File.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var derr error
	rc.Control(func(raw uintptr) {
		if fd, derr = unix.FcntlInt(raw, unix.F_DUPFD_CLOEXEC, 3); derr == nil {
			if derr = unix.SetNonblock(fd, true); derr != nil {
				unix.Close(fd)
			}
		}
	})
	if derr != nil {
		return nil, os.NewSyscallError("fcntl", derr)
	}
	return &lineReader{f: os.NewFile(uintptr(fd), "|"+pp.Stream), fn: pp.Lines, done: make(chan struct{}), stream: pp.Stream}, nil
}

// Adopt returns a Process for a process sockd did not start: the main
// process of a forking daemon, named by its PID file. It holds a pidfd
// (pidfd_open(2)) of the process from the start, and from then on names
// it by that descriptor, which cannot come to mean another process when
// the pid is reused. Adopt refuses pid 1 and below, sockd's own pid, a
// pid that a Process already waits for, and a pid that does not exist
// (an error for which errors.Is(err, syscall.ESRCH) holds: a daemon that
// already exited and was reaped).
//
// One goroutine waits for the process's exit (the pidfd becomes
// readable). If sockd is by then its parent, which is the case for a
// forking daemon once its first process exited and sockd called
// BecomeSubreaper, the goroutine reaps it and Exit returns its status as
// for a started process. Otherwise its own parent reaps it and Exit
// returns ExitStatus{Code: -1, Err: ErrNotChild}.
//
// Signal sends through the pidfd (pidfd_send_signal(2)). SignalGroup
// signals the process group the process was in when Adopt was called,
// which is the daemon's own group if it called setsid(2) or setpgid(2)
// before, and only while the process has not exited: the group id may be
// free after that, or somebody else's. A process that leads its group is
// signalled through the pidfd too (PIDFD_SIGNAL_PROCESS_GROUP, Linux
// 6.9), so that not even a pid reused meanwhile can be reached; for
// another group, kill(2) reaches it while the process still belongs to
// it. SignalGroup refuses to signal sockd's own process group. Once the
// process exited, Signal and SignalGroup are no-ops, as they are once a
// started process is reaped.
//
// Exited and Done close together, once the process exited and its
// status is known (there is no output to drain). Pid returns pid, Path
// the program it runs as /proc/PID/exe named it at Adopt ("" if that
// could not be read) and Started the time of Adopt. Stop and Terminate
// work as for a started process.
func Adopt(pid int) (*Process, error) { return adoptWith(pid, nil) }

func adoptWith(pid int, readers []*lineReader) (*Process, error) {
	if pid <= 1 || pid == os.Getpid() {
		return nil, fmt.Errorf("adopt pid %d: not a process sockd may adopt", pid)
	}
	// Registered before the reaper may see it exit (see owned).
	owned.mu.Lock()
	if owned.n[pid] > 0 {
		owned.mu.Unlock()
		return nil, fmt.Errorf("adopt pid %d: a Process already waits for it", pid)
	}
	fd, err := unix.PidfdOpen(pid, 0) // close-on-exec
	if err != nil {
		owned.mu.Unlock()
		return nil, fmt.Errorf("adopt pid %d: %w", pid, os.NewSyscallError("pidfd_open", err))
	}
	owned.addLocked(pid)
	owned.mu.Unlock()

	// Read by pid, these describe the process the pidfd names if it
	// still runs afterwards; once it exited they are not used.
	a := &adoption{pidfd: fd, readers: readers}
	pgid, err := unix.Getpgid(pid)
	exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if exitedNow(fd) {
		exe = ""
	} else if err == nil {
		a.pgid = pgid
	}
	p := &Process{
		pid:     pid,
		path:    exe,
		started: time.Now(),
		adopted: a,
		exited:  make(chan struct{}),
		done:    make(chan struct{}),
	}
	live.Add(1)
	go p.watch()
	p.readersStarted(readers)
	return p, nil
}

// watch is the one goroutine that waits for an adopted process. When the
// pidfd says it exited, waitid(WNOWAIT) on the pidfd tells whether it is
// sockd's child: if so, it is a zombie that only sockd may reap, whose
// pid cannot have been reused, and watch reaps it by pid under p.mu as
// Start's waiter does.
func (p *Process) watch() {
	defer live.Done()
	a := p.adopted
	var err error = unix.EBADF
	if fd, derr := unix.FcntlInt(uintptr(a.pidfd), unix.F_DUPFD_CLOEXEC, 0); derr == nil {
		err = awaitExit(fd) // the netpoller waits, not a thread (exitwait.go)
	}
	if err != nil {
		err = waitReadable(a.pidfd) // no fd to spare: a thread waits
	}
	notChild := false
	if err == nil {
		var info unix.Siginfo
		err = ignoringEINTR(func() error {
			return unix.Waitid(unix.P_PIDFD, a.pidfd, &info, unix.WEXITED|unix.WNOWAIT, nil)
		})
		notChild = errors.Is(err, unix.ECHILD)
	} else {
		err = fmt.Errorf("poll pidfd: %w", err)
	}

	p.mu.Lock()
	ws, err := reapOwned(p.pid, err)
	switch {
	case notChild:
		p.exit = ExitStatus{Code: -1, Err: ErrNotChild}
	case err != nil:
		p.exit = ExitStatus{Code: -1, Err: fmt.Errorf("wait pid %d: %w", p.pid, err)}
	default:
		p.exit = exitStatus(ws)
	}
	p.reaped = true
	unix.Close(a.pidfd)
	a.pidfd = -1
	p.mu.Unlock()
	if notChild {
		// It may become sockd's child yet, as a zombie, if its parent
		// exits without reaping it; the reaper may have skipped it.
		nudgeReaper()
	}
	close(p.exited)
	drain(a.readers)
	close(p.done)
}

// readersStarted starts the adopted process's line readers.
func (p *Process) readersStarted(readers []*lineReader) {
	for _, r := range readers {
		live.Add(1)
		go r.run()
	}
}

// signalLocked sends sig to the adopted process pid, or to its group.
// The caller holds the Process's mu and saw it not reaped.
func (a *adoption) signalLocked(pid int, group bool, sig syscall.Signal) error {
	if !group {
		if err := unix.PidfdSendSignal(a.pidfd, sig, nil, 0); err != nil && err != unix.ESRCH {
			return fmt.Errorf("kill pid %d with %v: %w", pid, sig, os.NewSyscallError("pidfd_send_signal", err))
		}
		return nil
	}
	if exitedNow(a.pidfd) {
		return nil
	}
	fail := func(err error) error {
		return fmt.Errorf("kill process group %d of pid %d with %v: %w", a.pgid, pid, sig, err)
	}
	switch {
	case a.pgid <= 0:
		return fail(errors.New("process group unknown"))
	case a.pgid == unix.Getpgrp():
		return fail(errors.New("sockd's own process group"))
	case a.pgid == pid:
		err := unix.PidfdSendSignal(a.pidfd, sig, nil, pidfdSignalProcessGroup)
		if err == nil || err == unix.ESRCH {
			return nil
		}
		if err != unix.EINVAL { // EINVAL: before Linux 6.9
			return fail(os.NewSyscallError("pidfd_send_signal", err))
		}
	}
	if err := unix.Kill(-a.pgid, sig); err != nil && err != unix.ESRCH {
		return fail(err)
	}
	return nil
}

// waitReadable blocks until fd is readable: for a pidfd, until the
// process exited.
func waitReadable(fd int) error {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	return ignoringEINTR(func() error {
		_, err := unix.Poll(fds, -1)
		return err
	})
}

// exitedNow reports whether the process behind pidfd fd has exited.
func exitedNow(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	var n int
	ignoringEINTR(func() error {
		var err error
		n, err = unix.Poll(fds, 0)
		return err
	})
	return n > 0
}
