package api

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/sockd/sockd/internal/sockfile"
)

// maxSocketPath is the longest path a sockaddr_un holds, without its NUL.
const maxSocketPath = 107

// Listen creates the control socket at path with the given mode. A stale
// socket file (one nobody answers on) is removed first; a live one is an
// error, so two sockd never share an API socket.
//
// Precisely: the parent directory is created (0755) if missing. If a
// socket file exists at path, Listen dials it: a refused dial means
// stale, and the file is removed; a socket that answers (or is bound with
// another socket type) is in use, and Listen fails with an error wrapping
// EADDRINUSE. A file that is not a socket, a symlink included, is never
// removed: Listen fails with an error wrapping fs.ErrExist. The listener
// does not unlink the file when closed (Server.Shutdown removes it). A
// mode of 0 means 0600. Abstract names ("@name") are listened on as they
// are.
func Listen(path string, mode os.FileMode) (net.Listener, error) {
	return ListenGroup(path, mode, -1)
}

// ListenGroup is Listen that also gives the socket file the group gid
// (before its mode), unless gid is -1. The file's mode only decides who
// may connect; Server.Access decides what each peer may do.
func ListenGroup(path string, mode os.FileMode, gid int) (net.Listener, error) {
	if path == "" {
		return nil, fmt.Errorf("listen unix: %w", &FieldError{Field: "path", Message: "empty socket path"})
	}
	if strings.HasPrefix(path, "@") {
		l, err := net.Listen("unix", path)
		if err != nil {
			return nil, err // a *net.OpError naming the address
		}
		return l, nil
	}
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("listen unix %s: socket path is %d bytes, longer than the %d a socket address holds", path, len(path), maxSocketPath)
	}
	if mode == 0 {
		mode = 0o600
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("listen unix %s: %w", path, err)
	}
	if err := sockfile.RemoveStale(path); err != nil {
		return nil, fmt.Errorf("listen unix %s: %w", path, err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err // a *net.OpError: "listen unix PATH: bind: …"
	}
	l.SetUnlinkOnClose(false)
	if gid != -1 {
		if err := os.Chown(path, -1, gid); err != nil {
			l.Close()
			sockfile.Remove(path)
			return nil, fmt.Errorf("listen unix %s: %w", path, err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		sockfile.Remove(path)
		return nil, fmt.Errorf("listen unix %s: %w", path, err)
	}
	return l, nil
}
