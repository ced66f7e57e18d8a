package units

import (
	"strings"
	"testing"
)

// splitExec splits as systemd's config_parse_exec: each case is what
// systemd makes of the same value.
func TestSplitExec(t *testing.T) {
	tests := []struct {
		in    string
		cmds  string // commands joined by " | ", words by ","
		warns []string
		err   bool
	}{
		{`/bin/a b c`, "/bin/a,b,c", nil, false},
		{`/bin/a b ; /bin/c d`, "/bin/a,b | /bin/c,d", nil, false},
		{`/bin/a ;/bin/c`, "/bin/a,;/bin/c", nil, false},
		{`/bin/a b; /bin/c`, "/bin/a,b;,/bin/c", nil, false},
		{`/bin/a ; ; /bin/c`, "/bin/a | /bin/c", nil, false},
		{`; /bin/a ;`, "/bin/a", nil, false},
		{`/bin/a \; b`, "/bin/a,;,b", nil, false},
		{`/bin/a \;`, "/bin/a,;", nil, false},
		{`/bin/a ";" b`, "/bin/a,;,b", nil, false},
		{`/bin/a ';'`, "/bin/a,;", nil, false},
		{`/bin/a \\; b`, `/bin/a,\;,b`, nil, false},
		{"/bin/a\t;\t/bin/b", "/bin/a | /bin/b", nil, false},
		{`/bin/a x\;y`, `/bin/a,x\;y`, []string{`x\;y`}, false},
		{`/bin/a \-v \.x \d`, `/bin/a,\-v,\.x,\d`, []string{`\-v`, `\.x`, `\d`}, false},
		{`/bin/a \$HOME $$x`, `/bin/a,\$HOME,$$x`, []string{`\$HOME`}, false},
		{`/bin/a a\ b c`, `/bin/a,a\ b,c`, []string{`a\ b`}, false},
		{`/bin/a "x\qy" \n`, "/bin/a,x\\qy,\n", []string{`x\qy`}, false},
		{`/bin/a \x4 \x00`, `/bin/a,\x4,\x00`, []string{`\x4`, `\x00`}, false},
		{`/bin/a \x41\101\s\t`, "/bin/a,AA \t", nil, false},
		{`/bin/a "b c" 'd e'f`, "/bin/a,b c,d ef", nil, false},
		{`/bin/a "open`, "", nil, true},
		{`/bin/a "x\`, "", nil, true},
		{`/bin/a x\`, `/bin/a,x\`, []string{`x\`}, false},
		{``, "", nil, false},
		{`;`, "", nil, false},
	}
	for _, tc := range tests {
		cmds, warns, err := splitExec(tc.in)
		var got []string
		for _, c := range cmds {
			got = append(got, strings.Join(c, ","))
		}
		if (err != nil) != tc.err || strings.Join(got, " | ") != tc.cmds || !equalStrings(warns, tc.warns) {
			t.Errorf("splitExec(%q) = %q, %q, %v; want %q, %q, err %v", tc.in, got, warns, err, tc.cmds, tc.warns, tc.err)
		}
	}
}

// Commands split by ";" become Command entries of their own, with the
// line of their option; the "-" prefix turns a bad command into a
// warning that drops the rest of the line, as in systemd.
func TestExecCommands(t *testing.T) {
	set, diags := load(t, map[string]string{
		"one.service": "[Service]\nType=oneshot\nExecStart=/bin/a 1 ; -/bin/b \\; ; @/bin/c argv0 x\n",
		"two.service": "[Service]\nExecStart=/bin/a ; /bin/b\n",
		"ign.service": "[Service]\nType=oneshot\nExecStart=/bin/a ; -bin/b ; /bin/c\nExecStart=/bin/d\n",
		"pfx.service": "[Service]\nExecStart=--/bin/a\n",
		"dir.service": "[Service]\nExecStart=/usr/bin/\n",
		"esc.service": "[Service]\nExecStart=/bin/echo \\$HOME a\\ b\n",
	})
	want := []string{
		`dir.service:2: ExecStart: program "/usr/bin/" is a directory`,
		`esc.service:2: warning: ExecStart: "\$HOME": unknown escape sequence, the backslash is kept (as in systemd)`,
		`esc.service:2: warning: ExecStart: "a\ b": unknown escape sequence, the backslash is kept (as in systemd)`,
		`ign.service:3: warning: ExecStart: "bin/b" is neither an absolute path nor a plain program name; ignored because of the "-" prefix, as systemd does`,
		"pfx.service:1: no ExecStart= or ExecStop=",
		`pfx.service:2: warning: ExecStart: "-/bin/a" is neither an absolute path nor a plain program name; ignored because of the "-" prefix, as systemd does`,
		`two.service:2: ExecStart: more than one ExecStart= is only allowed for Type=oneshot`,
	}
	if !equalStrings(diags, want) {
		t.Errorf("diagnostics:\n got %q\nwant %q", diags, want)
	}
	one := set.Services["one.service"]
	if one == nil || len(one.ExecStart) != 3 {
		t.Fatalf("one.service = %+v", one)
	}
	for i, want := range []string{"/bin/a 1", "/bin/b ;", "argv0 x"} {
		c := one.ExecStart[i]
		if got := strings.Join(c.Argv, " "); got != want || c.Line != 3 || c.IgnoreFailure != (i == 1) {
			t.Errorf("command %d = %+v, want argv %q on line 3", i, c, want)
		}
	}
	if one.ExecStart[2].Path != "/bin/c" {
		t.Errorf("@ command path %q", one.ExecStart[2].Path)
	}
	ign := set.Services["ign.service"]
	if ign == nil || len(ign.ExecStart) != 2 || ign.ExecStart[0].Path != "/bin/a" || ign.ExecStart[1].Path != "/bin/d" {
		t.Errorf("ign.service = %+v", ign)
	}
	if esc := set.Services["esc.service"]; esc == nil || !equalStrings(esc.ExecStart[0].Argv, []string{"/bin/echo", `\$HOME`, `a\ b`}) {
		t.Errorf("esc.service = %+v", esc)
	}
}

// A bad word in Environment= drops it and the rest of the line, with a
// warning; the assignments before it stand, as in systemd.
func TestEnvironmentBadSyntax(t *testing.T) {
	set, _ := load(t, map[string]string{"app.service": okService + "Environment=A=1 \"B=2 3\" C=\\$x D=4\nEnvironment=E=5\n"})
	if s := set.Services["app.service"]; s == nil || !equalStrings(s.Environment, []string{"A=1", "B=2 3", "E=5"}) {
		t.Errorf("service = %+v", s)
	}
}
