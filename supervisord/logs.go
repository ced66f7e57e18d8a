package supervisord

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/units"
)

// DefaultLogBufferBytes is a unit's log ring budget without
// X-LogBufferBytes=.
const DefaultLogBufferBytes = 1 << 20

// logHeader is the bytes stored before each line: time (unix
// nanoseconds, 8), pid (4), line length (4), stream name length (1);
// the stream name follows, then the line.
const logHeader = 8 + 4 + 4 + 1

// logRing keeps a unit's last output lines for `sockctl logs`, within a
// budget of bytes: each line costs its bytes, its stream name's and
// logHeader. Lines live one after the other in one circular byte buffer,
// so a unit's output is one allocation of at most the budget, whatever
// the number of lines; the oldest lines go first when a new one does not
// fit, and a line longer than the whole budget is cut to fit alone.
//
// The buffer grows as lines come, up to the budget: a unit that never
// prints costs nothing. Output goroutines add, API calls read, behind a
// mutex.
type logRing struct {
	mu     sync.Mutex
	budget int
	buf    []byte // circular; byte at position p is buf[p%len(buf)]
	start  uint64 // position of the oldest record
	end    uint64 // position after the newest record
	count  int    // records between start and end
}

func newLogRing(budget int) *logRing { return &logRing{budget: budget} }

// logBudget is svc's log ring budget.
func logBudget(svc *units.Service) int {
	if svc == nil || svc.LogBufferBytes <= 0 {
		return DefaultLogBufferBytes
	}
	return svc.LogBufferBytes
}

func (r *logRing) add(l api.LogLine) {
	stream := l.Stream
	if len(stream) > 255 {
		stream = stream[:255]
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	line := l.Line
	if max := r.budget - logHeader - len(stream); len(line) > max {
		if max < 0 {
			return // a budget smaller than one header keeps nothing
		}
		line = line[:max]
	}
	size := logHeader + len(stream) + len(line)
	for int(r.end-r.start)+size > r.budget {
		r.evictLocked()
	}
	if need := int(r.end-r.start) + size; need > len(r.buf) {
		r.resizeLocked(min(r.budget, max(need, 2*len(r.buf), 4<<10)))
	}
	var h [logHeader]byte
	if !l.Time.IsZero() {
		binary.LittleEndian.PutUint64(h[0:], uint64(l.Time.UnixNano()))
	}
	binary.LittleEndian.PutUint32(h[8:], uint32(l.Pid))
	binary.LittleEndian.PutUint32(h[12:], uint32(len(line)))
	h[16] = byte(len(stream))
	r.put(h[:])
	r.putString(stream)
	r.putString(line)
	r.count++
}

// setBudget changes the budget, dropping the oldest lines that no longer
// fit.
func (r *logRing) setBudget(budget int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.budget = budget
	for int(r.end-r.start) > budget {
		r.evictLocked()
	}
	if len(r.buf) > budget {
		r.resizeLocked(budget)
	}
}

// last returns up to n lines, oldest first.
func (r *logRing) last(n int) []api.LogLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	n = max(0, min(n, r.count))
	p := r.start
	for range r.count - n {
		p += r.recordSize(p)
	}
	out := make([]api.LogLine, 0, n)
	for range n {
		var h [logHeader]byte
		r.get(p, h[:])
		sl, ll := int(h[16]), int(binary.LittleEndian.Uint32(h[12:]))
		stream := make([]byte, sl)
		r.get(p+logHeader, stream)
		line := make([]byte, ll)
		r.get(p+logHeader+uint64(sl), line)
		var t time.Time
		if ns := int64(binary.LittleEndian.Uint64(h[0:])); ns != 0 {
			t = time.Unix(0, ns)
		}
		out = append(out, api.LogLine{
			Time:   t,
			Pid:    int(binary.LittleEndian.Uint32(h[8:])),
			Stream: streamName(stream),
			Line:   string(line),
		})
		p += logHeader + uint64(sl+ll)
	}
	return out
}

// streamName returns the usual stream names without allocating.
func streamName(b []byte) string {
	switch string(b) {
	case "stdout":
		return "stdout"
	case "stderr":
		return "stderr"
	}
	return string(b)
}

// recordSize is the size of the record at position p.
func (r *logRing) recordSize(p uint64) uint64 {
	var h [logHeader]byte
	r.get(p, h[:])
	return logHeader + uint64(h[16]) + uint64(binary.LittleEndian.Uint32(h[12:]))
}

func (r *logRing) evictLocked() {
	r.start += r.recordSize(r.start)
	r.count--
	if r.count == 0 {
		r.start, r.end = 0, 0
	}
}

// resizeLocked moves the records into a buffer of size bytes (at least
// the bytes they take), at the same positions modulo the new size.
func (r *logRing) resizeLocked(size int) {
	var nb []byte
	if size > 0 {
		nb = make([]byte, size)
	}
	for p := r.start; p < r.end; {
		// Copy the longest piece contiguous in both buffers.
		from, to := int(p%uint64(len(r.buf))), int(p%uint64(size))
		k := min(int(r.end-p), len(r.buf)-from, size-to)
		copy(nb[to:to+k], r.buf[from:from+k])
		p += uint64(k)
	}
	r.buf = nb
}

// put appends b at the end; the caller made room.
func (r *logRing) put(b []byte) {
	for len(b) > 0 {
		i := int(r.end % uint64(len(r.buf)))
		k := copy(r.buf[i:], b)
		b = b[k:]
		r.end += uint64(k)
	}
}

func (r *logRing) putString(s string) {
	for len(s) > 0 {
		i := int(r.end % uint64(len(r.buf)))
		k := copy(r.buf[i:], s)
		s = s[k:]
		r.end += uint64(k)
	}
}

// get fills dst from position p.
func (r *logRing) get(p uint64, dst []byte) {
	for len(dst) > 0 {
		i := int(p % uint64(len(r.buf)))
		k := copy(dst, r.buf[i:])
		dst = dst[k:]
		p += uint64(k)
	}
}

// outputLine records one line of a child's output and logs it.
func (u *unit) outputLine(pr *proc, stream, line string) {
	pid := pr.Pid()
	pr.addTail(line)
	u.logs.add(api.LogLine{Time: time.Now(), Pid: pid, Stream: stream, Line: line})
	u.log.Info().Int("pid", pid).Str("stream", stream).Msg(line)
}
