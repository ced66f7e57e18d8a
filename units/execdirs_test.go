package units

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestExecDirsParse(t *testing.T) {
	set, diags := load(t, map[string]string{
		"app.service": okService + `RuntimeDirectory=app app/sub
RuntimeDirectory=./other//x/ app
RuntimeDirectoryMode=0750
RuntimeDirectoryPreserve=restart
StateDirectory=%p "with space"
StateDirectoryMode=2770
CacheDirectory=a
CacheDirectory=
CacheDirectory=b
LogsDirectory=app
ConfigurationDirectory=app
ConfigurationDirectoryMode=0700
`,
		"app.service.d/x.conf": "[Service]\nLogsDirectoryMode=0\n",
	})
	if len(diags) != 0 {
		t.Fatalf("diagnostics: %q", diags)
	}
	got := set.Services["app.service"].ExecDirs
	want := ExecDirs{
		Runtime:         ExecDir{Paths: []string{"app", "app/sub", "other/x"}, Mode: 0o750},
		State:           ExecDir{Paths: []string{"app", "with space"}, Mode: 0o770 | os.ModeSetgid},
		Cache:           ExecDir{Paths: []string{"b"}, Mode: 0o755},
		Logs:            ExecDir{Paths: []string{"app"}, Mode: 0},
		Configuration:   ExecDir{Paths: []string{"app"}, Mode: 0o700},
		RuntimePreserve: PreserveRestart,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ExecDirs:\n got %+v\nwant %+v", got, want)
	}
	if got.Empty() || !(ExecDirs{}).Empty() {
		t.Errorf("Empty is wrong")
	}
}

func TestExecDirsPreserve(t *testing.T) {
	for v, want := range map[string]RuntimePreserve{"yes": PreserveYes, "true": PreserveYes, "no": PreserveNo, "0": PreserveNo, "restart": PreserveRestart} {
		set, diags := load(t, map[string]string{"app.service": okService + "RuntimeDirectoryPreserve=" + v + "\n"})
		if len(diags) != 0 {
			t.Fatalf("%s: diagnostics: %q", v, diags)
		}
		if got := set.Services["app.service"].ExecDirs.RuntimePreserve; got != want {
			t.Errorf("RuntimeDirectoryPreserve=%s: %q, want %q", v, got, want)
		}
	}
}

func TestExecDirsErrors(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"StateDirectory=/var/lib/app", `app.service:3: StateDirectory: "/var/lib/app" is an absolute path (want a path relative to the directory's root)`},
		{"RuntimeDirectory=../etc", `app.service:3: RuntimeDirectory: "../etc": ".." is not allowed`},
		{"CacheDirectory=a/../../b", `app.service:3: CacheDirectory: "a/../../b": ".." is not allowed`},
		{"LogsDirectory=.", `app.service:3: LogsDirectory: empty path "."`},
		{"RuntimeDirectory=foo:bar", `app.service:3: RuntimeDirectory: "foo:bar": DIR:LINK symlinks are not supported by sockd`},
		{`StateDirectory=a\x00b`, `app.service:3: StateDirectory: invalid escape \x00`},
		{"StateDirectory=%q", `app.service:3: StateDirectory: specifier %q is not supported by sockd`},
		{"StateDirectoryMode=0888", `app.service:3: StateDirectoryMode: invalid octal mode "0888"`},
		{"RuntimeDirectoryMode=17777", `app.service:3: RuntimeDirectoryMode: invalid octal mode "17777"`},
		{"RuntimeDirectoryPreserve=sometimes", `app.service:3: RuntimeDirectoryPreserve: invalid value "sometimes" (want yes, no or restart)`},
		{"DynamicUser=maybe", `app.service:3: DynamicUser: invalid boolean "maybe" (want yes/no, true/false, on/off, 1/0)`},
	} {
		_, diags := load(t, map[string]string{"app.service": okService + tc.line + "\n"})
		if len(diags) != 1 || diags[0] != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.line, diags, tc.want)
		}
	}
}

// TestExecDirsSocket: in a .socket unit the options stay warnings, as
// every systemd.exec(5) option there.
func TestExecDirsSocket(t *testing.T) {
	set, diags := load(t, map[string]string{
		"app.socket":  "[Socket]\nListenStream=80\nRuntimeDirectory=app\nDynamicUser=yes\n",
		"app.service": okService,
	})
	want := []string{
		"app.socket:3: warning: RuntimeDirectory: not supported by sockd, ignored",
		"app.socket:4: warning: DynamicUser: not supported by sockd, ignored",
	}
	if !equalStrings(diags, want) || set.Sockets["app.socket"] == nil {
		t.Errorf("diagnostics %q, want %q", diags, want)
	}
}

func TestDynamicUserParse(t *testing.T) {
	set, diags := load(t, map[string]string{
		"web.service":     okService + "DynamicUser=yes\n",
		"named.service":   okService + "DynamicUser=yes\nUser=svc\n",
		"grouped.service": okService + "DynamicUser=yes\nGroup=adm\n",
		"off.service":     okService + "DynamicUser=no\n",
		"tpl@.service":    okService + "DynamicUser=yes\nStateDirectory=%i\n",
		"my.app.service":  okService + "DynamicUser=yes\n",
		"9lives.service":  okService + "DynamicUser=yes\n",
		"a-very-long-service-name-over-31.service": okService + "DynamicUser=yes\n",
	})
	if len(diags) != 0 {
		t.Fatalf("diagnostics: %q", diags)
	}
	for _, tc := range []struct{ unit, user, group string }{
		{"web.service", "web", "web"},
		{"named.service", "svc", "svc"},
		{"grouped.service", "grouped", "adm"},
		{"off.service", "", ""},
		{"tpl@.service", "tpl", "tpl"},
		{"my.app.service", DynamicUserName("my.app"), DynamicUserName("my.app")},
	} {
		s := set.Services[tc.unit]
		if s.User != tc.user || s.Group != tc.group || s.DynamicUser != (tc.user != "") {
			t.Errorf("%s: DynamicUser=%v User=%q Group=%q, want User=%q Group=%q", tc.unit, s.DynamicUser, s.User, s.Group, tc.user, tc.group)
		}
	}
	in, err := set.Services["tpl@.service"].Instantiate("x")
	if err != nil {
		t.Fatal(err)
	}
	if in.User != "tpl" || !equalStrings(in.ExecDirs.State.Paths, []string{"x"}) {
		t.Errorf("instance: User=%q StateDirectory=%q, want tpl and [x]", in.User, in.ExecDirs.State.Paths)
	}
	for _, prefix := range []string{"my.app", "9lives", "a-very-long-service-name-over-31"} {
		n := DynamicUserName(prefix)
		if !strings.HasPrefix(n, "_du") || len(n) != 19 || !strictUserName(n) || n != DynamicUserName(prefix) {
			t.Errorf("DynamicUserName(%q) = %q, want a stable _du + 16 hex digits", prefix, n)
		}
	}
	if DynamicUserName("my.app") == DynamicUserName("my.apq") {
		t.Errorf("DynamicUserName does not tell names apart")
	}
}
