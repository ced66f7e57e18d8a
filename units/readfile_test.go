package units

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Loading refuses what is not a regular file without opening it, so
// that a FIFO or a link to /dev/zero neither hangs nor fills memory;
// masked units say so; large files are refused.
func TestUnitFileKinds(t *testing.T) {
	dir := writeUnits(t, map[string]string{
		"ok.service":       okService,
		"empty.service":    "",
		"big.service":      "[Service]\nExecStart=/bin/true\n# " + strings.Repeat("x", maxUnitFileSize) + "\n",
		"dropin.service":   okService,
		"dir.service/keep": "",
	})
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.service"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"zero.service":   "/dev/zero",
		"null.service":   "/dev/null",
		"alias.service":  "ok.service",
		"broken.service": "missing.service",
	} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	// A masked drop-in adds nothing.
	if err := os.MkdirAll(filepath.Join(dir, "dropin.service.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/null", filepath.Join(dir, "dropin.service.d", "x.conf")); err != nil {
		t.Fatal(err)
	}
	type result struct {
		set   *Set
		diags Diagnostics
	}
	done := make(chan result, 1)
	go func() {
		set, diags, err := LoadDir(dir)
		if err != nil {
			t.Error(err)
		}
		done <- result{set, diags}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("LoadDir hangs")
	}
	checkWellFormed(t, r.diags)
	var got []string
	for _, d := range r.diags {
		got = append(got, strings.ReplaceAll(d.Error(), dir+"/", ""))
	}
	want := []string{
		"big.service:1: cannot read unit: file too large: 4194337 bytes, a unit file may have at most 4194304 (4 MiB)",
		"broken.service:1: cannot read unit: no such file or directory",
		"empty.service:1: unit is masked (an empty file)",
		"fifo.service:1: cannot read unit: not a regular file: a FIFO",
		"null.service:1: unit is masked (a link to /dev/null)",
		"zero.service:1: cannot read unit: not a regular file: a character device",
	}
	if !equalStrings(got, want) {
		t.Errorf("diagnostics:\n got %q\nwant %q", got, want)
	}
	if got := keys(r.set.Services); !equalStrings(got, []string{"alias.service", "dropin.service", "ok.service"}) {
		t.Errorf("services %q", got)
	}
}

// A socket whose service is masked says so.
func TestMaskedService(t *testing.T) {
	dir := writeUnits(t, map[string]string{"app.socket": "[Socket]\nListenStream=80\n"})
	if err := os.Symlink("/dev/null", filepath.Join(dir, "app.service")); err != nil {
		t.Fatal(err)
	}
	ds, err := Verify(filepath.Join(dir, "app.socket"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ds {
		got = append(got, strings.ReplaceAll(d.Error(), dir+"/", ""))
	}
	want := []string{"app.service:1: unit is masked (a link to /dev/null)", "app.socket:1: service app.service is masked"}
	if !equalStrings(got, want) {
		t.Errorf("diagnostics:\n got %q\nwant %q", got, want)
	}
}

// Verifying one file loads the units it names beside it: the socket's
// service, that service's Sockets=, their services.
func TestVerifyLoadsSiblings(t *testing.T) {
	dir := writeUnits(t, map[string]string{
		"app.socket":    "[Socket]\nListenStream=80\n",
		"app.service":   okService + "Sockets=app.socket admin.socket\n",
		"admin.socket":  "[Socket]\nListenStream=/run/admin.sock\nService=app.service\n",
		"other.service": "[Service]\nBogus=1\n",
	})
	set, diags, err := LoadFiles(filepath.Join(dir, "app.socket"))
	if err != nil || len(diags) != 0 {
		t.Fatalf("LoadFiles: %v %v", diags, err)
	}
	if got := keys(set.Sockets); !equalStrings(got, []string{"admin.socket", "app.socket"}) {
		t.Errorf("sockets %q", got)
	}
	if got := keys(set.Services); !equalStrings(got, []string{"app.service"}) {
		t.Errorf("services %q", got)
	}
	// Without its sibling the service's Sockets= is an error.
	if err := os.Remove(filepath.Join(dir, "admin.socket")); err != nil {
		t.Fatal(err)
	}
	ds, err := Verify(filepath.Join(dir, "app.service"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ds {
		got = append(got, strings.ReplaceAll(d.Error(), dir+"/", ""))
	}
	want := []string{"app.service:3: Sockets: socket admin.socket not found", "app.socket:1: service app.service has errors"}
	if !equalStrings(got, want) {
		t.Errorf("Verify:\n got %q\nwant %q", got, want)
	}
}

// Diagnostics escape control characters and invalid UTF-8, wherever they
// come from.
func TestDiagnosticEscapes(t *testing.T) {
	_, got := load(t, map[string]string{
		"app.service": "[Service]\nExecStart=/bin/true\nFoo\x1b[31m=1\nEnvironment=\"A=\x07\n",
	})
	want := []string{`app.service:3: Foo\x1b[31m: unknown option`, `app.service:4: warning: Environment: unterminated quote ": the rest of the line is ignored, as in systemd`}
	if !equalStrings(got, want) {
		t.Errorf("diagnostics:\n got %q\nwant %q", got, want)
	}
	d := Diagnostic{File: "a\nb\xff", Line: 1, Option: "X\u0085", Severity: Error, Msg: "m\x7f\t"}
	if got, want := d.Error(), `a\x0ab\xff:1: X\u0085: m\x7f\x09`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// TestStatInfo checks that readUnitFile's fstat gives the FileInfo
// os.Stat gives, for each kind of file a unit path may name.
func TestStatInfo(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "a.service")
	if err := os.WriteFile(reg, []byte("[Service]\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	suid := filepath.Join(dir, "suid")
	if err := os.WriteFile(suid, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(suid, 0o755|os.ModeSetuid|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	sticky := filepath.Join(dir, "sticky")
	if err := os.Mkdir(sticky, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sticky, 0o777|os.ModeDir|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{reg, suid, sticky, fifo, "/dev/null"} {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		got := &statInfo{name: filepath.Base(p)}
		err = syscall.Fstat(fd, &got.st)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got.Mode() != want.Mode() || got.Size() != want.Size() || !got.ModTime().Equal(want.ModTime()) ||
			got.IsDir() != want.IsDir() || got.Name() != want.Name() {
			t.Errorf("%s: statInfo %v %d %v, os.Stat %v %d %v", p, got.Mode(), got.Size(), got.ModTime(), want.Mode(), want.Size(), want.ModTime())
		}
	}
}
