package integration

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockd/sockd/internal/testutil"
)

// `sockctl exec` runs gunicorn on a unit's socket in place of its
// service (/bin/false, which must never start): gunicorn serves, the
// unit shows as held by sockctl, and SIGTERM to sockctl stops gunicorn
// and gives the socket back to sockd, whose next connection starts the
// service as usual.
func TestExecGunicorn(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-c", "import gunicorn").Run(); err != nil {
		t.Skip("gunicorn is not installed for /usr/bin/python3 (make deps)")
	}
	// A Unix socket in the test's own directory: no other test's
	// client can reach it by a reused port and start the service.
	app := testutil.ShortDir(t)
	addr := filepath.Join(app, "app.sock")
	os.WriteFile(filepath.Join(app, "app.py"), []byte(`import os
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("gunicorn worker (pid %d)\n" % os.getpid()).encode()]
`), 0o644)
	s := startSockd(t, writeUnits(t, map[string]string{
		"app.socket":  "[Socket]\nListenStream=" + addr + "\n",
		"app.service": "[Service]\nExecStart=/bin/false\n",
	}))

	// Files, not pipes: gunicorn shares sockctl's stdout and stderr.
	outPath := filepath.Join(app, "exec.out")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ctl := exec.Command(bin.sockctl, "--api", s.api, "--timeout", "30s", "exec", "app", "--",
		"/usr/bin/python3", "-m", "gunicorn", "--workers", "2", "app:app")
	ctl.Dir = app
	ctl.Stdout, ctl.Stderr = out, out
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed once ctlErr is set
	var ctlErr error
	go func() {
		ctlErr = ctl.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default: // SIGTERM reaches gunicorn through sockctl; SIGKILL would not
			ctl.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(15 * time.Second):
				ctl.Process.Kill()
				<-exited
			}
		}
		if t.Failed() {
			b, _ := os.ReadFile(outPath)
			t.Logf("sockctl exec output:\n%s", b)
		}
	})

	// Once the unit is held (and not before: a connection would start
	// the service), connections queue on the socket until gunicorn
	// accepts them.
	for deadline := time.Now().Add(20 * time.Second); s.status("app").Service.SubState != "held"; {
		if time.Now().After(deadline) {
			t.Fatalf("not held within 20s: %+v", s.status("app").Service)
		}
		select {
		case <-exited:
			t.Fatalf("sockctl exec exited: %v", ctlErr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	body := get(t, client("unix", addr))
	if !strings.HasPrefix(body, "gunicorn worker ") {
		t.Fatalf("answer %q", body)
	}
	worker := pidOf(t, body)
	for range 5 {
		if b := get(t, client("unix", addr)); !strings.HasPrefix(b, "gunicorn worker ") {
			t.Fatalf("answer %q", b)
		}
	}
	st := s.status("app")
	if st.Service.State != "inactive" || st.Service.SubState != "held" || st.Service.HeldBy != ctl.Process.Pid ||
		len(st.Service.Pids) != 0 || st.Service.Generation != 0 {
		t.Fatalf("status while held %+v, want inactive/held by sockctl's pid %d and no process", st.Service, ctl.Process.Pid)
	}
	if text, _, _ := s.ctl("status", "app"); !strings.Contains(text, "Held by: pid "+strconv.Itoa(ctl.Process.Pid)) {
		t.Errorf("sockctl status:\n%s", text)
	}
	if _, errs, code := s.ctl("start", "app"); code != 1 || !strings.Contains(errs, "held outside sockd by pid "+strconv.Itoa(ctl.Process.Pid)) {
		t.Errorf("start while held: exit %d: %s", code, errs)
	}

	// SIGTERM to sockctl reaches gunicorn, which stops; then sockctl
	// exits with its status and lets go.
	ctl.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if ctlErr != nil {
			t.Errorf("sockctl exec: %v (gunicorn exits 0 on SIGTERM)", ctlErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sockctl exec did not exit within 30s of SIGTERM")
	}
	if pidAlive(worker) {
		t.Errorf("gunicorn worker %d survived sockctl", worker)
	}
	st = s.status("app")
	if st.Service.State != "inactive" || st.Service.SubState != "listening" || st.Service.HeldBy != 0 {
		t.Fatalf("status after sockctl exited %+v, want inactive/listening", st.Service)
	}

	// The socket is sockd's again: a connection starts the service.
	if _, err := os.Stat(addr); err != nil {
		t.Fatalf("the socket file after gunicorn: %v", err)
	}
	c, err := net.DialTimeout("unix", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s.waitLog(20*time.Second, func(l map[string]any) bool {
		return l["unit"] == "app.service" && l["message"] == "phase" && l["from"] == "listening" && l["to"] == "starting"
	})
}
