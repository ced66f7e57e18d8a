package units

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const nobody = 65534

// loadTrust writes files, lets prep change owners and modes, loads the
// directory with o and returns the set and the diagnostics with paths
// relative to the directory.
func loadTrust(t *testing.T, files map[string]string, prep func(dir string), o LoadOptions) (*Set, []string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: sockd checks the unit directory only as root")
	}
	dir := writeUnits(t, files)
	if prep != nil {
		prep(dir)
	}
	set, diags, err := o.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	checkWellFormed(t, diags)
	var out []string
	for _, d := range diags {
		out = append(out, strings.ReplaceAll(d.Error(), dir+"/", ""))
	}
	return set, out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestUntrustedRefused(t *testing.T) {
	const refused = ": writable by a user other than root; refused (--allow-untrusted-units overrides)"
	for _, tc := range []struct {
		name  string
		files map[string]string
		prep  func(t *testing.T, dir string)
		want  []string
	}{
		{"owned by nobody", map[string]string{"app.service": okService}, func(t *testing.T, dir string) {
			must(t, os.Chown(filepath.Join(dir, "app.service"), nobody, 0))
		}, []string{"app.service: owned by uid 65534, mode 0644" + refused}},
		{"world-writable", map[string]string{"app.service": okService}, func(t *testing.T, dir string) {
			must(t, os.Chmod(filepath.Join(dir, "app.service"), 0o666))
		}, []string{"app.service: owned by uid 0, mode 0666" + refused}},
		{"group-writable, group nogroup", map[string]string{"app.service": okService}, func(t *testing.T, dir string) {
			must(t, os.Chown(filepath.Join(dir, "app.service"), 0, nobody))
			must(t, os.Chmod(filepath.Join(dir, "app.service"), 0o664))
		}, []string{"app.service: owned by uid 0, group 65534, mode 0664" + refused}},
		{"drop-in owned by nobody", map[string]string{"app.service": okService, "app.service.d/x.conf": "[Service]\nUser=root\n"}, func(t *testing.T, dir string) {
			must(t, os.Chown(filepath.Join(dir, "app.service.d/x.conf"), nobody, nobody))
		}, []string{"app.service.d/x.conf: owned by uid 65534, mode 0644" + refused}},
		{"drop-in directory 0777", map[string]string{"app.service": okService, "app.service.d/x.conf": "[Service]\nUser=root\n"}, func(t *testing.T, dir string) {
			must(t, os.Chmod(filepath.Join(dir, "app.service.d"), 0o777))
		}, []string{"app.service.d: owned by uid 0, mode 0777" + refused}},
		{"template's drop-in directory, for an instance", map[string]string{
			"app@.socket": "[Socket]\nListenStream=/run/app-%i.sock\n", "app@.service": okService,
			"app@x.socket": "[Socket]\nListenStream=/run/app-x.sock\n", "app@.service.d/x.conf": "[Service]\nUser=root\n"}, func(t *testing.T, dir string) {
			must(t, os.Chown(filepath.Join(dir, "app@.service.d"), nobody, nobody))
		}, []string{"app@.service.d: owned by uid 65534, mode 0755" + refused,
			"app@.socket:1: service app@.service has errors", "app@x.socket:1: service app@x.service not found"}},
		{"unit directory 0777", map[string]string{"app.service": okService, "app.socket": "[Socket]\nListenStream=/run/app.sock\n"}, func(t *testing.T, dir string) {
			must(t, os.Chmod(dir, 0o777))
		}, []string{"UNITDIR: owned by uid 0, mode 0777" + refused, "UNITDIR: owned by uid 0, mode 0777" + refused}},
		// Sticky or not, anyone can add files to the directory.
		{"unit directory 1777", map[string]string{"app.service": okService}, func(t *testing.T, dir string) {
			must(t, syscall.Chmod(dir, 0o1777))
		}, []string{"UNITDIR: owned by uid 0, mode 1777" + refused}},
		{"sockets.target.wants owned by nobody", map[string]string{
			"app@.socket": "[Socket]\nListenStream=/run/app-%i.sock\n", "app@.service": okService,
			WantsDir + "/app@x.socket": ""}, func(t *testing.T, dir string) {
			must(t, os.Chown(filepath.Join(dir, WantsDir), nobody, nobody))
		}, []string{WantsDir + ": owned by uid 65534, mode 0755" + refused}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var unitDir string
			set, diags := loadTrust(t, tc.files, func(dir string) { unitDir = dir; tc.prep(t, dir) }, LoadOptions{})
			for i := range diags {
				diags[i] = strings.ReplaceAll(diags[i], unitDir, "UNITDIR")
			}
			if !equalStrings(diags, tc.want) {
				t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(diags, "\n"), strings.Join(tc.want, "\n"))
			}
			for name, svc := range set.Services {
				if !svc.Template {
					t.Errorf("loaded %s", name)
				}
			}
			if len(set.Sockets) != 0 {
				t.Errorf("loaded %v", keys(set.Sockets))
			}
		})
	}
}

// Root's own files and directories, and a group-writable file of root's
// group, load.
func TestTrustedLoads(t *testing.T) {
	set, diags := loadTrust(t, map[string]string{"app.service": okService, "app.socket": "[Socket]\nListenStream=/run/app.sock\n",
		"app.service.d/x.conf": "[Service]\nUser=root\n"}, func(dir string) {
		must(t, os.Chmod(dir, 0o755))
		must(t, os.Chmod(filepath.Join(dir, "app.socket"), 0o664)) // group root
		must(t, syscall.Chmod(filepath.Join(dir, "app.service.d"), 0o1775))
	}, LoadOptions{})
	if len(diags) != 0 || set.Services["app.service"] == nil || set.Sockets["app.socket"] == nil {
		t.Fatalf("diagnostics %q, services %v", diags, keys(set.Services))
	}
}

// --allow-untrusted-units makes each refusal a warning.
func TestAllowUntrusted(t *testing.T) {
	set, diags := loadTrust(t, map[string]string{"app.service": okService, "app.service.d/x.conf": "[Service]\nUser=root\n"}, func(dir string) {
		must(t, os.Chmod(dir, 0o777))
		must(t, os.Chown(filepath.Join(dir, "app.service"), nobody, nobody))
		must(t, os.Chmod(filepath.Join(dir, "app.service.d"), 0o777))
	}, LoadOptions{AllowUntrusted: true})
	if set.Services["app.service"] == nil || set.Services["app.service"].User != "root" {
		t.Errorf("app.service not loaded with its drop-in: %v", diags)
	}
	if len(diags) != 3 {
		t.Fatalf("diagnostics %q, want 3 warnings", diags)
	}
	for _, d := range diags {
		if !strings.Contains(d, ": warning: ") || !strings.HasSuffix(d, ": writable by a user other than root; allowed by --allow-untrusted-units") {
			t.Errorf("diagnostic %q", d)
		}
	}
}

// A symbolic link is judged by the file it points to, and says so.
func TestUntrustedLinkTarget(t *testing.T) {
	other := t.TempDir()
	target := filepath.Join(other, "real.service")
	set, diags := loadTrust(t, map[string]string{}, func(dir string) {
		must(t, os.WriteFile(target, []byte(okService), 0o644))
		must(t, os.Chown(target, nobody, nobody))
		must(t, os.Symlink(target, filepath.Join(dir, "app.service")))
	}, LoadOptions{})
	want := "app.service: a link to " + target + ", owned by uid 65534, mode 0644: writable by a user other than root; refused (--allow-untrusted-units overrides)"
	if len(diags) != 1 || diags[0] != want || len(set.Services) != 0 {
		t.Fatalf("diagnostics %q, want %q", diags, want)
	}
	// A link owned by nobody to root's file is fine: only root can
	// write the directory it is in.
	must(t, os.Chown(target, 0, 0))
	set, diags = loadTrust(t, map[string]string{}, func(dir string) {
		must(t, os.Symlink(target, filepath.Join(dir, "app.service")))
		must(t, os.Lchown(filepath.Join(dir, "app.service"), nobody, nobody))
	}, LoadOptions{})
	if len(diags) != 0 || set.Services["app.service"] == nil {
		t.Fatalf("diagnostics %q", diags)
	}
}

// A user's own sockd (not root) checks nothing.
func TestNotRootChecksNothing(t *testing.T) {
	defer func(f func() int) { geteuid = f }(geteuid)
	geteuid = func() int { return 1000 }
	set, diags := loadTrust(t, map[string]string{"app.service": okService}, func(dir string) {
		must(t, os.Chmod(dir, 0o777))
		must(t, os.Chmod(filepath.Join(dir, "app.service"), 0o666))
	}, LoadOptions{})
	if len(diags) != 0 || set.Services["app.service"] == nil {
		t.Fatalf("diagnostics %q", diags)
	}
}

// sockd verify reports an untrusted file as an error, of a file named
// on the command line too.
func TestVerifyUntrusted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := writeUnits(t, map[string]string{"app.service": okService})
	p := filepath.Join(dir, "app.service")
	must(t, os.Chmod(p, 0o646))
	want := p + ": owned by uid 0, mode 0646: writable by a user other than root; refused (--allow-untrusted-units overrides)"
	for _, arg := range []string{dir, p} {
		ds, err := Verify(arg)
		if err != nil || len(ds) != 1 || ds[0].Error() != want || ds[0].Severity != Error {
			t.Errorf("verify %s: %v %v, want %q", arg, ds, err, want)
		}
		ds, err = LoadOptions{AllowUntrusted: true}.Verify(arg)
		if err != nil || ds.Err() != nil || len(ds) != 1 {
			t.Errorf("verify --allow-untrusted-units %s: %v %v", arg, ds, err)
		}
	}
}
