package supervisord

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/internal/testutil"
)

// TestOutputMemoryBounded runs a child that writes 200 MB without a
// newline and checks what sockd (this test process) holds: the output
// reaches the log ring in children.MaxLine pieces, the ring keeps its
// budget (1 MiB by default), and the heap stays bounded all along.
//
// It measures HeapInuse, sampled while the output flows and after a GC
// once the child is gone, against the value before. The brief's target
// is sockd's RSS under 40 MB; a test binary's RSS says little (the test
// framework and the race detector's shadow memory), so the test bounds
// the Go heap instead: while the output flows it holds the ring (1 MiB),
// the pipe buffers (64 KiB each), the unit's failure tail (20 lines) and
// the garbage of 64 KiB strings between two collections; a leak of the
// output, or a ring of 1,000 lines of 64 KiB, is 65 MB or more. Before
// this bound (a ring of 1,000 lines) it grew by 122 MiB at the peak and
// 62 MiB for good, and Logs(1000) returned 65 MB.
func TestOutputMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 200 MB through a pipe")
	}
	const total = 200_000_000
	base := testutil.ShortDir(t)
	dir := filepath.Join(base, "units")
	os.MkdirAll(dir, 0o755)
	script := filepath.Join(base, "spew")
	if err := os.WriteFile(script, []byte(fmt.Sprintf("#!/bin/sh\nhead -c %d /dev/zero | tr '\\0' x\n", total)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "spew.service"), []byte("[Service]\nExecStart="+script+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// No test writer: t.Log would keep every 64 KiB line in memory.
	d := New(Config{UnitsDir: dir, RuntimeDir: filepath.Join(base, "rt"), Log: zerolog.Nop()})
	d.roots = testRoots(t)
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	heapInuse := func() uint64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	// The bound is on what sockd keeps, not on the garbage the GC's pace
	// lets pile up between cycles (with GOGC=100 the heap may double its
	// live size, which the earlier tests of the package make ~20 MiB):
	// a tight pace for the test's length.
	defer debug.SetGCPercent(debug.SetGCPercent(20))
	runtime.GC()
	before := heapInuse()
	var (
		mu   sync.Mutex
		peak uint64
	)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				h := heapInuse()
				mu.Lock()
				peak = max(peak, h)
				mu.Unlock()
			}
		}
	}()

	start := time.Now()
	if err := d.Start(ctx, "spew"); err != nil {
		t.Fatal(err)
	}
	for {
		st, err := d.Status(ctx, "spew")
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Service.Pids) == 0 && st.Service.Result != "" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the child did not finish: %+v", st.Service)
		case <-time.After(50 * time.Millisecond):
		}
	}
	took := time.Since(start)
	close(stop)
	<-sampled
	runtime.GC()
	after := heapInuse()

	ls, err := d.Logs(ctx, "spew", api.LogQuery{N: 1000})
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, l := range ls {
		size += len(l.Line)
		if strings.Trim(l.Line, "x") != "" || len(l.Line) > children.MaxLine {
			t.Fatalf("a line of %d bytes that is not all x", len(l.Line))
		}
	}
	const mib = 1 << 20
	t.Logf("200 MB in %v: HeapInuse %.1f MiB before, peak %.1f MiB, %.1f MiB after; Logs(1000): %d lines, %d bytes",
		took.Round(time.Millisecond), float64(before)/mib, float64(peak)/mib, float64(after)/mib, len(ls), size)
	if size > DefaultLogBufferBytes {
		t.Errorf("Logs(1000) returned %d bytes, more than the %d byte budget", size, DefaultLogBufferBytes)
	}
	if len(ls) < 10 || len(ls[len(ls)-1].Line) != total%children.MaxLine {
		t.Errorf("Logs(1000): %d lines, the last of %d bytes, want the last piece of %d", len(ls), len(ls[len(ls)-1].Line), total%children.MaxLine)
	}
	if peak > before+16*mib {
		t.Errorf("HeapInuse grew by %.1f MiB while the output flowed (bound 16 MiB)", float64(peak-before)/mib)
	}
	if after > before+8*mib {
		t.Errorf("HeapInuse grew by %.1f MiB for good (bound 8 MiB)", float64(after-before)/mib)
	}
}
