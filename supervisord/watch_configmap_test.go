package supervisord

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/testutil"
	"github.com/sockd/sockd/units"
)

// configMapVolume lays out a directory as the kubelet lays out a
// ConfigMap volume, and updates it the same way: the files are in a
// hidden directory named after the time, ..data is a symbolic link to
// it, and each key is a link KEY → ..data/KEY. An update writes a new
// hidden directory, swaps ..data to it by renaming a new link over it,
// adds the links of new keys, removes those of keys gone, and removes
// the old directory. The mount point is world-writable, as the kubelet
// makes it (the emptyDir it wraps is 0777).
type configMapVolume struct {
	t     *testing.T
	mount string
}

func newConfigMapVolume(t *testing.T, mount string, files map[string]string) *configMapVolume {
	t.Helper()
	if err := os.Mkdir(mount, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(mount, 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	v := &configMapVolume{t: t, mount: mount}
	v.update(files)
	return v
}

// update projects files (key → content) into the volume.
func (v *configMapVolume) update(files map[string]string) {
	t := v.t
	t.Helper()
	data := filepath.Join(v.mount, "..data")
	old, err := os.Readlink(data)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	ts, err := os.MkdirTemp(v.mount, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	for k, content := range files {
		if err := os.WriteFile(filepath.Join(ts, k), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(v.mount, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, data); err != nil {
		t.Fatal(err)
	}
	for k := range files {
		link := filepath.Join(v.mount, k)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", k), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	if old == "" {
		return
	}
	ents, err := os.ReadDir(filepath.Join(v.mount, old))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if _, ok := files[e.Name()]; !ok {
			if err := os.Remove(filepath.Join(v.mount, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.RemoveAll(filepath.Join(v.mount, old)); err != nil {
		t.Fatal(err)
	}
}

// A ConfigMap volume's update, as the kubelet makes it, is picked up by
// the watch of --units MOUNT/..data (contrib/kubernetes/sockd.yaml): a
// new unit is added, a changed one changed, a key removed is a unit
// removed, and nothing else is touched.
func TestWatchConfigMapVolume(t *testing.T) {
	base := testutil.ShortDir(t)
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	mount := filepath.Join(base, "units")
	pair := func(files map[string]string, name, env string) {
		files[name+".socket"] = "[Socket]\nListenStream=" + filepath.Join(base, name+".sock") + "\n"
		files[name+".service"] = "[Service]\nExecStart=/bin/true\nEnvironment=RELEASE=" + env + "\n"
	}
	v1 := map[string]string{}
	pair(v1, "a", "v1")
	vol := newConfigMapVolume(t, mount, v1)

	reloads := make(chan api.ReloadResult, 16)
	d := New(Config{UnitsDir: filepath.Join(mount, "..data"), RuntimeDir: filepath.Join(base, "rt"),
		Log:      zerolog.New(zerolog.NewTestWriter(t)),
		Reloaded: func(r api.ReloadResult) { reloads <- r }})
	d.roots = testRoots(t)
	ctx := openWatched(t, d)
	if _, err := d.Status(ctx, "a"); err != nil {
		t.Fatalf("a not loaded from the volume: %v", err)
	}
	// next waits for reloads until they have added, changed and removed
	// the units of want (field → units), and fails on a reload with a
	// problem or one that removes a (it is in every update).
	next := func(what string, want map[string][]string) {
		t.Helper()
		start := time.Now()
		deadline := time.After(10 * time.Second)
		seen := map[string][]string{}
		for {
			select {
			case r := <-reloads:
				if len(r.Diagnostics) > 0 {
					t.Fatalf("%s: reload %+v has problems", what, r)
				}
				if slices.Contains(r.Removed, "a.service") {
					t.Fatalf("%s: reload %+v removed a", what, r)
				}
				seen["added"] = append(seen["added"], r.Added...)
				seen["changed"] = append(seen["changed"], r.Changed...)
				seen["removed"] = append(seen["removed"], r.Removed...)
			case <-deadline:
				t.Fatalf("%s: reloads %v, want %v", what, seen, want)
			}
			done := true
			for field, us := range want {
				for _, u := range us {
					done = done && slices.Contains(seen[field], u)
				}
			}
			if done {
				t.Logf("%s: applied %v after the update", what, time.Since(start).Round(time.Millisecond))
				return
			}
		}
	}

	v2 := map[string]string{}
	pair(v2, "a", "v2")
	pair(v2, "b", "v1")
	vol.update(v2)
	next("a key added, another changed", map[string][]string{"added": {"b.service"}, "changed": {"a.service"}})

	v3 := map[string]string{}
	pair(v3, "a", "v2")
	vol.update(v3)
	next("a key removed", map[string][]string{"removed": {"b.service"}})
	if _, err := os.Stat(filepath.Join(base, "b.sock")); !os.IsNotExist(err) {
		t.Fatalf("b's socket file left: %v", err)
	}
}

// The mount point of a ConfigMap volume is world-writable (the kubelet
// makes it so), and sockd, as root, refuses unit files from a directory
// other users can write: --units must name MOUNT/..data, the kubelet's
// own directory (0755). This is why contrib/kubernetes does.
func TestConfigMapMountPointRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the unit directory's owner and mode are checked only when sockd runs as root")
	}
	base := t.TempDir()
	mount := filepath.Join(base, "units")
	newConfigMapVolume(t, mount, map[string]string{
		"a.socket":  "[Socket]\nListenStream=" + filepath.Join(base, "a.sock") + "\n",
		"a.service": "[Service]\nExecStart=/bin/true\n",
	})
	set, diags, err := units.LoadDir(mount)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Services) != 0 || diags.Err() == nil || !strings.Contains(diags.Err().Error(), "refused") {
		t.Fatalf("the mount point loaded %d services, diagnostics %v; want every unit refused", len(set.Services), diags)
	}
	set, diags, err = units.LoadDir(filepath.Join(mount, "..data"))
	if err != nil {
		t.Fatal(err)
	}
	if len(diags) != 0 || set.Services["a.service"] == nil {
		t.Fatalf("..data: services %v, diagnostics %v; want a.service and no problem", set.Services, diags)
	}
}
