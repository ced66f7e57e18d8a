package supervisord

import (
	"sync"
	"time"

	"github.com/sockd/sockd/api"
)

// logRing keeps a unit's last output lines for `sockctl logs`. It is a
// plain buffer behind a mutex: output goroutines write, API calls read.
// It grows as lines come, up to max: a unit that never prints costs
// nothing (1,000 idle units would otherwise hold 64 MB).
type logRing struct {
	mu    sync.Mutex
	max   int
	lines []api.LogLine
	next  int
	full  bool
}

func newLogRing(n int) *logRing { return &logRing{max: n} }

func (r *logRing) add(l api.LogLine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full && len(r.lines) < r.max {
		r.lines = append(r.lines, l)
		r.next = len(r.lines) % r.max
		r.full = len(r.lines) == r.max
		return
	}
	r.lines[r.next] = l
	r.next = (r.next + 1) % r.max
}

// last returns up to n lines, oldest first.
func (r *logRing) last(n int) []api.LogLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []api.LogLine
	if r.full {
		all = append(all, r.lines[r.next:]...)
	}
	all = append(all, r.lines[:r.next]...)
	if n < len(all) {
		all = all[len(all)-n:]
	}
	return all
}

// outputLine records one line of a child's output and logs it.
func (u *unit) outputLine(pr *proc, stream, line string) {
	pid := pr.Pid()
	pr.addTail(line)
	u.logs.add(api.LogLine{Time: time.Now(), Pid: pid, Stream: stream, Line: line})
	u.log.Info().Int("pid", pid).Str("stream", stream).Msg(line)
}
