package supervisord

import (
	"bufio"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sockd/sockd/activation"
	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/units"
)

// defaultPath is the PATH systemd gives services.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// proc is one child process of a unit, as the unit's actor sees it. Its
// fields are owned by the actor, except pid and tail, which the output
// goroutines read.
type proc struct {
	p       *children.Process
	pid     atomic.Int64
	gen     int
	slot    int
	started time.Time

	ready     bool
	stopping  bool // sockd asked it to stop
	timedOut  bool // not ready within TimeoutStartSec
	watchdog  bool // missed its watchdog
	mainPid   int  // MAINPID= from sd_notify, else the pid
	status    string
	restartOp *op // set while it is the new process of a restart

	watchdogToken int

	tailMu sync.Mutex
	tail   []string // last output lines, for a failed restart's report
}

const tailLines = 20

func (p *proc) Pid() int { return int(p.pid.Load()) }

func (p *proc) addTail(line string) {
	p.tailMu.Lock()
	defer p.tailMu.Unlock()
	if len(p.tail) == tailLines {
		copy(p.tail, p.tail[1:])
		p.tail = p.tail[:tailLines-1]
	}
	p.tail = append(p.tail, line)
}

func (p *proc) Tail() []string {
	p.tailMu.Lock()
	defer p.tailMu.Unlock()
	return append([]string(nil), p.tail...)
}

// spawn starts one process of the unit's service on its listeners.
func (u *unit) spawn(slot, gen int) (*proc, error) {
	svc := u.svc
	if len(svc.ExecStart) == 0 {
		return nil, fmt.Errorf("%s: no ExecStart=", svc.Name)
	}
	cmd := svc.ExecStart[0]
	env, err := u.environment()
	if err != nil {
		return nil, err
	}
	pr := &proc{gen: gen, slot: slot, started: time.Now()}
	spec := children.Spec{
		Path:  cmd.Path,
		Argv:  cmd.Expand(env),
		Env:   env,
		Dir:   workingDir(svc, env),
		Umask: int(svc.UMask),
	}
	if svc.HasNice {
		n := svc.Nice
		spec.Nice = &n
	}
	for _, l := range svc.Limits {
		spec.Rlimits = append(spec.Rlimits, children.Rlimit{Resource: l.Resource, Cur: l.Soft, Max: l.Hard})
	}
	if len(u.ls) > 0 {
		if u.idle() {
			// No child holds the sockets: put back the unit's blocking
			// mode, which the previous child may have changed. Never
			// while one serves (see activation.Listener.File).
			for _, l := range u.ls {
				if err := l.ResetMode(); err != nil {
					return nil, fmt.Errorf("%s: %w", svc.Name, err)
				}
			}
		}
		for _, l := range u.ls {
			spec.ExtraFiles = append(spec.ExtraFiles, l.File())
		}
		spec.Env = append(spec.Env, activation.Env(u.ls)...)
		spec.PIDEnv = "LISTEN_PID"
	}
	if u.notify != nil {
		spec.Env = append(spec.Env, "NOTIFY_SOCKET="+u.notify.Path())
	}
	if svc.WatchdogSec > 0 && svc.WatchdogSec != units.Infinity {
		spec.Env = append(spec.Env, "WATCHDOG_USEC="+strconv.FormatInt(svc.WatchdogSec.Microseconds(), 10))
	}
	if svc.User != "" || svc.Group != "" {
		cred, err := credential(svc)
		if err != nil {
			return nil, err
		}
		spec.Credential = cred
	}
	closers, err := u.outputs(&spec, pr)
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	p, err := children.Start(spec)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", svc.Name, err)
	}
	pr.p = p
	pr.pid.Store(int64(p.Pid()))
	pr.mainPid = p.Pid()
	go func() {
		<-p.Done()
		select {
		case u.evs <- procExited{pr}:
		case <-u.quit:
		}
	}()
	return pr, nil
}

// workingDir resolves WorkingDirectory=: "~" is the home of User= (or
// sockd's), and a missing directory with the "-" prefix means none.
func workingDir(svc *units.Service, env []string) string {
	dir := svc.WorkingDirectory
	if dir == "~" {
		dir = os.Getenv("HOME")
		for _, kv := range env {
			if h, ok := strings.CutPrefix(kv, "HOME="); ok {
				dir = h
			}
		}
	}
	if dir != "" && svc.WorkingDirectoryOptional {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return ""
		}
	}
	return dir
}

// outputs sets spec's Stdout and Stderr from StandardOutput=/StandardError=.
// It returns files to close once the child has started.
func (u *unit) outputs(spec *children.Spec, pr *proc) ([]*os.File, error) {
	var closers []*os.File
	for _, s := range []struct {
		name string
		out  units.Output
		dst  *children.Output
		std  *os.File
	}{
		{"stdout", u.svc.StandardOutput, &spec.Stdout, os.Stdout},
		{"stderr", u.svc.StandardError, &spec.Stderr, os.Stderr},
	} {
		stream := s.name
		switch s.out.Kind {
		case "null":
		case "inherit":
			s.dst.File = s.std
		case "file", "append", "truncate":
			flags := os.O_WRONLY | os.O_CREATE
			switch s.out.Kind {
			case "append":
				flags |= os.O_APPEND
			case "truncate":
				flags |= os.O_TRUNC
			}
			f, err := os.OpenFile(s.out.Path, flags, 0o644)
			if err != nil {
				return closers, fmt.Errorf("%s: Standard%s=: %w", u.svc.Name, strings.Title(stream[3:]), err)
			}
			closers = append(closers, f)
			s.dst.File = f
		default: // "journal", "": sockd's log
			s.dst.Lines = func(line string) { u.outputLine(pr, stream, line) }
		}
	}
	return closers, nil
}

// environment builds the child's environment from the unit alone: never
// sockd's own NOTIFY_SOCKET, LISTEN_* or WATCHDOG_*.
func (u *unit) environment() ([]string, error) {
	svc := u.svc
	env := map[string]string{"PATH": defaultPath}
	var order []string
	set := func(kv string) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return
		}
		if _, seen := env[k]; !seen {
			order = append(order, k)
		}
		env[k] = v
	}
	order = append(order, "PATH")
	if svc.User != "" {
		if usr, err := user.Lookup(svc.User); err == nil {
			set("USER=" + usr.Username)
			set("LOGNAME=" + usr.Username)
			set("HOME=" + usr.HomeDir)
		}
	}
	for _, name := range svc.PassEnvironment {
		if v, ok := os.LookupEnv(name); ok {
			set(name + "=" + v)
		}
	}
	for _, kv := range svc.Environment {
		set(kv)
	}
	for _, ef := range svc.EnvironmentFiles {
		kvs, err := readEnvFile(ef.Path)
		if err != nil {
			if ef.Optional && os.IsNotExist(err) {
				continue
			}
			return nil, fmt.Errorf("%s: EnvironmentFile=%s: %w", svc.Name, ef.Path, err)
		}
		for _, kv := range kvs {
			set(kv)
		}
	}
	for _, name := range svc.UnsetEnvironment {
		if strings.Contains(name, "=") {
			if env[strings.SplitN(name, "=", 2)[0]] == strings.SplitN(name, "=", 2)[1] {
				delete(env, strings.SplitN(name, "=", 2)[0])
			}
			continue
		}
		delete(env, name)
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		if v, ok := env[k]; ok {
			out = append(out, k+"="+v)
			delete(env, k)
		}
	}
	return out, nil
}

// readEnvFile reads KEY=VALUE lines as systemd's EnvironmentFile= does:
// blank lines and lines starting with # or ; are skipped, values may be
// quoted.
func readEnvFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		out = append(out, k+"="+v)
	}
	return out, sc.Err()
}

// credential resolves User=, Group= and SupplementaryGroups=.
func credential(svc *units.Service) (*syscall.Credential, error) {
	cred := &syscall.Credential{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}
	if svc.User != "" {
		usr, err := lookupUser(svc.User)
		if err != nil {
			return nil, fmt.Errorf("%s: User=%s: %w", svc.Name, svc.User, err)
		}
		uid, _ := strconv.Atoi(usr.Uid)
		gid, _ := strconv.Atoi(usr.Gid)
		cred.Uid, cred.Gid = uint32(uid), uint32(gid)
	}
	if svc.Group != "" {
		gid, err := lookupGroup(svc.Group)
		if err != nil {
			return nil, fmt.Errorf("%s: Group=%s: %w", svc.Name, svc.Group, err)
		}
		cred.Gid = gid
	}
	for _, g := range svc.SupplementaryGroups {
		gid, err := lookupGroup(g)
		if err != nil {
			return nil, fmt.Errorf("%s: SupplementaryGroups=%s: %w", svc.Name, g, err)
		}
		cred.Groups = append(cred.Groups, gid)
	}
	if cred.Groups == nil {
		cred.NoSetGroups = false
		cred.Groups = []uint32{}
	}
	return cred, nil
}

func lookupUser(name string) (*user.User, error) {
	if _, err := strconv.Atoi(name); err == nil {
		return user.LookupId(name)
	}
	return user.Lookup(name)
}

func lookupGroup(name string) (uint32, error) {
	if n, err := strconv.ParseUint(name, 10, 32); err == nil {
		return uint32(n), nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(g.Gid, 10, 32)
	return uint32(n), err
}

func getpgid(pid int) (int, error) { return syscall.Getpgid(pid) }

func killPid(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }

// runCommand runs one Exec*= command to its end.
func runCommand(c units.Command, env []string, dir string) error {
	p, err := children.Start(children.Spec{Path: c.Path, Argv: c.Expand(env), Env: env, Dir: dir, Umask: -1})
	if err != nil {
		return err
	}
	<-p.Done()
	if st := p.Exit(); !st.Success() {
		return fmt.Errorf("%s: %s", c.Path, st)
	}
	return nil
}
