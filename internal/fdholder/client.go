package fdholder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/children"
)

// requestTimeout bounds one request and its answer, Shutdown included:
// a safety net against a holder that hangs, as each takes milliseconds.
const requestTimeout = 10 * time.Second

// fdReserve is how many fds Take leaves free below RLIMIT_NOFILE.
const fdReserve = 64

// Client is sockd's connection to its holder. Its methods may be called
// from several goroutines; each request waits for the one before.
type Client struct {
	mu    sync.Mutex
	conn  *net.UnixConn // nil once closed
	err   error         // set once conn is unusable; every call returns it then
	pid   int
	pidfd int               // the holder's pidfd, from its greeting; -1 without
	proc  *children.Process // the holder, if this Client's Connect started it

	buf, oob []byte
	// pending names the PutAsync requests whose answers are not read
	// yet, in order; late holds the refusals read since the last Flush.
	pending []string
	late    []error
}

// maxPending is how many PutAsync answers may wait unread: the holder
// answers in order, and would block on a full socket buffer if none
// were read.
const maxPending = 64

// dial connects to the holder listening at path.
func dial(path string) (*Client, error) {
	fail := func(err error) (*Client, error) {
		return nil, fmt.Errorf("fdholder: connect %s: %w", path, err)
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fail(ErrNoHolder)
	}
	if err != nil {
		return fail(err)
	}
	switch fi.Mode().Type() {
	case fs.ModeSocket:
	case fs.ModeSymlink:
		return fail(errors.New("a symlink, not a socket"))
	default:
		return fail(fmt.Errorf("not a socket (%v)", fi.Mode().Type()))
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return fail(os.NewSyscallError("socket", err))
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	switch err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err {
	case nil:
	case unix.ENOENT, unix.ECONNREFUSED: // removed meanwhile; stale
		return fail(ErrNoHolder)
	case unix.EAGAIN:
		return fail(fmt.Errorf("%w (its queue is full)", ErrBusy))
	default:
		return fail(os.NewSyscallError("connect", err))
	}
	// The credentials of the process that called listen.
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return fail(os.NewSyscallError("getsockopt SO_PEERCRED", err))
	}
	if int(cred.Uid) != os.Geteuid() {
		return fail(fmt.Errorf("the holder (pid %d) runs as uid %d, not %d", cred.Pid, cred.Uid, os.Geteuid()))
	}
	conn, err := net.FileConn(f)
	if err != nil {
		return fail(err)
	}
	c := &Client{
		conn:  conn.(*net.UnixConn),
		pid:   int(cred.Pid),
		pidfd: -1,
		buf:   make([]byte, maxMsg),
		oob:   make([]byte, unix.CmsgSpace(4*maxBatch)),
	}
	c.conn.SetDeadline(time.Now().Add(requestTimeout))
	kind, payload, fds, err := c.recv()
	switch {
	case err != nil:
		c.conn.Close()
		return fail(err)
	case kind == replyOK:
		if len(fds) > 0 {
			c.pidfd, fds = fds[0], fds[1:]
		}
		closeFds(fds)
		return c, nil
	case kind == replyBusy:
		c.conn.Close()
		closeFds(fds)
		return fail(fmt.Errorf("%w: %s", ErrBusy, payload))
	default:
		c.conn.Close()
		closeFds(fds)
		return fail(errors.New(string(payload)))
	}
}

// Pid returns the holder's pid.
func (c *Client) Pid() int { return c.pid }

// Put gives the holder a copy of f under name (at most 255 bytes of
// printable ASCII but ':'), replacing the fd held under that name (the
// output the holder buffered for it stays until Take). A name starting
// with OutputPrefix must be the read end of a pipe. f itself is not
// changed: it is not switched to blocking mode, as f.Fd would.
func (c *Client) Put(name string, f *os.File) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("fdholder: put: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("fdholder: put %s: %w", name, err)
	}
	var perr error
	if err := rc.Control(func(fd uintptr) { // fd stays open meanwhile
		perr = c.call("put "+name, append([]byte{opPut}, name...), int(fd))
	}); err != nil {
		return fmt.Errorf("fdholder: put %s: %w", name, err)
	}
	return perr
}

// PutAsync is Put without waiting for the holder's answer, so that
// sockd loading 10,000 units does not wait 10,000 round trips (each a
// switch to the holder and back). The answer is read before the next
// request that waits for its own (Put, Remove, Take, Flush), or once
// maxPending wait; a refusal is then kept for Flush. An error sending
// the request is returned at once.
func (c *Client) PutAsync(name string, f *os.File) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("fdholder: put: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("fdholder: put %s: %w", name, err)
	}
	var perr error
	if err := rc.Control(func(fd uintptr) {
		perr = c.sendAsync("put "+name, append([]byte{opPut}, name...), unix.UnixRights(int(fd)))
	}); err != nil {
		return fmt.Errorf("fdholder: put %s: %w", name, err)
	}
	return perr
}

// RemoveAsync is Remove without waiting for the answer, as PutAsync.
func (c *Client) RemoveAsync(name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("fdholder: remove: %w", err)
	}
	return c.sendAsync("remove "+name, append([]byte{opRemove}, name...), nil)
}

// sendAsync sends a request whose answer is read later (drainLocked).
func (c *Client) sendAsync(op string, req, oob []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.usable(op); err != nil {
		return err
	}
	if len(c.pending) >= maxPending {
		if err := c.drainLocked(); err != nil {
			return err
		}
	}
	if err := c.writeLocked(op, req, oob); err != nil {
		return err
	}
	c.pending = append(c.pending, op)
	return nil
}

// readyLocked returns an error unless requests can be sent, after the
// answers of the requests sent without waiting have been read: the next
// answer is then the next request's.
func (c *Client) readyLocked(op string) error {
	if err := c.usable(op); err != nil {
		return err
	}
	return c.drainLocked()
}

// writeLocked sends one request, with the fds in oob.
func (c *Client) writeLocked(op string, req, oob []byte) error {
	c.conn.SetDeadline(time.Now().Add(requestTimeout))
	if _, _, err := c.conn.WriteMsgUnix(req, oob, nil); err != nil {
		return c.fail(op, err)
	}
	return nil
}

// answerLocked reads the answer to op: refused is the holder's refusal;
// err, a failure that made the connection unusable.
func (c *Client) answerLocked(op string) (refused, err error) {
	kind, payload, fds, err := c.recv()
	closeFds(fds)
	switch {
	case err != nil:
		return nil, c.fail(op, err)
	case kind == replyOK:
		return nil, nil
	case kind == replyErr:
		return fmt.Errorf("fdholder: %s: %s", op, payload), nil
	default:
		return nil, c.fail(op, errProtocol)
	}
}

// Flush reads the answers of every PutAsync not read yet and returns
// the refusals since the last Flush, joined.
func (c *Client) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.readyLocked("flush"); err != nil {
		return err
	}
	err := errors.Join(c.late...)
	c.late = nil
	return err
}

// drainLocked reads the pending PutAsync answers, keeping refusals in
// late; an error reading one makes the connection unusable.
func (c *Client) drainLocked() error {
	if len(c.pending) == 0 {
		return nil
	}
	c.conn.SetDeadline(time.Now().Add(requestTimeout))
	for _, op := range c.pending {
		refused, err := c.answerLocked(op)
		if err != nil {
			c.pending = nil
			return err
		}
		if refused != nil {
			c.late = append(c.late, refused)
		}
	}
	c.pending = nil
	return nil
}

// Remove closes the holder's copy of name and forgets the output it
// buffered for it; a name it does not hold is not an error.
func (c *Client) Remove(name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("fdholder: remove: %w", err)
	}
	return c.call("remove "+name, append([]byte{opRemove}, name...), -1)
}

// call sends a request (with fd, unless it is -1) and reads its answer.
func (c *Client) call(op string, req []byte, fd int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.readyLocked(op); err != nil {
		return err
	}
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	if err := c.writeLocked(op, req, oob); err != nil {
		return err
	}
	refused, err := c.answerLocked(op)
	if err != nil {
		return err
	}
	return refused
}

// Take returns copies of every fd the holder holds (it keeps its own),
// and the output it buffered, which it then forgets. It fails, taking
// nothing, when the fds would leave fewer than 64 free below this
// process's RLIMIT_NOFILE.
func (c *Client) Take() (*Held, error) {
	room, err := fdRoom()
	if err != nil {
		return nil, fmt.Errorf("fdholder: take: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.readyLocked("take"); err != nil {
		return nil, err
	}
	c.conn.SetDeadline(time.Now().Add(requestTimeout))
	if _, _, err := c.conn.WriteMsgUnix(binary.LittleEndian.AppendUint32([]byte{opTake}, room), nil, nil); err != nil {
		return nil, c.fail("take", err)
	}
	h := &Held{Files: map[string]*os.File{}, Output: map[string][]byte{}, Dropped: map[string]int64{}}
	for {
		kind, payload, fds, err := c.recv()
		if err == nil {
			err = h.add(kind, payload, fds)
		}
		switch {
		case err != nil:
			closeFds(fds)
			h.Close()
			return nil, c.fail("take", err)
		case kind == replyOK:
			return h, nil
		case kind == replyErr:
			h.Close()
			return nil, fmt.Errorf("fdholder: take: %s", payload)
		}
	}
}

// add adds what one message of Take's answer carries to h; it takes the
// fds unless it fails.
func (h *Held) add(kind byte, payload []byte, fds []int) error {
	switch kind {
	case replyFiles:
		var names []string
		for len(payload) > 0 {
			name, rest, err := cutName(payload)
			if err != nil {
				return err
			}
			names, payload = append(names, name), rest
		}
		if len(names) != len(fds) {
			return errProtocol
		}
		for i, name := range names {
			if old := h.Files[name]; old != nil {
				old.Close()
			}
			h.Files[name] = os.NewFile(uintptr(fds[i]), name)
		}
	case replyOutput:
		name, dropped, data, err := parseOutput(payload)
		if err != nil || len(fds) > 0 {
			return errProtocol
		}
		h.Output[name] = append(h.Output[name], data...)
		h.Dropped[name] = dropped
	case replyOK, replyErr:
		if len(fds) > 0 {
			return errProtocol
		}
	default:
		return errProtocol
	}
	return nil
}

// fdRoom returns how many more fds this process may open, less
// fdReserve.
func fdRoom() (uint32, error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, os.NewSyscallError("getrlimit", err)
	}
	open, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	room := int64(min(rl.Cur, math.MaxInt32)) - int64(len(open)) - fdReserve
	return uint32(max(room, 0)), nil
}

// Close closes sockd's connection; the holder keeps what it holds and,
// from then on, drains the output pipes until a sockd connects again.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked()
	return nil
}

// Shutdown tells the holder to close everything, remove its socket file
// and exit, and waits until it has exited (and, if this Client's Connect
// started it, has been reaped). The Client is closed then.
func (c *Client) Shutdown() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.readyLocked("shutdown"); err != nil {
		return err
	}
	deadline := time.Now().Add(requestTimeout)
	c.conn.SetDeadline(deadline)
	if _, _, err := c.conn.WriteMsgUnix([]byte{opShutdown}, nil, nil); err != nil {
		return c.fail("shutdown", err)
	}
	kind, payload, fds, err := c.recv()
	closeFds(fds)
	var herr error
	switch {
	case err != nil:
		return c.fail("shutdown", err)
	case kind == replyErr: // it exits all the same
		herr = fmt.Errorf("fdholder: shutdown: %s", payload)
	case kind != replyOK:
		return c.fail("shutdown", errProtocol)
	}
	// The holder's end closes as it exits.
	if _, _, _, err := c.recv(); !errors.Is(err, io.EOF) {
		return c.fail("shutdown", fmt.Errorf("holder still there: %v", err))
	}
	if c.pidfd >= 0 {
		if err := waitReadable(c.pidfd, deadline); err != nil {
			return c.fail("shutdown", fmt.Errorf("wait for the holder's exit: %w", err))
		}
	}
	if c.proc != nil {
		select {
		case <-c.proc.Done():
		case <-time.After(time.Until(deadline)):
			return c.fail("shutdown", errors.New("holder not reaped"))
		}
	}
	c.closeLocked()
	return herr
}

// waitReadable waits until fd (a pidfd: until its process exited) is
// readable, or the deadline.
func waitReadable(fd int, deadline time.Time) error {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		ms := max(time.Until(deadline).Milliseconds(), 0)
		n, err := unix.Poll(p, int(ms))
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return os.NewSyscallError("poll", err)
		case n == 0:
			return os.ErrDeadlineExceeded
		}
		return nil
	}
}

// recv reads one message: its kind, payload and fds. The payload is
// valid until the next recv.
func (c *Client) recv() (kind byte, payload []byte, fds []int, err error) {
	n, oobn, flags, _, err := c.conn.ReadMsgUnix(c.buf, c.oob)
	if err != nil {
		return 0, nil, nil, err
	}
	fds = rights(c.oob[:oobn])
	switch {
	case flags&unix.MSG_CTRUNC != 0:
		closeFds(fds)
		return 0, nil, nil, errors.New("fds cut off: this process reached its RLIMIT_NOFILE")
	case flags&unix.MSG_TRUNC != 0 || n == 0:
		closeFds(fds)
		return 0, nil, nil, errProtocol
	}
	return c.buf[0], c.buf[1:n], fds, nil
}

// usable returns an error unless requests can be sent.
func (c *Client) usable(op string) error {
	if c.err != nil {
		return fmt.Errorf("fdholder: %s: %w", op, c.err)
	}
	return nil
}

// fail makes the connection unusable (a request may be half done) and
// returns err for op, as ErrNoHolder.
func (c *Client) fail(op string, err error) error {
	c.err = fmt.Errorf("%w: %w", ErrNoHolder, err)
	c.conn.Close()
	if c.pidfd >= 0 {
		unix.Close(c.pidfd)
		c.pidfd = -1
	}
	return fmt.Errorf("fdholder: %s: %w", op, c.err)
}

func (c *Client) closeLocked() {
	c.err = ErrClosed
	c.conn.Close() // again, after fail: harmless
	if c.pidfd >= 0 {
		unix.Close(c.pidfd)
		c.pidfd = -1
	}
}
