package units

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// loader loads units into a Set and collects diagnostics.
type loader struct {
	set    *Set
	diags  Diagnostics
	failed map[string]bool // units left out because of errors
	masked map[string]bool // units left out because they are masked
	// skipped holds units left out with a warning, and why.
	skipped map[string]string
	paths   map[string]string // unit name → file, for every unit seen
}

func newLoader(dir string) *loader {
	return &loader{
		set:     &Set{Dir: dir, Services: map[string]*Service{}, Sockets: map[string]*Socket{}},
		failed:  map[string]bool{},
		masked:  map[string]bool{},
		skipped: map[string]string{},
		paths:   map[string]string{},
	}
}

// dropInFiles lists the *.conf files of the drop-in directories of the
// unit name beside dir, sorted by file name; for an instance, the
// template's directory comes first and a file of the instance's
// directory replaces one of the same name.
func dropInFiles(dir string, n unitName) ([]string, error) {
	dirs := []string{n.Full + ".d"}
	if n.Instance != "" {
		dirs = []string{n.Prefix + "@." + n.Suffix + ".d", n.Full + ".d"}
	}
	byName := map[string]string{}
	for _, d := range dirs {
		ents, err := os.ReadDir(filepath.Join(dir, d))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read drop-in directory %s: %w", filepath.Join(dir, d), err)
		}
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".conf") {
				continue
			}
			p := filepath.Join(dir, d, e.Name())
			if st, err := os.Stat(p); err != nil || st.IsDir() {
				continue
			}
			byName[e.Name()] = p
		}
	}
	if len(byName) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(byName))
	for k := range byName {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]string, len(names))
	for i, k := range names {
		out[i] = byName[k]
	}
	return out, nil
}

// loadUnit reads, merges and builds the unit in path; units with errors
// are recorded as failed.
func (l *loader) loadUnit(path string) {
	base := filepath.Base(path)
	if _, seen := l.paths[base]; seen {
		if l.paths[base] != path {
			l.diags = append(l.diags, Diagnostic{File: path, Line: 1, Unit: base, Severity: Error,
				Msg: fmt.Sprintf("unit %s is also defined in %s, ignored", base, l.paths[base])})
		}
		return
	}
	l.paths[base] = path
	n, err := parseUnitName(base)
	if err != nil {
		l.fail(Diagnostic{File: path, Line: 1, Unit: base, Severity: Error, Msg: err.Error()})
		return
	}
	if n.Suffix == "socket" && (n.Template || n.Instance != "") {
		// Nothing in sockd instantiates a socket template: say so once,
		// without checking the file.
		l.diags = append(l.diags, Diagnostic{File: path, Line: 1, Unit: base, Severity: Warning,
			Msg: "socket templates and instances are not supported by sockd, the unit is skipped"})
		l.skipped[base] = "a socket template or instance, not supported by sockd"
		return
	}
	opts, diags, masked, err := lexFile(path, base)
	if err != nil {
		l.fail(Diagnostic{File: path, Line: 1, Unit: base, Severity: Error, Msg: fmt.Sprintf("cannot read unit: %v", err)})
		return
	}
	if masked != "" {
		l.fail(Diagnostic{File: path, Line: 1, Unit: base, Severity: Error, Msg: fmt.Sprintf("unit is masked (%s)", masked)})
		l.masked[base] = true
		return
	}
	dropIns, err := dropInFiles(filepath.Dir(path), n)
	if err != nil {
		diags = append(diags, Diagnostic{File: path, Line: 1, Unit: base, Severity: Error, Msg: err.Error()})
	}
	var merged []string
	for _, d := range dropIns {
		o, ds, masked, err := lexFile(d, base)
		if err != nil {
			diags = append(diags, Diagnostic{File: d, Line: 1, Unit: base, Severity: Error, Msg: fmt.Sprintf("cannot read drop-in: %v", err)})
			continue
		}
		if masked != "" {
			// A masked drop-in hides the template's drop-in of the same
			// name, and adds nothing.
			continue
		}
		merged = append(merged, d)
		opts = append(opts, o...)
		diags = append(diags, ds...)
	}
	var bd Diagnostics
	switch n.Suffix {
	case "socket":
		var s *Socket
		s, bd = buildSocket(n, path, merged, opts)
		diags = append(diags, bd...)
		if diags.Err() == nil {
			l.set.Sockets[base] = s
		}
	case "service":
		var s *Service
		s, bd = buildService(n, path, merged, opts)
		diags = append(diags, bd...)
		if diags.Err() == nil {
			l.set.Services[base] = s
		}
	default:
		diags = append(diags, Diagnostic{File: path, Line: 1, Unit: base, Severity: Error, Msg: fmt.Sprintf("unit type .%s is not supported by sockd", n.Suffix)})
	}
	l.diags = append(l.diags, diags...)
	if diags.Err() != nil {
		l.failed[base] = true
	}
}

func (l *loader) fail(d Diagnostic) {
	l.diags = append(l.diags, d)
	l.failed[d.Unit] = true
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// link checks that every socket's service and every service's Sockets=
// exist, leaving out units that point to missing or failed ones, until
// nothing changes.
func (l *loader) link() {
	for changed := true; changed; {
		changed = false
		for _, name := range sortedKeys(l.set.Sockets) {
			s := l.set.Sockets[name]
			if _, ok := l.set.Services[s.Service]; ok {
				continue
			}
			if n, err := parseUnitName(s.Service); err == nil && n.Instance != "" && !l.failed[s.Service] {
				if t, ok := l.set.Services[n.Prefix+"@.service"]; ok {
					inst, err := t.Instantiate(n.Instance)
					if err == nil {
						l.set.Services[s.Service] = inst
						continue
					}
					l.failed[s.Service] = true
				}
			}
			o := s.linkOpt
			if o.File == "" {
				o.File, o.Line = s.File, 1
			}
			msg := l.missing("service", s.Service)
			l.diags = append(l.diags, Diagnostic{File: o.File, Line: o.Line, Option: o.Name, Unit: name, Severity: Error, Msg: msg})
			delete(l.set.Sockets, name)
			l.failed[name] = true
			changed = true
		}
		for _, name := range sortedKeys(l.set.Services) {
			svc := l.set.Services[name]
			for _, sock := range svc.Sockets {
				if _, ok := l.set.Sockets[sock]; ok {
					continue
				}
				if svc.Template && strings.Contains(sock, "%") {
					// Named after the instance: checked in each instance.
					continue
				}
				o := svc.socketsOpt[sock]
				msg := l.missing("socket", sock)
				l.diags = append(l.diags, Diagnostic{File: o.File, Line: o.Line, Option: o.Name, Unit: name, Severity: Error, Msg: msg})
				delete(l.set.Services, name)
				l.failed[name] = true
				changed = true
				break
			}
		}
	}
}

// missing says why the unit name, of kind "service" or "socket", is not
// in the set.
func (l *loader) missing(kind, name string) string {
	switch {
	case l.masked[name]:
		return fmt.Sprintf("%s %s is masked", kind, name)
	case l.skipped[name] != "":
		return fmt.Sprintf("%s %s is %s", kind, name, l.skipped[name])
	case l.failed[name]:
		return fmt.Sprintf("%s %s has errors", kind, name)
	}
	return fmt.Sprintf("%s %s not found", kind, name)
}

func (l *loader) finish() (*Set, Diagnostics) {
	l.link()
	l.checkStdio()
	sort.SliceStable(l.diags, func(i, j int) bool {
		a, b := l.diags[i], l.diags[j]
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	return l.set, l.diags
}

// isUnitFile reports whether name is a file name LoadDir reads.
func isUnitFile(name string) bool {
	return strings.HasSuffix(name, ".socket") || strings.HasSuffix(name, ".service")
}

// LoadDir reads every *.socket and *.service file of dir (and their
// NAME.socket.d/*.conf, NAME.service.d/*.conf drop-ins), validates them
// and returns the valid units. A unit with an error is left out of the
// Set, and so is a socket whose service is left out; the others load.
// The returned error is for a directory that cannot be read at all.
func LoadDir(dir string) (*Set, Diagnostics, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("load units %s: %w", dir, err)
	}
	l := newLoader(dir)
	for _, e := range ents {
		if !isUnitFile(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		st, err := os.Stat(p)
		if err != nil {
			l.fail(Diagnostic{File: p, Line: 1, Unit: e.Name(), Severity: Error, Msg: fmt.Sprintf("cannot read unit: %v", bareError(err))})
			continue
		}
		if st.IsDir() {
			continue
		}
		l.loadUnit(p)
	}
	set, diags := l.finish()
	return set, diags, nil
}

// LoadFiles reads the named unit files (and their drop-ins beside them)
// as LoadDir does, and the units they name that live beside them: the
// service of a socket (and its template), the sockets in a service's
// Sockets=.
func LoadFiles(paths ...string) (*Set, Diagnostics, error) {
	l := newLoader("")
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, nil, fmt.Errorf("load unit %s: %w", p, err)
		}
		if st.IsDir() {
			return nil, nil, fmt.Errorf("load unit %s: is a directory", p)
		}
		if !isUnitFile(p) {
			return nil, nil, fmt.Errorf("load unit %s: not a .socket or .service file", p)
		}
	}
	for _, p := range paths {
		l.loadUnit(p)
	}
	l.loadSiblings()
	set, diags := l.finish()
	return set, diags, nil
}

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
		_, ds, err := LoadDir(p)
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		all = append(all, ds...)
	}
	if len(files) > 0 {
		_, ds, err := LoadFiles(files...)
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		all = append(all, ds...)
	}
	return all, nil
}

// SocketsFor returns the sockets that activate or are passed to the
// service named name ("app.service" or the template "app@.service"), in
// the order their fds are passed: the service's Sockets= order, else
// sorted by socket name. Sockets named in Sockets= come first, then the
// other sockets that activate the service, sorted by name.
func (s *Set) SocketsFor(name string) []*Socket {
	var out []*Socket
	seen := map[string]bool{}
	if svc, ok := s.Services[name]; ok {
		for _, n := range svc.Sockets {
			if sock, ok := s.Sockets[n]; ok && !seen[n] {
				seen[n] = true
				out = append(out, sock)
			}
		}
	}
	// The other activating sockets by name. Collect, then sort only
	// those: sorting every socket's name per service made loading 1,000
	// units quadratic in sorts.
	var rest []*Socket
	for n, sock := range s.Sockets {
		if sock.Service == name && !seen[n] {
			rest = append(rest, sock)
		}
	}
	sort.Slice(rest, func(i, j int) bool { return rest[i].Name < rest[j].Name })
	return append(out, rest...)
}

// Instantiate returns the instance "prefix@instance.service" of the
// template t, with %i, %I and the other instance specifiers expanded.
// The instance must be a valid unit name instance (see EscapeInstance).
func (t *Service) Instantiate(instance string) (*Service, error) {
	if !t.Template {
		return nil, fmt.Errorf("instantiate %s: not a template", t.Name)
	}
	n, err := parseUnitName(t.Name)
	if err != nil {
		return nil, fmt.Errorf("instantiate %s: %w", t.Name, err)
	}
	full := n.Prefix + "@" + instance + "." + n.Suffix
	if err := validInstance(instance); err != nil {
		return nil, fmt.Errorf("instantiate %s: %w", full, err)
	}
	in, err := parseUnitName(full)
	if err != nil {
		return nil, fmt.Errorf("instantiate %s: %w", full, err)
	}
	s, diags := buildService(in, t.File, t.DropIns, t.raw)
	if err := diags.Err(); err != nil {
		return nil, fmt.Errorf("instantiate %s: %w", full, err)
	}
	return s, nil
}
