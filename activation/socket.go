package activation

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/ids"
	"github.com/sockd/sockd/internal/sockfile"
	"github.com/sockd/sockd/units"
)

// Default modes of systemd.socket(5), used when the unit leaves them 0.
const (
	defaultSocketMode    = 0o666
	defaultDirectoryMode = 0o755
)

// openIP creates, configures, binds and (for streams) listens on a TCP or
// UDP socket. It returns a non-blocking, close-on-exec fd.
func (l *Listener) openIP(s *units.Socket) (int, error) {
	network := l.spec.Network
	stream := strings.HasPrefix(network, "tcp")
	var ip net.IP
	var port int
	var zone string
	if stream {
		a, err := net.ResolveTCPAddr(network, l.spec.Address)
		if err != nil {
			return -1, err
		}
		ip, port, zone = a.IP, a.Port, a.Zone
	} else {
		a, err := net.ResolveUDPAddr(network, l.spec.Address)
		if err != nil {
			return -1, err
		}
		ip, port, zone = a.IP, a.Port, a.Zone
	}
	v6only := strings.HasSuffix(network, "6") || s.BindIPv6Only == "ipv6-only"
	family := unix.AF_INET6
	switch {
	case strings.HasSuffix(network, "4"):
		family = unix.AF_INET
	case ip == nil:
		// A bare port: dual-stack [::] as systemd binds it.
	case ip.To4() != nil && !v6only:
		family = unix.AF_INET
	}
	var sa unix.Sockaddr
	if family == unix.AF_INET {
		sa4 := &unix.SockaddrInet4{Port: port}
		if ip != nil {
			copy(sa4.Addr[:], ip.To4())
		}
		sa = sa4
	} else {
		sa6 := &unix.SockaddrInet6{Port: port}
		if ip != nil {
			copy(sa6.Addr[:], ip.To16())
		}
		if zone != "" {
			if ifi, err := net.InterfaceByName(zone); err == nil {
				sa6.ZoneId = uint32(ifi.Index)
			} else if n, err := strconv.Atoi(zone); err == nil {
				sa6.ZoneId = uint32(n)
			} else {
				return -1, fmt.Errorf("zone %q: %w", zone, err)
			}
		}
		sa = sa6
	}
	typ := unix.SOCK_DGRAM
	l.sockType = unix.SOCK_DGRAM
	if stream {
		typ = unix.SOCK_STREAM
		l.sockType = unix.SOCK_STREAM
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	if err := setIPOptions(fd, family, stream, s); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if family == unix.AF_INET6 {
		switch {
		case v6only:
			err = setInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1, "IPV6_V6ONLY")
		case s.BindIPv6Only == "both":
			err = setInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0, "IPV6_V6ONLY")
		}
		if err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("bind", err)
	}
	if stream {
		if err := unix.Listen(fd, backlog(s)); err != nil {
			unix.Close(fd)
			return -1, os.NewSyscallError("listen", err)
		}
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("getsockname", err)
	}
	l.addr = peerAddr(network, bound).String()
	return fd, nil
}

// backlog is the listen(2) backlog of s.
func backlog(s *units.Socket) int {
	if s.Backlog <= 0 {
		return unix.SOMAXCONN
	}
	return s.Backlog
}

// setIPOptions sets the options of an IP socket that must be set before
// bind(2), and those the accepted connections inherit.
func setIPOptions(fd, family int, stream bool, s *units.Socket) error {
	if stream {
		// As systemd does: rebinding while old connections linger in
		// TIME_WAIT must work.
		if err := setInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1, "SO_REUSEADDR"); err != nil {
			return err
		}
	}
	if s.ReusePort {
		if err := setInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1, "SO_REUSEPORT"); err != nil {
			return err
		}
	}
	if s.FreeBind {
		level, opt, name := unix.SOL_IP, unix.IP_FREEBIND, "IP_FREEBIND"
		if family == unix.AF_INET6 {
			level, opt, name = unix.SOL_IPV6, unix.IPV6_FREEBIND, "IPV6_FREEBIND"
		}
		if err := setInt(fd, level, opt, 1, name); err != nil {
			return err
		}
	}
	if s.Transparent {
		level, opt, name := unix.SOL_IP, unix.IP_TRANSPARENT, "IP_TRANSPARENT"
		if family == unix.AF_INET6 {
			level, opt, name = unix.SOL_IPV6, unix.IPV6_TRANSPARENT, "IPV6_TRANSPARENT"
		}
		if err := setInt(fd, level, opt, 1, name); err != nil {
			return err
		}
	}
	if s.BindToDevice != "" {
		if err := unix.BindToDevice(fd, s.BindToDevice); err != nil {
			return fmt.Errorf("setsockopt SO_BINDTODEVICE %s: %w", s.BindToDevice, err)
		}
	}
	if s.Broadcast {
		if err := setInt(fd, unix.SOL_SOCKET, unix.SO_BROADCAST, 1, "SO_BROADCAST"); err != nil {
			return err
		}
	}
	if err := setCommonOptions(fd, s); err != nil {
		return err
	}
	if !stream {
		return nil
	}
	if s.NoDelay {
		if err := setInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1, "TCP_NODELAY"); err != nil {
			return err
		}
	}
	if s.KeepAlive {
		if err := setInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1, "SO_KEEPALIVE"); err != nil {
			return err
		}
	}
	for _, o := range []struct {
		v    int
		opt  int
		name string
	}{
		{seconds(s.KeepAliveTime), unix.TCP_KEEPIDLE, "TCP_KEEPIDLE"},
		{seconds(s.KeepAliveInterval), unix.TCP_KEEPINTVL, "TCP_KEEPINTVL"},
		{s.KeepAliveProbes, unix.TCP_KEEPCNT, "TCP_KEEPCNT"},
	} {
		if o.v > 0 {
			if err := setInt(fd, unix.IPPROTO_TCP, o.opt, o.v, o.name); err != nil {
				return err
			}
		}
	}
	return nil
}

// seconds rounds d up to whole seconds, as the TCP_KEEP* options take.
func seconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

// setCommonOptions sets the options every socket kind takes.
// PassCredentials is for Unix sockets only: Linux refuses SO_PASSCRED on
// IP sockets.
func setCommonOptions(fd int, s *units.Socket) error {
	// As systemd does: the FORCE variant lets root go past
	// net.core.[rw]mem_max; others fall back to the capped option.
	if s.ReceiveBuffer > 0 {
		if err := setBuffer(fd, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, s.ReceiveBuffer, "SO_RCVBUF"); err != nil {
			return err
		}
	}
	if s.SendBuffer > 0 {
		if err := setBuffer(fd, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, s.SendBuffer, "SO_SNDBUF"); err != nil {
			return err
		}
	}
	return nil
}

// setBuffer sets a buffer size with the FORCE option, or the plain one
// when the caller lacks CAP_NET_ADMIN.
func setBuffer(fd, force, plain, v int, name string) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, v); err == nil {
		return nil
	}
	return setInt(fd, unix.SOL_SOCKET, plain, v, name)
}

// setInt sets an integer socket option, naming it in the error.
func setInt(fd, level, opt, v int, name string) error {
	if err := unix.SetsockoptInt(fd, level, opt, v); err != nil {
		return fmt.Errorf("setsockopt %s: %w", name, err)
	}
	return nil
}

// openUnix creates, binds and (for stream and seqpacket) listens on a Unix
// socket, in the filesystem or abstract.
func (l *Listener) openUnix(s *units.Socket) (int, error) {
	path := l.spec.Address
	typ := map[string]int{"unix": unix.SOCK_STREAM, "unixgram": unix.SOCK_DGRAM, "unixpacket": unix.SOCK_SEQPACKET}[l.spec.Network]
	l.sockType = typ
	l.addr = path
	if len(path) > len(unix.RawSockaddrUnix{}.Path)-1 {
		return -1, fmt.Errorf("path is %d bytes long, at most %d fit in a socket address", len(path), len(unix.RawSockaddrUnix{}.Path)-1)
	}
	abstract := strings.HasPrefix(path, "@")
	if !abstract {
		if err := mkdirParents(path, s.DirectoryMode); err != nil {
			return -1, err
		}
		if err := sockfile.RemoveStale(path); err != nil {
			return -1, err
		}
	}
	fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	fail := func(err error) (int, error) {
		unix.Close(fd)
		return -1, err
	}
	if err := setCommonOptions(fd, s); err != nil {
		return fail(err)
	}
	if s.PassCredentials {
		if err := setInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1, "SO_PASSCRED"); err != nil {
			return fail(err)
		}
	}
	// x/sys/unix turns a leading "@" into the abstract namespace.
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return fail(os.NewSyscallError("bind", err))
	}
	if !abstract {
		if err := l.created(path); err != nil {
			return fail(err)
		}
		if err := chmodChown(path, s); err != nil {
			l.removePaths()
			return fail(err)
		}
	}
	if typ != unix.SOCK_DGRAM {
		if err := unix.Listen(fd, backlog(s)); err != nil {
			l.removePaths()
			return fail(os.NewSyscallError("listen", err))
		}
	}
	return fd, nil
}

// mkdirParents creates the missing parent directories of path with mode
// (the umask does not apply).
func mkdirParents(path string, mode os.FileMode) error {
	if mode == 0 {
		mode = defaultDirectoryMode
	}
	dir := filepath.Dir(path)
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		if err := os.Mkdir(d, mode.Perm()); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		} else if err == nil {
			if err := os.Chmod(d, mode.Perm()); err != nil {
				return err
			}
		}
	}
	return nil
}

// chmodChown gives path the unit's SocketMode, SocketUser and SocketGroup.
func chmodChown(path string, s *units.Socket) error {
	mode := s.SocketMode
	if mode == 0 {
		mode = defaultSocketMode
	}
	if err := os.Chmod(path, mode.Perm()); err != nil {
		return err
	}
	if s.SocketUser == "" && s.SocketGroup == "" {
		return nil
	}
	uid, gid := -1, -1
	if s.SocketUser != "" {
		u, err := ids.LookupUID(s.SocketUser)
		if err != nil {
			return fmt.Errorf("SocketUser: %w", err)
		}
		uid = int(u)
	}
	if s.SocketGroup != "" {
		g, err := ids.LookupGroup(s.SocketGroup)
		if err != nil {
			return fmt.Errorf("SocketGroup: %w", err)
		}
		gid = int(g)
	}
	return os.Lchown(path, uid, gid)
}

// openFIFO creates (or reuses) a FIFO and opens it read-write, so that it
// never reports end of file.
func (l *Listener) openFIFO(s *units.Socket) (int, error) {
	path := l.spec.Address
	l.addr = path
	if err := mkdirParents(path, s.DirectoryMode); err != nil {
		return -1, err
	}
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := unix.Mkfifo(path, 0o600); err != nil {
			return -1, &os.PathError{Op: "mkfifo", Path: path, Err: err}
		}
		if err := l.created(path); err != nil {
			return -1, err
		}
	case err != nil:
		return -1, err
	case fi.Mode().Type() != os.ModeNamedPipe:
		return -1, fmt.Errorf("%s exists and is not a FIFO", path)
	}
	if err := chmodChown(path, s); err != nil {
		l.removePaths()
		return -1, err
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		l.removePaths()
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// symlink creates the unit's Symlinks= pointing at the listener's path. A
// symlink already there and pointing at the path is taken over; anything
// else there is an error.
func (l *Listener) symlink(s *units.Socket) error {
	for _, link := range s.Symlinks {
		if err := mkdirParents(link, s.DirectoryMode); err != nil {
			return err
		}
		if target, err := os.Readlink(link); err == nil {
			if target != l.addr {
				return fmt.Errorf("symlink %s: exists and points to %s", link, target)
			}
			if err := l.created(link); err != nil {
				return err
			}
			continue
		} else if _, lerr := os.Lstat(link); lerr == nil {
			return fmt.Errorf("symlink %s: exists and is not a symlink", link)
		}
		if err := os.Symlink(l.addr, link); err != nil {
			return err
		}
		if err := l.created(link); err != nil {
			return err
		}
	}
	return nil
}
