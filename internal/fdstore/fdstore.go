// Package fdstore is sockd's side of systemd's file descriptor store:
// when sockd runs as a systemd service (Type=notify with
// FileDescriptorStoreMax= set), it hands systemd a copy of every
// listening socket (Put), and after a restart or a crash takes them back
// (Inherited), so that `systemctl restart sockd` closes no socket and a
// client that connects in between waits in the queue instead of being
// refused.
//
// The protocol is sd_notify(3)'s FDSTORE=1, FDNAME=, FDPOLL=0 and
// FDSTOREREMOVE=1 sent to $NOTIFY_SOCKET, and sd_listen_fds(3)'s
// LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES on the way back; see
// systemd.service(5) FileDescriptorStoreMax= and
// https://systemd.io/FILE_DESCRIPTOR_STORE/.
//
// The service needs FileDescriptorStoreMax= at least the number of
// sockets sockd puts (systemd drops the rest, saying so only in its
// log). systemd keeps the store while the service restarts, by Restart=
// or `systemctl restart`, and empties it when the service stops for good.
//
// Harness plays systemd's side, for tests.
package fdstore

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// MaxNameLen is the longest name systemd accepts (FDNAME_MAX).
const MaxNameLen = 255

// sendTimeout bounds one datagram to systemd. A send waits only while
// systemd's queue is full; a systemd that stays stuck that long should
// cost sockd an error, not a hung goroutine.
const sendTimeout = 10 * time.Second

// Store is sockd's handle on systemd's fd store. A nil *Store (sockd not
// started by systemd) does nothing: its methods return nil.
type Store struct {
	addr string // a path, or "@" and an abstract name
}

// Open returns the store of the service manager named by $NOTIFY_SOCKET,
// or nil when the variable is unset or empty. Call it at start, before
// anything unsets the variable (daemon.SdNotify(true, …) does). An
// address starting with '@' is abstract. Open does not connect: a wrong
// address shows in the first Put.
func Open() *Store {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	return &Store{addr: path}
}

// Put makes f the one fd the store holds under name: it removes what the
// store held under name, then stores a copy of f. f stays open and its
// flags are left as they are; closing it later does not affect the
// store's copy.
//
// The copy is stored with FDPOLL=0: systemd then keeps it until Remove,
// a later Put of the name or the service's full stop, instead of dropping
// it at the first EPOLLERR or EPOLLHUP it sees. sockd decides which
// sockets live; systemd dropping one on a transient error (an ICMP error
// queued on a UDP socket, a netlink socket's ENOBUFS) would lose it at
// the next restart without sockd ever knowing. (systemd before 246
// ignores FDPOLL=0 and polls.)
//
// systemd keeps one copy of each open file: a Put of a socket the store
// already holds under another name leaves it under that name. It refuses
// fds beyond FileDescriptorStoreMax= and says so only in its log, and
// accepts them only from the service's main process.
//
// A crash between the removal and the store loses name's socket from the
// store (sockd still had it, and lost it too by crashing).
func (s *Store) Put(name string, f *os.File) error {
	if s == nil {
		return nil
	}
	if err := CheckName(name); err != nil {
		return fmt.Errorf("fdstore: put %q: %w", name, err)
	}
	if f == nil {
		return fmt.Errorf("fdstore: put %q: nil file", name)
	}
	if err := s.send("FDSTOREREMOVE=1\nFDNAME=" + name + "\n"); err != nil {
		return fmt.Errorf("fdstore: put %q: %w", name, err)
	}
	if err := s.sendFile("FDSTORE=1\nFDPOLL=0\nFDNAME="+name+"\n", f); err != nil {
		return fmt.Errorf("fdstore: put %q: %w", name, err)
	}
	return nil
}

// Remove closes every fd the store holds under name; a name it does not
// hold is not an error.
func (s *Store) Remove(name string) error {
	if s == nil {
		return nil
	}
	if err := CheckName(name); err != nil {
		return fmt.Errorf("fdstore: remove %q: %w", name, err)
	}
	if err := s.send("FDSTOREREMOVE=1\nFDNAME=" + name + "\n"); err != nil {
		return fmt.Errorf("fdstore: remove %q: %w", name, err)
	}
	return nil
}

// sendFile sends msg with f's fd.
func (s *Store) sendFile(msg string, f *os.File) error {
	// (*os.File).Fd would put a socket into blocking mode, for sockd
	// too: the flag lives on the open file description.
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var sendErr error
	err = rc.Control(func(fd uintptr) { sendErr = s.send(msg, int(fd)) })
	if err != nil {
		return err
	}
	return sendErr
}

// send sends one notification, with fds as SCM_RIGHTS, from a socket of
// its own, as sd_pid_notify_with_fds does. (A connected net.UnixConn
// cannot send control messages, and an unconnected one needs a local
// address.)
func (s *Store) send(msg string, fds ...int) error {
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(sock)
	tv := unix.NsecToTimeval(sendTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(sock, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	// x/sys/unix puts an address starting with '@' in the abstract
	// namespace, as sd_notify does.
	if err := unix.Sendmsg(sock, []byte(msg), oob, &unix.SockaddrUnix{Name: s.addr}, unix.MSG_NOSIGNAL); err != nil {
		return fmt.Errorf("sendmsg %s: %w", s.addr, err)
	}
	return nil
}

// Name errors.
var (
	ErrNameEmpty   = errors.New("empty name")
	ErrNameTooLong = fmt.Errorf("name longer than %d bytes", MaxNameLen)
	ErrNameInvalid = errors.New("name holds a byte that is not printable ASCII, or ':'")
)

// CheckName returns nil when name can name an fd in the store: 1 to 255
// bytes of printable ASCII but ':', which separates the names in
// LISTEN_FDNAMES. (systemd also takes an empty name, which could not be
// told apart in LISTEN_FDNAMES from a missing one.)
func CheckName(name string) error {
	switch {
	case name == "":
		return ErrNameEmpty
	case len(name) > MaxNameLen:
		return ErrNameTooLong
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < ' ' || c > '~' || c == ':' {
			return ErrNameInvalid
		}
	}
	return nil
}
