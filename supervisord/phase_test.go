package supervisord

import (
	"os"
	"strings"
	"testing"
)

// phaseTableMarkdown renders table as docs/architecture.md carries it:
// one row per phase and event, in the order of their declarations.
func phaseTableMarkdown() string {
	var b strings.Builder
	b.WriteString("| phase (State/SubState) | event | action | may enter |\n|---|---|---|---|\n")
	for p := range numPhases {
		for k := range numEvKinds {
			row, ok := table[p][k]
			if !ok || k == evSocketDead {
				continue // evSocketDead: one row for every phase, last
			}
			var next []string
			for _, n := range row.next {
				next = append(next, n.String())
			}
			if len(next) == 0 {
				next = []string{"—"}
			}
			b.WriteString("| " + p.String() + " (" + p.state() + "/" + p.subState() + ") | " + k.String() +
				" | " + row.action + " | " + strings.Join(next, ", ") + " |\n")
		}
	}
	b.WriteString("| every phase | " + evSocketDead.String() + " | " + rowSocketDead.action + " | " + rowSocketDead.next[0].String() + " |\n")
	return b.String()
}

const (
	tableBegin = "<!-- phase table: generated from supervisord/phase.go; TestPhaseTableDoc checks it -->\n"
	tableEnd   = "<!-- end of phase table -->"
)

// The table in docs/architecture.md is the table in the code.
func TestPhaseTableDoc(t *testing.T) {
	b, err := os.ReadFile("../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, tableBegin), strings.Index(doc, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("docs/architecture.md has no phase table between %q and %q", tableBegin, tableEnd)
	}
	got, want := doc[i+len(tableBegin):j], phaseTableMarkdown()
	if got != want {
		if os.Getenv("SOCKD_UPDATE_DOCS") != "" {
			os.WriteFile("../docs/architecture.md", []byte(doc[:i+len(tableBegin)]+want+doc[j:]), 0o644)
			return
		}
		t.Fatalf("docs/architecture.md's phase table differs from supervisord/phase.go; "+
			"run SOCKD_UPDATE_DOCS=1 go test -run TestPhaseTableDoc ./supervisord. It should read:\n%s", want)
	}
}

// Every phase names a distinct State/SubState pair, and every phase in
// which processes can run handles their exit.
func TestPhaseTableComplete(t *testing.T) {
	seen := map[string]phase{}
	for p := range numPhases {
		key := p.state() + "/" + p.subState()
		if q, dup := seen[key]; dup {
			t.Errorf("%s and %s both show as %s", p, q, key)
		}
		seen[key] = p
		if containsPhase(idle, p) {
			continue
		}
		if _, ok := table[p][evExit]; !ok {
			t.Errorf("%s: no row for a process's exit", p)
		}
		if _, ok := table[p][evStopTimeout]; !ok {
			t.Errorf("%s: no row for TimeoutStopSec=", p)
		}
	}
	for p := range numPhases {
		for k, row := range table[p] {
			if row.run == nil || row.action == "" {
				t.Errorf("%s × %s: empty row", p, k)
			}
		}
	}
}
