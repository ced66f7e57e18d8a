package api

// The event stream: GET /v1/events[?unit=NAME] answers with the unit's
// lifecycle events as NDJSON, one UnitEvent a line, flushed each, for as
// long as the client reads. It must never slow sockd: the Backend drops a
// subscriber that falls behind (its last event is "lagged"), and each
// write to the client is bounded (StreamWriteTimeout), so a client that
// stops reading loses its stream and its subscription, whatever the
// kernel buffers.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// DefaultStreamWriteTimeout is how long one write of an event stream may
// wait for a client that does not read.
const DefaultStreamWriteTimeout = 10 * time.Second

// ErrLagged is what Client.Events returns when sockd dropped the stream
// because the reader did not keep up (after an EventLagged).
var ErrLagged = errors.New("event stream dropped by sockd: the reader did not keep up")

// streamStop is closed when the server shuts down, to end the answers
// that never end by themselves.
type streamStop struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *streamStop) done() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *streamStop) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	select {
	case <-s.ch:
	default:
		close(s.ch)
	}
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) error {
	unit := ""
	if q := r.URL.Query(); q.Has("unit") {
		name, err := checkUnitName(q.Get("unit"))
		if err != nil {
			return err
		}
		unit = name
	}
	evs, cancel, err := s.Backend.Events(r.Context(), unit)
	if err != nil {
		return err
	}
	defer cancel()
	timeout := s.StreamWriteTimeout
	if timeout <= 0 {
		timeout = DefaultStreamWriteTimeout
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	// An event stream ends only when something went wrong (a lag, a
	// client that does not read, a shutdown): the connection goes too.
	h.Set("Connection", "close")
	rc.SetWriteDeadline(time.Now().Add(timeout)) // fails only without a conn (tests)
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return nil // the client has gone
	}
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				return nil // canceled by the backend
			}
			b, err := json.Marshal(ev)
			if err != nil {
				continue // cannot happen with UnitEvent
			}
			rc.SetWriteDeadline(time.Now().Add(timeout))
			_, err = w.Write(append(b, '\n'))
			if err == nil {
				err = rc.Flush()
			}
			if err != nil {
				lg := s.Log.Info().Str("path", r.URL.Path).Str("unit", unit).Err(err)
				logPeer(lg, r.Context()).Msg("event stream ended: the client does not read")
				return nil
			}
			if ev.Kind == EventLagged {
				lg := s.Log.Info().Str("path", r.URL.Path).Str("unit", unit)
				logPeer(lg, r.Context()).Msg("event stream dropped: the client did not keep up")
				return nil
			}
		case <-r.Context().Done():
			return nil
		case <-s.streams.done():
			return nil
		}
	}
}

// Events follows the lifecycle events of unit ("" for every unit's, and
// sockd's own), calling fn with each as it comes, the first being
// EventSubscribed. It returns when ctx ends (ctx's error), when fn
// returns an error (that error), or when sockd ends the stream: ErrLagged
// after an EventLagged (which fn got), else an error wrapping
// io.ErrUnexpectedEOF (sockd stopped).
func (c *Client) Events(ctx context.Context, unit string, fn func(UnitEvent) error) error {
	p := "/v1/events"
	if unit != "" {
		if _, err := checkUnitName(unit); err != nil {
			return err
		}
		p += "?unit=" + url.QueryEscape(unit)
	}
	resp, err := c.send(ctx, http.MethodGet, p, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return readError(resp)
	}
	dec := json.NewDecoder(resp.Body)
	lagged := false
	for {
		var ev UnitEvent
		if err := dec.Decode(&ev); err != nil {
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case lagged:
				return ErrLagged
			case err == io.EOF:
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("events: sockd ended the stream: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
		lagged = ev.Kind == EventLagged
	}
}
