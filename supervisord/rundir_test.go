package supervisord

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sockd/sockd/internal/testutil"
)

// The runtime directory's warning names the first directory on its path
// that other users cannot search, its parents included: a runtime
// directory of mode 0755 inside a 0700 one hides NOTIFY_SOCKET from a
// User= or DynamicUser= service all the same (uWSGI's sd_notify gets
// EACCES, and READY=1 never comes).
func TestRuntimeDirNotSearchable(t *testing.T) {
	for _, tc := range []struct {
		name       string
		parentMode os.FileMode
		warn       bool
	}{
		{"searchable", 0o755, false},
		{"parent 0700", 0o700, true},
		{"parent 0750", 0o750, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := filepath.Join(testutil.ShortDir(t), "p")
			if err := os.Mkdir(parent, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Dir(parent), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(parent, tc.parentMode); err != nil {
				t.Fatal(err)
			}
			rt := filepath.Join(parent, "rt")
			var buf bytes.Buffer
			d := New(Config{RuntimeDir: rt, Log: zerolog.New(&buf)})
			if err := d.openRunDir(); err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(rt); err != nil || fi.Mode().Perm() != 0o755 {
				t.Fatalf("runtime directory: %v, %v; want it made 0755", fi, err)
			}
			if !tc.warn {
				if buf.Len() != 0 {
					t.Fatalf("logged %s, want nothing", buf.Bytes())
				}
				return
			}
			var l map[string]any
			if err := json.Unmarshal(buf.Bytes(), &l); err != nil {
				t.Fatalf("log %q: %v", buf.Bytes(), err)
			}
			if l["level"] != "warn" || l["dir"] != parent || l["runtime_dir"] != rt || l["mode"] != tc.parentMode.String() {
				t.Fatalf("logged %v, want a warning naming %s (%v)", l, parent, tc.parentMode)
			}
		})
	}
}
