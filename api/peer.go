package api

import (
	"context"
	"net"

	"github.com/rs/zerolog"
)

// Peer is the process at the other end of an API connection, as the
// kernel recorded it when the connection was made: SO_PEERCRED for the
// pid, effective uid and gid, SO_PEERGROUPS for the supplementary groups.
type Peer struct {
	PID    int
	UID    int
	GID    int
	Groups []int // supplementary groups, not counting GID
}

type (
	peerKey struct{}
	connKey struct{}
)

// PeerFromContext returns the peer of the API request whose context ctx
// is, if the server could read its credentials.
func PeerFromContext(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}

// withPeer is the http.Server's ConnContext: it reads the peer's
// credentials once per connection, and keeps the connection itself for
// the hold route, which passes sockets over it (connOf).
func withPeer(ctx context.Context, c net.Conn) context.Context {
	ctx = context.WithValue(ctx, connKey{}, c)
	if p, ok := peerOf(c); ok {
		return context.WithValue(ctx, peerKey{}, p)
	}
	return ctx
}

// connOf returns the connection a request's context came with, nil when
// the request did not come through Serve (a test's recorder).
func connOf(ctx context.Context) net.Conn {
	c, _ := ctx.Value(connKey{}).(net.Conn)
	return c
}

// logPeer adds the request's peer to a log event.
func logPeer(ev *zerolog.Event, ctx context.Context) *zerolog.Event {
	if p, ok := PeerFromContext(ctx); ok {
		ev = ev.Int("peer_uid", p.UID).Int("peer_pid", p.PID)
	}
	return ev
}
