package supervisord

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/units"
)

// dynSvc is a DynamicUser=yes service whose user has a name unique to
// the test.
func dynSvc(t *testing.T, user string) *units.Service {
	name := fmt.Sprintf("sockdtest%d%s", os.Getpid()%100000, user)
	return &units.Service{Name: user + ".service", DynamicUser: true, User: name, Group: name, ExecDirs: units.ExecDirs{
		State: units.ExecDir{Paths: []string{user}, Mode: 0o755},
	}}
}

func lockHolder(t *testing.T, dir string, id uint32) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, strconv.Itoa(int(id))))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(string(b), "\n")
}

func TestDynamicUserAlloc(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dynamic-uid")
	r := testRoots(t)
	a := dynSvc(t, "a")
	d, release, err := allocDynamicUser(dir, a, r)
	if err != nil {
		t.Fatal(err)
	}
	if d.UID < dynamicIDMin || d.UID > dynamicIDMax || d.GID != d.UID || d.Name != a.User {
		t.Fatalf("allocated %+v, want a uid in %d-%d with its own group", d, dynamicIDMin, dynamicIDMax)
	}
	if got := lockHolder(t, dir, d.UID); got != a.User {
		t.Errorf("lock file holds %q, want %q", got, a.User)
	}
	if want := []string{"USER=" + a.User, "LOGNAME=" + a.User}; !slices.Equal(d.env(), want) {
		t.Errorf("env %q, want %q", d.env(), want)
	}

	// A second unit of the same name shares it; the id stays held
	// until both release.
	d2, release2, err := allocDynamicUser(dir, a, r)
	if err != nil || d2 != d {
		t.Fatalf("second allocation: %+v, %v; want %+v", d2, err, d)
	}
	release()
	release() // twice is fine
	if _, err := os.Stat(filepath.Join(dir, strconv.Itoa(int(d.UID)))); err != nil {
		t.Errorf("released while shared: %v", err)
	}
	// Another name gets another id.
	b := dynSvc(t, "b")
	db, releaseB, err := allocDynamicUser(dir, b, r)
	if err != nil {
		t.Fatal(err)
	}
	defer releaseB()
	if db.UID == d.UID {
		t.Errorf("two names share uid %d", d.UID)
	}
	release2()
	if _, err := os.Stat(filepath.Join(dir, strconv.Itoa(int(d.UID)))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file after the last release: %v", err)
	}

	// Stable: the same name gets the same id again.
	d3, release3, err := allocDynamicUser(dir, a, r)
	if err != nil {
		t.Fatal(err)
	}
	release3()
	if d3.UID != d.UID {
		t.Errorf("reallocated %d, want the same %d", d3.UID, d.UID)
	}
}

// TestDynamicUserSkips: an id another process holds, systemd holds, or
// that owns another unit's private directory is not handed out; the one
// owning the unit's own directory is preferred.
func TestDynamicUserSkips(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "dynamic-uid")
	r := testRoots(t)
	a := dynSvc(t, "a")
	d, release, err := allocDynamicUser(dir, a, r)
	if err != nil {
		t.Fatal(err)
	}
	release()
	first := d.UID

	// Held by another process (another sockd): a lock on another open
	// file description.
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(int(first))), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	d, release, err = allocDynamicUser(dir, a, r)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if d.UID == first {
		t.Errorf("took %d, which another process holds", first)
	}
	f.Close()
	os.Remove(f.Name())

	// Held by systemd.
	old := systemdDynamicIDDir
	systemdDynamicIDDir = t.TempDir()
	defer func() { systemdDynamicIDDir = old }()
	os.WriteFile(filepath.Join(systemdDynamicIDDir, strconv.Itoa(int(first))), nil, 0o600)
	d, release, err = allocDynamicUser(dir, a, r)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if d.UID == first {
		t.Errorf("took %d, which systemd holds", first)
	}
	systemdDynamicIDDir = old

	// Owning another unit's private directory.
	other := filepath.Join(r.Cache, "private", "other")
	if err := os.MkdirAll(other, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chown(other, int(first), int(first))
	d, release, err = allocDynamicUser(dir, a, r)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if d.UID == first {
		t.Errorf("took %d, which owns %s", first, other)
	}
	os.RemoveAll(other)

	// Owning the unit's own directory: preferred over the hash.
	const own = dynamicIDMax - 7
	mine := filepath.Join(r.State, "private", "a")
	if err := os.MkdirAll(mine, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chown(mine, own, own)
	d, release, err = allocDynamicUser(dir, a, r)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if d.UID != own {
		t.Errorf("took %d, want %d, the owner of the unit's own %s", d.UID, own, mine)
	}
}

func TestDynamicUserStatic(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dynamic-uid")
	r := testRoots(t)
	// A user the database knows is used as it is, with no lock.
	svc := &units.Service{Name: "n.service", DynamicUser: true, User: "nobody", Group: "nobody"}
	d, release, err := allocDynamicUser(dir, svc, r)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if d.UID != nobody || d.GID != nobody {
		t.Errorf("User=nobody: %+v, want %d:%d", d, nobody, nobody)
	}
	if names, _ := os.ReadDir(dir); len(names) != 0 {
		t.Errorf("lock files for a static user: %v", names)
	}
	// A group without a user of that name is refused, as systemd does.
	_, _, err = allocDynamicUser(dir, &units.Service{Name: "s.service", DynamicUser: true, User: "staff", Group: "staff"}, r)
	if err == nil || !strings.Contains(err.Error(), "a group staff exists but no user of that name") {
		t.Errorf("User=staff: %v", err)
	}
	// Group= names a static group.
	svc = dynSvc(t, "g")
	svc.Group = "staff"
	d, release2, err := allocDynamicUser(dir, svc, r)
	if err != nil {
		t.Fatal(err)
	}
	defer release2()
	if d.GID != 50 || d.UID < dynamicIDMin {
		t.Errorf("Group=staff: %+v, want gid 50", d)
	}
	// Not DynamicUser=yes.
	if _, _, err := allocDynamicUser(dir, &units.Service{Name: "x.service", User: "nobody"}, r); err == nil {
		t.Errorf("allocated for DynamicUser=no")
	}
}

// TestDynamicUserCredential: credential gives a DynamicUser=yes service
// its allocated ids and only its own group (plus
// SupplementaryGroups=), and refuses to run it as root when none is
// allocated.
func TestDynamicUserCredential(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dynamic-uid")
	svc := dynSvc(t, "c")
	svc.SupplementaryGroups = []string{"staff"}
	if _, err := credential(svc); err == nil || !strings.Contains(err.Error(), "is not allocated") {
		t.Fatalf("credential before allocation: %v, want an error", err)
	}
	d, release, err := allocDynamicUser(dir, svc, testRoots(t))
	if err != nil {
		t.Fatal(err)
	}
	cred, err := credential(svc)
	release()
	if err != nil {
		t.Fatal(err)
	}
	if cred.Uid != d.UID || cred.Gid != d.GID || !slices.Equal(cred.Groups, []uint32{d.GID, 50}) {
		t.Errorf("credential %+v, want %d:%d groups [%d 50]", cred, d.UID, d.GID, d.GID)
	}
	if _, err := credential(svc); err == nil {
		t.Errorf("credential after release: no error")
	}
	// A static user through DynamicUser=yes: its own groups, as
	// initgroups(3) makes them.
	cred, err = credential(&units.Service{Name: "r.service", DynamicUser: true, User: "root", Group: "root"})
	if err != nil || cred.Uid != 0 || cred.Gid != 0 || !slices.Contains(cred.Groups, 0) {
		t.Errorf("User=root: %+v, %v", cred, err)
	}
}

// TestDynamicUserConcurrent: units of one name starting at once share
// one id; units of different names get different ones.
func TestDynamicUserConcurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dynamic-uid")
	r := testRoots(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[string]map[uint32]bool{}
	var releases []func()
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc := dynSvc(t, fmt.Sprintf("n%d", i%4))
			d, release, err := allocDynamicUser(dir, svc, r)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if got[svc.User] == nil {
				got[svc.User] = map[uint32]bool{}
			}
			got[svc.User][d.UID] = true
			releases = append(releases, release)
		}()
	}
	wg.Wait()
	seen := map[uint32]string{}
	for name, ids := range got {
		if len(ids) != 1 {
			t.Errorf("%s got ids %v, want one", name, ids)
		}
		for id := range ids {
			if o, dup := seen[id]; dup {
				t.Errorf("%s and %s share id %d", name, o, id)
			}
			seen[id] = name
		}
	}
	for _, r := range releases {
		r()
	}
	if names, _ := os.ReadDir(dir); len(names) != 0 {
		t.Errorf("lock files left: %v", names)
	}
}

// TestDynamicUserSetUpExec: the one call before a unit's first command
// allocates the user, gives it the directories and names both in the
// environment; a failure holds nothing.
func TestDynamicUserSetUpExec(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "dynamic-uid")
	r := testRoots(t)
	svc := dynSvc(t, "e")
	env, release, err := setUpExec(svc, r, dir)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := credential(svc)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"USER=" + svc.User, "LOGNAME=" + svc.User, "STATE_DIRECTORY=" + r.State + "/e"}
	if !slices.Equal(env, want) {
		t.Errorf("env %q, want %q", env, want)
	}
	checkDir(t, r.State+"/private/e", 0o755, int(cred.Uid), int(cred.Gid))
	release()
	if names, _ := os.ReadDir(dir); len(names) != 0 {
		t.Errorf("lock files after release: %v", names)
	}

	// A symlink in the way: the start fails, the user is released.
	os.Remove(r.State + "/e")
	os.Symlink("/etc", r.State+"/e")
	if _, _, err := setUpExec(svc, r, dir); err == nil {
		t.Fatal("no error with a symlink in the way")
	}
	if names, _ := os.ReadDir(dir); len(names) != 0 {
		t.Errorf("lock files after a failed set-up: %v", names)
	}

	// Without DynamicUser= or User=: sockd's own ids, no USER.
	plain := execSvc(nil, []string{"p"}, nil, nil, nil, 0o700)
	plain.User = ""
	env, release, err = setUpExec(plain, r, dir)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if !slices.Equal(env, []string{"STATE_DIRECTORY=" + r.State + "/p"}) {
		t.Errorf("env %q", env)
	}
	checkDir(t, r.State+"/p", 0o700, os.Geteuid(), os.Getegid())
}
