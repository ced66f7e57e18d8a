package supervisord

// The state file: what a sockd that starts again (after a crash, a
// SIGKILL, or its own re-exec) needs to take its units' processes back.
// sockd rewrites it (atomically: a temporary file renamed over it) after
// every change of a unit's processes, from one goroutine that coalesces
// changes, and removes it at a clean shutdown. It lives in the runtime
// directory (/run/sockd/state.json): a reboot forgets it, as it forgets
// the processes.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
)

// stateVersion is the state file's format. A sockd refuses a file of
// another version (and starts its units afresh), and a re-exec into a
// binary that reads another version is refused before the exec.
const stateVersion = 1

// StateVersion is the state file format this sockd reads and writes
// (`sockd self-test` prints it; a re-exec checks the new binary's).
const StateVersion = stateVersion

// stateFileName is the state file in the runtime directory.
const stateFileName = "state.json"

type stateFile struct {
	Version int `json:"version"`
	// Pid is the pid of the sockd that wrote it; after a re-exec it is
	// the new sockd's own pid, and the processes are its children.
	Pid int `json:"pid"`
	// Reexec is set by a sockd about to re-exec itself.
	Reexec bool                 `json:"reexec,omitempty"`
	Units  map[string]unitState `json:"units"`
}

// unitState is one unit's processes.
type unitState struct {
	Gen   int         `json:"gen"`
	Procs []procState `json:"procs,omitempty"`
}

type procState struct {
	Pid int `json:"pid"`
	// Start is the process's start time (clock ticks after boot, field
	// 22 of /proc/PID/stat): with the pid it names the process, whatever
	// happened to the pid meanwhile.
	Start    uint64 `json:"start"`
	Gen      int    `json:"gen"`
	Slot     int    `json:"slot"`
	MainPid  int    `json:"main_pid,omitempty"`
	Ready    bool   `json:"ready,omitempty"`
	Draining bool   `json:"draining,omitempty"`
}

// stateWriter keeps the state file up to date.
type stateWriter struct {
	path string
	log  func(error)

	mu     sync.Mutex
	units  map[string]unitState
	closed bool
	dirty  chan struct{} // one pending write
	done   chan struct{}
}

func newStateWriter(dir string, log func(error)) *stateWriter {
	w := &stateWriter{path: filepath.Join(dir, stateFileName), log: log, units: map[string]unitState{},
		dirty: make(chan struct{}, 1), done: make(chan struct{})}
	go w.run()
	return w
}

// set records unit's processes (none: forget the unit).
func (w *stateWriter) set(unit string, st unitState) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	if len(st.Procs) == 0 {
		if _, ok := w.units[unit]; !ok {
			return // an idle unit that was idle: nothing to write
		}
		delete(w.units, unit)
	} else {
		w.units[unit] = st
	}
	select {
	case w.dirty <- struct{}{}:
	default: // a write is pending; it will see this change
	}
}

func (w *stateWriter) run() {
	defer close(w.done)
	for range w.dirty {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return
		}
		f := w.snapshotLocked()
		w.mu.Unlock()
		if err := writeState(w.path, &f); err != nil {
			w.log(err)
		}
	}
}

// close stops the writer; with remove, the state file goes too (a clean
// shutdown: nothing is left to take back).
func (w *stateWriter) close(remove bool) {
	if w == nil {
		return
	}
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.dirty) // under mu: set never sends on it after this
	}
	w.mu.Unlock()
	<-w.done
	if remove {
		os.Remove(w.path)
	}
}

// snapshot is the state now, for a re-exec.
func (w *stateWriter) snapshot() stateFile {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snapshotLocked()
}

func (w *stateWriter) snapshotLocked() stateFile {
	f := stateFile{Version: stateVersion, Pid: os.Getpid(), Units: make(map[string]unitState, len(w.units))}
	for n, u := range w.units {
		f.Units[n] = u
	}
	return f
}

// writeState writes f to path atomically.
func writeState(path string, f *stateFile) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("state file: %w", err)
	}
	return nil
}

// readState reads the state file in dir: nil and no error if there is
// none.
func readState(dir string) (*stateFile, error) {
	path := filepath.Join(dir, stateFileName)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state file: %w", err)
	}
	defer f.Close()
	// The file names processes sockd will signal: only sockd's own user
	// may have written it.
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("state file: %w", err)
	}
	if int(st.Uid) != os.Geteuid() || st.Mode&0o022 != 0 || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, fmt.Errorf("state file %s: owned by uid %d, mode %#o: not sockd's alone; ignored", path, st.Uid, st.Mode&0o7777)
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("state file: %w", err)
	}
	var sf stateFile
	if err := json.Unmarshal(b, &sf); err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	if sf.Version != stateVersion {
		return nil, fmt.Errorf("state file %s: version %d, this sockd reads version %d", path, sf.Version, stateVersion)
	}
	return &sf, nil
}

// unit returns the state of unit name, if f has one.
func (f *stateFile) unit(name string) (unitState, bool) {
	if f == nil {
		return unitState{}, false
	}
	st, ok := f.Units[name]
	return st, ok
}

// processStart returns the start time of pid (clock ticks after boot).
func processStart(pid int) (uint64, error) {
	f, err := statFields(pid, 20) // starttime is field 22
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// unitStateOf is the state of u's processes now.
func (u *unit) unitStateOf() unitState {
	st := unitState{Gen: u.gen}
	add := func(p *proc, draining bool) {
		if p == nil || p.exited || p.startTicks == 0 {
			return
		}
		st.Procs = append(st.Procs, procState{Pid: p.Pid(), Start: p.startTicks, Gen: p.gen, Slot: p.slot,
			MainPid: p.mainPid, Ready: p.ready, Draining: draining || p.stopping})
	}
	for _, p := range u.slots {
		add(p, false)
	}
	for _, p := range u.draining {
		add(p, true)
	}
	if j := u.job; j != nil {
		add(j.newProc, false)
		for _, p := range j.old {
			if !slices.Contains(u.draining, p) && !slices.Contains(u.slots, p) {
				add(p, true)
			}
		}
	}
	return st
}
