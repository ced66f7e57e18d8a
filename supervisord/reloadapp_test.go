package supervisord

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/testutil"
)

// reload-app without ExecReload= sends SIGHUP to the main process, which
// keeps running; with ExecReload= it runs the command with $MAINPID.
func TestReloadApp(t *testing.T) {
	dir := testutil.ShortDir(t)
	fifo := filepath.Join(dir, "hup")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, notifyService+"Environment=CHILD_HUP_FIFO="+fifo+"\n")
	if err := e.d.ReloadApp(e.ctx(), "app"); err == nil {
		t.Fatal("reload-app of a unit with no process: no error")
	}
	pid, _ := e.mustGet()
	// Open the FIFO's read side first (O_RDWR does not block), so the
	// child's write finds a reader; then ask for the reload.
	r, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := e.d.ReloadApp(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	r.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "hup "+strconv.Itoa(pid) {
		t.Fatalf("child said %q (%v), want hup %d", line, err, pid)
	}
	if st := e.status(); len(st.Pids) != 1 || st.Pids[0] != pid || st.State != api.StateActive {
		t.Fatalf("after SIGHUP: %+v", st)
	}

	trace := filepath.Join(dir, "trace")
	e.reload(notifyService + "ExecReload=/bin/sh -c 'echo reload $MAINPID > " + trace + "'\n")
	if err := e.d.ReloadApp(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(trace); strings.TrimSpace(string(b)) != "reload "+strconv.Itoa(pid) {
		t.Fatalf("ExecReload= wrote %q, want reload %d", b, pid)
	}
	e.reload(notifyService + "ExecReload=/bin/false\n")
	if err := e.d.ReloadApp(e.ctx(), "app"); err == nil || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("failing ExecReload=: %v", err)
	}
}
