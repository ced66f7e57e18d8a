// Package nofollow makes, opens, chowns and removes directory trees
// below a trusted directory by one rule: below it, no symlink is ever
// followed. Every path is walked one component at a time with openat(2)
// and O_NOFOLLOW, and every change is made through a file descriptor or
// with AT_SYMLINK_NOFOLLOW, so a symlink planted by whoever owns part of
// the tree, even swapped in while sockd works, is refused or changed
// itself, never its target. See openat(2), symlink(7).
package nofollow

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// dirFlags open a directory and refuse a symlink.
const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// Dir is an open directory.
type Dir struct {
	fd   int
	path string // for errors
}

// Open opens the trusted directory path, following symlinks: its own
// path is configuration, not something a service can change.
func Open(path string) (*Dir, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return &Dir{fd: fd, path: path}, nil
}

// Close closes d.
func (d *Dir) Close() error { return unix.Close(d.fd) }

// Path is the path d was opened as (for messages only).
func (d *Dir) Path() string { return d.path }

// Fd is d's file descriptor, owned by d.
func (d *Dir) Fd() int { return d.fd }

func (d *Dir) join(rel string) string { return filepath.Join(d.path, rel) }

// OpenDir opens the directory rel (a relative, clean path) below d. Each
// component must be a directory, not a symlink to one (an error wrapping
// ErrSymlink otherwise). With create, missing components are made with
// mode, which is then set with fchmod whatever the umask; created
// reports whether the last component was made.
func (d *Dir) OpenDir(rel string, create bool, mode uint32) (sub *Dir, created bool, err error) {
	if rel == "" || filepath.IsAbs(rel) || filepath.Clean(rel) != rel || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return nil, false, &fs.PathError{Op: "open", Path: d.join(rel), Err: fs.ErrInvalid}
	}
	cur, err := unix.Dup(d.fd)
	if err != nil {
		return nil, false, &fs.PathError{Op: "dup", Path: d.path, Err: err}
	}
	done := ""
	for _, c := range strings.Split(rel, "/") {
		if c == ".." {
			unix.Close(cur)
			return nil, false, &fs.PathError{Op: "open", Path: d.join(rel), Err: fs.ErrInvalid}
		}
		done = filepath.Join(done, c)
		created = false
		if create {
			switch err := unix.Mkdirat(cur, c, mode); {
			case err == nil:
				created = true
			case err != unix.EEXIST:
				unix.Close(cur)
				return nil, false, &fs.PathError{Op: "mkdir", Path: d.join(done), Err: err}
			}
		}
		next, err := openDirAt(cur, c)
		if err == nil && created {
			if err = unix.Fchmod(next, mode); err != nil {
				unix.Close(next)
			}
		}
		unix.Close(cur)
		if err != nil {
			return nil, false, &fs.PathError{Op: "open", Path: d.join(done), Err: err}
		}
		cur = next
	}
	return &Dir{fd: cur, path: d.join(rel)}, created, nil
}

// ErrSymlink is the error of an open that met a symlink.
var ErrSymlink = errors.New("is a symlink; refusing to follow it")

// openDirAt opens the directory name in dirfd, refusing a symlink and
// saying so.
func openDirAt(dirfd int, name string) (int, error) {
	fd, err := unix.Openat(dirfd, name, dirFlags, 0)
	if err == nil {
		return fd, nil
	}
	if err == unix.ELOOP || err == unix.ENOTDIR {
		var st unix.Stat_t
		if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return -1, ErrSymlink
		}
	}
	return -1, err
}

// Lstat returns the status of name in d, a symlink's own.
func (d *Dir) Lstat(name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return st, &fs.PathError{Op: "lstat", Path: d.join(name), Err: err}
	}
	return st, nil
}

// Stat returns the status of d itself.
func (d *Dir) Stat() (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return st, &fs.PathError{Op: "fstat", Path: d.path, Err: err}
	}
	return st, nil
}

// Chmod sets the mode of d itself (permission, setuid, setgid and
// sticky bits).
func (d *Dir) Chmod(mode uint32) error {
	if err := unix.Fchmod(d.fd, mode); err != nil {
		return &fs.PathError{Op: "chmod", Path: d.path, Err: err}
	}
	return nil
}

// Readlink returns the target of the symlink name in d.
func (d *Dir) Readlink(name string) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(d.fd, name, buf)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: d.join(name), Err: err}
	}
	return string(buf[:n]), nil
}

// Symlink makes name in d a symlink to target. An existing symlink to
// target is fine; anything else at name is an error wrapping
// fs.ErrExist.
func (d *Dir) Symlink(target, name string) error {
	err := unix.Symlinkat(target, d.fd, name)
	if err == nil {
		return nil
	}
	if err == unix.EEXIST {
		if t, rerr := d.Readlink(name); rerr == nil && t == target {
			return nil
		}
		return &fs.PathError{Op: "symlink", Path: d.join(name), Err: fmt.Errorf("%w, and is not a symlink to %s", fs.ErrExist, target)}
	}
	return &fs.PathError{Op: "symlink", Path: d.join(name), Err: err}
}

// Unlink removes the non-directory name in d (a symlink itself).
func (d *Dir) Unlink(name string) error {
	if err := unix.Unlinkat(d.fd, name, 0); err != nil {
		return &fs.PathError{Op: "unlink", Path: d.join(name), Err: err}
	}
	return nil
}

// Rename moves name in d to newName in to, whatever either is.
func (d *Dir) Rename(name string, to *Dir, newName string) error {
	if err := unix.Renameat(d.fd, name, to.fd, newName); err != nil {
		return &fs.PathError{Op: "rename", Path: d.join(name), Err: fmt.Errorf("to %s: %w", to.join(newName), err)}
	}
	return nil
}

// RemoveAll removes name in d and, if it is a directory, everything in
// it, never following a symlink: a symlink is removed itself. A missing
// name is not an error. Unlike os.RemoveAll, which resolves the parent
// directories of its path with an ordinary open, d was opened without
// following any symlink below its trusted root.
func (d *Dir) RemoveAll(name string) error {
	if err := removeAllAt(d.fd, name); err != nil {
		return &fs.PathError{Op: "remove", Path: d.join(name), Err: err}
	}
	return nil
}

func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM && err != unix.EACCES {
		return err
	}
	fd, oerr := unix.Openat(dirfd, name, dirFlags, 0)
	if oerr == unix.ENOENT {
		return nil
	}
	if oerr != nil {
		return err // not a directory after all: the unlink's error
	}
	var first error
	for {
		names, rerr := readNames(fd)
		if rerr != nil {
			unix.Close(fd)
			return rerr
		}
		removed := 0
		for _, n := range names {
			if err := removeAllAt(fd, n); err != nil {
				if first == nil {
					first = fmt.Errorf("%s: %w", n, err)
				}
				continue
			}
			removed++
		}
		// Start over while entries go away: removing entries while
		// reading a directory may skip some.
		if len(names) == 0 || removed == 0 {
			break
		}
		if _, err := unix.Seek(fd, 0, 0); err != nil {
			unix.Close(fd)
			return err
		}
	}
	unix.Close(fd)
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		if first != nil {
			return first
		}
		return err
	}
	return nil
}

// readNames reads the names in the directory fd, without "." and "..".
func readNames(fd int) ([]string, error) {
	var names []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.ReadDirent(fd, buf)
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// Names returns the names in d, without "." and "..".
func (d *Dir) Names() ([]string, error) {
	if _, err := unix.Seek(d.fd, 0, 0); err != nil {
		return nil, &fs.PathError{Op: "seek", Path: d.path, Err: err}
	}
	names, err := readNames(d.fd)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: d.path, Err: err}
	}
	return names, nil
}

// ChownAll gives d and everything in it to uid and gid, symlinks
// themselves included and never their targets. Directories lose the
// mode bits not in keep (pass 0o7777 to keep all, 0o1777 to drop setuid
// and setgid); for other files the kernel clears setuid and setgid on a
// chown. As systemd does for its exec directories, nothing is changed
// when d itself already has that owner and group and no bit outside
// keep.
func (d *Dir) ChownAll(uid, gid int, keep uint32) error {
	st, err := d.Stat()
	if err != nil {
		return err
	}
	if int(st.Uid) == uid && int(st.Gid) == gid && st.Mode&0o7777&^keep == 0 {
		return nil
	}
	if err := chownDir(d.fd, st, uid, gid, keep); err != nil {
		return &fs.PathError{Op: "chown", Path: d.path, Err: err}
	}
	return nil
}

func chownDir(fd int, st unix.Stat_t, uid, gid int, keep uint32) error {
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return err
	}
	if m := st.Mode & 0o7777; m&^keep != 0 {
		if err := unix.Fchmod(fd, m&keep); err != nil {
			return err
		}
	}
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		return err
	}
	names, err := readNames(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		var est unix.Stat_t
		if err := unix.Fstatat(fd, n, &est, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue
			}
			return fmt.Errorf("%s: %w", n, err)
		}
		if est.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := unix.Fchownat(fd, n, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil && err != unix.ENOENT {
				return fmt.Errorf("%s: %w", n, err)
			}
			continue
		}
		sub, err := unix.Openat(fd, n, dirFlags, 0)
		if err != nil {
			if err == unix.ENOENT {
				continue
			}
			if err == unix.ELOOP || err == unix.ENOTDIR {
				// Swapped for something else since the stat: change
				// that entry itself.
				if err := unix.Fchownat(fd, n, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil && err != unix.ENOENT {
					return fmt.Errorf("%s: %w", n, err)
				}
				continue
			}
			return fmt.Errorf("%s: %w", n, err)
		}
		cerr := unix.Fstat(sub, &est)
		if cerr == nil {
			cerr = chownDir(sub, est, uid, gid, keep)
		}
		unix.Close(sub)
		if cerr != nil {
			return fmt.Errorf("%s: %w", n, cerr)
		}
	}
	return nil
}

// IsDir reports whether st is a directory's.
func IsDir(st unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }

// IsSymlink reports whether st is a symlink's.
func IsSymlink(st unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFLNK }
