package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// setupMounts makes a mount namespace for the calling thread and mounts
// what s asks for in it, as plan.go lays out.
//
// Every mount is made with the new mount API on file descriptors:
// fsopen/fsmount make a detached tmpfs or devpts, open_tree clones a
// tree, move_mount attaches either to a target opened beforehand, and
// mount_setattr turns a tree read-only. Targets are opened with
// RESOLVE_NO_SYMLINKS, so nothing is ever mounted where a symlink
// planted after the paths were resolved would point.
func setupMounts(s *Setup) error {
	es, err := wanted(s)
	if err != nil {
		return err
	}
	es = normalize(es)
	if i := indexStaged(es); i >= 0 && s.Staging == "" {
		return fmt.Errorf("%s: no staging directory (Setup.Staging) to build in", es[i].source)
	}

	// unshare(CLONE_NEWNS) gives this thread alone the new namespace:
	// it unshares the thread's fs struct from the process's other
	// threads too.
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("mount namespace: unshare: %w", err)
	}
	// Mounts the host makes later still show up here; none of ours go
	// out.
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("mount namespace: make / a slave: %w", err)
	}

	if es, err = resolveAll(es); err != nil {
		return err
	}
	// Resolved paths can meet or change order.
	es = normalize(es)

	m := &mounter{es: es, trees: make([]int, len(es)), snaps: make([]int, len(es)), skip: make([]bool, len(es))}
	for i := range es {
		m.trees[i], m.snaps[i] = -1, -1
	}
	defer m.close()
	if err := m.prepare(s.Staging); err != nil {
		return err
	}
	for i := range es {
		if err := m.establish(i); err != nil {
			return err
		}
	}
	for i := range es {
		if err := m.snapshot(i); err != nil {
			return err
		}
	}
	for i := range es {
		if err := m.finish(i); err != nil {
			return err
		}
	}
	return nil
}

// resolveAll resolves the entries' paths (resolve), drops the optional
// ones that are missing and fails on the others. The host directories
// of PrivateTmp= are resolved too: sockd makes them in /tmp and /var/tmp,
// which a system may have as a link.
func resolveAll(es []entry) ([]entry, error) {
	var out []entry
	for _, e := range es {
		p, err := resolve(e.path)
		if err == nil && e.from != "" {
			e.from, err = resolve(e.from)
		}
		var pe *fs.PathError
		switch {
		case err == nil:
			e.path = p
			out = append(out, e)
		case errors.Is(err, fs.ErrNotExist) && e.optional:
		case errors.As(err, &pe) && pe.Path == e.path:
			return nil, fmt.Errorf("%s: %w", e.source, pe.Err)
		default:
			return nil, fmt.Errorf("%s: %w", e.source, err)
		}
	}
	return out, nil
}

// resolve follows the symlinks on p as the kernel would, as systemd does
// before it mounts (chase_symlinks), but follows only symlinks that root
// owns: a user who can write a directory on a unit's path (a home, a
// shared data directory) cannot plant a link that moves a mount out of
// it, say a ReadWritePaths= under ProtectSystem=strict onto /etc. Such a
// link fails the start instead. Root's links (/lib -> usr/lib, /var/run
// -> /run) are followed.
//
// The paths are resolved once, before anything is mounted, in the host's
// view: a link under a path that another entry replaces is read as the
// host has it. The mounts then open the resolved paths with
// RESOLVE_NO_SYMLINKS, so a link swapped in meanwhile fails them.
func resolve(p string) (string, error) {
	done := "/"
	todo := strings.Split(p, "/")
	for links := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..": // only from a link's target: unit paths have none
			done = filepath.Dir(done)
			continue
		}
		next := filepath.Join(done, c)
		var st unix.Stat_t
		if err := unix.Lstat(next, &st); err != nil {
			return "", &fs.PathError{Op: "lstat", Path: next, Err: err}
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			done = next
			continue
		}
		if st.Uid != 0 {
			return "", fmt.Errorf("symlink %s is not root's: not followed", next)
		}
		if links++; links > 40 {
			return "", &fs.PathError{Op: "resolve", Path: p, Err: unix.ELOOP}
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			done = "/"
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return done, nil
}

// mounter carries out a plan. Its slices run along es.
type mounter struct {
	es    []entry
	trees []int  // a detached tree (fd) to attach on the entry, or -1
	snaps []int  // the entry's tree as the first round left it, or -1
	skip  []bool // an optional entry found missing
}

// close closes the trees and snapshots: an attached one stays where it
// is, one never attached (a failed start) is dissolved.
func (m *mounter) close() {
	for _, fds := range [][]int{m.trees, m.snaps} {
		for _, fd := range fds {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}
}

// fail is the error of op on entry i.
func (m *mounter) fail(i int, op string, err error) error {
	return fmt.Errorf("%s: %s %s: %w", m.es[i].source, op, m.es[i].path, err)
}

// prepare makes the detached trees the first round attaches, before
// anything is mounted, while every path still is the host's: a clone of
// each private /tmp directory, a new tmpfs for each tmpfs entry, and on
// the staging tmpfs the inaccessible nodes and the private /dev, of
// which it keeps clones before it unmounts the staging tmpfs.
func (m *mounter) prepare(staging string) error {
	for i, e := range m.es {
		var err error
		switch e.kind {
		case privateTmp:
			m.trees[i], err = cloneTree(e.from, true)
		case tmpfs:
			m.trees[i], err = newTmpfs(*e.tmpfs)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", e.source, err)
		}
	}
	if indexStaged(m.es) < 0 {
		return nil
	}

	st, err := mountStaging(staging)
	if err != nil {
		return err
	}
	defer unix.Close(st)
	err = m.stage(st)
	// Lazily: the clones hold the staging tmpfs's nodes, not its mount.
	// It goes before the first round, which could hide it.
	if uerr := unix.Unmount(staging, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err == nil && uerr != nil {
		err = fmt.Errorf("staging directory: umount %s: %w", staging, uerr)
	}
	return err
}

// stage makes the trees built on the staging tmpfs st.
func (m *mounter) stage(st int) error {
	for _, n := range stagingNodes {
		var err error
		if n.mode&unix.S_IFMT == unix.S_IFDIR {
			err = unix.Mkdirat(st, n.name, 0)
		} else {
			err = unix.Mknodat(st, n.name, n.mode, 0)
		}
		// After, because the umask would take bits away.
		if err == nil {
			err = unix.Fchmodat(st, n.name, n.mode&0o7777, 0)
		}
		if err != nil {
			return fmt.Errorf("staging directory: %s: %w", n.name, err)
		}
	}
	for i, e := range m.es {
		switch e.kind {
		case inaccessible:
			var lst unix.Stat_t
			if err := unix.Lstat(e.path, &lst); err != nil {
				if errors.Is(err, unix.ENOENT) && e.optional {
					m.skip[i] = true
					continue
				}
				return m.fail(i, "lstat", err)
			}
			// The kernel binds a directory only on a directory and a
			// non-directory only on a non-directory: the empty file
			// covers regular files, devices, sockets and FIFOs.
			node := "inaccessible-file"
			if lst.Mode&unix.S_IFMT == unix.S_IFDIR {
				node = "inaccessible-dir"
			}
			t, err := unix.OpenTree(st, node, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_SYMLINK_NOFOLLOW)
			if err != nil {
				return m.fail(i, "clone "+node+" for", err)
			}
			m.trees[i] = t
		case privateDev:
			t, err := buildDev(st)
			if err != nil {
				return fmt.Errorf("%s: %w", e.source, err)
			}
			m.trees[i] = t
		}
	}
	return nil
}

// stagingNodes are what the staging tmpfs holds: the nodes an
// inaccessible entry is covered with, mode 0000 and empty, so that only
// root can look in, and finds nothing; the directory the private /dev is
// built on.
var stagingNodes = []struct {
	name string
	mode uint32
}{
	{"inaccessible-dir", unix.S_IFDIR},
	{"inaccessible-file", unix.S_IFREG},
	{"dev", unix.S_IFDIR | 0o755},
}

// mountStaging mounts a small tmpfs, only root's, on dir, the directory
// of root's that sockd made for it, and returns the tmpfs's root.
func mountStaging(dir string) (int, error) {
	target, err := openPath(dir, unix.O_DIRECTORY)
	if err != nil {
		return -1, fmt.Errorf("staging directory %s: %w", dir, err)
	}
	defer unix.Close(target)
	st, err := newTmpfs(tmpfsOptions{attrs: attrNosuid | attrNodev | attrNoexec}.with("mode=0700,size=1m,nr_inodes=1k"))
	if err != nil {
		return -1, fmt.Errorf("staging directory: %w", err)
	}
	if err := attach(st, target); err != nil {
		unix.Close(st)
		return -1, fmt.Errorf("staging directory: mount tmpfs on %s: %w", dir, err)
	}
	return st, nil
}

// devNodes are the host devices a private /dev has (systemd's list),
// bound from the host's, which works in a user namespace too, where
// mknod does not.
var devNodes = []string{"null", "zero", "full", "random", "urandom", "tty"}

// devLinks are the private /dev's symlinks.
var devLinks = [][2]string{
	{"ptmx", "pts/ptmx"},
	{"fd", "/proc/self/fd"},
	{"stdin", "/proc/self/fd/0"},
	{"stdout", "/proc/self/fd/1"},
	{"stderr", "/proc/self/fd/2"},
}

// buildDev builds the private /dev on the staging tmpfs st (in its "dev"
// directory) and returns a detached clone of it: a tmpfs (nosuid,
// noexec, read-only once built, as systemd's) holding devNodes, a new
// devpts instance on pts with ptmx linked to it, a new tmpfs on shm, and
// the host's mqueue and hugepages if it has them.
func buildDev(st int) (int, error) {
	dir, err := openPathAt(st, "dev", unix.O_DIRECTORY)
	if err != nil {
		return -1, fmt.Errorf("staging directory: dev: %w", err)
	}
	defer unix.Close(dir)
	dev, err := newTmpfs(tmpfsOptions{attrs: attrNosuid | attrNoexec | attrStrictatime}.with("mode=0755," + devTmpfsLimits))
	if err != nil {
		return -1, err
	}
	defer unix.Close(dev)
	if err := attach(dev, dir); err != nil {
		return -1, fmt.Errorf("mount /dev tmpfs: %w", err)
	}

	for _, n := range devNodes {
		src, err := openPath("/dev/"+n, 0)
		if errors.Is(err, unix.ENOENT) {
			continue // as systemd: a host without it gives none
		}
		if err != nil {
			return -1, fmt.Errorf("/dev/%s: %w", n, err)
		}
		var s unix.Stat_t
		err = unix.Fstat(src, &s)
		if err == nil && s.Mode&unix.S_IFMT != unix.S_IFCHR {
			err = errors.New("not a character device")
		}
		if err == nil {
			err = unix.Mknodat(dev, n, unix.S_IFREG|0o644, 0)
		}
		if err == nil {
			err = bindAt(src, dev, n, false)
		}
		unix.Close(src)
		if err != nil {
			return -1, fmt.Errorf("/dev/%s: %w", n, err)
		}
	}

	if err := unix.Mkdirat(dev, "pts", 0o755); err != nil {
		return -1, fmt.Errorf("/dev/pts: %w", err)
	}
	pts, err := newDevpts()
	if err == nil {
		err = attachAt(pts, dev, "pts")
		unix.Close(pts)
	}
	if err != nil {
		return -1, fmt.Errorf("/dev/pts: %w", err)
	}

	if err := unix.Mkdirat(dev, "shm", 0o755); err != nil {
		return -1, fmt.Errorf("/dev/shm: %w", err)
	}
	shm, err := newTmpfs(tmpfsOptions{attrs: attrNosuid | attrNodev}.with("mode=1777"))
	if err == nil {
		err = attachAt(shm, dev, "shm")
		unix.Close(shm)
	}
	if err != nil {
		return -1, fmt.Errorf("/dev/shm: %w", err)
	}

	for _, n := range []string{"mqueue", "hugepages"} {
		src, err := openPath("/dev/"+n, unix.O_DIRECTORY)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err == nil {
			if err = unix.Mkdirat(dev, n, 0o755); err == nil {
				err = bindAt(src, dev, n, true)
			}
			unix.Close(src)
		}
		if err != nil {
			return -1, fmt.Errorf("/dev/%s: %w", n, err)
		}
	}

	for _, l := range devLinks {
		if err := unix.Symlinkat(l[1], dev, l[0]); err != nil {
			return -1, fmt.Errorf("/dev/%s: %w", l[0], err)
		}
	}

	// Read-only, but not what is mounted in it: a service cannot add
	// nodes or files to /dev, and can still write to /dev/null, ptys
	// and /dev/shm.
	if err := unix.MountSetattr(dev, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		return -1, fmt.Errorf("mount_setattr /dev: %w", err)
	}
	t, err := unix.OpenTree(dev, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH|unix.AT_RECURSIVE)
	if err != nil {
		return -1, fmt.Errorf("clone /dev: %w", err)
	}
	return t, nil
}

// newDevpts makes a new devpts instance, as a container's: its own ptys
// only, a ptmx anyone may open, ptys of group tty (5, as systemd's
// default TTY_GID) and mode 0620. In a user namespace that does not map
// group 5 (PrivateUsers=), the kernel refuses the gid; the ptys then get
// the opener's group.
func newDevpts() (int, error) {
	opts := []string{"newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}
	fd, err := newMount("devpts", opts, attrNosuid|attrNoexec)
	if errors.Is(err, unix.EINVAL) {
		fd, err = newMount("devpts", opts[:3], attrNosuid|attrNoexec)
	}
	return fd, err
}

// establish is the first round for entry i: what replaces its path is
// attached, and a read-only entry becomes a mount of its own, so that
// the second round turns only it read-only.
func (m *mounter) establish(i int) error {
	e := &m.es[i]
	if m.skip[i] {
		return nil
	}
	fd, err := openPath(e.path, 0)
	if errors.Is(err, unix.ENOENT) && e.optional {
		m.skip[i] = true
		return nil
	}
	if err != nil {
		return m.fail(i, "open", err)
	}
	defer unix.Close(fd)
	switch {
	case m.trees[i] >= 0:
		if err := attach(m.trees[i], fd); err != nil {
			return m.fail(i, "mount "+e.kind.String()+" on", err)
		}
	case e.ro && e.kind.keeps() && e.path != "/" && !isMountRoot(fd):
		if err := bindAt(fd, fd, "", true); err != nil {
			return m.fail(i, "bind", err)
		}
	}
	return nil
}

// snapshot clones entry i's tree as the first round left it, if the
// second round must put it back.
func (m *mounter) snapshot(i int) error {
	if m.skip[i] || !m.es[i].restore {
		return nil
	}
	t, err := cloneTree(m.es[i].path, true)
	if err != nil {
		return fmt.Errorf("%s: %w", m.es[i].source, err)
	}
	m.snaps[i] = t
	return nil
}

// finish is the second round for entry i: it turns read-only with
// everything under it, or is put back as the first round left it after
// a read-only entry above it did so.
func (m *mounter) finish(i int) error {
	if m.skip[i] || !m.es[i].ro && !m.es[i].restore {
		return nil
	}
	fd, err := openPath(m.es[i].path, 0)
	if err != nil {
		return m.fail(i, "open", err)
	}
	defer unix.Close(fd)
	if m.es[i].ro {
		err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
		if err != nil {
			return m.fail(i, "mount_setattr", err)
		}
		return nil
	}
	if err := attach(m.snaps[i], fd); err != nil {
		return m.fail(i, "restore", err)
	}
	return nil
}

// openPath opens p as an O_PATH descriptor to mount on, refusing any
// symlink on the way (see resolve).
func openPath(p string, flags uint64) (int, error) {
	return openPathAt(unix.AT_FDCWD, p, flags)
}

// openPathAt is openPath relative to dirfd; a relative path stays
// beneath it.
func openPathAt(dirfd int, p string, flags uint64) (int, error) {
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC | flags, Resolve: unix.RESOLVE_NO_SYMLINKS}
	if dirfd != unix.AT_FDCWD {
		how.Resolve |= unix.RESOLVE_BENEATH
	}
	return unix.Openat2(dirfd, p, &how)
}

// isMountRoot reports whether fd is the root of a mount: "/", /proc, a
// separate /boot. Those need no bind of their own to be turned
// read-only alone.
func isMountRoot(fd int) bool {
	var stx unix.Statx_t
	if unix.Statx(fd, "", unix.AT_EMPTY_PATH, 0, &stx) != nil {
		return false
	}
	return stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
}

// cloneTree opens p and returns a detached clone of it (with what is
// mounted under it if recursive), to attach elsewhere.
func cloneTree(p string, recursive bool) (int, error) {
	fd, err := openPath(p, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	flags := unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC | unix.AT_EMPTY_PATH
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	t, err := unix.OpenTree(fd, "", uint(flags))
	if err != nil {
		return -1, &fs.PathError{Op: "clone", Path: p, Err: err}
	}
	return t, nil
}

// bindAt bind-mounts src (a descriptor) on name in dirfd, or on dirfd
// itself if name is "".
func bindAt(src, dirfd int, name string, recursive bool) error {
	flags := unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC | unix.AT_EMPTY_PATH
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	t, err := unix.OpenTree(src, "", uint(flags))
	if err != nil {
		return err
	}
	defer unix.Close(t)
	return attachAt(t, dirfd, name)
}

// attach attaches the detached tree t on target (a descriptor).
func attach(t, target int) error {
	return attachAt(t, target, "")
}

// attachAt attaches the detached tree t on name in dirfd (not following
// a symlink there), or on dirfd itself if name is "".
func attachAt(t, dirfd int, name string) error {
	flags := unix.MOVE_MOUNT_F_EMPTY_PATH
	if name == "" {
		flags |= unix.MOVE_MOUNT_T_EMPTY_PATH
	}
	return unix.MoveMount(t, "", dirfd, name, flags)
}

// newTmpfs makes a detached tmpfs mount with o's parameters and flags
// (not o.ro: the second round makes entries read-only).
func newTmpfs(o tmpfsOptions) (int, error) {
	return newMount("tmpfs", o.params, o.attrs)
}

// newMount makes a detached mount of a new fstype file system with the
// given parameters ("key" or "key=value", in order) and mount
// attributes.
func newMount(fstype string, params []string, attrs mountAttrs) (int, error) {
	fsfd, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen %s: %w", fstype, err)
	}
	defer unix.Close(fsfd)
	for _, p := range params {
		k, v, hasValue := strings.Cut(p, "=")
		if hasValue {
			err = unix.FsconfigSetString(fsfd, k, v)
		} else {
			err = unix.FsconfigSetFlag(fsfd, k)
		}
		if err != nil {
			return -1, fmt.Errorf("%s option %s: %w", fstype, p, err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, fmt.Errorf("create %s: %w", fstype, err)
	}
	fd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, int(attrs))
	if err != nil {
		return -1, fmt.Errorf("fsmount %s: %w", fstype, err)
	}
	return fd, nil
}
