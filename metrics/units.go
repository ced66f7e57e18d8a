package metrics

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockd/sockd/api"
)

// The gauges read from the units' status at scrape time.
var (
	descProcesses = prometheus.NewDesc("sockd_unit_processes",
		"Processes of the unit sockd runs now (every instance, a restart's new and draining ones).", []string{"unit"}, nil)
	descPhase = prometheus.NewDesc("sockd_unit_phase",
		"The unit's phase: 1 for the current one, with its systemd state (inactive, activating, active, deactivating, failed) and sub-state (listening, running, restart, auto-restart, ...).",
		[]string{"unit", "state", "phase"}, nil)
	descGeneration = prometheus.NewDesc("sockd_unit_generation",
		"The unit's current generation: it grows by one with each start and each restart that completes.", []string{"unit"}, nil)
	descGenerationAge = prometheus.NewDesc("sockd_unit_generation_age_seconds",
		"Seconds since the first process of the unit's current generation was spawned; absent when this sockd did not see it spawn (before a re-exec, after a rollback).",
		[]string{"unit"}, nil)
	descQueueDepth = prometheus.NewDesc("sockd_socket_queue_depth",
		"Connections waiting in a listening stream socket's accept queue (ss -lt's Recv-Q); only where sockd can read it.",
		[]string{"unit", "socket", "listen"}, nil)
	descBacklog = prometheus.NewDesc("sockd_socket_backlog",
		"How many connections a listening stream socket's accept queue holds (ss -lt's Send-Q); only where the depth is known.",
		[]string{"unit", "socket", "listen"}, nil)
)

// genTrack is when each generation of a unit started, as its spawned
// events tell.
type genTrack struct {
	last  int               // the generation of the last spawned event; 0 after a rollback
	start map[int]time.Time // a generation's first spawn
}

// spawned records the start of a new generation: a spawned event whose
// generation differs from the one before. A rolling restart's instances
// spawn one by one in the same generation; a rolled-back generation's
// number is used again by the next start, which rolledBack allows.
func (m *Metrics) spawned(ev api.UnitEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.gens[ev.Unit]
	if t == nil {
		t = &genTrack{start: map[int]time.Time{}}
		m.gens[ev.Unit] = t
	}
	if ev.Gen != t.last {
		t.start[ev.Gen] = ev.Time
		t.last = ev.Gen
	}
}

// rolledBack forgets the generation a restart that did not complete
// spawned.
func (m *Metrics) rolledBack(unit string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.gens[unit]; t != nil {
		delete(t.start, t.last)
		t.last = 0
	}
}

// genStarts returns when each unit's current generation started, where
// known, and forgets older generations.
func (m *Metrics) genStarts(list []api.UnitStatus) map[string]time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]time.Time, len(m.gens))
	for _, u := range list {
		t := m.gens[u.Name]
		if t == nil {
			continue
		}
		cur := u.Service.Generation
		for g := range t.start {
			if g < cur {
				delete(t.start, g)
			}
		}
		if at, ok := t.start[cur]; ok {
			out[u.Name] = at
		}
	}
	return out
}

// unitCollector reads every unit's status when the registry is gathered.
type unitCollector struct{ m *Metrics }

func (c *unitCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descProcesses, descPhase, descGeneration, descGenerationAge, descQueueDepth, descBacklog} {
		ch <- d
	}
}

func (c *unitCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	src := c.m.src
	c.m.mu.Unlock()
	if src == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.m.opts.ListTimeout)
	defer cancel()
	list, err := src.List(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descProcesses, fmt.Errorf("list units: %w", err))
		return
	}
	starts := c.m.genStarts(list)
	now := time.Now()
	seen := make(map[string]bool, len(list))
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, u := range list {
		if seen[u.Name] {
			continue // listed twice (a unit removed and added meanwhile): one series each
		}
		seen[u.Name] = true
		svc := u.Service
		gauge(descProcesses, float64(len(svc.Pids)), u.Name)
		gauge(descPhase, 1, u.Name, svc.State, svc.SubState)
		gauge(descGeneration, float64(svc.Generation), u.Name)
		if at, ok := starts[u.Name]; ok {
			gauge(descGenerationAge, now.Sub(at).Seconds(), u.Name)
		}
		for _, s := range u.Sockets {
			if s.QueueDepth == nil {
				continue
			}
			gauge(descQueueDepth, float64(*s.QueueDepth), u.Name, s.Unit, s.Listen)
			gauge(descBacklog, float64(s.Backlog), u.Name, s.Unit, s.Listen)
		}
	}
}
