package supervisord

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/testutil"
)

// manyUnits starts a Daemon on n idle units, each a service behind one
// Unix socket in a temporary directory (nothing is spawned: no
// connection comes). The fd budget is lifted: the test's RLIMIT_NOFILE
// is what limits it.
func manyUnits(tb testing.TB, n int) *Daemon {
	tb.Helper()
	base := testutil.ShortDir(tb)
	dir := filepath.Join(base, "units")
	os.MkdirAll(dir, 0o755)
	for i := range n {
		name := fmt.Sprintf("u%05d", i)
		os.WriteFile(filepath.Join(dir, name+".socket"), []byte("[Socket]\nListenStream="+filepath.Join(base, name)+"\n"), 0o644)
		os.WriteFile(filepath.Join(dir, name+".service"), []byte("[Service]\nExecStart=/bin/sleep 1000\n"), 0o644)
	}
	d := New(Config{UnitsDir: dir, RuntimeDir: filepath.Join(base, "rt"), Log: zerolog.Nop()})
	d.fds.limitOf = func() int { return 0 }
	if err := d.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
	})
	return d
}

// serveListAPI serves d's API on a Unix socket and returns a client of it.
func serveListAPI(tb testing.TB, d *Daemon) *api.Client {
	tb.Helper()
	path := filepath.Join(testutil.ShortDir(tb), "api.sock")
	l, err := api.Listen(path, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	srv := &api.Server{Backend: d, Log: zerolog.Nop()}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	})
	return &api.Client{Path: path}
}

// BenchmarkList measures Daemon.List, and GET /v1/units through the API
// server's handler (the JSON encoding included), at 1,000 and 10,000
// idle units.
func BenchmarkList(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		d := manyUnits(b, n)
		ctx := context.Background()
		b.Run(fmt.Sprintf("daemon/units=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				l, err := d.List(ctx)
				if err != nil || len(l) != n {
					b.Fatalf("list: %d units, %v", len(l), err)
				}
			}
		})
		cl := serveListAPI(b, d)
		b.Run(fmt.Sprintf("client/units=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				l, err := cl.List(ctx)
				if err != nil || len(l) != n {
					b.Fatalf("list: %d units, %v", len(l), err)
				}
			}
		})
		b.Run(fmt.Sprintf("client-one/units=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				l, err := cl.ListFiltered(ctx, api.ListOptions{Names: []string{"u00042"}})
				if err != nil || len(l) != 1 {
					b.Fatalf("list: %d units, %v", len(l), err)
				}
			}
		})
	}
}
