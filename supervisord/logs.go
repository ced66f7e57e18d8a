package supervisord

import (
	"context"
	"encoding/binary"
	"sync"
	"time"

	"github.com/rs/zerolog"

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
//
// Positions only grow, so a position names one record for good: a
// follower (sockctl logs -f) is a position in the ring, which it reads
// on from when add wakes it. It costs add one non-blocking send, and
// never holds a line itself; one that falls so far behind that its
// position was evicted has lagged, and is dropped.
type logRing struct {
	mu     sync.Mutex
	budget int
	buf    []byte // circular; byte at position p is buf[p%len(buf)]
	start  uint64 // position of the oldest record
	end    uint64 // position after the newest record
	count  int    // records between start and end
	subs   map[*logFollower]struct{}
	closed bool // the unit is gone: followers end
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
		// From 256 bytes: a tenant that printed one line keeps a small
		// ring after it stops, not 4 KiB.
		r.resizeLocked(min(r.budget, max(need, 2*len(r.buf), 256)))
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
	for f := range r.subs {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
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
func (r *logRing) last(n int) []api.LogLine { return r.query(api.LogQuery{N: n}) }

// query returns the last q.N lines that match q, oldest first.
func (r *logRing) query(q api.LogQuery) []api.LogLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.queryLocked(q)
}

func (r *logRing) queryLocked(q api.LogQuery) []api.LogLine {
	n := max(0, min(q.N, r.count))
	if n == 0 {
		return nil
	}
	// The positions of the matching records, then the last n of them.
	var at []uint64
	for p := r.start; p < r.end; p += r.recordSize(p) {
		if r.matchAt(p, q) {
			at = append(at, p)
		}
	}
	at = at[max(0, len(at)-n):]
	out := make([]api.LogLine, 0, len(at))
	for _, p := range at {
		l, _ := r.recordAt(p)
		out = append(out, l)
	}
	return out
}

// matchAt reports whether the record at p passes q's filters, from its
// header and stream name alone.
func (r *logRing) matchAt(p uint64, q api.LogQuery) bool {
	if q.Since.IsZero() && q.Stream == "" {
		return true
	}
	var h [logHeader]byte
	r.get(p, h[:])
	if ns := int64(binary.LittleEndian.Uint64(h[0:])); !q.Since.IsZero() && (ns == 0 || ns < q.Since.UnixNano()) {
		return false
	}
	if q.Stream != "" {
		sl := int(h[16])
		if sl != len(q.Stream) {
			return false
		}
		var name [255]byte
		r.get(p+logHeader, name[:sl])
		return string(name[:sl]) == q.Stream
	}
	return true
}

// recordAt decodes the record at p and returns it with its size.
func (r *logRing) recordAt(p uint64) (api.LogLine, uint64) {
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
	return api.LogLine{
		Time:   t,
		Pid:    int(binary.LittleEndian.Uint32(h[8:])),
		Stream: streamName(stream),
		Line:   string(line),
	}, logHeader + uint64(sl+ll)
}

// followBatch bounds the bytes of lines one logFollower.Next returns.
const followBatch = 256 << 10

// logFollower reads a logRing from a position on (see logRing).
type logFollower struct {
	r       *logRing
	q       api.LogQuery
	wake    chan struct{} // 1-buffered: add has written since the last read
	backlog []api.LogLine // what the first Next returns
	first   bool
	pos     uint64 // the next record to read
}

// follow returns a follower of r whose first Next gives the last q.N
// lines matching q, and the next ones the lines added after them.
func (r *logRing) follow(q api.LogQuery) *logFollower {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := &logFollower{r: r, q: q, wake: make(chan struct{}, 1), backlog: r.queryLocked(q), first: true, pos: r.end}
	if r.subs == nil {
		r.subs = map[*logFollower]struct{}{}
	}
	r.subs[f] = struct{}{}
	return f
}

// Next implements api.LogFollower.
func (f *logFollower) Next(ctx context.Context) ([]api.LogLine, error) {
	if f.first {
		f.first = false
		if b := f.backlog; len(b) > 0 {
			f.backlog = nil
			return b, nil
		}
	}
	for {
		lines, err := f.read()
		if err != nil || len(lines) > 0 {
			return lines, err
		}
		select {
		case <-f.wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// read returns the matching lines from f's position on, at most
// followBatch bytes of them.
func (f *logFollower) read() ([]api.LogLine, error) {
	r := f.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.subs[f]; !ok {
		return nil, &api.LogEndError{End: api.LogEndRemoved, Message: "the follower was closed"}
	}
	if f.pos < r.start {
		delete(r.subs, f)
		return nil, &api.LogEndError{End: api.LogEndLagged, Message: "the reader fell behind the unit's log ring: lines from here on are lost to it"}
	}
	var out []api.LogLine
	size := 0
	for f.pos < r.end && size < followBatch {
		if !r.matchAt(f.pos, f.q) {
			f.pos += r.recordSize(f.pos)
			continue
		}
		l, n := r.recordAt(f.pos)
		f.pos += n
		size += int(n)
		out = append(out, l)
	}
	if len(out) == 0 && r.closed {
		delete(r.subs, f)
		return nil, &api.LogEndError{End: api.LogEndRemoved, Message: "the unit was removed"}
	}
	return out, nil
}

// Close implements api.LogFollower.
func (f *logFollower) Close() {
	f.r.mu.Lock()
	defer f.r.mu.Unlock()
	delete(f.r.subs, f)
}

// close ends r's followers, once they have read what is left: the unit
// is gone.
func (r *logRing) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for f := range r.subs {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
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

// OutputLine is one line of output of a unit's process, as
// Config.Output gets it.
type OutputLine struct {
	Unit string // the unit whose log ring has it: "app.service", "echo@.service"
	// Instance is the Accept=yes instance that printed it
	// ("echo@3-….service"); "" for any other unit.
	Instance string
	// Command is the Exec*= list of a helper command ("ExecStartPre");
	// "" for the service's own processes.
	Command string
	api.LogLine
}

// output sends l to the Config.Output of h's daemon, else to sockd's
// log (log, which names the unit).
func (h *handle) output(log *zerolog.Logger, l OutputLine) {
	if h.out != nil {
		h.out(l)
		return
	}
	ev := log.Info()
	if l.Command != "" {
		ev = ev.Str("command", l.Command)
	}
	if l.Pid != 0 {
		ev = ev.Int("pid", l.Pid)
	}
	ev.Str("stream", l.Stream).Msg(l.Line)
}

// outputLine records one line of a child's output and logs it.
func (u *unit) outputLine(pr *proc, stream, line string) {
	pr.addTail(line)
	l := api.LogLine{Time: time.Now(), Pid: pr.linePid(), Stream: stream, Line: line}
	u.logs.add(l)
	u.output(&u.log, OutputLine{Unit: u.name, LogLine: l})
}
