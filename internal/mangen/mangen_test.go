package mangen

import (
	"bytes"
	"flag"
	"os/exec"
	"strings"
	"testing"
)

// render runs groff on a page as man -l does, failing on any warning,
// and returns the text.
func render(t *testing.T, page string) string {
	t.Helper()
	if _, err := exec.LookPath("groff"); err != nil {
		t.Fatal("groff (groff-base, .ci/deps) is needed to check the pages")
	}
	var out, errb bytes.Buffer
	cmd := exec.Command("groff", "-ww", "-man", "-Tutf8", "-P-cbou")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(page), &out, &errb
	if err := cmd.Run(); err != nil || errb.Len() > 0 {
		t.Fatalf("groff: %v\n%s\n%s", err, errb.String(), page)
	}
	return out.String()
}

func TestMarkdown(t *testing.T) {
	var b bytes.Buffer
	p := NewPage(&b, "x.units", "5", "2025-01-02", "sockd", "")
	p.Name("x.units", "test")
	p.Markdown("# Title\n\nA `\\xNN` escape, **bold**, *it*, a [link](security.md) and ≤ 4\u00a0MiB.\n" +
		". a line with a dot\n'and a quote\n\n## Options\n\n- one\n  continued\n- two\n\n    code \\n\n    .dot\n\n" +
		"| option | sockd | notes |\n|---|---|---|\n| `A=` | yes | `x\\|y` |\n| `B=` | no | |\n\n### Sub\n\ntext\n")
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(render(t, b.String())), " ")
	for _, want := range []string{"NAME", "x.units - test", "A \\xNN escape, bold, it, a link and ≤ 4 MiB. . a line with a dot 'and a quote Options",
		"• one continued • two code \\n .dot A= sockd: yes notes: x|y B= sockd: no Sub text"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in\n%s", want, text)
		}
	}
	if strings.Contains(text, "Title") || strings.Contains(text, "no notes") {
		t.Errorf("the # title or an empty cell is in\n%s", text)
	}
	if strings.ContainsFunc(b.String(), func(r rune) bool { return r > 0x7e }) {
		t.Errorf("the page is not ASCII:\n%s", b.String())
	}
}

func TestParseUsage(t *testing.T) {
	u := ParseUsage(`usage: tool [--a X] VERB
       tool other

Verbs:
  one ARG                   does one
  two [--flag]
                            does two, on
                            two lines

Some words --a about it.
  --a X      the a flag
             continued
Exit codes: 0 ok.
`)
	if len(u.Synopsis) != 2 || u.Synopsis[1] != "tool other" {
		t.Errorf("synopsis %q", u.Synopsis)
	}
	if len(u.Blocks) != 4 || u.Blocks[0].Heading != "Verbs" || len(u.Blocks[0].Items) != 2 ||
		u.Blocks[0].Items[1] != (Item{"two [--flag]", "does two, on two lines"}) ||
		u.Blocks[1].Para != "Some words --a about it." || u.Blocks[2].Items[0] != (Item{"--a X", "the a flag continued"}) ||
		u.Blocks[3].Para != "Exit codes: 0 ok." {
		t.Errorf("blocks %#v", u.Blocks)
	}
	fs := flag.NewFlagSet("tool", flag.ContinueOnError)
	fs.String("a", "", "the a flag")
	fs.String("api-mode", "0600", "mode")
	fs.Bool("watch", true, "watch (`sockctl reload` too)")
	opts := FlagOptions(fs, u.Synopsis)
	want := []Option{{"--a", "X", "the a flag"}, {"--api-mode", "MODE", "mode (default 0600)"},
		{"--watch", "", "watch (sockctl reload too); on by default, --watch=false turns it off"}}
	if len(opts) != len(want) {
		t.Fatalf("options %#v", opts)
	}
	for i := range want {
		if opts[i] != want[i] {
			t.Errorf("option %d: %#v, want %#v", i, opts[i], want[i])
		}
	}
}
