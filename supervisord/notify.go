package supervisord

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/units"
)

// sockd has one NOTIFY_SOCKET for all units, as systemd has: every
// message carries its sender's pid (SCM_CREDENTIALS), and pidTable maps
// pids to units. A message from a process sockd did not start is routed
// by its process group (a gunicorn worker, with NotifyAccess=all); the
// unit's actor then applies NotifyAccess=.

// pidTable maps the pids of the children sockd started to their units.
// A message may arrive before its sender's pid is added (a fast child
// notifies while the actor is still returning from the spawn): it waits
// in pending, bounded, until add delivers it.
type pidTable struct {
	mu      sync.Mutex
	units   map[int]*unit
	pending []pendingNote
	// cgBase and byCgroup route a message whose sender's pid and
	// process group are unknown by its cgroup (cgroup.go); cgBase is ""
	// without cgroups.
	cgBase   string
	byCgroup map[string]*unit
}

type pendingNote struct {
	pid, pgid int // the sender and its process group (0 if unknown)
	n         children.Notification
}

const maxPending = 64

func newPidTable() *pidTable { return &pidTable{units: map[int]*unit{}} }

// add maps pid to u and returns the messages that came for pid before.
func (t *pidTable) add(pid int, u *unit) []children.Notification {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.units[pid] = u
	var out []children.Notification
	kept := t.pending[:0]
	for _, p := range t.pending {
		if p.pid == pid || p.pgid == pid {
			out = append(out, p.n)
		} else {
			kept = append(kept, p)
		}
	}
	t.pending = kept
	return out
}

// owner returns the unit pid belongs to, or nil.
func (t *pidTable) owner(pid int) *unit {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.units[pid]
}

func (t *pidTable) remove(pid int, u *unit) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.units[pid] == u {
		delete(t.units, pid)
	}
}

// route finds the unit of n's sender, by pid and then by process group;
// it keeps n pending when neither is known yet.
func (t *pidTable) route(n children.Notification) *unit {
	pgid, err := getpgid(n.Pid)
	cgPath := ""
	for try := 0; ; try++ {
		t.mu.Lock()
		if u := t.units[n.Pid]; u != nil {
			t.mu.Unlock()
			return u
		}
		if err == nil {
			if u := t.units[pgid]; u != nil {
				t.mu.Unlock()
				return u
			}
		}
		if u := t.byCgroupLocked(cgPath); u != nil {
			t.mu.Unlock()
			return u
		}
		if try > 0 || t.cgBase == "" {
			break
		}
		// Then by its cgroup, read once, outside the lock.
		t.mu.Unlock()
		cgPath = cgroupOf(n.Pid)
	}
	defer t.mu.Unlock()
	if err != nil {
		pgid = 0
	}
	if len(t.pending) == maxPending {
		t.pending = t.pending[1:]
	}
	t.pending = append(t.pending, pendingNote{n.Pid, pgid, n})
	return nil
}

// listenNotify opens the daemon's NOTIFY_SOCKET and routes what arrives
// to the units' actors until it is closed.
func (d *Daemon) listenNotify() error {
	held, _ := d.keep.take(notifyName)
	ns, err := children.ListenNotifyHeld(filepath.Join(d.runDir, "notify.sock"), held)
	if err != nil {
		return err
	}
	if f, err := ns.File(); err == nil {
		d.keep.put(notifyName, f)
		f.Close()
	}
	d.notify = ns
	d.notifyDone = make(chan struct{})
	go func() {
		defer close(d.notifyDone)
		for n := range ns.C() {
			if u := d.pids.route(n); u != nil {
				u.deliverNotify(n)
			}
		}
	}()
	return nil
}

// deliverNotify hands n to the unit's actor without blocking the router
// (see mailbox).
func (u *unit) deliverNotify(n children.Notification) {
	u.mail.put(n)
	u.park.poke()
}

// notification applies one sd_notify message from one of the unit's
// processes, as NotifyAccess= allows.
func (u *unit) notification(n children.Notification) {
	p := u.notifySender(n.Pid)
	if p == nil {
		u.log.Debug().Int("pid", n.Pid).Str("msg", n.Raw).Msg("notify message from a foreign process ignored")
		return
	}
	if v, ok := n.Fields["MAINPID"]; ok {
		pid, err := strconv.Atoi(v)
		switch {
		case err != nil || pid <= 0:
			u.log.Warn().Int("pid", n.Pid).Str("MAINPID", v).Msg("notify: MAINPID= is not a pid; ignored")
		case pid == p.mainPid:
		case u.refuseMainPID(n, pid) != "":
			u.log.Warn().Int("pid", n.Pid).Int("uid", n.UID).Int("MAINPID", pid).Str("why", u.refuseMainPID(n, pid)).
				Msg("notify: MAINPID= refused")
		default:
			if p.mainPid != p.Pid() {
				u.pids.remove(p.mainPid, u)
			}
			p.mainPid = pid
			for _, n := range u.pids.add(pid, u) {
				u.deliverNotify(n)
			}
		}
	}
	if v, ok := n.Fields["STATUS"]; ok {
		p.status = v
	}
	if v, ok := n.Fields["WATCHDOG_USEC"]; ok && !p.stopping && !p.exited {
		// As systemd: the process may set (or, with 0, turn off) its
		// watchdog at run time.
		if usec, err := strconv.ParseUint(v, 10, 63); err == nil {
			if usec == 0 {
				p.wdInterval = -1
				if p.wdTimer != nil {
					p.wdTimer.Stop()
				}
				p.wdTok = 0
			} else {
				p.wdInterval = time.Duration(usec) * time.Microsecond
				u.armWatchdog(p)
			}
		}
	}
	switch n.Fields["WATCHDOG"] {
	case "1":
		if !p.stopping && !p.exited && p.wdTok != 0 {
			u.armWatchdog(p)
		}
	case "trigger":
		if p.wdTok != 0 || u.watchdogInterval(p) > 0 {
			u.dispatch(event{kind: evWatchdog, p: p, tok: p.wdTok})
		}
	}
	if n.Fields["RELOADING"] == "1" {
		u.dispatch(event{kind: evReloading, p: p})
	}
	if n.Fields["STOPPING"] == "1" {
		u.dispatch(event{kind: evStopping, p: p})
	}
	if n.Fields["READY"] == "1" {
		u.dispatch(event{kind: evReady, p: p})
	}
}

// refuseMainPID says why MAINPID=pid from n's sender is refused, or "".
// Never pid 1, sockd itself, or a process of another unit; from a sender
// that is not root, only a process of the unit (one of its processes, or
// in the process group of one), as systemd allows. A root sender could
// signal any process itself: it is trusted with the rest.
func (u *unit) refuseMainPID(n children.Notification, pid int) string {
	switch {
	case pid == 1:
		return "pid 1"
	case pid == os.Getpid():
		return "sockd itself"
	}
	if owner := u.pids.owner(pid); owner != nil && owner != u {
		return "a process of " + owner.name
	}
	if n.UID == 0 {
		return ""
	}
	if !u.hasProcess(pid) {
		return "not a process of this unit (from a sender that is not root)"
	}
	return ""
}

// hasProcess reports whether pid is one of the unit's processes or in
// the process group of one.
func (u *unit) hasProcess(pid int) bool {
	all := u.processes()
	pgid, err := getpgid(pid)
	for _, p := range all {
		if p == nil {
			continue
		}
		if p.Pid() == pid || p.mainPid == pid || err == nil && pgid == p.Pid() {
			return true
		}
	}
	return u.procByCgroup(pid) != nil
}

// notifyReloading: the app said RELOADING=1; READY=1 ends it.
func (u *unit) notifyReloading(event) { u.enter(phaseReloading) }

// notifyStopping: the app said STOPPING=1; it exits soon, and Restart=
// decides then.
func (u *unit) notifyStopping(event) { u.enter(phaseStopping) }

// notifySender finds the process a notify message came from, as
// NotifyAccess= allows: main (the main pid), exec/all (anything in the
// process group of one of the unit's processes).
func (u *unit) notifySender(pid int) *proc {
	access := u.svc.NotifyAccess
	if access == "" || access == units.NotifyNone || pid <= 0 {
		return nil
	}
	all := u.processes()
	for _, p := range all {
		if p != nil && (p.mainPid == pid || p.Pid() == pid) {
			return p
		}
	}
	if access == units.NotifyMain {
		return nil
	}
	pgid, err := getpgid(pid)
	if err == nil {
		for _, p := range all {
			if p != nil && p.Pid() == pgid {
				return p
			}
		}
	}
	return u.procByCgroup(pid)
}

// processes lists every live process of the unit: its slots (nil for an
// empty one), those draining, and a restart's new one.
func (u *unit) processes() []*proc {
	all := append(append([]*proc{}, u.slots...), u.draining...)
	if u.job != nil && u.job.newProc != nil {
		all = append(all, u.job.newProc)
	}
	return all
}
