package supervisord

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sockd/sockd/internal/testutil"
)

const (
	// churnUnits is how many units TestChurnMemoryFlat starts and stops,
	// churnAtOnce of them at a time.
	churnUnits, churnAtOnce = 200, 25
	// churnUnitBytes bounds the heap a unit that ran once, printed a
	// line and stopped keeps beyond its idle cost: its log ring (from
	// 256 bytes), its last exit and result. Measured when written: about
	// 600 bytes per unit (9.3 KB before a finished job's waiters, a
	// drained process and its 90 s start-timeout timer, and a 4 KiB first
	// ring stopped being kept); the test fails at 1,500. Goroutine stacks
	// are not counted: the runtime keeps up to 64 dead goroutines' stacks
	// per P for reuse, whatever the number of units.
	churnUnitBytes = 1500
)

// TestChurnMemoryFlat: memory stays flat under churn. churnUnits idle
// units are each started (a process that prints a line and sleeps) and
// stopped, churnAtOnce at a time; what sockd keeps afterwards (live heap
// after a GC) is bounded per unit, its goroutines and OS threads come
// back. With CHURNPROF=1 it writes heap profiles before and after
// (/tmp/c0.prof, /tmp/c1.prof: go tool pprof -base /tmp/c0.prof …).
func TestChurnMemoryFlat(t *testing.T) {
	if os.Getenv("CHURNPROF") != "" {
		runtime.MemProfileRate = 1
	}
	base := testutil.ShortDir(t)
	dir := filepath.Join(base, "units")
	writeScaleUnits(t, dir, base, "unix", churnUnits, "/bin/sh -c 'echo hello from %n; exec sleep 1000'")
	d := New(Config{UnitsDir: dir, RuntimeDir: filepath.Join(base, "rt"), Log: zerolog.New(io.Discard)})
	d.roots = testRoots(t)
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
	type mem struct {
		heap, stack uint64
		goroutines  int
		threads     int
	}
	measure := func() mem {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		stack := uint64(float64(ms.StackInuse) / stackScale())
		return mem{ms.HeapAlloc, stack, runtime.NumGoroutine(), threadCount(t)}
	}
	before := measure()
	prof := func(f string) {
		if os.Getenv("CHURNPROF") != "" {
			runtime.GC()
			w, _ := os.Create(f)
			pprof.Lookup("heap").WriteTo(w, 0)
			w.Close()
		}
	}
	prof("/tmp/c0.prof")

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	names := make(chan string)
	var wg sync.WaitGroup
	for range churnAtOnce {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range names {
				if err := d.Start(ctx, name); err != nil {
					t.Errorf("start %s: %v", name, err)
					continue
				}
				if err := d.Stop(ctx, name); err != nil {
					t.Errorf("stop %s: %v", name, err)
				}
			}
		}()
	}
	for i := range churnUnits {
		names <- fmt.Sprintf("u%05d", i)
	}
	close(names)
	wg.Wait()
	if t.Failed() {
		return
	}
	// Every unit listens again, and each kept its line.
	list, err := d.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range list {
		if u.Service.SubState != "listening" {
			t.Fatalf("%s: %s/%s after the churn", u.Name, u.Service.State, u.Service.SubState)
		}
	}
	list = nil
	// The processes' output readers end within OutputGrace of their exit.
	var after mem
	deadline := time.Now().Add(10 * time.Second)
	for {
		after = measure()
		if after.goroutines <= before.goroutines || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // nothing to await: the readers' ends are not events
	}
	prof("/tmp/c1.prof")
	per := (float64(after.heap) - float64(before.heap)) / churnUnits
	t.Logf("%d units churned %d at a time: %.0f bytes of heap per unit kept (stacks %+d KB in all); goroutines %d → %d, threads %d → %d",
		churnUnits, churnAtOnce, per, (int64(after.stack)-int64(before.stack))>>10,
		before.goroutines, after.goroutines, before.threads, after.threads)
	if per > churnUnitBytes {
		t.Errorf("a unit that ran once keeps %.0f bytes of heap more than idle, over %d", per, churnUnitBytes)
	}
	if after.goroutines > before.goroutines {
		t.Errorf("goroutines %d → %d", before.goroutines, after.goroutines)
	}
	if after.threads > before.threads+churnAtOnce/2 {
		t.Errorf("threads %d → %d with %d processes at a time: a thread per process", before.threads, after.threads, churnAtOnce)
	}
}

// threadCount is how many OS threads this process has.
func threadCount(t *testing.T) int {
	t.Helper()
	fis, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	return len(fis)
}
