package activation

// Sockets a previous sockd opened, given back by the fd holder or
// systemd's fd store after sockd restarted, crashed or re-executed: the
// same socket, so the connections queued in it meanwhile are served.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/units"
)

// Reuse opens s as Open does, but takes the socket of Listen*= line i
// from held[i] (nil: none) when it is the socket that line asks for: the
// same family, type and bound address (for a FIFO, the same path). A
// held file that does not match, an extra one, or one of a unit whose
// Listen*= lines changed, is closed and the line bound afresh; Reuse
// always closes held's files (the listeners keep their own copies).
//
// A reused socket keeps its options as the previous sockd set them
// (Backlog=, buffer sizes…) and its blocking mode as the child serving
// on it now may have set it (sockd sets NonBlocking= again before the
// next child starts with no other holding it). The
// socket file of a reused Unix socket (or a reused FIFO) is removed by
// Close as if Open had made it, if it is still there. Symlinks= are not
// made again.
//
// reused[i] tells whether line i's socket is the held one.
func Reuse(s *units.Socket, held []*os.File) (_ []*Listener, reused []bool, err error) {
	defer func() {
		for _, f := range held {
			if f != nil {
				f.Close()
			}
		}
	}()
	name, err := fdName(s)
	if err != nil {
		return nil, nil, err
	}
	ls := make([]*Listener, 0, len(s.Listens))
	reused = make([]bool, len(s.Listens))
	for i, spec := range s.Listens {
		var l *Listener
		if i < len(held) && held[i] != nil {
			l, err = adopt(s, name, spec, held[i])
			reused[i] = l != nil
			// Closed before a fresh bind, which it might stand in the
			// way of (the same port with another address, say).
			held[i].Close()
			held[i] = nil
		}
		if l == nil {
			l, err = open(s, name, spec)
		}
		if err != nil {
			CloseAll(ls)
			return nil, nil, fmt.Errorf("open %s: %w", s.Name, err)
		}
		ls = append(ls, l)
	}
	return ls, reused, nil
}

// errMismatch: a held socket is not the one the Listen*= line asks for.
var errMismatch = errors.New("not the socket this line asks for")

// adopt makes a listener of f if it is spec's socket; otherwise it
// returns nil and no error, and the caller binds afresh.
func adopt(s *units.Socket, name string, spec units.Listen, f *os.File) (*Listener, error) {
	l := &Listener{name: name, spec: spec, nonBlocking: s.NonBlocking, accept: s.Accept}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, nil
	}
	fd := -1
	var merr error
	rc.Control(func(raw uintptr) {
		if merr = l.matches(int(raw)); merr == nil {
			fd, merr = unix.FcntlInt(raw, unix.F_DUPFD_CLOEXEC, 3)
		}
	})
	if merr != nil {
		return nil, nil
	}
	// The description's O_NONBLOCK is shared with whatever child serves
	// the socket now: read it, to put it back once makeFiles has made
	// the poll file (which needs it set).
	was, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		unix.Close(fd)
		return nil, nil
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, nil
	}
	if isFilesystem(spec) && !strings.HasPrefix(spec.Address, "@") {
		var st unix.Stat_t
		want := uint32(unix.S_IFSOCK)
		if spec.Network == "fifo" {
			want = unix.S_IFIFO
		}
		if unix.Lstat(spec.Address, &st) == nil && st.Mode&unix.S_IFMT == want {
			l.paths = append(l.paths, createdPath{path: spec.Address, mode: want, dev: st.Dev, ino: st.Ino})
		}
	}
	if l.accept {
		// Accept=yes: no child holds it; sockd accepts, in its mode.
		if err := l.makeFiles(fd); err != nil {
			return nil, err
		}
		return l, nil
	}
	if err := l.makeFilesMode(fd, false); err != nil {
		return nil, err
	}
	// makeFiles made its file from a blocking description (for a few
	// microseconds the description was so): put back what it was, for
	// the child that may serve on it now. The unit's own mode is set
	// again only when no child holds the socket (Listener.ResetMode).
	if err := unix.SetNonblock(int(l.file.Fd()), was&unix.O_NONBLOCK != 0); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// matches checks that fd is the socket (or FIFO) of l.spec, and sets
// l.addr and l.sockType from it.
func (l *Listener) matches(fd int) error {
	spec := l.spec
	if spec.Network == "fifo" {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
			return errMismatch
		}
		if p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd)); err != nil || p != spec.Address {
			return errMismatch
		}
		l.addr = spec.Address
		return nil
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return errMismatch
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		return errMismatch
	}
	switch spec.Network {
	case "unix", "unixgram", "unixpacket":
		want := map[string]int{"unix": unix.SOCK_STREAM, "unixgram": unix.SOCK_DGRAM, "unixpacket": unix.SOCK_SEQPACKET}[spec.Network]
		sa, ok := bound.(*unix.SockaddrUnix)
		if !ok || typ != want || sa.Name != spec.Address {
			return errMismatch
		}
		l.addr, l.sockType = spec.Address, typ
	default: // tcp*, udp*
		stream := strings.HasPrefix(spec.Network, "tcp")
		want := unix.SOCK_DGRAM
		if stream {
			want = unix.SOCK_STREAM
		}
		if typ != want || !sameIPAddr(spec, bound) {
			return errMismatch
		}
		if stream {
			if on, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || on != 1 {
				return errMismatch
			}
		}
		l.addr, l.sockType = peerAddr(spec.Network, bound).String(), typ
	}
	return nil
}

// sameIPAddr reports whether bound is the address spec asks for: the
// same port (any, for port 0) and the same IP, a bare port matching the
// wildcard of either family.
func sameIPAddr(spec units.Listen, bound unix.Sockaddr) bool {
	host, portText, err := net.SplitHostPort(spec.Address)
	if err != nil {
		return false
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		if port, err = net.LookupPort(spec.Network, portText); err != nil {
			return false
		}
	}
	var ip net.IP
	var bport int
	switch sa := bound.(type) {
	case *unix.SockaddrInet4:
		ip, bport = net.IP(sa.Addr[:]), sa.Port
	case *unix.SockaddrInet6:
		ip, bport = net.IP(sa.Addr[:]), sa.Port
	default:
		return false
	}
	if port != 0 && port != bport {
		return false
	}
	if host == "" {
		return ip.IsUnspecified()
	}
	if i := strings.IndexByte(host, '%'); i >= 0 {
		host = host[:i]
	}
	want := net.ParseIP(host)
	if want == nil {
		return false
	}
	// Equal takes an IPv4 address and its IPv4-mapped IPv6 form as one,
	// as a dual-stack socket bound to either would be.
	return want.Equal(ip)
}
