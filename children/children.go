// Package children is the mechanism of one child process: start it from a
// plain Spec (program, arguments, environment, stdin, extra fds from 3,
// credentials, umask, nice, rlimits) in its own process group, capture
// its output line by line, signal it, stop it gracefully with a timeout,
// and report its exit exactly once. It also owns NOTIFY_SOCKET, the
// datagram socket of sd_notify(3). It knows nothing of unit files or of
// restart policy.
//
// It also watches processes it did not start (Adopt: a forking daemon's
// main process) and, as the child subreaper, reaps the orphans no
// Process waits for (BecomeSubreaper).
//
// Start hands the child duplicates of the raw descriptors it is given,
// obtained through (*os.File).SyscallConn: it never calls
// (*os.File).Fd, which would switch a socket that Go put into
// non-blocking mode back to blocking mode for sockd too (the flag lives
// on the open file description the duplicates share). The child
// therefore sees each socket in exactly the mode the caller left it in.
//
// Settings that Go cannot apply between fork and exec (a variable holding
// the child's own pid, umask, nice, rlimits) are applied, in cgo builds,
// by the child of a spawn written in C (spawn_cgo.c): it clones with
// CLONE_VM|CLONE_VFORK as Go's ForkExec does, applies them with raw
// system calls and execs the program, so there is no extra exec, and a
// step that fails is an error of Start. A sandboxed start, and every
// start of a CGO_ENABLED=0 build, takes syscall.ForkExec and, if the
// settings need it, an exec helper: Start re-executes the running binary
// (/proc/self/exe) with a hidden argument; the helper applies the
// settings (and the sandbox) and execs the real program in the same
// process, so the pid the supervisor knows is the program's pid.
//
// In cgo builds with glibc the helper is C code (helper_cgo.c), an ELF
// constructor that runs before the Go runtime starts, as runc's nsexec
// does; it hands a sandboxed start to the Go helper, run by
// MaybeRunHelper at the top of main, which is also the helper of
// CGO_ENABLED=0 builds. All read the same settings and behave the same
// (the tests run each); see MaybeRunHelper.
package children

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sockd/sockd/internal/sandbox"
	"golang.org/x/sys/unix"
)

// Rlimit is one resource limit set in the child before it execs.
type Rlimit struct {
	Resource int // unix.RLIMIT_*
	Cur, Max uint64
}

// Output says where one of the child's output streams goes. With both
// fields nil the stream goes to /dev/null.
type Output struct {
	// File, if set, receives the stream directly (inherit, file:, append:).
	// The child gets a duplicate of its descriptor; its flags are left as
	// they are.
	File *os.File
	// Lines, if set (and File is nil), is called with each line of the
	// stream, without its newline, from one goroutine per stream. A line
	// longer than MaxLine bytes arrives in pieces of MaxLine bytes; a last
	// line without a newline is delivered too. Lines is never called after
	// Done is closed.
	Lines func(line string)
}

// MaxLine is the longest line Output.Lines delivers in one call; longer
// lines are split.
const MaxLine = 64 << 10

// OutputGrace is how long Done waits, after the process is reaped, for
// its output pipes to reach end of file. A grandchild that inherited the
// pipe can keep it open forever; after the grace the pipe is closed and
// whatever it writes later is lost (it gets EPIPE).
const OutputGrace = 200 * time.Millisecond

// Spec describes one process to start.
type Spec struct {
	Path string   // program to exec; looked up in sockd's PATH if it has no slash
	Argv []string // argument vector, Argv[0] included; empty means {Path}
	Env  []string // the complete environment, "KEY=value"
	Dir  string   // working directory; "" for sockd's

	// ExtraFiles become fds 3, 4, … in the child. Start does not change
	// their blocking mode (it never calls (*os.File).Fd on them).
	ExtraFiles []*os.File

	Credential *syscall.Credential // nil: run as sockd's user
	Umask      int                 // -1: inherit sockd's (0 is a umask: set it to -1!)
	Nice       *int                // nil: inherit
	Rlimits    []Rlimit

	// PIDEnv, if set, names an environment variable the child finds set
	// to its own pid (LISTEN_PID): the C spawn's child writes it before
	// its exec; without cgo, or with a Sandbox, it takes an exec helper
	// (sockd re-executes itself, sets the variable and execs Path).
	PIDEnv string

	// KillGroupOnExit: when the process exits, SIGKILL what is left of
	// its process group, before it is reaped (so the group id cannot have
	// been reused): systemd's KillMode=control-group leaves nothing behind.
	KillGroupOnExit bool

	// CgroupFD, with UseCgroup, is an open cgroup v2 directory the
	// process is born in (clone3's CLONE_INTO_CGROUP): there is no moment
	// in which it could fork outside it. The exec helper, if any, is the
	// process born there. (The C spawn does it on amd64; elsewhere such a
	// start takes ForkExec.) The caller keeps the descriptor open until
	// Start returns.
	UseCgroup bool
	CgroupFD  int

	// Sandbox, if set, is applied by the exec helper before the program
	// runs (see package sandbox): mounts, capabilities, seccomp filters.
	// It takes the Go helper (the C one hands over to it), so a sandboxed
	// start costs the start of a Go runtime more.
	Sandbox *sandbox.Setup

	// Stdin is fd 0; the zero value is /dev/null.
	Stdin          Input
	Stdout, Stderr Output

	// OutputPipe, if set, is called by Start with the read end of each
	// pipe it makes for Output.Lines ("stdout", "stderr"), before the
	// child starts, so that a copy can be kept outside sockd (the fd
	// holder): a child whose sockd is gone then neither dies of SIGPIPE
	// nor blocks, and a new sockd reads on (AdoptOutput). The file stays
	// the Process's; the caller must not close it.
	OutputPipe func(stream string, r *os.File)
}

// ExitStatus is how a process ended.
type ExitStatus struct {
	Code   int            // exit code, -1 when killed by a signal
	Signal syscall.Signal // the signal that killed it, 0 otherwise
	Err    error          // set when the status could not be read
}

// Success reports exit code 0.
func (e ExitStatus) Success() bool { return e.Err == nil && e.Signal == 0 && e.Code == 0 }

// String reads as "exit status 3", "signal: killed".
func (e ExitStatus) String() string {
	switch {
	case e.Err != nil:
		return "unknown status: " + e.Err.Error()
	case e.Signal != 0:
		return "signal: " + e.Signal.String()
	default:
		return fmt.Sprintf("exit status %d", e.Code)
	}
}

func exitStatus(ws syscall.WaitStatus) ExitStatus {
	if ws.Signaled() {
		return ExitStatus{Code: -1, Signal: ws.Signal()}
	}
	return ExitStatus{Code: ws.ExitStatus()}
}

// Process is one child process, started (Start) or adopted (Adopt).
// Exactly one goroutine waits for it.
type Process struct {
	pid     int
	path    string
	started time.Time

	mu     sync.Mutex // held while signalling and while reaping
	reaped bool

	killGroupOnExit bool
	adopted         *adoption // set for a process Adopt returned

	exited chan struct{} // closed after the reap
	done   chan struct{} // closed after the reap and the output drain
	exit   ExitStatus    // written before exited is closed
}

// live counts the goroutines this package runs (waiters and readers), so
// that tests can wait for all of them to end.
var live sync.WaitGroup

// Start starts spec's process in a new process group whose id is its pid.
//
// A program that cannot be found or is not executable, a working
// directory that does not exist and any failure of fork or exec are
// errors of Start, and so, with the C spawn, is the failure of any
// setting (a limit the child may not raise, say: "start /bin/app:
// setrlimit 7 …: operation not permitted"). Failures inside an exec
// helper happen after Start returned: the helper writes them to the
// child's stderr and exits with status 127.
//
// The child's stdin is spec.Stdin, /dev/null by default. No descriptor
// of sockd but those reaches the child: the C spawn's child marks every
// one above its own close-on-exec (close_range(2)); before ForkExec,
// Start marks every descriptor of sockd above 2 so, so that one sockd
// inherited without that flag cannot leak; Go's own descriptors have it
// anyway.
func Start(spec Spec) (*Process, error) {
	path, err := resolvePath(spec.Path, spec.Dir)
	if err != nil {
		return nil, err
	}
	if spec.Dir != "" {
		if fi, err := os.Stat(spec.Dir); err != nil {
			return nil, fmt.Errorf("start %s: chdir %s: %w", path, spec.Dir, unwrapPathError(err))
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("start %s: chdir %s: %w", path, spec.Dir, syscall.ENOTDIR)
		}
	}
	argv := spec.Argv
	if len(argv) == 0 {
		argv = []string{spec.Path}
	}

	var fs fdSet
	defer fs.closeAll() // the parent's copies; the child has its own
	fail := func(err error) (*Process, error) {
		fs.closeReaders()
		return nil, fmt.Errorf("start %s: %w", path, err)
	}

	devnull, err := fs.devNull()
	if err != nil {
		return fail(err)
	}
	stdin, err := fs.input(spec.Stdin, devnull)
	if err != nil {
		return fail(err)
	}
	stdout, err := fs.output(spec.Stdout, devnull, "stdout")
	if err != nil {
		return fail(err)
	}
	stderr, err := fs.output(spec.Stderr, devnull, "stderr")
	if err != nil {
		return fail(err)
	}
	fds := []uintptr{uintptr(stdin), uintptr(stdout), uintptr(stderr)}
	for i, f := range spec.ExtraFiles {
		if f == nil {
			return fail(fmt.Errorf("extra file %d: nil", i+3))
		}
		fd, err := fs.dup(f)
		if err != nil {
			return fail(fmt.Errorf("extra file %d (%s): %w", i+3, f.Name(), err))
		}
		fds = append(fds, uintptr(fd))
	}

	if spec.OutputPipe != nil {
		for _, r := range fs.readers {
			spec.OutputPipe(r.stream, r.f)
		}
	}

	pid, err := startProcess(path, argv, fds, &spec)
	if err != nil {
		return fail(err)
	}
	p := &Process{
		pid:             pid,
		path:            path,
		started:         time.Now(),
		exited:          make(chan struct{}),
		killGroupOnExit: spec.KillGroupOnExit,
		done:            make(chan struct{}),
	}
	readers := fs.startReaders()
	live.Add(1)
	go p.wait(readers)
	return p, nil
}

// forceForkExec makes every start take ForkExec (benchmarks compare).
var forceForkExec = false

// startProcess forks and execs path with fds as its fds 0, 1, 2, 3…, and
// registers its pid in owned. An unsandboxed start is spawned in C
// (spawn_cgo.c), with no exec helper, where cgo is built in; a sandboxed
// one, and every start without cgo, takes ForkExec and the exec helper
// if spec needs one.
func startProcess(path string, argv []string, fds []uintptr, spec *Spec) (int, error) {
	if spawnInC && !forceForkExec && spec.Sandbox == nil && (!spec.UseCgroup || spawnCgroupInC) {
		return spawn(path, argv, fds, spec)
	}
	return forkExec(path, argv, fds, spec)
}

// forkExec starts path with syscall.ForkExec, through the exec helper if
// spec needs one.
func forkExec(path string, argv []string, fds []uintptr, spec *Spec) (int, error) {
	attr := &syscall.ProcAttr{
		Dir:   spec.Dir,
		Env:   spec.Env,
		Files: fds,
		Sys:   &syscall.SysProcAttr{Setpgid: true, UseCgroupFD: spec.UseCgroup, CgroupFD: spec.CgroupFD},
	}
	execPath, execArgv := path, argv
	if needsHelper(spec) {
		if spec.Sandbox != nil {
			// The working directory is entered once the mounts are made,
			// so that it is the sandbox's view of it. (A copy: the
			// caller's Setup may serve other starts.)
			sb := *spec.Sandbox
			sb.Dir, attr.Dir = spec.Dir, ""
			spec.Sandbox = &sb
			if sb.PrivateUsers {
				var uid, gid uint32
				var groups []uint32
				if c := spec.Credential; c != nil {
					uid, gid, groups = c.Uid, c.Gid, c.Groups
				}
				sandbox.UserNamespace(attr.Sys, uid, gid, groups)
			}
		}
		settings, err := encodeHelper(spec, len(spec.ExtraFiles))
		if err != nil {
			return 0, err
		}
		// The helper applies the credential itself, after nice and
		// rlimits, which may take privileges the user lacks.
		execPath = "/proc/self/exe"
		execArgv = append([]string{"sockd-exec", helperArg, settings, path}, argv...)
	} else {
		attr.Sys.Credential = spec.Credential
	}

	closeOnExecAll()
	// Registered before the reaper can see the child (see owned).
	owned.mu.Lock()
	pid, err := syscall.ForkExec(execPath, execArgv, attr)
	if err == nil {
		owned.addLocked(pid)
	}
	owned.mu.Unlock()
	return pid, err
}

// closeOnExecAll marks every descriptor above 2 of this process
// close-on-exec, so that none reaches a child except at the positions
// ForkExec puts them. Go opens all of its descriptors close-on-exec; this
// catches the ones sockd inherited from its own parent (or that cgo code
// opened), which would otherwise leak into every child.
func closeOnExecAll() {
	if unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC) == nil {
		return
	}
	// Before Linux 5.11: one by one.
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
		}
	}
}

// resolvePath returns the absolute path of the program to exec, or an
// error reading "exec /path/x: no such file or directory".
func resolvePath(path, dir string) (string, error) {
	if path == "" {
		return "", errors.New("exec: empty path")
	}
	if !strings.Contains(path, "/") {
		p, err := exec.LookPath(path)
		if err != nil {
			var ee *exec.Error
			if errors.As(err, &ee) {
				err = ee.Err
			}
			return "", fmt.Errorf("exec %s: %w", path, err)
		}
		path = p
	} else if !filepath.IsAbs(path) && dir != "" {
		path = filepath.Join(dir, path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("exec %s: %w", path, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case err != nil:
		return "", fmt.Errorf("exec %s: %w", abs, unwrapPathError(err))
	case fi.IsDir():
		return "", fmt.Errorf("exec %s: %w", abs, syscall.EISDIR)
	case fi.Mode()&0o111 == 0:
		return "", fmt.Errorf("exec %s: %w", abs, syscall.EACCES)
	}
	return abs, nil
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// fdSet holds the descriptors Start opens for one child: the parent's
// copies are closed once the child has its own.
type fdSet struct {
	close   []int
	readers []*lineReader
}

func (s *fdSet) devNull() (int, error) {
	fd, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/null: %w", err)
	}
	s.close = append(s.close, fd)
	return fd, nil
}

// dup returns a close-on-exec duplicate of f's descriptor, leaving f and
// the flags of its open file description alone.
func (s *fdSet) dup(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd, derr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("dup: %w", derr)
	}
	s.close = append(s.close, nfd)
	return nfd, nil
}

// output returns the descriptor the child writes o's stream to.
func (s *fdSet) output(o Output, devnull int, name string) (int, error) {
	switch {
	case o.File != nil:
		fd, err := s.dup(o.File)
		if err != nil {
			return -1, fmt.Errorf("%s %s: %w", name, o.File.Name(), err)
		}
		return fd, nil
	case o.Lines != nil:
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return -1, fmt.Errorf("%s: pipe: %w", name, err)
		}
		// Only the read side goes non-blocking (and into Go's poller, so
		// that closing it ends a pending read); the child's write side
		// is a separate open file description and stays blocking.
		if err := unix.SetNonblock(p[0], true); err != nil {
			unix.Close(p[0])
			unix.Close(p[1])
			return -1, fmt.Errorf("%s: pipe: %w", name, err)
		}
		s.close = append(s.close, p[1])
		s.readers = append(s.readers, &lineReader{
			f:      os.NewFile(uintptr(p[0]), "|"+name),
			fn:     o.Lines,
			done:   make(chan struct{}),
			stream: name,
		})
		return p[1], nil
	default:
		return devnull, nil
	}
}

func (s *fdSet) closeAll() {
	for _, fd := range s.close {
		unix.Close(fd)
	}
	s.close = nil
}

func (s *fdSet) closeReaders() {
	for _, r := range s.readers {
		r.f.Close()
	}
	s.readers = nil
}

func (s *fdSet) startReaders() []*lineReader {
	for _, r := range s.readers {
		live.Add(1)
		go r.run()
	}
	return s.readers
}

// lineReader calls fn with each line read from f until end of file or
// until f is closed under it.
//
// Its buffer starts at lineBufMin bytes and grows, doubling, up to
// MaxLine only while a longer line is pending; once it has drained after
// a short read it is small again. A child that prints short lines costs
// lineBufMin per stream, not MaxLine, and output without newlines is
// handed on in pieces of MaxLine bytes: nothing here grows past MaxLine.
type lineReader struct {
	f      *os.File
	fn     func(string)
	done   chan struct{}
	stream string // "stdout" or "stderr"
}

// lineBufMin is the size of a lineReader's buffer between long lines.
const lineBufMin = 4 << 10

func (r *lineReader) run() {
	defer live.Done()
	defer close(r.done)
	defer r.f.Close()
	buf := make([]byte, lineBufMin)
	n := 0         // buf[:n] is pending: the start of a line, no newline
	split := false // the last piece delivered was MaxLine bytes without newline
	for {
		if n == len(buf) {
			if len(buf) < MaxLine {
				nb := make([]byte, min(2*len(buf), MaxLine))
				copy(nb, buf[:n])
				buf = nb
			} else {
				r.fn(string(buf))
				n, split = 0, true
			}
		}
		m, err := r.f.Read(buf[n:])
		from := 0 // start of the next line
		for i := n; ; {
			j := bytes.IndexByte(buf[i:n+m], '\n')
			if j < 0 {
				break
			}
			line := buf[from : i+j]
			if !(split && len(line) == 0) { // not the newline ending a split line
				r.fn(string(line))
			}
			split = false
			from = i + j + 1
			i = from
		}
		n = copy(buf, buf[from:n+m])
		if err != nil { // io.EOF, or the file closed after the grace
			if n > 0 && err == io.EOF {
				r.fn(string(buf[:n]))
			}
			return
		}
		if n == 0 && m < lineBufMin && len(buf) > lineBufMin {
			buf = make([]byte, lineBufMin)
		}
	}
}

// wait is the one goroutine that waits for p. It reaps the process
// under p.mu, so that a signal is never sent to a pid that was reaped
// and may have been reused.
func (p *Process) wait(readers []*lineReader) {
	defer live.Done()
	err := awaitExitPid(p.pid) // the netpoller waits, not a thread (exitwait.go)
	p.mu.Lock()
	if err == nil && p.killGroupOnExit {
		// The leader is a zombie, not yet reaped: -pid is still our group.
		unix.Kill(-p.pid, unix.SIGKILL)
	}
	ws, err := reapOwned(p.pid, err)
	if err != nil {
		p.exit = ExitStatus{Code: -1, Err: fmt.Errorf("wait pid %d: %w", p.pid, err)}
	} else {
		p.exit = exitStatus(ws)
	}
	p.reaped = true
	p.mu.Unlock()
	close(p.exited)
	drain(readers)
	close(p.done)
}

// drain waits for readers to reach end of file, at most OutputGrace
// (after which it closes their files, which ends their reads).
func drain(readers []*lineReader) {
	if len(readers) == 0 {
		return
	}
	grace := time.NewTimer(OutputGrace)
	defer grace.Stop()
	expired := false
	for _, r := range readers {
		if !expired {
			select {
			case <-r.done:
				continue
			case <-grace.C:
				expired = true
				for _, r := range readers {
					r.f.Close() // ends the pending read
				}
			}
		}
		<-r.done
	}
}

func ignoringEINTR(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}

// Pid returns the child's pid (its process group id too).
func (p *Process) Pid() int { return p.pid }

// Path returns the absolute path of the program Start executed (after
// the PATH lookup).
func (p *Process) Path() string { return p.path }

// Started returns the time Start forked the process.
func (p *Process) Started() time.Time { return p.started }

// Exited is closed once the process has exited and been reaped, which
// may be up to OutputGrace before Done.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Done is closed once the process has exited and been reaped, and its
// captured output has been read to the end (or a short grace passed
// when a grandchild keeps the pipe open).
func (p *Process) Done() <-chan struct{} { return p.done }

// Exit returns how the process ended; valid once Exited (or Done) is
// closed, the zero ExitStatus before.
func (p *Process) Exit() ExitStatus {
	select {
	case <-p.exited:
		return p.exit
	default:
		return ExitStatus{}
	}
}

// Signal sends sig to the process alone. It is a no-op once reaped.
func (p *Process) Signal(sig syscall.Signal) error {
	return p.kill(p.pid, sig)
}

// SignalGroup sends sig to the process group. It is a no-op once reaped,
// even if other members of the group still run: after the reap the
// group id may belong to somebody else.
func (p *Process) SignalGroup(sig syscall.Signal) error {
	return p.kill(-p.pid, sig)
}

func (p *Process) kill(target int, sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return nil
	}
	if p.adopted != nil {
		return p.adopted.signalLocked(p.pid, target < 0, sig)
	}
	if err := syscall.Kill(target, sig); err != nil && err != syscall.ESRCH {
		what := "pid"
		if target < 0 {
			what, target = "process group", -target
		}
		return fmt.Errorf("kill %s %d with %v: %w", what, target, sig, err)
	}
	return nil
}

// Stop sends sig (to the group if group is set), waits up to timeout for
// the exit, then sends SIGKILL to the group if sigkill is set, and waits
// for Done. It returns the exit status. Safe to call more than once.
// Without sigkill, Stop waits for the exit as long as it takes.
func (p *Process) Stop(sig syscall.Signal, timeout time.Duration, sigkill, group bool) ExitStatus {
	to, kill := Main, None
	if group {
		to = Group
	}
	if sigkill {
		kill = Group
	}
	return p.Terminate(sig, to, timeout, kill)
}

// Target is whom Terminate signals.
type Target int

const (
	None  Target = iota // nobody
	Main                // the process alone
	Group               // its process group
)

// Terminate sends sig to to, waits up to timeout for the exit, then sends
// SIGKILL to kill, and waits for Done. systemd's KillMode= maps to it
// (see supervisord): control-group (Group, Group), mixed (Main, Group),
// process (Main, Main). It returns the exit
// status; safe to call more than once.
func (p *Process) Terminate(sig syscall.Signal, to Target, timeout time.Duration, kill Target) ExitStatus {
	select {
	case <-p.exited:
		<-p.done
		return p.exit
	default:
	}
	switch to {
	case Group:
		p.SignalGroup(sig)
	case Main:
		p.Signal(sig)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		switch kill {
		case Group:
			p.SignalGroup(syscall.SIGKILL)
		case Main:
			p.Signal(syscall.SIGKILL)
		}
	}
	<-p.done
	return p.exit
}

// reapOwned reaps pid, a zombie child sockd owns, unless prior is an
// error already, and drops pid from the registry: both at once under its
// lock (see owned), so the reaper never sees pid unowned and unreaped.
func reapOwned(pid int, prior error) (syscall.WaitStatus, error) {
	var ws syscall.WaitStatus
	err := prior
	owned.mu.Lock()
	defer owned.mu.Unlock()
	if err == nil {
		err = ignoringEINTR(func() error {
			_, err := syscall.Wait4(pid, &ws, 0, nil)
			return err
		})
	}
	owned.dropLocked(pid)
	return ws, err
}
