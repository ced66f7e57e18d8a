package supervisord

// What sockd learns about a connection it accepted for an Accept=yes
// instance: the instance's name and the source MaxConnectionsPerSource=
// counts, as systemd names them.

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// connFacts is what sockd learns about an accepted connection.
type connFacts struct {
	instance   string // the instance name without its number
	source     string // the key of MaxConnectionsPerSource=
	remoteAddr string // REMOTE_ADDR, "" for Unix sockets
	remotePort string // REMOTE_PORT
}

// connInfo names a connection as systemd does: for IP,
// "LOCALADDR:LOCALPORT-REMOTEADDR:REMOTEPORT"; for Unix sockets,
// "PID-UID" of the peer, "unknown" if the kernel does not say.
func connInfo(conn *os.File, peer net.Addr) (connFacts, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return connFacts{}, fmt.Errorf("connection %s: %w", conn.Name(), err)
	}
	var local unix.Sockaddr
	var cred *unix.Ucred
	var lerr, cerr error
	if err := rc.Control(func(fd uintptr) {
		local, lerr = unix.Getsockname(int(fd))
		if _, ok := peer.(*net.UnixAddr); ok || peer == nil {
			cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		}
	}); err != nil {
		return connFacts{}, fmt.Errorf("connection %s: %w", conn.Name(), err)
	}
	if lerr != nil {
		return connFacts{}, fmt.Errorf("connection %s: %w", conn.Name(), os.NewSyscallError("getsockname", lerr))
	}
	var lip net.IP
	var lport int
	switch sa := local.(type) {
	case *unix.SockaddrInet4:
		lip, lport = net.IP(sa.Addr[:]), sa.Port
	case *unix.SockaddrInet6:
		lip, lport = net.IP(sa.Addr[:]), sa.Port
	default:
		if cerr != nil || cred == nil {
			return connFacts{instance: "unknown", source: "unknown"}, nil
		}
		uid := strconv.FormatUint(uint64(cred.Uid), 10)
		return connFacts{instance: strconv.Itoa(int(cred.Pid)) + "-" + uid, source: "uid " + uid}, nil
	}
	rip, rport := net.IP(nil), 0
	if t, ok := peer.(*net.TCPAddr); ok {
		rip, rport = t.IP, t.Port
	}
	// net.IP prints IPv4-mapped IPv6 addresses as IPv4, as systemd does.
	f := connFacts{
		instance:   fmt.Sprintf("%s:%d-%s:%d", lip, lport, rip, rport),
		source:     rip.String(),
		remoteAddr: rip.String(),
		remotePort: strconv.Itoa(rport),
	}
	return f, nil
}
