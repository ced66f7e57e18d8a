// Command floor is the bench's floor for loading units: a plain program
// that does the least sockd's load must do. It reads every file of a
// unit directory (os.ReadFile), finds each ListenStream= of the .socket
// files, and binds and listens on that address (a path: a Unix socket;
// otherwise TCP), one socket(2), bind(2) and listen(2) each. Then it
// prints "floor ready N" on stdout and waits for stdin to close, so that
// the bench can check every socket listens, and exits, which closes them
// (and unlinks the Unix sockets' files).
//
//	floor DIR
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: floor DIR")
		os.Exit(2)
	}
	n, paths, err := load(os.Args[1])
	defer func() {
		for _, p := range paths {
			os.Remove(p)
		}
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
	fmt.Printf("floor ready %d\n", n)
	io.Copy(io.Discard, bufio.NewReader(os.Stdin))
}

// load binds every ListenStream= of dir's .socket files; it returns how
// many listen and the Unix sockets' paths.
func load(dir string) (int, []string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, nil, err
	}
	var paths []string
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return n, paths, err
		}
		if !strings.HasSuffix(e.Name(), ".socket") {
			continue
		}
		for line := range bytes.Lines(b) {
			addr, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("ListenStream="))
			if !ok {
				continue
			}
			if err := listen(string(addr)); err != nil {
				return n, paths, fmt.Errorf("%s: %w", e.Name(), err)
			}
			if addr[0] == '/' {
				paths = append(paths, string(addr))
			}
			n++
		}
	}
	return n, paths, nil
}

// listen opens a listening socket on addr, a path or IPv4 HOST:PORT,
// and leaves it open.
func listen(addr string) error {
	var (
		family int
		sa     unix.Sockaddr
	)
	if addr[0] == '/' {
		family, sa = unix.AF_UNIX, &unix.SockaddrUnix{Name: addr}
	} else {
		host, port, ok := strings.Cut(addr, ":")
		var ip [4]byte
		var p int
		if _, err := fmt.Sscanf(host, "%d.%d.%d.%d", &ip[0], &ip[1], &ip[2], &ip[3]); !ok || err != nil {
			return fmt.Errorf("address %q: not IPv4 HOST:PORT", addr)
		}
		if _, err := fmt.Sscanf(port, "%d", &p); err != nil {
			return fmt.Errorf("address %q: %w", addr, err)
		}
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Addr: ip, Port: p}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("socket %s: %w", addr, err)
	}
	if family == unix.AF_INET {
		// As sockd and every server do, so that a port in TIME_WAIT binds.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fmt.Errorf("setsockopt %s: %w", addr, err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind %s: %w", addr, err)
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	return nil
}
