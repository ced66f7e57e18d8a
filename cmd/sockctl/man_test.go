package main

import (
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

func manPage(t *testing.T) string {
	t.Helper()
	var out, errb bytes.Buffer
	c := &cli{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	if err := c.run(context.Background(), []string{"__man"}); err != nil || errb.Len() > 0 {
		t.Fatalf("sockctl __man: %v %s", err, errb.String())
	}
	return out.String()
}

// sockctl(1) is made from the verb and flag tables: each verb is a
// command of the page, each flag is in it, and groff reads it without a
// warning.
func TestManPageHasEveryVerbAndFlag(t *testing.T) {
	page := manPage(t)
	for _, h := range []string{`.TH "SOCKCTL" "1"`, `.SH "SYNOPSIS"`, `.SH "COMMANDS"`, `.SH "OPTIONS"`, `.SH "EXIT STATUS"`} {
		if !strings.Contains(page, h) {
			t.Errorf("no %s in sockctl.1", h)
		}
	}
	for name := range verbs {
		if !regexp.MustCompile(`(?m)^\.TP\n\\fB` + regexp.QuoteMeta(strings.ReplaceAll(name, "-", `\-`)) + `( |\\fR)`).MatchString(page) {
			t.Errorf("verb %s is not a command of sockctl.1", name)
		}
	}
	for name := range flagSpecs {
		if name == "h" {
			continue
		}
		if !strings.Contains(page, strings.ReplaceAll(flagName(name), "-", `\-`)) {
			t.Errorf("flag %s is not in sockctl.1", flagName(name))
		}
	}
	if _, err := exec.LookPath("groff"); err != nil {
		t.Fatal("groff (groff-base, .ci/deps) is needed to check the page")
	}
	cmd := exec.Command("groff", "-ww", "-man", "-Tutf8", "-z")
	cmd.Stdin = strings.NewReader(page)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("groff -ww: %v\n%s", err, out)
	}
}

// A verb in the table that usage does not list is still a command of
// the page (with its arguments) and of the completions.
func TestManPageVerbNotInUsage(t *testing.T) {
	verbs["frobnicate"] = verb{[]string{"UNIT"}, (*cli).start, false, ""}
	defer delete(verbs, "frobnicate")
	if !strings.Contains(manPage(t), ".TP\n\\fBfrobnicate UNIT\\fR") {
		t.Error("frobnicate UNIT is not a command of sockctl.1")
	}
	var out bytes.Buffer
	c := &cli{stdout: &out, stderr: &out, getenv: func(string) string { return "" }}
	for _, args := range [][]string{{"__complete", "verbs"}, {"__complete", "unit-verbs"}} {
		out.Reset()
		if err := c.run(context.Background(), args); err != nil || !regexp.MustCompile(`(?m)^frobnicate(:|$)`).MatchString(out.String()) {
			t.Errorf("sockctl %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
	}
}

// sockctl __complete lists what the shells complete: the verbs with a
// short help, a verb's flags, the flags that take a value.
func TestComplete(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
		not  []string
	}{
		{[]string{"verbs"}, []string{"list:list units: UNIT, STATE, PIDS, LISTEN", "restart:restart without dropping connections", "daemon-reexec:"}, []string{"__man", "__complete"}},
		{[]string{"flags", "restart"}, []string{"--api", "--json", "--wait", "--stop-first"}, []string{"-n", "-h"}},
		{[]string{"flags", "logs"}, []string{"--api", "-n"}, []string{"--wait"}},
		{[]string{"values"}, []string{"--api", "--timeout", "-n"}, []string{"--json"}},
		{[]string{"unit-verbs"}, []string{"status", "restart", "reset-failed", "exec"}, []string{"list", "reload", "help"}},
	} {
		var out bytes.Buffer
		c := &cli{stdout: &out, stderr: &out, getenv: func(string) string { return "" }}
		if err := c.run(context.Background(), append([]string{"__complete"}, tc.args...)); err != nil {
			t.Fatalf("__complete %v: %v", tc.args, err)
		}
		lines := "\n" + out.String()
		for _, w := range tc.want {
			if !strings.Contains(lines, "\n"+w) {
				t.Errorf("__complete %v: no %q in\n%s", tc.args, w, out.String())
			}
		}
		for _, w := range tc.not {
			if strings.Contains(lines, "\n"+w+"\n") || strings.Contains(lines, "\n"+w+":") {
				t.Errorf("__complete %v: %q in\n%s", tc.args, w, out.String())
			}
		}
	}
}
