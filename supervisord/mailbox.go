package supervisord

// A unit's sd_notify messages, between the notify socket's router and
// the unit's actor. The router never waits, and no state message is
// lost: STATUS= keeps only its latest value, WATCHDOG=1 pings fold into
// one, identical state messages in a row into one, and what a sender
// has queued stays bounded however much it sends.

import (
	"sort"
	"strings"
	"sync"

	"github.com/sockd/sockd/children"
)

const (
	// maxQueued is how many state messages of one sender wait at most;
	// past it they merge, the latest value of each field winning.
	maxQueued = 16
	// maxSenders is how many processes of one unit may have messages
	// waiting; a unit that forks more loses the newest senders' messages.
	maxSenders = 256
)

// mailbox holds the messages routed to one unit until its actor takes
// them. wake has a value whenever something waits.
type mailbox struct {
	mu      sync.Mutex
	senders map[int]*senderNotes
	order   []int // senders in the order of their first waiting message
	wake    chan struct{}
	dropped int // messages refused because of maxSenders
}

// senderNotes is what one sender has waiting.
type senderNotes struct {
	uid    int
	state  []map[string]string // state messages, oldest first
	status *string             // the latest STATUS=
	ping   bool                // WATCHDOG=1
}

func newMailbox() *mailbox {
	return &mailbox{wake: make(chan struct{}, 1)} // senders: made at the first message
}

// put queues n; it never blocks.
func (m *mailbox) put(n children.Notification) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.senders[n.Pid]
	if m.senders == nil {
		m.senders = map[int]*senderNotes{}
	}
	if s == nil {
		if len(m.senders) >= maxSenders {
			m.dropped++
			return
		}
		s = &senderNotes{uid: n.UID}
		m.senders[n.Pid] = s
		m.order = append(m.order, n.Pid)
	}
	state := map[string]string{}
	for k, v := range n.Fields {
		switch {
		case k == "STATUS":
			v := v
			s.status = &v
		case k == "WATCHDOG" && v == "1":
			s.ping = true
		default:
			state[k] = v
		}
	}
	if len(state) > 0 {
		switch {
		case len(s.state) > 0 && sameFields(s.state[len(s.state)-1], state):
			// the same message again: once is enough
		case len(s.state) == maxQueued:
			merged := map[string]string{}
			for _, f := range append(s.state, state) {
				for k, v := range f {
					merged[k] = v
				}
			}
			s.state = []map[string]string{merged}
		default:
			s.state = append(s.state, state)
		}
	}
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// take returns what waits, as notifications in the order they came
// (per sender), and empties the mailbox.
func (m *mailbox) take() []children.Notification {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []children.Notification
	for _, pid := range m.order {
		s := m.senders[pid]
		for i, f := range s.state {
			if i == len(s.state)-1 {
				f = withNonState(f, s)
			}
			out = append(out, note(pid, s.uid, f))
		}
		if len(s.state) == 0 {
			out = append(out, note(pid, s.uid, withNonState(map[string]string{}, s)))
		}
	}
	m.senders, m.order = nil, nil
	return out
}

// withNonState adds the sender's latest STATUS= and its ping to f.
func withNonState(f map[string]string, s *senderNotes) map[string]string {
	if s.status != nil {
		f["STATUS"] = *s.status
	}
	if s.ping {
		f["WATCHDOG"] = "1"
	}
	return f
}

func note(pid, uid int, f map[string]string) children.Notification {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var raw []string
	for _, k := range keys {
		raw = append(raw, k+"="+f[k])
	}
	return children.Notification{Pid: pid, UID: uid, Fields: f, Raw: strings.Join(raw, "\n")}
}

func sameFields(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
