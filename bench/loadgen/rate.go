package main

import (
	"context"
	"flag"
	"time"
)

var rate = flag.Float64("rate", 0, "requests per second over all workers; 0 for as fast as they go")

// pacer spaces the requests of all workers evenly at -rate per second.
type pacer struct{ tick *time.Ticker }

func newPacer() *pacer {
	if *rate <= 0 {
		return &pacer{}
	}
	return &pacer{tick: time.NewTicker(time.Duration(float64(time.Second) / *rate))}
}

// wait blocks until the next request may go; false when ctx ended.
func (p *pacer) wait(ctx context.Context) bool {
	if p.tick == nil {
		return ctx.Err() == nil
	}
	select {
	case <-p.tick.C:
		return true
	case <-ctx.Done():
		return false
	}
}
