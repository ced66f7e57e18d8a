package integration

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockd/sockd/internal/fdstore"
	"github.com/sockd/sockd/internal/testutil"
)

// Under systemd (played by fdstore.Harness), with no fd holder: sockd
// stores every listening socket with FDSTORE=1; after sockd is killed,
// "systemd" starts it again with the stored fds as LISTEN_FDS, and a
// connection made to an idle unit while no sockd ran is answered, on the
// very socket.
func TestFDStoreRestart(t *testing.T) {
	port := freePort(t)
	h, err := fdstore.NewHarness(testutil.ShortDir(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	units := writeUnits(t, map[string]string{
		"idle.socket":  fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\n", port),
		"idle.service": "[Service]\nType=notify\nExecStart=sockd-demo\nEnvironment=DEMO_MESSAGE=stored\n",
	})
	s := startSockdArgs(t, units, []string{"--fd-holder=false"}, h.Env()...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	stored, err := h.Files()
	if err != nil {
		t.Fatal(err)
	}
	fs := stored["listen/idle.socket/0"]
	if len(fs) != 1 {
		t.Fatalf("stored: %v, want listen/idle.socket/0", stored)
	}
	want := inodeOf(t, fs[0])
	api := stored["sockd/api"]
	if len(api) != 1 {
		t.Fatalf("stored: %v, want the API socket too (sockd/api)", stored)
	}
	wantAPI := inodeOf(t, api[0])
	for _, l := range stored {
		for _, f := range l {
			f.Close()
		}
	}

	s.cmd.Process.Kill()
	<-s.done
	answered := make(chan string, 1)
	go func() {
		resp, err := client("tcp", fmt.Sprintf("127.0.0.1:%d", port)).Get("http://sockd.test/")
		if err != nil {
			answered <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answered <- string(b)
	}()

	// systemd's restart: the stored fds at 3…, LISTEN_PID the new
	// sockd's own pid (the shell's, which execs sockd).
	env, files, err := h.Passed()
	if err != nil {
		t.Fatal(err)
	}
	n := &sockd{t: t, api: s.api, units: s.units, done: make(chan struct{}), cond: make(chan struct{})}
	n.cmd = exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, s.cmd.Path}, s.cmd.Args[1:]...)...)
	n.cmd.Env = append(append([]string{}, s.cmd.Env...), env...)
	n.cmd.ExtraFiles = files
	stderr, err := n.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		f.Close()
	}
	go n.readLog(stderr)
	t.Cleanup(n.cleanup)
	n.waitLog(20*time.Second, func(l map[string]any) bool { return l["message"] == "sockd ready" })
	n.waitLog(time.Second, func(l map[string]any) bool {
		return l["message"] == "took sockets back from systemd (fd store, socket units)"
	})

	select {
	case body := <-answered:
		if !strings.Contains(body, "stored") {
			t.Fatalf("the connection made while sockd was down: %q", body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the connection made while sockd was down was not answered")
	}
	held := socketInodes(t, n.cmd.Process.Pid)
	if !held[fmt.Sprintf("socket:[%d]", want)] {
		t.Errorf("the new sockd does not hold the stored socket %d", want)
	}
	if !held[fmt.Sprintf("socket:[%d]", wantAPI)] {
		t.Errorf("the new sockd does not serve the API on the stored socket %d", wantAPI)
	}
}

// inodeOf is the inode of f.
func inodeOf(t *testing.T, f *os.File) uint64 {
	t.Helper()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}
