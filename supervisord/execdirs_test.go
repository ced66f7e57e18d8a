package supervisord

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sockd/sockd/internal/nofollow"
	"github.com/sockd/sockd/units"
)

// The tests run as root and give directories to nobody (65534:65534),
// which every Debian system has.
const nobody = 65534

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: chown")
	}
}

// testRoots returns exec roots in a new temporary directory that other
// users can traverse (t.TempDir makes 0700 directories).
func testRoots(t *testing.T) execRoots {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return execRoots{
		Runtime: filepath.Join(dir, "run"), State: filepath.Join(dir, "lib"), Cache: filepath.Join(dir, "cache"),
		Logs: filepath.Join(dir, "log"), Configuration: filepath.Join(dir, "etc"),
	}
}

// execSvc is a service with the given directories, each kind with mode.
func execSvc(runtime, state, cache, logs, config []string, mode os.FileMode) *units.Service {
	d := func(paths []string) units.ExecDir { return units.ExecDir{Paths: paths, Mode: mode} }
	return &units.Service{Name: "app.service", User: "nobody", ExecDirs: units.ExecDirs{
		Runtime: d(runtime), State: d(state), Cache: d(cache), Logs: d(logs), Configuration: d(config),
		RuntimePreserve: units.PreserveNo,
	}}
}

// checkDir fails unless path is a directory (not a symlink) with mode
// and owner.
func checkDir(t *testing.T, path string, mode uint32, uid, gid int) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR || st.Mode&0o7777 != mode || int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("%s: mode %o owner %d:%d, want directory %o %d:%d", path, st.Mode, st.Uid, st.Gid, mode, uid, gid)
	}
}

func ownerOf(t *testing.T, path string) (uid, gid int, mode uint32) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return int(st.Uid), int(st.Gid), st.Mode & 0o7777
}

func TestExecDirsSetUp(t *testing.T) {
	needRoot(t)
	r := testRoots(t)
	svc := execSvc([]string{"app", "app/sub"}, []string{"app", "deep/er/app"}, []string{"c"}, []string{"l"}, []string{"cfg"}, 0o750)
	svc.ExecDirs.State.Mode = 0o770 | os.ModeSetgid
	old := syscall.Umask(0o077) // the directories' modes must not depend on sockd's umask
	env, err := setUpExecDirs(svc, r, nobody, nobody)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"RUNTIME_DIRECTORY=" + r.Runtime + "/app:" + r.Runtime + "/app/sub",
		"STATE_DIRECTORY=" + r.State + "/app:" + r.State + "/deep/er/app",
		"CACHE_DIRECTORY=" + r.Cache + "/c",
		"LOGS_DIRECTORY=" + r.Logs + "/l",
		"CONFIGURATION_DIRECTORY=" + r.Configuration + "/cfg",
	}
	if strings.Join(env, "\n") != strings.Join(want, "\n") {
		t.Errorf("env:\n%s\nwant\n%s", strings.Join(env, "\n"), strings.Join(want, "\n"))
	}
	checkDir(t, r.Runtime+"/app", 0o750, nobody, nobody)
	checkDir(t, r.Runtime+"/app/sub", 0o750, nobody, nobody)
	checkDir(t, r.State+"/app", 0o2770, nobody, nobody)
	checkDir(t, r.State+"/deep", 0o755, 0, 0) // parents: sockd's, 0755 whatever the umask
	checkDir(t, r.State+"/deep/er", 0o755, 0, 0)
	checkDir(t, r.State+"/deep/er/app", 0o2770, nobody, nobody)
	checkDir(t, r.Cache+"/c", 0o750, nobody, nobody)
	checkDir(t, r.Logs+"/l", 0o750, nobody, nobody)
	checkDir(t, r.Configuration+"/cfg", 0o750, 0, 0) // not the unit's

	// Again, with a changed mode: applied to existing directories, but
	// an existing ConfigurationDirectory= is left alone.
	svc = execSvc([]string{"app"}, nil, nil, nil, []string{"cfg"}, 0o700)
	if _, err := setUpExecDirs(svc, r, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	checkDir(t, r.Runtime+"/app", 0o700, nobody, nobody)
	checkDir(t, r.Configuration+"/cfg", 0o750, 0, 0)

	// Nothing asked, nothing made.
	if env, err := setUpExecDirs(&units.Service{Name: "x.service"}, testRoots(t), 0, 0); err != nil || env != nil {
		t.Errorf("no directories: %q, %v", env, err)
	}
}

// TestExecDirsChown: a tree whose top has the wrong owner is given to
// the unit whole; one whose top is right is left as it is inside, as
// systemd does.
func TestExecDirsChown(t *testing.T) {
	needRoot(t)
	r := testRoots(t)
	top := filepath.Join(r.State, "app")
	if err := os.MkdirAll(filepath.Join(top, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"f", "sub/g"} {
		if err := os.WriteFile(filepath.Join(top, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	svc := execSvc(nil, []string{"app"}, nil, nil, nil, 0o755)
	if _, err := setUpExecDirs(svc, r, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"", "sub", "f", "sub/g"} {
		if uid, gid, _ := ownerOf(t, filepath.Join(top, f)); uid != nobody || gid != nobody {
			t.Errorf("%s: owner %d:%d, want %d:%d", f, uid, gid, nobody, nobody)
		}
	}
	if err := os.Chown(filepath.Join(top, "f"), 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := setUpExecDirs(svc, r, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if uid, _, _ := ownerOf(t, filepath.Join(top, "f")); uid != 0 {
		t.Errorf("f: owner %d, want 0: the top was right, nothing inside changes", uid)
	}
	// Back to root (a unit without User=): all of it again.
	if _, err := setUpExecDirs(svc, r, 0, 0); err != nil {
		t.Fatal(err)
	}
	if uid, _, _ := ownerOf(t, filepath.Join(top, "sub/g")); uid != 0 {
		t.Errorf("sub/g: owner %d, want 0", uid)
	}
}

// plantTarget makes a directory outside the roots that a planted
// symlink points at, and returns a function that fails the test if its
// mode, owner or contents changed.
func plantTarget(t *testing.T) (string, func()) {
	t.Helper()
	target := filepath.Join(t.TempDir(), "precious")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "secret"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	return target, func() {
		t.Helper()
		for _, p := range []string{target, filepath.Join(target, "secret")} {
			uid, gid, mode := ownerOf(t, p)
			want := uint32(0o700)
			if p != target {
				want = 0o600
			}
			if uid != 0 || gid != 0 || mode != want {
				t.Errorf("%s: changed through a symlink: owner %d:%d mode %o", p, uid, gid, mode)
			}
		}
	}
}

// TestExecDirsSymlinkNeverFollowed plants symlinks where a service (or
// whoever owns part of a tree) could: as the directory itself, as a
// parent, inside the directory, and swapped in before a removal.
func TestExecDirsSymlinkNeverFollowed(t *testing.T) {
	needRoot(t)
	t.Run("directory", func(t *testing.T) {
		r := testRoots(t)
		target, check := plantTarget(t)
		os.MkdirAll(r.Runtime, 0o755)
		if err := os.Symlink(target, filepath.Join(r.Runtime, "app")); err != nil {
			t.Fatal(err)
		}
		_, err := setUpExecDirs(execSvc([]string{"app"}, nil, nil, nil, nil, 0o777), r, nobody, nobody)
		if !errors.Is(err, nofollow.ErrSymlink) {
			t.Errorf("err = %v, want ErrSymlink", err)
		}
		check()
	})
	t.Run("parent", func(t *testing.T) {
		// Another unit's user owns ROOT/a and swaps a/b for a symlink.
		r := testRoots(t)
		target, check := plantTarget(t)
		if err := os.MkdirAll(filepath.Join(r.State, "a"), 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chown(filepath.Join(r.State, "a"), nobody, nobody)
		if err := os.Symlink(target, filepath.Join(r.State, "a", "b")); err != nil {
			t.Fatal(err)
		}
		_, err := setUpExecDirs(execSvc(nil, []string{"a/b/c"}, nil, nil, nil, 0o777), r, nobody, nobody)
		if !errors.Is(err, nofollow.ErrSymlink) {
			t.Errorf("err = %v, want ErrSymlink", err)
		}
		if _, err := os.Lstat(filepath.Join(target, "c")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("c was made in the symlink's target: %v", err)
		}
		check()
	})
	t.Run("inside", func(t *testing.T) {
		// The service's own tree: its symlinks are chowned themselves.
		r := testRoots(t)
		target, check := plantTarget(t)
		top := filepath.Join(r.Logs, "app")
		if err := os.MkdirAll(top, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"dir", "file"} {
			tg := target
			if name == "file" {
				tg = filepath.Join(target, "secret")
			}
			if err := os.Symlink(tg, filepath.Join(top, name)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := setUpExecDirs(execSvc(nil, nil, nil, []string{"app"}, nil, 0o755), r, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		if uid, _, _ := ownerOf(t, filepath.Join(top, "dir")); uid != nobody {
			t.Errorf("the symlink itself: owner %d, want %d", uid, nobody)
		}
		check()
	})
	t.Run("remove", func(t *testing.T) {
		r := testRoots(t)
		target, check := plantTarget(t)
		svc := execSvc([]string{"app", "x/y"}, nil, nil, nil, nil, 0o755)
		if _, err := setUpExecDirs(svc, r, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		// The service leaves a symlink in its runtime directory, and
		// ROOT/x (say, another unit's) is swapped for a symlink.
		if err := os.Symlink(target, filepath.Join(r.Runtime, "app", "link")); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(target, "y"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(r.Runtime, "x")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(r.Runtime, "x")); err != nil {
			t.Fatal(err)
		}
		err := tearDownExecDirs(svc, r, true)
		if !errors.Is(err, nofollow.ErrSymlink) {
			t.Errorf("err = %v, want ErrSymlink for x", err)
		}
		if _, err := os.Lstat(filepath.Join(r.Runtime, "app")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("app not removed: %v", err)
		}
		if _, err := os.Stat(filepath.Join(target, "y")); err != nil {
			t.Errorf("x/y removed through the symlink: %v", err)
		}
		check()
	})
}

func TestExecDirsTearDown(t *testing.T) {
	needRoot(t)
	for _, tc := range []struct {
		preserve    units.RuntimePreserve
		final, kept bool
	}{
		{units.PreserveNo, false, false}, // systemd removes them on a restart too
		{units.PreserveNo, true, false},
		{"", true, false},
		{units.PreserveRestart, false, true},
		{units.PreserveRestart, true, false},
		{units.PreserveYes, false, true},
		{units.PreserveYes, true, true},
	} {
		r := testRoots(t)
		svc := execSvc([]string{"a/b", "c"}, []string{"s"}, nil, nil, nil, 0o755)
		svc.ExecDirs.RuntimePreserve = tc.preserve
		if _, err := setUpExecDirs(svc, r, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(r.Runtime, "a/b/pid"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := tearDownExecDirs(svc, r, tc.final); err != nil {
			t.Errorf("%q final=%v: %v", tc.preserve, tc.final, err)
		}
		for _, p := range []string{r.Runtime + "/a/b", r.Runtime + "/c"} {
			if _, err := os.Lstat(p); (err == nil) != tc.kept {
				t.Errorf("%q final=%v: %s: %v, want kept=%v", tc.preserve, tc.final, p, err, tc.kept)
			}
		}
		checkDir(t, r.Runtime+"/a", 0o755, 0, 0) // parents stay
		checkDir(t, r.State+"/s", 0o755, nobody, nobody)
		// Gone already: fine.
		if err := tearDownExecDirs(svc, r, true); err != nil {
			t.Errorf("second teardown: %v", err)
		}
	}
	if err := tearDownExecDirs(execSvc([]string{"a"}, nil, nil, nil, nil, 0o755), execRoots{Runtime: "/nonexistent/run"}, true); err != nil {
		t.Errorf("missing root: %v", err)
	}
}

// TestExecDirsDynamicLayout: with DynamicUser=yes the directories live
// in ROOT/private behind symlinks, a process of the dynamic user can
// use them, and a service moving to and from DynamicUser= keeps its
// data.
func TestExecDirsDynamicLayout(t *testing.T) {
	needRoot(t)
	r := testRoots(t)
	// Before: DynamicUser=no, with data.
	plain := execSvc(nil, []string{"app"}, nil, nil, nil, 0o750)
	if _, err := setUpExecDirs(plain, r, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.State, "app", "data"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}

	const uid = 61999
	dyn := execSvc([]string{"run"}, []string{"app", "app/sub", "x/y"}, []string{"app"}, nil, []string{"app"}, 0o750)
	dyn.DynamicUser, dyn.User, dyn.Group = true, "app", "app"
	dyn.ExecDirs.State.Mode = 0o750 | os.ModeSetgid // dropped for a dynamic user
	env, err := setUpExecDirs(dyn, r, uid, uid)
	if err != nil {
		t.Fatal(err)
	}
	if want := "STATE_DIRECTORY=" + r.State + "/app:" + r.State + "/app/sub:" + r.State + "/x/y"; env[1] != want {
		t.Errorf("env %q, want %q", env[1], want)
	}
	checkDir(t, r.State+"/private", 0o711, 0, 0)
	checkDir(t, r.State+"/private/app", 0o750, uid, uid)
	checkDir(t, r.State+"/private/app/sub", 0o750, uid, uid)
	checkDir(t, r.State+"/private/x", 0o755, 0, 0)
	checkDir(t, r.State+"/private/x/y", 0o750, uid, uid)
	checkDir(t, r.Cache+"/private/app", 0o750, uid, uid)
	checkDir(t, r.Runtime+"/run", 0o750, uid, uid) // RuntimeDirectoryPreserve=no: not private
	checkDir(t, r.Configuration+"/app", 0o750, 0, 0)
	for link, want := range map[string]string{
		r.State + "/app": "private/app", r.State + "/x/y": "../private/x/y", r.Cache + "/app": "private/app",
	} {
		if got, err := os.Readlink(link); err != nil || got != want {
			t.Errorf("%s -> %q (%v), want %q", link, got, err, want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(r.State, "app", "data")); err != nil || string(b) != "kept" {
		t.Errorf("data after the move: %q, %v", b, err)
	}
	// Idempotent, setgid dropped again.
	if _, err := setUpExecDirs(dyn, r, uid, uid); err != nil {
		t.Fatal(err)
	}
	checkDir(t, r.State+"/private/app", 0o750, uid, uid)

	// A process of the dynamic user reaches its directories through
	// the symlinks (ROOT/private is 0711), not another's.
	cmd := exec.Command("/bin/sh", "-c", `echo hi > "$STATE_DIRECTORY"/w && ! ls "`+r.State+`/private" 2>/dev/null`)
	cmd.Env = []string{"STATE_DIRECTORY=" + r.State + "/app"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("dynamic user's process: %v: %s", err, out)
	}

	// RuntimeDirectoryPreserve=restart: private, and removed with its
	// symlink at the final stop.
	dyn.ExecDirs.RuntimePreserve = units.PreserveRestart
	if _, err := setUpExecDirs(dyn, r, uid, uid); err != nil {
		t.Fatal(err)
	}
	checkDir(t, r.Runtime+"/private/run", 0o750, uid, uid)
	if err := tearDownExecDirs(dyn, r, true); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{r.Runtime + "/run", r.Runtime + "/private/run"} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v, want removed", p, err)
		}
	}

	// After: DynamicUser=no again; the data moves back.
	if _, err := setUpExecDirs(plain, r, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	checkDir(t, r.State+"/app", 0o750, nobody, nobody)
	if b, err := os.ReadFile(filepath.Join(r.State, "app", "data")); err != nil || string(b) != "kept" {
		t.Errorf("data after the move back: %q, %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(r.State, "private", "app")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("private/app: %v, want moved", err)
	}
}

func TestExecDirsEnvDefaults(t *testing.T) {
	got := addEnvDefaults([]string{"PATH=/bin", "STATE_DIRECTORY=/mine"}, "STATE_DIRECTORY=/var/lib/app", "USER=app")
	want := []string{"PATH=/bin", "STATE_DIRECTORY=/mine", "USER=app"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("addEnvDefaults = %q, want %q", got, want)
	}
}
