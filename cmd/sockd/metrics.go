package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// metricsListener is the TCP listener of --metrics: it serves GET
// /metrics and nothing else (no unit output, no API route), since it
// sits outside the API socket's access rules.
type metricsListener struct {
	srv *http.Server
	l   net.Listener
}

// listenMetrics binds addr ("127.0.0.1:9101") for the metrics; it is
// not served until serve.
func listenMetrics(addr string, h http.Handler, zl zerolog.Logger) (*metricsListener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h) // anything else: 404 (405 for another method)
	return &metricsListener{l: l, srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          log.New(zl, "metrics: ", 0),
	}}, nil
}

// serve serves until shutdown; its error is one of accepting.
func (m *metricsListener) serve() error {
	if err := m.srv.Serve(m.l); err != http.ErrServerClosed {
		return fmt.Errorf("serve metrics on %s: %w", m.l.Addr(), err)
	}
	return nil
}

// shutdown stops the listener; a scrape under way gets until ctx ends.
func (m *metricsListener) shutdown(ctx context.Context) {
	if err := m.srv.Shutdown(ctx); err != nil {
		m.srv.Close()
	}
}

// close releases a listener that was never served.
func (m *metricsListener) close() { m.l.Close() }

// promLogger hands promhttp's errors (a failed scrape) to the log.
type promLogger struct{ log zerolog.Logger }

func (p promLogger) Println(v ...any) {
	p.log.Warn().Str("error", fmt.Sprint(v...)).Msg("metrics scrape")
}
