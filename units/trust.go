package units

// The unit directory is a trust boundary: sockd runs as root and runs
// what the unit files say, so a file or directory that another user can
// write is refused.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// LoadOptions are the options of loading units; the zero value is what
// sockd uses by default.
type LoadOptions struct {
	// AllowUntrusted loads, with a warning, unit files, drop-ins and
	// directories that a user other than root can write. Without it,
	// when sockd runs as root (euid 0), they are errors (see untrusted).
	// It is sockd's --allow-untrusted-units, for development.
	AllowUntrusted bool
	// Cache, when not nil, keeps what a load read for the next load
	// through it, which then reads and parses only the files that
	// changed (see Cache). sockd's reloads share one.
	Cache *Cache
}

// LoadDir is LoadDir with the options o.
func (o LoadOptions) LoadDir(dir string) (*Set, Diagnostics, error) {
	l := newLoader(dir, o)
	if o.Cache != nil {
		l.cache = o.Cache.begin(l.trust)
		defer l.cache.end()
		l.cache.openDir(dir)
	}
	return l.loadDir(dir)
}

// LoadFiles is LoadFiles with the options o.
func (o LoadOptions) LoadFiles(paths ...string) (*Set, Diagnostics, error) {
	l := newLoader("", o)
	if o.Cache != nil {
		l.cache = o.Cache.begin(l.trust)
		defer l.cache.end()
	}
	return l.loadFiles(paths)
}

// geteuid is os.Geteuid; tests play a user's own sockd with it.
var geteuid = os.Geteuid

// trustPolicy says whether files are checked (only when sockd runs as
// root), and whether an untrusted one is an error or a warning.
type trustPolicy struct {
	check bool
	allow bool
	euid  uint32
}

func newTrustPolicy(o LoadOptions) trustPolicy {
	euid := geteuid()
	return trustPolicy{check: euid == 0, allow: o.AllowUntrusted, euid: uint32(euid)}
}

// untrustedError is the error of a unit file, drop-in or directory that
// a user other than root (or sockd's euid) can write.
type untrustedError struct {
	link     string // the target, when the path was a symbolic link
	uid, gid uint32
	mode     uint32 // permission bits, setuid, setgid and sticky
	byGroup  bool   // writable by the group gid, not by the owner
	allowed  bool   // AllowUntrusted: a warning
}

func (e *untrustedError) Error() string {
	s := ""
	if e.link != "" {
		s = fmt.Sprintf("a link to %s, ", e.link)
	}
	s += fmt.Sprintf("owned by uid %d", e.uid)
	if e.byGroup {
		s += fmt.Sprintf(", group %d", e.gid)
	}
	s += fmt.Sprintf(", mode %04o: writable by a user other than root", e.mode)
	if e.allowed {
		return s + "; allowed by --allow-untrusted-units"
	}
	return s + "; refused (--allow-untrusted-units overrides)"
}

// untrusted returns an *untrustedError when st, of the file or
// directory path (as opened, links followed), can be written by a user
// other than root or p.euid: when it is owned by another uid, is
// world-writable, or is group-writable with a group other than root's
// (gid 0). A sticky bit does not make a writable directory trusted:
// whoever can write to it can add files, and the name of a file is
// enough to make a unit (an entry of sockets.target.wants, a link to a
// root-owned file). Nothing is checked unless sockd runs as root.
func (p trustPolicy) untrusted(path string, st fs.FileInfo) error {
	if !p.check {
		return nil
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	mode := sys.Mode & 0o7777
	e := &untrustedError{uid: sys.Uid, gid: sys.Gid, mode: mode, allowed: p.allow}
	switch {
	case sys.Uid != 0 && sys.Uid != p.euid, mode&0o002 != 0:
	case mode&0o020 != 0 && sys.Gid != 0:
		e.byGroup = true
	default:
		return nil
	}
	if lst, err := os.Lstat(path); err == nil && lst.Mode()&fs.ModeSymlink != 0 {
		if t, err := filepath.EvalSymlinks(path); err == nil {
			e.link = t
		} else if t, err := os.Readlink(path); err == nil {
			e.link = t
		}
	}
	return e
}

// trustDiag returns the diagnostic for err, an *untrustedError of the
// file or directory path that unit is read from, and whether err was
// one: an error, or a warning when AllowUntrusted.
func trustDiag(path, unit string, err error) (Diagnostic, bool) {
	var ue *untrustedError
	if !errors.As(err, &ue) {
		return Diagnostic{}, false
	}
	sev := Error
	if ue.allowed {
		sev = Warning
	}
	return Diagnostic{File: path, Unit: unit, Severity: sev, Msg: ue.Error()}, true
}

// readDir lists the directory dir, sorted by name, as os.ReadDir does,
// and checks, on the directory it opened, that no user other than root
// can write it: untrusted is then an *untrustedError (see untrusted),
// with the entries still listed, since callers name the units they
// refuse.
func (p trustPolicy) readDir(dir string) (ents []fs.DirEntry, untrusted, err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !st.IsDir() {
		return nil, nil, &fs.PathError{Op: "readdirent", Path: dir, Err: syscall.ENOTDIR}
	}
	ents, err = f.ReadDir(-1)
	if err != nil {
		return nil, nil, err
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	return ents, p.untrusted(dir, st), nil
}
