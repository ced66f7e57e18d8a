package units

import (
	"strconv"
	"strings"
	"testing"
)

// lexed formats the options and diagnostics of data as
// "Section|Name|Value|line" and the diagnostics' text.
func lexed(t *testing.T, data string) (opts, diags []string) {
	t.Helper()
	os, ds := lex("f", "u", []byte(data))
	for _, o := range os {
		opts = append(opts, o.Section+"|"+o.Name+"|"+o.Value+"|"+strconv.Itoa(o.Line))
	}
	for _, d := range ds {
		diags = append(diags, d.Error())
	}
	return opts, diags
}

// The lexer follows systemd's config_parse and read_line; each case is
// what systemd does with the same text.
func TestLexSystemdSyntax(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		opts  []string
		diags []string
	}{
		{"comment ending in backslash does not continue",
			"[Service]\n# a comment \\\nA=1\n; another \\\nB=2\n",
			[]string{"Service|||1", "Service|A|1|3", "Service|B|2|5"}, nil},
		{"comment inside a continuation is skipped",
			"[Service]\nA=1 \\\n# comment \\\n  2\n",
			[]string{"Service|||1", "Service|A|1    2|2"}, nil},
		{"indented comment",
			"[Service]\n   # A=1\n\t; B=2\nC=3\n",
			[]string{"Service|||1", "Service|C|3|4"}, nil},
		{"escaped backslash at the end does not continue",
			"[Service]\nA=x\\\\\nB=y\n",
			[]string{"Service|||1", `Service|A|x\\|2`, "Service|B|y|3"}, nil},
		{"empty line ends a continuation",
			"[Service]\nA=x \\\n\nB=y\n",
			[]string{"Service|||1", "Service|A|x|2", "Service|B|y|4"}, nil},
		{"continuation at the end of the file",
			"[Service]\nA=x \\",
			[]string{"Service|||1", "Service|A|x|2"}, nil},
		{"CR line ends",
			"[Service]\rA=1\rB=2\r",
			[]string{"Service|||1", "Service|A|1|2", "Service|B|2|3"}, nil},
		{"CRLF line ends",
			"[Service]\r\nA=1\r\nB=2\r\n",
			[]string{"Service|||1", "Service|A|1|2", "Service|B|2|3"}, nil},
		{"LFCR is one line end, CRCR two",
			"[Service]\n\rA=1\r\rB=2",
			[]string{"Service|||1", "Service|A|1|2", "Service|B|2|4"}, nil},
		{"CR continuation",
			"[Service]\rA=1 \\\r  2\r",
			[]string{"Service|||1", "Service|A|1    2|2"}, nil},
		{"NUL ends a line",
			"[Service]\nA=1\x00B=2\n",
			[]string{"Service|||1", "Service|A|1|2", "Service|B|2|3"},
			[]string{"f:2: warning: NUL byte read as the end of a line, as systemd does"}},
		{"invalid UTF-8",
			"[Service]\nA=caf\xe9\nB=ok\n",
			[]string{"Service|||1", "Service|B|ok|3"},
			[]string{"f:2: invalid UTF-8; systemd refuses the unit"}},
		{"invalid UTF-8 in a comment is fine",
			"# caf\xe9\n[Service]\nA=1\n",
			[]string{"Service|||2", "Service|A|1|3"}, nil},
		{"noncharacter",
			"[Service]\nA=\xef\xbf\xbe\n",
			[]string{"Service|||1"},
			[]string{"f:2: invalid UTF-8; systemd refuses the unit"}},
		{"surrogate",
			"[Service]\nA=\xed\xa0\x80\n",
			[]string{"Service|||1"},
			[]string{"f:2: invalid UTF-8; systemd refuses the unit"}},
		{"valid UTF-8",
			"[Service]\nDescription=café ✓ \U0001F600\n",
			[]string{"Service|||1", "Service|Description|café ✓ \U0001F600|2"}, nil},
		{"section header with a quote",
			"[Ser\"vice]\nA=1\n", nil,
			[]string{`f:1: bad characters in section header "[Ser\"vice]"`}},
		{"section header with a control character",
			"[Ser\x01vice]\nA=1\n", nil,
			[]string{`f:1: bad characters in section header "[Ser\x01vice]"`}},
		{"BOM",
			"\xef\xbb\xbf[Service]\nA=1\n",
			[]string{"Service|||1", "Service|A|1|2"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts, diags := lexed(t, tc.in)
			if !equalStrings(opts, tc.opts) {
				t.Errorf("options:\n got %q\nwant %q", opts, tc.opts)
			}
			if !equalStrings(diags, tc.diags) {
				t.Errorf("diagnostics:\n got %q\nwant %q", diags, tc.diags)
			}
		})
	}
}

func TestSplitLines(t *testing.T) {
	tests := []struct {
		in    string
		lines []string
		nulAt int
	}{
		{"", nil, 0},
		{"a", []string{"a"}, 0},
		{"a\n", []string{"a"}, 0},
		{"a\n\n", []string{"a", ""}, 0},
		{"a\r\nb", []string{"a", "b"}, 0},
		{"a\n\rb", []string{"a", "b"}, 0},
		{"a\r\rb", []string{"a", "", "b"}, 0},
		{"a\r\n\x00b", []string{"a", "b"}, 1},
		{"a\x00\nb", []string{"a", "", "b"}, 1},
		{"a\x00\x00b", []string{"a", "", "b"}, 1},
		{"x\na\x00", []string{"x", "a"}, 2},
	}
	for _, tc := range tests {
		lines, nulAt := splitLines([]byte(tc.in))
		if !equalStrings(lines, tc.lines) || nulAt != tc.nulAt {
			t.Errorf("splitLines(%q) = %q, %d; want %q, %d", tc.in, lines, nulAt, tc.lines, tc.nulAt)
		}
	}
}

// A unit file with an invalid UTF-8 line or a comment that would have
// swallowed an option behaves as in systemd once loaded.
func TestLexInUnits(t *testing.T) {
	set, diags := load(t, map[string]string{
		"a.service": "[Service]\n# ExecStart=/bin/false \\\nExecStart=/bin/true\n",
		"b.service": "[Service]\nExecStart=/bin/echo caf\xe9\n",
		"c.service": "[Service]\rExecStart=/bin/true\r",
	})
	want := []string{"b.service:1: no ExecStart= or ExecStop=", "b.service:2: invalid UTF-8; systemd refuses the unit"}
	if !equalStrings(diags, want) {
		t.Errorf("diagnostics:\n got %q\nwant %q", diags, want)
	}
	if got := keys(set.Services); !equalStrings(got, []string{"a.service", "c.service"}) {
		t.Errorf("services %q", got)
	}
	if a := set.Services["a.service"]; a != nil && strings.Join(a.ExecStart[0].Argv, " ") != "/bin/true" {
		t.Errorf("a.service ExecStart %q", a.ExecStart[0].Argv)
	}
}
