package fdholder

// ring keeps the last MaxOutput bytes written to it and counts the ones
// it dropped to make room. Its buffer is allocated with the first byte,
// so a pipe that stays quiet costs nothing.
type ring struct {
	buf      []byte // nil, or MaxOutput bytes
	start, n int    // the kept bytes: n of them from buf[start], wrapping
	dropped  int64
}

func (r *ring) write(p []byte) {
	if len(p) == 0 {
		return
	}
	if r.buf == nil {
		r.buf = make([]byte, MaxOutput)
	}
	if len(p) > len(r.buf) {
		r.dropped += int64(len(p) - len(r.buf))
		p = p[len(p)-len(r.buf):]
	}
	if over := r.n + len(p) - len(r.buf); over > 0 { // drop the oldest
		r.start = (r.start + over) % len(r.buf)
		r.n -= over
		r.dropped += int64(over)
	}
	end := (r.start + r.n) % len(r.buf)
	c := copy(r.buf[end:], p)
	copy(r.buf, p[c:])
	r.n += len(p)
}

func (r *ring) empty() bool { return r.n == 0 && r.dropped == 0 }

// bytes returns a copy of the kept bytes, oldest first.
func (r *ring) bytes() []byte {
	out := make([]byte, r.n)
	c := copy(out, r.buf[r.start:min(r.start+r.n, len(r.buf))])
	copy(out[c:], r.buf[:r.n-c])
	return out
}

// reset forgets everything, the buffer included.
func (r *ring) reset() { *r = ring{} }
