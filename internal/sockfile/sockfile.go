// Package sockfile removes Unix socket files by one rule: a stale one
// before a bind, and one's own when it is closed. It removes nothing but
// sockets, never follows a symlink, and leaves abstract names ("@name",
// which have no file) alone. See unix(7).
package sockfile

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// dialTimeout bounds the dial that tells a live socket from a stale one.
// A Unix connect does not wait for the listener (a full queue fails at
// once with EAGAIN), so it is only a safety net.
const dialTimeout = 2 * time.Second

// RemoveStale makes way for a bind to path by removing a socket file that
// nobody listens on any more. It dials path as a stream socket, which
// tells the cases apart for every socket type:
//
//   - nil: path is abstract, does not exist, or was a socket that refused
//     the dial (ECONNREFUSED: no socket is bound to it, or only a stream
//     socket that does not listen) and has been removed;
//   - an error wrapping syscall.EADDRINUSE: a socket is bound to path and
//     answers the dial, or is of another type (EPROTOTYPE: a datagram or
//     seqpacket socket), or has a full queue (EAGAIN); path is kept;
//   - an error wrapping fs.ErrExist: path is not a socket (a symlink,
//     even to a socket, included); it is never removed;
//   - any other error of lstat, connect or unlink, with the path.
func RemoveStale(path string) error {
	fi, err := socketAt(path)
	if fi == nil || err != nil {
		return err
	}
	c, err := net.DialTimeout("unix", path, dialTimeout)
	switch {
	case err == nil:
		c.Close()
		return inUse(path)
	case errors.Is(err, syscall.ENOENT):
		return nil // removed meanwhile
	case errors.Is(err, syscall.EPROTOTYPE), errors.Is(err, syscall.EAGAIN):
		return inUse(path)
	case !errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("check socket %s for a listener: %w", path, err)
	}
	// Stale. Remove it only if it is still the file that was dialled.
	now, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !os.SameFile(fi, now) {
		return fmt.Errorf("socket %s was replaced while being checked: %w", path, fs.ErrExist)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	return nil
}

// Remove removes the socket file at path, for its owner closing the
// socket. It returns nil if path is abstract or does not exist, and an
// error wrapping fs.ErrExist, without removing anything, if path is not a
// socket (a symlink included).
func Remove(path string) error {
	if fi, err := socketAt(path); fi == nil || err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func abstract(path string) bool { return strings.HasPrefix(path, "@") }

func inUse(path string) error {
	return fmt.Errorf("socket %s is in use: %w", path, syscall.EADDRINUSE)
}

func notSocket(path string, fi fs.FileInfo) error {
	return fmt.Errorf("%s is %s, not a socket; not removing it: %w", path, kind(fi.Mode()), fs.ErrExist)
}

// kind names a file type for an error message.
func kind(m fs.FileMode) string {
	switch m.Type() {
	case 0:
		return "a regular file"
	case fs.ModeDir:
		return "a directory"
	case fs.ModeSymlink:
		return "a symlink"
	case fs.ModeNamedPipe:
		return "a FIFO"
	case fs.ModeDevice:
		return "a block device"
	case fs.ModeDevice | fs.ModeCharDevice:
		return "a character device"
	}
	return "a " + m.Type().String() + " file"
}

// socketAt returns the socket file at path: nil and nil for an abstract
// name or no file, an error wrapping fs.ErrExist for a file that is not
// a socket (a symlink included).
func socketAt(path string) (fs.FileInfo, error) {
	if abstract(path) {
		return nil, nil
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return nil, notSocket(path, fi)
	}
	return fi, nil
}
