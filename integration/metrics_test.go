package integration

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrapeMetrics fetches GET /metrics through c, fails the test if a
// metric family is named twice, and returns the parsed families.
func scrapeMetrics(t *testing.T, c *http.Client) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := c.Get("http://sockd.test/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET /metrics body: %v", err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s: %s", resp.Status, b)
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			if seen[f[2]] {
				t.Errorf("metric family %s appears twice", f[2])
			}
			seen[f[2]] = true
		}
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, b)
	}
	return fams
}

// sample is the value of the sample of family name whose labels include
// want (a histogram's sample count); ok is false when there is none.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
next:
	for _, m := range fams[name].GetMetric() {
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

// GET /metrics on the API socket, after a spawn, a restart, a rollback,
// a start-limit hit and a reload: each counter moved, and no metric
// family is named twice. The same metrics are on --metrics's TCP
// address, which answers nothing else.
func TestMetricsCountLifecycle(t *testing.T) {
	port, badPort, metricsPort := freePort(t), freePort(t), freePort(t)
	files := demoUnits(port)
	files["bad.socket"] = fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\n", badPort)
	files["bad.service"] = "[Unit]\nStartLimitBurst=2\nStartLimitIntervalSec=60\n" +
		"[Service]\nType=notify\nExecStart=sockd-demo\nEnvironment=DEMO_FAIL=1\nRestart=always\nRestartSec=50ms\n"
	dir := writeUnits(t, files)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", metricsPort)
	s := startSockdArgs(t, dir, []string{"--metrics", metricsAddr})
	apiC := client("unix", s.api)
	demo := map[string]string{"unit": "demo.service"}
	bad := map[string]string{"unit": "bad.service"}

	before := scrapeMetrics(t, apiC)
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"sockd_unit_spawns_total", demo},
		{"sockd_unit_spawns_total", bad},
		{"sockd_reloads_total", map[string]string{"result": "failed"}},
	} {
		if v, ok := sample(before, c.name, c.labels); !ok || v != 0 {
			t.Errorf("at start %s%v = %v (present %v), want 0", c.name, c.labels, v, ok)
		}
	}
	for _, name := range []string{"sockd_unit_start_limit_hits_total", "sockd_unit_restarts_total"} {
		if v, ok := sample(before, name, nil); ok {
			t.Errorf("at start %s = %v, want none yet", name, v)
		}
	}

	// A spawn: the first connection starts demo.
	get(t, client("tcp", fmt.Sprintf("127.0.0.1:%d", port)))
	// A restart that completes.
	if out, errs, code := s.ctl("restart", "demo", "--wait"); code != 0 {
		t.Fatalf("restart: exit %d\n%s\n%s", code, out, errs)
	}
	// A rollback: the new build exits at once.
	os.WriteFile(filepath.Join(dir, "demo.service"), []byte(files["demo.service"]+"Environment=DEMO_FAIL=1\n"), 0o644)
	if _, errs, code := s.ctl("reload"); code != 0 {
		t.Fatalf("reload: %s", errs)
	}
	if out, errs, code := s.ctl("restart", "demo", "--wait"); code != 1 {
		t.Fatalf("restart to a broken build: exit %d, want 1\n%s\n%s", code, out, errs)
	}
	// A start-limit hit: bad fails, Restart=always starts it again, and
	// its second failure is past StartLimitBurst=2.
	s.ctl("start", "bad")
	s.waitLog(30*time.Second, func(l map[string]any) bool {
		return l["unit"] == "bad.service" && strings.HasPrefix(fmt.Sprint(l["message"]), "start limit hit")
	})

	after := scrapeMetrics(t, apiC)
	for _, c := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"sockd_unit_spawns_total", demo, 3}, // the trigger, the restart, the broken build
		{"sockd_unit_spawns_total", bad, 2},
		{"sockd_unit_restarts_total", map[string]string{"unit": "demo.service", "outcome": "done"}, 1},
		{"sockd_unit_restarts_total", map[string]string{"unit": "demo.service", "outcome": "rolled-back"}, 1},
		{"sockd_unit_exits_total", map[string]string{"unit": "demo.service", "result": "exit-code"}, 1},
		{"sockd_unit_exits_total", map[string]string{"unit": "bad.service", "result": "exit-code"}, 2},
		{"sockd_unit_start_limit_hits_total", bad, 1},
		{"sockd_unit_ready_seconds", demo, 2},
		{"sockd_unit_restart_duration_seconds", demo, 2},
		{"sockd_reloads_total", map[string]string{"result": "success"}, 2}, // the start's load, and sockctl reload
		{"sockd_unit_processes", demo, 1},
		{"sockd_unit_phase", map[string]string{"unit": "demo.service", "state": "active", "phase": "running"}, 1},
		{"sockd_unit_phase", map[string]string{"unit": "bad.service", "state": "failed"}, 1},
		{"sockd_unit_generation", demo, 2},
		{"sockd_unit_generation_age_seconds", demo, 0},
		{"sockd_host_tcp_listen_drops_total", nil, 0},
		{"process_open_fds", nil, 1},
		{"process_resident_memory_bytes", nil, 1},
		{"go_goroutines", nil, 1},
	} {
		v, ok := sample(after, c.name, c.labels)
		if !ok || v < c.min {
			t.Errorf("%s%v = %v (present %v), want at least %v", c.name, c.labels, v, ok, c.min)
		}
	}
	if v, _ := sample(after, "sockd_unit_processes", bad); v != 0 {
		t.Errorf("bad.service has %v processes past its start limit", v)
	}

	// The TCP listener: the same metrics, and nothing else.
	tcpC := client("tcp", metricsAddr)
	if _, ok := sample(scrapeMetrics(t, tcpC), "sockd_unit_start_limit_hits_total", bad); !ok {
		t.Error("--metrics: no sockd_unit_start_limit_hits_total")
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/v1/units", 404},
		{"GET", "/v1/units/demo/logs", 404},
		{"GET", "/v1/version", 404},
		{"POST", "/v1/units/demo/stop", 404},
		{"POST", "/metrics", 405},
	} {
		req, _ := http.NewRequest(c.method, "http://sockd.test"+c.path, nil)
		resp, err := tcpC.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", c.method, c.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("--metrics %s %s: %s, want %d: %s", c.method, c.path, resp.Status, c.want, body)
		}
	}
	if st := s.status("demo"); st.Service.State != "active" {
		t.Errorf("demo is %s after the POST on the metrics listener", st.Service.State)
	}
}
