package supervisord

// What a child of a unit gets: its program, environment, directory,
// credentials, limits and output (systemd.exec(5)).

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/internal/ids"
	"github.com/sockd/sockd/internal/sandbox"
	"github.com/sockd/sockd/units"
)

// childNofile is the RLIMIT_NOFILE of a child whose unit sets no
// LimitNOFILE= (SetChildNofile); nil: sockd's own, as Go restores it.
var childNofile atomic.Pointer[children.Rlimit]

// SetChildNofile makes soft and hard the RLIMIT_NOFILE of every process
// sockd starts for a unit that sets no LimitNOFILE=: sockd sets it to the
// limit it was started with once it has raised its own (cmd/sockd). It
// is process-wide, as the limit is.
func SetChildNofile(soft, hard uint64) {
	childNofile.Store(&children.Rlimit{Resource: unix.RLIMIT_NOFILE, Cur: soft, Max: hard})
}

// defaultPath is the PATH systemd gives services.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// processSpec builds what every process of svc gets, whether a unit's
// or an Accept=yes instance's: ExecStart=, environment (env, from
// environment), directory, umask, nice, limits, credentials, standard
// input and output and kill mode. socks are the sockets the process may
// be handed, for StandardInput=socket, fd:NAME and their kin; output lines
// that sockd captures go to sink. The caller adds fds 3… and protocol
// variables (none when stdioSocket), and closes the returned files
// (even with an error) once the child has started or failed to. box is
// the unit's sandbox (sandboxSetup; nil for none). An ExecStart= with the
// "+" prefix runs as root outside it, as in systemd.
func processSpec(svc *units.Service, env []string, sink func(stream, line string), socks []namedFile, box *sandbox.Setup) (children.Spec, []*os.File, error) {
	if len(svc.ExecStart) == 0 {
		return children.Spec{}, nil, fmt.Errorf("%s: no ExecStart=", svc.Name)
	}
	cmd := svc.ExecStart[0]
	spec := children.Spec{
		Path:  cmd.Path,
		Argv:  cmd.Expand(env),
		Env:   env,
		Dir:   workingDir(svc),
		Umask: int(svc.UMask),
		// With KillMode=control-group (and mixed) nothing of the process
		// group outlives its main process, as nothing of a cgroup does.
		KillGroupOnExit: killGroupOnExit(svc),
	}
	if svc.HasNice {
		n := svc.Nice
		spec.Nice = &n
	}
	ownNofile := false
	for _, l := range svc.Limits {
		spec.Rlimits = append(spec.Rlimits, children.Rlimit{Resource: l.Resource, Cur: l.Soft, Max: l.Hard})
		ownNofile = ownNofile || l.Resource == unix.RLIMIT_NOFILE
	}
	if l := childNofile.Load(); l != nil && !ownNofile {
		spec.Rlimits = append(spec.Rlimits, *l)
	}
	if err := setIdentity(&spec, svc, cmd, box); err != nil {
		return children.Spec{}, nil, err
	}
	closers, err := stdin(svc, &spec, socks)
	if err != nil {
		return spec, closers, err
	}
	outs, err := outputs(svc, &spec, sink, socks)
	return spec, append(closers, outs...), err
}

// setIdentity gives spec the service's user, group and sandbox box,
// unless cmd has the "+" prefix: that one runs as root outside them.
func setIdentity(spec *children.Spec, svc *units.Service, cmd units.Command, box *sandbox.Setup) error {
	if cmd.FullPrivileges {
		return nil
	}
	spec.Sandbox = box
	if svc.User != "" || svc.Group != "" {
		cred, err := credential(svc)
		if err != nil {
			return err
		}
		spec.Credential = cred
	}
	return nil
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
	usr, err := ids.LookupUser(name)
	if err != nil {
		if name == strconv.Itoa(os.Getuid()) {
			return os.Getenv("HOME")
		}
		return ""
	}
	return usr.HomeDir
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
func environment(svc *units.Service) ([]string, error) {
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
		if usr, err := ids.LookupUser(svc.User); err == nil {
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

// credential resolves User=, Group= and SupplementaryGroups=. With
// User=, the supplementary groups are, as initgroups(3) makes them, the
// primary group and every group that lists the user, followed by
// SupplementaryGroups=; without it, only SupplementaryGroups=. With
// DynamicUser=yes, User= and Group= are the ids allocDynamicUser holds
// (an error if it holds none), or the static ones of those names; a
// dynamic user's only group is its own.
func credential(svc *units.Service) (*syscall.Credential, error) {
	cred := &syscall.Credential{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid()), Groups: []uint32{}}
	var member []uint32
	if svc.DynamicUser {
		uid, gid, groups, err := heldDynamicUser(svc)
		if err != nil {
			return nil, fmt.Errorf("%s: DynamicUser=yes: %w", svc.Name, err)
		}
		cred.Uid, cred.Gid, member = uid, gid, groups
	} else if svc.User != "" {
		usr, err := ids.LookupUser(svc.User)
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
	if svc.Group != "" && !svc.DynamicUser {
		gid, err := ids.LookupGroup(svc.Group)
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
		gid, err := ids.LookupGroup(g)
		if err != nil {
			return nil, fmt.Errorf("%s: SupplementaryGroups=%s: %w", svc.Name, g, err)
		}
		add(gid)
	}
	return cred, nil
}

func getpgid(pid int) (int, error) { return syscall.Getpgid(pid) }
