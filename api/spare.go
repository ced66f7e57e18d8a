package api

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// spareListener keeps the API answering when the daemon is out of file
// descriptors. It holds one spare fd (/dev/null); when accept fails with
// EMFILE or ENFILE, it closes the spare and accepts again, so the
// connection takes the spare's place and is served. While that
// connection lives there is no spare: Accept waits for a connection to
// close (the server's ConnState tells, through freed) or, at most, for
// a back-off, and then tries again; it never returns EMFILE, which
// would have http.Server retry in a loop and log every time, and never
// spins. The spare is opened again before each accept.
type spareListener struct {
	net.Listener
	log   zerolog.Logger
	freed <-chan struct{} // a connection closed
	done  chan struct{}   // closed by Close

	mu      sync.Mutex
	spare   *os.File
	lent    net.Conn // the connection in the spare's place, until the next accept
	atLimit bool     // logged that the limit was reached, not yet that it passed
	once    sync.Once
}

// spareBackoffMax bounds the wait for an fd when no connection closes.
const spareBackoffMax = time.Second

func newSpareListener(l net.Listener, freed <-chan struct{}, log zerolog.Logger) *spareListener {
	s := &spareListener{Listener: l, log: log, freed: freed, done: make(chan struct{})}
	s.refill()
	return s
}

// refill opens the spare if it is lent out, and reports whether there
// is one.
func (s *spareListener) refill() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spare == nil {
		f, err := os.Open(os.DevNull) // close-on-exec
		if err != nil {
			return false
		}
		s.spare = f
	}
	return true
}

// lend closes the spare, freeing its fd for a connection; false if there
// was none.
func (s *spareListener) lend() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spare == nil {
		return false
	}
	s.spare.Close()
	s.spare = nil
	return true
}

func (s *spareListener) Accept() (net.Conn, error) {
	wait := 10 * time.Millisecond
	for {
		spare := s.refill()
		c, err := s.Listener.Accept()
		if err == nil {
			s.passed(spare)
			return c, nil
		}
		if !isTooManyFiles(err) {
			return nil, err
		}
		s.reached(err)
		if s.lend() {
			c, err = s.Listener.Accept()
			if err == nil {
				s.mu.Lock()
				s.lent = c // in the spare's place
				s.mu.Unlock()
				return c, nil
			}
			if !isTooManyFiles(err) {
				return nil, err
			}
			// Another goroutine took the fd first: wait as below.
		}
		t := time.NewTimer(wait)
		select {
		case <-s.freed:
		case <-t.C:
		case <-s.done:
			t.Stop()
			return nil, net.ErrClosed
		}
		t.Stop()
		wait = min(2*wait, spareBackoffMax)
	}
}

// reached logs, once until it passes, that the limit was reached.
func (s *spareListener) reached(err error) {
	s.mu.Lock()
	first := !s.atLimit
	s.atLimit = true
	s.mu.Unlock()
	if first {
		s.log.Error().Err(err).Str("api", s.Addr().String()).
			Msg("api: out of file descriptors: answering one connection at a time on a spare fd")
	}
}

// passed logs that accept works again, with a spare in reserve.
func (s *spareListener) passed(spare bool) {
	if !spare {
		return
	}
	s.mu.Lock()
	was := s.atLimit
	s.atLimit = false
	s.mu.Unlock()
	if was {
		s.log.Info().Str("api", s.Addr().String()).Msg("api: file descriptors available again")
	}
}

// onSpare reports whether c was accepted in the spare's place: the
// server closes it after its answer, so that an idle client does not
// keep the only fd others would be served on.
func (s *spareListener) onSpare(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return c != nil && c == s.lent
}

func (s *spareListener) Close() error {
	s.once.Do(func() { close(s.done) })
	s.mu.Lock()
	if s.spare != nil {
		s.spare.Close()
		s.spare = nil
	}
	s.mu.Unlock()
	return s.Listener.Close()
}

// isTooManyFiles reports whether err is the process's (EMFILE) or the
// system's (ENFILE) fd limit.
func isTooManyFiles(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
