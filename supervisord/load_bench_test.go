package supervisord

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/testutil"
)

// BenchmarkOpen measures Daemon.Open (sockd's start up to "sockd
// ready") on a directory of n units, each a sleep service with one
// socket, Unix or TCP, and reports the heap the idle units keep, per
// unit. With -cpuprofile and -memprofile it is the profile of a start:
//
//	go test -run '^$' -bench 'Open/unix-10000' -benchtime 1x -cpuprofile cpu.out ./supervisord/
func BenchmarkOpen(b *testing.B) {
	for _, kind := range []string{"unix", "tcp"} {
		for _, n := range []int{1000, 10000} {
			b.Run(fmt.Sprintf("%s-%d", kind, n), func(b *testing.B) { benchOpen(b, kind, n) })
		}
	}
}

// idleHeap names a file for the heap profile of the idle units after
// Open, taken with every allocation sampled.
var idleHeap = flag.String("sockd.idleheap", "", "write the heap profile of the idle units after Open to this file (BenchmarkOpen)")

func benchOpen(b *testing.B, kind string, n int) {
	// One fd per socket: the units only listen, and the budget
	// (fdbudget.go) counts an idle unit for its socket alone.
	raiseNofile(b, uint64(n+1000))
	base := testutil.ShortDir(b)
	dir := filepath.Join(base, "units")
	writeScaleUnits(b, dir, base, kind, n, "/bin/sleep infinity")
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		g0, fd0 := runtime.NumGoroutine(), openFDs()
		if *idleHeap != "" {
			runtime.MemProfileRate = 1
		}
		var ru0 unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &ru0)
		d := New(Config{UnitsDir: dir, RuntimeDir: filepath.Join(base, "rt"), Log: zerolog.Nop()})
		start := time.Now()
		if err := d.Open(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(start).Microseconds())/float64(n), "µs/unit")
		// CPU is the figure to compare: on shared cores the wall time
		// swings with the neighbours' load.
		var ru1 unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &ru1)
		cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
		b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpuµs/unit")
		if got := d.Serving(); got != n {
			b.Fatalf("serving %d units, want %d (failed: %v)", got, n, d.Failed())
		}
		b.StopTimer()
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/float64(n), "heapB/unit")
		b.ReportMetric(float64(after.StackInuse-before.StackInuse)/float64(n), "stackB/unit")
		b.ReportMetric(float64(runtime.NumGoroutine()-g0)/float64(n), "goroutines/unit")
		b.ReportMetric(float64(openFDs()-fd0)/float64(n), "fds/unit")
		if *idleHeap != "" {
			writeHeap(b, *idleHeap)
			runtime.MemProfileRate = 512 * 1024
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := d.Shutdown(ctx); err != nil {
			b.Fatal(err)
		}
		cancel()
		os.RemoveAll(filepath.Join(base, "rt"))
		b.StartTimer()
	}
}

// writeScaleUnits writes n units into dir: u00000.socket on a Unix
// socket in sockDir (kind "unix") or on a TCP port of its own loopback
// address (kind "tcp"), and u00000.service running execStart.
func writeScaleUnits(b testing.TB, dir, sockDir, kind string, n int, execStart string) {
	b.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		name := fmt.Sprintf("u%05d", i)
		listen := filepath.Join(sockDir, name+".sock")
		if kind == "tcp" {
			// 127.77.0.0/16 on loopback: an address of its own for each
			// unit, one fixed port, no port taken by someone else.
			listen = "127.77." + strconv.Itoa(i/250) + "." + strconv.Itoa(i%250+1) + ":7077"
		}
		if err := os.WriteFile(filepath.Join(dir, name+".socket"), []byte("[Socket]\nListenStream="+listen+"\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".service"), []byte("[Service]\nExecStart="+execStart+"\n"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// raiseNofile raises RLIMIT_NOFILE to at least n (root may raise the
// hard limit too, outside a container), and puts it back after b.
func raiseNofile(b *testing.B, n uint64) {
	b.Helper()
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		b.Fatal(err)
	}
	if old.Cur >= n {
		return
	}
	nw := unix.Rlimit{Cur: n, Max: max(old.Max, n)}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &nw); err != nil {
		b.Fatalf("raise RLIMIT_NOFILE to %d: %v", n, err)
	}
	b.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &old) })
}

func writeHeap(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkReload measures Daemon.Reload on a directory of n units (a
// sleep service with one Unix socket each, as BenchmarkOpen), with
// nothing changed ("same") and with one service file rewritten before
// each reload ("one"). With -cpuprofile it is the profile of reloads:
//
//	go test -run '^$' -bench 'Reload/same-10000' -cpuprofile cpu.out ./supervisord/
func BenchmarkReload(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, what := range []string{"same", "one"} {
			b.Run(fmt.Sprintf("%s-%d", what, n), func(b *testing.B) { benchReload(b, what, n) })
		}
	}
}

func benchReload(b *testing.B, what string, n int) {
	raiseNofile(b, uint64(n+1000))
	base := testutil.ShortDir(b)
	dir := filepath.Join(base, "units")
	writeScaleUnits(b, dir, base, "unix", n, "/bin/sleep infinity")
	d := New(Config{UnitsDir: dir, RuntimeDir: filepath.Join(base, "rt"), Log: zerolog.Nop()})
	if err := d.Open(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			b.Error(err)
		}
	})
	ctx := context.Background()
	var cpu time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if what == "one" {
			b.StopTimer()
			body := fmt.Sprintf("[Service]\nExecStart=/bin/sleep %d\n", 100000+i)
			if err := os.WriteFile(filepath.Join(dir, "u00000.service"), []byte(body), 0o644); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		var ru0, ru1 unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &ru0)
		res, err := d.Reload(ctx)
		if err != nil {
			b.Fatal(err)
		}
		unix.Getrusage(unix.RUSAGE_SELF, &ru1)
		cpu += time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
		want := 0
		if what == "one" {
			want = 1
		}
		if len(res.Changed) != want || len(res.Added)+len(res.Removed) != 0 {
			b.Fatalf("reload: changed %v, added %v, removed %v; want %d changed", res.Changed, res.Added, res.Removed, want)
		}
	}
	// CPU is the figure to compare: on shared cores the wall time
	// swings with the neighbours' load.
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
}
