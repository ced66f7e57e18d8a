package supervisord

import (
	"path/filepath"
	"sync"

	"github.com/sockd/sockd/children"
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
	t.mu.Lock()
	defer t.mu.Unlock()
	if u := t.units[n.Pid]; u != nil {
		return u
	}
	if err == nil {
		if u := t.units[pgid]; u != nil {
			return u
		}
	}
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
	ns, err := children.ListenNotify(filepath.Join(d.runDir, "notify.sock"))
	if err != nil {
		return err
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

// deliverNotify hands n to the unit's actor without blocking the router:
// a unit whose actor is gone, or 16 messages behind, loses it.
func (u *unit) deliverNotify(n children.Notification) {
	select {
	case u.notifyC <- n:
	default:
		u.log.Warn().Int("pid", n.Pid).Str("msg", n.Raw).Msg("notify message dropped: unit busy or gone")
	}
}
