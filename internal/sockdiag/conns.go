package sockdiag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

const (
	tcpEstablished = 1 // TCP_ESTABLISHED, include/net/tcp_states.h
	tcpCloseWait   = 8 // TCP_CLOSE_WAIT

	udiagShowName = 0x01 // UDIAG_SHOW_NAME
	unixDiagName  = 0    // UNIX_DIAG_NAME
)

// Conns is what one call to Connections found: the connections that
// processes hold on local addresses, and the listeners' accept queues.
type Conns struct {
	// Queues are the accept queues of the listening sockets by inode, as
	// Listeners returns them.
	Queues map[uint64]Queue

	tcp     map[netip.AddrPort]int // by local address and port (IPv4-mapped addresses unmapped)
	tcpPort map[uint16]int         // by local port, whatever the address
	unix    map[string]int         // by bound name ("@name" for an abstract one)
}

// TCP returns how many TCP connections in state ESTABLISHED or
// CLOSE_WAIT have local as their local address: the connections that a
// listener bound to local accepted, or still has in its accept queue
// (they count in Queues too), and that a process has not closed. A
// local address that is unspecified (0.0.0.0 or ::) stands for every
// address with local's port, as a listener bound to it receives them.
//
// CLOSE_WAIT counts because the process still holds the connection (the
// peer closed its side); SYN_RECV does not (no process holds it yet),
// nor FIN_WAIT and TIME_WAIT (the process has closed it).
func (c *Conns) TCP(local netip.AddrPort) int {
	if c == nil {
		return 0
	}
	if local.Addr().IsUnspecified() {
		return c.tcpPort[local.Port()]
	}
	return c.tcp[netip.AddrPortFrom(local.Addr().Unmap(), local.Port())]
}

// Unix returns how many connected Unix stream or seqpacket sockets are
// bound to name, a path or "@name" for an abstract socket. Those are
// the connections a listener bound to name accepted: the kernel gives an
// accepted socket its listener's name (unix_stream_connect), and the
// connecting side has a name only if it bound one. Connections not yet
// accepted are not in the dump (the kernel lists their embryo sockets
// nowhere): the listener's accept queue in Queues counts them. A socket a process
// holds after its peer closed counts (a Unix socket has no CLOSE_WAIT).
func (c *Conns) Unix(name string) int {
	if c == nil || name == "" {
		return 0
	}
	return c.unix[name]
}

// Connections makes one dump of each of TCP over IPv4, TCP over IPv6
// and Unix sockets of the network namespace, with the kernel filtering
// on state (listening, established, close-wait), and returns the
// established connections by local address and the listeners' accept
// queues. Like Listeners, it returns what the families that answered
// gave, with an error naming the others.
func Connections() (*Conns, error) {
	fd, err := open()
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	c := &Conns{Queues: map[uint64]Queue{}, tcp: map[netip.AddrPort]int{}, tcpPort: map[uint16]int{}, unix: map[string]int{}}
	states := uint32(1<<tcpListen | 1<<tcpEstablished | 1<<tcpCloseWait)
	var errs []error
	for i, q := range []struct {
		name  string
		req   []byte
		parse func([]byte)
	}{
		{"tcp", inetStatesRequest(unix.AF_INET, states), c.parseInet},
		{"tcp6", inetStatesRequest(unix.AF_INET6, states), c.parseInet},
		{"unix", unixStatesRequest(1<<tcpListen|1<<tcpEstablished, udiagShowRqlen|udiagShowName), c.parseUnix},
	} {
		if err := dump(fd, uint32(i+1), q.req, q.parse); err != nil {
			errs = append(errs, fmt.Errorf("sock_diag %s: %w", q.name, err))
		}
	}
	return c, errors.Join(errs...)
}

// inetStatesRequest is an inet_diag_req_v2 for the TCP sockets of
// family in states (a mask of 1<<TCP_*).
func inetStatesRequest(family uint8, states uint32) []byte {
	b := inetRequest(family)
	binary.NativeEndian.PutUint32(b[4:], states)
	return b
}

// unixStatesRequest is a unix_diag_req for the Unix sockets in states,
// with the attributes of show.
func unixStatesRequest(states, show uint32) []byte {
	b := unixRequest()
	binary.NativeEndian.PutUint32(b[4:], states)
	binary.NativeEndian.PutUint32(b[12:], show)
	return b
}

// parseInet reads an inet_diag_msg: a listener's queue, or an
// established connection's local address (struct inet_diag_sockid at
// offset 4: sport and dport big-endian, then src and dst, 16 bytes each).
func (c *Conns) parseInet(b []byte) {
	if len(b) < sizeofInetDiagMsg {
		return
	}
	switch b[1] {
	case tcpListen:
		parseInet(b, c.Queues)
		return
	case tcpEstablished, tcpCloseWait:
	default:
		return
	}
	port := binary.BigEndian.Uint16(b[4:])
	var addr netip.Addr
	switch b[0] {
	case unix.AF_INET:
		addr = netip.AddrFrom4([4]byte(b[8:12]))
	case unix.AF_INET6:
		addr = netip.AddrFrom16([16]byte(b[8:24])).Unmap()
	default:
		return
	}
	c.tcp[netip.AddrPortFrom(addr, port)]++
	c.tcpPort[port]++
}

// parseUnix reads a unix_diag_msg: a listener's queue, or a connected
// socket's name (UNIX_DIAG_NAME: the sun_path bytes bound, a leading NUL
// for an abstract name).
func (c *Conns) parseUnix(b []byte) {
	if len(b) < sizeofUnixDiagMsg {
		return
	}
	switch b[2] {
	case tcpListen:
		parseUnix(b, c.Queues)
		return
	case tcpEstablished:
	default:
		return
	}
	if b[1] != unix.SOCK_STREAM && b[1] != unix.SOCK_SEQPACKET {
		return
	}
	for attrs := b[sizeofUnixDiagMsg:]; len(attrs) >= unix.SizeofRtAttr; {
		l := int(binary.NativeEndian.Uint16(attrs[0:]))
		typ := binary.NativeEndian.Uint16(attrs[2:])
		if l < unix.SizeofRtAttr || l > len(attrs) {
			return
		}
		if typ == unixDiagName {
			name := attrs[unix.SizeofRtAttr:l]
			if len(name) == 0 {
				return
			}
			if name[0] == 0 {
				c.unix["@"+string(name[1:])]++
				return
			}
			// A path comes NUL-terminated or not, as bind(2) was given it.
			for i, x := range name {
				if x == 0 {
					name = name[:i]
					break
				}
			}
			c.unix[string(name)]++
			return
		}
		attrs = attrs[min(align(l), len(attrs)):]
	}
}
