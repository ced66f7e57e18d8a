package api

import (
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peerOf reads SO_PEERCRED and SO_PEERGROUPS of a Unix connection. Both
// are the credentials the peer had when it called connect, kept by the
// kernel with the socket: they cannot race with the peer exiting or its
// pid being reused, and they are the groups the process really held
// (after any setgroups, newgrp or sandbox), which is what the kernel
// checks the socket file's mode against too. A peer whose groups cannot
// be read is reported without the connection's credentials at all, so
// the server refuses it.
func peerOf(c net.Conn) (Peer, bool) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Peer{}, false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Peer{}, false
	}
	var (
		cred   *unix.Ucred
		groups []int
		cerr   error
	)
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if cerr == nil {
			groups, cerr = peerGroups(int(fd))
		}
	}); err != nil || cerr != nil {
		return Peer{}, false
	}
	return Peer{PID: int(cred.Pid), UID: int(cred.Uid), GID: int(cred.Gid), Groups: groups}, true
}

// peerGroups reads SO_PEERGROUPS (Linux 4.13), growing the buffer when
// the kernel answers ERANGE with the size it needs.
func peerGroups(fd int) ([]int, error) {
	buf := make([]uint32, 32)
	for {
		size := uint32(4 * len(buf))
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		if errno == syscall.ERANGE && int(size/4) > len(buf) {
			buf = make([]uint32, size/4)
			continue
		}
		if errno != 0 {
			return nil, errno
		}
		groups := make([]int, size/4)
		for i := range groups {
			groups[i] = int(buf[i])
		}
		return groups, nil
	}
}
