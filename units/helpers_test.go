package units

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const okService = "[Service]\nExecStart=/bin/true\n"

// writeUnits writes files (name → content; names may contain a
// drop-in directory) into a new directory.
func writeUnits(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// load writes files, loads the directory and returns the set and the
// diagnostics formatted with paths relative to the directory.
func load(t *testing.T, files map[string]string) (*Set, []string) {
	t.Helper()
	dir := writeUnits(t, files)
	set, diags, err := LoadDir(dir)
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

func checkWellFormed(t testing.TB, diags Diagnostics) {
	t.Helper()
	for _, d := range diags {
		if d.File == "" || d.Msg == "" || d.Unit == "" || d.Line < 0 {
			t.Errorf("malformed diagnostic %#v", d)
		}
		if d.Msg != strings.TrimSpace(d.Msg) || strings.ContainsAny(d.Msg, "\n") {
			t.Errorf("diagnostic message not one trimmed line: %q", d.Msg)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
