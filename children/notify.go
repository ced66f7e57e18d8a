package children

import (
	"fmt"
	"net"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/sockfile"
)

// notifyBufferMax is the largest datagram read, as systemd's
// NOTIFY_BUFFER_MAX; longer (truncated) messages are dropped.
const notifyBufferMax = 4096

// notifyMaxFds is how many descriptors one message may carry before the
// kernel drops the excess; all of them are closed unread.
const notifyMaxFds = 768

// Notification is one sd_notify datagram.
type Notification struct {
	Pid    int               // sender pid from SCM_CREDENTIALS; 0 if unknown
	UID    int               // sender uid from SCM_CREDENTIALS; -1 if unknown
	Fields map[string]string // READY=1 → Fields["READY"]="1"
	Raw    string
}

// NotifySocket is a NOTIFY_SOCKET: a datagram Unix socket with
// SO_PASSCRED, so every message carries its sender's pid.
//
// The socket file has mode 0666 so that children running as other users
// can send to it; put it in a directory that only sockd can write to
// (and that the children's users can search), since the file mode alone
// does not keep a user from sending forged datagrams: check
// Notification.Pid against the pid of the process that may send.
// Descriptors sent along (FDSTORE=1) are closed: sockd keeps no fd store.
type NotifySocket struct {
	path string
	conn *net.UnixConn
	c    chan Notification
	quit chan struct{}
	done chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// ListenNotify creates the socket at path (removing a stale socket file
// first, as sockfile.RemoveStale does) and starts reading it. A socket
// file that something is still bound to is not removed: that is an error
// wrapping EADDRINUSE; a file at path that is not a socket is an error
// wrapping fs.ErrExist.
func ListenNotify(path string) (*NotifySocket, error) {
	fail := func(err error) (*NotifySocket, error) {
		return nil, fmt.Errorf("listen unixgram %s: %w", path, err)
	}
	if err := sockfile.RemoveStale(path); err != nil {
		return fail(err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return fail(fmt.Errorf("socket: %w", err))
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close() // net.FileConn holds its own duplicate
	// SO_PASSCRED before bind: no datagram arrives without credentials.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		return fail(fmt.Errorf("setsockopt SO_PASSCRED: %w", err))
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return fail(fmt.Errorf("bind: %w", err))
	}
	if err := os.Chmod(path, 0o666); err != nil {
		sockfile.Remove(path)
		return fail(err)
	}
	c, err := net.FileConn(f)
	if err != nil {
		sockfile.Remove(path)
		return fail(err)
	}
	n := &NotifySocket{
		path: path,
		conn: c.(*net.UnixConn),
		c:    make(chan Notification, 64),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	live.Add(1)
	go n.read()
	return n, nil
}

// ListenNotifyHeld is ListenNotify that takes held, a copy a previous
// sockd kept (fd holder), when it is the datagram socket bound at path:
// the datagrams children sent while no sockd read it are read now, and
// no child ever finds the path without a socket. Otherwise held is
// closed and a new socket made. It always takes held.
func ListenNotifyHeld(path string, held *os.File) (*NotifySocket, error) {
	if held == nil {
		return ListenNotify(path)
	}
	defer held.Close()
	rc, err := held.SyscallConn()
	ok := err == nil
	if ok {
		rc.Control(func(fd uintptr) {
			typ, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
			sa, serr := unix.Getsockname(int(fd))
			su, isUnix := sa.(*unix.SockaddrUnix)
			ok = err == nil && serr == nil && typ == unix.SOCK_DGRAM && isUnix && su.Name == path &&
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) == nil
		})
	}
	var st unix.Stat_t
	if !ok || unix.Lstat(path, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return ListenNotify(path)
	}
	c, err := net.FileConn(held)
	if err != nil {
		return ListenNotify(path)
	}
	n := &NotifySocket{
		path: path,
		conn: c.(*net.UnixConn),
		c:    make(chan Notification, 64),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	live.Add(1)
	go n.read()
	return n, nil
}

// File returns a copy of the socket, for the fd holder.
func (n *NotifySocket) File() (*os.File, error) { return n.conn.File() }

// Path returns the socket's path, the value for NOTIFY_SOCKET.
func (n *NotifySocket) Path() string { return n.path }

// C delivers the notifications in arrival order. It is closed when the
// socket is closed (or fails). The reader does not drop messages: if
// nobody receives from C, it stops reading once the buffer of C is full.
func (n *NotifySocket) C() <-chan Notification { return n.c }

// Close stops reading, closes the socket and removes its file.
func (n *NotifySocket) Close() error {
	n.closeOnce.Do(func() {
		close(n.quit)
		err := n.conn.Close()
		<-n.done
		if rerr := sockfile.Remove(n.path); rerr != nil && err == nil {
			err = rerr
		}
		if err != nil {
			n.closeErr = fmt.Errorf("close unixgram %s: %w", n.path, err)
		}
	})
	return n.closeErr
}

func (n *NotifySocket) read() {
	defer live.Done()
	defer close(n.done)
	defer close(n.c)
	buf := make([]byte, notifyBufferMax)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(4*notifyMaxFds))
	for {
		nb, noob, flags, _, err := n.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return // closed; nothing else fails on a bound datagram socket
		}
		pid, uid := parseControl(oob[:noob])
		if flags&unix.MSG_TRUNC != 0 {
			continue
		}
		note := Notification{Pid: pid, UID: uid, Raw: string(buf[:nb]), Fields: ParseNotify(string(buf[:nb]))}
		select {
		case n.c <- note:
		case <-n.quit:
			return
		}
	}
}

// parseControl returns the sender's pid and uid (0 and -1 if the kernel
// did not say) and closes any passed descriptor.
func parseControl(oob []byte) (pid, uid int) {
	uid = -1
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, -1
	}
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Level != unix.SOL_SOCKET {
			continue
		}
		switch m.Header.Type {
		case unix.SCM_CREDENTIALS:
			if cred, err := unix.ParseUnixCredentials(m); err == nil {
				pid, uid = int(cred.Pid), int(cred.Uid)
			}
		case unix.SCM_RIGHTS:
			if fds, err := unix.ParseUnixRights(m); err == nil {
				for _, fd := range fds {
					unix.Close(fd)
				}
			}
		}
	}
	return pid, uid
}

// ParseNotify parses an sd_notify message, newline-separated KEY=VALUE
// assignments, into a map; a later assignment of a key wins, lines
// without "=" are ignored.
func ParseNotify(msg string) map[string]string {
	fields := make(map[string]string)
	for _, line := range strings.Split(msg, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && k != "" {
			fields[k] = v
		}
	}
	return fields
}
