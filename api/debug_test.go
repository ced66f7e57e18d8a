package api

import (
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
)

// The debug route reports this very process's counts: they track fds the
// test opens and closes, and match runtime's own figures.
func TestRuntime(t *testing.T) {
	ts := startServer(t, &fakeBackend{})
	c, ctx := ts.client, testCtx(t)

	before, err := c.Runtime(ctx)
	if err != nil {
		t.Fatalf("Runtime: %v", err)
	}
	if before.Goroutines < 1 || before.Threads < 1 || before.FDs < 3 {
		t.Fatalf("Runtime = %+v, want positive counts", before)
	}
	var files []*os.File
	const pipes = 16
	for range pipes {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, r, w)
	}
	opened, err := c.Runtime(ctx)
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		t.Fatalf("Runtime: %v", err)
	}
	// Each count includes the request's own connection (both ends) and
	// possibly the previous one's server end, not yet closed: allow slack.
	const slack = 2
	if d := opened.FDs - before.FDs; d < 2*pipes-slack || d > 2*pipes+slack {
		t.Errorf("fds went from %d to %d with %d pipes open, want +%d", before.FDs, opened.FDs, pipes, 2*pipes)
	}
	after, err := c.Runtime(ctx)
	if err != nil {
		t.Fatalf("Runtime: %v", err)
	}
	if d := after.FDs - before.FDs; d < -slack || d > slack {
		t.Errorf("fds %d after closing the pipes, want %d", after.FDs, before.FDs)
	}
	// The count includes the request's own goroutines, so only bound it.
	if n := runtime.NumGoroutine(); after.Goroutines < 1 || after.Goroutines > n+10 {
		t.Errorf("goroutines %d, runtime says %d", after.Goroutines, n)
	}

	code, hdr, body := ts.raw(t, http.MethodPost, "/v1/debug/runtime", "")
	if code != http.StatusMethodNotAllowed || hdr.Get("Allow") != "GET" || !strings.Contains(string(body), `"error"`) {
		t.Errorf("POST /v1/debug/runtime = %d %q %s, want 405 with Allow: GET", code, hdr.Get("Allow"), body)
	}
}

// readRuntimeInfo's thread count is the kernel's.
func TestReadRuntimeInfoThreads(t *testing.T) {
	info, err := readRuntimeInfo()
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	// Threads may come and go between the two reads; the runtime rarely
	// ends one, so allow a small difference only.
	if d := info.Threads - len(ents); d < -2 || d > 2 {
		t.Errorf("Threads = %d, /proc/self/task has %d", info.Threads, len(ents))
	}
}
