package supervisord

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A unit file made writable by another user is refused at the next
// reload, as a unit with errors is: the running unit keeps running as
// it was, and a new untrusted unit does not start.
func TestReloadUntrustedKeepsRunning(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: sockd checks the unit directory only as root")
	}
	e := newEnv(t, notifyService)
	pid, _ := e.mustGet()
	reload := func(wantErr string) {
		t.Helper()
		res, err := e.d.Reload(e.ctx())
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, d := range res.Diagnostics {
			if d.Severity == "error" && strings.Contains(d.Text, wantErr) {
				found = true
			}
		}
		if !found || len(res.Removed) != 0 || len(res.Added) != 0 || len(res.Changed) != 0 {
			t.Fatalf("reload: %+v, want an error %q and nothing removed, added or changed", res, wantErr)
		}
		if got, _ := e.mustGet(); got != pid || !alive(pid) {
			t.Fatalf("pid %d after reload, want %d still serving", got, pid)
		}
	}
	app := filepath.Join(e.dir, "app.service")
	e.write("app.service", e.service(notifyService+"Environment=CHILD_TAG=changed\n"))
	if err := os.Chown(app, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	e.write("new.socket", "[Socket]\nListenStream="+filepath.Join(filepath.Dir(e.sock), "new.sock")+"\n")
	e.write("new.service", e.service(notifyService))
	if err := os.Chmod(filepath.Join(e.dir, "new.service"), 0o666); err != nil {
		t.Fatal(err)
	}
	reload(app + ": owned by uid 65534, mode 0644: writable by a user other than root; refused (--allow-untrusted-units overrides)")
	// Listed as failed with its error (eventsapi.go), not loaded.
	if st, err := e.d.Status(e.ctx(), "new"); err != nil || st.Service.SubState != "load-error" || len(st.LoadErrors) == 0 {
		t.Fatalf("new.service, world-writable: %+v, %v; want it failed, load-error", st, err)
	}
	if err := os.Chown(app, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(e.dir, 0o777); err != nil {
		t.Fatal(err)
	}
	reload(e.dir + ": owned by uid 0, mode 0777: writable by a user other than root; refused")
}
