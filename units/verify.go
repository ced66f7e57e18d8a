package units

// sockd verify: checking unit files the way sockd loads them, with the
// units a named file brings along.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// loadSiblings loads the units that loaded units name and that live in
// the same directory: a socket's service (and the template of an
// instance), and a service's Sockets=, until there are no more.
func (l *loader) loadSiblings() {
	for {
		var want []string
		for _, name := range sortedKeys(l.set.Sockets) {
			s := l.set.Sockets[name]
			dir := filepath.Dir(s.File)
			want = append(want, filepath.Join(dir, s.Service))
			if n, err := parseUnitName(s.Service); err == nil && n.Instance != "" {
				want = append(want, filepath.Join(dir, n.Prefix+"@.service"))
			}
		}
		for _, name := range sortedKeys(l.templates) {
			n, _ := parseUnitName(name)
			want = append(want, filepath.Join(filepath.Dir(l.templates[name]), n.Prefix+"@.service"))
		}
		for _, name := range sortedKeys(l.templates) {
			n, _ := parseUnitName(name)
			want = append(want, filepath.Join(filepath.Dir(l.templates[name]), n.Prefix+"@.service"))
		}
		for _, name := range sortedKeys(l.set.Services) {
			svc := l.set.Services[name]
			for _, sock := range svc.Sockets {
				if !strings.Contains(sock, "%") {
					want = append(want, filepath.Join(filepath.Dir(svc.File), sock))
				}
			}
		}
		loaded := false
		for _, p := range want {
			if _, seen := l.paths[filepath.Base(p)]; seen {
				continue
			}
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				l.loadUnit(p)
				loaded = true
			}
		}
		if !loaded {
			return
		}
	}
}

// Verify loads each path, a unit directory or a unit file, and returns
// every diagnostic found, sorted by file and line. Files are loaded
// together as LoadFiles does; each directory as LoadDir does. The error
// is for a path that cannot be read at all.
func Verify(paths ...string) (Diagnostics, error) {
	return LoadOptions{}.Verify(paths...)
}

// Verify is Verify with the options o.
func (o LoadOptions) Verify(paths ...string) (Diagnostics, error) {
	var (
		all   Diagnostics
		files []string
	)
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("verify %s: %w", p, err)
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		_, ds, err := o.LoadDir(p)
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		all = append(all, ds...)
	}
	if len(files) > 0 {
		_, ds, err := o.LoadFiles(files...)
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		all = append(all, ds...)
	}
	return dedupText(all), nil
}

// dedupText drops a diagnostic that reads as an earlier one: the
// instances of a template with an error each report it, on the same
// line of the template.
func dedupText(ds Diagnostics) Diagnostics {
	seen := map[string]bool{}
	out := ds[:0]
	for _, d := range ds {
		if t := d.Error(); !seen[t] {
			seen[t] = true
			out = append(out, d)
		}
	}
	return out
}
