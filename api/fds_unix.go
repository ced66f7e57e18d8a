//go:build unix

package api

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// sendFDs writes b on c with files attached to its first bytes
// (SCM_RIGHTS). The files' descriptors are read through SyscallConn,
// never Fd, which would switch a pollable one to blocking mode.
func sendFDs(c *net.UnixConn, b []byte, files []*os.File) error {
	fds := make([]int, 0, len(files))
	for _, f := range files {
		rc, err := f.SyscallConn()
		if err != nil {
			return err
		}
		if err := rc.Control(func(fd uintptr) { fds = append(fds, int(fd)) }); err != nil {
			return err
		}
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	n, _, err := c.WriteMsgUnix(b, oob, nil)
	if err != nil {
		return err
	}
	if n < len(b) { // the descriptors went with the first bytes
		_, err = c.Write(b[n:])
	}
	return err
}

// fdReader reads a Unix stream connection with recvmsg, so that no
// descriptor sent with the bytes is lost (a plain read would drop them,
// and the kernel close them). It keeps those that come until take, and
// closes any that come after.
type fdReader struct {
	c     *net.UnixConn
	oob   []byte
	files []*os.File
	taken bool
	err   error // descriptors were lost: the control buffer was too small
}

func newFDReader(c *net.UnixConn) *fdReader {
	return &fdReader{c: c, oob: make([]byte, unix.CmsgSpace(4*MaxHoldFDs))}
}

// Read reads like c.Read, keeping what comes with the bytes. Go's
// ReadMsgUnix receives descriptors close-on-exec.
func (r *fdReader) Read(p []byte) (int, error) {
	n, oobn, flags, _, err := r.c.ReadMsgUnix(p, r.oob)
	if oobn > 0 {
		r.keep(r.oob[:oobn])
	}
	if flags&unix.MSG_CTRUNC != 0 && r.err == nil {
		r.err = fmt.Errorf("more than %d sockets came: the rest were lost", MaxHoldFDs)
	}
	return n, err
}

func (r *fdReader) keep(oob []byte) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		r.err = errors.Join(r.err, fmt.Errorf("control message: %w", err))
		return
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue // not SCM_RIGHTS
		}
		for _, fd := range fds {
			if r.taken {
				unix.Close(fd)
				continue
			}
			r.files = append(r.files, os.NewFile(uintptr(fd), "sockd-hold"))
		}
	}
}

// take returns the descriptors received so far; later ones are closed.
func (r *fdReader) take() ([]*os.File, error) {
	files := r.files
	r.files, r.taken = nil, true
	if r.err != nil {
		closeFiles(files)
		return nil, r.err
	}
	return files, nil
}

// discard closes what came; later descriptors are closed too.
func (r *fdReader) discard() {
	closeFiles(r.files)
	r.files, r.taken = nil, true
}
