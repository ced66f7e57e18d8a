package supervisord

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/testutil"
)

// RELOADING=1 and STOPPING=1 show in the sub-state; READY=1 ends a
// reload. The messages come from systemd-notify, a process of the
// service's group (NotifyAccess=all), routed by process group.
func TestNotifyReloadingStopping(t *testing.T) {
	notify, err := exec.LookPath("systemd-notify")
	if err != nil {
		t.Fatal("systemd-notify (Debian's systemd package, installed by .ci/deps) is needed:", err)
	}
	dir := testutil.ShortDir(t)
	step := filepath.Join(dir, "step")
	if err := syscall.Mkfifo(step, 0o600); err != nil {
		t.Fatal(err)
	}
	script := notify + " --ready; read x < " + step + "; " + notify + " RELOADING=1; read x < " + step + "; " +
		notify + " --ready; read x < " + step + "; " + notify + " STOPPING=1; exec sleep 60"
	e := newEnv(t, "Type=notify\nNotifyAccess=all\nExecStart=\nExecStart=/bin/sh -c '"+script+"'\n")
	if err := e.d.Start(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	next := func() {
		f, err := os.OpenFile(step, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("go\n"))
		f.Close()
	}
	for _, want := range []string{"reloading", "running", "stopping"} {
		next()
		e.await(func(st api.ServiceStatus) bool { return st.SubState == want && st.State == api.StateActive })
	}
}
