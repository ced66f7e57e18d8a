package api

import (
	"context"
	"net"
	"net/http"
	"os"

	"github.com/rs/zerolog"
)

// Server serves a Backend over HTTP+JSON.
type Server struct {
	Backend Backend
	Log     zerolog.Logger
}

// Listen creates the control socket at path with the given mode. A stale
// socket file (one nobody answers on) is removed first; a live one is an
// error, so two sockd never share an API socket.
func Listen(path string, mode os.FileMode) (net.Listener, error) {
	panic("api.Listen: not implemented")
}

// Handler returns the HTTP handler with every route.
func (s *Server) Handler() http.Handler { panic("not implemented") }

// Serve serves l until Shutdown.
func (s *Server) Serve(l net.Listener) error { panic("not implemented") }

// Shutdown stops accepting, waits for requests under way until ctx ends,
// and removes the socket file.
func (s *Server) Shutdown(ctx context.Context) error { panic("not implemented") }
