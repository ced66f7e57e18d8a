package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// maxSocketPath is the longest path a sockaddr_un holds, without its NUL.
const maxSocketPath = 107

// Listen creates the control socket at path with the given mode. A stale
// socket file (one nobody answers on) is removed first; a live one is an
// error, so two sockd never share an API socket.
//
// Precisely: the parent directory is created (0755) if missing. If a file
// exists at path and is a socket, Listen dials it: a refused connection
// means stale, and the file is removed; an answer means the socket is in
// use, and Listen fails; any other dial error is returned. A file that is
// not a socket is never removed: Listen fails. The listener does not
// unlink the file when closed (Server.Shutdown removes it). A mode of 0
// means 0600. Abstract names ("@name") are listened on as they are.
func Listen(path string, mode os.FileMode) (net.Listener, error) {
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
	if err := clearStale(path); err != nil {
		return nil, fmt.Errorf("listen unix %s: %w", path, err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err // a *net.OpError: "listen unix PATH: bind: …"
	}
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		os.Remove(path)
		return nil, fmt.Errorf("listen unix %s: %w", path, err)
	}
	return l, nil
}

// clearStale removes a socket file at path that nobody answers on.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		kind := "a " + fi.Mode().Type().String() + " file"
		switch {
		case fi.Mode().IsRegular():
			kind = "a regular file"
		case fi.IsDir():
			kind = "a directory"
		}
		return fmt.Errorf("path is %s, not a socket; not removing it", kind)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err == nil {
		c.Close()
		return fmt.Errorf("socket already in use by another process")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("check existing socket: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	return nil
}
