package supervisord

// Type=forking: the process sockd starts forks the daemon and exits; the
// daemon, named by PIDFile= (or guessed, GuessMainPID=), becomes the
// unit's main process. sockd adopts it through a pidfd (children.Adopt);
// as the child subreaper it reaps it, and so learns its exit status.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/fsnotify/fsnotify"
	"github.com/sockd/sockd/children"
)

// maxPIDFile bounds what sockd reads of a PID file.
const maxPIDFile = 64

// errPIDFileEmpty is a PID file created but not written yet.
var errPIDFileEmpty = errors.New("empty")

// forked follows the clean exit of a forking service's first process:
// it adopts the main process, which is then ready.
func (u *unit) forked(p *proc) {
	if p.pidWait != nil {
		p.pidWait() // the PID file came (or changed): read it now
		p.pidWait = nil
	}
	u.pids.remove(p.Pid(), u)
	pid, err := u.forkedMainPID()
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errPIDFileEmpty) {
		// As systemd: the daemon may write it a little after its parent
		// exited (created empty, then written); wait for it, within
		// TimeoutStartSec= (evStartTimeout ends the wait).
		if werr := u.waitPIDFile(p); werr == nil {
			return
		}
	}
	var ap process
	if err == nil {
		ap, err = u.adopt(pid)
		ap = u.adoptInto(ap, killsCgroup(u.svc))
	}
	if err != nil {
		u.forkFailed(p, err)
		return
	}
	u.log.Info().Int("pid", pid).Int("starter", p.Pid()).Msg("Type=forking: main process")
	p.startPid = p.Pid()
	p.starter = false
	p.p = ap
	p.pid.Store(int64(pid))
	p.mainPid = pid
	for _, n := range u.pids.add(pid, u) {
		u.deliverNotify(n)
	}
	go p.reportExit(u, ap)
	if j := u.job; j != nil && j.kind == reqRestart {
		// The restart's new process is the daemon, not its starter.
		for i, n := range j.newPids {
			if n == p.startPid {
				j.newPids[i] = pid
			}
		}
	}
	u.startingReady(event{kind: evReady, p: p})
}

// forkFailed fails a forking start whose main process is not known.
func (u *unit) forkFailed(p *proc, err error) {
	u.log.Error().Err(err).Msg("Type=forking: no main process")
	p.exited = true
	u.slots[p.slot] = nil
	u.result, u.lastExit = "protocol", err.Error()
	u.finishStart(err.Error())
	if u.running() == 0 {
		u.cancelHelper()
		u.afterLastExit(p, p.p.Exit())
	}
}

// waitPIDFile watches PIDFile='s directory (inotify, no polling) and
// sends p's exit again once the file appears, so that forked reads it.
func (u *unit) waitPIDFile(p *proc) error {
	path := u.svc.PIDFile
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	if err := w.Add(filepath.Dir(path)); err != nil {
		w.Close()
		return err
	}
	ctx, cancel := context.WithCancel(u.lifetime())
	p.pidWait = cancel
	u.log.Info().Str("PIDFile", path).Msg("Type=forking: waiting for the PID file")
	u.helpers.Add(1)
	go func() {
		defer u.helpers.Done()
		defer w.Close()
		// It may have come between the read and the watch (empty, it
		// is being written: wait for the write).
		if fi, err := os.Lstat(path); err == nil && fi.Size() > 0 {
			u.send(event{kind: evExit, p: p})
			return
		}
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if ev.Name == path && ev.Has(fsnotify.Create|fsnotify.Write|fsnotify.Rename) {
					u.send(event{kind: evExit, p: p})
					return
				}
			case _, ok := <-w.Errors:
				if !ok {
					return
				}
			}
		}
	}()
	return nil
}

// forkedMainPID reads PIDFile=, or guesses the main process.
func (u *unit) forkedMainPID() (int, error) {
	if u.svc.PIDFile != "" {
		return readPIDFile(u.svc.PIDFile)
	}
	if !u.svc.GuessMainPID {
		return 0, fmt.Errorf("no PIDFile= and GuessMainPID=no")
	}
	orphans := children.Orphans()
	if len(orphans) != 1 {
		return 0, fmt.Errorf("cannot guess the main process (%d candidates): set PIDFile=", len(orphans))
	}
	return orphans[0], nil
}

// readPIDFile reads a PID file without following a symbolic link: a
// regular file holding one positive number.
func readPIDFile(path string) (int, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return 0, fmt.Errorf("PIDFile=%s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("PIDFile=%s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("PIDFile=%s: not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPIDFile+1))
	if err != nil {
		return 0, fmt.Errorf("PIDFile=%s: %w", path, err)
	}
	if len(b) > maxPIDFile {
		return 0, fmt.Errorf("PIDFile=%s: longer than %d bytes", path, maxPIDFile)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return 0, fmt.Errorf("PIDFile=%s: %w", path, errPIDFileEmpty)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("PIDFile=%s: %q is not a pid", path, bytes.TrimSpace(b))
	}
	return pid, nil
}
