package metrics

import (
	"bufio"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sockd/sockd/api"
)

// listFunc is a Source from a function.
type listFunc func(ctx context.Context) ([]api.UnitStatus, error)

func (f listFunc) List(ctx context.Context) ([]api.UnitStatus, error) { return f(ctx) }

// scrape serves one GET /metrics through m's handler and returns the
// parsed families; it fails the test if a family is named twice.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d: %s", rec.Code, rec.Body)
	}
	body := rec.Body.String()
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			if seen[f[2]] {
				t.Errorf("metric family %s appears twice", f[2])
			}
			seen[f[2]] = true
		}
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse exposition: %v\n%s", err, body)
	}
	return fams
}

// value is the value of the sample of family name whose labels include
// want; ok is false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, lp := range m.Label {
			got[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestObserveAndScrape(t *testing.T) {
	netstat := filepath.Join(t.TempDir(), "netstat")
	os.WriteFile(netstat, []byte("TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 7 9\nIpExt: InNoRoutes\nIpExt: 0\n"), 0o644)
	depth := 3
	list := []api.UnitStatus{
		{Name: "app.service", Service: api.ServiceStatus{State: api.StateActive, SubState: "running", Pids: []int{10, 11}, Generation: 2},
			Sockets: []api.SocketStatus{
				{Unit: "app.socket", Listen: "127.0.0.1:8080", QueueDepth: &depth, Backlog: 128},
				{Unit: "app.socket", Listen: "/run/app.sock"}, // depth unknown: no series
			}},
		{Name: "idle.service", Service: api.ServiceStatus{State: api.StateInactive, SubState: "listening", Pids: []int{}}},
	}
	m := New(Options{NetstatPath: netstat})
	m.SetSource(listFunc(func(context.Context) ([]api.UnitStatus, error) { return list, nil }))
	t0 := time.Now().Add(-5 * time.Second)
	for _, ev := range []api.UnitEvent{
		{Kind: api.EventAdded, Unit: "app.service"},
		{Kind: api.EventAdded, Unit: "idle.service"},
		{Kind: api.EventSpawned, Unit: "app.service", Gen: 1, Time: t0.Add(-time.Hour)},
		{Kind: api.EventReady, Unit: "app.service", Gen: 1, Millis: 40},
		{Kind: api.EventSpawned, Unit: "app.service", Gen: 2, Time: t0},
		{Kind: api.EventSpawned, Unit: "app.service", Gen: 2, Time: t0.Add(time.Second)}, // a second instance
		{Kind: api.EventExited, Unit: "app.service", Gen: 1, Result: "success"},
		{Kind: api.EventRestartDone, Unit: "app.service", Outcome: "done", Millis: 300},
		{Kind: api.EventSpawned, Unit: "app.service", Gen: 3, Time: time.Now()},
		{Kind: api.EventExited, Unit: "app.service", Gen: 3, Result: "exit-code"},
		{Kind: api.EventRestartDone, Unit: "app.service", Outcome: "rolled-back", Millis: 200},
		{Kind: api.EventStartLimit, Unit: "idle.service"},
		{Kind: api.EventTriggerLimit, Unit: "idle.service"},
		{Kind: api.EventWatchdog, Unit: "app.service"},
		{Kind: api.EventReload, Outcome: api.ReloadUnitErrors},
	} {
		m.Observe(ev)
	}
	fams := scrape(t, m)
	app := map[string]string{"unit": "app.service"}
	idle := map[string]string{"unit": "idle.service"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"sockd_unit_spawns_total", app, 4},
		{"sockd_unit_spawns_total", idle, 0},             // made at zero when added
		{"sockd_unit_watchdog_timeouts_total", idle, -1}, // appears at its first event
		{"sockd_unit_exits_total", map[string]string{"unit": "app.service", "result": "success"}, 1},
		{"sockd_unit_exits_total", map[string]string{"unit": "app.service", "result": "exit-code"}, 1},
		{"sockd_unit_restarts_total", map[string]string{"unit": "app.service", "outcome": "done"}, 1},
		{"sockd_unit_restarts_total", map[string]string{"unit": "app.service", "outcome": "rolled-back"}, 1},
		{"sockd_unit_start_limit_hits_total", idle, 1},
		{"sockd_unit_trigger_limit_hits_total", idle, 1},
		{"sockd_unit_watchdog_timeouts_total", app, 1},
		{"sockd_unit_ready_seconds", app, 1},
		{"sockd_unit_restart_duration_seconds", app, 2},
		{"sockd_reloads_total", map[string]string{"result": "unit-errors"}, 1},
		{"sockd_reloads_total", map[string]string{"result": "success"}, 0},
		{"sockd_unit_processes", app, 2},
		{"sockd_unit_phase", map[string]string{"unit": "app.service", "state": "active", "phase": "running"}, 1},
		{"sockd_unit_phase", map[string]string{"unit": "idle.service", "state": "inactive", "phase": "listening"}, 1},
		{"sockd_unit_generation", app, 2},
		{"sockd_socket_queue_depth", map[string]string{"unit": "app.service", "socket": "app.socket", "listen": "127.0.0.1:8080"}, 3},
		{"sockd_socket_backlog", map[string]string{"unit": "app.service", "socket": "app.socket", "listen": "127.0.0.1:8080"}, 128},
		{"sockd_host_tcp_listen_overflows_total", nil, 7},
		{"sockd_host_tcp_listen_drops_total", nil, 9},
	} {
		got, ok := value(fams, c.name, c.labels)
		if c.want < 0 {
			if ok {
				t.Errorf("%s%v = %v, want none", c.name, c.labels, got)
			}
			continue
		}
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if n := len(fams["sockd_socket_queue_depth"].GetMetric()); n != 1 {
		t.Errorf("sockd_socket_queue_depth has %d series, want 1 (a socket without a known depth has none)", n)
	}
	// Generation 2 began with its first spawn, 5 s ago; generation 3
	// was rolled back and is forgotten.
	if age, ok := value(fams, "sockd_unit_generation_age_seconds", app); !ok || age < 5 || age > 60 {
		t.Errorf("generation age = %v (present %v), want about 5 s", age, ok)
	}
	if _, ok := value(fams, "sockd_unit_generation_age_seconds", idle); ok {
		t.Error("an idle unit that never spawned has a generation age")
	}
	for _, name := range []string{"process_open_fds", "process_resident_memory_bytes", "go_goroutines"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
	if _, ok := fams["process_network_receive_bytes_total"]; ok {
		t.Error("process_network_receive_bytes_total is served: it is the network namespace's, not sockd's")
	}

	// A rolled-back generation's number is used again by the next start.
	m.Observe(api.UnitEvent{Kind: api.EventSpawned, Unit: "app.service", Gen: 3, Time: time.Now().Add(-time.Second)})
	list[0].Service.Generation = 3
	fams = scrape(t, m)
	if age, ok := value(fams, "sockd_unit_generation_age_seconds", app); !ok || age < 1 || age > 30 {
		t.Errorf("generation 3's age = %v (present %v), want about 1 s", age, ok)
	}

	// A removed unit's series go.
	m.Observe(api.UnitEvent{Kind: api.EventRemoved, Unit: "app.service"})
	list = list[1:]
	fams = scrape(t, m)
	for _, name := range []string{"sockd_unit_spawns_total", "sockd_unit_exits_total", "sockd_unit_restarts_total", "sockd_unit_ready_seconds", "sockd_unit_processes"} {
		if _, ok := value(fams, name, app); ok {
			t.Errorf("%s of a removed unit is still served", name)
		}
	}
}

// A failing List does not take the rest of the metrics down.
func TestScrapeListError(t *testing.T) {
	m := New(Options{NetstatPath: filepath.Join(t.TempDir(), "none")})
	m.SetSource(listFunc(func(context.Context) ([]api.UnitStatus, error) { return nil, errors.New("shutting down") }))
	m.Observe(api.UnitEvent{Kind: api.EventAdded, Unit: "a.service"})
	fams := scrape(t, m)
	if _, ok := value(fams, "sockd_unit_spawns_total", map[string]string{"unit": "a.service"}); !ok {
		t.Error("counters missing when List fails")
	}
	if _, ok := fams["sockd_unit_processes"]; ok {
		t.Error("sockd_unit_processes served although List failed")
	}
	if _, ok := fams["sockd_host_tcp_listen_drops_total"]; ok {
		t.Error("listen drops served without a netstat file")
	}
}

func TestParseNetstat(t *testing.T) {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		t.Fatalf("this test reads the running kernel's counters: %v", err)
	}
	ext, err := parseNetstat(b, "TcpExt")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ListenOverflows", "ListenDrops"} {
		if _, ok := ext[k]; !ok {
			t.Errorf("no %s in TcpExt", k)
		}
	}
	for _, bad := range []string{"", "TcpExt: A B\n", "TcpExt: A B\nTcpExt: 1\n", "TcpExt: A\nTcpExt: x\n"} {
		if _, err := parseNetstat([]byte(bad), "TcpExt"); err == nil {
			t.Errorf("parseNetstat(%q): no error", bad)
		}
	}
}
