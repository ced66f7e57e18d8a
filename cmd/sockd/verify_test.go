package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `sockd verify` reads only regular files: a FIFO and a link to
// /dev/zero are errors that return at once, a link to /dev/null is a
// masked unit; a unit file cannot put control characters on the
// terminal.
func TestVerifyFileKinds(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.service"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"zero.service": "/dev/zero", "null.service": "/dev/null"} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "esc.service"), []byte("[Service]\nExecStart=/bin/true\nX\x1b]0;title\x07=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	type result struct {
		code int
		out  string
	}
	done := make(chan result, 1)
	go func() {
		var out, errb bytes.Buffer
		code, err := run([]string{"verify", dir}, &out, &errb)
		if err != nil {
			t.Error(err)
		}
		done <- result{code, out.String()}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("sockd verify hangs")
	}
	if r.code != 1 {
		t.Errorf("exit code %d, want 1", r.code)
	}
	want := []string{
		dir + "/esc.service:3: X\\x1b]0;title\\x07: unknown option",
		dir + "/fifo.service:1: cannot read unit: not a regular file: a FIFO",
		dir + "/null.service:1: unit is masked (a link to /dev/null)",
		dir + "/zero.service:1: cannot read unit: not a regular file: a character device",
	}
	if got := strings.Split(strings.TrimSpace(r.out), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("output:\n%s\nwant:\n%s", r.out, strings.Join(want, "\n"))
	}
}

// `sockd verify app.socket` loads app.service beside it and the other
// sockets that service names.
func TestVerifySocketLoadsSiblings(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"app.socket":   "[Socket]\nListenStream=127.0.0.1:1\n",
		"app.service":  "[Service]\nExecStart=/bin/true\nSockets=app.socket admin.socket\n",
		"admin.socket": "[Socket]\nListenStream=/run/admin.sock\nService=app.service\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out, errb bytes.Buffer
	if code, err := run([]string{"verify", filepath.Join(dir, "app.socket")}, &out, &errb); code != 0 || err != nil || out.Len() != 0 {
		t.Fatalf("code %d, err %v, output %q", code, err, out.String())
	}
	if err := os.Remove(filepath.Join(dir, "admin.socket")); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	code, _ := run([]string{"verify", filepath.Join(dir, "app.socket")}, &out, &errb)
	if want := dir + "/app.service:3: Sockets: socket admin.socket not found"; code != 1 || !strings.Contains(out.String(), want) {
		t.Errorf("code %d, output %q, want %q", code, out.String(), want)
	}
}

// As root, `sockd verify` refuses a unit file another user can write;
// --allow-untrusted-units makes that a warning.
func TestVerifyUntrusted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: sockd checks the unit directory only as root")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "app.service")
	if err := os.WriteFile(p, []byte("[Service]\nExecStart=/bin/true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"verify", dir}, 1, p + ": owned by uid 65534, mode 0644: writable by a user other than root; refused (--allow-untrusted-units overrides)\n"},
		{[]string{"verify", "--allow-untrusted-units", dir}, 0, p + ": warning: owned by uid 65534, mode 0644: writable by a user other than root; allowed by --allow-untrusted-units\n"},
	} {
		var out, errb bytes.Buffer
		code, err := run(tc.args, &out, &errb)
		if err != nil || code != tc.code || out.String() != tc.want {
			t.Errorf("%q: exit %d, %v, output:\n%s%s\nwant exit %d, output:\n%s", tc.args, code, err, out.String(), errb.String(), tc.code, tc.want)
		}
	}
}
