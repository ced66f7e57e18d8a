package metrics

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sockd/sockd/api"
)

// BenchmarkScrape is a scrape of 1,000 units without the supervisor:
// what the metrics themselves cost (make bench measures the whole).
func BenchmarkScrape(b *testing.B) {
	list := make([]api.UnitStatus, 1000)
	m := New(Options{})
	for i := range list {
		name := fmt.Sprintf("u%04d.service", i)
		depth := 0
		list[i] = api.UnitStatus{Name: name, Service: api.ServiceStatus{State: api.StateInactive, SubState: "listening", Pids: []int{}, Generation: 1},
			Sockets: []api.SocketStatus{{Unit: fmt.Sprintf("u%04d.socket", i), Listen: "127.0.0.1:1", QueueDepth: &depth, Backlog: 4096}}}
		m.Observe(api.UnitEvent{Kind: api.EventAdded, Unit: name})
		if i%10 == 0 { // a tenth of them ran (make bench's scale step starts 100)
			m.Observe(api.UnitEvent{Kind: api.EventSpawned, Unit: name, Gen: 1, Time: time.Now()})
			m.Observe(api.UnitEvent{Kind: api.EventReady, Unit: name, Gen: 1, Millis: 30})
		}
	}
	m.SetSource(listFunc(func(context.Context) ([]api.UnitStatus, error) { return list, nil }))
	for _, enc := range []string{"identity", "gzip"} {
		b.Run(enc, func(b *testing.B) {
			for b.Loop() {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest("GET", "/metrics", nil)
				req.Header.Set("Accept-Encoding", enc)
				m.Handler().ServeHTTP(rec, req)
				io.Copy(io.Discard, rec.Body)
			}
		})
	}
}
