package children

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/sandbox"
)

// helperArg is the hidden argument (os.Args[1]) that makes the running
// binary the exec helper (helper_cgo.c spells it too). The helper's
// command line is
//
//	sockd-exec __sockd-exec SETTINGS PATH ARGV0 ARGV1 …
//
// where SETTINGS is a comma-separated list of key=value items (see
// encodeHelper). Its environment is the child's, unchanged.
const helperArg = "__sockd-exec"

// helperExitCode is the status of a helper that could not set up or exec
// the program (the shell's "command not found").
const helperExitCode = 127

func needsHelper(s *Spec) bool {
	return s.PIDEnv != "" || s.Umask >= 0 || s.Nice != nil || len(s.Rlimits) > 0 || s.Sandbox != nil
}

// checkSettings refuses settings out of range, whichever way they are
// applied (the C spawn or an exec helper).
func checkSettings(s *Spec) error {
	if s.Umask > 0o777 {
		return fmt.Errorf("umask %#o: out of range", s.Umask)
	}
	if s.Nice != nil && (*s.Nice < -20 || *s.Nice > 19) {
		return fmt.Errorf("nice %d: out of range [-20, 19]", *s.Nice)
	}
	for _, r := range s.Rlimits {
		if r.Cur > r.Max {
			return fmt.Errorf("rlimit %d: soft limit %d above hard limit %d", r.Resource, r.Cur, r.Max)
		}
	}
	if strings.ContainsAny(s.PIDEnv, "=,\x00") {
		return fmt.Errorf("pid variable %q: invalid name", s.PIDEnv)
	}
	return nil
}

// encodeHelper turns the settings only the helper can apply into one
// argument.
func encodeHelper(s *Spec, nfiles int) (string, error) {
	if err := checkSettings(s); err != nil {
		return "", err
	}
	items := []string{"files=" + strconv.Itoa(nfiles)}
	if s.Umask >= 0 {
		items = append(items, "umask="+strconv.FormatInt(int64(s.Umask), 8))
	}
	if s.Nice != nil {
		items = append(items, "nice="+strconv.Itoa(*s.Nice))
	}
	for _, r := range s.Rlimits {
		items = append(items, fmt.Sprintf("rlimit=%d:%d:%d", r.Resource, r.Cur, r.Max))
	}
	if s.Sandbox != nil {
		// Base64: no comma, so it stays one item.
		items = append(items, "sandbox="+s.Sandbox.Encode())
	}
	if s.PIDEnv != "" {
		items = append(items, "pidenv="+s.PIDEnv)
	}
	if c := s.Credential; c != nil {
		items = append(items, "uid="+strconv.FormatUint(uint64(c.Uid), 10), "gid="+strconv.FormatUint(uint64(c.Gid), 10))
		if c.NoSetGroups {
			items = append(items, "nosetgroups=1")
		} else {
			gs := make([]string, len(c.Groups))
			for i, g := range c.Groups {
				gs[i] = strconv.FormatUint(uint64(g), 10)
			}
			items = append(items, "groups="+strings.Join(gs, ":"))
		}
	}
	return strings.Join(items, ","), nil
}

// MaybeRunHelper runs the exec helper when the program was started as
// one (by Start with a PIDEnv, umask, nice or rlimits, where the C spawn
// does not apply them: a sandboxed start, a build without cgo) and then
// never returns; otherwise it returns at once. Call it first thing in main and
// in TestMain of any package whose tests start children.
//
// In cgo builds with glibc the C helper of helper_cgo.c has done the work
// (or exited) before the Go runtime started, except for a sandboxed
// start, which it hands over to this one; MaybeRunHelper is also the
// helper of CGO_ENABLED=0 builds, and calling it keeps a binary correct
// in both.
//
// The helper, in this order: sets the umask and the rlimits, marks every
// descriptor above the child's extra files close-on-exec, locks its
// goroutine to its thread and sets that thread's nice value and
// credentials (both are per-thread on Linux; execve keeps the calling
// thread and ends the others) — with a sandbox, sandbox.Apply sets it up
// on that thread and changes the credentials in its order —, sets PIDEnv to its pid and execs the
// program with fds 0, 1, 2 and 3… as Start arranged them. Go's own
// raising of RLIMIT_NOFILE is undone at exec as usual, so the program
// gets sockd's original limit unless Rlimits sets RLIMIT_NOFILE. If
// anything fails, the helper writes the error to stderr and exits 127.
func MaybeRunHelper() {
	if len(os.Args) < 5 || os.Args[1] != helperArg {
		return
	}
	err := runHelper(os.Args[2], os.Args[3], os.Args[4:])
	os.Stderr.WriteString("sockd-exec: " + err.Error() + "\n")
	os.Exit(helperExitCode)
}

// runHelper returns only on failure.
func runHelper(settings, path string, argv []string) error {
	var (
		nfiles           int
		nice             *int
		pidEnv           string
		uid, gid         = -1, -1
		groups           []uint32
		setGroups        = true
		haveUID, haveGID bool
		box              *sandbox.Setup
	)
	runtime.LockOSThread() // nice and credentials are per thread
	for _, item := range strings.Split(settings, ",") {
		key, val, _ := strings.Cut(item, "=")
		var err error
		switch key {
		case "files":
			nfiles, err = strconv.Atoi(val)
		case "umask":
			var m uint64
			if m, err = strconv.ParseUint(val, 8, 32); err == nil {
				syscall.Umask(int(m))
			}
		case "nice":
			var n int
			if n, err = strconv.Atoi(val); err == nil {
				nice = &n
			}
		case "rlimit":
			err = helperRlimit(val)
		case "pidenv":
			pidEnv = val
		case "sandbox":
			box, err = sandbox.Decode(val)
		case "uid":
			uid, err = strconv.Atoi(val)
			haveUID = true
		case "gid":
			gid, err = strconv.Atoi(val)
			haveGID = true
		case "nosetgroups":
			setGroups = false
		case "groups":
			for _, g := range strings.Split(val, ":") {
				if g == "" {
					continue
				}
				var n uint64
				if n, err = strconv.ParseUint(g, 10, 32); err != nil {
					break
				}
				groups = append(groups, uint32(n))
			}
		default:
			err = errors.New("unknown setting")
		}
		if err != nil {
			return fmt.Errorf("setting %q: %w", item, err)
		}
	}

	// Nothing of the helper's own may reach the program. Go opens every
	// descriptor close-on-exec; this catches any inherited one. Errors
	// (ENOSYS before Linux 5.11) are harmless.
	unix.CloseRange(uint(3+nfiles), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)

	if nice != nil {
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, 0, *nice); err != nil {
			return fmt.Errorf("setpriority %d: %w", *nice, err)
		}
	}
	// Raw per-thread calls: Go's syscall.Setuid would change every
	// thread, which is more than exec needs.
	switchUser := func() error {
		if setGroups && (haveUID || haveGID) {
			var p unsafe.Pointer
			if len(groups) > 0 {
				p = unsafe.Pointer(&groups[0])
			}
			if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(p), 0); e != 0 {
				return fmt.Errorf("setgroups %v: %w", groups, e)
			}
		}
		if haveGID {
			if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid)); e != 0 {
				return fmt.Errorf("setresgid %d: %w", gid, e)
			}
		}
		if haveUID {
			if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
				return fmt.Errorf("setresuid %d: %w", uid, e)
			}
		}
		return nil
	}
	if box != nil {
		// The sandbox changes the credentials at its own point of the
		// order (after the mounts and the bounding set).
		if err := sandbox.Apply(box, switchUser, haveUID && uid != 0); err != nil {
			return err
		}
	} else if err := switchUser(); err != nil {
		return err
	}

	env := os.Environ()
	if pidEnv != "" {
		kept := env[:0]
		for _, kv := range env {
			if !strings.HasPrefix(kv, pidEnv+"=") {
				kept = append(kept, kv)
			}
		}
		env = append(kept, pidEnv+"="+strconv.Itoa(os.Getpid()))
	}
	err := syscall.Exec(path, argv, env)
	return fmt.Errorf("exec %s: %w", path, err)
}

// helperRlimit sets one "resource:cur:max" limit. syscall.Setrlimit, not
// unix.Setrlimit, so that Go forgets its saved RLIMIT_NOFILE and does not
// restore it at exec.
func helperRlimit(val string) error {
	parts := strings.Split(val, ":")
	if len(parts) != 3 {
		return errors.New("want resource:cur:max")
	}
	res, err := strconv.Atoi(parts[0])
	if err != nil {
		return err
	}
	var lim syscall.Rlimit
	if lim.Cur, err = strconv.ParseUint(parts[1], 10, 64); err != nil {
		return err
	}
	if lim.Max, err = strconv.ParseUint(parts[2], 10, 64); err != nil {
		return err
	}
	if err := syscall.Setrlimit(res, &lim); err != nil {
		return fmt.Errorf("setrlimit %d %d:%d: %w", res, lim.Cur, lim.Max, err)
	}
	return nil
}
