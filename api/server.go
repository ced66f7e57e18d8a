package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sockd/sockd/internal/sockfile"
)

// Server serves a Backend over HTTP+JSON. Set its fields, then call Serve
// once per listener; Shutdown ends it. A Server is not reusable after
// Shutdown.
type Server struct {
	Backend Backend
	Log     zerolog.Logger
	// Version is what GET /v1/version reports as the daemon's version.
	Version string
	// Access says which peers may use which routes; its zero value lets
	// in root and the server's own uid only.
	Access Access
	// BodyTimeout bounds the reading of a request's body, from the end
	// of its header (which ReadHeaderTimeout bounds); 0 means
	// DefaultBodyTimeout. A client that is slower gets a 408.
	BodyTimeout time.Duration
	// Started is when the daemon's image started (VersionInfo.Started).
	Started time.Time
	// Warnings, if set, returns the daemon's own problems for
	// VersionInfo.Warnings.
	Warnings func() []string
	// Reexec, if set, serves POST /v1/daemon-reexec: it checks and
	// readies the daemon to exec itself and returns commit, which the
	// server calls once the answer has gone out (commit execs, and
	// returns only if that failed). Without it the route answers 501.
	Reexec func(ctx context.Context) (commit func(), err error)
	// Metrics, if set, serves GET /metrics (the Prometheus text
	// format), a read route; without it the route answers 404.
	Metrics http.Handler
	// StreamWriteTimeout bounds each write of an event stream to its
	// client; 0 means DefaultStreamWriteTimeout. A client that does not
	// read for that long is dropped (eventstream.go).
	StreamWriteTimeout time.Duration

	mu       sync.Mutex
	srv      *http.Server
	freed    chan struct{} // a connection closed (spare.go)
	spares   []*spareListener
	cancel   context.CancelFunc // cancels every request context
	sockets  []socketFile       // files Shutdown removes
	shutdown bool
	streams  streamStop // ends the endless answers (event streams, followed logs) at Shutdown
}

// socketFile is a socket file the server serves on, identified by inode so
// Shutdown never removes a file some other process put there since.
type socketFile struct {
	path string
	info os.FileInfo
}

// VersionInfo is the body of GET /v1/version.
type VersionInfo struct {
	Version string `json:"version"` // the daemon's version, "" if unset
	API     int    `json:"api"`     // the protocol version: 1
	// Pid is the daemon's pid; Started is when its running image
	// started (a re-exec keeps the pid and changes Started).
	Pid     int       `json:"pid,omitempty"`
	Started time.Time `json:"started,omitzero"`
	// Warnings are the daemon's own problems, which no unit's status
	// shows: "not watching the unit directory: …".
	Warnings []string `json:"warnings,omitempty"`
}

// APIVersion is the protocol version this package speaks; the path prefix
// of every route is "/v" + APIVersion.
const APIVersion = 1

// Limits of the logs route's n parameter.
const (
	DefaultLogLines = 100
	MaxLogLines     = 10000
)

// maxBody bounds every request body.
const maxBody = 1 << 20

// Timeouts of a request's header and body.
const (
	DefaultHeaderTimeout = 10 * time.Second
	DefaultBodyTimeout   = 10 * time.Second
)

// route is one entry of the route table. Write routes change state: only
// admins may use them (see Access), and the server logs who asked.
type route struct {
	pattern string
	write   bool
	handle  func(s *Server, w http.ResponseWriter, r *http.Request) error
}

// routes is every route the server answers, in one table.
var routes = []route{
	{"GET /v1/version", false, (*Server).version},
	{"GET /v1/units", false, (*Server).list},
	{"GET /v1/units/{name}", false, (*Server).status},
	{"GET /v1/units/{name}/logs", false, (*Server).logs},
	{"POST /v1/units/{name}/start", true, (*Server).start},
	{"POST /v1/units/{name}/stop", true, (*Server).stop},
	{"POST /v1/units/{name}/restart", true, (*Server).restart},
	{"POST /v1/units/{name}/reload-app", true, (*Server).reloadApp},
	{"POST /v1/units/{name}/hold", true, (*Server).hold},
	{"POST /v1/units/{name}/reset-failed", true, (*Server).resetFailedUnit},
	{"POST /v1/reset-failed", true, (*Server).resetFailedAll},
	{"POST /v1/reload", true, (*Server).reload},
	{"POST /v1/daemon-reexec", true, (*Server).reexec},
	{"GET /v1/debug/runtime", false, (*Server).runtimeInfo},
	{"GET /metrics", false, (*Server).metrics},
	{"GET /v1/events", false, (*Server).events},
}

// Handler returns the HTTP handler with every route. Unknown paths get a
// JSON 404, known paths with another method a JSON 405.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	known := http.NewServeMux() // the table alone, to tell 404 from 405
	for _, rt := range routes {
		h := s.wrap(rt)
		mux.Handle(rt.pattern, h)
		known.Handle(rt.pattern, h)
	}
	mux.Handle("/", s.wrap(route{"/", false, func(s *Server, w http.ResponseWriter, r *http.Request) error {
		return noRoute(known, w, r)
	}}))
	return mux
}

// noRoute answers a request no route matched.
func noRoute(known *http.ServeMux, w http.ResponseWriter, r *http.Request) error {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, pattern := known.Handler(r2); pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return &statusError{http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path)}
	}
	return fmt.Errorf("no route %s %s: %w", r.Method, r.URL.Path, ErrNotFound)
}

// statusError is an error with an explicit status, for the few answers
// the sentinels do not cover.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

// wrap turns a route into an http.Handler: it checks the peer's access,
// reads the body (bounded in size and time), logs write requests with
// their peer and turns a returned error into the error answer.
func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.onSpare(connOf(r.Context())) {
			w.Header().Set("Connection", "close") // spare.go
		}
		peer, known := PeerFromContext(r.Context())
		if err := s.Access.check(peer, known, r.Method+" "+r.URL.Path, rt.write); err != nil {
			w.Header().Set("Connection", "close")
			s.writeError(w, r, err)
			return
		}
		if err := s.readBody(w, r); err != nil {
			w.Header().Set("Connection", "close")
			s.writeError(w, r, err)
			return
		}
		if rt.write {
			ev := s.Log.Info().Str("method", r.Method).Str("path", r.URL.Path)
			logPeer(ev, r.Context()).Msg("api request")
		}
		if err := rt.handle(s, w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// onSpare reports whether c is served on a listener's spare fd.
func (s *Server) onSpare(c net.Conn) bool {
	s.mu.Lock()
	spares := s.spares
	s.mu.Unlock()
	for _, sl := range spares {
		if sl.onSpare(c) {
			return true
		}
	}
	return false
}

// readBody reads the whole request body into memory, at most maxBody
// bytes within BodyTimeout, and puts it back as r.Body. The deadline is
// lifted once the body is in, so a long answer (a restart stream) still
// notices a client that hangs up; after a failure it is left to expire
// at once, so the server drops the connection instead of waiting for
// the rest of the body.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) error {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	timeout := s.BodyTimeout
	if timeout <= 0 {
		timeout = DefaultBodyTimeout
	}
	rc := http.NewResponseController(w)
	deadline := rc.SetReadDeadline(time.Now().Add(timeout)) // fails only without a conn (tests)
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if deadline == nil && err == nil {
		rc.SetReadDeadline(time.Time{})
	} else if deadline == nil {
		rc.SetReadDeadline(time.Now())
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	var (
		tooBig *http.MaxBytesError
		ne     net.Error
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tooBig):
		return &FieldError{Message: fmt.Sprintf("request body: larger than %d bytes", tooBig.Limit)}
	case errors.As(err, &ne) && ne.Timeout():
		return &statusError{http.StatusRequestTimeout, fmt.Sprintf("request body: not received within %v", timeout)}
	default:
		return &FieldError{Message: fmt.Sprintf("request body: %v", err)}
	}
}

// writeError is the one place an error becomes a status and a JSON body,
// and is logged.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	body := s.logError(r, err)
	writeJSON(w, body.Status, errorBody{Error: body.Error, Field: body.Field})
}

// logError logs err once and returns the error body it maps to.
func (s *Server) logError(r *http.Request, err error) errorBody {
	body := errorBody{Error: err.Error(), Status: statusFor(err)}
	var se *statusError
	if errors.As(err, &se) {
		body.Status = se.status
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		body.Field = fe.Field
	}
	ev := s.Log.Warn()
	if body.Status >= 500 {
		ev = s.Log.Error()
	}
	ev = ev.Str("method", r.Method).Str("path", r.URL.Path).Int("status", body.Status)
	logPeer(ev, r.Context()).Err(err).Msg("api error")
	return body
}

// writeJSON writes v as the JSON body with status. Encoding errors of the
// wire types cannot happen; if one did, the answer is a 500.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody{Error: fmt.Sprintf("encode response: %v", err)})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// decodeBody decodes the request's JSON body into v. An empty body leaves
// v as it is. Unknown fields, wrong types, bad syntax and trailing data
// are FieldErrors (400).
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == io.EOF {
		return nil
	}
	if err == nil {
		if dec.Decode(new(json.RawMessage)) != io.EOF {
			return &FieldError{Message: "request body: unexpected data after the JSON object"}
		}
		return nil
	}
	var (
		typeErr *json.UnmarshalTypeError
		syntax  *json.SyntaxError
		tooBig  *http.MaxBytesError
	)
	switch {
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return &FieldError{Field: typeErr.Field, Message: fmt.Sprintf("must be a JSON %s, not %s", jsonKind(typeErr.Type.Kind().String()), typeErr.Value)}
	case errors.As(err, &typeErr):
		return &FieldError{Message: fmt.Sprintf("request body: must be a JSON object, not %s", typeErr.Value)}
	case errors.As(err, &syntax):
		return &FieldError{Message: fmt.Sprintf("request body: bad JSON at offset %d: %v", syntax.Offset, err)}
	case errors.As(err, &tooBig):
		return &FieldError{Message: fmt.Sprintf("request body: larger than %d bytes", tooBig.Limit)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &FieldError{Message: "request body: truncated JSON"}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if unq, qerr := strconv.Unquote(name); qerr == nil {
			name = unq
		}
		return &FieldError{Field: name, Message: "unknown field"}
	}
	return fmt.Errorf("read request body: %w", err)
}

// jsonKind names a Go kind as JSON calls it.
func jsonKind(goKind string) string {
	switch goKind {
	case "bool":
		return "boolean"
	case "string":
		return "string"
	case "slice", "array":
		return "array"
	case "struct", "map":
		return "object"
	default:
		return "number"
	}
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) error {
	v := VersionInfo{Version: s.Version, API: APIVersion, Pid: os.Getpid(), Started: s.Started}
	if s.Warnings != nil {
		v.Warnings = s.Warnings()
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) error {
	if s.Metrics == nil {
		return fmt.Errorf("metrics: not served by this daemon: %w", ErrNotFound)
	}
	s.Metrics.ServeHTTP(w, r)
	return nil
}

// ReexecResult is the answer of POST /v1/daemon-reexec: the daemon (pid)
// is about to exec itself.
type ReexecResult struct {
	OK  bool `json:"ok"`
	Pid int  `json:"pid"`
}

func (s *Server) reexec(w http.ResponseWriter, r *http.Request) error {
	if err := decodeBody(w, r, &struct{}{}); err != nil {
		return err
	}
	if s.Reexec == nil {
		return &statusError{http.StatusNotImplemented, "this daemon cannot re-execute itself"}
	}
	commit, err := s.Reexec(r.Context())
	if err != nil {
		return err
	}
	// The whole answer, with its length, before the exec: the client
	// must not wait for a chunk the exec would cut off.
	b, _ := json.Marshal(ReexecResult{OK: true, Pid: os.Getpid()})
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	http.NewResponseController(w).Flush()
	ctx := r.Context()
	go func() {
		<-ctx.Done() // the handler has returned: the answer is out
		commit()
	}()
	return nil
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) error {
	name, err := unitName(r)
	if err != nil {
		return err
	}
	st, err := s.Backend.Status(r.Context(), name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// maxUnitName is the longest unit name, as systemd's UNIT_NAME_MAX.
const maxUnitName = 255

// unitName returns the {name} of r's path. A name the Client cannot send
// (empty, ".", "..", with a slash or NUL, longer than maxUnitName) is a
// FieldError: such a name reaches the server only %-escaped, and would
// only ever be a path trick.
func unitName(r *http.Request) (string, error) {
	return checkUnitName(r.PathValue("name"))
}

// checkUnitName returns name if it can be a unit name, else a FieldError
// for "unit".
func checkUnitName(name string) (string, error) {
	switch {
	case name == "":
		return "", &FieldError{Field: "unit", Message: "empty unit name"}
	case name == "." || name == "..":
		return "", &FieldError{Field: "unit", Message: fmt.Sprintf("%q is not a unit name", name)}
	case strings.ContainsAny(name, "/\x00"):
		return "", &FieldError{Field: "unit", Message: fmt.Sprintf("%q: a unit name has no slash or NUL", name)}
	case len(name) > maxUnitName:
		return "", &FieldError{Field: "unit", Message: fmt.Sprintf("longer than %d bytes", maxUnitName)}
	}
	return name, nil
}

// simple serves a POST route whose body must be empty or {} and whose
// answer is {}.
func simple(w http.ResponseWriter, r *http.Request, op func(context.Context, string) error) error {
	name, err := unitName(r)
	if err != nil {
		return err
	}
	if err := decodeBody(w, r, &struct{}{}); err != nil {
		return err
	}
	if err := op(r.Context(), name); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (s *Server) start(w http.ResponseWriter, r *http.Request) error {
	return simple(w, r, s.Backend.Start)
}

func (s *Server) stop(w http.ResponseWriter, r *http.Request) error {
	return simple(w, r, s.Backend.Stop)
}

func (s *Server) reloadApp(w http.ResponseWriter, r *http.Request) error {
	return simple(w, r, s.Backend.ReloadApp)
}

func (s *Server) resetFailedUnit(w http.ResponseWriter, r *http.Request) error {
	name, err := unitName(r)
	if err != nil {
		return err
	}
	return s.resetFailed(w, r, name)
}

func (s *Server) resetFailedAll(w http.ResponseWriter, r *http.Request) error {
	return s.resetFailed(w, r, "")
}

// resetFailed serves both reset-failed routes: one unit's, and (name
// "") every failed unit's.
func (s *Server) resetFailed(w http.ResponseWriter, r *http.Request, name string) error {
	if err := decodeBody(w, r, &struct{}{}); err != nil {
		return err
	}
	units, err := s.Backend.ResetFailed(r.Context(), name)
	if err != nil {
		return err
	}
	if units == nil {
		units = []string{}
	}
	writeJSON(w, http.StatusOK, ResetFailedResult{Units: units})
	return nil
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) error {
	if err := decodeBody(w, r, &struct{}{}); err != nil {
		return err
	}
	res, err := s.Backend.Reload(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) restart(w http.ResponseWriter, r *http.Request) error {
	name, err := unitName(r)
	if err != nil {
		return err
	}
	var opts RestartOptions
	if err := decodeBody(w, r, &opts); err != nil {
		return err
	}
	if !opts.Wait {
		if _, err := s.Backend.Restart(r.Context(), name, opts, func(Event) {}); err != nil {
			return err
		}
		writeJSON(w, http.StatusAccepted, struct{}{})
		return nil
	}
	st := &stream{w: w, rc: http.NewResponseController(w)}
	res, err := s.Backend.Restart(r.Context(), name, opts, st.event)
	if err != nil && !st.begun() {
		return err // nothing sent yet: a plain error answer
	}
	if err != nil {
		st.line(s.logError(r, err))
		return nil
	}
	st.line(struct {
		Result RestartResult `json:"result"`
	}{res})
	return nil
}

// stream writes an application/x-ndjson answer line by line, flushing
// each. Its header goes out with the first line.
type stream struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func (st *stream) begun() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.started
}

func (st *stream) event(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	st.line(e)
}

// open sends the header now, before any line.
func (st *stream) open() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.headerLocked()
	st.rc.Flush()
}

func (st *stream) headerLocked() {
	if !st.started {
		h := st.w.Header()
		h.Set("Content-Type", "application/x-ndjson")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		st.w.WriteHeader(http.StatusOK)
		st.started = true
	}
}

// line writes v as one JSON line, and reports whether it went out. Write
// errors mean the client has gone; the request context is then
// cancelled, which the Backend sees.
func (st *stream) line(v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(errorBody{Error: fmt.Sprintf("encode stream line: %v", err), Status: http.StatusInternalServerError})
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.headerLocked()
	if _, err := st.w.Write(append(b, '\n')); err != nil {
		return false
	}
	return st.rc.Flush() == nil
}

// Serve serves l until Shutdown, then returns nil; it returns an error
// only when accepting fails otherwise. Serve may be called for several
// listeners. If l is a Unix socket with a path, Shutdown removes the file.
// Out of file descriptors (EMFILE, ENFILE), Serve goes on answering, one
// connection at a time, on a spare fd it keeps for that.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	if s.srv == nil {
		base, cancel := context.WithCancel(context.Background())
		s.cancel = cancel
		freed := make(chan struct{}, 1)
		s.freed = freed
		s.srv = &http.Server{
			// A closed connection frees an fd: a listener out of them
			// tries again at once (spare.go).
			ConnState: func(_ net.Conn, st http.ConnState) {
				if st == http.StateClosed {
					select {
					case freed <- struct{}{}:
					default:
					}
				}
			},
			Handler: s.Handler(),
			// No ReadTimeout: it would also cut restart streams;
			// wrap bounds each body instead (BodyTimeout).
			ReadHeaderTimeout: DefaultHeaderTimeout,
			IdleTimeout:       2 * time.Minute,
			BaseContext:       func(net.Listener) context.Context { return base },
			ConnContext:       withPeer,
			ErrorLog:          log.New(s.Log, "api: ", 0),
		}
	}
	if a := l.Addr(); a.Network() == "unix" && a.String() != "" && !strings.HasPrefix(a.String(), "@") {
		if fi, err := os.Stat(a.String()); err == nil {
			s.sockets = append(s.sockets, socketFile{a.String(), fi})
		}
	}
	srv := s.srv
	// At the fd limit the API still answers, on a spare fd (spare.go).
	sl := newSpareListener(l, s.freed, s.Log)
	s.spares = append(s.spares, sl)
	l = sl
	s.mu.Unlock()

	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("serve api on %s: %w", l.Addr(), err)
}

// Shutdown stops accepting, waits for requests under way until ctx ends,
// and removes the socket file. Requests still running when ctx ends (a
// long restart stream) are cut and their contexts cancelled; Shutdown
// then returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.streams.stop() // endless answers end now, not at ctx's end
	s.mu.Lock()
	s.shutdown = true
	srv, cancel, sockets := s.srv, s.cancel, s.sockets
	s.sockets = nil
	s.mu.Unlock()

	var err error
	if srv != nil {
		if err = srv.Shutdown(ctx); err != nil {
			srv.Close()
			err = fmt.Errorf("shut down api server: %w", err)
		}
		cancel()
	}
	for _, f := range sockets {
		if rerr := removeSocket(f); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

// removeSocket removes f's path if it is still the socket the server
// served on.
func removeSocket(f socketFile) error {
	fi, err := os.Lstat(f.path)
	if err != nil || !os.SameFile(fi, f.info) {
		return nil // gone, or someone else's now
	}
	if err := sockfile.Remove(f.path); err != nil {
		return fmt.Errorf("remove api socket: %w", err)
	}
	return nil
}
