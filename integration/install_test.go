package integration

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// freshTree copies the repository's files as a clone of the working
// tree has them (tracked files and new ones git does not ignore; no
// bin/, no build/, no .git) into a new directory.
func freshTree(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "-C", "..", "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dst := filepath.Join(t.TempDir(), "sockd")
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join("..", name)
		st, err := os.Lstat(src)
		if err != nil {
			continue // deleted in the working tree
		}
		to := filepath.Join(dst, name)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(src)
			if err == nil {
				err = os.Symlink(target, to)
			}
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// tree lists the files under dir: relative path → mode.
func tree(t *testing.T, dir string) map[string]fs.FileMode {
	t.Helper()
	files := map[string]fs.FileMode{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files[rel] = st.Mode()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func runMake(t *testing.T, ctx context.Context, dir string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "make", append([]string{"-C", dir}, args...)...)
	// A page shows sockd's own defaults, whatever the shell's.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOCKD_") && !strings.HasPrefix(kv, "MAKEFLAGS=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// make install DESTDIR=… on a fresh tree installs exactly the binaries,
// the systemd unit (its ExecStart= naming the installed sockd) and an
// empty unit directory for it, the bash
// and zsh completions and the three man pages; man -l renders each page
// without a warning, with the flags and verbs the binaries have and the
// sections docs/units.md has; make uninstall takes it all away again.
func TestMakeInstall(t *testing.T) {
	src := freshTree(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	dest := t.TempDir()
	runMake(t, ctx, src, "install", "DESTDIR="+dest, "PREFIX=/usr/local")

	want := map[string]fs.FileMode{
		"usr/local/bin/sockd":                                 0o755,
		"usr/local/bin/sockctl":                               0o755,
		"usr/local/lib/systemd/system/sockd.service":          0o644,
		"usr/local/share/bash-completion/completions/sockctl": 0o644,
		"usr/local/share/zsh/site-functions/_sockctl":         0o644,
		"usr/local/share/man/man1/sockctl.1":                  0o644,
		"usr/local/share/man/man5/sockd.units.5":              0o644,
		"usr/local/share/man/man8/sockd.8":                    0o644,
	}
	got := tree(t, dest)
	var names []string
	for n, m := range got {
		names = append(names, fmt.Sprintf("%v %s", m, n))
	}
	sort.Strings(names)
	t.Logf("make install DESTDIR=%s PREFIX=/usr/local:\n%s", dest, strings.Join(names, "\n"))
	for n, m := range want {
		if got[n] != m {
			t.Errorf("%s: mode %v, want %v (a regular file)", n, got[n], m)
		}
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			t.Errorf("%s installed, not expected", n)
		}
	}
	if st, err := os.Stat(filepath.Join(dest, "etc/sockd/units")); err != nil || st.Mode() != fs.ModeDir|0o755 {
		t.Errorf("the unit directory /etc/sockd/units: %v %v", st.Mode(), err)
	}
	unit, err := os.ReadFile(filepath.Join(dest, "usr/local/lib/systemd/system/sockd.service"))
	if err != nil || !regexp.MustCompile(`(?m)^ExecStart=/usr/local/bin/sockd `).Match(unit) {
		t.Errorf("sockd.service: %v\n%s", err, unit)
	}
	for inst, orig := range map[string]string{
		"usr/local/share/bash-completion/completions/sockctl": "contrib/completion/sockctl.bash",
		"usr/local/share/zsh/site-functions/_sockctl":         "contrib/completion/_sockctl",
	} {
		a, _ := os.ReadFile(filepath.Join(dest, inst))
		b, _ := os.ReadFile(filepath.Join("..", orig))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s is not %s", inst, orig)
		}
	}
	installed := func(name string) string { return filepath.Join(dest, "usr/local", name) }

	// What each page must show: the sections, every flag of sockd's
	// synopsis, every verb sockctl knows, every section of docs/units.md.
	help, _ := exec.Command(installed("bin/sockd"), "-h").CombinedOutput()
	synopsis, _, _ := strings.Cut(string(help), "\n")
	sockdFlags := regexp.MustCompile(`--[a-z-]+`).FindAllString(synopsis, -1)
	if len(sockdFlags) < 5 {
		t.Fatalf("sockd -h: %s", help)
	}
	out, err := exec.Command(installed("bin/sockctl"), "__complete", "verbs").Output()
	if err != nil {
		t.Fatalf("sockctl __complete verbs: %v", err)
	}
	var verbs []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		v, _, _ := strings.Cut(l, ":")
		verbs = append(verbs, v)
	}
	md, err := os.ReadFile("../docs/units.md")
	if err != nil {
		t.Fatal(err)
	}
	var sections []string
	for _, h := range regexp.MustCompile(`(?m)^## (.*)$`).FindAllStringSubmatch(string(md), -1) {
		sections = append(sections, strings.NewReplacer("`", "", "**", "").Replace(h[1]))
	}
	for _, page := range []struct {
		file string
		want []string
	}{
		{"share/man/man8/sockd.8", append([]string{"SOCKD(8)", "NAME", "SYNOPSIS", "OPTIONS", "COMMANDS", "SIGNALS", "SEE ALSO"}, sockdFlags...)},
		{"share/man/man1/sockctl.1", append([]string{"SOCKCTL(1)", "NAME", "SYNOPSIS", "COMMANDS", "OPTIONS", "EXIT STATUS", "--api", "--json"}, verbs...)},
		{"share/man/man5/sockd.units.5", append([]string{"SOCKD.UNITS(5)", "NAME", "DESCRIPTION", "ListenStream=", "ExecStart="}, sections...)},
	} {
		cmd := exec.CommandContext(ctx, "man", "--warnings", "-l", installed(page.file))
		cmd.Env = append(os.Environ(), "MANPAGER=cat", "PAGER=cat", "MANWIDTH=80", "LC_ALL=C.UTF-8")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr // stdin: /dev/null
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("man --warnings -l %s: %v\n%s", page.file, err, stderr.String())
			continue
		}
		text := stdout.String()
		if n := strings.Count(text, "\n"); n < 30 {
			t.Errorf("man -l %s: %d lines\n%s", page.file, n, text)
		}
		for _, w := range page.want {
			if !regexp.MustCompile(`(^|[\s(\[])` + regexp.QuoteMeta(w) + `($|[\s),.;:\]=])`).MatchString(text) {
				t.Errorf("man -l %s: no %q", page.file, w)
			}
		}
	}

	// Another PREFIX: ExecStart= follows it; uninstall leaves nothing.
	usr := t.TempDir()
	runMake(t, ctx, src, "install", "DESTDIR="+usr, "PREFIX=/usr")
	unit, err = os.ReadFile(filepath.Join(usr, "usr/lib/systemd/system/sockd.service"))
	if err != nil || !regexp.MustCompile(`(?m)^ExecStart=/usr/bin/sockd `).Match(unit) || bytes.Contains(unit, []byte("/usr/local/")) {
		t.Errorf("sockd.service with PREFIX=/usr: %v\n%s", err, unit)
	}
	if n := len(tree(t, usr)); n != len(want) {
		t.Errorf("PREFIX=/usr: %d files installed, want %d", n, len(want))
	}
	runMake(t, ctx, src, "uninstall", "DESTDIR="+usr, "PREFIX=/usr")
	if left := tree(t, usr); len(left) > 0 {
		t.Errorf("make uninstall left %v", left)
	}
	if _, err := os.Stat(filepath.Join(usr, "etc/sockd/units")); !os.IsNotExist(err) {
		t.Errorf("make uninstall left the empty unit directory: %v", err)
	}
}

// zshComplete runs zsh's completion system on line, in an interactive
// zsh on a pseudo-terminal (zsh/zpty) with the _sockctl of contrib/, and
// returns every candidate that the completion offered.
func zshComplete(t *testing.T, line string) []string {
	t.Helper()
	dir := t.TempDir()
	hits := filepath.Join(dir, "hits")
	script := filepath.Join(dir, "complete.zsh")
	comp, err := filepath.Abs("../contrib/completion")
	if err != nil {
		t.Fatal(err)
	}
	// compadd is wrapped to write what it adds to a file (and then adds
	// it); a Tab completes; DONE, printed after, marks the end.
	err = os.WriteFile(script, []byte(`zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PS1=''; PROMPT=''; RPROMPT=''; setopt nobeep"
zpty -w z "fpath=(`+comp+` \$fpath); path=(`+bin.dir+` \$path); autoload -U compinit; compinit -u -D"
zpty -w z "compadd () { builtin compadd -O __hits \"\$@\"; print -rl -- \$__hits >>`+hits+`; builtin compadd \"\$@\" }"
zpty -w z "$1"$'\t'
zpty -w z $'\C-u'"print DONE"
zpty -r z out '*DONE*'
zpty -d z
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "zsh", "-f", script, line).CombinedOutput()
	if err != nil {
		t.Fatalf("zsh completion of %q: %v\n%s", line, err, out)
	}
	b, err := os.ReadFile(hits)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// The zsh completion completes verbs, a verb's flags and, from the sockd
// on the command line's --api, unit names; reset-failed only failed ones.
func TestZshCompletion(t *testing.T) {
	if _, err := exec.LookPath("zsh"); err != nil {
		t.Fatal("zsh is needed (.ci/deps installs it)")
	}
	if out, err := exec.Command("zsh", "-n", "../contrib/completion/_sockctl").CombinedOutput(); err != nil {
		t.Fatalf("zsh -n _sockctl: %v\n%s", err, out)
	}
	s := startSockd(t, writeUnits(t, map[string]string{
		"app.socket":  fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\n", freePort(t)),
		"app.service": "[Service]\nType=notify\nExecStart=" + bin.demo + "\n",
		"web.socket":  fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\n", freePort(t)),
		"web.service": "[Service]\nType=notify\nExecStart=" + bin.demo + "\n",
	}))
	for _, tc := range []struct {
		line      string
		want, not []string
	}{
		{"sockctl re", []string{"restart", "reload-app", "reset-failed", "reload"}, []string{"status", "__man"}},
		{"sockctl --api " + s.api + " st", []string{"start", "status", "stop"}, []string{"restart"}},
		{"sockctl --api " + s.api + " status ", []string{"app", "web"}, nil},
		{"sockctl status --api " + s.api + " ", []string{"app", "web"}, nil},
		{"sockctl --api " + s.api + " reset-failed ", nil, []string{"app", "web"}},
		{"sockctl --api " + s.api + " status app ", nil, []string{"app", "web"}},
		{"sockctl --api " + s.api + " restart app --", []string{"--wait", "--stop-first", "--json"}, []string{"-n"}},
		{"sockctl logs app -", []string{"-n", "--api"}, []string{"--wait"}},
	} {
		got := zshComplete(t, tc.line)
		has := map[string]bool{}
		for _, g := range got {
			has[g] = true
		}
		for _, w := range tc.want {
			if !has[w] {
				t.Errorf("%q completes %q, without %q", tc.line, got, w)
			}
		}
		for _, w := range tc.not {
			if has[w] {
				t.Errorf("%q completes %q, with %q", tc.line, got, w)
			}
		}
	}
}
