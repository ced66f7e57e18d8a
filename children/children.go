// Package children is the mechanism of one child process: start it from a
// plain Spec (program, arguments, environment, extra fds from 3,
// credentials, umask, nice, rlimits) in its own process group, capture
// its output line by line, signal it, stop it gracefully with a timeout,
// and report its exit exactly once. It also owns NOTIFY_SOCKET, the
// datagram socket of sd_notify(3). It knows nothing of unit files or of
// restart policy.
package children

import (
	"os"
	"syscall"
	"time"
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
	File *os.File
	// Lines, if set (and File is nil), is called with each line of the
	// stream, without its newline, from one goroutine per stream.
	Lines func(line string)
}

// Spec describes one process to start.
type Spec struct {
	Path string   // program to exec; looked up in PATH if it has no slash
	Argv []string // argument vector, Argv[0] included
	Env  []string // the complete environment, "KEY=value"
	Dir  string   // working directory; "" for sockd's

	// ExtraFiles become fds 3, 4, … in the child. Start does not change
	// their blocking mode (it never calls (*os.File).Fd on them).
	ExtraFiles []*os.File

	Credential *syscall.Credential // nil: run as sockd's user
	Umask      int                 // -1: inherit sockd's
	Nice       *int                // nil: inherit
	Rlimits    []Rlimit

	// PIDEnv, if set, names an environment variable the child finds set
	// to its own pid (LISTEN_PID). This takes an exec helper: sockd
	// re-executes itself, sets the variable and execs Path.
	PIDEnv string

	Stdout, Stderr Output
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
func (e ExitStatus) String() string { panic("not implemented") }

// Process is one started child. Exactly one goroutine waits for it.
type Process struct{}

// Start starts spec's process in a new process group whose id is its pid.
func Start(spec Spec) (*Process, error) { panic("children.Start: not implemented") }

// Pid returns the child's pid (its process group id too).
func (p *Process) Pid() int { panic("not implemented") }

// Done is closed once the process has exited and been reaped, and its
// captured output has been read to the end (or a short grace passed
// when a grandchild keeps the pipe open).
func (p *Process) Done() <-chan struct{} { panic("not implemented") }

// Exit returns how the process ended; valid once Done is closed.
func (p *Process) Exit() ExitStatus { panic("not implemented") }

// Signal sends sig to the process alone. It is a no-op once reaped.
func (p *Process) Signal(sig syscall.Signal) error { panic("not implemented") }

// SignalGroup sends sig to the process group. It is a no-op once reaped.
func (p *Process) SignalGroup(sig syscall.Signal) error { panic("not implemented") }

// Stop sends sig (to the group if group is set), waits up to timeout for
// the exit, then sends SIGKILL to the group if sigkill is set, and waits
// for Done. It returns the exit status. Safe to call more than once.
func (p *Process) Stop(sig syscall.Signal, timeout time.Duration, sigkill, group bool) ExitStatus {
	panic("not implemented")
}

// MaybeRunHelper runs the exec helper when the program was started as
// one (by Start with a PIDEnv, umask, nice or rlimits) and then never
// returns; otherwise it returns at once. Call it first thing in main and
// in TestMain of any package whose tests start children.
func MaybeRunHelper() {}

// Notification is one sd_notify datagram.
type Notification struct {
	Pid    int               // sender pid from SCM_CREDENTIALS; 0 if unknown
	Fields map[string]string // READY=1 → Fields["READY"]="1"
	Raw    string
}

// NotifySocket is a NOTIFY_SOCKET: a datagram Unix socket with
// SO_PASSCRED, so every message carries its sender's pid.
type NotifySocket struct{}

// ListenNotify creates the socket at path (removing a stale socket file
// first) and starts reading it.
func ListenNotify(path string) (*NotifySocket, error) { panic("not implemented") }

// Path returns the socket's path, the value for NOTIFY_SOCKET.
func (n *NotifySocket) Path() string { panic("not implemented") }

// C delivers the notifications in arrival order.
func (n *NotifySocket) C() <-chan Notification { panic("not implemented") }

// Close stops reading, closes the socket and removes its file.
func (n *NotifySocket) Close() error { panic("not implemented") }
