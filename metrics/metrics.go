// Package metrics is sockd's Prometheus exposition: counters and
// histograms fed by the lifecycle events (api.UnitEvent, through
// Observe), gauges read from the units' status when someone scrapes
// (nothing is polled in between), the host's listen-queue drop counters,
// and sockd's own process and Go runtime figures. It owns a private
// registry; Handler serves it. It knows nothing of supervision: it reads
// api types through the narrow Source interface.
//
// The metric list, with types and labels, is in docs/api.md.
package metrics

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sockd/sockd/api"
)

// Source is what a scrape reads: the status of every unit (the
// supervisor's List).
type Source interface {
	List(ctx context.Context) ([]api.UnitStatus, error)
}

// Options are the knobs of New; the zero value is fine.
type Options struct {
	// NetstatPath is the file of the kernel's TCP extended counters;
	// "" means /proc/net/netstat.
	NetstatPath string
	// ListTimeout bounds a scrape's reading of the units; 0 means 10 s.
	ListTimeout time.Duration
	// ErrorLog, if set, is told of a scrape's errors (the rest of the
	// metrics are still served).
	ErrorLog promhttp.Logger
}

// Buckets of the two histograms, in seconds.
var (
	readyBuckets   = []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
	restartBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}
)

// Metrics is sockd's metrics. Observe may be called from any goroutine;
// it only moves counters and must stay cheap (it runs on the publisher's
// goroutine, a unit's actor).
type Metrics struct {
	reg     *prometheus.Registry
	opts    Options
	handler http.Handler

	spawns       *prometheus.CounterVec
	exits        *prometheus.CounterVec
	restarts     *prometheus.CounterVec
	startLimit   *prometheus.CounterVec
	triggerLimit *prometheus.CounterVec
	watchdog     *prometheus.CounterVec
	ready        *prometheus.HistogramVec
	restartTime  *prometheus.HistogramVec
	reloads      *prometheus.CounterVec

	mu   sync.Mutex
	src  Source
	gens map[string]*genTrack // by unit
	// second labels holds, by unit, the values of the second label
	// (exits' result, restarts' outcome) it has series for, so that
	// forget deletes them by their labels: DeletePartialMatch scans every
	// series, and 10,000 units removed at once (a stop) were 10,000 scans
	// of 10,000 under one lock.
	second map[string][]series
}

// perUnit are the vectors whose only label is the unit.
func (m *Metrics) perUnit() []*prometheus.CounterVec {
	return []*prometheus.CounterVec{m.spawns, m.startLimit, m.triggerLimit, m.watchdog}
}

// New returns the metrics with every collector registered; call
// SetSource before serving for the per-unit gauges.
func New(opts Options) *Metrics {
	if opts.NetstatPath == "" {
		opts.NetstatPath = "/proc/net/netstat"
	}
	if opts.ListTimeout <= 0 {
		opts.ListTimeout = 10 * time.Second
	}
	unit := []string{"unit"}
	m := &Metrics{
		reg:    prometheus.NewRegistry(),
		opts:   opts,
		gens:   map[string]*genTrack{},
		second: map[string][]series{},
		spawns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sockd_unit_spawns_total",
			Help: "Processes started for the unit (each instance, each restart)."}, unit),
		exits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sockd_unit_exits_total",
			Help: "Processes of the unit that ended, by how sockd judged the exit (success, exit-code, signal, timeout, watchdog, ...)."},
			[]string{"unit", "result"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sockd_unit_restarts_total",
			Help: "Restarts of the unit (sockctl restart, a deploy) by outcome: done, rolled-back or failed."},
			[]string{"unit", "outcome"}),
		startLimit: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sockd_unit_start_limit_hits_total",
			Help: "Times the unit hit its start limit (StartLimitBurst= within StartLimitIntervalSec=)."}, unit),
		triggerLimit: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sockd_unit_trigger_limit_hits_total",
			Help: "Times a socket of the unit hit its trigger limit (TriggerLimitBurst= within TriggerLimitIntervalSec=)."}, unit),
		watchdog: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sockd_unit_watchdog_timeouts_total",
			Help: "Processes of the unit that missed their watchdog (WatchdogSec=)."}, unit),
		ready: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sockd_unit_ready_seconds",
			Help: "Time from a process's spawn to its readiness (READY=1, or at once for Type=simple).", Buckets: readyBuckets}, unit),
		restartTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sockd_unit_restart_duration_seconds",
			Help: "Length of the unit's restarts, from the request to the last old process gone (or the rollback).", Buckets: restartBuckets}, unit),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sockd_reloads_total",
			Help: "Reloads of the unit directory, by result: success, unit-errors (applied; some unit files have errors and their units were left as they were) or failed."},
			[]string{"result"}),
	}
	m.reg.MustRegister(m.spawns, m.exits, m.restarts, m.startLimit, m.triggerLimit, m.watchdog, m.ready, m.restartTime, m.reloads,
		&unitCollector{m: m}, &netstatCollector{path: opts.NetstatPath},
		withoutNetwork{collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})}, collectors.NewGoCollector())
	for _, r := range []string{"success", "unit-errors", "failed"} {
		m.reloads.WithLabelValues(r)
	}
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      opts.ErrorLog,
		ErrorHandling: promhttp.ContinueOnError,
		// Each scrape asks every unit's actor for its status: a
		// flood of scrapes (the TCP listener has no access rules)
		// gets 503 instead of queueing.
		MaxRequestsInFlight: 4,
	})
	return m
}

// SetSource sets where scrapes read the units from.
func (m *Metrics) SetSource(src Source) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.src = src
}

// Gatherer is the registry, for tests and tools that read the metrics
// without HTTP.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Handler serves the metrics in the Prometheus text format (GET /metrics).
func (m *Metrics) Handler() http.Handler { return m.handler }

// Observe counts one lifecycle event: supervisord.Config.OnEvent.
func (m *Metrics) Observe(ev api.UnitEvent) {
	switch ev.Kind {
	case api.EventAdded:
		// Made at zero so that rate() sees the first spawn. The rarer
		// counters appear at their first event: a scrape of 1,000 idle
		// units would otherwise be mostly zeros (make bench times it).
		m.spawns.WithLabelValues(ev.Unit)
	case api.EventRemoved:
		m.forget(ev.Unit)
	case api.EventSpawned:
		m.spawns.WithLabelValues(ev.Unit).Inc()
		m.spawned(ev)
	case api.EventReady:
		m.ready.WithLabelValues(ev.Unit).Observe(float64(ev.Millis) / 1000)
	case api.EventExited:
		result := ev.Result
		if result == "" {
			result = "unknown"
		}
		m.exits.WithLabelValues(ev.Unit, result).Inc()
		m.seen(ev.Unit, series{m.exits, result})
	case api.EventRestartDone:
		m.restarts.WithLabelValues(ev.Unit, ev.Outcome).Inc()
		m.seen(ev.Unit, series{m.restarts, ev.Outcome})
		m.restartTime.WithLabelValues(ev.Unit).Observe(float64(ev.Millis) / 1000)
		if ev.Outcome != "done" {
			m.rolledBack(ev.Unit)
		}
	case api.EventStartLimit:
		m.startLimit.WithLabelValues(ev.Unit).Inc()
	case api.EventTriggerLimit:
		m.triggerLimit.WithLabelValues(ev.Unit).Inc()
	case api.EventWatchdog:
		m.watchdog.WithLabelValues(ev.Unit).Inc()
	case api.EventReload:
		result := ev.Outcome
		if result == "" {
			result = "success"
		}
		m.reloads.WithLabelValues(result).Inc()
	}
}

// forget drops every series of a removed unit. A reload that re-opens a
// unit's sockets removes and adds it: its counters start again at zero,
// which rate() takes as a counter reset.
func (m *Metrics) forget(unit string) {
	for _, v := range m.perUnit() {
		v.DeleteLabelValues(unit)
	}
	m.ready.DeleteLabelValues(unit)
	m.restartTime.DeleteLabelValues(unit)
	m.mu.Lock()
	second := m.second[unit]
	delete(m.second, unit)
	delete(m.gens, unit)
	m.mu.Unlock()
	for _, s := range second {
		s.vec.DeleteLabelValues(unit, s.value)
	}
}

// series is one of a unit's series of a vector labelled (unit, value).
type series struct {
	vec   *prometheus.CounterVec
	value string
}

// seen records that unit has the series s.
func (m *Metrics) seen(unit string, s series) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !slices.Contains(m.second[unit], s) {
		m.second[unit] = append(m.second[unit], s)
	}
}

// withoutNetwork is the process collector less process_network_*: on
// Linux those are read from /proc/PID/net/dev, the whole network
// namespace's traffic, not sockd's, and would mislead.
type withoutNetwork struct{ prometheus.Collector }

func isNetwork(d *prometheus.Desc) bool {
	return strings.Contains(d.String(), `"process_network_`)
}

func (w withoutNetwork) Describe(ch chan<- *prometheus.Desc) {
	all := make(chan *prometheus.Desc)
	go func() {
		w.Collector.Describe(all)
		close(all)
	}()
	for d := range all {
		if !isNetwork(d) {
			ch <- d
		}
	}
}

func (w withoutNetwork) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric)
	go func() {
		w.Collector.Collect(all)
		close(all)
	}()
	for m := range all {
		if !isNetwork(m.Desc()) {
			ch <- m
		}
	}
}
