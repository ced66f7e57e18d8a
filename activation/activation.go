// Package activation turns socket units into open listening sockets owned
// by sockd, waits for the first connection without accepting it, and
// builds the LISTEN_FDS / LISTEN_FDNAMES environment of the systemd
// socket-activation protocol (sd_listen_fds(3)). LISTEN_PID is set by the
// child itself, through children.Spec.PIDEnv.
package activation

import (
	"context"
	"net"
	"os"

	"github.com/sockd/sockd/units"
)

// Listener is one open socket (or FIFO) of a socket unit. sockd owns it
// for the unit's whole life; children receive File().
type Listener struct{}

// Open binds every Listen*= line of s with s's options, in order. It is
// all or nothing: if one fails, those already open are closed and the
// error names the socket unit, the address and the cause.
func Open(s *units.Socket) ([]*Listener, error) {
	panic("activation.Open: not implemented")
}

// Name returns the name of the listener's fd in LISTEN_FDNAMES.
func (l *Listener) Name() string { panic("not implemented") }

// Spec returns the Listen*= line the listener was opened from.
func (l *Listener) Spec() units.Listen { panic("not implemented") }

// File returns the fd to hand to children as one of fds 3, 4, …. It is
// the same *os.File on every call, in blocking mode unless the unit sets
// NonBlocking=yes, close-on-exec in sockd. Callers must not close it.
func (l *Listener) File() *os.File { panic("not implemented") }

// Accept accepts one connection on an Accept=yes stream socket and
// returns it as a blocking file for a child's fd 3, with the peer address.
func (l *Listener) Accept() (*os.File, net.Addr, error) { panic("not implemented") }

// Close closes the socket and removes the socket file, its symlinks and
// FIFOs that Open created. Closing twice is harmless.
func (l *Listener) Close() error { panic("not implemented") }

// Wait blocks until one of ls is readable — a connection waits in its
// accept queue, or a datagram in its receive queue — without accepting
// or reading anything, and returns that listener. It returns ctx.Err()
// when ctx ends first. At most one Wait may be under way per listener.
// It costs no CPU while it waits (the runtime's netpoller).
func Wait(ctx context.Context, ls []*Listener) (*Listener, error) {
	panic("activation.Wait: not implemented")
}

// Env returns LISTEN_FDS=N and LISTEN_FDNAMES=a:b:… for ls passed as
// fds 3, 4, … in order. It does not set LISTEN_PID.
func Env(ls []*Listener) []string {
	panic("activation.Env: not implemented")
}

// CloseAll closes every listener of ls.
func CloseAll(ls []*Listener) {
	for _, l := range ls {
		_ = l.Close()
	}
}
