package supervisord

// What sockd prepares for a sandboxed service (systemd.exec(5)'s
// sandboxing options; package sandbox applies them in the exec helper):
// the unit's private /tmp and /var/tmp, the paths that stay writable, the
// staging directory the helper mounts on.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/sockd/sockd/internal/sandbox"
	"github.com/sockd/sockd/units"
)

// privateTmpRoots are where PrivateTmp= directories are made, as systemd
// makes them: one in /tmp (mounted on /tmp) and one in /var/tmp (on
// /var/tmp, which survives a reboot). Tests move them.
var privateTmpRoots = [2]string{"/tmp", "/var/tmp"}

// privateTmp is a unit's PrivateTmp= pair: ROOT/sockd-private-UNIT-XXXX
// (mode 0700, root's, so no other user can reach into it) holding tmp
// (mode 1777, the mount's source). Every process of the unit sees the
// same pair, generations of an overlapping restart included; it goes
// when the last process is gone, as systemd removes it at a stop.
type privateTmp struct {
	parents [2]string // the 0700 directories, removed whole
	tmp     [2]string // their tmp subdirectories: /tmp's and /var/tmp's
}

// newPrivateTmp makes the pair for unit name. MkdirTemp makes a fresh
// directory with O_EXCL semantics and a random name, so a user who can
// write /tmp cannot have sockd use a directory or link of theirs.
func newPrivateTmp(name string) (*privateTmp, error) {
	pt := &privateTmp{}
	safe := strings.Map(func(r rune) rune {
		if r == '/' || r < ' ' {
			return '_'
		}
		return r
	}, name)
	for i, root := range privateTmpRoots {
		parent, err := os.MkdirTemp(root, "sockd-private-"+safe+"-")
		if err != nil {
			pt.remove()
			return nil, fmt.Errorf("PrivateTmp=: %w", err)
		}
		pt.parents[i] = parent
		tmp := filepath.Join(parent, "tmp")
		// Chmod after Mkdir: the umask would take the sticky and write bits.
		err = os.Mkdir(tmp, 0o700)
		if err == nil {
			err = os.Chmod(tmp, 0o1777)
		}
		if err != nil {
			pt.remove()
			return nil, fmt.Errorf("PrivateTmp=: %w", err)
		}
		pt.tmp[i] = tmp
	}
	return pt, nil
}

// remove removes the pair with everything in it. RemoveAll does not
// follow symbolic links, so whatever a service left in its /tmp cannot
// point sockd elsewhere.
func (pt *privateTmp) remove() error {
	if pt == nil {
		return nil
	}
	var errs []error
	for _, p := range pt.parents {
		if p != "" {
			errs = append(errs, os.RemoveAll(p))
		}
	}
	return errors.Join(errs...)
}

// ensurePrivateTmp makes the unit's PrivateTmp= pair if svc asks for one
// and it has none yet; an overlapping restart shares the running
// generation's. tearDownExec removes it.
func (u *unit) ensurePrivateTmp(svc *units.Service) error {
	if !svc.Sandbox.PrivateTmp || u.privTmp != nil {
		return nil
	}
	pt, err := newPrivateTmp(svc.Name)
	if err != nil {
		return fmt.Errorf("%s: %w", svc.Name, err)
	}
	u.privTmp = pt
	return nil
}

// sandboxSetup is what the exec helper applies to a process of svc: nil
// when svc asks for no sandboxing. pt is the unit's PrivateTmp= pair (nil
// without PrivateTmp=), staging a root-only directory of sockd's for the
// helper's temporary mounts.
func sandboxSetup(svc *units.Service, roots execRoots, pt *privateTmp, staging string) (*sandbox.Setup, error) {
	o := svc.Sandbox
	if o.Empty() {
		return nil, nil
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%s: sandboxing options (PrivateTmp=, ProtectSystem=, capabilities…) need sockd to run as root", svc.Name)
	}
	s := &sandbox.Setup{Options: o, Staging: staging}
	if o.PrivateTmp {
		if pt == nil {
			return nil, fmt.Errorf("%s: PrivateTmp=: no private directories made", svc.Name)
		}
		s.TmpDir, s.VarTmpDir = pt.tmp[0], pt.tmp[1]
	}
	// The exec directories stay writable under ProtectSystem=strict and
	// ReadOnlyPaths=, as in systemd: ConfigurationDirectory= does not.
	for _, k := range execKinds(svc, roots) {
		if k.option == "ConfigurationDirectory" {
			continue
		}
		for _, p := range k.dir.Paths {
			if k.private {
				s.Writable = append(s.Writable, filepath.Join(k.root, "private", p))
			} else {
				s.Writable = append(s.Writable, filepath.Join(k.root, p))
			}
		}
	}
	if o.MountNamespace() {
		if err := makeStaging(staging); err != nil {
			return nil, fmt.Errorf("%s: %w", svc.Name, err)
		}
	}
	return s, nil
}

// makeStaging makes the helper's staging directory (mode 0700) unless it
// is there, and checks that it is a directory of root's that nobody else
// can write: the helper mounts a tmpfs on it in its own namespace, so
// nothing is ever written in it on the host.
func makeStaging(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("sandbox staging directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("sandbox staging directory: %w", err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || st == nil || st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("sandbox staging directory %s: not a directory of root's that only root can write", dir)
	}
	return nil
}
