// Package activation turns socket units into open listening sockets owned
// by sockd, waits for the first connection without accepting it, and
// builds the LISTEN_FDS / LISTEN_FDNAMES environment of the systemd
// socket-activation protocol (sd_listen_fds(3)). LISTEN_PID is set by the
// child itself, through children.Spec.PIDEnv.
//
// Every Listener holds two descriptors of the same open file description:
// one registered with the Go runtime's netpoller, which Wait and Accept
// use, and the one File returns for children. Both are close-on-exec in
// sockd. Because O_NONBLOCK belongs to the open file description, the
// mode File sets is shared by both and by every child holding the
// socket; sockd itself never reads from or accepts on a socket it hands
// to children, so the mode only matters to them.
package activation

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/sockfile"
	"github.com/sockd/sockd/units"
)

// Listener is one open socket (or FIFO) of a socket unit. sockd owns it
// for the unit's whole life; children receive File().
type Listener struct {
	name string
	spec units.Listen
	// addr is the bound address: the real port for IP sockets, the path
	// or "@name" for Unix sockets, the path for FIFOs.
	addr string
	// sockType is unix.SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET; 0 for
	// a FIFO.
	sockType int
	// nonBlocking is the unit's NonBlocking=: the mode of File and of
	// accepted connections.
	nonBlocking bool
	// accept is the unit's Accept=: the listener stays non-blocking.
	accept bool

	file *os.File // created from a blocking fd: Fd() never flips it
	// ino is the socket's (or FIFO's) inode, read once when file is
	// made: how sock_diag names the socket.
	ino uint64

	// poll is a dup of file registered with the netpoller, for Wait and
	// Accept. It exists only while sockd waits on the socket (always for
	// Accept=yes): while a child serves, the Go runtime's epoll set does
	// not hold the socket, so no connection wakes sockd (a Waiter's set
	// holds it with an empty mask: only its death is reported).
	pollMu sync.Mutex
	poll   *os.File
	closed bool
	// forget takes the listener out of a Waiter's set (watchFD); Close
	// calls it before the fd closes.
	forget func()

	// paths are the filesystem entries Open created, removed by Close.
	paths []createdPath

	closeOnce sync.Once
	closeErr  error

	// warnings are the options the kernel refused at the open or the
	// last Update that do not fail the socket (sockopts.go).
	warnings []error
}

// createdPath is a file Open created: a socket, a FIFO or a symlink. Close
// removes it only if it is still that same file.
type createdPath struct {
	path string
	mode uint32 // unix.S_IFSOCK, S_IFIFO or S_IFLNK
	dev  uint64
	ino  uint64
}

// Open binds every Listen*= line of s with s's options, in order. It is
// all or nothing: if one fails, those already open are closed and the
// error names the socket unit, the address and the cause.
//
// A zero SocketMode or DirectoryMode means systemd's default (0666,
// 0755); a Backlog of 0 or less means SOMAXCONN. The files Open creates
// (socket files, FIFOs, Symlinks=) are removed by Close whatever
// RemoveOnStop says; a FIFO that already existed is reused and kept.
func Open(s *units.Socket) ([]*Listener, error) {
	name, err := fdName(s)
	if err != nil {
		return nil, err
	}
	if len(s.Symlinks) > 0 {
		n := 0
		for _, spec := range s.Listens {
			if isFilesystem(spec) {
				n++
			}
		}
		if n != 1 {
			return nil, fmt.Errorf("open %s: Symlinks= needs exactly one filesystem socket or FIFO, the unit has %d", s.Name, n)
		}
	}
	ls := make([]*Listener, 0, len(s.Listens))
	for _, spec := range s.Listens {
		l, err := open(s, name, spec)
		if err != nil {
			CloseAll(ls)
			return nil, fmt.Errorf("open %s: %w", s.Name, err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// OpenOne binds the i-th Listen*= line of s alone, with s's options, as
// Open does: to replace one socket that died.
func OpenOne(s *units.Socket, i int) (*Listener, error) {
	if i < 0 || i >= len(s.Listens) {
		return nil, fmt.Errorf("open %s: no Listen line %d", s.Name, i)
	}
	name, err := fdName(s)
	if err != nil {
		return nil, err
	}
	l, err := open(s, name, s.Listens[i])
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", s.Name, err)
	}
	return l, nil
}

// fdName is s's name in LISTEN_FDNAMES: FileDescriptorName=, else the
// socket unit's name, ".socket" included, as systemd names it.
func fdName(s *units.Socket) (string, error) {
	name := s.FileDescriptorName
	if name == "" {
		name = s.Name
	}
	if err := checkFDName(name); err != nil {
		return "", fmt.Errorf("open %s: FileDescriptorName %q: %w", s.Name, name, err)
	}
	return name, nil
}

// checkFDName applies sd_notify(3)'s rules for FDNAME=: at most 255
// printable ASCII characters, no colon.
func checkFDName(name string) error {
	if name == "" || len(name) > 255 {
		return errors.New("must be 1 to 255 characters")
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c >= 0x7f || c == ':' {
			return errors.New("must be printable ASCII without spaces or colons")
		}
	}
	return nil
}

// isFilesystem tells whether spec names a path in the filesystem.
func isFilesystem(spec units.Listen) bool {
	switch spec.Network {
	case "fifo":
		return true
	case "unix", "unixgram", "unixpacket":
		return !strings.HasPrefix(spec.Address, "@")
	}
	return false
}

// open opens one Listen*= line.
func open(s *units.Socket, name string, spec units.Listen) (_ *Listener, err error) {
	l := &Listener{name: name, spec: spec, nonBlocking: s.NonBlocking, accept: s.Accept}
	op := "listen " + spec.Network + " " + spec.Address
	defer func() {
		if err != nil {
			l.removePaths()
			err = fmt.Errorf("%s: %w", op, err)
		}
	}()
	var fd int
	switch spec.Network {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
		fd, err = l.openIP(s)
	case "unix", "unixgram", "unixpacket":
		fd, err = l.openUnix(s)
	case "fifo":
		fd, err = l.openFIFO(s)
	default:
		return nil, fmt.Errorf("unknown network %q", spec.Network)
	}
	if err != nil {
		return nil, err
	}
	if len(s.Symlinks) > 0 && isFilesystem(spec) {
		if err := l.symlink(s); err != nil {
			unix.Close(fd)
			return nil, err
		}
	}
	if err := l.makeFiles(fd); err != nil {
		return nil, err
	}
	return l, nil
}

// makeFiles wraps fd, which is non-blocking and close-on-exec, into the
// pollable file Wait uses and the blocking-created file children get.
func (l *Listener) makeFiles(fd int) error { return l.makeFilesMode(fd, true) }

// makeFilesMode is makeFiles that sets the unit's mode on the open file
// description only if setMode: a reused socket may be served by a child
// right now, whose mode sockd must not change under it.
func (l *Listener) makeFilesMode(fd int, setMode bool) error {
	// fd is non-blocking: os.NewFile registers it with the netpoller.
	l.poll = os.NewFile(uintptr(fd), l.spec.Network+":"+l.addr)
	d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		l.poll.Close()
		return os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
	}
	// The description is blocking when os.NewFile sees it, so the
	// *os.File is not pollable and its Fd() (called by exec.Cmd on
	// ExtraFiles) never changes the mode behind our back.
	if err := unix.SetNonblock(d, false); err != nil {
		unix.Close(d)
		l.poll.Close()
		return os.NewSyscallError("fcntl F_SETFL", err)
	}
	var st unix.Stat_t
	if unix.Fstat(d, &st) == nil {
		l.ino = st.Ino
	}
	l.file = os.NewFile(uintptr(d), l.name)
	if !setMode {
		// Neither the blocking mode the dup of fd got from its
		// description nor the poll file's: the description stays as
		// the child left it.
		if !l.accept {
			l.poll.Close()
			l.poll = nil
		}
		return nil
	}
	if err := l.setMode(); err != nil {
		l.file.Close()
		l.poll.Close()
		return err
	}
	if !l.accept {
		l.poll.Close() // made again by the next Wait
		l.poll = nil
	}
	return nil
}

// pollFile returns the listener's netpoller-registered file, making it
// if need be: a dup of file, switched to non-blocking (which, on the
// shared open file description, children would see too: Wait is for a
// socket no child holds, and releasePoll puts the mode back).
func (l *Listener) pollFile() (*os.File, error) {
	l.pollMu.Lock()
	defer l.pollMu.Unlock()
	if l.closed {
		return nil, os.ErrClosed
	}
	if l.poll != nil {
		return l.poll, nil
	}
	rc, err := l.file.SyscallConn()
	if err != nil {
		return nil, err
	}
	d := -1
	var serr error
	if err := rc.Control(func(fd uintptr) {
		d, serr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3)
		if serr == nil {
			if serr = unix.SetNonblock(d, true); serr != nil {
				unix.Close(d)
			}
		}
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, os.NewSyscallError("fcntl", serr)
	}
	// Non-blocking when os.NewFile sees it: registered with the netpoller.
	l.poll = os.NewFile(uintptr(d), l.spec.Network+":"+l.addr)
	return l.poll, nil
}

// releasePoll closes the poll file (removing the socket from the
// netpoller's epoll set) unless the listener is Accept=yes.
func (l *Listener) releasePoll() {
	l.pollMu.Lock()
	defer l.pollMu.Unlock()
	if l.poll != nil && !l.accept {
		l.poll.Close()
		l.poll = nil
		// pollFile made the shared description non-blocking; no child
		// holds the socket while sockd waits: put the unit's mode back.
		_ = l.setMode()
	}
}

// setMode puts the shared open file description in the unit's mode.
func (l *Listener) setMode() error {
	rc, err := l.file.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		// Accept=yes listeners stay non-blocking: sockd accepts on
		// them and never hands them to a child.
		serr = unix.SetNonblock(int(fd), l.nonBlocking || l.accept)
	}); err != nil {
		return err
	}
	if serr != nil {
		return os.NewSyscallError("fcntl F_SETFL", serr)
	}
	return nil
}

// Name returns the name of the listener's fd in LISTEN_FDNAMES.
func (l *Listener) Name() string { return l.name }

// Spec returns the Listen*= line the listener was opened from.
func (l *Listener) Spec() units.Listen { return l.spec }

// Addr returns the address the listener is bound to: "host:port" for IP
// sockets with the real port when the unit asked for port 0, the path or
// "@name" for Unix sockets, the path for FIFOs.
func (l *Listener) Addr() string { return l.addr }

// File returns the fd to hand to children as one of fds 3, 4, …. It is
// the same *os.File on every call, close-on-exec in sockd. Callers must
// not close it. File does not touch the mode: O_NONBLOCK lives on the
// open file description that every child of the unit shares, so changing
// it while a child serves (during an overlapping restart) would switch
// that child's accept loop between blocking and non-blocking under it.
// Call ResetMode when no child holds the socket.
func (l *Listener) File() *os.File { return l.file }

// Inode returns the inode of the socket (or FIFO), as fstat(2) gives
// it and as sock_diag(7) names the socket; 0 if unknown. It is read once,
// when the listener is made, and stays valid after Close.
func (l *Listener) Inode() uint64 { return l.ino }

// ResetMode puts the shared open file description back in the unit's
// mode: blocking unless NonBlocking=yes (Accept=yes listeners stay
// non-blocking: sockd accepts on them). A child may have changed it (Go's
// net.FileListener sets O_NONBLOCK); call ResetMode before starting a
// child while no other child holds the socket.
func (l *Listener) ResetMode() error { return l.setMode() }

// Close closes the socket and removes the socket file, its symlinks and
// FIFOs that Open created. Closing twice is harmless.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		l.pollMu.Lock()
		forget := l.forget
		l.pollMu.Unlock()
		if forget != nil {
			forget()
		}
		errs := []error{l.removePaths()}
		l.pollMu.Lock()
		l.closed = true
		if l.poll != nil {
			if err := l.poll.Close(); err != nil {
				errs = append(errs, err)
			}
			l.poll = nil
		}
		l.pollMu.Unlock()
		if err := l.file.Close(); err != nil {
			errs = append(errs, err)
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

// removePaths removes the files Open created, symlinks first, each only
// if it is still the file Open created.
func (l *Listener) removePaths() error {
	var errs []error
	for i := len(l.paths) - 1; i >= 0; i-- {
		p := l.paths[i]
		var st unix.Stat_t
		if err := unix.Lstat(p.path, &st); err != nil {
			continue // gone already
		}
		if st.Mode&unix.S_IFMT != p.mode || st.Dev != p.dev || st.Ino != p.ino {
			continue // replaced by someone else: not ours any more
		}
		remove := os.Remove
		if p.mode == unix.S_IFSOCK {
			remove = sockfile.Remove
		}
		if err := remove(p.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	l.paths = nil
	return errors.Join(errs...)
}

// Env returns LISTEN_FDS=N and LISTEN_FDNAMES=a:b:… for ls passed as
// fds 3, 4, … in order. It does not set LISTEN_PID.
func Env(ls []*Listener) []string {
	names := make([]string, len(ls))
	for i, l := range ls {
		names[i] = l.name
	}
	return []string{
		"LISTEN_FDS=" + strconv.Itoa(len(ls)),
		"LISTEN_FDNAMES=" + strings.Join(names, ":"),
	}
}

// Files returns File() of every listener of ls, in order: the ExtraFiles
// of a child that receives ls as fds 3, 4, ….
func Files(ls []*Listener) []*os.File {
	fs := make([]*os.File, len(ls))
	for i, l := range ls {
		fs[i] = l.File()
	}
	return fs
}

// CloseAll closes every listener of ls.
func CloseAll(ls []*Listener) {
	for _, l := range ls {
		_ = l.Close()
	}
}

// peerAddr converts an accepted peer's socket address.
func peerAddr(network string, sa unix.Sockaddr) net.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}
	case *unix.SockaddrInet6:
		zone := ""
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				zone = ifi.Name
			} else {
				zone = strconv.Itoa(int(sa.ZoneId))
			}
		}
		return &net.TCPAddr{IP: append(net.IP(nil), sa.Addr[:]...), Port: sa.Port, Zone: zone}
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: sa.Name, Net: network}
	}
	return nil
}
