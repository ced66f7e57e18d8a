package activation

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// longAgo is a deadline in the past: it wakes a waiting read at once.
var longAgo = time.Unix(1, 0)

// Wait blocks until one of ls is readable — a connection waits in its
// accept queue, or a datagram in its receive queue — without accepting
// or reading anything, and returns that listener. It returns ctx.Err()
// when ctx ends first. At most one Wait may be under way per listener.
// It costs no CPU while it waits (the runtime's netpoller).
//
// Readiness is checked with poll(2) before any waiting, so a connection
// that was already queued (one a previous child left behind) makes Wait
// return at once. Wait returns an error naming the listener when one of
// ls is closed meanwhile.
func Wait(ctx context.Context, ls []*Listener) (*Listener, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(ls) == 0 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	// interrupt wakes every waiting goroutine through a past read
	// deadline. sync.Once also makes a late call wait for a running one,
	// so that the deadlines are cleared after they were set.
	fs := make([]*os.File, len(ls))
	for i, l := range ls {
		f, err := l.pollFile()
		if err != nil {
			for _, l := range ls[:i] {
				l.releasePoll()
			}
			return nil, fmt.Errorf("wait %s %s: %w", l.spec.Network, l.addr, err)
		}
		fs[i] = f
	}
	defer func() {
		for _, l := range ls {
			l.releasePoll()
		}
	}()
	var once sync.Once
	interrupt := func() {
		once.Do(func() {
			for _, f := range fs {
				_ = f.SetReadDeadline(longAgo)
			}
		})
	}
	stop := context.AfterFunc(ctx, interrupt)

	type result struct {
		l   *Listener
		err error
	}
	results := make(chan result, len(ls))
	wait := func(l *Listener, f *os.File) {
		err := waitReadable(f)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			interrupt() // readable or failed: wake the others
		}
		results <- result{l, err}
	}
	// The last listener is waited for in this goroutine: an idle unit
	// with one socket costs no goroutine beyond its caller.
	for i, l := range ls[:len(ls)-1] {
		go wait(l, fs[i])
	}
	wait(ls[len(ls)-1], fs[len(ls)-1])
	var ready *Listener
	var firstErr error
	for range ls {
		r := <-results
		switch {
		case r.err == nil:
			if ready == nil {
				ready = r.l
			}
		case errors.Is(r.err, os.ErrDeadlineExceeded):
			// Woken by interrupt.
		default:
			if firstErr == nil {
				firstErr = fmt.Errorf("wait %s %s: %w", r.l.spec.Network, r.l.addr, r.err)
			}
		}
	}
	stop()
	interrupt()
	for _, f := range fs {
		_ = f.SetReadDeadline(time.Time{})
	}
	switch {
	case ready != nil:
		return ready, nil
	case firstErr != nil:
		return nil, firstErr
	}
	return nil, ctx.Err()
}

// waitReadable waits, through the netpoller, until f is readable.
func waitReadable(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		// The netpoller is edge-triggered: check the level on every
		// wake-up, including the first.
		ok, err := readable(int(fd))
		if err != nil {
			perr = err
			return true
		}
		return ok
	})
	if err != nil {
		return err
	}
	return perr
}

// readable tells whether fd has a connection or data waiting, without
// waiting.
func readable(fd int) (bool, error) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, os.NewSyscallError("poll", err)
		}
		if n > 0 && fds[0].Revents&unix.POLLNVAL != 0 {
			return false, os.NewSyscallError("poll", unix.EBADF)
		}
		return n > 0 && fds[0].Revents&unix.POLLIN != 0, nil
	}
}

// Accept accepts one connection on an Accept=yes stream socket and
// returns it as a blocking file for a child's fd 3, with the peer address.
// The file is close-on-exec in sockd and non-blocking if the unit sets
// NonBlocking=yes. Accept waits through the netpoller and returns an
// error once the listener is closed.
func (l *Listener) Accept() (*os.File, net.Addr, error) {
	op := "accept " + l.spec.Network + " " + l.addr
	if l.sockType != unix.SOCK_STREAM && l.sockType != unix.SOCK_SEQPACKET {
		return nil, nil, fmt.Errorf("%s: not a stream socket", op)
	}
	pf, err := l.pollFile()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", op, err)
	}
	rc, err := pf.SyscallConn()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", op, err)
	}
	nfd := -1
	var sa unix.Sockaddr
	var aerr error
	err = rc.Read(func(fd uintptr) bool {
		for {
			// Check first: the listening socket is blocking if the unit
			// is not Accept=yes, and accept(2) must not block a thread.
			ok, err := readable(int(fd))
			if err != nil {
				aerr = err
				return true
			}
			if !ok {
				return false
			}
			nfd, sa, err = unix.Accept4(int(fd), unix.SOCK_CLOEXEC)
			switch {
			case err == nil:
				return true
			case errors.Is(err, unix.EINTR), errors.Is(err, unix.ECONNABORTED):
				continue
			case errors.Is(err, unix.EAGAIN):
				return false
			default:
				aerr = os.NewSyscallError("accept4", err)
				return true
			}
		}
	})
	if err == nil {
		err = aerr
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", op, err)
	}
	peer := peerAddr(l.spec.Network, sa)
	name := l.spec.Network + " " + l.addr
	if peer != nil {
		name += "<-" + peer.String()
	}
	// Accepted sockets are blocking: os.NewFile does not poll them, and
	// its Fd() leaves the mode alone.
	f := os.NewFile(uintptr(nfd), name)
	if l.nonBlocking {
		if err := unix.SetNonblock(nfd, true); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("%s: %w", op, os.NewSyscallError("fcntl F_SETFL", err))
		}
	}
	return f, peer, nil
}
