package units

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// cacheUnits is a directory with each thing a unit is built from: a
// plain socket and service, a drop-in, a socket template with an
// instance from sockets.target.wants and one from a link, a service
// template with a drop-in of the template and one of an instance, a
// masked unit, and a unit with an error.
var cacheUnits = map[string]string{
	"a.socket":                        "[Socket]\nListenStream=/run/a.sock\n",
	"a.service":                       okService,
	"a.service.d/10-env.conf":         "[Service]\nEnvironment=A=1\n",
	"t@.socket":                       "[Socket]\nListenStream=/run/t-%i.sock\n",
	"t@.service":                      "[Service]\nExecStart=/bin/echo %i\n",
	"t@.service.d/10-tpl.conf":        "[Service]\nEnvironment=T=1\n",
	"t@x.service.d/20-own.conf":       "[Service]\nEnvironment=X=1\n",
	WantsDir + "/t@x.socket":          "",
	WantsDir + "/t@y.socket":          "",
	"bad.socket":                      "[Socket]\nListenStream=/run/bad.sock\nNoSuchOption=1\n",
	"bad.service":                     okService,
	"masked.service":                  "",
	"b.socket":                        "[Socket]\nListenStream=/run/b.sock\nService=b-real.service\n",
	"b-real.service":                  okService,
	"b-real.service.d/sub/not-a-conf": "x",
}

// loadCached loads dir through c, failing the test on a directory error.
func loadCached(t *testing.T, c *Cache, dir string) (*Set, Diagnostics) {
	t.Helper()
	set, diags, err := LoadOptions{Cache: c}.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return set, diags
}

// TestCacheNothingChanged: a second load through a Cache with no file
// changed parses no file and returns the very units of the first, with
// the same diagnostics; and what it returns is what a load without a
// Cache returns.
func TestCacheNothingChanged(t *testing.T) {
	dir := writeUnits(t, cacheUnits)
	c := NewCache()
	c.racy = 0 // the files just written count as old: see TestCacheSeesRacyRewrites
	set1, diags1 := loadCached(t, c, dir)
	if c.Parsed() == 0 {
		t.Fatal("first load parsed no file")
	}
	before := c.Parsed()
	set2, diags2 := loadCached(t, c, dir)
	if n := c.Parsed() - before; n != 0 {
		t.Errorf("second load with nothing changed parsed %d files, want 0", n)
	}
	for name, s := range set1.Services {
		if set2.Services[name] != s {
			t.Errorf("service %s: a new value, want the first load's", name)
		}
	}
	for name, s := range set1.Sockets {
		if set2.Sockets[name] != s {
			t.Errorf("socket %s: a new value, want the first load's", name)
		}
	}
	if !reflect.DeepEqual(diags1, diags2) {
		t.Errorf("diagnostics differ:\nfirst  %v\nsecond %v", diags1, diags2)
	}
	plain, plainDiags, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(plain, set2) {
		t.Errorf("cached load differs from a plain load:\nplain  %v %v\ncached %v %v",
			keys(plain.Services), keys(plain.Sockets), keys(set2.Services), keys(set2.Sockets))
	}
	if !reflect.DeepEqual(plainDiags, diags2) {
		t.Errorf("cached diagnostics differ from a plain load's:\nplain  %v\ncached %v", plainDiags, diags2)
	}
	for _, want := range []string{"t@x.service", "t@y.service", "a.service", "b-real.service"} {
		if set2.Services[want] == nil {
			t.Errorf("%s not loaded; services %v", want, keys(set2.Services))
		}
	}
}

// TestCacheSeesChanges rewrites, one at a time, a unit file, a drop-in,
// a template, a template's drop-in and an instance's drop-in, each with
// text of the same size and its old mtime put back (os.Chtimes), right
// after a load, again and again: every load through the Cache must see
// the new text, whatever the clock's tick (the files were all written just now, so all are racy
// here: TestCacheNothingChanged counts what is parsed). Adding and
// removing a drop-in, a unit, and a rename over a file, show too.
func TestCacheSeesChanges(t *testing.T) {
	dir := writeUnits(t, cacheUnits)
	c := NewCache()
	loadCached(t, c, dir)
	env := func(set *Set, unit string) []string { return set.Services[unit].Environment }
	for _, tc := range []struct {
		file  string
		text  func(i int) string // the same size for every i
		check func(set *Set, i int) error
	}{
		{"a.service", func(i int) string { return fmt.Sprintf("[Service]\nExecStart=/bin/sleep %04d\n", i) },
			func(set *Set, i int) error {
				return want(strings.Join(set.Services["a.service"].ExecStart[0].Argv, " "), fmt.Sprintf("/bin/sleep %04d", i))
			}},
		{"a.service.d/10-env.conf", func(i int) string { return fmt.Sprintf("[Service]\nEnvironment=A=%04d\n", i) },
			func(set *Set, i int) error {
				return want(strings.Join(env(set, "a.service"), " "), fmt.Sprintf("A=%04d", i))
			}},
		{"t@.service", func(i int) string { return fmt.Sprintf("[Service]\nExecStart=/bin/echo %%i%04d\n", i) },
			func(set *Set, i int) error {
				return want(strings.Join(set.Services["t@y.service"].ExecStart[0].Argv, " "), fmt.Sprintf("/bin/echo y%04d", i))
			}},
		{"t@.service.d/10-tpl.conf", func(i int) string { return fmt.Sprintf("[Service]\nEnvironment=T=%04d\n", i) },
			func(set *Set, i int) error {
				return want(strings.Join(env(set, "t@x.service"), " "), fmt.Sprintf("T=%04d X=1", i))
			}},
		{"t@x.service.d/20-own.conf", func(i int) string { return fmt.Sprintf("[Service]\nEnvironment=X=%04d\n", i) },
			func(set *Set, i int) error {
				return want(strings.Join(env(set, "t@x.service"), " "), fmt.Sprintf("T=1 X=%04d", i))
			}},
		{"t@.socket", func(i int) string { return fmt.Sprintf("[Socket]\nListenStream=/run/t-%%i%04d.sock\n", i) },
			func(set *Set, i int) error {
				return want(set.Sockets["t@x.socket"].Listens[0].Address, fmt.Sprintf("/run/t-x%04d.sock", i))
			}},
	} {
		t.Run(strings.ReplaceAll(tc.file, "/", "_"), func(t *testing.T) {
			p := filepath.Join(dir, tc.file)
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			orig, _ := os.ReadFile(p)
			defer func() {
				os.WriteFile(p, orig, 0o644)
				loadCached(t, c, dir)
			}()
			mtime := st.ModTime()
			for i := range 30 {
				if err := os.WriteFile(p, []byte(tc.text(i)), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(p, mtime, mtime); err != nil {
					t.Fatal(err)
				}
				set, diags := loadCached(t, c, dir)
				if err := diags.Err(); err != nil && !strings.Contains(err.Error(), "bad.socket") {
					t.Fatalf("rewrite %d: %v", i, err)
				}
				if err := tc.check(set, i); err != nil {
					t.Fatalf("rewrite %d of %s (same size, same mtime): %v", i, tc.file, err)
				}
			}
		})
	}
	t.Run("drop-in added and removed", func(t *testing.T) {
		p := filepath.Join(dir, "a.service.d", "20-more.conf")
		if err := os.WriteFile(p, []byte("[Service]\nEnvironment=B=2\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		set, _ := loadCached(t, c, dir)
		if err := want(strings.Join(env(set, "a.service"), " "), "A=1 B=2"); err != nil {
			t.Fatal(err)
		}
		os.Remove(p)
		set, _ = loadCached(t, c, dir)
		if err := want(strings.Join(env(set, "a.service"), " "), "A=1"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("drop-in file added beside a subdirectory", func(t *testing.T) {
		p := filepath.Join(dir, "b-real.service.d")
		if err := os.WriteFile(filepath.Join(p, "10.conf"), []byte("[Service]\nEnvironment=R=1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(filepath.Join(p, "10.conf"))
		set, _ := loadCached(t, c, dir)
		if err := want(strings.Join(env(set, "b-real.service"), " "), "R=1"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unit removed and added back", func(t *testing.T) {
		p := filepath.Join(dir, "a.socket")
		orig, _ := os.ReadFile(p)
		os.Remove(p)
		set, _ := loadCached(t, c, dir)
		if set.Sockets["a.socket"] != nil {
			t.Fatal("a.socket still loaded after its file was removed")
		}
		if err := os.WriteFile(p, orig, 0o644); err != nil {
			t.Fatal(err)
		}
		set, _ = loadCached(t, c, dir)
		if set.Sockets["a.socket"] == nil {
			t.Fatal("a.socket not loaded after its file came back")
		}
	})
	t.Run("file replaced by a rename", func(t *testing.T) {
		p := filepath.Join(dir, "a.service")
		tmp := filepath.Join(dir, ".a.service.tmp")
		if err := os.WriteFile(tmp, []byte("[Service]\nExecStart=/bin/sleep 7777\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
		set, _ := loadCached(t, c, dir)
		if err := want(strings.Join(set.Services["a.service"].ExecStart[0].Argv, " "), "/bin/sleep 7777"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestCacheRacy: a file whose times are within the granularity of the
// load's start is read by every load until they are older; one whose
// times are older is not.
func TestCacheRacy(t *testing.T) {
	dir := writeUnits(t, map[string]string{"a.socket": "[Socket]\nListenStream=/run/a.sock\n", "a.service": okService})
	c := NewCache() // 100 ms: the files just written are racy
	loadCached(t, c, dir)
	before := c.Parsed()
	loadCached(t, c, dir)
	if n := c.Parsed() - before; n != 2 {
		t.Errorf("files written just now: %d parsed again, want 2 (racy)", n)
	}
	// ctime cannot be set back: the window is what the test moves.
	c.racy = 0
	loadCached(t, c, dir)
	before = c.Parsed()
	loadCached(t, c, dir)
	if n := c.Parsed() - before; n != 0 {
		t.Errorf("old files: %d parsed again, want 0", n)
	}
}

func want(got, want string) error {
	if got != want {
		return fmt.Errorf("got %q, want %q", got, want)
	}
	return nil
}
