package supervisord

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"slices"
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
	announced string // "reloading" (RELOADING=1) or "stopping" (STOPPING=1)
	restartOp *op    // set while it is the new process of a restart

	watchdogToken int
	watchdogTimer *time.Timer

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
	pr := &proc{gen: gen, slot: slot, started: time.Now()}
	spec, closers, err := u.processSpec(pr)
	defer closeAll(closers)
	if err != nil {
		return nil, err
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
		// The protocol's variables win over the unit's: a child reads
		// the first of duplicate entries, and LISTEN_PID is the helper's.
		spec.Env = setEnv(spec.Env, activation.Env(u.ls)...)
		spec.PIDEnv = "LISTEN_PID"
	}
	if u.notifyPath != "" {
		spec.Env = setEnv(spec.Env, "NOTIFY_SOCKET="+u.notifyPath)
	}
	if svc.WatchdogSec > 0 && svc.WatchdogSec != units.Infinity {
		spec.Env = setEnv(spec.Env, "WATCHDOG_USEC="+strconv.FormatInt(svc.WatchdogSec.Microseconds(), 10))
	}
	p, err := children.Start(spec)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", svc.Name, err)
	}
	pr.p = p
	pr.pid.Store(int64(p.Pid()))
	pr.mainPid = p.Pid()
	for _, n := range u.pids.add(p.Pid(), u) {
		u.deliverNotify(n)
	}
	go func() {
		<-p.Done()
		select {
		case u.evs <- procExited{pr}:
		case <-u.quit:
		}
	}()
	return pr, nil
}

// processSpec builds what every process of u.svc gets, whether a unit's
// or an Accept=yes instance's: ExecStart=, environment, directory,
// umask, nice, limits, credentials, output and kill mode. The caller adds
// fds and protocol variables, and closes the returned files once the
// child has started (or failed to).
func (u *unit) processSpec(pr *proc) (children.Spec, []*os.File, error) {
	svc := u.svc
	if len(svc.ExecStart) == 0 {
		return children.Spec{}, nil, fmt.Errorf("%s: no ExecStart=", svc.Name)
	}
	cmd := svc.ExecStart[0]
	env, err := u.environment()
	if err != nil {
		return children.Spec{}, nil, err
	}
	spec := children.Spec{
		Path:  cmd.Path,
		Argv:  cmd.Expand(env),
		Env:   env,
		Dir:   workingDir(svc),
		Umask: int(svc.UMask),
		// With KillMode=control-group (and mixed) nothing of the process
		// group outlives its main process, as nothing of a cgroup does.
		KillGroupOnExit: svc.KillMode == "" || svc.KillMode == "control-group" || svc.KillMode == "mixed",
	}
	if svc.HasNice {
		n := svc.Nice
		spec.Nice = &n
	}
	for _, l := range svc.Limits {
		spec.Rlimits = append(spec.Rlimits, children.Rlimit{Resource: l.Resource, Cur: l.Soft, Max: l.Hard})
	}
	if svc.User != "" || svc.Group != "" {
		cred, err := credential(svc)
		if err != nil {
			return children.Spec{}, nil, err
		}
		spec.Credential = cred
	}
	closers, err := u.outputs(&spec, pr)
	return spec, closers, err
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// workingDir resolves WorkingDirectory=: "~" is the home directory of
// User= (or of sockd's user) from the user database, whatever HOME the
// unit sets, and a missing directory with the "-" prefix means none.
func workingDir(svc *units.Service) string {
	dir := svc.WorkingDirectory
	if dir == "~" {
		dir = homeDir(svc.User)
	}
	if dir != "" && svc.WorkingDirectoryOptional {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return ""
		}
	}
	return dir
}

// homeDir returns the home directory of name (sockd's user if empty),
// or "" if the user database has none.
func homeDir(name string) string {
	if name == "" {
		name = strconv.Itoa(os.Getuid())
	}
	usr, err := lookupUser(name)
	if err != nil {
		if name == strconv.Itoa(os.Getuid()) {
			return os.Getenv("HOME")
		}
		return ""
	}
	return usr.HomeDir
}

// outputs sets spec's Stdout and Stderr from StandardOutput=/StandardError=.
// It returns files to close once the child has started.
// StandardError=inherit sends stderr where stdout goes, as systemd does;
// StandardOutput=inherit is sockd's own stdout.
func (u *unit) outputs(spec *children.Spec, pr *proc) ([]*os.File, error) {
	var closers []*os.File
	for _, s := range []struct {
		stream, option string
		out            units.Output
		dst            *children.Output
		std            *os.File
	}{
		{"stdout", "StandardOutput", u.svc.StandardOutput, &spec.Stdout, os.Stdout},
		{"stderr", "StandardError", u.svc.StandardError, &spec.Stderr, os.Stderr},
	} {
		stream := s.stream
		out := s.out
		if stream == "stderr" && out.Kind == "inherit" {
			if u.svc.StandardOutput.Kind != "journal" && u.svc.StandardOutput.Kind != "" {
				// The same file, even the same open file description.
				*s.dst = spec.Stdout
				continue
			}
			out = u.svc.StandardOutput
		}
		switch out.Kind {
		case "null":
		case "inherit":
			s.dst.File = s.std
		case "file", "append", "truncate":
			flags := os.O_WRONLY | os.O_CREATE
			switch out.Kind {
			case "append":
				flags |= os.O_APPEND
			case "truncate":
				flags |= os.O_TRUNC
			}
			f, err := os.OpenFile(out.Path, flags, 0o644)
			if err != nil {
				return closers, fmt.Errorf("%s: %s=%s:%s: %w", u.svc.Name, s.option, out.Kind, out.Path, err)
			}
			closers = append(closers, f)
			s.dst.File = f
		default: // "journal", "": sockd's log
			s.dst.Lines = func(line string) { u.outputLine(pr, stream, line) }
		}
	}
	return closers, nil
}

// setEnv returns env with each "KEY=value" of kvs replacing every entry
// of its key.
func setEnv(env []string, kvs ...string) []string {
	for _, kv := range kvs {
		k, _, _ := strings.Cut(kv, "=")
		env = slices.DeleteFunc(env, func(e string) bool { return strings.HasPrefix(e, k+"=") })
		env = append(env, kv)
	}
	return env
}

// environment builds the child's environment from the unit alone: never
// sockd's own NOTIFY_SOCKET, LISTEN_* or WATCHDOG_*, nor anything else of
// sockd's that PassEnvironment= does not name. In order of precedence,
// as systemd.exec(5) has it: PATH, then USER, LOGNAME and HOME of User=,
// PassEnvironment=, Environment=, EnvironmentFile=; UnsetEnvironment=
// applies last.
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
		if usr, err := lookupUser(svc.User); err == nil {
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
			if ef.Optional && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("%s: EnvironmentFile=%s: %w", svc.Name, ef.Path, err)
		}
		for _, kv := range kvs {
			set(kv)
		}
	}
	for _, name := range svc.UnsetEnvironment {
		if k, v, ok := strings.Cut(name, "="); ok {
			if cur, set := env[k]; set && cur == v {
				delete(env, k)
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

// readEnvFile reads an EnvironmentFile= as systemd does (its
// parse_env_file): KEY=VALUE assignments; blank lines and lines starting
// with # or ; are comments; whitespace around the key and an unquoted
// value is dropped; a backslash escapes the next character and joins
// lines; single quotes keep everything literally, newlines included;
// double quotes do too, except that a backslash escapes ", \, ` and $
// and joins lines; quoted and unquoted parts of a value concatenate.
// Assignments with an invalid name are skipped. A leading "export " is
// accepted, as shells write it.
func readEnvFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	const (
		preKey = iota
		key
		preValue
		value
		valueEscape
		single
		double
		doubleEscape
		comment
		commentEscape
	)
	var (
		out      []string
		k, v     []byte
		state    = preKey
		keyEnd   int // length of k without trailing blanks
		valueEnd int // length of v without trailing unquoted blanks
		isBlank  = func(c byte) bool { return c == ' ' || c == '\t' || c == '\r' }
		push     = func() {
			name := strings.TrimPrefix(string(k[:keyEnd]), "export ")
			name = strings.TrimLeft(name, " \t")
			if envName(name) {
				out = append(out, name+"="+string(v[:valueEnd]))
			}
			k, v, keyEnd, valueEnd = k[:0], v[:0], 0, 0
		}
		keepValue = func(c byte) { v = append(v, c); valueEnd = len(v) }
	)
	for _, c := range b {
		switch state {
		case preKey:
			switch {
			case c == '#' || c == ';':
				state = comment
			case c == '\n' || isBlank(c):
			default:
				state = key
				k = append(k, c)
				keyEnd = len(k)
			}
		case key:
			switch {
			case c == '\n': // no "=": not an assignment
				k, keyEnd, state = k[:0], 0, preKey
			case c == '=':
				state = preValue
			default:
				k = append(k, c)
				if !isBlank(c) {
					keyEnd = len(k)
				}
			}
		case preValue, value:
			switch {
			case c == '\n':
				push()
				state = preKey
			case c == '\\':
				state = valueEscape
			case state == preValue && c == '\'':
				state = single
			case state == preValue && c == '"':
				state = double
			case state == preValue && isBlank(c):
			default: // quotes inside an unquoted value are literal
				v = append(v, c)
				if !isBlank(c) {
					valueEnd = len(v)
				}
				state = value
			}
		case valueEscape:
			if c != '\n' { // backslash-newline joins lines
				keepValue(c)
			}
			state = value
		case single:
			if c == '\'' {
				state = preValue
			} else {
				keepValue(c)
			}
		case double:
			switch c {
			case '"':
				state = preValue
			case '\\':
				state = doubleEscape
			default:
				keepValue(c)
			}
		case doubleEscape:
			switch c {
			case '"', '\\', '`', '$':
				keepValue(c)
			case '\n':
			default:
				keepValue('\\')
				keepValue(c)
			}
			state = double
		case comment:
			switch c {
			case '\\':
				state = commentEscape
			case '\n':
				state = preKey
			}
		case commentEscape:
			state = comment
		}
	}
	switch state { // a last line without a newline, or an open quote
	case preValue, value, valueEscape, single, double, doubleEscape:
		push()
	}
	return out, nil
}

// envName reports whether s is a valid environment variable name.
func envName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// credential resolves User=, Group= and SupplementaryGroups=. With
// User=, the supplementary groups are, as initgroups(3) makes them, the
// primary group and every group that lists the user, followed by
// SupplementaryGroups=; without it, only SupplementaryGroups=.
func credential(svc *units.Service) (*syscall.Credential, error) {
	cred := &syscall.Credential{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid()), Groups: []uint32{}}
	var member []uint32
	if svc.User != "" {
		usr, err := lookupUser(svc.User)
		if err != nil {
			return nil, fmt.Errorf("%s: User=%s: %w", svc.Name, svc.User, err)
		}
		uid, err := strconv.ParseUint(usr.Uid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s: User=%s: uid %q: %w", svc.Name, svc.User, usr.Uid, err)
		}
		gid, err := strconv.ParseUint(usr.Gid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s: User=%s: gid %q: %w", svc.Name, svc.User, usr.Gid, err)
		}
		cred.Uid, cred.Gid = uint32(uid), uint32(gid)
		ids, err := usr.GroupIds()
		if err != nil {
			return nil, fmt.Errorf("%s: User=%s: groups: %w", svc.Name, svc.User, err)
		}
		for _, id := range ids {
			if n, err := strconv.ParseUint(id, 10, 32); err == nil && uint32(n) != cred.Gid {
				member = append(member, uint32(n))
			}
		}
	}
	if svc.Group != "" {
		gid, err := lookupGroup(svc.Group)
		if err != nil {
			return nil, fmt.Errorf("%s: Group=%s: %w", svc.Name, svc.Group, err)
		}
		cred.Gid = gid
	}
	add := func(g uint32) {
		if !slices.Contains(cred.Groups, g) {
			cred.Groups = append(cred.Groups, g)
		}
	}
	if svc.User != "" {
		add(cred.Gid)
		for _, g := range member {
			add(g)
		}
	}
	for _, g := range svc.SupplementaryGroups {
		gid, err := lookupGroup(g)
		if err != nil {
			return nil, fmt.Errorf("%s: SupplementaryGroups=%s: %w", svc.Name, g, err)
		}
		add(gid)
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
