package supervisord

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sockd/sockd/units"
)

// A reload with nothing changed reads and parses no unit file and
// leaves every unit's definitions as they were (the same values: no
// request to any actor); a reload after one service file changed
// parses that file alone and changes that unit alone.
func TestReloadReadsOnlyWhatChanged(t *testing.T) {
	e := newEnv(t, "")
	const n = 50
	for i := range n {
		name := fmt.Sprintf("idle%02d", i)
		e.write(name+".socket", "[Socket]\nListenStream="+filepath.Join(filepath.Dir(e.sock), name+".sock")+"\n")
		e.write(name+".service", "[Service]\nExecStart=/bin/sleep infinity\n")
	}
	written := time.Now()
	if res := e.mustReload(); len(res.Added) != n {
		t.Fatalf("added %v, want %d units", res.Added, n)
	}
	// Files written less than the racy window (100 ms, units.Cache)
	// before a load are read again by the next: the test waits that
	// window out once, the clock being what it waits for.
	time.Sleep(time.Until(written.Add(150 * time.Millisecond)))
	e.mustReload()
	snap := func() map[string]*units.Service {
		e.d.mu.Lock()
		defer e.d.mu.Unlock()
		m := map[string]*units.Service{}
		for name, h := range e.d.units {
			m[name] = h.svcSnapshot
		}
		return m
	}
	before, parsed := snap(), e.d.loads.Parsed()
	res := e.mustReload()
	if len(res.Changed)+len(res.Added)+len(res.Removed) != 0 {
		t.Errorf("nothing changed: reload changed %v, added %v, removed %v", res.Changed, res.Added, res.Removed)
	}
	if got := e.d.loads.Parsed() - parsed; got != 0 {
		t.Errorf("nothing changed: reload parsed %d files, want 0", got)
	}
	for name, svc := range snap() {
		if before[name] != svc {
			t.Errorf("nothing changed: %s has a new definition", name)
		}
	}
	e.write("idle07.service", "[Service]\nExecStart=/bin/sleep 12345\n")
	parsed = e.d.loads.Parsed()
	res = e.mustReload()
	if !slices.Equal(res.Changed, []string{"idle07.service"}) || len(res.Added)+len(res.Removed) != 0 {
		t.Errorf("one file changed: reload changed %v, added %v, removed %v; want idle07.service alone", res.Changed, res.Added, res.Removed)
	}
	if got := e.d.loads.Parsed() - parsed; got != 1 {
		t.Errorf("one file changed: reload parsed %d files, want 1", got)
	}
	after := snap()
	for name, svc := range after {
		if name != "idle07.service" && before[name] != svc {
			t.Errorf("one file changed: %s has a new definition too", name)
		}
	}
	if got := after["idle07.service"].ExecStart[0].Argv; !slices.Equal(got, []string{"/bin/sleep", "12345"}) {
		t.Errorf("idle07.service runs %q after the reload, want /bin/sleep 12345", got)
	}
}
