package supervisord

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
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
	ctx := openWatched(t, d)
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

// openWatched opens d and watches its unit directory until the test
// ends, when the watch must end cleanly and d shuts down. The context
// is the watch's.
func openWatched(t *testing.T, d *Daemon) context.Context {
	t.Helper()
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after the watch's end, below
		sctx, c := context.WithTimeout(context.Background(), 30*time.Second)
		defer c()
		d.Shutdown(sctx)
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	watched, err := d.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-watched; err != nil {
			t.Error(err)
		}
	})
	return ctx
}

// logSpy passes a log on to the test's log and tells of each line
// that has a given message.
type logSpy struct {
	w    io.Writer
	msg  string
	seen chan struct{}
}

func (l *logSpy) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(l.msg)) {
		select {
		case l.seen <- struct{}{}:
		default:
		}
	}
	return l.w.Write(p)
}

// The unit directory removed under a serving unit: the unit keeps its
// process and nothing is reloaded; the directory's return is reloaded,
// and later edits in it (a new drop-in, a new unit, a removed drop-in
// directory) are picked up.
func TestWatchUnitDirGoneAndBack(t *testing.T) {
	base := testutil.ShortDir(t)
	e := &env{t: t, dir: filepath.Join(base, "units"), sock: filepath.Join(base, "app.sock")}
	files := map[string]string{
		"app.socket":  "[Socket]\nListenStream=" + e.sock + "\n",
		"app.service": e.service(notifyService),
	}
	writeAll := func() {
		os.MkdirAll(e.dir, 0o755)
		for name, content := range files {
			e.write(name, content)
		}
	}
	writeAll()
	gone := &logSpy{w: zerolog.NewTestWriter(t), msg: "the unit directory is gone", seen: make(chan struct{}, 4)}
	reloads := make(chan api.ReloadResult, 16)
	e.obs = make(chan api.ServiceStatus, 1024)
	e.d = New(Config{UnitsDir: e.dir, RuntimeDir: filepath.Join(base, "rt"), Log: zerolog.New(gone),
		Reloaded: func(r api.ReloadResult) { reloads <- r },
		Observe: func(unit string, st api.ServiceStatus) {
			select {
			case e.obs <- st:
			default:
			}
		}})
	e.d.roots = testRoots(t)
	if err := e.d.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		e.d.Shutdown(ctx)
	})
	pid, _ := e.mustGet()

	ctx, cancel := context.WithCancel(context.Background())
	watched, err := e.d.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	start := time.Now()
	if err := os.RemoveAll(e.dir); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gone.seen:
	case <-time.After(10 * time.Second):
		t.Fatal("the directory's removal was not noticed")
	}
	t.Logf("removal noticed after %v", time.Since(start))
	// Long enough for a reload the removed files had scheduled to run.
	time.Sleep(2 * watchSettle)
	select {
	case r := <-reloads:
		t.Fatalf("reloaded while the directory was gone: %+v", r)
	default:
	}
	if p, _ := e.mustGet(); p != pid {
		t.Fatalf("pid %d while the directory was gone, was %d", p, pid)
	}

	// Back with the same files: reloaded, nothing changes.
	start = time.Now()
	writeAll()
	select {
	case r := <-reloads:
		if len(r.Added)+len(r.Removed)+len(r.Changed) != 0 {
			t.Fatalf("reload %+v after the same files came back, want no change", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reload after the directory came back")
	}
	t.Logf("return reloaded after %v", time.Since(start))

	// Then edited: the new directory is watched, and so is a new
	// drop-in directory in it.
	start = time.Now()
	os.MkdirAll(filepath.Join(e.dir, "app.service.d"), 0o755)
	e.write("app.service.d/tag.conf", "[Service]\nEnvironment=CHILD_TAG=back\n")
	e.write("extra.socket", "[Socket]\nListenStream="+filepath.Join(base, "extra.sock")+"\n")
	e.write("extra.service", e.service(notifyService))
	var changed, added bool
	deadline := time.After(10 * time.Second)
	for !changed || !added {
		select {
		case r := <-reloads:
			if slices.Contains(r.Removed, "app.service") {
				t.Fatalf("reload %+v removed app", r)
			}
			changed = changed || slices.Contains(r.Changed, "app.service")
			added = added || slices.Contains(r.Added, "extra.service")
		case <-deadline:
			t.Fatalf("edits after the return: changed %v, added %v", changed, added)
		}
	}
	t.Logf("edits applied after %v", time.Since(start))
	if _, err := e.d.Status(ctx, "extra"); err != nil {
		t.Fatal(err)
	}

	// The drop-in directory is watched again: removing it is seen.
	start = time.Now()
	os.RemoveAll(filepath.Join(e.dir, "app.service.d"))
	select {
	case r := <-reloads:
		if !slices.Contains(r.Changed, "app.service") {
			t.Fatalf("reload %+v, want app.service changed", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reload after removing the drop-in directory")
	}
	t.Logf("drop-in removal applied after %v", time.Since(start))
	if p, _ := e.mustGet(); p != pid {
		t.Fatalf("pid %d after the directory came back, was %d", p, pid)
	}
	select {
	case <-gone.seen:
		t.Fatal("the removal was logged more than once")
	default:
	}

	cancel()
	if err := <-watched; err != nil {
		t.Error(err)
	}
	if g := watchGoroutines(); g != "" {
		t.Errorf("the watch's goroutines outlive it:\n%s", g)
	}
}

// watchGoroutines returns the stacks of goroutines of a watch (the
// watcher's, fsnotify's reader) once they had a moment to end.
func watchGoroutines() string {
	var found string
	for range 100 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		found = ""
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "(*dirWatch).run") || strings.Contains(g, "fsnotify") {
				found += g + "\n\n"
			}
		}
		if found == "" {
			return ""
		}
		time.Sleep(10 * time.Millisecond)
	}
	return found
}

// A unit directory that is a symbolic link: the directory it points to
// removed and re-created, then the link swapped to another directory,
// are each followed.
func TestWatchSymlinkedUnitDir(t *testing.T) {
	base := testutil.ShortDir(t)
	link := filepath.Join(base, "units")
	svc := "[Service]\nExecStart=/bin/true\n"
	release := func(name string, unitNames ...string) string {
		t.Helper()
		dir := filepath.Join(base, name)
		os.MkdirAll(dir, 0o755)
		for _, u := range unitNames {
			os.WriteFile(filepath.Join(dir, u+".socket"), []byte("[Socket]\nListenStream="+filepath.Join(base, u+".sock")+"\n"), 0o644)
			if err := os.WriteFile(filepath.Join(dir, u+".service"), []byte(svc), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	release("v1", "a")
	if err := os.Symlink("v1", link); err != nil {
		t.Fatal(err)
	}
	gone := &logSpy{w: zerolog.NewTestWriter(t), msg: "the unit directory is gone", seen: make(chan struct{}, 4)}
	reloads := make(chan api.ReloadResult, 16)
	d := New(Config{UnitsDir: link, RuntimeDir: filepath.Join(base, "rt"), Log: zerolog.New(gone),
		Reloaded: func(r api.ReloadResult) { reloads <- r }})
	d.roots = testRoots(t)
	openWatched(t, d)
	added := func(what, unit string) {
		t.Helper()
		start := time.Now()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case r := <-reloads:
				if slices.Contains(r.Removed, "a.service") {
					t.Fatalf("%s: reload %+v removed a", what, r)
				}
				if slices.Contains(r.Added, unit) {
					t.Logf("%s: applied after %v", what, time.Since(start))
					return
				}
			case <-deadline:
				t.Fatalf("%s: %s not added", what, unit)
			}
		}
	}

	os.RemoveAll(filepath.Join(base, "v1"))
	select {
	case <-gone.seen:
	case <-time.After(10 * time.Second):
		t.Fatal("the target's removal was not noticed")
	}
	release("v1", "a", "b")
	added("target re-created", "b.service")

	release("v2", "a", "b", "c")
	if err := os.Symlink("v2", link+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(link+".new", link); err != nil {
		t.Fatal(err)
	}
	added("link swapped", "c.service")
	release("v2", "d")
	added("edit in the new target", "d.service")
}
