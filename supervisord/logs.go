package supervisord

import (
	"sync"
	"time"

	"github.com/sockd/sockd/api"
)

// logRing keeps a unit's last output lines for `sockctl logs`. It is a
// plain buffer behind a mutex: output goroutines write, API calls read.
type logRing struct {
	mu    sync.Mutex
	lines []api.LogLine
	next  int
	full  bool
}

func newLogRing(n int) *logRing { return &logRing{lines: make([]api.LogLine, n)} }

func (r *logRing) add(l api.LogLine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines[r.next] = l
	r.next++
	if r.next == len(r.lines) {
		r.next, r.full = 0, true
	}
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
