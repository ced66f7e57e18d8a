package supervisord

// Instances of socket templates (app@x.socket → app@x.service): each is
// a unit of its own; nothing here knows they come from a template.

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/testutil"
)

// newTemplateEnv writes the template pair app@.socket (a Unix socket
// BASE/%i.sock) and app@.service (the test binary serving, tagged %i)
// and returns the env and BASE; open starts the Daemon once the test
// has made its instances.
func newTemplateEnv(t *testing.T) (e *env, base string, open func()) {
	t.Helper()
	base = testutil.ShortDir(t)
	e = &env{t: t, dir: filepath.Join(base, "units"), obs: make(chan api.ServiceStatus, 1024)}
	if err := os.MkdirAll(filepath.Join(e.dir, "sockets.target.wants"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.write("app@.socket", "[Socket]\nListenStream="+base+"/%i.sock\n")
	e.write("app@.service", e.service("Type=notify\nEnvironment=SOCKD_TEST_CHILD=serve CHILD_TAG=%i\n"))
	open = func() {
		t.Helper()
		e.d = New(Config{UnitsDir: e.dir, RuntimeDir: filepath.Join(base, "rt"), Log: zerolog.New(zerolog.NewTestWriter(t)).With().Timestamp().Logger(),
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
			if err := e.d.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
	}
	return e, base, open
}

// link makes the symbolic link name in the unit directory.
func (e *env) link(target, name string) {
	e.t.Helper()
	if err := os.Symlink(target, filepath.Join(e.dir, name)); err != nil {
		e.t.Fatal(err)
	}
}

// getFrom asks the app behind the socket file sock for its pid and tag.
func (e *env) getFrom(sock string) (int, string, error) {
	saved := e.sock
	defer func() { e.sock = saved }()
	e.sock = sock
	return e.get()
}

func (e *env) mustGetFrom(sock string) (int, string) {
	e.t.Helper()
	pid, tag, err := e.getFrom(sock)
	if err != nil {
		e.t.Fatalf("request to %s: %v", sock, err)
	}
	return pid, tag
}

func (e *env) mustReload() api.ReloadResult {
	e.t.Helper()
	res, err := e.d.Reload(e.ctx())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, d := range res.Diagnostics {
		if d.Severity == "error" {
			e.t.Fatalf("reload: %s", d.Text)
		}
	}
	return res
}

// Two instances of one template pair, one a link in the unit directory,
// one in sockets.target.wants: each listens on its own %i socket, starts
// on its first connection, answers with its own %i, restarts alone, and
// goes when its link goes.
func TestSocketTemplateInstances(t *testing.T) {
	e, base, open := newTemplateEnv(t)
	e.link("app@.socket", "app@x.socket")
	e.link("/lib/systemd/system/app@.socket", "sockets.target.wants/app@y.socket")
	open()
	xs, ys := filepath.Join(base, "x.sock"), filepath.Join(base, "y.sock")

	for _, name := range []string{"app@x", "app@y.service", "app@x.socket"} {
		st, err := e.d.Status(e.ctx(), name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Service.SubState != "listening" || len(st.Service.Pids) != 0 {
			t.Errorf("%s before any connection: %+v", name, st.Service)
		}
	}
	px, tag := e.mustGetFrom(xs)
	if tag != "x" {
		t.Errorf("app@x answers %q", tag)
	}
	if st, err := e.d.Status(e.ctx(), "app@y"); err != nil || len(st.Service.Pids) != 0 {
		t.Errorf("app@y started by a connection to app@x: %+v %v", st.Service, err)
	}
	py, tag := e.mustGetFrom(ys)
	if tag != "y" || py == px {
		t.Errorf("app@y answers pid %d tag %q (app@x: pid %d)", py, tag, px)
	}

	if _, err := e.d.Restart(e.ctx(), "app@x", api.RestartOptions{Wait: true}, nil); err != nil {
		t.Fatal(err)
	}
	if p, tag := e.mustGetFrom(xs); p == px || tag != "x" {
		t.Errorf("after restart app@x answers pid %d tag %q, was %d", p, tag, px)
	}
	if p, _ := e.mustGetFrom(ys); p != py {
		t.Errorf("restarting app@x restarted app@y: pid %d, was %d", p, py)
	}

	if err := os.Remove(filepath.Join(e.dir, "app@x.socket")); err != nil {
		t.Fatal(err)
	}
	if res := e.mustReload(); !equalNames(res.Removed, "app@x.service") || len(res.Added)+len(res.Changed) != 0 {
		t.Errorf("reload after removing app@x.socket: %+v", res)
	}
	if _, err := e.d.Status(e.ctx(), "app@x"); err == nil {
		t.Error("app@x still loaded")
	}
	if c, err := net.Dial("unix", xs); err == nil {
		c.Close()
		t.Error("app@x's socket still accepts")
	}
	if p, tag := e.mustGetFrom(ys); p != py || tag != "y" {
		t.Errorf("removing app@x touched app@y: pid %d tag %q, was %d", p, tag, py)
	}

	// Enabled again, the systemctl way.
	e.link("../app@.socket", "sockets.target.wants/app@x.socket")
	if res := e.mustReload(); !equalNames(res.Added, "app@x.service") || len(res.Removed)+len(res.Changed) != 0 {
		t.Errorf("reload after linking app@x.socket again: %+v", res)
	}
	if _, tag := e.mustGetFrom(xs); tag != "x" {
		t.Errorf("app@x answers %q", tag)
	}
}

func equalNames(got []string, want ...string) bool { return slices.Equal(got, want) }

// Watch notices a link made in, and removed from, a sockets.target.wants
// directory made after it started.
func TestWatchSocketTemplateInstances(t *testing.T) {
	e, base, open := newTemplateEnv(t)
	if err := os.Remove(filepath.Join(e.dir, "sockets.target.wants")); err != nil {
		t.Fatal(err)
	}
	reloads := make(chan api.ReloadResult, 8)
	open()
	e.d.cfg.Reloaded = func(r api.ReloadResult) { reloads <- r }
	ctx, cancel := context.WithCancel(context.Background())
	watched, err := e.d.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-watched; err != nil {
			t.Error(err)
		}
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
	if err := os.Mkdir(filepath.Join(e.dir, "sockets.target.wants"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The directory alone changes no unit; its link comes once the
	// watcher has taken the directory up.
	next("making sockets.target.wants")
	e.link("../app@.socket", "sockets.target.wants/app@w.socket")
	if r := next("a link in sockets.target.wants"); !equalNames(r.Added, "app@w.service") {
		t.Fatalf("reload %+v, want app@w.service added", r)
	}
	if _, tag := e.mustGetFrom(filepath.Join(base, "w.sock")); tag != "w" {
		t.Errorf("app@w answers %q", tag)
	}
	os.Remove(filepath.Join(e.dir, "sockets.target.wants", "app@w.socket"))
	if r := next("removing the link"); !equalNames(r.Removed, "app@w.service") {
		t.Fatalf("reload %+v, want app@w.service removed", r)
	}
}

// An Accept=yes instance echo@x.socket runs instances of echo@.service
// per connection, as echo.socket would, on its own %i socket.
func TestSocketTemplateAcceptInstance(t *testing.T) {
	base := testutil.ShortDir(t)
	e := &acceptEnv{t: t, dir: filepath.Join(base, "units"), change: make(chan struct{}), addr: filepath.Join(base, "x.sock")}
	os.MkdirAll(e.dir, 0o755)
	e.write("echo@.socket", "[Socket]\nAccept=yes\nListenStream="+base+"/%i.sock\n")
	e.writeService("Environment=CHILD_TAG=%i\n")
	if err := os.Symlink("echo@.socket", filepath.Join(e.dir, "echo@x.socket")); err != nil {
		t.Fatal(err)
	}
	e.d = New(Config{UnitsDir: e.dir, RuntimeDir: filepath.Join(base, "rt"), Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err := e.d.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.d.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	for _, name := range []string{"echo@", "echo@x.socket"} {
		if st := e.status(name); len(st.Sockets) != 1 || st.Sockets[0].Unit != "echo@x.socket" || st.Sockets[0].Listen != e.addr {
			t.Errorf("status %s: sockets %+v", name, st.Sockets)
		}
	}
	c := e.dial("unix", nil)
	greeting, err := c.line(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The service's %i is the connection's instance name, not x.
	if !strings.Contains(greeting, "names=connection inst=0-") || strings.Contains(greeting, "tag=x") || !strings.Contains(greeting, "tag=0-") {
		t.Errorf("greeting %q", greeting)
	}
}
