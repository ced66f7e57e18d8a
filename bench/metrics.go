package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// metricsScrapes is how many scrapes the metrics row takes the median of.
const metricsScrapes = 20

// metricsScrape measures GET /metrics over the API socket of s, a sockd
// with scaleUnits units: what a Prometheus scrape costs, wall time from
// the request to the last byte, on one kept-alive connection as a
// scraper holds it.
func metricsScrape(ctx context.Context, s *sockdProc, res *results) error {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", s.apiPath)
		},
	}}
	defer hc.CloseIdleConnections()
	var (
		took  []time.Duration
		size  int
		units int
	)
	for range metricsScrapes {
		req, err := http.NewRequestWithContext(ctx, "GET", "http://sockd/metrics", nil)
		if err != nil {
			return err
		}
		t0 := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return fmt.Errorf("GET /metrics: %w", err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if err != nil {
			return fmt.Errorf("GET /metrics: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /metrics: %s: %.200s", resp.Status, body)
		}
		took = append(took, d)
		size = len(body)
		units = bytes.Count(body, []byte("\nsockd_unit_phase{"))
	}
	if units < scaleUnits {
		return fmt.Errorf("GET /metrics: sockd_unit_phase for %d units of %d", units, scaleUnits)
	}
	m := median(took)
	res.add(row{
		figure: "scale: `GET /metrics` with 1,000 units over the API socket, wall time (median of 20)",
		sockd:  ms(m),
		peer:   fmt.Sprintf("min %s, max %s; %d KB", ms(minD(took)), ms(maxD(took)), size/1024),
		target: "< 50 ms",
		met:    yesNo(m < 50*time.Millisecond),
	})
	if m >= 50*time.Millisecond {
		res.note("scale: a /metrics scrape takes %s, %s over 50 ms", ms(m), ms(m-50*time.Millisecond))
	}
	return nil
}
