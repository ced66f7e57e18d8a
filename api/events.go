package api

import "time"

// UnitEvent is one lifecycle event of a unit (or of sockd itself, with
// Unit empty), as sockd publishes it to its subscribers: the event
// stream (GET /v1/events, NDJSON) and the metrics. Only the fields that
// apply to its Kind are set.
type UnitEvent struct {
	Seq  uint64    `json:"seq"` // increases by one per event sockd publishes
	Time time.Time `json:"time"`
	Unit string    `json:"unit,omitempty"` // "app.service"; "" for sockd's own (reload)
	Kind string    `json:"kind"`           // one of the Event* constants

	Pid    int    `json:"pid,omitempty"`
	Gen    int    `json:"gen,omitempty"`    // the process's generation
	Code   *int   `json:"code,omitempty"`   // exited: the exit code
	Signal string `json:"signal,omitempty"` // exited: the signal that killed it ("SIGKILL")
	Result string `json:"result,omitempty"` // exited: how sockd judges the exit ("success", "exit-code", "signal", "timeout", "watchdog")
	// Phase is a restart's phase (Phase* constants) for EventRestart,
	// the unit's new phase for EventPhase ("running", "failed", …).
	Phase string `json:"phase,omitempty"`
	// Outcome is EventRestartDone's "done", "rolled-back" or "failed",
	// and EventReload's (Reload* constants).
	Outcome string `json:"outcome,omitempty"`
	Millis  int64  `json:"ms,omitempty"`      // EventReady: since the spawn; EventRestartDone: the restart's length
	Socket  string `json:"socket,omitempty"`  // "app.socket"
	Listen  string `json:"listen,omitempty"`  // the address
	Message string `json:"message,omitempty"` // a cause, a restart phase's text
	File    string `json:"file,omitempty"`    // EventLoadError
	Line    int    `json:"line,omitempty"`    // EventLoadError
}

// The kinds of UnitEvent.
const (
	EventBound          = "bound"             // a socket of the unit was bound (or taken back), or bound again
	EventTriggered      = "triggered"         // a connection on an idle unit's socket starts it
	EventSpawned        = "spawned"           // a process started
	EventReady          = "ready"             // a process is ready
	EventExited         = "exited"            // a process ended
	EventPhase          = "phase"             // the unit entered another phase
	EventRestart        = "restart"           // a restart's progress (Phase: queued, spawned, …)
	EventRestartDone    = "restart-done"      // a restart ended (Outcome)
	EventStartLimit     = "start-limit-hit"   // the unit hit its start limit
	EventTriggerLimit   = "trigger-limit-hit" // a socket hit its trigger limit
	EventWatchdog       = "watchdog"          // a process missed its watchdog
	EventSocketReplaced = "socket-replaced"   // a dead socket was replaced
	EventAdded          = "added"             // a reload (or the start) added the unit
	EventRemoved        = "removed"           // a reload removed the unit
	EventLoadError      = "load-error"        // the unit's file has an error (File, Line, Message)
	EventReload         = "reload"            // a reload of the unit directory ended (Message: its summary)
	EventLagged         = "lagged"            // the last event a subscriber that did not keep up gets
	// EventSubscribed is the first event of every subscription: from
	// here on the subscriber misses nothing (Seq: the last event sockd
	// published before it). A client may act once it has it.
	EventSubscribed = "subscribed"
)

// The outcomes of a reload (EventReload's Outcome).
const (
	ReloadSuccess    = "success"     // applied, every unit file loads
	ReloadUnitErrors = "unit-errors" // applied; units whose files have errors were left as they were
	ReloadFailed     = "failed"      // the directory could not be read, a unit could not be stopped, or it was cut short
)
