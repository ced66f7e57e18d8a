package supervisord

// The directories of RuntimeDirectory=, StateDirectory=, CacheDirectory=,
// LogsDirectory= and ConfigurationDirectory= (systemd.exec(5)): made
// before a unit's first command runs, given to its user, named in its
// environment; the runtime ones removed once its last process is gone.
// Below each root nothing follows a symlink (internal/nofollow), so a
// service that owns part of a tree cannot point sockd, which runs as
// root, at another file.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/sockd/sockd/internal/nofollow"
	"github.com/sockd/sockd/units"
)

// execRoots are the directories the exec directories are made in.
type execRoots struct{ Runtime, State, Cache, Logs, Configuration string }

// defaultExecRoots are systemd's roots for system services.
func defaultExecRoots() execRoots {
	return execRoots{Runtime: "/run", State: "/var/lib", Cache: "/var/cache", Logs: "/var/log", Configuration: "/etc"}
}

// execKind is one kind of exec directory of a service.
type execKind struct {
	option string // "StateDirectory"
	env    string // "STATE_DIRECTORY"
	root   string
	dir    units.ExecDir
	// owned directories are given to the unit's user and group: all but
	// ConfigurationDirectory=.
	owned bool
	// private directories live in ROOT/private/PATH, behind a symlink
	// ROOT/PATH: with DynamicUser=yes, StateDirectory=, CacheDirectory=,
	// LogsDirectory=, and RuntimeDirectory= when it outlives a stop.
	private bool
}

func execKinds(svc *units.Service, r execRoots) []execKind {
	d, dyn := svc.ExecDirs, svc.DynamicUser
	return []execKind{
		{"RuntimeDirectory", "RUNTIME_DIRECTORY", r.Runtime, d.Runtime, true, dyn && runtimePreserve(svc) != units.PreserveNo},
		{"StateDirectory", "STATE_DIRECTORY", r.State, d.State, true, dyn},
		{"CacheDirectory", "CACHE_DIRECTORY", r.Cache, d.Cache, true, dyn},
		{"LogsDirectory", "LOGS_DIRECTORY", r.Logs, d.Logs, true, dyn},
		{"ConfigurationDirectory", "CONFIGURATION_DIRECTORY", r.Configuration, d.Configuration, false, false},
	}
}

func runtimePreserve(svc *units.Service) units.RuntimePreserve {
	if p := svc.ExecDirs.RuntimePreserve; p != "" {
		return p
	}
	return units.PreserveNo
}

// setUpExecDirs makes svc's exec directories, as systemd does before a
// unit's first command: missing parents with mode 0755, owned by sockd;
// each directory itself with its *Mode= (set whether or not it existed)
// and, but for ConfigurationDirectory=, owned by uid and gid, the user and
// group the unit's processes run as. A directory whose owner or group
// differs is given to them with everything in it; one that has both
// already is left as it is inside. ConfigurationDirectory= is made owned
// by sockd, and an existing one is not touched at all.
//
// With DynamicUser=yes, StateDirectory=, CacheDirectory=, LogsDirectory=
// (and RuntimeDirectory= with RuntimeDirectoryPreserve=yes or restart) go
// in ROOT/private/PATH, with a relative symlink at ROOT/PATH; a directory
// already at ROOT/PATH moves there, as a symlink left by DynamicUser=yes
// moves back without it. ROOT/private is made mode 0711 (systemd: 0700,
// which sockd cannot use: it has no mount namespace to open it for the
// unit), and setuid and setgid bits are dropped from the directories.
//
// It returns RUNTIME_DIRECTORY=, STATE_DIRECTORY=, CACHE_DIRECTORY=,
// LOGS_DIRECTORY= and CONFIGURATION_DIRECTORY= for the kinds the unit
// has: the absolute paths at ROOT/PATH, joined by ":". Any symlink met
// below a root is an error (nofollow.ErrSymlink), never followed.
func setUpExecDirs(svc *units.Service, roots execRoots, uid, gid int) (env []string, err error) {
	for _, k := range execKinds(svc, roots) {
		if len(k.dir.Paths) == 0 {
			continue
		}
		if err := k.setUp(uid, gid, svc.DynamicUser); err != nil {
			return nil, fmt.Errorf("%s: %s=: %w", svc.Name, k.option, err)
		}
		paths := make([]string, len(k.dir.Paths))
		for i, p := range k.dir.Paths {
			paths[i] = filepath.Join(k.root, p)
		}
		env = append(env, k.env+"="+strings.Join(paths, ":"))
	}
	return env, nil
}

func (k execKind) setUp(uid, gid int, dynamic bool) error {
	if err := os.MkdirAll(k.root, 0o755); err != nil {
		return err
	}
	root, err := nofollow.Open(k.root)
	if err != nil {
		return err
	}
	defer root.Close()
	var priv *nofollow.Dir
	if k.private {
		if priv, err = privateRoot(root); err != nil {
			return err
		}
		defer priv.Close()
	}
	keep := uint32(0o7777)
	if dynamic {
		keep = 0o1777
	}
	for _, p := range k.dir.Paths {
		if err := k.setUpOne(root, priv, p, uid, gid, keep); err != nil {
			return err
		}
	}
	return nil
}

// setUpOne makes the directory p of k; priv is ROOT/private for a
// private kind.
func (k execKind) setUpOne(root, priv *nofollow.Dir, p string, uid, gid int, keep uint32) error {
	mode := unixMode(k.dir.Mode) & keep
	parentRel, name := path.Split(p)
	parentRel = strings.TrimSuffix(parentRel, "/")
	var dir *nofollow.Dir
	if priv == nil {
		parent, done, err := openRel(root, parentRel, true)
		if err != nil {
			return err
		}
		defer done()
		if k.owned {
			if err := unprivate(root, parent, p); err != nil {
				return err
			}
		}
		d, created, err := parent.OpenDir(name, true, mode)
		if err != nil {
			return err
		}
		defer d.Close()
		if !k.owned && !created {
			return nil // an existing ConfigurationDirectory= is the admin's
		}
		dir = d
	} else {
		privParent, done, err := openRel(priv, parentRel, true)
		if err != nil {
			return err
		}
		defer done()
		// Below a listed directory (StateDirectory=a a/b), the
		// symlink of the ancestor already leads here.
		var pub *nofollow.Dir
		if !hasListedAncestor(p, k.dir.Paths) {
			var done func()
			if pub, done, err = openRel(root, parentRel, true); err != nil {
				return err
			}
			defer done()
			if err := makePrivate(pub, privParent, name); err != nil {
				return err
			}
		}
		d, _, err := privParent.OpenDir(name, true, mode)
		if err != nil {
			return err
		}
		defer d.Close()
		if pub != nil {
			if err := pub.Symlink(privateTarget(p), name); err != nil {
				return err
			}
		}
		dir = d
	}
	if err := dir.Chmod(mode); err != nil {
		return err
	}
	if !k.owned {
		return nil
	}
	return dir.ChownAll(uid, gid, keep)
}

// privateRoot opens ROOT/private, made mode 0711 and owned by sockd if
// missing. An existing one must be sockd's; it gets the search bit for
// others if it lacks it (systemd's is 0700), so that a dynamic user can
// reach its own directory inside.
func privateRoot(root *nofollow.Dir) (*nofollow.Dir, error) {
	priv, created, err := root.OpenDir("private", true, 0o711)
	if err != nil || created {
		return priv, err
	}
	st, err := priv.Stat()
	if err == nil && int(st.Uid) != os.Geteuid() {
		err = fmt.Errorf("%s: owned by uid %d, not by sockd", priv.Path(), st.Uid)
	}
	if err == nil && st.Mode&0o001 == 0 {
		err = priv.Chmod(st.Mode&0o7777 | 0o001)
	}
	if err != nil {
		priv.Close()
		return nil, err
	}
	return priv, nil
}

// makePrivate moves a directory at name in pub (ROOT/PATH) into
// privParent (ROOT/private/PATH) when the latter has none: the service
// had DynamicUser=no before.
func makePrivate(pub, privParent *nofollow.Dir, name string) error {
	st, err := pub.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) || err == nil && !nofollow.IsDir(st) {
		return nil // nothing there, or a symlink (ours, or an error to come)
	}
	if err != nil {
		return err
	}
	if _, err := privParent.Lstat(name); !errors.Is(err, fs.ErrNotExist) {
		return err // both exist: keep the private one
	}
	return pub.Rename(name, privParent, name)
}

// unprivate moves ROOT/private/PATH back to ROOT/PATH, in place of the
// symlink that DynamicUser=yes left there: the service has
// DynamicUser=no now.
func unprivate(root, parent *nofollow.Dir, p string) error {
	name := path.Base(p)
	st, err := parent.Lstat(name)
	if err != nil || !nofollow.IsSymlink(st) {
		return nil
	}
	if t, err := parent.Readlink(name); err != nil || t != privateTarget(p) {
		return err // someone else's symlink: OpenDir refuses it
	}
	privParent, err := openPrivateParent(root, p)
	if err != nil {
		return err
	}
	defer privParent.Close()
	if _, err := privParent.Lstat(name); err != nil {
		return err
	}
	if err := parent.Unlink(name); err != nil {
		return err
	}
	return privParent.Rename(name, parent, name)
}

// openPrivateParent opens the parent of ROOT/private/p, not making it.
func openPrivateParent(root *nofollow.Dir, p string) (*nofollow.Dir, error) {
	d, _, err := root.OpenDir(path.Dir(path.Join("private", p)), false, 0)
	return d, err
}

// privateTarget is the symlink at ROOT/p to ROOT/private/p, relative
// to the symlink's directory.
func privateTarget(p string) string {
	return strings.Repeat("../", strings.Count(p, "/")) + "private/" + p
}

func hasListedAncestor(p string, paths []string) bool {
	for _, q := range paths {
		if strings.HasPrefix(p, q+"/") {
			return true
		}
	}
	return false
}

// openRel opens rel below d ("" is d itself, which done leaves open).
func openRel(d *nofollow.Dir, rel string, create bool) (*nofollow.Dir, func(), error) {
	if rel == "" {
		return d, func() {}, nil
	}
	sub, _, err := d.OpenDir(rel, create, 0o755)
	if err != nil {
		return nil, nil, err
	}
	return sub, func() { sub.Close() }, nil
}

// tearDownExecDirs removes svc's runtime directories after its last
// process is gone, as systemd does when a unit stops: with
// RuntimeDirectoryPreserve=no (the default) always, a restart included;
// with restart only when final (no start follows: a stop, a failure
// without Restart=, sockd's shutdown); with yes never. Only the innermost
// directories go (RuntimeDirectory=a/b removes ROOT/a/b, not ROOT/a),
// with everything in them; a symlink inside is removed, never followed,
// and a symlink in place of a parent is an error. Missing directories
// are not an error.
func tearDownExecDirs(svc *units.Service, roots execRoots, final bool) error {
	switch runtimePreserve(svc) {
	case units.PreserveYes:
		return nil
	case units.PreserveRestart:
		if !final {
			return nil
		}
	}
	k := execKinds(svc, roots)[0]
	if len(k.dir.Paths) == 0 {
		return nil
	}
	root, err := nofollow.Open(k.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: RuntimeDirectory=: %w", svc.Name, err)
	}
	defer root.Close()
	var errs []error
	for _, p := range k.dir.Paths {
		if err := k.tearDownOne(root, p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: RuntimeDirectory=: %w", svc.Name, err)
	}
	return nil
}

func (k execKind) tearDownOne(root *nofollow.Dir, p string) error {
	dirRel, name := path.Split(p)
	dirRel = strings.TrimSuffix(dirRel, "/")
	if k.private {
		if pub, done, err := openRel(root, dirRel, false); err == nil {
			if st, err := pub.Lstat(name); err == nil && nofollow.IsSymlink(st) {
				if err := pub.Unlink(name); err != nil {
					done()
					return err
				}
			}
			done()
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		dirRel = path.Join("private", dirRel)
	}
	parent, done, err := openRel(root, dirRel, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer done()
	return parent.RemoveAll(name)
}

// unixMode turns an os.FileMode into the permission, setuid, setgid and
// sticky bits of chmod(2).
func unixMode(m os.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// addEnvDefaults returns env with each "KEY=value" of kvs whose key env
// has no entry for: variables sockd sets for the unit (the exec
// directories, USER of a dynamic user) yield to Environment= and
// EnvironmentFile=, as in systemd.
func addEnvDefaults(env []string, kvs ...string) []string {
	for _, kv := range kvs {
		k, _, _ := strings.Cut(kv, "=")
		found := false
		for _, e := range env {
			if strings.HasPrefix(e, k+"=") {
				found = true
				break
			}
		}
		if !found {
			env = append(env, kv)
		}
	}
	return env
}

// setUpExec is what a unit's start needs before its first command
// (ExecStartPre=, or ExecStart=): with DynamicUser=yes its user and group
// (allocDynamicUser, locks in lockDir), then its exec directories
// (setUpExecDirs), given to the user and group credential resolves (sockd's
// own without User= and Group=). env is for every process of the unit,
// ExecStop= and ExecReload= included: $USER and $LOGNAME of a dynamic
// user and the *_DIRECTORY variables, to add with addEnvDefaults. release
// frees the dynamic user (a no-op without one); call it once the unit's
// last process is gone. On an error nothing is held.
func setUpExec(svc *units.Service, roots execRoots, lockDir string) (env []string, release func(), err error) {
	release = func() {}
	if svc.DynamicUser {
		d, rel, err := allocDynamicUser(lockDir, svc, roots)
		if err != nil {
			return nil, nil, err
		}
		env, release = d.env(), rel
	}
	uid, gid := os.Geteuid(), os.Getegid()
	if svc.User != "" || svc.Group != "" {
		cred, err := credential(svc)
		if err != nil {
			release()
			return nil, nil, err
		}
		uid, gid = int(cred.Uid), int(cred.Gid)
	}
	dirs, err := setUpExecDirs(svc, roots, uid, gid)
	if err != nil {
		release()
		return nil, nil, err
	}
	return append(env, dirs...), release, nil
}
