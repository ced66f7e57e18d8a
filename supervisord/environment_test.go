package supervisord

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sockd/sockd/internal/testutil"
)

// Environment=, EnvironmentFile=, UnsetEnvironment=, PassEnvironment=,
// specifiers, and that nothing of sockd's own environment leaks.
func TestOptionsEnvironment(t *testing.T) {
	files := testutil.ShortDir(t)
	write := func(name, content string) string {
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	parsed := write("parsed.env", "# comment\n; comment too\n\n"+
		"PLAIN=value\n"+
		"  SPACED =  spaced value  \n"+
		"DQ=\"double \\\"quoted\\\" \\$HOME \\n\"\n"+
		"SQ='single $HOME \\n'\n"+
		"CONT=first\\\nsecond\n"+
		"MULTI=\"line one\nline two\"\n"+
		"JOINED=\"a\"'b'c\n"+
		"EMPTY=\n"+
		"export EXPORTED=yes\n"+
		"NOEQUALS\n"+
		"9BAD=x\n")
	first := write("first.env", "A=first\nB=first\n")
	second := write("second.env", "B=second\n")

	for _, tc := range []struct {
		name   string
		lines  string
		setenv map[string]string
		want   map[string]string
	}{
		{"quoting", `Environment="VAR1=word1 word2" VAR2=word3 "VAR3=$word 5 6" 'VAR4=it''s'`,
			nil, map[string]string{"VAR1": "word1 word2", "VAR2": "word3", "VAR3": "$word 5 6", "VAR4": "its"}},
		{"later-lines-override", "Environment=A=1 B=1\nEnvironment=A=2",
			nil, map[string]string{"A": "2", "B": "1"}},
		{"empty-resets", "Environment=A=1\nEnvironment=\nEnvironment=B=2",
			nil, map[string]string{"A": unset, "B": "2"}},
		{"file-parsing", "EnvironmentFile=" + parsed, nil, map[string]string{
			"PLAIN": "value", "SPACED": "spaced value", "DQ": `double "quoted" $HOME \n`,
			"SQ": `single $HOME \n`, "CONT": "firstsecond", "MULTI": "line one\nline two",
			"JOINED": "abc", "EMPTY": "", "EXPORTED": "yes", "NOEQUALS": unset, "9BAD": unset}},
		{"file-overrides-environment", "Environment=A=unit C=unit\nEnvironmentFile=" + first + "\nEnvironmentFile=" + second,
			nil, map[string]string{"A": "first", "B": "second", "C": "unit"}},
		{"optional-file-missing", "EnvironmentFile=-/nonexistent/sockd.env\nEnvironment=A=1",
			nil, map[string]string{"A": "1"}},
		{"unset", "Environment=A=1 B=2 C=3\nUnsetEnvironment=A C=4 PATH",
			nil, map[string]string{"A": unset, "B": "2", "C": "3", "PATH": unset}},
		{"unset-exact-assignment", "Environment=A=1 C=4\nUnsetEnvironment=C=4",
			nil, map[string]string{"A": "1", "C": unset}},
		{"pass", "PassEnvironment=FOO MISSING_VAR",
			map[string]string{"FOO": "from sockd", "BAR": "x"},
			map[string]string{"FOO": "from sockd", "BAR": unset, "MISSING_VAR": unset}},
		{"environment-overrides-pass", "PassEnvironment=FOO\nEnvironment=FOO=unit",
			map[string]string{"FOO": "from sockd"}, map[string]string{"FOO": "unit"}},
		{"sockd-env-absent", "",
			map[string]string{"NOTIFY_SOCKET": "/bogus", "LISTEN_FDS": "9", "LISTEN_PID": "1",
				"LISTEN_FDNAMES": "x", "WATCHDOG_USEC": "5", "WATCHDOG_PID": "1", "FOO": "x", "HOME": "/sockd-home"},
			map[string]string{"NOTIFY_SOCKET": unset, "LISTEN_FDS": "1", "LISTEN_FDNAMES": "app.socket",
				"WATCHDOG_USEC": unset, "WATCHDOG_PID": unset, "FOO": unset, "HOME": unset}},
		{"sockd-env-passed", "PassEnvironment=FOO WATCHDOG_PID",
			map[string]string{"FOO": "x", "WATCHDOG_PID": "1"}, map[string]string{"FOO": "x", "WATCHDOG_PID": "1"}},
		{"protocol-wins", "Environment=LISTEN_FDS=7 LISTEN_FDNAMES=x LISTEN_PID=1",
			nil, map[string]string{"LISTEN_FDS": "1", "LISTEN_FDNAMES": "app.socket"}},
		{"path-default", "", nil, map[string]string{"PATH": defaultPath}},
		{"path-set", "Environment=PATH=/opt/bin", nil, map[string]string{"PATH": "/opt/bin"}},
		{"specifiers", "Environment=N=%n P=%p NN=%N PCT=%%", nil,
			map[string]string{"N": "app.service", "P": "app", "NN": "app", "PCT": "%"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.setenv {
				t.Setenv(k, v)
			}
			e := newEnv(t, reportService(tc.lines+"\nEnvironment=CHILD_EXIT=0"))
			r, _ := e.runReport()
			checkEnv(t, r, tc.want)
			if v, _ := r.env("LISTEN_PID"); v != strconv.Itoa(r.Pid) {
				t.Errorf("LISTEN_PID=%s, want the child's pid %d", v, r.Pid)
			}
			if tc.name == "sockd-env-absent" {
				// Exactly what the unit and the protocol give.
				var keys []string
				for _, kv := range r.Env {
					k, _, _ := strings.Cut(kv, "=")
					keys = append(keys, k)
				}
				slices.Sort(keys)
				want := []string{"CHILD_EXIT", "GORACE", "LISTEN_FDNAMES", "LISTEN_FDS", "LISTEN_PID", "PATH", "SOCKD_TEST_CHILD"}
				if !slices.Equal(keys, want) {
					t.Errorf("environment keys %v, want %v", keys, want)
				}
			}
		})
	}
}

// A missing EnvironmentFile= without "-" fails the start.
func TestOptionsEnvironmentFileMissing(t *testing.T) {
	e := newEnv(t, reportService("EnvironmentFile=/nonexistent/sockd.env\nEnvironment=CHILD_EXIT=0"))
	err := e.d.Start(e.ctx(), "app")
	if err == nil || !strings.Contains(err.Error(), "EnvironmentFile=/nonexistent/sockd.env") {
		t.Fatalf("start: %v, want an EnvironmentFile= error", err)
	}
}
