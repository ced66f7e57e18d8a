package supervisord

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/testutil"
	"github.com/sockd/sockd/units"
)

func TestUnitFDs(t *testing.T) {
	two := &units.Socket{Name: "a.socket", Listens: make([]units.Listen, 2)}
	one := &units.Socket{Name: "b.socket", Listens: make([]units.Listen, 1)}
	accept := &units.Socket{Name: "c.socket", Accept: true, MaxConnections: 10, Listens: make([]units.Listen, 1)}
	for _, tc := range []struct {
		name  string
		svc   *units.Service
		socks []*units.Socket
		want  int
		cg    int // with cgroups: an Accept=yes unit's (a service's is counted per process)
	}{
		{"no socket", &units.Service{Name: "x.service"}, nil, 0, 0},
		{"two sockets of two lines and one", &units.Service{Name: "x.service"}, []*units.Socket{two, one}, 3, 3},
		{"Accept=yes template: its socket alone", &units.Service{Name: "c@.service", Template: true},
			[]*units.Socket{accept, two}, 1, 1 + 1},
	} {
		if got := unitFDs(tc.svc, tc.socks, false); got != tc.want {
			t.Errorf("%s: unitFDs = %d, want %d", tc.name, got, tc.want)
		}
		if got := unitFDs(tc.svc, tc.socks, true); got != tc.cg {
			t.Errorf("%s, with cgroups: unitFDs = %d, want %d", tc.name, got, tc.cg)
		}
	}
	if procFDs(false) != fdsPerProcess || procFDs(true) != fdsPerProcess+2 {
		t.Errorf("procFDs: %d, with cgroups %d", procFDs(false), procFDs(true))
	}
}

// The budget is the limit less sockd's own fds and the reserve; a unit
// that does not fit gets an error wrapping EMFILE that names the limit,
// and room comes back when a unit is released.
func TestFDBudget(t *testing.T) {
	var b fdBudget
	b.init(64, 15) // 64 - 15 - 32 = 17 for the units
	if sum := b.plan(100, 300); sum.fits() || sum.String() != "fds: limit 64, units need ~300, reserve 32 (and 15 open before the units)" {
		t.Errorf("plan: fits %v, %q", sum.fits(), sum)
	}
	for i := range 5 {
		if err := b.take(fmt.Sprintf("u%d", i), 3, "open x.socket", false); err != nil {
			t.Fatalf("unit %d of 3 fds: %v", i, err)
		}
	}
	err := b.take("u5", 3, "open u5.socket", false) // 15 + 3 > 17
	var fe *fdLimitError
	if !errors.Is(err, syscall.EMFILE) || !errors.As(err, &fe) || !fe.Budget {
		t.Fatalf("sixth unit: %v, want a budget error wrapping EMFILE", err)
	}
	if want := "open u5.socket: too many open files (fd limit 64; sockd keeps 47 for itself, the sockets of 100 units need about 300, running processes take 0)"; err.Error() != want {
		t.Errorf("error %q\nwant  %q", err, want)
	}
	if err := b.take("u6", 2, "open u6.socket", false); err != nil {
		t.Errorf("2 fds in the 2 left: %v", err)
	}
	if err := b.take("u0", 3, "open u0.socket", false); err != nil {
		t.Errorf("a unit counted again for the same need: %v", err)
	}
	b.release("u1")
	b.release("u1") // twice is harmless
	if err := b.take("u5", 3, "open u5.socket", false); err != nil {
		t.Errorf("after a release: %v", err)
	}
	if b.total != 17 {
		t.Errorf("total %d, want 17", b.total)
	}
	// A unit taken back is counted past the budget, not refused.
	if err := b.take("back", 3, "open back.socket", true); err != nil || b.total != 20 {
		t.Errorf("taken back: %v, total %d", err, b.total)
	}
	if err := b.take("u7", 1, "open u7.socket", false); err == nil {
		t.Error("a unit fits past the budget")
	}

	// Processes take from the same budget while they run.
	b.release("back")
	b.release("u6") // 15 of 17 taken
	if err := b.takeProc(2); err != nil {
		t.Fatalf("a process in the 2 left: %v", err)
	}
	err = b.takeProc(2)
	if !errors.As(err, &fe) || !fe.Budget || !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("a process past the budget: %v, want a budget error wrapping EMFILE", err)
	}
	if want := "too many open files (fd limit 64; sockd keeps 47 for itself, the sockets of 100 units need about 300, running processes take 2)"; err.Error() != want {
		t.Errorf("error %q\nwant  %q", err, want)
	}
	if err := b.take("u8", 1, "open u8.socket", false); err == nil {
		t.Error("a unit's socket fits in what a running process takes")
	}
	b.releaseProc(2)
	if err := b.takeProc(2); err != nil {
		t.Errorf("a process after one exited: %v", err)
	}
	b.releaseProc(2)

	// With room kept for one process (2), a unit's sockets fit only
	// with that room left.
	b.run = 2 // 15 of 17 taken
	if err := b.take("u9", 1, "open u9.socket", false); err == nil {
		t.Error("a unit fits without room left to run a process")
	}
	b.release("u5") // 12 of 17
	if err := b.take("u9", 1, "open u9.socket", false); err != nil {
		t.Errorf("a unit with room for a process: %v", err)
	}
	b.run = 0

	// The kernel's own EMFILE is explained with the limit, and is not
	// the budget's.
	kernel := fmt.Errorf("listen unix /x: %w", syscall.EMFILE)
	err = b.explain(kernel)
	if !errors.As(err, &fe) || fe.Budget || !strings.Contains(err.Error(), "listen unix /x: too many open files (fd limit 64;") {
		t.Errorf("explain(EMFILE) = %v", err)
	}
	if again := b.explain(err); again != err {
		t.Errorf("explained twice: %v", again)
	}
	if other := errors.New("bind: permission denied"); b.explain(other) != other {
		t.Error("explain changed another error")
	}

	var unlimited fdBudget
	unlimited.init(0, 15)
	if sum := unlimited.plan(3, 9); !sum.fits() {
		t.Error("no limit: does not fit")
	}
	if err := unlimited.take("u", 1<<20, "open u.socket", false); err != nil {
		t.Errorf("no limit: %v", err)
	}
}

// Units whose sockets do not fit in the fd budget are listed as failed
// (result resources, the limit in their reason), not left out; a
// process takes its fds while it runs, a spawn that does not fit fails
// its start (result resources, the socket stays) and fits again once
// the other process is gone; a reload that removes units makes room
// for the units that failed.
func TestFDBudgetDaemon(t *testing.T) {
	base := testutil.ShortDir(t)
	dir := filepath.Join(base, "units")
	os.MkdirAll(dir, 0o755)
	const n = 4
	for i := range n {
		name := fmt.Sprintf("u%d", i)
		os.WriteFile(filepath.Join(dir, name+".socket"), []byte("[Socket]\nListenStream="+filepath.Join(base, name+".sock")+"\n"), 0o644)
		os.WriteFile(filepath.Join(dir, name+".service"), []byte("[Service]\nExecStart=/bin/sleep 60\n"), 0o644)
	}
	d := New(Config{UnitsDir: dir, RuntimeDir: filepath.Join(base, "rt"), Log: zerolog.New(zerolog.NewTestWriter(t))})
	// Room for two units of 1 socket each, and one process.
	room := 2 + fdsPerProcess
	d.fds.limitOf = func() int { return d.fds.base + fdReserve + room }
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		d.Shutdown(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	all, err := d.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var serving, failed []string
	for _, u := range all {
		switch {
		case u.Service.SubState == "listening":
			serving = append(serving, u.Name)
		case u.Service.State == api.StateFailed && u.Service.Result == "resources" &&
			strings.Contains(u.Service.LastExit, "too many open files (fd limit"):
			failed = append(failed, u.Name)
		default:
			t.Errorf("%s: %+v", u.Name, u.Service)
		}
	}
	if len(serving) != 2 || len(failed) != 2 || d.Serving() != 2 || len(d.Failed()) != 2 {
		t.Fatalf("serving %v, failed %v; want two of each", serving, failed)
	}
	if len(d.Waiting()) != 0 {
		t.Errorf("Waiting lists units failed for fds: %v", d.Waiting())
	}
	st, err := d.Status(ctx, strings.TrimSuffix(failed[0], ".service"))
	if err != nil || st.Service.Result != "resources" {
		t.Errorf("Status(%s): %+v %v", failed[0], st.Service, err)
	}

	// One process runs; a second does not fit until it is gone.
	if err := d.Start(ctx, serving[0]); err != nil {
		t.Fatalf("start %s: %v", serving[0], err)
	}
	err = d.Start(ctx, serving[1])
	if err == nil || !strings.Contains(err.Error(), "too many open files (fd limit") {
		t.Errorf("start %s with %s running: %v, want the fd limit", serving[1], serving[0], err)
	}
	st, err = d.Status(ctx, serving[1])
	want := "start " + serving[1] + ": too many open files (fd limit"
	if err != nil || st.Service.Result != "resources" || !strings.Contains(st.Service.LastExit, want) || len(st.Sockets) != 1 {
		t.Errorf("Status(%s) after a spawn past the budget: %+v %v; want result resources, %q, its socket", serving[1], st, err, want)
	}
	if err := d.Stop(ctx, serving[0]); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, serving[1]); err != nil {
		t.Errorf("start %s once %s stopped: %v", serving[1], serving[0], err)
	}

	// Remove the units that serve: the reload opens the others.
	for _, name := range serving {
		base := strings.TrimSuffix(name, ".service")
		os.Remove(filepath.Join(dir, base+".socket"))
		os.Remove(filepath.Join(dir, base+".service"))
	}
	if _, err := d.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	all, err = d.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("after the reload: %+v", all)
	}
	for i, u := range all {
		if u.Name != failed[i] || u.Service.SubState != "listening" {
			t.Errorf("after the reload: %s %+v, want %s listening", u.Name, u.Service, failed[i])
		}
	}
	if len(d.Failed()) != 0 {
		t.Errorf("still failed: %+v", d.Failed())
	}
}
