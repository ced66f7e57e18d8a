package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `sockd verify` prints every problem as file:line: message and exits 1
// on an error, 0 when clean; no argument is a usage error.
func TestVerify(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.service", "[Service]\nExecStart=/bin/true\n")
	var out, errb bytes.Buffer
	if code, err := run([]string{"verify", good}, &out, &errb); code != 0 || err != nil || out.Len() != 0 {
		t.Fatalf("clean unit: code %d err %v out %q", code, err, out.String())
	}
	bad := write("bad.socket", "[Socket]\nListenStream=127.0.0.1:1\nListenStrem=2\n")
	write("bad.service", "[Service]\nExecStart=/bin/true\nProtectClock=yes\n")
	out.Reset()
	code, err := run([]string{"verify", dir}, &out, &errb)
	if code != 1 || err != nil {
		t.Fatalf("broken unit: code %d err %v", code, err)
	}
	want := bad + ":3: ListenStrem: unknown option; did you mean ListenStream?"
	if !strings.Contains(out.String(), want) {
		t.Fatalf("output %q lacks %q", out.String(), want)
	}
	if !strings.Contains(out.String(), "bad.service:3: warning: ProtectClock:") {
		t.Fatalf("output %q lacks the warning for ProtectClock=", out.String())
	}
	if code, _ := run([]string{"verify"}, &out, &errb); code != 2 {
		t.Fatalf("verify without paths: code %d, want 2", code)
	}
}

// Bad flags are usage errors (exit 2), not crashes.
func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	for _, args := range [][]string{{"--nope"}, {"extra"}, {"--log-format", "xml"}, {"--api-mode", "9z"}} {
		if code, _ := run(args, &out, &errb); code != 2 {
			t.Errorf("%v: code %d, want 2", args, code)
		}
	}
}
