package fdstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Harness plays systemd's side of the fd store, for tests of sockd under
// systemd: a NOTIFY_SOCKET that keeps the fds of FDSTORE=1 messages by
// FDNAME=, closes them on FDSTOREREMOVE=1 and answers BARRIER=1, and that
// hands the store to a restarted service as systemd does (Passed).
//
// Like systemd it keeps one copy of each open file (the first name wins),
// names an fd without a valid FDNAME= "stored" and closes the fds of
// other messages. Unlike it, it has no FileDescriptorStoreMax= (it keeps
// every fd), polls no fd (it ignores FDPOLL=), and takes messages from
// any process (NotifyAccess=all).
type Harness struct {
	conn *net.UnixConn
	path string
	done chan struct{} // closed when receive returns

	mu       sync.Mutex
	stored   []storedFD // most recently stored first, as systemd passes them
	messages []Message
}

// storedFD is one fd in the harness's store.
type storedFD struct {
	name     string
	fd       int
	dev, ino uint64
}

// Message is one notification the harness received.
type Message struct {
	PID   int    // the sender's, from its SCM_CREDENTIALS
	Text  string // as sent
	Files int    // how many fds came with it
}

// maxMessage is systemd's bound on a notification (NOTIFY_BUFFER_MAX);
// maxFDs is the kernel's on the fds of one message (SCM_MAX_FD).
const (
	maxMessage = 4096
	maxFDs     = 253
)

// NewHarness listens in dir (a path short enough for a Unix socket) and
// receives until Close.
func NewHarness(dir string) (*Harness, error) {
	path := filepath.Join(dir, "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("fdstore harness: %w", err)
	}
	// SO_PASSCRED, as systemd's notify socket: every message comes with
	// its sender's pid.
	rc, err := c.SyscallConn()
	if err == nil {
		ctlErr := rc.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
		})
		if err == nil {
			err = ctlErr
		}
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("fdstore harness: SO_PASSCRED: %w", err)
	}
	h := &Harness{conn: c, path: path, done: make(chan struct{})}
	go h.receive()
	return h, nil
}

// Env returns NOTIFY_SOCKET for the process under test.
func (h *Harness) Env() []string { return []string{"NOTIFY_SOCKET=" + h.path} }

// receive handles each message until the socket is closed.
func (h *Harness) receive() {
	defer close(h.done)
	buf := make([]byte, maxMessage+1)
	oob := make([]byte, unix.CmsgSpace(maxFDs*4)+unix.CmsgSpace(unix.SizeofUcred))
	for {
		// Go asks for MSG_CMSG_CLOEXEC: no fd received leaks into a
		// process a test starts.
		n, oobn, flags, _, err := h.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		var fds []int
		pid := 0
		cmsgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		for _, m := range cmsgs {
			if rights, err := unix.ParseUnixRights(&m); err == nil {
				fds = append(fds, rights...)
			} else if cred, err := unix.ParseUnixCredentials(&m); err == nil {
				pid = int(cred.Pid)
			}
		}
		// A cut message is dropped whole, as systemd does.
		if n > maxMessage || flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
			closeAll(fds)
			continue
		}
		h.handle(Message{PID: pid, Text: string(buf[:n]), Files: len(fds)}, fds)
	}
}

// handle applies one message. It takes the fds: each is stored or closed.
func (h *Harness) handle(m Message, fds []int) {
	var store, remove bool
	name, validName := "", false
	for _, line := range strings.Split(m.Text, "\n") {
		switch {
		case line == "FDSTORE=1":
			store = true
		case line == "FDSTOREREMOVE=1":
			remove = true
		case strings.HasPrefix(line, "FDNAME="):
			name = line[len("FDNAME="):]
			validName = CheckName(name) == nil
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.messages = append(h.messages, m)
	if remove && validName { // (Put never sends both in one message)
		h.stored = slices.DeleteFunc(h.stored, func(s storedFD) bool {
			if s.name == name {
				unix.Close(s.fd)
				return true
			}
			return false
		})
	}
	if !store {
		closeAll(fds) // BARRIER=1's among them
		return
	}
	if !validName {
		name = "stored"
	}
	for _, fd := range fds {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil || h.holdsLocked(st) {
			unix.Close(fd)
			continue
		}
		h.stored = slices.Insert(h.stored, 0, storedFD{name: name, fd: fd, dev: st.Dev, ino: st.Ino})
	}
}

// holdsLocked reports whether the store holds the open file st describes
// (systemd's same_fd; the inode is exact for sockets, which is what the
// tests store).
func (h *Harness) holdsLocked(st unix.Stat_t) bool {
	for _, s := range h.stored {
		if s.dev == st.Dev && s.ino == st.Ino {
			return true
		}
	}
	return false
}

// Sync returns once the harness has handled every message sent to it
// before Sync was called, as sd_notify_barrier(3) does: it sends
// BARRIER=1 with the write end of a pipe, which the harness closes once
// it gets there.
func (h *Harness) Sync(ctx context.Context) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("fdstore harness: sync: %w", err)
	}
	defer r.Close()
	err = (&Store{addr: h.path}).sendFile("BARRIER=1\n", w)
	w.Close()
	if err != nil {
		return fmt.Errorf("fdstore harness: sync: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { r.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		return nil // end of file: the harness closed its copy
	}
	return fmt.Errorf("fdstore harness: sync: %w", ctx.Err())
}

// Messages returns every message received so far, in order, Sync's
// BARRIER=1 among them.
func (h *Harness) Messages() []Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.messages)
}

// Files returns a duplicate of each fd the store holds, by name, in the
// order Passed passes them. The caller closes them.
func (h *Harness) Files() (map[string][]*os.File, error) {
	names, files, err := h.dup()
	if err != nil {
		return nil, err
	}
	m := make(map[string][]*os.File)
	for i, f := range files {
		m[names[i]] = append(m[names[i]], f)
	}
	return m, nil
}

// Passed returns what systemd gives the service's next main process: a
// duplicate of each stored fd, to become fds 3, 4, … (children.Spec's
// ExtraFiles), and the environment that says so, NOTIFY_SOCKET,
// LISTEN_FDS and LISTEN_FDNAMES (no LISTEN_* when the store is empty).
// LISTEN_PID must be the process's own pid: children.Spec.PIDEnv sets it.
// The caller closes the files.
func (h *Harness) Passed() (env []string, files []*os.File, err error) {
	names, files, err := h.dup()
	if err != nil {
		return nil, nil, err
	}
	env = h.Env()
	if len(files) > 0 {
		env = append(env, "LISTEN_FDS="+strconv.Itoa(len(files)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
	}
	return env, files, nil
}

// dup duplicates the stored fds (close-on-exec, their flags untouched).
func (h *Harness) dup() ([]string, []*os.File, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	names := make([]string, 0, len(h.stored))
	files := make([]*os.File, 0, len(h.stored))
	for _, s := range h.stored {
		fd, err := unix.FcntlInt(uintptr(s.fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, nil, fmt.Errorf("fdstore harness: dup %s: %w", s.name, err)
		}
		names = append(names, s.name)
		files = append(files, os.NewFile(uintptr(fd), s.name))
	}
	return names, files, nil
}

// Close stops receiving, closes every stored fd and removes the socket.
func (h *Harness) Close() error {
	err := h.conn.Close()
	<-h.done
	h.mu.Lock()
	for _, s := range h.stored {
		unix.Close(s.fd)
	}
	h.stored = nil
	h.mu.Unlock()
	if rmErr := os.Remove(h.path); err == nil && !errors.Is(rmErr, os.ErrNotExist) {
		err = rmErr
	}
	return err
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
