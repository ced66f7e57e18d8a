package activation

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/ids"
	"github.com/sockd/sockd/internal/nofollow"
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
	l.warnings = setSoftOptions(fd, family, typ, s)
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
	return setKeepAliveTimes(fd, s)
}

// setKeepAliveTimes sets KeepAliveTimeSec=, KeepAliveIntervalSec= and
// KeepAliveProbes= on a TCP socket, each only if the unit sets it (the
// kernel refuses 0).
func setKeepAliveTimes(fd int, s *units.Socket) error {
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

// seconds rounds d up to whole seconds, as the TCP_KEEP* options take;
// a span too long for them (infinity) gives the largest int32, which the
// kernel refuses with an error naming the option rather than a value
// that overflowed to "unset".
func seconds(d time.Duration) int {
	const most = 1<<31 - 1
	if d <= 0 {
		return 0
	}
	if d > most*time.Second {
		return most
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
//
// A filesystem socket gets its mode from the umask at bind time and its
// owner through an O_PATH descriptor of the file just bound, as systemd
// does: nothing is changed by path after the bind, so a symlink swapped
// in by whoever can write the socket's directory is never followed.
func (l *Listener) openUnix(s *units.Socket) (int, error) {
	path := l.spec.Address
	typ := map[string]int{"unix": unix.SOCK_STREAM, "unixgram": unix.SOCK_DGRAM, "unixpacket": unix.SOCK_SEQPACKET}[l.spec.Network]
	l.sockType = typ
	l.addr = path
	if len(path) > len(unix.RawSockaddrUnix{}.Path)-1 {
		return -1, fmt.Errorf("path is %d bytes long, at most %d fit in a socket address", len(path), len(unix.RawSockaddrUnix{}.Path)-1)
	}
	abstract := strings.HasPrefix(path, "@")
	var dir *nofollow.Dir
	if !abstract {
		var err error
		if dir, err = openParent(path, s.DirectoryMode); err != nil {
			return -1, err
		}
		defer dir.Close()
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
	l.warnings = setSoftOptions(fd, unix.AF_UNIX, typ, s)
	if s.PassCredentials {
		if err := setInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1, "SO_PASSCRED"); err != nil {
			return fail(err)
		}
	}
	// x/sys/unix turns a leading "@" into the abstract namespace.
	sa := &unix.SockaddrUnix{Name: path}
	if abstract {
		err = unix.Bind(fd, sa)
	} else {
		err = bindUmask(fd, sa, socketMode(s))
	}
	if err != nil {
		return fail(os.NewSyscallError("bind", err))
	}
	if !abstract {
		if err := l.chownSocket(dir, path, s); err != nil {
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

// socketMode is the unit's SocketMode=, or systemd's default.
func socketMode(s *units.Socket) uint32 {
	if s.SocketMode == 0 {
		return defaultSocketMode
	}
	return uint32(s.SocketMode.Perm())
}

// umaskMu serializes the binds of bindUmask.
var umaskMu sync.Mutex

// bindUmask binds the Unix socket fd to sa with the umask that gives the
// socket file mode, so that the file is created with its final mode and
// never changed by path afterwards (unix(7): the file's permissions are
// 0777 less the umask).
//
// The umask belongs to the process (its fs_struct, umask(2)), so the bind
// runs on an OS thread of its own that first leaves the process's
// fs_struct with unshare(CLONE_FS) and exits when the bind is done: no
// other goroutine of sockd sees that umask. Where unshare is refused (a
// seccomp filter), the process-wide umask is set for the bind alone,
// under umaskMu; a file another goroutine creates in that window gets it
// too, which is one reason sockd gives the directories it makes their
// mode with fchmod, and why children never inherit sockd's umask: the
// exec helper sets each one's UMask= explicitly (children/helper.go).
func bindUmask(fd int, sa unix.Sockaddr, mode uint32) error {
	mask := int(^mode & 0o777)
	umaskMu.Lock()
	defer umaskMu.Unlock()
	done := make(chan error, 1)
	go func() {
		// Never unlocked: after unshare the thread's fs_struct is its
		// own, and the runtime ends a thread still locked when its
		// goroutine exits.
		runtime.LockOSThread()
		if unix.Unshare(unix.CLONE_FS) != nil {
			runtime.UnlockOSThread() // the process's fs_struct still
		}
		old := unix.Umask(mask)
		err := unix.Bind(fd, sa)
		unix.Umask(old)
		done <- err
	}()
	return <-done
}

// errReplaced is the error of a socket file or FIFO that was swapped for
// something else between its creation and the setting of its owner.
var errReplaced = errors.New("replaced by another file while sockd set it up; is its directory writable by others?")

// chownSocket records the socket file just bound at path, in dir, as
// created by Open and gives it SocketUser= and SocketGroup=. It works on
// an O_PATH|O_NOFOLLOW descriptor of the file, checked first to be what
// the bind made: a socket, owned by sockd's effective uid, with the mode
// the umask gave (or less: a default ACL of dir may take bits away;
// those are then set through the descriptor). A symlink or any other
// file found there instead is never changed, and the error wraps
// errReplaced.
func (l *Listener) chownSocket(dir *nofollow.Dir, path string, s *units.Socket) error {
	name := filepath.Base(path)
	fd, err := unix.Openat(dir.Fd(), name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ENOENT {
			return &os.PathError{Op: "open", Path: path, Err: errReplaced}
		}
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	mode := socketMode(s)
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK || int(st.Uid) != os.Geteuid() || st.Mode&0o7777&^mode != 0 {
		return &os.PathError{Op: "bind", Path: path, Err: errReplaced}
	}
	l.paths = append(l.paths, createdPath{path: path, mode: unix.S_IFSOCK, dev: st.Dev, ino: st.Ino})
	proc := "/proc/self/fd/" + strconv.Itoa(fd)
	if st.Mode&0o7777 != mode {
		// chmod(2) through the magic link reaches the inode fd holds,
		// whatever the path now names; fchmod refuses O_PATH fds.
		if err := unix.Chmod(proc, mode); err != nil {
			return &os.PathError{Op: "chmod", Path: path, Err: err}
		}
	}
	uid, gid, err := owner(s)
	if err != nil || (uid < 0 && gid < 0) {
		return err
	}
	if err := unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "chown", Path: path, Err: err}
	}
	return nil
}

// owner returns the uid and gid of SocketUser= and SocketGroup=, -1 for
// one that is not set.
func owner(s *units.Socket) (uid, gid int, err error) {
	uid, gid = -1, -1
	if s.SocketUser != "" {
		u, err := ids.LookupUID(s.SocketUser)
		if err != nil {
			return -1, -1, fmt.Errorf("SocketUser: %w", err)
		}
		uid = int(u)
	}
	if s.SocketGroup != "" {
		g, err := ids.LookupGroup(s.SocketGroup)
		if err != nil {
			return -1, -1, fmt.Errorf("SocketGroup: %w", err)
		}
		gid = int(g)
	}
	return uid, gid, nil
}

// openParent opens the directory path is in, creating the missing
// directories with mode (DirectoryMode=, or systemd's default 0755).
// Directories that exist are taken as they are, symlinks included: their
// paths are configuration (/var/run is a symlink to /run). Missing ones
// are made with mkdirat(2) in the deepest existing one, each opened with
// O_NOFOLLOW before the next is made in it, and given mode with fchmod,
// whatever the umask; a symlink swapped in for one of them is refused,
// and a directory someone else made first is used but not changed.
func openParent(path string, mode os.FileMode) (*nofollow.Dir, error) {
	if mode == 0 {
		mode = defaultDirectoryMode
	}
	dir := filepath.Dir(path)
	top := dir
	for {
		if _, err := os.Stat(top); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		up := filepath.Dir(top)
		if up == top {
			break
		}
		top = up
	}
	d, err := nofollow.Open(top)
	if err != nil || top == dir {
		return d, err
	}
	rel, err := filepath.Rel(top, dir)
	if err != nil {
		d.Close()
		return nil, err
	}
	sub, _, err := d.OpenDir(rel, true, uint32(mode.Perm()))
	d.Close()
	return sub, err
}

// openFIFO creates (or reuses) a FIFO and opens it read-write, so that it
// never reports end of file. The FIFO is opened with O_NOFOLLOW in its
// directory, and its mode and owner are set through that descriptor.
func (l *Listener) openFIFO(s *units.Socket) (int, error) {
	path := l.spec.Address
	l.addr = path
	dir, err := openParent(path, s.DirectoryMode)
	if err != nil {
		return -1, err
	}
	defer dir.Close()
	name := filepath.Base(path)
	mode := socketMode(s)
	err = unix.Mkfifoat(dir.Fd(), name, 0o600)
	made := err == nil
	if err != nil && err != unix.EEXIST {
		return -1, &os.PathError{Op: "mkfifo", Path: path, Err: err}
	}
	fd, err := unix.Openat(dir.Fd(), name, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		if err == unix.ELOOP {
			return -1, fmt.Errorf("%s exists and is not a FIFO", path)
		}
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		unix.Close(fd)
		return -1, fmt.Errorf("%s exists and is not a FIFO", path)
	}
	switch {
	case made && int(st.Uid) != os.Geteuid():
		unix.Close(fd)
		return -1, &os.PathError{Op: "mkfifo", Path: path, Err: errReplaced}
	case made:
		l.paths = append(l.paths, createdPath{path: path, mode: unix.S_IFIFO, dev: st.Dev, ino: st.Ino})
	case st.Nlink != 1:
		// A hard link to a FIFO elsewhere: its mode and owner are not
		// this unit's to set.
		unix.Close(fd)
		return -1, fmt.Errorf("%s is a FIFO with %d links; refusing to change it", path, st.Nlink)
	}
	fail := func(err error) (int, error) {
		unix.Close(fd)
		l.removePaths()
		return -1, err
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return fail(&os.PathError{Op: "chmod", Path: path, Err: err})
	}
	uid, gid, err := owner(s)
	if err != nil {
		return fail(err)
	}
	if uid >= 0 || gid >= 0 {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return fail(&os.PathError{Op: "chown", Path: path, Err: err})
		}
	}
	l.warnings = setSoftOptions(fd, 0, 0, s)
	return fd, nil
}

// symlink creates the unit's Symlinks= pointing at the listener's path. A
// symlink already there and pointing at the path is taken over; anything
// else there is an error. Missing directories are made as openParent
// makes them, and each symlink is made in its directory's descriptor.
func (l *Listener) symlink(s *units.Socket) error {
	for _, link := range s.Symlinks {
		if err := l.symlinkOne(link, s.DirectoryMode); err != nil {
			return err
		}
	}
	return nil
}

func (l *Listener) symlinkOne(link string, mode os.FileMode) error {
	dir, err := openParent(link, mode)
	if err != nil {
		return err
	}
	defer dir.Close()
	name := filepath.Base(link)
	if target, err := dir.Readlink(name); err == nil {
		if target != l.addr {
			return fmt.Errorf("symlink %s: exists and points to %s", link, target)
		}
	} else if _, lerr := dir.Lstat(name); lerr == nil {
		return fmt.Errorf("symlink %s: exists and is not a symlink", link)
	} else if err := dir.Symlink(l.addr, name); err != nil {
		return err
	}
	st, err := dir.Lstat(name)
	if err != nil {
		return err
	}
	if !nofollow.IsSymlink(st) {
		return fmt.Errorf("symlink %s: %w", link, errReplaced)
	}
	l.paths = append(l.paths, createdPath{path: link, mode: unix.S_IFLNK, dev: st.Dev, ino: st.Ino})
	return nil
}
