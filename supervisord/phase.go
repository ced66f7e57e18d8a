package supervisord

import (
	"fmt"
	"slices"

	"github.com/sockd/sockd/api"
)

// phase is where a unit is in its life. The unit's actor holds exactly
// one; every change goes through enter, from a row of the table below.
// State and SubState in the API are derived from the phase alone.
type phase int

const (
	phaseDead            phase = iota // no process, no socket to wait on
	phaseListening                    // no process; the next connection starts one
	phaseCondition                    // ExecCondition= runs
	phaseStartPre                     // ExecStartPre= runs
	phaseStarting                     // processes spawned, not all ready (a oneshot: its ExecStart= lines run)
	phaseStartPost                    // ExecStartPost= runs
	phaseRunning                      // every process ready
	phaseReloading                    // ExecReload= (or SIGHUP) runs, or the app said RELOADING=1
	phaseRestarting                   // an overlapping restart: the old generation serves while the new starts
	phaseStopping                     // the app said STOPPING=1; its exit is judged by Restart=
	phaseStopSigterm                  // ExecStop= and KillSignal= sent, waiting for every process to exit
	phaseStopSigkill                  // TimeoutStopSec= passed and SIGKILL sent
	phaseStopPost                     // ExecStopPost= runs, every process gone
	phaseExited                       // RemainAfterExit=: active, with no process
	phaseAutoRestart                  // waiting RestartSec= before starting again
	phaseFailed                       // failed and not listening: a start or trigger limit, or no socket
	phaseFailedListening              // failed; the next connection starts it again
	phaseHeld                         // no process; a program outside sockd holds the sockets (hold.go)
	numPhases
)

var phaseInfo = [numPhases]struct{ name, state, sub string }{
	phaseDead:            {"dead", api.StateInactive, "dead"},
	phaseListening:       {"listening", api.StateInactive, "listening"},
	phaseCondition:       {"condition", api.StateActivating, "condition"},
	phaseStartPre:        {"start-pre", api.StateActivating, "start-pre"},
	phaseStarting:        {"starting", api.StateActivating, "start"},
	phaseStartPost:       {"start-post", api.StateActivating, "start-post"},
	phaseRunning:         {"running", api.StateActive, "running"},
	phaseReloading:       {"reloading", api.StateActive, "reloading"},
	phaseRestarting:      {"restarting", api.StateActive, "restart"},
	phaseStopping:        {"stopping", api.StateActive, "stopping"},
	phaseStopSigterm:     {"stop-sigterm", api.StateDeactivating, "stop-sigterm"},
	phaseStopSigkill:     {"stop-sigkill", api.StateDeactivating, "stop-sigkill"},
	phaseStopPost:        {"stop-post", api.StateDeactivating, "stop-post"},
	phaseExited:          {"exited", api.StateActive, "exited"},
	phaseAutoRestart:     {"auto-restart", api.StateActivating, "auto-restart"},
	phaseFailed:          {"failed", api.StateFailed, "failed"},
	phaseFailedListening: {"failed-listening", api.StateFailed, "listening"},
	phaseHeld:            {"held", api.StateInactive, "held"},
}

func (p phase) String() string {
	if p < 0 || p >= numPhases {
		return fmt.Sprintf("phase(%d)", int(p))
	}
	return phaseInfo[p].name
}

// state and subState are the API's State and SubState of a unit in p.
func (p phase) state() string    { return phaseInfo[p].state }
func (p phase) subState() string { return phaseInfo[p].sub }

// evKind is what happened to a unit.
type evKind int

const (
	evTrigger      evKind = iota // a connection came on an idle unit's socket
	evStart                      // a start request begins
	evStop                       // a stop request begins (sockctl stop, removal, shutdown)
	evRestart                    // a restart request begins
	evReloadApp                  // a reload-app request begins
	evReady                      // a process is ready: READY=1, X-ReadyAfterSec=, or at once
	evReloading                  // RELOADING=1
	evStopping                   // STOPPING=1
	evExit                       // a process exited
	evHelpersDone                // an Exec*= list ended
	evStartTimeout               // TimeoutStartSec= passed for a process not yet ready
	evStopTimeout                // TimeoutStopSec= passed for a stopping process
	evRestartTimer               // RestartSec= passed
	evWatchdog                   // WatchdogSec= passed without WATCHDOG=1
	evRuntimeMax                 // RuntimeMaxSec= passed
	evHold                       // a program outside sockd asks for the sockets (sockctl exec)
	evRelease                    // that program let go: its API connection ended
	evSocketDead                 // the kernel reports a socket of the unit dead (EPOLLHUP/EPOLLERR)
	evBackoff                    // the pause before a failed unit listens again passed
	evResetFailed                // sockctl reset-failed
	evIdle                       // a check of X-IdleTimeoutSec= (idle.go)
	numEvKinds
)

var evNames = [numEvKinds]string{"trigger", "start", "stop", "restart", "reload-app", "ready", "reloading",
	"stopping", "exit", "helpers-done", "start-timeout", "stop-timeout", "restart-timer", "watchdog", "runtime-max",
	"hold", "release", "socket-dead", "backoff", "reset-failed", "idle"}

func (k evKind) String() string { return evNames[k] }

// transition is one row of the table: what a unit in a phase does on an
// event, and the phases it may enter doing so.
type transition struct {
	action string
	next   []phase
	run    func(u *unit, e event)
}

// idle are the phases with no process. rest is where a unit goes when
// its last process is gone (see (*unit).rest).
var (
	idle      = []phase{phaseDead, phaseListening, phaseFailed, phaseFailedListening}
	rest      = []phase{phaseDead, phaseListening, phaseFailed, phaseFailedListening, phaseStopSigterm, phaseStopSigkill}
	starts    = []phase{phaseCondition, phaseStartPre, phaseStarting, phaseStartPost, phaseRunning, phaseExited}
	afterExit = append([]phase{phaseAutoRestart, phaseStopPost, phaseExited}, rest...)
	stopping  = append([]phase{phaseStopSigterm, phaseStopSigkill, phaseStopPost}, idle...)
)

func join(ps ...[]phase) []phase {
	var out []phase
	for _, p := range ps {
		for _, x := range p {
			if !slices.Contains(out, x) {
				out = append(out, x)
			}
		}
	}
	return out
}

// Rows shared by several phases.
var (
	rowStop        = transition{"stop every process (ExecStop=, KillSignal=); cancel the request under way", stopping, (*unit).stopAll}
	rowKill        = transition{"SIGKILL what is left of that process (KillMode=)", []phase{phaseStopSigkill}, (*unit).stopTimeout}
	rowWatchdog    = transition{"stop the process that missed its watchdog (result watchdog)", nil, (*unit).watchdogMissed}
	rowStartTO     = transition{"stop the process that was not ready in time (result timeout); a forking service still without its PID file fails", afterExit, (*unit).startTimedOut}
	rowServingExit = transition{"forget the process; the last one gone: Restart= decides", afterExit, (*unit).servingExit}
	rowIdleStop    = transition{"nothing runs: done", idle, (*unit).stopIdle}
	rowIdleStart   = transition{"reset the limits; start", join(starts, idle), (*unit).startRequest}
	rowIdleReload  = transition{"refuse: not running", nil, (*unit).reloadIdle}
	rowRefill      = transition{"refill the empty instance slots (start limit applies)", stopping, (*unit).refill}
	rowDrained     = transition{"a draining process is gone", nil, (*unit).drainedExit}
	rowRuntimeMax  = transition{"RuntimeMaxSec= passed: stop every process (result timeout)", stopping, (*unit).runtimeMax}
	rowStoppedExit = transition{"forget the process; the last one gone: ExecStopPost=, then done (a restart starts now)", join(idle, starts, []phase{phaseStopPost, phaseAutoRestart}), (*unit).stoppedExit}
	rowTrigger     = transition{"apply TriggerLimit*= and the start limit; start", join(starts, idle), (*unit).trigger}
	rowHold        = transition{"lend the sockets to a program outside sockd (none: refuse)", []phase{phaseHeld}, (*unit).holdSockets}
	rowHeldRefuse  = transition{"refuse: the sockets are held outside sockd", nil, (*unit).refuseHeld}
	rowResetFailed = transition{"forget the failure, the start and trigger limits and the back-off: listening (dead without a socket)", []phase{phaseDead, phaseListening}, (*unit).resetFailed}
)

// table is the unit's state machine: phase × event → action and the
// phases it may lead to. An event without a row is ignored, except
// requests, which wait in the queue until the phase has a row for them.
// docs/architecture.md carries the same table (TestPhaseTableDoc).
var table = map[phase]map[evKind]transition{
	phaseDead: {
		evStart: rowIdleStart, evRestart: rowIdleStart, evStop: rowIdleStop, evReloadApp: rowIdleReload, evHold: rowHold,
	},
	phaseListening: {
		evTrigger: rowTrigger, evStart: rowIdleStart, evRestart: rowIdleStart, evStop: rowIdleStop, evReloadApp: rowIdleReload, evHold: rowHold,
	},
	phaseFailed: {
		evStart: rowIdleStart, evRestart: rowIdleStart, evStop: rowIdleStop, evReloadApp: rowIdleReload, evHold: rowHold,
		evResetFailed: rowResetFailed,
	},
	phaseFailedListening: {
		evTrigger: rowTrigger, evStart: rowIdleStart, evRestart: rowIdleStart, evStop: rowIdleStop, evReloadApp: rowIdleReload, evHold: rowHold,
		evBackoff:     {"the back-off (RestartSec=, RestartSteps=) passed: listen again; a queued connection starts the unit", nil, (*unit).backoffDone},
		evResetFailed: rowResetFailed,
	},
	phaseCondition: {
		evHelpersDone: {"met: go on (ExecStartPre=, the processes); exit 1-254: skip the start; else fail", join(starts, idle, []phase{phaseStopPost}), (*unit).conditionDone},
		evExit:        rowDrained,
		evStopTimeout: rowKill,
		evStop:        rowStop,
	},
	phaseStartPre: {
		evHelpersDone: {"failed: the start fails (ExecStopPost=); else spawn the processes (a oneshot: run ExecStart=)", join(starts, idle, []phase{phaseStopPost}), (*unit).startPreDone},
		evExit:        rowDrained,
		evStopTimeout: rowKill,
		evStop:        rowStop,
	},
	phaseStarting: {
		evReady:        {"all ready: ExecStartPost=, or running", []phase{phaseStartPost, phaseRunning}, (*unit).startingReady},
		evHelpersDone:  {"a oneshot's ExecStart= ended: ExecStartPost=, or done (RemainAfterExit=: exited)", join([]phase{phaseStartPost, phaseExited, phaseStopPost}, idle), (*unit).oneshotDone},
		evExit:         {"Type=forking's first process: adopt the main process; else the start fails, and the last process gone, Restart= decides", join(afterExit, []phase{phaseStartPost, phaseRunning}), (*unit).startingExit},
		evRestart:      {"overlapping restart: the new generation replaces the one not yet ready", []phase{phaseRestarting, phaseStopSigterm, phaseRunning}, (*unit).restartRunning},
		evStartTimeout: rowStartTO,
		evWatchdog:     rowWatchdog,
		evStopTimeout:  rowKill,
		evStop:         rowStop,
	},
	phaseStartPost: {
		evHelpersDone: {"running (a oneshot: done); failed: stop the processes, the start fails", join([]phase{phaseRunning, phaseExited}, stopping), (*unit).startPostDone},
		evExit:        {"the start fails; the last process gone: Restart= decides", join(afterExit, []phase{phaseStartPost}), (*unit).startingExit},
		evReady:       {"note it", nil, (*unit).lateReady},
		evWatchdog:    rowWatchdog,
		evStopTimeout: rowKill,
		evStop:        rowStop,
	},
	phaseRunning: {
		evStart:        {"already running: done", nil, (*unit).startRunning},
		evRestart:      {"overlapping restart, or (--stop-first) stop then start", []phase{phaseRestarting, phaseStopSigterm, phaseRunning}, (*unit).restartRunning},
		evReloadApp:    {"run ExecReload= (or SIGHUP) for every process", []phase{phaseReloading}, (*unit).reloadApp},
		evReloading:    {"the app reloads", []phase{phaseReloading}, (*unit).notifyReloading},
		evStopping:     {"the app stops", []phase{phaseStopping}, (*unit).notifyStopping},
		evReady:        {"note it (a refilled instance)", nil, (*unit).lateReady},
		evExit:         rowServingExit,
		evRestartTimer: rowRefill,
		evStartTimeout: rowStartTO,
		evWatchdog:     rowWatchdog,
		evStopTimeout:  rowKill,
		evRuntimeMax:   rowRuntimeMax,
		evIdle:         {"no connection for X-IdleTimeoutSec=: stop every process (result success); listening after", stopping, (*unit).idleCheck},
		evStop:         rowStop,
	},
	phaseReloading: {
		evHelpersDone:  {"ExecReload= ended: running; the request gets its outcome", []phase{phaseRunning}, (*unit).reloadDone},
		evReady:        {"READY=1 after RELOADING=1: running", []phase{phaseRunning}, (*unit).reloadingReady},
		evExit:         rowServingExit,
		evRestartTimer: rowRefill,
		evStartTimeout: rowStartTO,
		evWatchdog:     rowWatchdog,
		evStopTimeout:  rowKill,
		evRuntimeMax:   rowRuntimeMax,
		evStop:         rowStop,
	},
	phaseRestarting: {
		evReady:        {"the new process replaces the old (ExecStartPost= first), which drains; next instance", join([]phase{phaseRunning}, rest), (*unit).restartReady},
		evHelpersDone:  {"ExecStartPre=/ExecStartPost= of the new generation: go on, or roll back", join([]phase{phaseRunning}, rest), (*unit).restartHelpersDone},
		evExit:         {"the new process: roll back; an old one: drained, maybe done; a serving one: Restart= refills", join([]phase{phaseRunning}, rest), (*unit).restartExit},
		evRestartTimer: {"refill the slots the restart has passed", nil, (*unit).restartRefill},
		evStartTimeout: rowStartTO,
		evWatchdog:     rowWatchdog,
		evStopTimeout:  rowKill,
		evStop:         rowStop,
	},
	phaseStopping: {
		evExit:         rowServingExit,
		evStartTimeout: rowStartTO,
		evWatchdog:     rowWatchdog,
		evStopTimeout:  rowKill,
		evRuntimeMax:   rowRuntimeMax,
		evStop:         rowStop,
	},
	phaseStopSigterm: {
		evExit:        rowStoppedExit,
		evHelpersDone: {"ExecStop= of a unit with no process ended: stopped", join(idle, starts, []phase{phaseStopPost, phaseAutoRestart}), (*unit).stopListDone},
		evStopTimeout: rowKill,
	},
	phaseStopSigkill: {
		evExit:        rowStoppedExit,
		evStopTimeout: rowKill,
	},
	phaseStopPost: {
		evHelpersDone: {"ExecStopPost= ended: the stop is done, a restart starts, or Restart= waits", join(idle, starts, []phase{phaseAutoRestart}), (*unit).stopPostDone},
		evExit:        rowDrained,
		evStopTimeout: rowKill,
	},
	phaseExited: {
		evStart:       {"already active: done", nil, (*unit).startRunning},
		evRestart:     rowIdleStart,
		evStop:        {"ExecStop= (no process to signal), ExecStopPost=", stopping, (*unit).stopExited},
		evReloadApp:   rowIdleReload,
		evExit:        rowDrained,
		evStopTimeout: rowKill,
	},
	phaseAutoRestart: {
		evRestartTimer: {"apply the start limit; start", join(starts, idle), (*unit).autoRestart},
		evStart:        rowIdleStart,
		evRestart:      rowIdleStart,
		evStop:         {"cancel the restart: done", idle, (*unit).stopIdle},
		evReloadApp:    rowIdleReload,
		evStopTimeout:  rowKill,
		evExit:         rowDrained,
	},
	phaseHeld: {
		evHold:        {"refuse: held already", nil, (*unit).holdAgain},
		evRelease:     {"the holder let go: back to the phase it was held from (dead when sockd stops the unit)", idle, (*unit).release},
		evBackoff:     {"the back-off passed: listen again after the release", nil, (*unit).backoffDone},
		evStart:       rowHeldRefuse,
		evRestart:     rowHeldRefuse,
		evStop:        {"refuse; when sockd stops or removes the unit: tell the holder, and wait for its release", nil, (*unit).stopHeld},
		evReloadApp:   rowIdleReload,
		evExit:        rowDrained,
		evStopTimeout: {rowKill.action, nil, (*unit).stopTimeout}, // no process runs: never stop-sigkill
	},
}

// rowSocketDead is in every phase: a dead socket is replaced whatever
// the unit does (sockets.go).
var rowSocketDead = transition{"socket-replaced: bind a fresh socket; a process serves: restart onto it (queued); cannot bind: fail", []phase{phaseFailed}, (*unit).socketDead}

func init() {
	for p := range numPhases {
		if rows, ok := table[p]; ok {
			rows[evSocketDead] = rowSocketDead
		}
	}
	for p := range numPhases {
		if _, ok := table[p]; !ok {
			panic("phase without rows: " + p.String())
		}
	}
}

// strictPhases makes enter panic on a transition the table does not
// list; tests set it.
var strictPhases = false
