package supervisord

// Units that could not be opened. Whose address another process holds: a
// sockd started while the old one's orphans (or anything else) still
// listen, say. sockd says so, names the process when it can find it,
// shows the unit as failed with result "address-in-use", and tries again
// with back-off until it binds. Units that did not fit in sockd's fds
// (fdbudget.go) are failed with result "resources" and tried again the
// same way; so is a unit whose sockets failed otherwise (result
// "resources", as systemd names a socket that cannot be set up), tried
// again at the next reload only. None is missing silently: List and
// Status show them all.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/units"
)

// busyRetryMin and busyRetryMax bound the back-off between tries.
const (
	busyRetryMin = time.Second
	busyRetryMax = 30 * time.Second
)

// busyUnits are the units waiting for their addresses.
type busyUnits struct {
	mu    sync.Mutex
	units map[string]busyUnit
	timer *time.Timer
	delay time.Duration
}

type busyUnit struct {
	svc    *units.Service
	result string // address-in-use or resources
	cause  string
	since  time.Time
}

// Results of a unit that could not be opened.
const (
	resultAddrInUse = "address-in-use"
	resultResources = "resources"
)

// addFailed records that svc's sockets could not be opened (err), lists
// it as failed, and arms a retry if err is one that time may cure: an
// address in use (EADDRINUSE) or too many open files.
func (d *Daemon) addFailed(svc *units.Service, err error) {
	if isAddrInUse(err) {
		d.addBusy(svc, err)
		return
	}
	// The kernel's EMFILE may pass as fds are closed: try again with
	// back-off. The budget's refusal lasts until a reload changes it.
	var fe *fdLimitError
	retry := isTooManyFiles(err) && !(errors.As(err, &fe) && fe.Budget)
	cause := err.Error()
	if d.setFailed(svc, resultResources, cause, retry) {
		ev := d.log.Error()
		msg := "unit not started: its sockets could not be opened (sockctl status shows it failed; a reload tries again)"
		switch {
		case retry:
			msg = "unit not started: too many open files (sockctl status shows it failed; sockd tries again)"
		case isTooManyFiles(err):
			msg = "unit not started: sockd's fd limit leaves no room for it (sockctl status shows it failed; raise the limit, LimitNOFILE= or prlimit, and reload)"
		}
		ev.Str("unit", svc.Name).Str("result", resultResources).Err(err).Msg(msg)
	} else {
		d.log.Debug().Str("unit", svc.Name).Err(err).Msg("unit still not started")
	}
}

// addBusy records that svc could not bind an address (err wraps
// EADDRINUSE), and arms a retry.
func (d *Daemon) addBusy(svc *units.Service, err error) {
	cause := err.Error()
	if who := addressOwner(err); who != "" {
		cause += " (held by " + who + ")"
	}
	d.log.Error().Str("unit", svc.Name).Str("cause", cause).
		Msg("address in use by another process: the unit waits for it, and sockd tries again")
	d.setFailed(svc, resultAddrInUse, cause, true)
}

// setFailed lists svc as failed with result and cause, arms a retry if
// asked, and reports whether this is news (the unit was not failed with
// the same cause already).
func (d *Daemon) setFailed(svc *units.Service, result, cause string, retry bool) bool {
	b := &d.busy
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.units == nil {
		b.units = map[string]busyUnit{}
	}
	since := time.Now()
	old, ok := b.units[svc.Name]
	if ok {
		since = old.since
	}
	b.units[svc.Name] = busyUnit{svc: svc, result: result, cause: cause, since: since}
	if retry && b.timer == nil {
		if b.delay == 0 {
			b.delay = busyRetryMin
		}
		b.timer = time.AfterFunc(b.delay, d.retryBusy)
		b.delay = min(2*b.delay, busyRetryMax)
	}
	return !ok || old.result != result || old.cause != cause
}

// bound forgets a unit that is no longer waiting (it bound, or it is
// gone from the unit files).
func (d *Daemon) bound(name string) {
	b := &d.busy
	b.mu.Lock()
	delete(b.units, name)
	if len(b.units) == 0 {
		b.delay = 0
	}
	b.mu.Unlock()
}

// retryBusy reloads, which adds the units not running yet (all those
// listed as failed: a unit that failed for a cause time does not cure
// costs a line at debug level).
func (d *Daemon) retryBusy() {
	b := &d.busy
	b.mu.Lock()
	b.timer = nil
	n := len(b.units)
	b.mu.Unlock()
	if n == 0 || d.life.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(d.life, time.Minute)
	defer cancel()
	if _, err := d.Reload(ctx); err != nil {
		d.log.Warn().Err(err).Msg("retrying the units whose addresses were in use or that had too few fds")
	}
}

// stopBusy ends the retries (Shutdown).
func (d *Daemon) stopBusy() {
	b := &d.busy
	b.mu.Lock()
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.mu.Unlock()
}

// busyStatus lists the units not opened as failed, with their result
// (address-in-use or resources) as sub-state and result, and the error
// as LastExit.
func (d *Daemon) busyStatus(name string) []api.UnitStatus {
	b := &d.busy
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []api.UnitStatus
	for n, u := range b.units {
		if name != "" && n != name && strings.TrimSuffix(n, ".service") != name {
			continue
		}
		out = append(out, api.UnitStatus{Name: n, Sockets: []api.SocketStatus{},
			Service: api.ServiceStatus{State: api.StateFailed, SubState: u.result, Pids: []int{},
				Result: u.result, LastExit: u.cause}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// isAddrInUse reports whether err is a bind that found the address taken.
func isAddrInUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }

// addressOwner names the process that listens on the address err is
// about, as "pid N (comm)", or "" if it cannot tell: it finds the
// socket's inode in /proc/net and the process holding it in /proc/*/fd.
func addressOwner(err error) string {
	msg := err.Error()
	var inodes []string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6", "/proc/net/unix"} {
		inodes = append(inodes, socketInodes(table, msg)...)
	}
	if len(inodes) == 0 {
		return ""
	}
	want := map[uint64]bool{}
	for _, ino := range inodes {
		if n, err := strconv.ParseUint(ino, 10, 64); err == nil {
			want[n] = true
		}
	}
	who := ""
	socketHolders(func(pid int, ino uint64) bool {
		if !want[ino] {
			return true
		}
		who = fmt.Sprintf("pid %d (%s)", pid, commOf(pid))
		return false
	})
	return who
}

// socketHolders calls fn with each process and the inode of each socket
// it holds (from /proc/*/fd), until fn returns false.
func socketHolders(fn func(pid int, ino uint64) bool) {
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		link, err := os.Readlink(fd)
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
		pid, perr := strconv.Atoi(strings.Split(fd, "/")[2])
		if err != nil || perr != nil {
			continue
		}
		if !fn(pid, ino) {
			return
		}
	}
}

// commOf is pid's command name, "" if it is gone.
func commOf(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b))
}

// socketInodes returns the inodes of the listening sockets in a
// /proc/net table whose address appears in msg (a port for IP sockets,
// the path for Unix ones).
func socketInodes(table, msg string) []string {
	f, err := os.Open(table)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if strings.HasSuffix(table, "unix") {
			// Num RefCount Protocol Flags Type St Inode Path
			if len(fs) >= 8 && strings.Contains(msg, " "+fs[7]+":") {
				out = append(out, fs[6])
			}
			continue
		}
		// sl local_address rem_address st … inode (field 9)
		if len(fs) < 10 || (fs[3] != "0A" && !strings.Contains(table, "udp")) {
			continue
		}
		_, portHex, ok := strings.Cut(fs[1], ":")
		port, err := strconv.ParseUint(portHex, 16, 16)
		if ok && err == nil && strings.Contains(msg, ":"+strconv.FormatUint(port, 10)+":") {
			out = append(out, fs[9])
		}
	}
	return out
}

// Waiting lists the units that wait for an address another process
// holds.
func (d *Daemon) Waiting() []string {
	var names []string
	for _, st := range d.busyStatus("") {
		if st.Service.Result == resultAddrInUse {
			names = append(names, st.Name)
		}
	}
	return names
}

// Failed lists the units that could not be opened (address-in-use,
// resources), by name, sorted, with their result and error.
func (d *Daemon) Failed() []api.UnitStatus { return d.busyStatus("") }

// Serving counts the units loaded (listening or running), not those
// Failed lists.
func (d *Daemon) Serving() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.units)
}
