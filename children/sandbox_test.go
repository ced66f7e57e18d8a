package children

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sockd/sockd/internal/sandbox"
)

// TestStartSandboxed starts a real program with a sandbox through Start,
// as sockd does (the C helper, where there is one, hands a sandboxed
// start to the Go helper): the program runs as its user in its working
// directory, with LISTEN_PID set to its own pid, a private /tmp, a
// read-only /usr and no_new_privs. Package sandbox tests each option;
// this tests the way there.
func TestStartSandboxed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("sandboxing needs root")
	}
	// Not under /tmp: the program's /tmp is its own.
	base, err := os.MkdirTemp("/run", "sockd-children-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, varTmp, work, staging := filepath.Join(base, "tmp"), filepath.Join(base, "var-tmp"), filepath.Join(base, "work"), filepath.Join(base, "staging")
	for _, d := range []string{tmp, varTmp, work, staging} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{tmp, varTmp, work} {
		if err := os.Chmod(d, 0o1777); err != nil {
			t.Fatal(err)
		}
	}
	spec := Spec{
		Path: "/bin/sh",
		Argv: []string{"sh", "-c", `echo "pid $LISTEN_PID $$"; echo "uid $(id -u)"; pwd; ls -A /tmp; grep NoNewPrivs /proc/self/status
touch /usr/sockd-sandbox-test 2>/dev/null && echo "usr writable" || echo "usr read-only"
echo x > /tmp/made`},
		Env:        []string{"PATH=/usr/bin:/bin"},
		Dir:        work,
		Umask:      -1,
		PIDEnv:     "LISTEN_PID",
		Credential: &syscall.Credential{Uid: 65534, Gid: 65534},
		Sandbox: &sandbox.Setup{
			Options: sandbox.Options{NoNewPrivileges: true, PrivateTmp: true, ProtectSystem: "strict"},
			TmpDir:  tmp, VarTmpDir: varTmp, Staging: staging,
		},
	}
	_, out, errs, exit := runVia(t, spec, helperImpl{name: "default"})
	if !exit.Success() {
		t.Fatalf("exit %v; stdout %q, stderr %q", exit, out, errs)
	}
	if len(out) != 5 { // ls -A of an empty /tmp prints nothing
		t.Fatalf("stdout %q, stderr %q: want five lines", out, errs)
	}
	if f := strings.Fields(out[0]); len(f) != 3 || f[1] != f[2] {
		t.Errorf("%q: LISTEN_PID is not the program's own pid", out[0])
	}
	want := []string{"uid 65534", work, "NoNewPrivs:\t1", "usr read-only"}
	if got := []string{out[1], out[2], out[3], out[4]}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
	if b, err := os.ReadFile(filepath.Join(tmp, "made")); err != nil || string(b) != "x\n" {
		t.Errorf("the file the program wrote to /tmp is not in the unit's tmp directory: %q, %v", b, err)
	}
	if _, err := os.Stat("/usr/sockd-sandbox-test"); err == nil {
		os.Remove("/usr/sockd-sandbox-test")
		t.Error("the program wrote /usr")
	}
}

// TestStartPrivateUsers: with PrivateUsers= the program runs in a user
// namespace that maps root and its own user to themselves only.
func TestStartPrivateUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("user namespaces with mappings need root here")
	}
	spec := Spec{
		Path:       "/bin/sh",
		Argv:       []string{"sh", "-c", "id -u; cat /proc/self/uid_map"},
		Env:        []string{"PATH=/usr/bin:/bin"},
		Umask:      -1,
		Credential: &syscall.Credential{Uid: 65534, Gid: 65534},
		Sandbox:    &sandbox.Setup{Options: sandbox.Options{PrivateUsers: true}},
	}
	_, out, errs, exit := runVia(t, spec, helperImpl{name: "default"})
	if !exit.Success() {
		t.Fatalf("exit %v; stdout %q, stderr %q", exit, out, errs)
	}
	got := strings.Join(strings.Fields(strings.Join(out, " ")), " ")
	if want := "65534 0 0 1 65534 65534 1"; got != want {
		t.Errorf("uid and uid_map: %q, want %q", got, want)
	}
}
