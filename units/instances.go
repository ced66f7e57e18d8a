package units

// Templates and their instances: a service instantiated for a socket or
// a connection, instance sockets from files, links and
// sockets.target.wants.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// instanceSource returns the file the unit base in path is read from:
// the target of a symbolic link from an instance to its template, else
// path.
func instanceSource(path, base string) string {
	n, err := parseUnitName(base)
	if err != nil || n.Instance == "" {
		return path
	}
	target, err := os.Readlink(path)
	if err != nil || filepath.Base(target) != n.Prefix+"@."+n.Suffix {
		return path
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(path), target)
	}
	return filepath.Clean(target)
}

// instantiate makes the instance n of the template service t, as
// Instantiate does, and with the instance's own drop-ins
// (app@x.service.d/*.conf beside the template, replacing the template's
// drop-in of the same name). Its diagnostics are the instance's errors,
// and the warnings of its own drop-ins (the template's were reported
// with the template).
func (l *loader) instantiate(t *Service, n unitName) (*Service, Diagnostics) {
	if l.cache != nil {
		return l.cachedInstantiate(t, n)
	}
	return l.instantiateFresh(t, n, nil)
}

// instantiateFresh is instantiate, reading the instance's drop-ins; the
// drop-in files it looked at are put in dropInsSeen when not nil.
func (l *loader) instantiateFresh(t *Service, n unitName, dropInsSeen *[]string) (*Service, Diagnostics) {
	files, dirDiags := l.dropInFiles(filepath.Dir(t.File), t.File, n)
	if dropInsSeen != nil {
		*dropInsSeen = files
	}
	if dirDiags.Err() != nil {
		return nil, dirDiags
	}
	own := n.Full + ".d"
	if !slices.ContainsFunc(files, func(f string) bool { return filepath.Base(filepath.Dir(f)) == own }) {
		inst, bd := t.instantiate(n, t.DropIns, t.raw)
		return inst, append(dirDiags, bd.Errors()...)
	}
	// The template's file, then each drop-in in order: the template's
	// from t.raw, the instance's read now.
	fromTemplate := map[string]bool{}
	for _, d := range t.DropIns {
		fromTemplate[d] = true
	}
	var (
		opts   []rawOption
		merged []string
		diags  = dirDiags
	)
	for _, o := range t.raw {
		if o.File == t.File {
			opts = append(opts, o)
		}
	}
	for _, f := range files {
		if fromTemplate[f] {
			for _, o := range t.raw {
				if o.File == f {
					opts = append(opts, o)
				}
			}
			merged = append(merged, f)
			continue
		}
		if filepath.Base(filepath.Dir(f)) != own {
			continue // a masked drop-in of the template
		}
		o, ds, masked, err := l.lexFile(f, n.Full)
		diags = append(diags, ds...)
		switch {
		case err != nil:
			diags = append(diags, readDiag(f, n.Full, "drop-in", err))
		case masked == "":
			opts = append(opts, o...)
			merged = append(merged, f)
		}
	}
	inst, bd := t.instantiate(n, merged, opts)
	for _, d := range bd {
		if d.Severity == Error || filepath.Base(filepath.Dir(d.File)) == own {
			diags = append(diags, d)
		}
	}
	return inst, diags
}

// checkTemplates checks each socket template no instance was read from,
// as systemd-analyze verify checks a template: the options that use the
// instance are left to the instances; the service it names must exist.
func (l *loader) checkTemplates() {
	for _, name := range sortedKeys(l.templates) {
		file := l.templates[name]
		if l.instanceOf[file] {
			continue
		}
		n, _ := parseUnitName(name)
		u, diags, ok := l.build(n, file, filepath.Dir(file))
		l.diags = append(l.diags, diags...)
		if !ok {
			l.failed[name] = true
			continue
		}
		s := u.(*Socket)
		if _, found := l.set.Services[s.Service]; found || s.Service == "" {
			continue
		}
		o := s.linkOpt
		if o.File == "" {
			o.File, o.Line = s.File, 1
		}
		l.diags = append(l.diags, Diagnostic{File: o.File, Line: o.Line, Option: o.Name, Unit: name, Severity: Error, Msg: l.missing("service", s.Service)})
		l.failed[name] = true
	}
}

// loadWants makes the instances named in dir/sockets.target.wants from
// the templates of dir. An instance that dir has as a file or link of
// its own is that one; the entry's target is never read (systemd too
// goes by the name of a link in a .wants directory). refused, when not
// nil, is the *untrustedError that refused dir: each instance is then
// refused with it, as is each when the .wants directory is untrusted.
func (l *loader) loadWants(dir string, refused error) {
	wdir := filepath.Join(dir, WantsDir)
	ents, untrusted, err := l.trust.readDir(wdir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return
	}
	if err != nil {
		l.diags = append(l.diags, Diagnostic{File: wdir, Line: 1, Unit: "sockets.target", Severity: Error,
			Msg: fmt.Sprintf("cannot read directory: %v", bareError(err))})
		return
	}
	for _, e := range ents {
		name := e.Name()
		if !isUnitFile(name) || e.IsDir() {
			continue
		}
		p := filepath.Join(wdir, name)
		if _, seen := l.paths[name]; seen {
			continue
		}
		n, err := parseUnitName(name)
		if err != nil || n.Suffix != "socket" || n.Instance == "" {
			l.diags = append(l.diags, Diagnostic{File: p, Line: 1, Unit: name, Severity: Warning,
				Msg: fmt.Sprintf("ignored: sockd reads only instances of socket templates (NAME@INSTANCE.socket) from %s, and %s is not in the unit directory", WantsDir, name)})
			continue
		}
		if d, ok := trustDiag(dir, name, refused); ok {
			l.paths[name] = p
			l.fail(d)
			continue
		}
		if d, ok := trustDiag(wdir, name, untrusted); ok {
			if d.Severity == Error {
				l.paths[name] = p
				l.fail(d)
				continue
			}
			l.diags = append(l.diags, d)
		}
		tpl := n.Prefix + "@.socket"
		file, ok := l.templates[tpl]
		if !ok {
			l.paths[name] = p
			l.fail(Diagnostic{File: p, Line: 1, Unit: name, Severity: Error,
				Msg: fmt.Sprintf("template %s not found in the unit directory", tpl)})
			continue
		}
		l.load(name, file, dir)
	}
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
	s, diags := t.instantiate(in, t.DropIns, t.raw)
	if err := diags.Err(); err != nil {
		return nil, fmt.Errorf("instantiate %s: %w", full, err)
	}
	return s, nil
}

// instantiate builds the instance in of the template t from opts, the
// options of t's file and of the drop-ins dropIns; diagnostics name
// those files and the instance.
func (t *Service) instantiate(in unitName, dropIns []string, opts []rawOption) (*Service, Diagnostics) {
	return buildService(in, t.File, dropIns, opts)
}
