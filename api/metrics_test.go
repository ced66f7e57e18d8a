package api

import (
	"net/http"
	"strings"
	"testing"
)

// GET /metrics serves the Server's Metrics handler, a read route; a
// Server without one answers 404.
func TestMetricsRoute(t *testing.T) {
	ts := startServer(t, &fakeBackend{})
	if code, _, body := ts.raw(t, "GET", "/metrics", ""); code != http.StatusNotFound || !strings.Contains(string(body), "metrics") {
		t.Errorf("without Metrics: %d %s, want 404", code, body)
	}
	ts = startServerWith(t, &Server{Backend: &fakeBackend{}, Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write([]byte("sockd_up 1\n"))
	})})
	code, h, body := ts.raw(t, "GET", "/metrics", "")
	if code != 200 || string(body) != "sockd_up 1\n" || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Errorf("with Metrics: %d %q %q", code, h.Get("Content-Type"), body)
	}
	if code, _, _ := ts.raw(t, "POST", "/metrics", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d, want 405", code)
	}
}
