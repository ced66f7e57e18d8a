package api

// The logs route: a unit's last output lines, filtered, and, with
// follow=1, the lines that come after them as an NDJSON stream.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Output streams a LogQuery may select.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// LogQuery selects a unit's output lines.
type LogQuery struct {
	// N is how many of the last matching lines to return; 0 means
	// DefaultLogLines.
	N int
	// Since, if not zero, keeps the lines written at or after it.
	Since time.Time
	// Stream, if not "", keeps the lines of that stream only
	// (StreamStdout or StreamStderr).
	Stream string
}

// Match reports whether l passes q's filters (not N).
func (q LogQuery) Match(l LogLine) bool {
	if q.Stream != "" && l.Stream != q.Stream {
		return false
	}
	return q.Since.IsZero() || !l.Time.Before(q.Since)
}

// LogFollower is a unit's output as it comes, from a Backend's
// FollowLogs.
type LogFollower interface {
	// Next returns the lines that matched since the last call (the first
	// call: the last N matching lines, which may be none), waiting
	// until there is at least one. It returns a *LogEndError when the
	// stream ends on the Backend's side (the reader lagged, the unit
	// was removed), and ctx's error when ctx ends first. One goroutine
	// calls it at a time.
	Next(ctx context.Context) ([]LogLine, error)
	// Close ends the follower; lines written after it are not kept for
	// it.
	Close()
}

// Why a log stream ends on the server's side (LogEndError.End).
const (
	LogEndLagged   = "lagged"   // the reader fell behind the unit's log ring
	LogEndRemoved  = "removed"  // the unit is gone (a reload removed it)
	LogEndShutdown = "shutdown" // sockd is stopping
)

// LogEndError is the end of a followed log that neither the reader nor
// its context asked for: the last line of the stream says why.
type LogEndError struct {
	End     string `json:"end"` // one of the LogEnd* constants
	Message string `json:"message"`
}

func (e *LogEndError) Error() string { return "log stream ended: " + e.Message }

// followWriteTimeout bounds one write of a followed log: a client that
// reads nothing for this long is dropped, and its handler goroutine
// freed.
const followWriteTimeout = 30 * time.Second

// logQuery parses the logs route's parameters: n, since (RFC 3339),
// stream (stdout or stderr).
func logQuery(r *http.Request) (LogQuery, error) {
	q := LogQuery{N: DefaultLogLines}
	v := r.URL.Query()
	if v.Has("n") {
		n, err := strconv.Atoi(v.Get("n"))
		if err != nil || n < 1 || n > MaxLogLines {
			return q, &FieldError{Field: "n", Message: fmt.Sprintf("must be an integer from 1 to %d, not %q", MaxLogLines, v.Get("n"))}
		}
		q.N = n
	}
	if v.Has("since") {
		t, err := time.Parse(time.RFC3339Nano, v.Get("since"))
		if err != nil {
			return q, &FieldError{Field: "since", Message: fmt.Sprintf("must be an RFC 3339 time, not %q", v.Get("since"))}
		}
		q.Since = t
	}
	if v.Has("stream") {
		switch s := v.Get("stream"); s {
		case StreamStdout, StreamStderr:
			q.Stream = s
		default:
			return q, &FieldError{Field: "stream", Message: fmt.Sprintf("must be stdout or stderr, not %q", s)}
		}
	}
	return q, nil
}

func (s *Server) logs(w http.ResponseWriter, r *http.Request) error {
	q, err := logQuery(r)
	if err != nil {
		return err
	}
	follow := false
	if v := r.URL.Query(); v.Has("follow") {
		if follow, err = strconv.ParseBool(v.Get("follow")); err != nil {
			return &FieldError{Field: "follow", Message: fmt.Sprintf("must be a boolean, not %q", v.Get("follow"))}
		}
	}
	name, err := unitName(r)
	if err != nil {
		return err
	}
	if follow {
		return s.followLogs(w, r, name, q)
	}
	lines, err := s.Backend.Logs(r.Context(), name, q)
	if err != nil {
		return err
	}
	if lines == nil {
		lines = []LogLine{}
	}
	writeJSON(w, http.StatusOK, lines)
	return nil
}

// followLogs streams name's log as NDJSON: one LogLine per line, until
// the client goes, the follower ends (a last LogEndError line), or the
// server shuts down (a last "shutdown" line).
func (s *Server) followLogs(w http.ResponseWriter, r *http.Request, name string, q LogQuery) error {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := s.streams.done() // Shutdown ends the answer now, not at its deadline
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	f, err := s.Backend.FollowLogs(ctx, name, q)
	if err != nil {
		return err
	}
	defer f.Close()
	st := &stream{w: w, rc: http.NewResponseController(w)}
	st.rc.SetWriteDeadline(time.Now().Add(followWriteTimeout))
	st.open()
	for {
		lines, err := f.Next(ctx)
		var end *LogEndError
		switch {
		case errors.As(err, &end):
			st.line(end)
			return nil
		case err != nil && r.Context().Err() == nil:
			st.line(&LogEndError{End: LogEndShutdown, Message: "sockd is shutting down"})
			return nil
		case err != nil:
			return nil // the client went
		}
		for _, l := range lines {
			st.rc.SetWriteDeadline(time.Now().Add(followWriteTimeout))
			if !st.line(l) {
				return nil
			}
		}
	}
}

// Logs returns up to q.N (0: DefaultLogLines) of unit's last output
// lines that match q's filters, oldest first.
func (c *Client) Logs(ctx context.Context, unit string, q LogQuery) ([]LogLine, error) {
	p, err := logsPath(unit, q, false)
	if err != nil {
		return nil, err
	}
	var lines []LogLine
	err = c.do(ctx, http.MethodGet, p, nil, &lines, http.StatusOK)
	return lines, err
}

// FollowLogs calls fn with unit's last q.N matching lines, then with each
// matching line as the unit writes it, until ctx ends (it then returns
// ctx's error) or sockd ends the stream (a *LogEndError: the reader
// lagged, the unit was removed, sockd is stopping).
func (c *Client) FollowLogs(ctx context.Context, unit string, q LogQuery, fn func(LogLine)) error {
	p, err := logsPath(unit, q, true)
	if err != nil {
		return err
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
	for {
		var line struct {
			LogLine
			End     string `json:"end"`
			Message string `json:"message"`
			errorBody
		}
		if err := dec.Decode(&line); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("follow logs of %s: %w", unit, err)
		}
		switch {
		case line.End != "":
			return &LogEndError{End: line.End, Message: line.Message}
		case line.Error != "":
			return &Error{Status: line.Status, Message: line.Error, Field: line.Field}
		}
		fn(line.LogLine)
	}
}

// logsPath is the logs route of unit with q's parameters.
func logsPath(unit string, q LogQuery, follow bool) (string, error) {
	p, err := unitPath(unit, "logs")
	if err != nil {
		return "", err
	}
	v := url.Values{}
	if q.N != 0 {
		v.Set("n", strconv.Itoa(q.N))
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.Format(time.RFC3339Nano))
	}
	if q.Stream != "" {
		v.Set("stream", q.Stream)
	}
	if follow {
		v.Set("follow", "1")
	}
	if len(v) > 0 {
		p += "?" + v.Encode()
	}
	return p, nil
}
