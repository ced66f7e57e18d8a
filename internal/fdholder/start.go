package fdholder

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/sockd/sockd/children"
)

// startTimeout bounds the wait for a new holder to listen: a safety net,
// as it takes milliseconds.
const startTimeout = 10 * time.Second

// start starts a holder in dir and waits until it listens. It returns an
// error wrapping errLocked when another holder has the directory's lock.
//
// The holder is started with children.Start, as every child of sockd
// is: registered, so that sockd's reaper leaves it to its one waiter,
// which reaps it if it exits while this sockd runs.
func start(dir string) (*children.Process, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("fdholder: start holder: %w", err)
	}
	defer r.Close()
	p, err := children.Start(children.Spec{
		Path:       "/proc/self/exe",
		Argv:       []string{"sockd-fdholder", holderArg, dir},
		Dir:        "/",
		Umask:      -1,
		ExtraFiles: []*os.File{w}, // readyFD
	})
	w.Close() // the holder has its own
	if err != nil {
		return nil, fmt.Errorf("fdholder: start holder: %w", err)
	}
	// The holder writes one message and closes the pipe, or dies.
	r.SetReadDeadline(time.Now().Add(startTimeout))
	msg, err := io.ReadAll(io.LimitReader(r, 4096))
	switch {
	case err != nil:
		p.Signal(syscall.SIGKILL)
		return nil, fmt.Errorf("fdholder: start holder in %s: %w", dir, err)
	case len(msg) == 1 && msg[0] == replyOK:
		return p, nil
	case len(msg) > 0 && msg[0] == replyBusy:
		return nil, fmt.Errorf("fdholder: start holder in %s: %w", dir, errLocked)
	case len(msg) > 0:
		return nil, fmt.Errorf("fdholder: start holder in %s: %s", dir, msg[1:])
	}
	// Closed with nothing said: it died, or is not a holder (a main
	// that does not call MaybeRunHolder first).
	p.Signal(syscall.SIGKILL)
	select {
	case <-p.Exited():
	case <-time.After(startTimeout):
	}
	return nil, fmt.Errorf("fdholder: start holder in %s: %w", dir, errors.New("it exited before it listened ("+p.Exit().String()+"); does main call fdholder.MaybeRunHolder first?"))
}
