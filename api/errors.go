package api

import (
	"errors"
	"fmt"
	"net"
	"net/http"
)

// FieldError is bad input in one named field of a request: a JSON body
// field or a query parameter. It matches ErrInvalid with errors.Is, so the
// server answers 400 with the field named in the body. A Backend may
// return one too.
type FieldError struct {
	Field   string // "n", "wait", …
	Message string // what is wrong, e.g. "must be an integer from 1 to 10000"
}

// Error returns "invalid FIELD: MESSAGE", or only the message when no
// single field is at fault (a body that is not JSON at all).
func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return fmt.Sprintf("invalid %s: %s", e.Field, e.Message)
}

// Unwrap returns ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Error is an error answer from the API as the Client sees it. It matches
// ErrNotFound, ErrInvalid, ErrConflict, ErrFailed or ErrPermission with
// errors.Is, according to its status.
type Error struct {
	Status  int    // the HTTP status: 404, 400, 403, 409, 422, 500, …
	Message string // the server's message
	Field   string // the field at fault, for a 400 on bad input
}

// Error returns the server's message.
func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("sockd api: %d %s", e.Status, http.StatusText(e.Status))
	}
	return e.Message
}

// Unwrap returns the sentinel error matching the status, or nil.
func (e *Error) Unwrap() error { return sentinelFor(e.Status) }

// Is reports whether target is the sentinel error matching the status.
func (e *Error) Is(target error) bool {
	s := sentinelFor(e.Status)
	return s != nil && s == target
}

// UnreachableError is returned by the Client when it cannot connect to
// sockd's socket at all: sockd is not running, or the path is wrong.
type UnreachableError struct {
	Path string // the socket path dialed
	Err  error  // the dial error
}

// Error returns "cannot reach sockd at PATH: REASON".
func (e *UnreachableError) Error() string {
	reason := e.Err
	var op *net.OpError
	if errors.As(e.Err, &op) && op.Err != nil {
		reason = op.Err // the path is already in the message
	}
	return fmt.Sprintf("cannot reach sockd at %s: %v", e.Path, reason)
}

// Unwrap returns the dial error.
func (e *UnreachableError) Unwrap() error { return e.Err }

// statusFor maps an error to the HTTP status the server answers with.
func statusFor(err error) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrFailed):
		return http.StatusUnprocessableEntity
	case errors.Is(err, ErrPermission):
		return http.StatusForbidden
	default:
		return http.StatusInternalServerError
	}
}

// sentinelFor is the inverse of statusFor.
func sentinelFor(status int) error {
	switch status {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusBadRequest:
		return ErrInvalid
	case http.StatusConflict:
		return ErrConflict
	case http.StatusUnprocessableEntity:
		return ErrFailed
	case http.StatusForbidden:
		return ErrPermission
	default:
		return nil
	}
}

// errorBody is the JSON body of every error answer, and the last line of
// a restart stream that failed after it began (with Status set).
type errorBody struct {
	Error  string `json:"error"`
	Field  string `json:"field,omitempty"`
	Status int    `json:"status,omitempty"`
}
