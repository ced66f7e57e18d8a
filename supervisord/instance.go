package supervisord

// The instances of an Accept=yes socket: one process per connection,
// set up, started, stopped and forgotten by the acceptor's actor.

import (
	"fmt"
	"os"
	"time"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/units"
)

// instance is one process serving one connection.
type instance struct {
	name     string // "echo@0-127.0.0.1:5000-127.0.0.1:54321.service"
	svc      *units.Service
	pr       *proc
	source   string
	stopping bool
	exited   bool
	// execEnv and execRelease are setUpExec's for this instance.
	execEnv     []string
	execRelease func()
	privTmp     *privateTmp // its own PrivateTmp= pair, as systemd gives each instance
}

// spawn starts in's process with conn as fd 3, or, with a standard
// stream that is socket, as that stream only (the inetd way: systemd
// then sets no LISTEN_FDS either). It builds the child as a unit's spawn
// does, minus what instances do not have: no NOTIFY_SOCKET (readiness
// does not apply), no watchdog.
func (a *acceptor) spawn(in *instance, conn *os.File, info connFacts) (*proc, error) {
	svc := in.svc
	pr := &proc{started: time.Now()}
	defer pr.spawning()()
	env, err := environment(svc)
	if err != nil {
		return nil, err
	}
	env = addEnvDefaults(env, in.execEnv...)
	// Output lines go to the socket unit's log ring, tagged with the
	// instance.
	h, log := a.handle, a.log.With().Str("instance", svc.Name).Logger()
	sink := func(stream, line string) {
		pr.addTail(line)
		l := api.LogLine{Time: time.Now(), Pid: pr.linePid(), Stream: stream, Line: line}
		h.logs.add(l)
		h.output(&log, OutputLine{Unit: h.name, Instance: svc.Name, LogLine: l})
	}
	box, err := sandboxSetup(svc, a.roots, in.privTmp, a.staging)
	if err != nil {
		return nil, err
	}
	spec, closers, err := processSpec(svc, env, sink, []namedFile{{acceptFDName, conn}}, box)
	defer closeAll(closers)
	if err != nil {
		return nil, err
	}
	if !stdioSocket(svc) {
		spec.ExtraFiles = []*os.File{conn}
		spec.PIDEnv = "LISTEN_PID"
		// The protocol's variables win over the unit's, as for normal units.
		spec.Env = setEnv(spec.Env, "LISTEN_FDS=1", "LISTEN_FDNAMES="+acceptFDName)
	}
	if info.remoteAddr != "" {
		spec.Env = setEnv(spec.Env, "REMOTE_ADDR="+info.remoteAddr, "REMOTE_PORT="+info.remotePort)
	}
	p, err := cgStarter(a.cg, killGroupOnExit(svc), a.start)(spec)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", svc.Name, err)
	}
	pr.p = p
	pr.pid.Store(int64(p.Pid()))
	pr.mainPid = p.Pid()
	pr.ready = true
	go func() {
		<-p.Done()
		a.send(instExited{in})
	}()
	return pr, nil
}

// instExited forgets an instance that has exited: instances are never
// restarted.
func (a *acceptor) instExited(in *instance) {
	in.exited = true
	a.tearDownExec(in)
	st := in.pr.p.Exit()
	clean := cleanExit(in.svc, st)
	lg := a.log.Info()
	if !in.stopping && !clean {
		lg = a.log.Warn()
	}
	lg.Int("pid", in.pr.Pid()).Str("instance", in.name).Str("exit", st.String()).Msg("exited")
	for i, x := range a.insts {
		if x == in {
			a.insts = append(a.insts[:i], a.insts[i+1:]...)
			break
		}
	}
	if a.sources[in.source]--; a.sources[in.source] <= 0 {
		delete(a.sources, in.source)
	}
	a.lastExit = st.String()
	switch {
	case in.stopping || clean:
		a.result = "success"
	case st.Signal != 0:
		a.result = "signal"
	default:
		a.result = "exit-code"
	}
	a.publishExited(in, st, a.result)
	kept := a.waits[:0]
	for _, w := range a.waits {
		if w.pending[in] {
			delete(w.pending, in)
			a.emit(w, api.PhaseStopped, in.pr.Pid(), st.String())
		}
		if len(w.pending) > 0 {
			kept = append(kept, w)
			continue
		}
		a.finishWait(w)
	}
	a.waits = kept
}

// stopInstance tells in to stop with KillSignal= to the KillMode=
// target, SIGKILL after TimeoutStopSec=, as a unit's processes stop.
func (a *acceptor) stopInstance(in *instance) {
	if in.stopping || in.exited {
		return
	}
	in.stopping = true
	svc := in.svc
	sig, timeout := stopSignal(svc), stopTimeout(svc)
	to, kill := killTargets(svc)
	a.log.Info().Int("pid", in.pr.Pid()).Str("instance", in.name).Str("signal", sig.String()).Msg("stopping")
	signalTarget(in.pr.p, to, sig)
	if kill != children.None && timeout != units.Infinity {
		time.AfterFunc(timeout, func() { a.send(instKill{in}) })
	}
}

// tearDownExec removes an instance's RuntimeDirectory= (shared by every
// instance, as in systemd: each exit removes it) and frees its dynamic
// user.
func (a *acceptor) tearDownExec(in *instance) {
	if err := in.privTmp.remove(); err != nil {
		a.log.Error().Err(err).Str("instance", in.name).Msg("removing PrivateTmp= directories")
	}
	in.privTmp = nil
	if in.execRelease == nil {
		return
	}
	if err := tearDownExecDirs(in.svc, a.roots, true); err != nil {
		a.log.Error().Err(err).Str("instance", in.name).Msg("removing RuntimeDirectory=")
	}
	in.execRelease()
	in.execEnv, in.execRelease = nil, nil
}
