package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
)

// Client talks to sockd's API. Its zero value dials DefaultPath.
//
// Errors: an answer from sockd that is an error is an *Error (matching
// ErrNotFound, ErrInvalid, ErrConflict or ErrFailed with errors.Is); a
// failure to connect is an *UnreachableError; anything else (sockd went
// away mid-answer, ctx ended) is wrapped with the request it broke.
type Client struct {
	// Path is the socket path; "" means $SOCKD_API, else DefaultPath.
	Path string
	// Dial, if set, replaces dialing Path.
	Dial func(ctx context.Context) (net.Conn, error)
}

// DefaultPath is where sockd listens when neither --api nor SOCKD_API say.
const DefaultPath = "/run/sockd/api.sock"

// SocketPath returns the path the client dials: Path, else $SOCKD_API,
// else DefaultPath.
func (c *Client) SocketPath() string {
	if c.Path != "" {
		return c.Path
	}
	if p := os.Getenv("SOCKD_API"); p != "" {
		return p
	}
	return DefaultPath
}

// dial connects to sockd; every failure is an *UnreachableError.
func (c *Client) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	var (
		conn net.Conn
		err  error
	)
	if c.Dial != nil {
		conn, err = c.Dial(ctx)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "unix", c.SocketPath())
	}
	if err != nil {
		return nil, &UnreachableError{Path: c.SocketPath(), Err: err}
	}
	return conn, nil
}

// send makes one request and returns the response, whatever its status.
// One connection per request: a CLI makes few, and nothing lingers.
func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode body: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://sockd"+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, application/x-ndjson")
	tr := &http.Transport{DialContext: c.dial, DisableKeepAlives: true}
	hc := &http.Client{
		Transport: tr,
		// sockd never redirects; a redirect is the mux cleaning a bad
		// path ("..") and must not turn a POST into a GET.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *UnreachableError
		if errors.As(err, &ue) {
			return nil, ue
		}
		return nil, fmt.Errorf("sockd api %s %s: %w", method, path, unwrapURLError(err))
	}
	return resp, nil
}

// unwrapURLError drops net/http's *url.Error, whose message repeats the
// made-up URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// do makes one request, expects status want, and decodes the JSON answer
// into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, body, out any, want int) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		return readError(resp)
	}
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("sockd api %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// readError turns an error answer into an *Error.
func readError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	var body errorBody
	if err := json.Unmarshal(b, &body); err != nil || body.Error == "" {
		msg := strings.TrimSpace(string(b))
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return &Error{Status: resp.StatusCode, Message: fmt.Sprintf("sockd api: %d: %s", resp.StatusCode, msg)}
	}
	return &Error{Status: resp.StatusCode, Message: body.Error, Field: body.Field}
}

// unitPath returns the route of unit, with more path elements appended.
func unitPath(unit string, more ...string) (string, error) {
	if _, err := checkUnitName(unit); err != nil {
		return "", err
	}
	return "/v1/units/" + url.PathEscape(unit) + strings.Join(append([]string{""}, more...), "/"), nil
}

// Version returns the daemon's version and protocol version; it is also a
// cheap health check.
func (c *Client) Version(ctx context.Context) (VersionInfo, error) {
	var v VersionInfo
	err := c.do(ctx, http.MethodGet, "/v1/version", nil, &v, http.StatusOK)
	return v, err
}

// List returns every unit's status.
func (c *Client) List(ctx context.Context) ([]UnitStatus, error) {
	return c.ListFiltered(ctx, ListOptions{})
}

// ListFiltered returns the status of the units that pass opts, sorted
// by name. Bad options are a *FieldError, found before asking. What
// sockd answers is filtered here again, so that a sockd too old to
// filter (which answers every unit) gives the same list.
func (c *Client) ListFiltered(ctx context.Context, opts ListOptions) ([]UnitStatus, error) {
	opts, err := opts.Normalize()
	if err != nil {
		return nil, err
	}
	var units []UnitStatus
	if err := c.do(ctx, http.MethodGet, "/v1/units"+opts.query(), nil, &units, http.StatusOK); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(units, func(u UnitStatus) bool { return !opts.Match(u) }), nil
}

// Status returns one unit's status.
func (c *Client) Status(ctx context.Context, unit string) (UnitStatus, error) {
	var st UnitStatus
	p, err := unitPath(unit)
	if err != nil {
		return st, err
	}
	err = c.do(ctx, http.MethodGet, p, nil, &st, http.StatusOK)
	return st, err
}

func (c *Client) post(ctx context.Context, unit, verb string) error {
	p, err := unitPath(unit, verb)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, p, struct{}{}, nil, http.StatusOK)
}

// Start starts unit.
func (c *Client) Start(ctx context.Context, unit string) error { return c.post(ctx, unit, "start") }

// Stop stops unit.
func (c *Client) Stop(ctx context.Context, unit string) error { return c.post(ctx, unit, "stop") }

// restartLine is one line of a restart stream: an Event, or the last line
// carrying the result or an error.
type restartLine struct {
	Event
	Result *RestartResult `json:"result"`
	errorBody
}

// Restart restarts unit. Without opts.Wait it returns once sockd has
// accepted the restart, with a zero result. With opts.Wait it calls
// progress (if not nil) with each event as it arrives and returns the
// result once the restart has ended; a rolled-back restart is a result
// with OK false and a nil error.
func (c *Client) Restart(ctx context.Context, unit string, opts RestartOptions, progress func(Event)) (RestartResult, error) {
	p, err := unitPath(unit, "restart")
	if err != nil {
		return RestartResult{}, err
	}
	if !opts.Wait {
		return RestartResult{}, c.do(ctx, http.MethodPost, p, opts, nil, http.StatusAccepted)
	}
	resp, err := c.send(ctx, http.MethodPost, p, opts)
	if err != nil {
		return RestartResult{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return RestartResult{}, readError(resp)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var line restartLine
		if err := dec.Decode(&line); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return RestartResult{}, fmt.Errorf("restart %s: stream ended without a result: %w", unit, err)
		}
		switch {
		case line.Result != nil:
			return *line.Result, nil
		case line.Error != "":
			status := line.Status
			if status == 0 {
				status = http.StatusInternalServerError
			}
			return RestartResult{}, &Error{Status: status, Message: line.Error, Field: line.Field}
		case progress != nil:
			progress(line.Event)
		}
	}
}

// ResetFailed makes a failed unit forget its failure, its limits and its
// back-off (sockctl reset-failed); unit "" means every failed unit. It
// returns the units that were failed.
func (c *Client) ResetFailed(ctx context.Context, unit string) ([]string, error) {
	p := "/v1/reset-failed"
	if unit != "" {
		var err error
		if p, err = unitPath(unit, "reset-failed"); err != nil {
			return nil, err
		}
	}
	var res ResetFailedResult
	err := c.do(ctx, http.MethodPost, p, struct{}{}, &res, http.StatusOK)
	return res.Units, err
}

// ReloadApp asks unit's running processes to reload their configuration.
func (c *Client) ReloadApp(ctx context.Context, unit string) error {
	return c.post(ctx, unit, "reload-app")
}

// Reload makes sockd re-read its unit directory.
// DaemonReexec asks the daemon to re-execute itself (an in-place
// upgrade). An error means it did not (a binary failing its self-test, a
// re-exec or shutdown under way); once it answers, the exec follows.
func (c *Client) DaemonReexec(ctx context.Context) (ReexecResult, error) {
	var res ReexecResult
	err := c.do(ctx, http.MethodPost, "/v1/daemon-reexec", struct{}{}, &res, http.StatusOK)
	return res, err
}

func (c *Client) Reload(ctx context.Context) (ReloadResult, error) {
	var res ReloadResult
	err := c.do(ctx, http.MethodPost, "/v1/reload", struct{}{}, &res, http.StatusOK)
	return res, err
}
