package main

// In-place upgrade: sockd execs a (possibly new) binary as the same
// process, its children staying its children; the next sockd takes the
// sockets, pipes and processes back from the fd holder and the state
// file (supervisord/reexec.go, recover.go).

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/internal/fdholder"
	"github.com/sockd/sockd/supervisord"
)

// apiName names the API socket in the fd holder.
const apiName = "sockd/api"

// reexec checks the binary at exe, readies the Daemon and execs exe. It
// returns only when sockd does not re-exec, with the reason; the Daemon
// then goes on as before.
func reexec(exe string, d *supervisord.Daemon, log zerolog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	commit, err := prepareReexec(ctx, exe, d, log)
	if err != nil {
		return err
	}
	return commit()
}

// prepareReexec checks the binary and readies the Daemon; commit execs
// (and returns only if the exec failed, the Daemon going on as before).
// sockctl daemon-reexec answers between the two.
func prepareReexec(ctx context.Context, exe string, d *supervisord.Daemon, log zerolog.Logger) (commit func() error, err error) {
	if err := selfTest(exe); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := d.PrepareReexec(ctx); err != nil {
		return nil, err
	}
	return func() error {
		log.Info().Str("binary", exe).Msg("re-executing now")
		err := syscall.Exec(exe, os.Args, os.Environ())
		d.AbortReexec()
		return fmt.Errorf("exec %s: %w", exe, err)
	}, nil
}

// selfTest runs `exe self-test`: the binary must start, and read the
// state file this sockd writes. It runs through children.Start, not
// os/exec: sockd is the child subreaper, and its reaper takes the exit of
// any child no children.Process owns (a CI run saw the self-test fail
// with "waitid: no child processes").
func selfTest(exe string) error {
	var mu sync.Mutex
	var out, errs []string
	collect := func(to *[]string) func(string) {
		return func(l string) {
			mu.Lock()
			*to = append(*to, l)
			mu.Unlock()
		}
	}
	p, err := children.Start(children.Spec{Path: exe, Argv: []string{exe, "self-test"}, Umask: -1,
		Stdout: children.Output{Lines: collect(&out)}, Stderr: children.Output{Lines: collect(&errs)}})
	if err != nil {
		return fmt.Errorf("re-exec: %s fails its self-test: %w", exe, err)
	}
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		p.Signal(syscall.SIGKILL)
		<-p.Done()
		return fmt.Errorf("re-exec: %s fails its self-test: no answer within 10 s", exe)
	}
	mu.Lock()
	defer mu.Unlock()
	if st := p.Exit(); !st.Success() {
		err := fmt.Errorf("%s", st)
		if len(errs) > 0 {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(strings.Join(errs, "\n")))
		}
		return fmt.Errorf("re-exec: %s fails its self-test: %w", exe, err)
	}
	got := strings.Join(out, "\n")
	if want := fmt.Sprintf(" state-version %d", supervisord.StateVersion); !strings.Contains(got, want) {
		return fmt.Errorf("re-exec: %s self-test says %q; this sockd writes state version %d", exe, strings.TrimSpace(got), supervisord.StateVersion)
	}
	return nil
}

// listenAPI listens on the API socket: the one a previous sockd (before
// a crash or a re-exec) left in the fd holder if it is still bound at
// path, so that no sockctl finds it missing meanwhile; else a new one.
func listenAPI(path string, mode os.FileMode, gid int, held *os.File) (net.Listener, error) {
	if held != nil {
		defer held.Close()
		if heldAt(held, path) {
			l, err := net.FileListener(held)
			if err == nil {
				if ul, ok := l.(*net.UnixListener); ok {
					ul.SetUnlinkOnClose(false)
				}
				return l, nil
			}
		}
	}
	return api.ListenGroup(path, mode, gid)
}

// heldAt reports whether f is a listening Unix stream socket bound at
// path, and path is a socket file.
func heldAt(f *os.File, path string) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	rc.Control(func(fd uintptr) {
		sa, err := unix.Getsockname(int(fd))
		su, isUnix := sa.(*unix.SockaddrUnix)
		acc, aerr := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		ok = err == nil && isUnix && su.Name == path && aerr == nil && acc == 1
	})
	var st unix.Stat_t
	return ok && unix.Lstat(path, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFSOCK
}

// keepAPI gives the keepers (the fd holder, systemd's fd store) a copy
// of the API socket.
func keepAPI(l net.Listener, log zerolog.Logger, keepers ...supervisord.FDKeeper) {
	ul, ok := l.(*net.UnixListener)
	if len(keepers) == 0 || !ok {
		return
	}
	f, err := ul.File()
	if err != nil {
		log.Warn().Err(err).Msg("API socket not kept")
		return
	}
	defer f.Close()
	for _, k := range keepers {
		if err := k.Put(apiName, f); err != nil {
			log.Warn().Err(err).Msg("API socket not kept")
		}
	}
}

// holderKeeper is the holder as a keeper list (none if nil).
func holderKeeper(h *fdholder.Client) []supervisord.FDKeeper {
	if h == nil {
		return nil
	}
	return []supervisord.FDKeeper{h}
}
