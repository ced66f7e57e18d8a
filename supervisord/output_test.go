package supervisord

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/testutil"
)

// StandardOutput=/StandardError=: journal (Daemon.Logs), null, file:,
// append:, truncate:, and StandardError=inherit following stdout.
func TestOptionsOutput(t *testing.T) {
	const old = "0123456789\nabcdefghij\n"
	for _, tc := range []struct {
		name      string
		lines     string
		logs      []string // "stream line", in order
		file      string   // content of the file after the run
		noFileYet bool
	}{
		{"journal", "", []string{"stdout out-line", "stderr err-line"}, "", false},
		// StandardError= defaults to inherit: it follows StandardOutput=.
		{"null-stdout", "StandardOutput=null", nil, "", false},
		{"null-stdout-journal-stderr", "StandardOutput=null\nStandardError=journal", []string{"stderr err-line"}, "", false},
		{"null-both", "StandardOutput=null\nStandardError=null", nil, "", false},
		{"file", "StandardOutput=file:FILE", nil, "out-line\nerr-line\nhij\n", false}, // overwritten in place
		{"file-new", "StandardOutput=file:FILE", nil, "out-line\nerr-line\n", true},
		{"append", "StandardOutput=append:FILE", nil, old + "out-line\nerr-line\n", false},
		{"truncate", "StandardOutput=truncate:FILE", nil, "out-line\nerr-line\n", false},
		{"file-journal-stderr", "StandardOutput=truncate:FILE\nStandardError=journal", []string{"stderr err-line"}, "out-line\n", false},
		{"both-append", "StandardOutput=append:FILE\nStandardError=append:FILE", nil, old + "out-line\nerr-line\n", false},
		{"stderr-inherit", "StandardOutput=append:FILE\nStandardError=inherit", nil, old + "out-line\nerr-line\n", false},
		{"stderr-file", "StandardError=truncate:FILE", []string{"stdout out-line"}, "err-line\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(testutil.ShortDir(t), "out.log")
			if !tc.noFileYet {
				if err := os.WriteFile(file, []byte(old), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			lines := strings.ReplaceAll(tc.lines, "FILE", file)
			e := newEnv(t, reportService(lines+"\nEnvironment=CHILD_EXIT=0 CHILD_NOREPORT=1 CHILD_STDOUT=out-line CHILD_STDERR=err-line"))
			if err := e.d.Start(e.ctx(), "app"); err != nil {
				t.Fatal(err)
			}
			e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 0 && st.Result != "" })
			ls, err := e.d.Logs(e.ctx(), "app", api.LogQuery{N: 100})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range ls {
				got = append(got, l.Stream+" "+l.Line)
			}
			// Two pipes: the order between streams is not kept.
			slices.Sort(got)
			want := slices.Clone(tc.logs)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("logs %q, want %q", got, want)
			}
			if tc.file != "" {
				b, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				if string(b) != tc.file {
					t.Errorf("file %q, want %q", b, tc.file)
				}
			}
		})
	}
	t.Run("file-in-missing-dir", func(t *testing.T) {
		e := newEnv(t, reportService("StandardOutput=file:/nonexistent/dir/out.log\nEnvironment=CHILD_EXIT=0"))
		if err := e.d.Start(e.ctx(), "app"); err == nil || !strings.Contains(err.Error(), "StandardOutput=") {
			t.Fatalf("start: %v, want a StandardOutput= error", err)
		}
	})
}
