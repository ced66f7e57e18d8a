// Package api is sockd's control protocol: HTTP with JSON bodies over a
// Unix socket. It holds the wire types, the Server (which calls a Backend
// it defines, implemented by supervisord), and the Client used by sockctl.
// It knows nothing of how units are supervised.
package api

import (
	"context"
	"errors"
	"os"
	"time"
)

// Errors a Backend wraps (with %w) so the server maps them to a status;
// the Client returns an *Error that matches them with errors.Is.
var (
	ErrNotFound = errors.New("not found") // 404: no such unit
	ErrInvalid  = errors.New("invalid")   // 400: a bad field or argument
	ErrConflict = errors.New("conflict")  // 409: not possible in the unit's state
	ErrFailed   = errors.New("failed")    // 422: the operation ran and failed
	// ErrPermission is a request the peer may not make (403): see Access.
	ErrPermission = errors.New("permission denied")
)

// Backend is what the server serves. Every method may be called from many
// goroutines at once; unit names come with or without ".service".
type Backend interface {
	List(ctx context.Context) ([]UnitStatus, error)
	Status(ctx context.Context, unit string) (UnitStatus, error)
	Start(ctx context.Context, unit string) error
	Stop(ctx context.Context, unit string) error
	// Restart restarts unit. With opts.Wait unset it returns once the
	// restart is accepted (queued behind any under way) with a zero
	// result. With opts.Wait set it blocks until the restart has ended,
	// calling progress (from the caller's goroutine) for each phase, and
	// returns the result; a rolled-back restart is a result with OK
	// false, not an error.
	Restart(ctx context.Context, unit string, opts RestartOptions, progress func(Event)) (RestartResult, error)
	// ReloadApp runs the unit's ExecReload= (or sends SIGHUP when it has
	// none) to the running processes.
	ReloadApp(ctx context.Context, unit string) error
	// Reload re-reads the unit directory and applies the changes.
	Reload(ctx context.Context) (ReloadResult, error)
	// Logs returns up to q.N of the unit's last output lines that match
	// q, oldest first.
	Logs(ctx context.Context, unit string, q LogQuery) ([]LogLine, error)
	// FollowLogs returns a follower of the unit's output (logs.go): its
	// last q.N matching lines, then each as it comes. A reader that
	// falls behind is dropped (a LogEndError), never waited for.
	FollowLogs(ctx context.Context, unit string, q LogQuery) (LogFollower, error)
	// Hold lends unit's listening sockets to holder, a program outside
	// sockd (sockctl exec), until the returned Hold's Release: meanwhile
	// a connection does not start the unit's service, and start,
	// restart and stop are refused. It fails with ErrConflict while a
	// process of the unit runs, when it is held already, and for a unit
	// without sockets. A Hold's Files are duplicates, the caller's to
	// close.
	Hold(ctx context.Context, unit string, holder Peer) (*Hold, error)
	// ResetFailed makes a failed unit (unit "": every failed unit)
	// forget its failure, its start and trigger limits and its back-off,
	// as systemctl reset-failed, and returns the units that were failed.
	// A unit that is not failed is left alone: no error.
	ResetFailed(ctx context.Context, unit string) ([]string, error)
	// Events subscribes to the lifecycle events of unit ("" for every
	// unit's and sockd's own) from now on: the first is EventSubscribed.
	// The channel closes after an EventLagged when the subscriber falls
	// behind, or once cancel is called, which the caller must do. An
	// unknown unit is ErrNotFound.
	Events(ctx context.Context, unit string) (<-chan UnitEvent, func(), error)
}

// ResetFailedResult is the answer to a reset-failed: the units that
// were failed and are no more.
type ResetFailedResult struct {
	Units []string `json:"units"`
}

// Hold is a unit's listening sockets lent to a program outside sockd.
// The server gets one from its Backend and sends the sockets to the
// client, whose Client.Hold returns one too.
type Hold struct {
	Unit  string     // "app.service"
	Files []*os.File // the listening sockets, in LISTEN_FDS order
	Names []string   // their LISTEN_FDNAMES, one per file
	// Ended is closed when the hold ends from the other side: from the
	// Backend, when sockd ends it (the unit is removed, its sockets
	// change, sockd stops) and waits for Release; for a Client, when the
	// connection to sockd ends (or Release closed it).
	Ended <-chan struct{}
	// Release ends the hold; it may be called more than once. From the
	// Backend, it returns once the unit has left the held phase; for a
	// Client, it closes the connection to sockd, which tells sockd.
	Release func()
}

// UnitStatus is the state of one service and its sockets.
type UnitStatus struct {
	Name    string         `json:"name"` // "app.service"
	Service ServiceStatus  `json:"service"`
	Sockets []SocketStatus `json:"sockets"`
	// LoadErrors are the errors of the unit's files (its service's and
	// its sockets') at the last reload: the unit runs as it was loaded
	// before them, until a reload finds the files fixed. A unit whose
	// files never loaded is listed as failed, sub-state "load-error".
	LoadErrors []Diagnostic `json:"load_errors,omitempty"`
}

// Service states, as systemd names them.
const (
	StateInactive     = "inactive"
	StateActivating   = "activating"
	StateActive       = "active"
	StateDeactivating = "deactivating"
	StateFailed       = "failed"
)

// ServiceStatus is the service half of a UnitStatus.
type ServiceStatus struct {
	State       string         `json:"state"`               // one of the State* constants
	SubState    string         `json:"sub_state,omitempty"` // finer: "listening", "running", "restarting", …
	Pids        []int          `json:"pids"`                // every running process, current generation first
	MainPID     int            `json:"main_pid,omitempty"`
	Generation  int            `json:"generation"` // increments with each start
	Since       time.Time      `json:"since"`      // when State last changed
	Restarts    int            `json:"restarts"`
	Status      string         `json:"status,omitempty"` // the last STATUS= from sd_notify
	LastExit    string         `json:"last_exit,omitempty"`
	Result      string         `json:"result,omitempty"` // systemd's Result: "success", "exit-code", "start-limit-hit", …
	LastRestart *RestartResult `json:"last_restart,omitempty"`
	Instances   int            `json:"instances"`
	// InstancePhases, during a rolling restart, is each instance slot's
	// phase: "done" (the new generation serves), "starting" (its new
	// process is not ready yet) or "waiting" (the old one serves).
	InstancePhases []string `json:"instance_phases,omitempty"`
	// HeldBy is the pid of the program outside sockd that holds the
	// unit's sockets (sub_state "held"): the API client that asked for
	// them, as SO_PEERCRED named it (sockctl exec).
	HeldBy int `json:"held_by,omitempty"`
	// ControlGroup is what the unit's processes are kept in: "cgroup
	// DIR" (a cgroup v2 directory) or "process group" (without cgroup
	// v2, each process's own process group).
	ControlGroup string `json:"control_group,omitempty"`
	// CgroupPids lists every process in the unit's cgroup: those in Pids,
	// Exec*= commands, and what they forked, daemonized (setsid) or not.
	CgroupPids []int `json:"cgroup_pids,omitempty"`
	// NextStart is when the unit starts again by itself: the end of
	// RestartSec= (sub_state "auto-restart"), or of the back-off after
	// a failed start (sub_state "listening" of a failed unit: the next
	// connection starts it no earlier). Zero (left out) when none.
	NextStart time.Time `json:"next_start,omitzero"`
}

// SocketStatus is one listening address of one of the unit's sockets.
type SocketStatus struct {
	Unit   string `json:"unit"`   // "app.socket"
	Type   string `json:"type"`   // "Stream", "Datagram", "SequentialPacket", "FIFO"
	Listen string `json:"listen"` // "127.0.0.1:8080", "/run/app.sock"
	FDName string `json:"fd_name"`
	// Closed is set while sockd keeps the socket closed, so that
	// connections are refused: the unit hit its start limit (sockctl
	// start or reset-failed binds it again).
	Closed bool `json:"closed,omitempty"`
	// Replaced counts the times the socket died (a process holding it
	// shut it down) and sockd bound a fresh one; ReplacedAt and
	// ReplacedCause are the last time's.
	Replaced      int        `json:"replaced,omitempty"`
	ReplacedAt    *time.Time `json:"replaced_at,omitempty"`
	ReplacedCause string     `json:"replaced_cause,omitempty"`
	// QueueDepth is how many connections wait in a listening stream
	// socket's accept queue, and Backlog how many it may hold (what
	// `ss -lt` shows as Recv-Q and Send-Q), read through sock_diag when
	// the status is asked for; nil when not known (datagram sockets,
	// FIFOs, or sock_diag unavailable).
	QueueDepth *int `json:"queue_depth,omitempty"`
	Backlog    int  `json:"backlog,omitempty"`
}

// RestartOptions are the knobs of a restart.
type RestartOptions struct {
	Wait      bool `json:"wait"`
	StopFirst bool `json:"stop_first"` // systemd's order: stop, then start
}

// Restart phases, in the order they happen.
const (
	PhaseQueued   = "queued"    // waiting behind another request under way
	PhaseStartPre = "start-pre" // ExecStartPre= of the new generation runs
	PhaseNote     = "note"      // something the caller should know (Message)
	PhaseSpawned  = "spawned"   // a new process started (Pid)
	PhaseWaiting  = "waiting"   // waiting for it to become ready
	PhaseReady    = "ready"     // it is ready (Pid)
	PhaseDraining = "draining"  // an old process was told to stop (Pid)
	PhaseStopped  = "stopped"   // an old process has exited (Pid)
	PhaseFailed   = "failed"    // the new process failed (Message says why)
	PhaseDone     = "done"
)

// Event is one phase of a restart as it happens.
type Event struct {
	Time    time.Time `json:"time"`
	Phase   string    `json:"phase"`
	Pid     int       `json:"pid,omitempty"`
	Message string    `json:"message,omitempty"`
}

// RestartResult is how a restart ended.
type RestartResult struct {
	Unit    string   `json:"unit"`
	OK      bool     `json:"ok"`
	Outcome string   `json:"outcome"` // "done", "rolled-back", "failed"
	Cause   string   `json:"cause,omitempty"`
	OldPids []int    `json:"old_pids,omitempty"`
	NewPids []int    `json:"new_pids,omitempty"`
	Millis  int64    `json:"millis"`
	LogTail []string `json:"log_tail,omitempty"` // the failed process's last output lines
}

// ReloadResult says what a reload of the unit directory changed.
type ReloadResult struct {
	Added       []string     `json:"added,omitempty"`
	Removed     []string     `json:"removed,omitempty"`
	Changed     []string     `json:"changed,omitempty"`
	Diagnostics []Diagnostic `json:"diagnostics,omitempty"`
}

// Diagnostic is a problem in a unit file, as units reports it.
type Diagnostic struct {
	File     string `json:"file"`
	Line     int    `json:"line,omitempty"`
	Option   string `json:"option,omitempty"`
	Severity string `json:"severity"` // "error" or "warning"
	Message  string `json:"message"`
	Text     string `json:"text"` // "file:line: Option: message"
}

// LogLine is one line of a unit's output.
type LogLine struct {
	Time   time.Time `json:"time"`
	Pid    int       `json:"pid"`
	Stream string    `json:"stream"` // "stdout" or "stderr"
	Line   string    `json:"line"`
}
