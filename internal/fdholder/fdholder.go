// Package fdholder keeps copies of sockd's file descriptors in a small
// process of its own, so that they outlive sockd: after sockd is killed
// or crashes, a new sockd takes them back and nothing was closed in
// between (s6-fdholderd's model). sockd holds there every listening
// socket (so an idle unit's queue survives) and the read end of every
// child's output pipe (so a child never dies of SIGPIPE or blocks on a
// full pipe while sockd is away: the holder drains those into a bounded
// buffer while no sockd is connected, and hands the buffered bytes back).
//
// The holder is the sockd binary started as "sockd-fdholder
// __sockd-fdholder DIR" (MaybeRunHolder). Connect starts it with
// children.Start, as sockd starts every child: in a process group of its
// own, with stdin, stdout and stderr on /dev/null, no other fd but a
// readiness pipe, an empty environment and / as its working directory.
// It is then a child of the sockd that started it, registered with
// package children, so that sockd's reaper leaves it to its one waiter
// and children.Orphans does not count it among a forking service's
// processes. When that sockd dies, the holder is reparented (to sockd's
// own subreaper, or init), which reaps it in the end; a later sockd is
// not its parent and does not need to be. It is not in a session of its
// own (a process group leader cannot call setsid(2)), but signals from
// the terminal go to the foreground process group only, and it ignores
// SIGHUP, SIGINT and SIGPIPE.
//
// The holder takes an exclusive flock(2) on DIR/fdholder.lock, so that
// it is the only one in DIR, removes a stale DIR/fdholder.sock (never a
// symlink or another kind of file), listens there (mode 0600: only its
// own uid may connect, and it checks SO_PEERCRED besides), and only then
// tells Connect it is ready. It serves one sockd at a time; a second
// connection is refused with ErrBusy, unless the first one's sockd has
// died. While idle it is blocked in epoll_wait and uses no CPU (the Go
// runtime wakes about once a minute).
//
// While no sockd is connected, the holder drains the output pipes (names
// starting with OutputPrefix) into a buffer of MaxOutput bytes per name,
// dropping the oldest bytes; a pipe whose writers have all gone is
// closed, and only its buffered bytes stay. While a sockd is connected,
// the holder does not read them: sockd reads its own copies.
//
// If sockd never comes back, the holder keeps holding, for ever: the
// listening sockets stay bound and their queues fill. It exits only when
// sockd tells it to (Client.Shutdown, at a clean stop of sockd) or when
// killed. If it dies, every request of a connected Client fails with
// ErrNoHolder, and the next Connect starts a new one; what it held is
// lost, sockd's own copies are not.
//
// sockd must Remove a name when it closes that fd for good (a removed
// unit's socket, a reaped child's pipe): the holder's copy would keep
// the port bound, or the pipe open. Its own copies it may close at any
// time. The holder holds one fd per name and a second one per output
// pipe, under its hard RLIMIT_NOFILE; Take needs one free fd per name in
// sockd, and 64 to spare. sockd delivers a name's Held.Output before
// what it reads from the pipe itself.
//
// The protocol is described in protocol.go.
package fdholder

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// SocketName is the holder's socket in its directory.
const SocketName = "fdholder.sock"

// Output names start with OutputPrefix: the holder drains those fds
// (pipe read ends) while no sockd is connected.
const OutputPrefix = "out/"

var (
	// ErrNoHolder: no holder answers in the directory, or the connection
	// to it failed (it died): Connect again.
	ErrNoHolder = errors.New("no holder answers")
	// ErrBusy: the holder serves another sockd.
	ErrBusy = errors.New("the holder serves another sockd")
	// ErrClosed: the Client was closed or shut down.
	ErrClosed = errors.New("client closed")
)

// maxPath is the longest socket path (sun_path holds 108 bytes with the
// terminating NUL).
const maxPath = 107

// Connect connects to the holder in dir, starting one (the running
// binary, /proc/self/exe, as the holder: see MaybeRunHolder) if none
// answers there. dir must exist and be writable by root alone.
//
// It returns an error wrapping ErrBusy when the holder serves another
// sockd.
func Connect(dir string) (*Client, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("fdholder: %w", err)
	}
	path := filepath.Join(dir, SocketName)
	if len(path) > maxPath {
		return nil, fmt.Errorf("fdholder: socket path %s: longer than %d bytes", path, maxPath)
	}
	c, err := dial(path)
	if !errors.Is(err, ErrNoHolder) {
		return c, err
	}
	p, err := start(dir)
	if err != nil && !errors.Is(err, errLocked) {
		return nil, err
	}
	// errLocked: another Connect started one at the same time. It may
	// be listening by now.
	if c, err = dial(path); err != nil {
		return nil, err
	}
	if p != nil && p.Pid() == c.pid {
		c.proc = p
	}
	return c, nil
}

// Held is what a holder gives back.
type Held struct {
	// Files holds a copy of every fd the holder holds, by name. Each
	// shares its open file description (its flags, O_NONBLOCK included)
	// with the fd given to Put. An output pipe whose writers all went
	// away while no sockd was connected is not there any more.
	Files map[string]*os.File
	// Output holds, by output name, what the holder read from that pipe
	// while no sockd was connected (at most MaxOutput bytes; the oldest
	// bytes go first), and Dropped how many bytes it dropped. They come
	// before whatever the pipe holds now.
	Output  map[string][]byte
	Dropped map[string]int64
}

// Close closes every file of h.
func (h *Held) Close() {
	for _, f := range h.Files {
		f.Close()
	}
}
