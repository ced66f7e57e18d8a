package supervisord

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A sandboxed unit through the Daemon, with real processes: ExecStartPre=
// and ExecStart= share one private /tmp, run as User= under a read-only
// /usr with their RuntimeDirectory= writable; a "+" command runs as root
// outside the sandbox; the private directories go when the unit stops.
func TestSandboxedUnit(t *testing.T) {
	needRoot(t)
	roots := [2]string{t.TempDir(), t.TempDir()}
	saved := privateTmpRoots
	privateTmpRoots = roots
	t.Cleanup(func() { privateTmpRoots = saved })

	// Not under /tmp, which the unit sees as its own.
	base, err := os.MkdirTemp("/run", "sockd-sandbox-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(base, "out")
	if err := os.Mkdir(out, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(out, 0o777); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(out, "done")
	if err := syscall.Mkfifo(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chmod(fifo, 0o666)
	e := newEnv(t, "")
	// A unit new at the reload gets these roots.
	e.d.roots.Runtime = filepath.Join(base, "run")
	e.write("box.socket", "[Socket]\nListenStream="+filepath.Join(filepath.Dir(e.sock), "box.sock")+"\n")
	e.write("box.service", "[Service]\nUser=nobody\nPrivateTmp=yes\nProtectSystem=strict\nReadWritePaths="+out+"\nRuntimeDirectory=app\n"+
		"ExecStartPre=/bin/sh -c 'echo shared > /tmp/shared'\n"+
		"ExecStartPre=+/bin/sh -c 'id -u > "+out+"/plus-uid; cat /tmp/shared > "+out+"/plus-tmp 2>&1 || echo hidden > "+out+"/plus-tmp'\n"+
		"ExecStart=/bin/sh -c 'id -u > "+out+"/uid; cat /tmp/shared > "+out+"/tmp; "+
		"touch /usr/sockd-sandbox-test 2>/dev/null && echo rw > "+out+"/usr || echo ro > "+out+"/usr; "+
		"touch $$RUNTIME_DIRECTORY/ok && echo rw > "+out+"/rundir; echo done > "+fifo+"; exec sleep 600'\n"+
		"TimeoutStopSec=5s\n")
	if _, err := e.d.Reload(e.ctx()); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Start(e.ctx(), "box"); err != nil {
		t.Fatal(err)
	}
	readFIFO(t, fifo)
	t.Cleanup(func() { os.Remove("/usr/sockd-sandbox-test") })

	for file, want := range map[string]string{
		"uid": "65534", "tmp": "shared", "usr": "ro", "rundir": "rw",
		"plus-uid": "0", "plus-tmp": "hidden",
	} {
		b, err := os.ReadFile(filepath.Join(out, file))
		if got := strings.TrimSpace(string(b)); err != nil || got != want {
			t.Errorf("%s: %q (%v), want %q", file, got, err, want)
		}
	}
	made := func() []string {
		var m []string
		for _, r := range roots {
			ents, _ := os.ReadDir(r)
			for _, e := range ents {
				m = append(m, filepath.Join(r, e.Name()))
			}
		}
		return m
	}
	if m := made(); len(m) != 2 || !strings.Contains(m[0], "sockd-private-box.service-") {
		t.Fatalf("private directories %v, want one in each root", m)
	}
	if err := e.d.Stop(e.ctx(), "box"); err != nil {
		t.Fatal(err)
	}
	if m := made(); len(m) != 0 {
		t.Errorf("after the stop: %v left", m)
	}
}
