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
// KeepAliveIntervalSec=, KeepAliveProbes=, Broadcast=,
// PassCredentials=, Mark=, Priority=, IPTOS=, IPTTL=, TCPCongestion=,
// DeferAcceptSec= and PipeSize=. The unit file's path, its drop-ins and
// the lines of its Listen*= options are ignored too.
//
// It reports false for any other change (an address, Accept=,
// ReusePort=, FreeBind=, Transparent=, BindIPv6Only=, BindToDevice=,
// SocketMode=, the owner, …), and for a value the socket cannot be told
// to forget going back to the kernel's default (unset or 0): a buffer
// size, a keep-alive setting, TCPCongestion=, PipeSize=, and Priority=
// while IPTOS= stays set (IP_TOS gave the socket a priority of its own,
// which only a new socket gets back). Such a change needs a new socket.
// Mark=, IPTOS=, IPTTL= and DeferAcceptSec= go back to the default in
// place.
func InPlace(old, new *units.Socket) bool {
	for _, c := range []struct{ old, new int }{
		{old.ReceiveBuffer, new.ReceiveBuffer},
		{old.SendBuffer, new.SendBuffer},
		{seconds(old.KeepAliveTime), seconds(new.KeepAliveTime)},
		{seconds(old.KeepAliveInterval), seconds(new.KeepAliveInterval)},
		{old.KeepAliveProbes, new.KeepAliveProbes},
		{len(old.TCPCongestion), len(new.TCPCongestion)},
		{old.PipeSize, new.PipeSize},
	} {
		if c.old > 0 && c.new <= 0 {
			return false
		}
	}
	if old.Priority > 0 && new.Priority == 0 && new.IPTOS != 0 {
		return false
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
	c.Mark, c.Priority, c.IPTOS, c.IPTTL = 0, 0, 0, 0
	c.TCPCongestion, c.DeferAccept, c.PipeSize = "", 0, 0
	return c
}

// Update applies s's in-place options (those InPlace names) to l's open
// socket, shared with every child holding it: listen(2) again with the
// new backlog, which Linux allows on a listening socket, setsockopt(2)
// for the others, fcntl(2) F_SETPIPE_SZ for a FIFO's PipeSize=. Accepted
// connections inherit the new values; connections already accepted
// keep theirs. s must be the socket unit l was opened from, changed as
// InPlace allows; options that do not apply to l's kind (NoDelay= on a
// Unix socket, Backlog= on a datagram socket) are left alone, as Open
// leaves them.
//
// On an error, some options may be applied and others not: the caller
// should then close the socket and open a new one. The options whose
// failure, as in systemd, is only a warning (Mark=, Priority=, IPTOS=,
// IPTTL=, TCPCongestion=, DeferAcceptSec=, PipeSize=) are not errors:
// Warnings reports them after the call.
func (l *Listener) Update(s *units.Socket) error {
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
	if l.sockType == 0 {
		l.warnings = setSoftOptions(fd, 0, 0, s) // a FIFO: PipeSize= only
		return nil
	}
	ip := !strings.HasPrefix(l.spec.Network, "unix")
	if err := setCommonOptions(fd, s); err != nil {
		return err
	}
	family := unix.AF_UNIX
	if ip {
		var err error
		if family, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN); err != nil {
			return fmt.Errorf("getsockopt SO_DOMAIN: %w", err)
		}
	}
	l.warnings = setSoftOptions(fd, family, l.sockType, s)
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
