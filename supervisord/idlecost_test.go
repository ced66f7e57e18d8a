package supervisord

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sockd/sockd/internal/testutil"
)

const (
	// idleCostUnits is how many idle units TestIdleUnitCost loads: the
	// cost per unit is the same at 1,000 as at 2,000, and 1,000 keeps
	// the test short under -race.
	idleCostUnits = 1000
	// idleUnitBytes is what an idle unit of one Unix socket costs sockd's
	// heap and goroutine stacks (HeapAlloc + StackInuse after a GC),
	// measured at 1,000 and 2,000 units, Go 1.26. The test fails at
	// twice this figure. Lower it when the cost falls, so that the
	// bound keeps guarding what was won. History: 11,550 at the start
	// of issue 14 (7,430 of heap, 4,120 of the unit's goroutine's
	// stack); 5,760 once idle actors park (park.go: no goroutine, a
	// 2-event queue, the mailbox's map and the actor's context made
	// when first used); about 6,500 with the reload's cache of what each
	// file was (units.Cache, ~1 KB per unit), merged after.
	idleUnitBytes = 5760
)

// stackScale is how much larger the race detector makes goroutine
// stacks (the runtime's stackGuardMultiplier is 2 with -race): stacks
// are divided by it, so that the bound means the same in both builds.
func stackScale() float64 {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				return 2
			}
		}
	}
	return 1
}

// TestIdleUnitCost loads idleCostUnits idle units (each one Unix socket
// in a temporary directory, its service never started) into a Daemon in
// this process and bounds what each unit keeps while idle: the growth of
// the live heap and of the goroutine stacks, after a GC, per unit. With
// HEAPPROF=FILE it writes the heap profile of the loaded units there,
// every allocation sampled (go tool pprof -sample_index=inuse_space).
func TestIdleUnitCost(t *testing.T) {
	if os.Getenv("HEAPPROF") != "" {
		runtime.MemProfileRate = 1
	}
	base := testutil.ShortDir(t)
	dir := filepath.Join(base, "units")
	writeScaleUnits(t, dir, base, "unix", idleCostUnits, "/bin/sleep 1000")

	live := func() (heap, stack uint64, goroutines int) {
		runtime.GC()
		runtime.GC() // the first may leave finalizers' objects for the second
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc, ms.StackInuse, runtime.NumGoroutine()
	}
	d := New(Config{UnitsDir: dir, RuntimeDir: filepath.Join(base, "rt"), Log: zerolog.New(io.Discard)})
	d.roots = testRoots(t)
	heap0, stack0, g0 := live()
	t0 := time.Now()
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	opened := time.Since(t0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := d.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	listening := 0
	for _, u := range list {
		if strings.HasPrefix(u.Name, "u") && u.Service.SubState == "listening" {
			listening++
		}
	}
	if listening != idleCostUnits {
		t.Fatalf("%d of %d units listening", listening, idleCostUnits)
	}
	list = nil
	heap1, stack1, g1 := live()
	if f := os.Getenv("HEAPPROF"); f != "" {
		w, _ := os.Create(f)
		pprof.Lookup("heap").WriteTo(w, 0)
		w.Close()
	}
	perHeap := (float64(heap1) - float64(heap0)) / idleCostUnits
	perStack := (float64(stack1) - float64(stack0)) / idleCostUnits / stackScale()
	per := perHeap + perStack
	t.Logf("%d idle units, opened in %s: %.0f bytes per unit (heap %.0f, stacks %.0f, as without -race), %.2f goroutines per unit",
		idleCostUnits, opened.Round(time.Millisecond), per, perHeap, perStack, float64(g1-g0)/idleCostUnits)
	if g := float64(g1-g0) / idleCostUnits; g > 0.01 {
		t.Errorf("%.2f goroutines per idle unit: an idle unit's actor parks and has none (park.go)", g)
	}
	if per > 2*idleUnitBytes {
		t.Errorf("an idle unit costs %.0f bytes of heap and stacks, over twice the %d measured when this test was written", per, idleUnitBytes)
	}
}
