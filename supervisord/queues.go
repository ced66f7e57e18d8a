package supervisord

import (
	"slices"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/sockdiag"
)

// fillQueues sets QueueDepth and Backlog of the listening sockets in
// sts, which the actors of hs (hs[i] answered sts[i]) returned: one
// sock_diag dump for all of them, read when the status is asked for and
// never otherwise. It runs in the Daemon, after the actors replied, and
// gives each status its own copy of Sockets (an actor's slice is shared:
// it must not be written in place). A socket that is closed, is not a
// listening stream or seqpacket socket, or that the dump did not find
// keeps QueueDepth nil.
func (d *Daemon) fillQueues(sts []api.UnitStatus, hs []*handle) {
	inodes := make([][]uint64, len(sts))
	some := false
	for i := range sts {
		inodes[i] = listenerInodes(hs[i], sts[i].Sockets)
		some = some || len(inodes[i]) > 0
	}
	if !some {
		return
	}
	qs, err := sockdiag.Listeners()
	if err != nil {
		// Partial: the families that answered still count.
		d.log.Debug().Err(err).Msg("accept queues: sock_diag")
	}
	if len(qs) == 0 {
		return
	}
	for i := range sts {
		if len(inodes[i]) == 0 {
			continue
		}
		socks := slices.Clone(sts[i].Sockets)
		for k, ino := range inodes[i] {
			q, ok := qs[ino]
			if ino == 0 || !ok {
				continue
			}
			depth := q.Depth
			socks[k].QueueDepth, socks[k].Backlog = &depth, q.Backlog
		}
		sts[i].Sockets = socks
	}
}

// listenerInodes returns the inodes of h's listeners, one per entry of
// st (0 where unknown), or nil if h has none to read. The listeners are
// read under the handle's lock after the actor answered: st[k] is paired
// with listener k only if that listener still has st[k]'s address, so a
// socket replaced in between is left unknown rather than misread.
func listenerInodes(h *handle, st []api.SocketStatus) []uint64 {
	if h == nil || len(st) == 0 {
		return nil
	}
	h.mu.Lock()
	ls := h.ls
	h.mu.Unlock()
	if len(ls) != len(st) {
		return nil
	}
	var out []uint64
	for k, l := range ls {
		if st[k].Closed || l.Addr() != st[k].Listen || l.Inode() == 0 {
			continue
		}
		if out == nil {
			out = make([]uint64, len(st))
		}
		out[k] = l.Inode()
	}
	return out
}
