package units

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// machineUnitDirs are the unit directories of the machine the tests run
// on (Debian: /lib is /usr/lib).
var machineUnitDirs = []string{"/lib/systemd/system", "/usr/lib/systemd/user", "/etc/systemd/system"}

// rejectedOnDebian12 are the files of Debian 12's systemd and base
// packages that sockd rejects, and why systemd-analyze verify rejects
// them too. It is used only where systemd-analyze is missing.
var rejectedOnDebian12 = map[string]string{
	"/lib/systemd/system/cryptdisks-early.service": "masked (a link to /dev/null)",
	"/lib/systemd/system/cryptdisks.service":       "masked (a link to /dev/null)",
	"/lib/systemd/system/hwclock.service":          "masked (a link to /dev/null)",
	"/lib/systemd/system/rc.service":               "masked (a link to /dev/null)",
	"/lib/systemd/system/rcS.service":              "masked (a link to /dev/null)",
	"/lib/systemd/system/x11-common.service":       "masked (a link to /dev/null)",
	"/lib/systemd/system/syslog.socket":            "its syslog.service is not installed",
}

// TestVerifyMachineUnits runs Verify (what `sockd verify` runs) on every
// unit directory of this machine: sockd may reject a .service or
// .socket file only where `systemd-analyze verify` rejects it too, for
// another reason than a missing program. It takes well under a second
// (systemd-analyze runs only on the files sockd rejects), so -short
// runs it too.
func TestVerifyMachineUnits(t *testing.T) {
	var (
		files  int
		warns  int
		errsBy = map[string][]string{}
	)
	for _, dir := range machineUnitDirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if isUnitFile(e.Name()) {
				files++
			}
		}
		ds, err := Verify(dir)
		if err != nil {
			t.Fatal(err)
		}
		checkWellFormed(t, ds)
		for _, d := range ds {
			if d.Line < 1 {
				t.Errorf("diagnostic without a line: %s", d.Error())
			}
			if d.Severity == Warning {
				warns++
				continue
			}
			errsBy[d.File] = append(errsBy[d.File], d.Error())
		}
	}
	if files == 0 {
		t.Skip("no unit files on this machine")
	}
	rejected := make([]string, 0, len(errsBy))
	for f := range errsBy {
		rejected = append(rejected, f)
	}
	sort.Strings(rejected)
	analyze, lookErr := exec.LookPath("systemd-analyze")
	for _, f := range rejected {
		if lookErr != nil {
			if why, ok := rejectedOnDebian12[f]; ok {
				t.Logf("%s: rejected, as by systemd-analyze: %s", f, why)
				continue
			}
			t.Errorf("sockd rejects %s (%q), and without systemd-analyze the test cannot tell whether systemd does", f, errsBy[f])
			continue
		}
		if why, ok := systemdRejects(t, analyze, f); ok {
			t.Logf("%s: rejected, as by systemd-analyze: %s", f, why)
			continue
		}
		t.Errorf("sockd rejects %s, systemd-analyze verify accepts it:\n%s", f, strings.Join(errsBy[f], "\n"))
	}
	t.Logf("%d unit files in %v: %d rejected (as by systemd-analyze), %d warnings", files, machineUnitDirs, len(rejected), warns)
}

// systemdRejects runs systemd-analyze verify on the file alone and
// reports whether it fails for a reason other than a missing program,
// with that reason.
func systemdRejects(t *testing.T, analyze, file string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, analyze, "verify", "--man=no", "--recursive-errors=no", file)
	cmd.Dir = filepath.Dir(file)
	out, err := cmd.CombinedOutput()
	if err == nil {
		return "", false
	}
	var why []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" && !strings.Contains(l, "is not executable") {
			why = append(why, l)
		}
	}
	return strings.Join(why, "; "), len(why) > 0
}
