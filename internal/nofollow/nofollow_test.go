package nofollow

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestOpenDirRefuses(t *testing.T) {
	root := t.TempDir()
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, rel := range []string{"", ".", "..", "../x", "a/../../x", "/etc", "a//b", "a/"} {
		if sub, _, err := d.OpenDir(rel, true, 0o755); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("OpenDir(%q) = %v, want ErrInvalid", rel, err)
			if sub != nil {
				sub.Close()
			}
		}
	}
	os.Symlink("/", filepath.Join(root, "up"))
	if _, _, err := d.OpenDir("up/tmp", true, 0o755); !errors.Is(err, ErrSymlink) {
		t.Errorf("OpenDir through a symlink: %v, want ErrSymlink", err)
	}
	sub, created, err := d.OpenDir("a/b", true, 0o700)
	if err != nil || !created {
		t.Fatalf("OpenDir(a/b) = %v, %v", created, err)
	}
	sub.Close()
	if _, created, err := d.OpenDir("a/b", true, 0o700); err != nil || created {
		t.Errorf("OpenDir(a/b) again: created=%v, %v", created, err)
	}
}

// TestRemoveAllMany removes a directory with more entries than one
// getdents(2) buffer holds, and a symlink to the test's own files.
func TestRemoveAllMany(t *testing.T) {
	root := t.TempDir()
	keep := filepath.Join(t.TempDir(), "keep")
	os.WriteFile(keep, nil, 0o644)
	dir := filepath.Join(root, "big")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	for i := range 2000 {
		if err := os.WriteFile(filepath.Join(dir, "file-with-a-longish-name-"+strconv.Itoa(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink(filepath.Dir(keep), filepath.Join(dir, "sub", "link"))
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.RemoveAll("big"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("big: %v, want removed", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("removed through a symlink: %v", err)
	}
	if err := d.RemoveAll("missing"); err != nil {
		t.Errorf("missing: %v", err)
	}
}
