package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
)

// maybeRunHelper runs children's exec helper when sockctl was started
// as one (exec's command, to set LISTEN_PID to its own pid).
func maybeRunHelper() { children.MaybeRunHelper() }

// stopGrace is how long exec's command has to exit after SIGTERM when
// sockd ends the hold, before its process group is killed.
const stopGrace = 10 * time.Second

// forwarded are the signals exec passes on to its command.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// exec holds the unit's sockets and runs the command on them as the
// systemd protocol hands them over: fds 3.. in order, LISTEN_FDS,
// LISTEN_FDNAMES and LISTEN_PID (its own pid, set by children.Start).
// The command runs in its own process group with sockctl's stdin,
// stdout and stderr; SIGINT, SIGTERM and SIGHUP are passed on to it.
// sockctl lets go of the sockets (closes the API connection) only once
// the command and what is left of its process group are gone, and
// exits with the command's status.
func (c *cli) exec(ctx context.Context, cl *api.Client, o *options) error {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwarded...) // before the hold: none is lost
	defer signal.Stop(sigs)
	h, err := cl.Hold(ctx, o.args[0])
	if err != nil {
		return err
	}
	defer h.Release()
	p, err := children.Start(children.Spec{
		Path:       o.cmd[0],
		Argv:       o.cmd,
		Env:        listenEnv(os.Environ(), h.Names),
		ExtraFiles: h.Files,
		PIDEnv:     "LISTEN_PID",
		Umask:      -1,
		// A worker that outlives its master must not keep serving
		// sockets that are sockd's again.
		KillGroupOnExit: true,
		Stdin:           children.Input{File: c.stdin},
		Stdout:          output(c.stdout),
		Stderr:          output(c.stderr),
	})
	for _, f := range h.Files {
		f.Close() // the command has its own
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "sockctl: exec %s: %v\n", h.Unit, err)
		return &exitError{127}
	}
	ended := h.Ended
	for {
		select {
		case sig := <-sigs:
			p.Signal(sig.(syscall.Signal))
		case <-ended:
			ended = nil
			fmt.Fprintf(c.stderr, "sockctl: exec %s: sockd ended the hold (the unit was removed or its sockets changed, "+
				"or sockd is stopping): stopping %s (pid %d)\n", h.Unit, o.cmd[0], p.Pid())
			go p.Terminate(syscall.SIGTERM, children.Main, stopGrace, children.Group)
		case <-p.Done():
			return exitStatus(p.Exit())
		}
	}
}

// exitStatus is sockctl's exit for the command's: its code, or 128+N
// for a command killed by signal N, as a shell reports it.
func exitStatus(st children.ExitStatus) error {
	switch {
	case st.Err != nil:
		return st.Err
	case st.Signal != 0:
		return &exitError{128 + int(st.Signal)}
	case st.Code != 0:
		return &exitError{st.Code}
	}
	return nil
}

// listenEnv is env without the socket activation variables it may have,
// plus LISTEN_FDS and LISTEN_FDNAMES for names (children.Start adds
// LISTEN_PID).
func listenEnv(env, names []string) []string {
	out := make([]string, 0, len(env)+2)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if k == "LISTEN_FDS" || k == "LISTEN_FDNAMES" || k == "LISTEN_PID" {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "LISTEN_FDS="+strconv.Itoa(len(names)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
}

// output gives the command w itself when it is a file (sockctl's
// stdout, stderr), else copies its lines to w (tests).
func output(w io.Writer) children.Output {
	if f, ok := w.(*os.File); ok {
		return children.Output{File: f}
	}
	var mu sync.Mutex
	return children.Output{Lines: func(line string) {
		mu.Lock()
		defer mu.Unlock()
		io.WriteString(w, line+"\n")
	}}
}
