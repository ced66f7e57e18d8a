package children

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// threads is how many threads this process has.
func threads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads: in /proc/self/status")
	return 0
}

// TestRunningChildrenHoldNoThread: waiting for a running child takes no
// OS thread (the netpoller waits on its pidfd): 64 sleeping children
// leave the thread count where it was, give or take the runtime's own,
// and each exit is still seen.
func TestRunningChildrenHoldNoThread(t *testing.T) {
	const n = 64
	before := threads(t)
	var ps []*Process
	t.Cleanup(func() {
		for _, p := range ps {
			p.Stop(syscall.SIGKILL, 0, true, true)
		}
	})
	for range n {
		p, err := Start(Spec{Path: "/bin/sleep", Argv: []string{"sleep", "60"}, Umask: -1})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	during := threads(t)
	t.Logf("threads: %d before, %d with %d children running", before, during, n)
	if during-before >= n/4 {
		t.Errorf("%d running children took %d threads: a thread waits for each", n, during-before)
	}
	for _, p := range ps {
		p.Signal(syscall.SIGKILL)
	}
	deadline := time.After(20 * time.Second)
	for _, p := range ps {
		select {
		case <-p.Done():
		case <-deadline:
			t.Fatalf("pid %d: no exit seen within 20 s", p.Pid())
		}
		if st := p.Exit(); st.Signal != syscall.SIGKILL {
			t.Errorf("pid %d: exit %+v, want SIGKILL", p.Pid(), st)
		}
	}
}
