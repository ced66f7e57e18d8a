package supervisord

// A process's fds 0, 1 and 2: StandardInput=, StandardOutput= and
// StandardError= (systemd.exec(5)), applied as systemd's exec_spawn and
// setup_input/setup_output apply them.

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/activation"
	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/units"
)

// namedFile is a socket a process may be handed, with its name in
// LISTEN_FDNAMES: one of a unit's listeners, or an Accept=yes
// instance's connection.
type namedFile struct {
	name string
	file *os.File
}

// listenerFiles returns ls as the sockets a process of the unit may be
// handed.
func listenerFiles(ls []*activation.Listener) []namedFile {
	fs := make([]namedFile, len(ls))
	for i, l := range ls {
		fs[i] = namedFile{l.Name(), l.File()}
	}
	return fs
}

// stdioSocket reports whether one of svc's standard streams is socket.
// Then, as in systemd, the process gets its one socket (the connection
// of an Accept=yes instance, else the unit's only listener) as those
// streams and nowhere else: no fd 3, no LISTEN_FDS.
func stdioSocket(svc *units.Service) bool {
	return svc.StandardInput.Kind == "socket" || svc.StandardOutput.Kind == "socket" || svc.StandardError.Kind == "socket"
}

// theSocket returns the socket of a process with a socket as a standard
// stream: systemd needs exactly one.
func theSocket(svc *units.Service, socks []namedFile) (*os.File, error) {
	if len(socks) != 1 {
		return nil, fmt.Errorf("%s: a standard stream is socket: needs exactly one socket, not %d", svc.Name, len(socks))
	}
	return socks[0].file, nil
}

// named returns the first socket named name (fd:NAME).
func named(svc *units.Service, option, name string, socks []namedFile) (*os.File, error) {
	names := make([]string, len(socks))
	for i, s := range socks {
		if s.name == name {
			return s.file, nil
		}
		names[i] = s.name
	}
	return nil, fmt.Errorf("%s: %s=fd:%s: no socket of that name (FileDescriptorName= of the sockets: %q)", svc.Name, option, name, names)
}

// stdin sets spec's Stdin from StandardInput=. It returns files to
// close once the child has started.
func stdin(svc *units.Service, spec *children.Spec, socks []namedFile) ([]*os.File, error) {
	in := svc.StandardInput
	switch in.Kind {
	case "socket":
		f, err := theSocket(svc, socks)
		spec.Stdin.File = f
		return nil, err
	case "fd":
		f, err := named(svc, "StandardInput", in.FDName, socks)
		spec.Stdin.File = f
		return nil, err
	case "data":
		spec.Stdin.Data = svc.StandardInputData
		return nil, nil
	case "file":
		// Read-write when an output is the same file:, as in systemd.
		flags := os.O_RDONLY
		for _, out := range []units.Output{svc.StandardOutput, svc.StandardError} {
			if out.Kind == "file" && out.Path == in.Path {
				flags = os.O_RDWR
			}
		}
		f, err := openStdio(in.Path, flags)
		if err != nil {
			return nil, fmt.Errorf("%s: StandardInput=file:%s: %w", svc.Name, in.Path, err)
		}
		spec.Stdin.File = f
		return []*os.File{f}, nil
	}
	return nil, nil // "null", ""
}

// outputs sets spec's Stdout and Stderr from StandardOutput=/StandardError=,
// once spec.Stdin is set. It returns files to close once the child has
// started.
//
// StandardOutput=inherit is the socket stdin is (StandardInput=socket or
// fd:), else sockd's own stdout. StandardError=inherit sends stderr where
// stdout goes, as systemd does.
func outputs(svc *units.Service, spec *children.Spec, sink func(stream, line string), socks []namedFile) ([]*os.File, error) {
	var closers []*os.File
	for _, s := range []struct {
		stream, option string
		out            units.Output
		dst            *children.Output
		std            *os.File
	}{
		{"stdout", "StandardOutput", svc.StandardOutput, &spec.Stdout, os.Stdout},
		{"stderr", "StandardError", svc.StandardError, &spec.Stderr, os.Stderr},
	} {
		stream := s.stream
		out := s.out
		if stream == "stderr" && out.Kind == "inherit" {
			if svc.StandardOutput.Kind != "journal" && svc.StandardOutput.Kind != "" {
				// The same file, even the same open file description.
				*s.dst = spec.Stdout
				continue
			}
			out = svc.StandardOutput
		}
		switch out.Kind {
		case "null":
		case "inherit":
			s.dst.File = s.std
			if k := svc.StandardInput.Kind; k == "socket" || k == "fd" {
				s.dst.File = spec.Stdin.File
			}
		case "socket":
			f, err := theSocket(svc, socks)
			if err != nil {
				return closers, err
			}
			s.dst.File = f
		case "fd":
			f, err := named(svc, s.option, out.FDName, socks)
			if err != nil {
				return closers, err
			}
			s.dst.File = f
		case "file", "append", "truncate":
			if svc.StandardInput.Kind == "file" && out.Kind == "file" && out.Path == svc.StandardInput.Path {
				s.dst.File = spec.Stdin.File // opened read-write for this
				continue
			}
			flags := os.O_WRONLY
			switch out.Kind {
			case "append":
				flags |= os.O_APPEND
			case "truncate":
				flags |= os.O_TRUNC
			}
			f, err := openStdio(out.Path, flags)
			if err != nil {
				return closers, fmt.Errorf("%s: %s=%s:%s: %w", svc.Name, s.option, out.Kind, out.Path, err)
			}
			closers = append(closers, f)
			s.dst.File = f
		default: // "journal", "": sockd's log
			s.dst.Lines = func(line string) { sink(stream, line) }
		}
	}
	return closers, nil
}

// openStdio opens path for file:PATH and its kin as systemd does: a file
// is created (0644, sockd's own umask) when opened for writing; a Unix
// stream socket at path is connected to, and shut down in the direction
// not used.
func openStdio(path string, flags int) (*os.File, error) {
	if flags&(os.O_WRONLY|os.O_RDWR) != 0 {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err == nil || !errors.Is(err, syscall.ENXIO) { // ENXIO: open(2) of a socket
		return f, err
	}
	fd, serr := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if serr != nil {
		return nil, os.NewSyscallError("socket", serr)
	}
	if cerr := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); cerr != nil {
		unix.Close(fd)
		if errors.Is(cerr, unix.ENOTSOCK) || errors.Is(cerr, unix.EINVAL) {
			return nil, err // not a socket after all: open's error
		}
		return nil, &os.PathError{Op: "connect", Path: path, Err: cerr}
	}
	switch flags & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR) {
	case os.O_RDONLY:
		serr = unix.Shutdown(fd, unix.SHUT_WR)
	case os.O_WRONLY:
		serr = unix.Shutdown(fd, unix.SHUT_RD)
	}
	if serr != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("shutdown", serr)
	}
	return os.NewFile(uintptr(fd), path), nil
}
