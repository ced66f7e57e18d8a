package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockd/sockd/api"
)

// followEvents runs `sockctl events --json UNIT` and returns its events as they
// come, once it is subscribed, and a function that interrupts it (as
// Ctrl-C) and returns its exit code.
func (s *sockd) followEvents(unit string) (<-chan api.UnitEvent, func() int) {
	s.t.Helper()
	cmd := exec.Command(bin.sockctl, "--api", s.api, "events", "--json", unit)
	out, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	evs := make(chan api.UnitEvent, 1024)
	go func() {
		defer close(evs)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var ev api.UnitEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev = api.UnitEvent{Kind: "bad line: " + sc.Text()}
			}
			evs <- ev
		}
	}()
	stopped := false
	stop := func() int {
		stopped = true
		cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			s.t.Error("sockctl events did not end on SIGINT")
		}
		return cmd.ProcessState.ExitCode()
	}
	s.t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})
	select {
	case ev := <-evs:
		if ev.Kind != api.EventSubscribed || ev.Unit != unit+".service" {
			s.t.Fatalf("first event %+v, want subscribed to %s.service", ev, unit)
		}
	case <-time.After(10 * time.Second):
		s.t.Fatal("sockctl events: not subscribed within 10s")
	}
	return evs, stop
}

// expect reads evs until each of want ("kind", "kind/phase" or
// "kind/outcome") has come, in order, and returns the events read.
func expect(t *testing.T, evs <-chan api.UnitEvent, want ...string) []api.UnitEvent {
	t.Helper()
	var got []api.UnitEvent
	timeout := time.After(60 * time.Second)
	for i := 0; i < len(want); {
		select {
		case ev, ok := <-evs:
			if !ok {
				t.Fatalf("stream ended; events %v; missing %q on", kinds(got), want[i:])
			}
			got = append(got, ev)
			if ev.Kind == want[i] || ev.Kind+"/"+ev.Phase == want[i] || ev.Kind+"/"+ev.Outcome == want[i] {
				i++
			}
		case <-timeout:
			t.Fatalf("events %v; missing %q on", kinds(got), want[i:])
		}
	}
	return got
}

func kinds(evs []api.UnitEvent) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, strings.Trim(ev.Kind+"/"+ev.Phase+ev.Outcome, "/"))
	}
	return out
}

// sockctl events follows a restart and then a restart to a broken build
// that rolls back, and sees their phases in order; Ctrl-C ends it with
// exit 0.
func TestEventsFollowRestartAndRollback(t *testing.T) {
	port := freePort(t)
	files := demoUnits(port)
	dir := writeUnits(t, files)
	s := startSockd(t, dir)
	c := client("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	old := pidOf(t, get(t, c))
	evs, stop := s.followEvents("demo")

	if out, errs, code := s.ctl("restart", "demo", "--wait"); code != 0 {
		t.Fatalf("restart: exit %d\n%s%s", code, out, errs)
	}
	got := expect(t, evs, "restart/spawned", "restart/ready", "restart/draining", "restart/done", "restart-done/done")
	for _, ev := range got {
		if ev.Unit != "demo.service" {
			t.Fatalf("event of another unit: %+v", ev)
		}
		if ev.Kind == api.EventRestart && ev.Phase == api.PhaseDraining && ev.Pid != old {
			t.Fatalf("draining pid %d, want the old %d", ev.Pid, old)
		}
	}
	cur := pidOf(t, get(t, c))

	os.WriteFile(filepath.Join(dir, "demo.service"), []byte(files["demo.service"]+"Environment=DEMO_FAIL=1\n"), 0o644)
	if _, errs, code := s.ctl("reload"); code != 0 {
		t.Fatalf("reload: %s", errs)
	}
	if _, _, code := s.ctl("restart", "demo", "--wait"); code != 1 {
		t.Fatalf("restart to a broken build: exit %d, want 1", code)
	}
	got = expect(t, evs, "spawned", "exited", "restart-done/rolled-back")
	var spawned int
	for _, ev := range got {
		switch ev.Kind {
		case api.EventSpawned:
			spawned = ev.Pid
		case api.EventExited:
			if ev.Pid != spawned || ev.Code == nil || *ev.Code != 3 {
				t.Fatalf("exited %+v, want pid %d with code 3", ev, spawned)
			}
		}
	}
	if pid := pidOf(t, get(t, c)); pid != cur {
		t.Fatalf("served by %d after the rollback, want %d", pid, cur)
	}
	if code := stop(); code != 0 {
		t.Fatalf("sockctl events after SIGINT: exit %d, want 0", code)
	}
}

// A running unit whose file gets an error keeps serving, and sockctl
// status and list show the error with file and line until a reload finds
// the file fixed.
func TestLoadErrorShownUntilFixed(t *testing.T) {
	port := freePort(t)
	files := demoUnits(port)
	dir := writeUnits(t, files)
	s := startSockd(t, dir)
	c := client("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	pid := pidOf(t, get(t, c))
	file := filepath.Join(dir, "demo.service")
	os.WriteFile(file, []byte(files["demo.service"]+"Type=bogus\n"), 0o644)
	if _, _, code := s.ctl("reload"); code != 1 {
		t.Fatalf("reload of a broken file: exit %d, want 1", code)
	}
	out, _, code := s.ctl("status", "demo")
	if code != 0 || !strings.Contains(out, "Load error: "+file+":5: Type: ") {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	out, errs, code := s.ctl("list")
	if code != 0 || !strings.Contains(out, "active (running), load error") || !strings.Contains(errs, "demo.service: load error: "+file+":5: Type: ") {
		t.Fatalf("list: exit %d\n%s\n%s", code, out, errs)
	}
	if got := pidOf(t, get(t, c)); got != pid {
		t.Fatalf("served by %d with a broken file, want %d serving on", got, pid)
	}

	os.WriteFile(file, []byte(files["demo.service"]), 0o644)
	if _, errs, code := s.ctl("reload"); code != 0 {
		t.Fatalf("reload of the fixed file: exit %d: %s", code, errs)
	}
	if st := s.status("demo"); len(st.LoadErrors) != 0 {
		t.Fatalf("load errors after the fix: %+v", st.LoadErrors)
	}
	if out, _, _ := s.ctl("status", "demo"); strings.Contains(out, "Load error") {
		t.Fatalf("status after the fix:\n%s", out)
	}
}
