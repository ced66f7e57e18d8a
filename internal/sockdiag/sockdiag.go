// Package sockdiag reads the accept queues of listening sockets through
// the kernel's sock_diag netlink interface (NETLINK_SOCK_DIAG, sock_diag(7)),
// as `ss -lt` and `ss -lx` do: for a listening socket the kernel reports
// how many connections wait to be accepted (ss's Recv-Q) and the
// backlog given to listen(2) (ss's Send-Q).
//
// Connections counts the connections that processes hold on the
// listeners' addresses (established TCP and Unix stream sockets), with
// the same three dumps: how sockd tells that a unit is idle
// (X-IdleTimeoutSec=) without touching its connections.
//
// One call to Listeners makes three dumps on one netlink socket (TCP over
// IPv4, TCP over IPv6, Unix) of the listening sockets of the calling
// process's network namespace, whatever their number, and keys them by
// inode (st_ino of an fstat on the socket's fd).
package sockdiag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Queue is a listening socket's accept queue.
type Queue struct {
	// Depth is how many connections wait to be accepted.
	Depth int
	// Backlog is how many may wait: the backlog of listen(2), capped by
	// net.core.somaxconn. The kernel queues up to Backlog+1 TCP
	// connections before it drops SYNs or refuses.
	Backlog int
}

// Timeout bounds each receive from the kernel: a netlink socket never
// blocks a status call for longer.
const Timeout = 2 * time.Second

// maxMessages bounds one dump: a kernel that answered without end would
// not hold the caller forever (the timeout bounds only each receive).
const maxMessages = 1 << 20

const (
	tcpListen = 10 // TCP_LISTEN, include/net/tcp_states.h

	sizeofInetDiagReqV2 = 56 // struct inet_diag_req_v2
	sizeofInetDiagMsg   = 72 // struct inet_diag_msg
	sizeofUnixDiagReq   = 24 // struct unix_diag_req
	sizeofUnixDiagMsg   = 16 // struct unix_diag_msg

	udiagShowRqlen = 0x10 // UDIAG_SHOW_RQLEN
	unixDiagRqlen  = 4    // UNIX_DIAG_RQLEN, struct unix_diag_rqlen
)

// Listeners returns the accept queue of every listening TCP (IPv4 and
// IPv6) and Unix stream or seqpacket socket of the network namespace,
// keyed by the socket's inode. A socket that does not listen is absent.
//
// If a family cannot be dumped (its diag module is missing, say),
// Listeners returns the queues of the others with an error naming it.
func Listeners() (map[uint64]Queue, error) {
	fd, err := open()
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	out := make(map[uint64]Queue)
	var errs []error
	for i, q := range []struct {
		name  string
		req   []byte
		parse func([]byte, map[uint64]Queue)
	}{
		{"tcp", inetRequest(unix.AF_INET), parseInet},
		{"tcp6", inetRequest(unix.AF_INET6), parseInet},
		{"unix", unixRequest(), parseUnix},
	} {
		if err := dump(fd, uint32(i+1), q.req, func(b []byte) { q.parse(b, out) }); err != nil {
			errs = append(errs, fmt.Errorf("sock_diag %s: %w", q.name, err))
		}
	}
	return out, errors.Join(errs...)
}

// open returns a NETLINK_SOCK_DIAG socket connected to the kernel, whose
// sends and receives time out after Timeout.
func open() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return -1, fmt.Errorf("sock_diag: %w", os.NewSyscallError("socket", err))
	}
	tv := unix.NsecToTimeval(Timeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("sock_diag: %w", os.NewSyscallError("setsockopt SO_RCVTIMEO", err))
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("sock_diag: %w", os.NewSyscallError("setsockopt SO_SNDTIMEO", err))
	}
	// Connected to the kernel, the socket takes messages from no one
	// else: another process of the host cannot forge an answer.
	if err := unix.Connect(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("sock_diag: %w", os.NewSyscallError("connect", err))
	}
	return fd, nil
}

// inetRequest is an inet_diag_req_v2 for the listening TCP sockets of
// family.
func inetRequest(family uint8) []byte {
	b := make([]byte, sizeofInetDiagReqV2)
	b[0] = family
	b[1] = unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(b[4:], 1<<tcpListen)
	// The socket id (b[8:56]) stays zero: every socket.
	return b
}

// unixRequest is a unix_diag_req for the listening Unix sockets, with
// their queue lengths.
func unixRequest() []byte {
	b := make([]byte, sizeofUnixDiagReq)
	b[0] = unix.AF_UNIX
	binary.NativeEndian.PutUint32(b[4:], 1<<tcpListen)
	binary.NativeEndian.PutUint32(b[12:], udiagShowRqlen)
	return b
}

// parseInet reads an inet_diag_msg: idiag_rqueue is the accept queue's
// length and idiag_wqueue its backlog for a listener.
func parseInet(b []byte, out map[uint64]Queue) {
	if len(b) < sizeofInetDiagMsg || b[1] != tcpListen {
		return
	}
	ino := binary.NativeEndian.Uint32(b[68:])
	if ino == 0 {
		return
	}
	out[uint64(ino)] = Queue{
		Depth:   int(binary.NativeEndian.Uint32(b[56:])),
		Backlog: int(binary.NativeEndian.Uint32(b[60:])),
	}
}

// parseUnix reads a unix_diag_msg and its UNIX_DIAG_RQLEN attribute:
// udiag_rqueue is the accept queue's length and udiag_wqueue its backlog
// for a listener.
func parseUnix(b []byte, out map[uint64]Queue) {
	if len(b) < sizeofUnixDiagMsg || b[2] != tcpListen {
		return
	}
	ino := binary.NativeEndian.Uint32(b[4:])
	for attrs := b[sizeofUnixDiagMsg:]; len(attrs) >= unix.SizeofRtAttr; {
		l := int(binary.NativeEndian.Uint16(attrs[0:]))
		typ := binary.NativeEndian.Uint16(attrs[2:])
		if l < unix.SizeofRtAttr || l > len(attrs) {
			return
		}
		if typ == unixDiagRqlen && l >= unix.SizeofRtAttr+8 {
			out[uint64(ino)] = Queue{
				Depth:   int(binary.NativeEndian.Uint32(attrs[4:])),
				Backlog: int(binary.NativeEndian.Uint32(attrs[8:])),
			}
			return
		}
		attrs = attrs[min(align(l), len(attrs)):]
	}
}

// dump sends one SOCK_DIAG_BY_FAMILY dump request and hands the payload
// of each answer to each, until NLMSG_DONE.
func dump(fd int, seq uint32, req []byte, each func([]byte)) error {
	msg := make([]byte, unix.NLMSG_HDRLEN+len(req))
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(msg[8:], seq)
	copy(msg[unix.NLMSG_HDRLEN:], req)
	if err := unix.Send(fd, msg, 0); err != nil {
		return os.NewSyscallError("send", err)
	}
	// 32 KiB is the most the kernel puts in one dump message; a larger
	// buffer lets it fill each with as many sockets as fit.
	buf := make([]byte, 64<<10)
	for n := 0; n < maxMessages; {
		r, _, flags, from, err := unix.Recvmsg(fd, buf, nil, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.EAGAIN) {
				return fmt.Errorf("no answer from the kernel within %s", Timeout)
			}
			return os.NewSyscallError("recvmsg", err)
		}
		if flags&unix.MSG_TRUNC != 0 {
			return errors.New("answer truncated")
		}
		if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
			continue // not the kernel's
		}
		b := buf[:r]
		for len(b) >= unix.NLMSG_HDRLEN {
			l := int(binary.NativeEndian.Uint32(b[0:]))
			typ := binary.NativeEndian.Uint16(b[4:])
			mseq := binary.NativeEndian.Uint32(b[8:])
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				return fmt.Errorf("malformed answer: message of %d bytes in %d", l, len(b))
			}
			body := b[unix.NLMSG_HDRLEN:l]
			b = b[min(align(l), len(b)):]
			n++
			if mseq != seq {
				continue // an answer to an earlier request
			}
			switch typ {
			case unix.NLMSG_DONE:
				// Its payload, when there is one, is the dump's own
				// error (negative errno) or 0.
				if len(body) >= 4 {
					if errno := -int32(binary.NativeEndian.Uint32(body)); errno > 0 {
						return unix.Errno(errno)
					}
				}
				return nil
			case unix.NLMSG_ERROR:
				if len(body) < 4 {
					return errors.New("malformed error answer")
				}
				errno := -int32(binary.NativeEndian.Uint32(body))
				if errno == 0 {
					continue // an acknowledgement
				}
				return unix.Errno(errno)
			case unix.SOCK_DIAG_BY_FAMILY:
				each(body)
			}
		}
	}
	return fmt.Errorf("more than %d messages: giving up", maxMessages)
}

// align rounds l up to NLMSG_ALIGNTO (RTA_ALIGNTO is the same).
func align(l int) int { return (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }
