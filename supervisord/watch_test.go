package supervisord

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/testutil"
)

// Watch picks up a new unit, a drop-in written into a new .d directory,
// and a removed unit, each once the directory is quiet.
func TestWatch(t *testing.T) {
	base := testutil.ShortDir(t)
	dir := filepath.Join(base, "units")
	os.MkdirAll(dir, 0o755)
	self, _ := os.Executable()
	svc := "[Service]\nExecStart=" + self + "\nEnvironment=SOCKD_TEST_CHILD=serve GORACE=atexit_sleep_ms=0\nType=notify\n"
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.socket", "[Socket]\nListenStream="+filepath.Join(base, "a.sock")+"\n")
	write("a.service", svc)
	reloads := make(chan api.ReloadResult, 8)
	d := New(Config{UnitsDir: dir, RuntimeDir: filepath.Join(base, "rt"),
		Log:      zerolog.New(zerolog.NewTestWriter(t)),
		Reloaded: func(r api.ReloadResult) { reloads <- r }})
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	watched, err := d.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-watched; err != nil {
			t.Error(err)
		}
		sctx, c := context.WithTimeout(context.Background(), 30*time.Second)
		defer c()
		d.Shutdown(sctx)
	})
	next := func(what string) api.ReloadResult {
		t.Helper()
		select {
		case r := <-reloads:
			return r
		case <-time.After(10 * time.Second):
			t.Fatalf("no reload after %s", what)
		}
		return api.ReloadResult{}
	}

	write("b.socket", "[Socket]\nListenStream="+filepath.Join(base, "b.sock")+"\n")
	write("b.service", svc)
	if r := next("a new unit"); !slices.Contains(r.Added, "b.service") {
		t.Fatalf("reload %+v, want b.service added", r)
	}
	write("b.service.d/env.conf", "[Service]\nEnvironment=CHILD_TAG=dropin\n")
	if r := next("a new drop-in"); !slices.Contains(r.Changed, "b.service") {
		t.Fatalf("reload %+v, want b.service changed", r)
	}
	os.Remove(filepath.Join(dir, "b.socket"))
	os.Remove(filepath.Join(dir, "b.service"))
	if r := next("removing b"); !slices.Contains(r.Removed, "b.service") {
		t.Fatalf("reload %+v, want b.service removed", r)
	}
	if _, err := d.Status(ctx, "b"); err == nil {
		t.Fatal("b still loaded")
	}
	if _, err := os.Stat(filepath.Join(base, "b.sock")); !os.IsNotExist(err) {
		t.Fatalf("b's socket file left: %v", err)
	}
}
