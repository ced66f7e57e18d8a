package integration

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Socket changes under continuous load refuse nothing: a Backlog= edit is
// applied to the open socket (listen(2) again), and an address change
// keeps the other address's socket while the new one is bound next to it
// and the demo moves onto both with an overlapping restart. loadgen, a
// separate process, sends new connections to the address kept
// throughout: 0 failures. The address removed refuses once the old
// process is gone.
func TestReloadSocketsUnderLoad(t *testing.T) {
	kept, gone, added := freePort(t), freePort(t), freePort(t)
	socket := func(ports ...int) string {
		s := "[Socket]\n"
		for _, p := range ports {
			s += fmt.Sprintf("ListenStream=127.0.0.1:%d\n", p)
		}
		return s
	}
	files := demoUnits(kept)
	files["demo.socket"] = socket(kept, gone)
	dir := writeUnits(t, files)
	s := startSockd(t, dir)
	if _, errs, code := s.ctl("start", "demo"); code != 0 {
		t.Fatalf("sockctl start: %s", errs)
	}
	oldPid := s.status("demo").Service.MainPID
	edit := func(content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "demo.socket"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, errs, code := s.ctl("reload"); code != 0 {
			t.Fatalf("sockctl reload: exit %d\n%s\n%s", code, out, errs)
		}
	}

	l := startLoad(t, fmt.Sprintf("127.0.0.1:%d", kept), false, false)
	time.Sleep(300 * time.Millisecond) // some load before the edit: the point is continuity
	edit(socket(kept, gone) + "Backlog=64\n")
	if p := s.status("demo").Service.MainPID; p != oldPid {
		t.Errorf("Backlog= restarted the service: pid %d, was %d", p, oldPid)
	}
	time.Sleep(300 * time.Millisecond)
	edit(socket(kept, added) + "Backlog=64\n")
	deadline := time.Now().Add(20 * time.Second)
	for pidAlive(oldPid) {
		if time.Now().After(deadline) {
			t.Fatalf("the old process %d still runs 20 s after the address change", oldPid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	r := l.stop()
	t.Logf("%d requests over two socket edits, failures %v, p99 %.1f ms", r.Requests, r.Failures, r.P99)
	if len(r.Failures) > 0 || r.OK == 0 {
		t.Fatalf("failed requests to the address kept: %v %v", r.Failures, r.Errors)
	}
	newPid := s.status("demo").Service.MainPID
	if newPid == oldPid {
		t.Fatal("the address change did not move the service onto the new sockets")
	}
	for _, p := range []int{kept, added} {
		if body := get(t, client("tcp", fmt.Sprintf("127.0.0.1:%d", p))); pidOf(t, body) != newPid {
			t.Errorf("port %d answered %q, want pid %d", p, body, newPid)
		}
	}
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", gone), 5*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Errorf("the address removed: %v, want connection refused", err)
	}
}
