package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The tests run real programs in real sandboxes: runSandboxed starts this
// test binary again as a small exec helper (childEnv names the Setup),
// which calls Apply on its locked thread and execs /bin/sh, just as
// children's helper does for a service.
const childEnv = "SOCKD_SANDBOX_TEST_SETUP"

func TestMain(m *testing.M) {
	if word, ok := os.LookupEnv(childEnv); ok {
		runChild(word)
	}
	os.Exit(m.Run())
}

// runChild is the test helper process: SOCKD_SANDBOX_TEST_UID (and _GID)
// name the user to switch to; os.Args after "--" is the program.
func runChild(word string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "sandbox-test-helper:", err)
		os.Exit(127)
	}
	runtime.LockOSThread()
	s, err := Decode(word)
	if err != nil {
		fail(err)
	}
	uid, _ := strconv.Atoi(os.Getenv("SOCKD_SANDBOX_TEST_UID"))
	gid, _ := strconv.Atoi(os.Getenv("SOCKD_SANDBOX_TEST_GID"))
	var switchUser func() error
	if uid != 0 || gid != 0 {
		switchUser = func() error {
			if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
				return fmt.Errorf("setgroups: %w", e)
			}
			if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid)); e != 0 {
				return fmt.Errorf("setresgid: %w", e)
			}
			if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
				return fmt.Errorf("setresuid: %w", e)
			}
			return nil
		}
	}
	if err := Apply(s, switchUser, uid != 0); err != nil {
		fail(err)
	}
	var argv []string
	for i, a := range os.Args {
		if a == "--" {
			argv = os.Args[i+1:]
			break
		}
	}
	if len(argv) == 0 {
		fail(fmt.Errorf("no program after --"))
	}
	env := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	fail(syscall.Exec(argv[0], argv, env))
}

// result is how a sandboxed program ended.
type result struct {
	stdout, stderr string
	err            error // nil for exit status 0
}

// runSandboxed runs /bin/sh -c script in a sandbox made from s, as uid
// and gid (0 for root), within 20 s.
func runSandboxed(t *testing.T, s *Setup, uid, gid uint32, script string) result {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("sandboxing needs root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$", "--", "/bin/sh", "-c", script)
	cmd.Env = []string{
		childEnv + "=" + s.Encode(),
		"SOCKD_SANDBOX_TEST_UID=" + strconv.FormatUint(uint64(uid), 10),
		"SOCKD_SANDBOX_TEST_GID=" + strconv.FormatUint(uint64(gid), 10),
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if s.PrivateUsers {
		UserNamespace(cmd.SysProcAttr, uid, gid, nil)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("sandboxed %q did not finish in 20 s", script)
	}
	return result{stdout: out.String(), stderr: errb.String(), err: err}
}

// TestHarnessNoSandbox checks the harness itself: an empty Setup runs
// the program unchanged, and its failure is seen.
func TestHarnessNoSandbox(t *testing.T) {
	r := runSandboxed(t, &Setup{}, 0, 0, "echo hello; id -u")
	if r.err != nil || r.stdout != "hello\n0\n" {
		t.Fatalf("got %q, %q, %v; want hello and uid 0", r.stdout, r.stderr, r.err)
	}
	r = runSandboxed(t, &Setup{}, 65534, 65534, "id -u; exit 3")
	if r.stdout != "65534\n" || r.err == nil {
		t.Fatalf("got %q, %v; want uid 65534 and exit status 3", r.stdout, r.err)
	}
}
