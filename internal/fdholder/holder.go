package fdholder

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/sockfile"
)

// holderArg is the hidden argument (os.Args[1]) that makes the running
// binary the holder: "sockd-fdholder __sockd-fdholder DIR".
const holderArg = "__sockd-fdholder"

// readyFD is the holder's fd 3, the write end of a pipe from Connect: the
// holder writes replyOK there once it listens, or replyBusy or replyErr
// and why it cannot, and closes it.
const readyFD = 3

// LockName is the lock file in the holder's directory. The holder keeps
// an exclusive flock(2) on it for as long as it runs, which makes it the
// only holder in the directory and any socket file it finds there stale.
// The file is left in place when the holder exits (removing a lock file
// races with the next one to open it).
const LockName = "fdholder.lock"

// catchUpReads bounds the reads of one pipe when a sockd connects (see
// catchUp): a full default pipe (64 KiB) takes one or two.
const catchUpReads = 16

// MaybeRunHolder runs the holder when the binary was started as one and
// then never returns; otherwise it returns at once. Call it first thing
// in main (next to children.MaybeRunHelper), and in TestMain of any
// package whose tests call Connect: Connect re-executes the running
// binary, which must then become the holder before it does anything
// else.
func MaybeRunHolder() {
	if len(os.Args) != 3 || os.Args[1] != holderArg {
		return
	}
	// readyFD is written with raw writes: os.NewFile would put it into
	// Go's poller (its description is non-blocking: os.Pipe's), which the
	// holder has no other use for.
	h, err := newHolder(os.Args[2])
	if err != nil {
		// Nothing to clean up: the process exits, which closes what it
		// opened and releases the lock; a socket file left behind is
		// stale, and the next holder removes it.
		kind := byte(replyErr)
		if err == errLocked {
			kind = replyBusy
		}
		unix.Write(readyFD, append([]byte{kind}, err.Error()...))
		exit(1)
	}
	unix.Write(readyFD, []byte{replyOK})
	unix.Close(readyFD)
	if err := h.run(); err != nil {
		os.Stderr.WriteString("sockd-fdholder: " + err.Error() + "\n") // /dev/null, unless run by hand
		exit(1)
	}
	exit(0)
}

// exit ends the holder at once. os.Exit would first run the hooks of a
// race-enabled build, whose report goes to the holder's /dev/null and
// which sleeps a second (GORACE's atexit_sleep_ms), which Shutdown would
// wait for; and of a coverage build, whose GOCOVERDIR the holder's empty
// environment does not set.
func exit(code int) {
	syscall.Exit(code)
}

// holder is the holder process's state, owned by its one goroutine.
type holder struct {
	path  string // DIR/fdholder.sock
	lfd   int    // the listening socket
	epfd  int
	spare int // /dev/null, closed to accept one connection at the fd limit
	pidfd int // the holder's own pidfd, for its greeting; -1 without

	client    int // sockd's connection; -1 while none
	clientPid int32

	names   map[string]*entry
	readers map[int]*entry // output entries by their rfd

	msg, oob, scratch []byte
}

// entry is one name the holder holds.
type entry struct {
	name string
	fd   int // the copy sockd put; -1 once its pipe reached end of file
	// Output names only: rfd is the holder's own non-blocking open file
	// description of the pipe (see openReader), -1 for other names, and
	// out what the holder read from it while no sockd was connected.
	rfd int
	out ring
}

// errLocked: another holder runs (or is starting) in the directory.
var errLocked = fmt.Errorf("another holder runs in the directory (%s is locked)", LockName)

// newHolder takes the directory's lock and listens on its socket.
func newHolder(dir string) (*holder, error) {
	// The holder writes to nothing but its peers' sockets (with
	// MSG_NOSIGNAL besides), and its process group is not the terminal's
	// foreground one; these would still end it for nothing.
	signal.Ignore(syscall.SIGPIPE, syscall.SIGHUP, syscall.SIGINT)
	// The files it creates are its owner's alone: the socket (connecting
	// takes write permission on it) and the lock. The holder runs no
	// other goroutine that creates files, so the process umask is its to
	// set.
	unix.Umask(0o177)

	lock := filepath.Join(dir, LockName)
	lockfd, err := unix.Open(lock, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: lock, Err: err}
	}
	if err := unix.Flock(lockfd, unix.LOCK_EX|unix.LOCK_NB); err == unix.EWOULDBLOCK {
		return nil, errLocked
	} else if err != nil {
		return nil, &os.PathError{Op: "flock", Path: lock, Err: err}
	}
	// lockfd stays open, and locked, until the process exits.

	h := &holder{
		path:    filepath.Join(dir, SocketName),
		pidfd:   -1,
		client:  -1,
		names:   make(map[string]*entry),
		readers: make(map[int]*entry),
		msg:     make([]byte, maxMsg),
		oob:     make([]byte, unix.CmsgSpace(4*4)),
		scratch: make([]byte, MaxOutput),
	}
	// Under the lock, a socket file here is a dead holder's. RemoveStale
	// still refuses a symlink or anything else that is not a socket.
	if err := sockfile.RemoveStale(h.path); err != nil {
		return nil, err
	}
	if h.lfd, err = unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0); err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := unix.Bind(h.lfd, &unix.SockaddrUnix{Name: h.path}); err != nil {
		return nil, &os.PathError{Op: "bind", Path: h.path, Err: err}
	}
	// The umask made it 0600, unless a default ACL on the directory took
	// the umask's place. Nobody can connect before listen.
	if err := unix.Chmod(h.path, 0o600); err != nil {
		return nil, &os.PathError{Op: "chmod", Path: h.path, Err: err}
	}
	if err := unix.Listen(h.lfd, 16); err != nil {
		return nil, os.NewSyscallError("listen", err)
	}
	if h.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := h.watch(h.lfd); err != nil {
		return nil, err
	}
	if h.spare, err = unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		return nil, &os.PathError{Op: "open", Path: "/dev/null", Err: err}
	}
	if fd, err := unix.PidfdOpen(os.Getpid(), 0); err == nil { // Linux 5.3
		h.pidfd = fd
	}
	return h, nil
}

// watch adds fd to the epoll set, level-triggered.
func (h *holder) watch(fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
	return os.NewSyscallError("epoll_ctl", unix.EpollCtl(h.epfd, unix.EPOLL_CTL_ADD, fd, &ev))
}

// run serves until a Shutdown request. Between events it is blocked in
// epoll_wait.
func (h *holder) run() error {
	events := make([]unix.EpollEvent, 64)
	for {
		n, err := unix.EpollWait(h.epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("epoll_wait", err)
		}
		// An event may be stale by the time it is handled (its fd closed,
		// even reused, by an earlier one): every handler reads without
		// blocking and takes "nothing there" in its stride.
		for _, ev := range events[:n] {
			switch fd := int(ev.Fd); {
			case fd == h.lfd:
				h.accept()
			case fd == h.client:
				if h.serve() {
					return nil
				}
			case h.client < 0:
				if e := h.readers[fd]; e != nil {
					h.drain(e)
				}
			}
		}
	}
}

// accept takes one connection: sockd's if its uid is the holder's and no
// other sockd is connected, or one it refuses with a reason.
func (h *holder) accept() {
	fd, _, err := unix.Accept4(h.lfd, unix.SOCK_CLOEXEC)
	if err == unix.EMFILE || err == unix.ENFILE {
		// The connection would wait in the queue, and the listener stay
		// readable (a busy loop), until an fd is free: free one to take
		// it and say why.
		unix.Close(h.spare)
		if fd, _, err = unix.Accept4(h.lfd, unix.SOCK_CLOEXEC); err == nil {
			refuse(fd, replyErr, "the holder has no file descriptor left (RLIMIT_NOFILE)")
		}
		h.spare, _ = unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		return
	}
	if err != nil {
		return // gone meanwhile (EAGAIN, ECONNABORTED)
	}
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	switch {
	case err != nil:
		refuse(fd, replyErr, "SO_PEERCRED: "+err.Error())
		return
	case int(cred.Uid) != os.Geteuid():
		refuse(fd, replyErr, fmt.Sprintf("uid %d may not use the holder of uid %d", cred.Uid, os.Geteuid()))
		return
	case h.client >= 0 && !hungUp(h.client):
		refuse(fd, replyBusy, fmt.Sprintf("the holder serves another sockd (pid %d)", h.clientPid))
		return
	}
	if h.client >= 0 {
		// A killed sockd's connection, whose end of file the holder has
		// not read yet: its last requests, if any, are dropped with it.
		unix.Close(h.client)
	} else {
		h.catchUp()
		h.stopDraining()
	}
	h.client, h.clientPid = fd, cred.Pid
	if err := h.watch(fd); err != nil {
		h.dropClient()
		return
	}
	var fds []int
	if h.pidfd >= 0 {
		fds = []int{h.pidfd}
	}
	if err := h.send([]byte{replyOK}, fds...); err != nil {
		h.dropClient()
	}
}

// refuse tells a connection why, and closes it.
func refuse(fd int, kind byte, why string) {
	unix.SendmsgN(fd, append([]byte{kind}, why...), nil, nil, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
	unix.Close(fd)
}

// hungUp reports whether the peer of the connection fd has closed it.
func hungUp(fd int) bool {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
	n, err := unix.Poll(p, 0)
	return err == nil && n > 0 && p[0].Revents&(unix.POLLHUP|unix.POLLRDHUP|unix.POLLERR) != 0
}

// dropClient closes sockd's connection and starts draining the pipes.
func (h *holder) dropClient() {
	unix.Close(h.client) // which takes it out of the epoll set
	h.client = -1
	for _, e := range h.readers {
		// Fails only without memory (or past fs.epoll.max_user_watches):
		// that pipe is then not drained, and a writer may block on it.
		h.watch(e.rfd)
	}
}

// stopDraining takes the pipes out of the epoll set: a connected sockd
// reads its own copies.
func (h *holder) stopDraining() {
	for _, e := range h.readers {
		unix.EpollCtl(h.epfd, unix.EPOLL_CTL_DEL, e.rfd, nil)
	}
}

// catchUp reads what the pipes hold as a sockd connects, so that the
// output written while none was connected is all in the buffers its Take
// returns, and a pipe whose writers have all gone is seen to end, rather
// than its last bytes being split between the buffer and the pipe.
func (h *holder) catchUp() {
	for _, e := range h.readers {
		for i := 0; i < catchUpReads && h.drain(e); i++ {
		}
	}
}

// drain reads the pipe of e once, and reports whether it read anything.
// At end of file (every writer has gone: the child exited) it closes the
// pipe and keeps the name only for the bytes it buffered, if any.
func (h *holder) drain(e *entry) bool {
	n, err := unix.Read(e.rfd, h.scratch)
	if n > 0 {
		e.out.write(h.scratch[:n])
		return true
	}
	if err == unix.EAGAIN || err == unix.EINTR {
		return false
	}
	h.closeEntry(e)
	if e.out.empty() {
		delete(h.names, e.name)
	}
	return false
}

// closeEntry closes the holder's fds of e.
func (h *holder) closeEntry(e *entry) {
	if e.rfd >= 0 {
		// Closing it takes it out of the epoll set: the open file
		// description is the holder's alone.
		unix.Close(e.rfd)
		delete(h.readers, e.rfd)
		e.rfd = -1
	}
	if e.fd >= 0 {
		unix.Close(e.fd)
		e.fd = -1
	}
}

// serve reads and answers one request of sockd's; it reports whether the
// request was Shutdown, whose answer is the holder's last act.
func (h *holder) serve() (shutdown bool) {
	n, oobn, flags, _, err := unix.Recvmsg(h.client, h.msg, h.oob, unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC)
	if err == unix.EAGAIN || err == unix.EINTR {
		return false
	}
	var fds []int
	if err == nil {
		fds = rights(h.oob[:oobn])
	}
	if err != nil || n == 0 { // sockd closed the connection, or died
		closeFds(fds)
		h.dropClient()
		return false
	}
	req := h.msg[:n]
	var rerr error
	switch {
	case flags&unix.MSG_CTRUNC != 0:
		rerr = fmt.Errorf("the holder has no file descriptor left (RLIMIT_NOFILE)")
	case flags&unix.MSG_TRUNC != 0:
		rerr = fmt.Errorf("request of more than %d bytes", len(h.msg))
	case req[0] == opPut:
		rerr, fds = h.put(string(req[1:]), fds), nil
	case req[0] == opRemove:
		h.remove(string(req[1:]))
	case req[0] == opTake:
		closeFds(fds)
		if err := h.take(req[1:]); err != nil {
			h.dropClient()
		}
		return false
	case req[0] == opShutdown:
		closeFds(fds)
		h.reply(h.shutdown())
		return true
	default:
		rerr = fmt.Errorf("unknown request %q", req[0])
	}
	closeFds(fds)
	if err := h.reply(rerr); err != nil {
		h.dropClient()
	}
	return false
}

// put holds fds[0] under name; it owns fds whatever happens.
func (h *holder) put(name string, fds []int) error {
	if err := checkName(name); err != nil {
		closeFds(fds)
		return err
	}
	if len(fds) != 1 {
		closeFds(fds)
		return fmt.Errorf("put %s: %d fds sent, want 1", name, len(fds))
	}
	e := &entry{name: name, fd: fds[0], rfd: -1}
	if strings.HasPrefix(name, OutputPrefix) {
		rfd, err := openReader(e.fd)
		if err != nil {
			unix.Close(e.fd)
			return fmt.Errorf("put %s: %w", name, err)
		}
		e.rfd = rfd
	}
	if old := h.names[name]; old != nil {
		h.closeEntry(old)
		e.out = old.out // the name's output stays until Take
	}
	h.names[name] = e
	if e.rfd >= 0 {
		h.readers[e.rfd] = e // drained once sockd disconnects
	}
	return nil
}

// openReader returns a non-blocking open file description of its own on
// the pipe whose read end is fd, opened through /proc/self/fd. The
// holder must not change the flags of fd's description, which sockd and
// maybe others share (O_NONBLOCK lives there); and a read on a blocking
// description could hang the holder if another reader emptied the pipe
// between epoll_wait and read.
func openReader(fd int) (int, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return -1, os.NewSyscallError("fstat", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return -1, fmt.Errorf("not a pipe")
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return -1, os.NewSyscallError("fcntl", err)
	}
	if fl&unix.O_ACCMODE != unix.O_RDONLY {
		return -1, fmt.Errorf("not the read end of a pipe")
	}
	p := "/proc/self/fd/" + strconv.Itoa(fd)
	rfd, err := unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return rfd, nil
}

func (h *holder) remove(name string) {
	if e := h.names[name]; e != nil {
		h.closeEntry(e)
		delete(h.names, name)
	}
}

// take sends sockd copies of every fd held, and the output buffered; it
// forgets the output once the last message went out. It returns an
// error only when the connection failed.
func (h *holder) take(req []byte) error {
	if len(req) != 4 {
		return h.reply(errProtocol)
	}
	room := int(binary.LittleEndian.Uint32(req))
	names := make([]string, 0, len(h.names))
	for name := range h.names {
		names = append(names, name)
	}
	slices.Sort(names)
	var held []*entry
	for _, name := range names {
		if e := h.names[name]; e.fd >= 0 {
			held = append(held, e)
		}
	}
	if len(held) > room {
		return h.reply(fmt.Errorf("take: %d fds held, more than the %d the caller has room for under its RLIMIT_NOFILE", len(held), room))
	}
	for len(held) > 0 {
		msg, fds := []byte{replyFiles}, make([]int, 0, maxBatch)
		for len(held) > 0 && len(fds) < maxBatch && len(msg)+1+len(held[0].name) <= maxPayload {
			msg = appendName(msg, held[0].name)
			fds = append(fds, held[0].fd)
			held = held[1:]
		}
		if err := h.send(msg, fds...); err != nil {
			return err
		}
	}
	for _, name := range names {
		e := h.names[name]
		if e.out.empty() {
			continue
		}
		hdr, data := outputHeader(name, e.out.dropped), e.out.bytes()
		for first := true; first || len(data) > 0; first = false {
			k := min(len(data), maxPayload-len(hdr))
			if err := h.send(append(slices.Clip(hdr), data[:k]...)); err != nil {
				return err
			}
			data = data[k:]
		}
	}
	if err := h.reply(nil); err != nil {
		return err
	}
	for _, name := range names {
		e := h.names[name]
		e.out.reset()
		if e.fd < 0 {
			delete(h.names, name)
		}
	}
	return nil
}

// shutdown closes everything but the connection, which the exit closes:
// the end of file sockd then reads means that the holder is gone.
func (h *holder) shutdown() error {
	for _, e := range h.names {
		h.closeEntry(e)
	}
	h.names = nil
	err := sockfile.Remove(h.path)
	unix.Close(h.lfd)
	return err
}

// reply sends the final answer to a request: done, or err.
func (h *holder) reply(err error) error {
	if err != nil {
		return h.send(append([]byte{replyErr}, err.Error()...))
	}
	return h.send([]byte{replyOK})
}

// send sends one message to sockd, blocking while its receive queue is
// full: sockd reads as it goes, and a dead sockd's connection fails at
// once.
func (h *holder) send(msg []byte, fds ...int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	for {
		_, err := unix.SendmsgN(h.client, msg, oob, nil, unix.MSG_NOSIGNAL)
		if err != unix.EINTR {
			return err
		}
	}
}

// rights returns the fds of the SCM_RIGHTS messages in oob.
func rights(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range msgs {
		if f, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, f...)
		}
	}
	return fds
}

func closeFds(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
