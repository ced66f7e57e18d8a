package activation

// The options whose failure does not fail the socket, as in systemd,
// whose socket_apply_socket_options logs a warning for each and goes on:
// Mark=, Priority=, IPTOS=, IPTTL=, TCPCongestion=, DeferAcceptSec= and,
// for a FIFO, PipeSize=. Open and Update set them with the same code, so
// a socket updated in place ends as a new one would start.

import (
	"fmt"
	"math"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/units"
)

// Warnings returns the options of the unit the kernel refused when l was
// opened, or at its last Update: those a failure of which, as in
// systemd, leaves the socket open without them (Mark=, Priority=,
// IPTOS=, IPTTL=, TCPCongestion=, DeferAcceptSec=, PipeSize=). Each error
// names the option and the kernel's reason. Call it from the goroutine
// that opened or updated l.
func (l *Listener) Warnings() []error { return l.warnings }

// setSoftOptions sets those options on fd, of family (unix.AF_INET,
// AF_INET6 or AF_UNIX) and type typ (unix.SOCK_STREAM, …; 0 for a FIFO),
// as far as they apply to it: IP options on IP sockets, TCP options on
// TCP sockets, PipeSize= on FIFOs; Mark= and Priority= on every socket,
// as systemd does. An option already as asked is not set again: a value
// left unset is not set at all on a new socket. It returns the
// options that failed.
func setSoftOptions(fd, family, typ int, s *units.Socket) []error {
	var errs []error
	warn := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if typ == 0 {
		if s.PipeSize > 0 {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, s.PipeSize); err != nil {
				warn(fmt.Errorf("PipeSize=%d: fcntl F_SETPIPE_SZ: %w", s.PipeSize, err))
			}
		}
		return errs
	}
	ip := family == unix.AF_INET || family == unix.AF_INET6
	tos := 0
	if ip {
		tos = s.IPTOS
		// IP_TOS on an IPv6 socket is the class of its IPv4-mapped
		// traffic (as systemd sets it); IPV6_TCLASS that of its IPv6
		// traffic (which systemd leaves alone).
		warn(setIfChanged(fd, unix.IPPROTO_IP, unix.IP_TOS, tos, "IPTOS", "IP_TOS"))
		if family == unix.AF_INET6 {
			warn(setIfChanged(fd, unix.IPPROTO_IPV6, unix.IPV6_TCLASS, tos, "IPTOS", "IPV6_TCLASS"))
		}
		warn(setTTL(fd, family, s.IPTTL))
	}
	// After IP_TOS, which sets the priority to one of its own: an
	// explicit Priority= wins. Unset, the priority is what IP_TOS made
	// it (0 without IPTOS=), as on a new socket; InPlace sends the one
	// case Update cannot undo (Priority= dropped, IPTOS= kept) to a new
	// socket.
	switch {
	case s.Priority > 0:
		warn(setIfChanged(fd, unix.SOL_SOCKET, unix.SO_PRIORITY, s.Priority, "Priority", "SO_PRIORITY"))
	case tos == 0:
		warn(setIfChanged(fd, unix.SOL_SOCKET, unix.SO_PRIORITY, 0, "Priority", "SO_PRIORITY"))
	}
	warn(setIfChanged(fd, unix.SOL_SOCKET, unix.SO_MARK, s.Mark, "Mark", "SO_MARK"))
	if ip && typ == unix.SOCK_STREAM {
		warn(setCongestion(fd, s.TCPCongestion))
		warn(setIfChanged(fd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, deferSeconds(s.DeferAccept), "DeferAcceptSec", "TCP_DEFER_ACCEPT"))
	}
	return errs
}

// setIfChanged sets an integer option to v unless getsockopt(2) reads v
// already (no needless call that needs a privilege, SO_MARK's
// CAP_NET_ADMIN, to set a value that is there).
func setIfChanged(fd, level, opt, v int, option, name string) error {
	if cur, err := unix.GetsockoptInt(fd, level, opt); err == nil && cur == v {
		return nil
	}
	if err := unix.SetsockoptInt(fd, level, opt, v); err != nil {
		return fmt.Errorf("%s=%d: setsockopt %s: %w", option, v, name, err)
	}
	return nil
}

// setTTL sets IPTTL=, or the kernel's default (-1) when it is 0. On an
// IPv6 socket it sets IPV6_UNICAST_HOPS (as systemd does) and IP_TTL,
// the TTL of its IPv4-mapped connections (which systemd leaves alone).
func setTTL(fd, family, ttl int) error {
	v := ttl
	if v == 0 {
		v = -1
	}
	opts := []struct {
		level, opt int
		name       string
	}{{unix.IPPROTO_IP, unix.IP_TTL, "IP_TTL"}}
	if family == unix.AF_INET6 {
		opts = append([]struct {
			level, opt int
			name       string
		}{{unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, "IPV6_UNICAST_HOPS"}}, opts...)
	}
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, v); err != nil {
			return fmt.Errorf("IPTTL=%d: setsockopt %s: %w", ttl, o.name, err)
		}
	}
	return nil
}

// setCongestion sets TCPCongestion=. An empty name leaves the socket's
// algorithm alone: a socket cannot be told to go back to the kernel's
// default, so InPlace sends that change to a new socket.
func setCongestion(fd int, name string) error {
	if name == "" {
		return nil
	}
	if cur, err := unix.GetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION); err == nil && cur == name {
		return nil
	}
	if err := unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, name); err != nil {
		return fmt.Errorf("TCPCongestion=%s: setsockopt TCP_CONGESTION: %w", name, err)
	}
	return nil
}

// deferSeconds is DeferAcceptSec= in the whole seconds TCP_DEFER_ACCEPT
// takes, rounded up, at most what an int holds ("infinity").
func deferSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	if d > time.Duration(math.MaxInt32-1)*time.Second {
		return math.MaxInt32
	}
	return int((d + time.Second - 1) / time.Second)
}
