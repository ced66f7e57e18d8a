package units

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// loader loads units into a Set and collects diagnostics.
type loader struct {
	set    *Set
	diags  Diagnostics
	failed map[string]bool   // units left out because of errors
	masked map[string]bool   // units left out because they are masked
	paths  map[string]string // unit name → file, for every unit seen
	// templates holds the file of each socket template (app@.socket)
	// by name: a template is no socket to open, only the source of its
	// instances.
	templates map[string]string
	// instanceOf holds the files instance sockets were read from: a
	// template is checked on its own only when no instance was.
	instanceOf map[string]bool
	trust      trustPolicy
	// listed holds the names in the unit directory listedDir, as
	// loadDir read it: a drop-in directory not among them is not
	// looked for (10,000 units: 10,000 failed opens fewer).
	listedDir string
	listed    map[string]bool
	// lexed holds the unit files of the unit directory read and lexed
	// ahead, in parallel (prelex), until build takes them.
	lexed map[lexKey]lexResult
	// sequential turns prelex off (a test compares both ways).
	sequential bool
	// cache, when loading through a Cache, is this load's side of it.
	cache *loadCache
}

type lexKey struct{ path, unit string }

// lexResult is what lexFile returned.
type lexResult struct {
	opts   []rawOption
	diags  Diagnostics
	masked string
	err    error
	skip   bool // not read: unchanged since the last load (cache.go)
}

func newLoader(dir string, o LoadOptions) *loader {
	return &loader{
		trust:      newTrustPolicy(o),
		set:        &Set{Dir: dir, Services: map[string]*Service{}, Sockets: map[string]*Socket{}},
		failed:     map[string]bool{},
		masked:     map[string]bool{},
		paths:      map[string]string{},
		templates:  map[string]string{},
		instanceOf: map[string]bool{},
	}
}

// dropInFiles lists the *.conf files of the drop-in directories of the
// unit name beside dir, sorted by file name; for an instance, the
// template's directory comes first and a file of the instance's
// directory replaces one of the same name. diags are the errors of
// directories that cannot be read or are untrusted (see trust.go),
// reported against file, the unit's file, or the directory.
func (l *loader) dropInFiles(dir, file string, n unitName) (files []string, diags Diagnostics) {
	dirs := []string{n.Full + ".d"}
	if n.Instance != "" {
		dirs = []string{n.Prefix + "@." + n.Suffix + ".d", n.Full + ".d"}
	}
	byName := map[string]string{}
	for _, d := range dirs {
		if l.listed != nil && dir == l.listedDir && !l.listed[d] {
			continue // not in the directory: as fs.ErrNotExist below
		}
		p := filepath.Join(dir, d)
		ents, untrusted, err := l.trust.readDir(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			diags = append(diags, Diagnostic{File: file, Line: 1, Unit: n.Full, Severity: Error,
				Msg: fmt.Sprintf("read drop-in directory %s: %v", p, bareError(err))})
			continue
		}
		if td, ok := trustDiag(p, n.Full, untrusted); ok {
			diags = append(diags, td)
			if td.Severity == Error {
				continue
			}
		}
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".conf") {
				continue
			}
			f := filepath.Join(p, e.Name())
			if l.cache != nil {
				// The stat the cache keeps, taken before the file is read.
				if st := l.cache.stamp(f); st.absent || st.mode&syscall.S_IFMT == syscall.S_IFDIR {
					continue
				}
			} else if st, err := os.Stat(f); err != nil || st.IsDir() {
				continue
			}
			byName[e.Name()] = f
		}
	}
	if len(byName) == 0 {
		return nil, diags
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
	return out, diags
}

// loadUnit reads, merges and builds the unit in path; units with errors
// are recorded as failed. An instance that is a symbolic link to its
// template (app@x.socket → app@.socket, as systemctl enable makes) is
// read from the template, which its diagnostics then name.
func (l *loader) loadUnit(path string) {
	base := filepath.Base(path)
	l.load(base, instanceSource(path, base), filepath.Dir(path))
}

// load reads file as the unit named base, merges the drop-ins of base
// found in dropDir, and builds it. A socket template is only recorded:
// finish checks it if no instance was made from it.
func (l *loader) load(base, file, dropDir string) {
	if _, seen := l.paths[base]; seen {
		if l.paths[base] != file {
			l.diags = append(l.diags, Diagnostic{File: file, Line: 1, Unit: base, Severity: Error,
				Msg: fmt.Sprintf("unit %s is also defined in %s, ignored", base, l.paths[base])})
		}
		return
	}
	l.paths[base] = file
	n, err := parseUnitName(base)
	if err != nil {
		l.fail(Diagnostic{File: file, Line: 1, Unit: base, Severity: Error, Msg: err.Error()})
		return
	}
	if n.Suffix == "socket" && n.Template {
		l.templates[base] = file
		return
	}
	if n.Suffix == "socket" && n.Instance != "" {
		l.instanceOf[file] = true
	}
	s, diags, ok := l.build(n, file, dropDir)
	l.diags = append(l.diags, diags...)
	if !ok {
		l.failed[base] = true
		return
	}
	switch s := s.(type) {
	case *Socket:
		l.set.Sockets[base] = s
	case *Service:
		l.set.Services[base] = s
	}
}

// build reads file as the unit n, merges n's drop-ins found in dropDir,
// and builds a *Socket or a *Service; ok is false when the unit has
// errors (or is masked). Through a Cache, an unchanged unit is the one
// the last load built.
func (l *loader) build(n unitName, file, dropDir string) (unit any, diags Diagnostics, ok bool) {
	if l.cache != nil {
		return l.cachedBuild(n, file, dropDir)
	}
	return l.buildFresh(n, file, dropDir, nil)
}

// buildFresh is build, reading every file; the drop-in files it looked
// at (merged or masked) are added to dropInsSeen when not nil.
func (l *loader) buildFresh(n unitName, file, dropDir string, dropInsSeen *[]string) (unit any, diags Diagnostics, ok bool) {
	base := n.Full
	opts, diags, masked, err := l.lexFileAhead(file, base)
	if err != nil {
		return nil, append(diags, readDiag(file, base, "unit", err)), false
	}
	if masked != "" {
		l.masked[base] = true
		return nil, append(diags, Diagnostic{File: file, Line: 1, Unit: base, Severity: Error, Msg: fmt.Sprintf("unit is masked (%s)", masked)}), false
	}
	dropIns, ds := l.dropInFiles(dropDir, file, n)
	diags = append(diags, ds...)
	if dropInsSeen != nil {
		*dropInsSeen = dropIns
	}
	var merged []string
	for _, d := range dropIns {
		o, ds, masked, err := l.lexFile(d, base)
		diags = append(diags, ds...)
		if err != nil {
			diags = append(diags, readDiag(d, base, "drop-in", err))
			continue
		}
		if masked != "" {
			// A masked drop-in hides the template's drop-in of the same
			// name, and adds nothing.
			continue
		}
		merged = append(merged, d)
		opts = append(opts, o...)
	}
	var bd Diagnostics
	switch n.Suffix {
	case "socket":
		unit, bd = buildSocket(n, file, merged, opts)
	case "service":
		unit, bd = buildService(n, file, merged, opts)
	default:
		bd = Diagnostics{{File: file, Line: 1, Unit: base, Severity: Error, Msg: fmt.Sprintf("unit type .%s is not supported by sockd", n.Suffix)}}
	}
	diags = append(diags, bd...)
	return unit, diags, diags.Err() == nil
}

// lexFileAhead is lexFile, taking what prelex read if it did.
func (l *loader) lexFileAhead(path, unit string) ([]rawOption, Diagnostics, string, error) {
	k := lexKey{path, unit}
	if r, ok := l.lexed[k]; ok {
		delete(l.lexed, k)
		return r.opts, r.diags, r.masked, r.err
	}
	return l.lexFile(path, unit)
}

// prelex reads and lexes the unit files paths (each the file of the
// unit its base name names) with one goroutine per CPU, for build to
// take in its own order: lexFile reads only the file and the loader's
// trust policy, so the units, their diagnostics and their order are
// those of reading one file after the other.
func (l *loader) prelex(paths []string) {
	if l.sequential {
		return
	}
	res := make([]lexResult, len(paths))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(paths)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(paths); i = int(next.Add(1) - 1) {
				r := &res[i]
				if l.unchanged(paths[i]) {
					r.skip = true // build takes the unit the cache kept
					continue
				}
				r.opts, r.diags, r.masked, r.err = l.lexFile(paths[i], filepath.Base(paths[i]))
			}
		}()
	}
	wg.Wait()
	n := 0
	for i := range res {
		if !res[i].skip {
			n++
		}
	}
	l.lexed = make(map[lexKey]lexResult, n)
	for i, p := range paths {
		if !res[i].skip {
			l.lexed[lexKey{p, filepath.Base(p)}] = res[i]
		}
	}
}

// readDiag is the error diagnostic of a unit file or drop-in (what) that
// could not be read, or was refused as untrusted.
func readDiag(file, unit, what string, err error) Diagnostic {
	if d, ok := trustDiag(file, unit, err); ok {
		return d
	}
	return Diagnostic{File: file, Line: 1, Unit: unit, Severity: Error, Msg: fmt.Sprintf("cannot read %s: %v", what, err)}
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
					inst, diags := l.instantiate(t, n)
					l.diags = append(l.diags, diags...)
					if diags.Err() == nil {
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

// checkAccept leaves out all but the first (by name) of the Accept=yes
// sockets that activate one template service (echo@x.socket and
// echo@y.socket both activate echo@.service, as in systemd): sockd runs
// one acceptor per template.
func (l *loader) checkAccept() {
	first := map[string]string{}
	for _, name := range sortedKeys(l.set.Sockets) {
		s := l.set.Sockets[name]
		if !s.Accept {
			continue
		}
		other, ok := first[s.Service]
		if !ok {
			first[s.Service] = name
			continue
		}
		o := s.linkOpt
		l.diags = append(l.diags, Diagnostic{File: o.File, Line: o.Line, Option: o.Name, Unit: name, Severity: Error,
			Msg: fmt.Sprintf("%s already activates %s: sockd runs one Accept=yes socket per template service", other, s.Service)})
		delete(l.set.Sockets, name)
		l.failed[name] = true
	}
}

// missing says why the unit name, of kind "service" or "socket", is not
// in the set.
func (l *loader) missing(kind, name string) string {
	switch {
	case l.masked[name]:
		return fmt.Sprintf("%s %s is masked", kind, name)
	case l.failed[name]:
		return fmt.Sprintf("%s %s has errors", kind, name)
	}
	return fmt.Sprintf("%s %s not found", kind, name)
}

func (l *loader) finish() (*Set, Diagnostics) {
	l.checkAccept()
	l.link()
	l.checkTemplates()
	l.checkStdio()
	l.diags = dedupWarnings(l.diags)
	sort.SliceStable(l.diags, func(i, j int) bool {
		a, b := l.diags[i], l.diags[j]
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	return l.set, l.diags
}

// dedupWarnings drops a warning equal to an earlier one: every instance
// read from one template file warns about the same lines. Errors all
// stay, since each leaves its own unit out.
func dedupWarnings(ds Diagnostics) Diagnostics {
	type key struct {
		file, option, msg string
		line              int
	}
	seen := map[key]bool{}
	out := ds[:0]
	for _, d := range ds {
		if d.Severity == Warning {
			k := key{d.File, d.Option, d.Msg, d.Line}
			if seen[k] {
				continue
			}
			seen[k] = true
		}
		out = append(out, d)
	}
	return out
}

// isUnitFile reports whether name is a file name LoadDir reads.
func isUnitFile(name string) bool {
	return strings.HasSuffix(name, ".socket") || strings.HasSuffix(name, ".service")
}

// WantsDir is the one .wants directory LoadDir reads, below the unit
// directory: each NAME@INSTANCE.socket in it (a symbolic link, as
// systemctl enable makes, or any file: only its name counts) is an
// instance of the template NAME@.socket of the unit directory.
const WantsDir = "sockets.target.wants"

// LoadDir reads every *.socket and *.service file of dir (and their
// NAME.socket.d/*.conf, NAME.service.d/*.conf drop-ins), validates them
// and returns the valid units. A socket template (app@.socket) gives
// the instances app@x.socket that are files or links in dir or in
// dir/sockets.target.wants (see WantsDir); each activates app@x.service,
// instantiated from app@.service unless dir has app@x.service. A unit
// with an error is left out of the Set, and so is a socket whose service
// is left out; the others load. When sockd runs as root, a file or
// directory a user other than root can write is an error for the units
// read from it (see LoadOptions). The returned error is for a directory
// that cannot be read at all.
func LoadDir(dir string) (*Set, Diagnostics, error) {
	return LoadOptions{}.LoadDir(dir)
}

func (l *loader) loadDir(dir string) (*Set, Diagnostics, error) {
	ents, untrusted, err := l.trust.readDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("load units %s: %w", dir, err)
	}
	l.listedDir, l.listed = filepath.Clean(dir), make(map[string]bool, len(ents))
	var ahead []string // regular unit files, read in parallel
	for _, e := range ents {
		l.listed[e.Name()] = true
		// Not a socket template: only recorded (load), never read.
		if isUnitFile(e.Name()) && !strings.HasSuffix(e.Name(), "@.socket") && e.Type().IsRegular() && untrusted == nil {
			ahead = append(ahead, filepath.Join(dir, e.Name()))
		}
	}
	l.prelex(ahead)
	for _, e := range ents {
		if !isUnitFile(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		// One diagnostic for each unit, all the same text: a reload
		// keeps each of them running as it was.
		if d, ok := trustDiag(dir, e.Name(), untrusted); ok {
			if d.Severity == Error {
				l.paths[e.Name()] = p
				l.fail(d)
				continue
			}
			l.diags = append(l.diags, d)
		}
		// A regular file (as the directory listing says, without
		// following links) needs no stat here: readUnitFile checks it.
		if !e.Type().IsRegular() {
			st, err := os.Stat(p)
			if err != nil {
				l.fail(Diagnostic{File: p, Line: 1, Unit: e.Name(), Severity: Error, Msg: fmt.Sprintf("cannot read unit: %v", bareError(err))})
				continue
			}
			if st.IsDir() {
				continue
			}
		}
		l.loadUnit(p)
	}
	if l.trust.allow {
		untrusted = nil // warned about with each unit
	}
	l.loadWants(dir, untrusted)
	set, diags := l.finish()
	return set, diags, nil
}

// LoadFiles reads the named unit files (and their drop-ins beside them)
// as LoadDir does, and the units they name that live beside them: the
// service of a socket (and its template), the sockets in a service's
// Sockets=. The directory of the files is not checked as LoadDir checks
// its directory; the files and their drop-in directories are.
func LoadFiles(paths ...string) (*Set, Diagnostics, error) {
	return LoadOptions{}.LoadFiles(paths...)
}

func (l *loader) loadFiles(paths []string) (*Set, Diagnostics, error) {
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

// SocketsFor returns the sockets that activate or are passed to the
// service named name ("app.service" or the template "app@.service"), in
// the order their fds are passed: the service's Sockets= order, else
// sorted by socket name. Sockets named in Sockets= come first, then the
// other sockets that activate the service, sorted by name. It looks at
// every socket of s: for many services, SocketIndex answers for all of
// them in one pass.
func (s *Set) SocketsFor(name string) []*Socket {
	var activators []*Socket
	for _, sock := range s.Sockets {
		if sock.Service == name {
			activators = append(activators, sock)
		}
	}
	return s.socketsFor(name, activators)
}

// SocketIndex returns SocketsFor of every service of s, and of every
// service a socket of s activates, by service name, computed in one
// pass over the sockets: calling SocketsFor for each of n services
// costs n² (10,000 units: 10⁸ socket looks, seconds). The index is a
// snapshot: it does not follow later changes to s.
func (s *Set) SocketIndex() map[string][]*Socket {
	activators := make(map[string][]*Socket, len(s.Services))
	for _, sock := range s.Sockets {
		activators[sock.Service] = append(activators[sock.Service], sock)
	}
	idx := make(map[string][]*Socket, len(s.Services))
	for name := range s.Services {
		idx[name] = s.socketsFor(name, activators[name])
	}
	for name, socks := range activators {
		if _, ok := idx[name]; !ok {
			idx[name] = s.socketsFor(name, socks)
		}
	}
	return idx
}

// socketsFor is SocketsFor given the sockets whose Service= is name, in
// any order (they are sorted in place).
func (s *Set) socketsFor(name string, activators []*Socket) []*Socket {
	var out []*Socket
	var seen map[string]bool
	if svc, ok := s.Services[name]; ok && len(svc.Sockets) > 0 {
		seen = make(map[string]bool, len(svc.Sockets))
		for _, n := range svc.Sockets {
			if sock, ok := s.Sockets[n]; ok && !seen[n] {
				seen[n] = true
				out = append(out, sock)
			}
		}
	}
	// The other activating sockets, by name.
	sort.Slice(activators, func(i, j int) bool { return activators[i].Name < activators[j].Name })
	for _, sock := range activators {
		if !seen[sock.Name] {
			out = append(out, sock)
		}
	}
	return out
}
