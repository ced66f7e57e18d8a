package activation

// Changing a socket unit's options on the open socket, without closing
// it: what the kernel lets a bound, listening socket change.

import (
	"fmt"
	"os"
	"reflect"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/units"
)

// InPlace reports whether the socket unit new differs from old only in
// options that Update applies to the sockets already open: Backlog=,
// ReceiveBuffer=, SendBuffer=, NoDelay=, KeepAlive=, KeepAliveTimeSec=,
// KeepAliveIntervalSec=, KeepAliveProbes=, Broadcast= and
// PassCredentials=. The unit file's path, its drop-ins and the lines of
// its Listen*= options are ignored too.
//
// It reports false for any other change (an address, Accept=,
// ReusePort=, FreeBind=, Transparent=, BindIPv6Only=, BindToDevice=,
// SocketMode=, the owner, …), and for a buffer size or a keep-alive
// setting going back to the kernel's default (0): a socket cannot be
// told to forget a value it was given. Such a change needs a new socket.
func InPlace(old, new *units.Socket) bool {
	for _, c := range []struct{ old, new int }{
		{old.ReceiveBuffer, new.ReceiveBuffer},
		{old.SendBuffer, new.SendBuffer},
		{seconds(old.KeepAliveTime), seconds(new.KeepAliveTime)},
		{seconds(old.KeepAliveInterval), seconds(new.KeepAliveInterval)},
		{old.KeepAliveProbes, new.KeepAliveProbes},
	} {
		if c.old > 0 && c.new <= 0 {
			return false
		}
	}
	return reflect.DeepEqual(withoutInPlace(old), withoutInPlace(new))
}

// withoutInPlace returns a copy of s with the options Update applies,
// and what does not describe the socket (file names, line numbers),
// zeroed.
func withoutInPlace(s *units.Socket) units.Socket {
	c := *s
	c.File, c.DropIns = "", nil
	c.Listens = make([]units.Listen, len(s.Listens))
	for i, l := range s.Listens {
		l.Line, l.File = 0, ""
		c.Listens[i] = l
	}
	c.Backlog = 0
	c.ReceiveBuffer, c.SendBuffer = 0, 0
	c.NoDelay, c.KeepAlive = false, false
	c.KeepAliveTime, c.KeepAliveInterval, c.KeepAliveProbes = 0, 0, 0
	c.Broadcast, c.PassCredentials = false, false
	return c
}

// Update applies s's in-place options (those InPlace names) to l's open
// socket, shared with every child holding it: listen(2) again with the
// new backlog, which Linux allows on a listening socket, and
// setsockopt(2) for the others. Accepted connections inherit the new
// values; connections already accepted keep theirs. s must be the
// socket unit l was opened from, changed as InPlace allows; options that
// do not apply to l's kind (NoDelay= on a Unix socket, Backlog= on a
// datagram socket) are left alone, as Open leaves them. A FIFO has none.
//
// On an error, some options may be applied and others not: the caller
// should then close the socket and open a new one.
func (l *Listener) Update(s *units.Socket) error {
	if l.sockType == 0 {
		return nil // a FIFO
	}
	rc, err := l.file.SyscallConn()
	if err != nil {
		return fmt.Errorf("update %s %s: %w", l.spec.Network, l.addr, err)
	}
	var uerr error
	if err := rc.Control(func(fd uintptr) { uerr = l.update(int(fd), s) }); err != nil {
		uerr = err
	}
	if uerr != nil {
		return fmt.Errorf("update %s %s: %w", l.spec.Network, l.addr, uerr)
	}
	return nil
}

func (l *Listener) update(fd int, s *units.Socket) error {
	ip := !strings.HasPrefix(l.spec.Network, "unix")
	if err := setCommonOptions(fd, s); err != nil {
		return err
	}
	if ip {
		if err := setInt(fd, unix.SOL_SOCKET, unix.SO_BROADCAST, boolInt(s.Broadcast), "SO_BROADCAST"); err != nil {
			return err
		}
	} else if err := setInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, boolInt(s.PassCredentials), "SO_PASSCRED"); err != nil {
		return err
	}
	if ip && l.sockType == unix.SOCK_STREAM {
		if err := setInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, boolInt(s.NoDelay), "TCP_NODELAY"); err != nil {
			return err
		}
		if err := setInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, boolInt(s.KeepAlive), "SO_KEEPALIVE"); err != nil {
			return err
		}
		if err := setKeepAliveTimes(fd, s); err != nil {
			return err
		}
	}
	if l.sockType != unix.SOCK_DGRAM {
		// listen(2) on a listening socket changes its backlog and
		// nothing else: the queue and its connections stay.
		if err := unix.Listen(fd, backlog(s)); err != nil {
			return os.NewSyscallError("listen", err)
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
