package main

// sockd's own RLIMIT_NOFILE, raised at start as systemd raises its own,
// and the limit its children get: the one sockd was started with.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/supervisord"
)

// childNofileEnv carries the limit sockd was started with ("soft:hard")
// across a re-exec, which starts with the raised one. sockd sets it in
// its own environment; a unit's processes never inherit sockd's
// environment.
const childNofileEnv = "SOCKD_CHILD_NOFILE"

// nofile is what raiseNofile did.
type nofile struct {
	started, now unix.Rlimit // sockd's limit at start, and after
	raiseErr     error       // why the hard limit stayed, if it did
}

// raiseNofile raises sockd's RLIMIT_NOFILE: the soft limit to the hard
// one, and, as root, the hard limit to fs.nr_open (each idle unit keeps
// its sockets open). Children get the limit sockd was started with
// (supervisord.SetChildNofile), unless a unit sets LimitNOFILE=: Go's
// own restoring of the limit at exec stops once a program changes it.
//
// Go has raised the soft limit to the hard one less 1 before main runs
// and keeps the value it found to itself; a shell started now gets
// that value back from Go (the restoring at exec still works), and says
// it.
func raiseNofile() nofile {
	var r nofile
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r.now); err != nil {
		r.raiseErr = err
		return r
	}
	r.started = r.now
	if s, ok := parseNofile(os.Getenv(childNofileEnv)); ok {
		r.started = s // a re-exec: the first sockd's
	} else if r.now.Max > 1 && r.now.Cur == r.now.Max-1 {
		if soft, err := shellSoftNofile(); err == nil {
			r.started.Cur = soft
		}
	}
	os.Setenv(childNofileEnv, fmt.Sprintf("%d:%d", r.started.Cur, r.started.Max))
	want := r.now
	want.Cur = want.Max
	if os.Geteuid() == 0 {
		if nr, err := readNrOpen(); err != nil {
			r.raiseErr = err
		} else if nr > want.Max {
			want = unix.Rlimit{Cur: nr, Max: nr}
		}
	}
	if want != r.now {
		err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want)
		if err != nil && want.Max > r.now.Max {
			// No CAP_SYS_RESOURCE (a container): the soft limit alone.
			r.raiseErr = fmt.Errorf("raise the hard limit to fs.nr_open %d: %w", want.Max, err)
			want = unix.Rlimit{Cur: r.now.Max, Max: r.now.Max}
			err = unix.Setrlimit(unix.RLIMIT_NOFILE, &want)
		}
		if err == nil {
			r.now = want
		}
	}
	if r.now != r.started {
		supervisord.SetChildNofile(r.started.Cur, r.started.Max)
	}
	return r
}

// log says sockd's limit and its children's.
func (r nofile) log(log zerolog.Logger) {
	ev := log.Info()
	if r.raiseErr != nil {
		ev = ev.AnErr("not_raised", r.raiseErr)
	}
	ev.Uint64("soft", r.now.Cur).Uint64("hard", r.now.Max).
		Uint64("children_soft", r.started.Cur).Uint64("children_hard", r.started.Max).Msg("RLIMIT_NOFILE")
}

// parseNofile parses "soft:hard".
func parseNofile(s string) (unix.Rlimit, bool) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return unix.Rlimit{}, false
	}
	cur, err1 := strconv.ParseUint(a, 10, 64)
	max, err2 := strconv.ParseUint(b, 10, 64)
	if err1 != nil || err2 != nil || cur > max {
		return unix.Rlimit{}, false
	}
	return unix.Rlimit{Cur: cur, Max: max}, true
}

// shellSoftNofile asks /bin/sh for its soft RLIMIT_NOFILE: what Go
// gives a child while sockd has not changed its own limit, the one sockd
// was started with.
func shellSoftNofile() (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", "ulimit -Sn")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("/bin/sh -c 'ulimit -Sn': %w", err)
	}
	s := strings.TrimSpace(string(out))
	if s == "unlimited" {
		return unix.RLIM_INFINITY, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/bin/sh -c 'ulimit -Sn': %q: %w", s, err)
	}
	return n, nil
}

// readNrOpen reads fs.nr_open, the most RLIMIT_NOFILE may be.
func readNrOpen() (uint64, error) {
	b, err := os.ReadFile("/proc/sys/fs/nr_open")
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n == 0 {
		return 0, errors.Join(errors.New("fs.nr_open: not a number"), err)
	}
	return n, nil
}
