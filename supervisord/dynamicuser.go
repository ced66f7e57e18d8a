package supervisord

// DynamicUser=yes (systemd.exec(5)): a user and group allocated when a
// unit starts and released when it stops, as systemd's
// src/core/dynamic-user.c does it: a user name that exists in the user
// database is used as it is; otherwise an id in 61184-65519, first the
// one the unit's own private directories belong to, then one derived
// from a hash of the name, then the next ones, skipping ids the user or
// group database knows, ids another sockd unit or systemd holds, and
// (sockd's own rule, see privateOwners) ids that own another unit's
// private directory. An id is held by a lock (flock(2)) on
// DIR/dynamic-uid/ID, which holds the name; units of the same name share
// it.

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/ids"
	"github.com/sockd/sockd/internal/nofollow"
	"github.com/sockd/sockd/units"
)

// The ids systemd hands dynamic users (docs/UIDS-GIDS.md).
const (
	dynamicIDMin = 61184
	dynamicIDMax = 65519
)

// systemdDynamicIDDir is where systemd locks the dynamic ids it hands
// out; sockd does not take those.
var systemdDynamicIDDir = "/run/systemd/dynamic-uid"

// dynamicUser is the user and group of a DynamicUser=yes unit while it
// runs.
type dynamicUser struct {
	Name     string // User= (or the name the parser derived from the unit)
	UID, GID uint32
}

// env returns the variables systemd sets for a dynamic user: USER and
// LOGNAME (no HOME, no SHELL). Add them with addEnvDefaults.
func (d dynamicUser) env() []string {
	return []string{"USER=" + d.Name, "LOGNAME=" + d.Name}
}

// dynamicIDs holds the ids this process allocated, by name: a dynamic
// user and its group share the name and the number.
var dynamicIDs = struct {
	sync.Mutex
	m map[string]*dynamicID
}{m: map[string]*dynamicID{}}

type dynamicID struct {
	id   uint32
	dir  string
	lock *os.File // DIR/ID, flock'ed
	refs int
}

// allocDynamicUser allocates the user (User=) and group (Group=) of the
// DynamicUser=yes service svc, or takes another reference to them, with
// lock files in dir (sockd's runtime directory + "/dynamic-uid"); roots
// are where svc's exec directories live. Call release once the unit's
// last process is gone; it may be called more than once.
func allocDynamicUser(dir string, svc *units.Service, roots execRoots) (d dynamicUser, release func(), err error) {
	if !svc.DynamicUser || svc.User == "" {
		return dynamicUser{}, nil, fmt.Errorf("%s: not a DynamicUser=yes service", svc.Name)
	}
	hint := privateOwners(svc, roots)
	dynamicIDs.Lock()
	defer dynamicIDs.Unlock()
	uid, gid, relUser, err := acquireLocked(dir, svc.User, true, hint)
	if err != nil {
		return dynamicUser{}, nil, fmt.Errorf("%s: DynamicUser=yes: User=%s: %w", svc.Name, svc.User, err)
	}
	rels := []func(){relUser}
	if svc.Group != "" && svc.Group != svc.User {
		_, g, relGroup, err := acquireLocked(dir, svc.Group, false, hint)
		if err != nil {
			relUser()
			return dynamicUser{}, nil, fmt.Errorf("%s: DynamicUser=yes: Group=%s: %w", svc.Name, svc.Group, err)
		}
		gid, rels = g, append(rels, relGroup)
	}
	release = sync.OnceFunc(func() {
		dynamicIDs.Lock()
		defer dynamicIDs.Unlock()
		for _, r := range rels {
			r()
		}
	})
	return dynamicUser{Name: svc.User, UID: uid, GID: gid}, release, nil
}

// acquireLocked resolves name as a user (uid and its group) or a group
// (gid twice): a static entry or number as it is, else a dynamic id
// held for this process. The returned release drops the reference.
func acquireLocked(dir, name string, isUser bool, hint uidHint) (uid, gid uint32, release func(), err error) {
	if e := dynamicIDs.m[name]; e != nil {
		if e.dir != dir {
			return 0, 0, nil, fmt.Errorf("already allocated with locks in %s", e.dir)
		}
		e.refs++
		return e.id, e.id, func() { releaseLocked(name, e) }, nil
	}
	if uid, gid, ok, err := staticIDs(name, isUser); err != nil || ok {
		return uid, gid, func() {}, err
	}
	id, lock, err := pickID(dir, name, hint)
	if err != nil {
		return 0, 0, nil, err
	}
	e := &dynamicID{id: id, dir: dir, lock: lock, refs: 1}
	dynamicIDs.m[name] = e
	return id, id, func() { releaseLocked(name, e) }, nil
}

func releaseLocked(name string, e *dynamicID) {
	e.refs--
	if e.refs > 0 {
		return
	}
	delete(dynamicIDs.m, name)
	// Unlink before unlocking: whoever opened the file meanwhile sees
	// it unlinked once it gets the lock, and tries again.
	os.Remove(e.lock.Name())
	e.lock.Close()
}

// staticIDs resolves name through the user and group databases, as
// systemd does before it allocates: a number is taken as it is (a uid's
// group from its passwd entry if it has one); a user name is used with
// its primary group. A group of that name without a user of it (or the
// other way round) is an error.
func staticIDs(name string, isUser bool) (uid, gid uint32, ok bool, err error) {
	if n, err := strconv.ParseUint(name, 10, 32); err == nil {
		if n == 1<<32-1 {
			return 0, 0, false, fmt.Errorf("invalid id %s", name)
		}
		uid, gid = uint32(n), uint32(n)
		if isUser {
			if u, err := user.LookupId(name); err == nil {
				if g, err := strconv.ParseUint(u.Gid, 10, 32); err == nil {
					gid = uint32(g)
				}
			}
		}
		return uid, gid, true, nil
	}
	u, uerr := user.Lookup(name)
	g, gerr := user.LookupGroup(name)
	var unknownUser user.UnknownUserError
	var unknownGroup user.UnknownGroupError
	if uerr != nil && !errors.As(uerr, &unknownUser) {
		return 0, 0, false, uerr
	}
	if gerr != nil && !errors.As(gerr, &unknownGroup) {
		return 0, 0, false, gerr
	}
	switch {
	case isUser && uerr == nil:
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			return 0, 0, false, fmt.Errorf("user %s: %w", name, err)
		}
		return uint32(uid), uint32(gid), true, nil
	case !isUser && gerr == nil:
		gid, err := strconv.ParseUint(g.Gid, 10, 32)
		if err != nil {
			return 0, 0, false, fmt.Errorf("group %s: %w", name, err)
		}
		return uint32(gid), uint32(gid), true, nil
	case isUser && gerr == nil:
		return 0, 0, false, fmt.Errorf("a group %s exists but no user of that name", name)
	case !isUser && uerr == nil:
		return 0, 0, false, fmt.Errorf("a user %s exists but no group of that name", name)
	}
	return 0, 0, false, nil
}

// pickID finds a free id for name and locks it.
func pickID(dir, name string, hint uidHint) (uint32, *os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, nil, err
	}
	const n = dynamicIDMax - dynamicIDMin + 1
	h := fnv.New32a()
	h.Write([]byte(name))
	start := h.Sum32() % n
	tried := map[uint32]bool{}
	candidates := append([]uint32(nil), hint.suggest...)
	for i := uint32(0); i < n; i++ {
		candidates = append(candidates, dynamicIDMin+(start+i)%n)
	}
	for _, c := range candidates {
		if tried[c] || c < dynamicIDMin || c > dynamicIDMax || hint.foreign[c] {
			continue
		}
		tried[c] = true
		if _, err := os.Lstat(filepath.Join(systemdDynamicIDDir, strconv.Itoa(int(c)))); err == nil {
			continue // systemd's
		}
		f, err := lockID(dir, c)
		if err != nil {
			return 0, nil, err
		}
		if f == nil {
			continue // another unit's
		}
		if idInDatabase(c) {
			os.Remove(f.Name())
			f.Close()
			continue
		}
		werr := f.Truncate(0)
		if werr == nil {
			_, werr = f.WriteAt([]byte(name+"\n"), 0)
		}
		if werr != nil {
			os.Remove(f.Name())
			f.Close()
			return 0, nil, werr
		}
		return c, f, nil
	}
	return 0, nil, fmt.Errorf("no free id in %d-%d", dynamicIDMin, dynamicIDMax)
}

// lockID opens and locks DIR/ID; nil if another holds it.
func lockID(dir string, id uint32) (*os.File, error) {
	p := filepath.Join(dir, strconv.Itoa(int(id)))
	for {
		fd, err := unix.Open(p, unix.O_CREAT|unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY, 0o600)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: p, Err: err}
		}
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			unix.Close(fd)
			if err == unix.EWOULDBLOCK {
				return nil, nil
			}
			return nil, &fs.PathError{Op: "flock", Path: p, Err: err}
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return nil, &fs.PathError{Op: "fstat", Path: p, Err: err}
		}
		if st.Nlink > 0 {
			return os.NewFile(uintptr(fd), p), nil
		}
		unix.Close(fd) // unlinked by its releaser meanwhile: again
	}
}

// idInDatabase reports whether the user or group database knows id
// (or cannot tell).
func idInDatabase(id uint32) bool {
	s := strconv.Itoa(int(id))
	var unknownUser user.UnknownUserIdError
	var unknownGroup user.UnknownGroupIdError
	if _, err := user.LookupId(s); !errors.As(err, &unknownUser) {
		return true
	}
	if _, err := user.LookupGroupId(s); !errors.As(err, &unknownGroup) {
		return true
	}
	return false
}

// uidHint is what the private exec directories tell about ids.
type uidHint struct {
	// suggest are the dynamic ids owning the unit's own private
	// directories: taking one again spares a chown of their trees.
	suggest []uint32
	// foreign are the ids owning any other private directory: a new
	// unit with such an id could read and change what it left, since
	// sockd cannot hide ROOT/private as systemd does with a mount
	// namespace.
	foreign map[uint32]bool
}

// privateOwners reads who owns what below ROOT/private of the runtime,
// state, cache and logs roots: it descends through directories owned by
// sockd (the parents it makes) and notes the owner of everything else,
// never following a symlink.
func privateOwners(svc *units.Service, roots execRoots) uidHint {
	h := uidHint{foreign: map[uint32]bool{}}
	euid := uint32(os.Geteuid())
	for _, k := range execKinds(svc, roots)[:4] {
		root, err := nofollow.Open(k.root)
		if err != nil {
			continue
		}
		priv, _, err := root.OpenDir("private", false, 0)
		root.Close()
		if err != nil {
			continue
		}
		walkOwners(priv, "", 0, euid, func(rel string, uid uint32) {
			mine := false
			for _, p := range k.dir.Paths {
				if rel == p || len(rel) > len(p) && rel[:len(p)+1] == p+"/" {
					mine = true
				}
			}
			switch {
			case !mine:
				h.foreign[uid] = true
			case uid >= dynamicIDMin && uid <= dynamicIDMax:
				h.suggest = append(h.suggest, uid)
			}
		})
		priv.Close()
	}
	return h
}

func walkOwners(d *nofollow.Dir, rel string, depth int, euid uint32, note func(rel string, uid uint32)) {
	names, err := d.Names()
	if err != nil || depth > 8 {
		return
	}
	for _, n := range names {
		st, err := d.Lstat(n)
		if err != nil {
			continue
		}
		r := path.Join(rel, n)
		if st.Uid != euid || !nofollow.IsDir(st) {
			note(r, st.Uid)
			continue
		}
		sub, _, err := d.OpenDir(n, false, 0)
		if err != nil {
			continue
		}
		walkOwners(sub, r, depth+1, euid, note)
		sub.Close()
	}
}

// heldDynamicUser returns the ids of svc's user and group, which
// allocDynamicUser must hold (or which the user and group databases
// know), and a static user's supplementary groups.
func heldDynamicUser(svc *units.Service) (uid, gid uint32, member []uint32, err error) {
	dynamicIDs.Lock()
	defer dynamicIDs.Unlock()
	resolve := func(name string, isUser bool) (uint32, uint32, bool, error) {
		if e := dynamicIDs.m[name]; e != nil {
			return e.id, e.id, false, nil
		}
		id, g, ok, err := staticIDs(name, isUser)
		if err == nil && !ok {
			err = fmt.Errorf("dynamic user %s is not allocated", name)
		}
		return id, g, ok, err
	}
	uid, gid, static, err := resolve(svc.User, true)
	if err != nil {
		return 0, 0, nil, err
	}
	if svc.Group != "" && svc.Group != svc.User {
		if _, gid, _, err = resolve(svc.Group, false); err != nil {
			return 0, 0, nil, err
		}
	}
	if static {
		if u, err := ids.LookupUser(svc.User); err == nil {
			gids, _ := u.GroupIds()
			for _, s := range gids {
				if n, err := strconv.ParseUint(s, 10, 32); err == nil && uint32(n) != gid {
					member = append(member, uint32(n))
				}
			}
		}
	}
	return uid, gid, member, nil
}
