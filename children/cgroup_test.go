package children

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sockd/sockd/internal/cgroup"
)

// A process started with a cgroup fd is born in that cgroup, whichever
// way it is started: directly, through the C helper, through the Go one.
func TestStartInCgroup(t *testing.T) {
	mnt, err := cgroup.Mount()
	if err != nil {
		t.Fatalf("this test needs cgroup v2: %v", err)
	}
	h, err := cgroup.Open(filepath.Join(mnt, fmt.Sprintf("sockd-test-children-%d-%d", os.Getpid(), time.Now().UnixNano())))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		h.RemoveEmptyUnits()
		if err := h.Remove(); err != nil {
			t.Error(err)
		}
	}()
	u, err := h.Unit("app.service")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for _, impl := range append(helperImpls(), helperImpl{name: "direct"}) {
		t.Run(impl.name, func(t *testing.T) {
			leaf, err := u.NewLeaf("p")
			if err != nil {
				t.Fatal(err)
			}
			spec := Spec{Path: "/bin/cat", Argv: []string{"cat", "/proc/self/cgroup"}, Umask: -1, UseCgroup: true, CgroupFD: leaf.FD()}
			if impl.name != "direct" {
				spec.PIDEnv = "LISTEN_PID" // takes the helper
			}
			_, out, errs, exit := runVia(t, spec, impl)
			if !exit.Success() || !slices.Contains(out, "0::"+leaf.Path()) {
				t.Errorf("%v: /proc/self/cgroup %q (stderr %q), want 0::%s", exit, out, errs, leaf.Path())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := leaf.WaitEmpty(ctx); err != nil {
				t.Fatal(err)
			}
			if err := leaf.Remove(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
