package children

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// goHelperArg is os.Args[1] of the test binary playing the Go exec
// helper (mode "gohelper"); the C helper does not react to it.
const goHelperArg = "__sockd-exec-go"

// helperImpl is one way of applying a Spec's settings in the child.
// wrap turns a spec into the one to Start; nil starts it as it is.
// direct: the settings are applied by Start's own child (the C spawn),
// whose failures are errors of Start; otherwise an exec helper applies
// them and fails with status 127.
type helperImpl struct {
	name   string
	wrap   func(*testing.T, Spec) Spec
	direct bool
}

// helperImpls returns the way Start applies the settings (the C spawn in
// cgo builds, else the Go helper), the C exec helper (in cgo builds with
// glibc) and the Go one, forced: all must behave the same.
func helperImpls() []helperImpl {
	impls := []helperImpl{{name: "go"}}
	if spawnInC {
		impls = []helperImpl{{name: "spawn", direct: true}}
	}
	if helperInC {
		impls = append(impls, helperImpl{name: "c-helper", wrap: viaCHelper})
	}
	return append(impls, helperImpl{name: "forced-go", wrap: viaGoHelper})
}

// viaGoHelper returns a spec that starts the test binary as the Go exec
// helper with spec's settings, the way Start starts the helper.
func viaGoHelper(t *testing.T, spec Spec) Spec {
	t.Helper()
	return viaHelper(t, spec, goHelperArg, childEnv+"=gohelper")
}

// viaCHelper returns a spec that starts the test binary as the C exec
// helper (its constructor) with spec's settings, as Start does without
// the C spawn.
func viaCHelper(t *testing.T, spec Spec) Spec {
	t.Helper()
	return viaHelper(t, spec, helperArg)
}

func viaHelper(t *testing.T, spec Spec, arg string, env ...string) Spec {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path, err := resolvePath(spec.Path, spec.Dir)
	if err != nil {
		t.Fatal(err)
	}
	settings, err := encodeHelper(&spec, len(spec.ExtraFiles))
	if err != nil {
		t.Fatal(err)
	}
	argv := spec.Argv
	if len(argv) == 0 {
		argv = []string{spec.Path}
	}
	return Spec{
		Path:       exe,
		Argv:       append([]string{"sockd-exec", arg, settings, path}, argv...),
		Env:        append(slices.Clone(spec.Env), env...),
		Dir:        spec.Dir,
		ExtraFiles: spec.ExtraFiles,
		Umask:      -1,
		UseCgroup:  spec.UseCgroup,
		CgroupFD:   spec.CgroupFD,
		Stdout:     spec.Stdout,
		Stderr:     spec.Stderr,
	}
}

// runVia is run with the spec started through impl; it returns the
// process too.
func runVia(t *testing.T, spec Spec, impl helperImpl) (p *Process, stdout, stderr []string, exit ExitStatus) {
	t.Helper()
	out, errs := newCapture(), newCapture()
	spec.Stdout.Lines, spec.Stderr.Lines = out.add, errs.add
	if impl.wrap != nil {
		spec = impl.wrap(t, spec)
	}
	p = start(t, spec)
	exit = waitDone(t, p)
	return p, out.get(), errs.get(), exit
}

// TestHelperNoGoRuntime shows that the C exec helper runs no Go code:
// with GODEBUG=inittrace=1 a Go runtime reports every package init on
// stderr, and /bin/true prints nothing.
func TestHelperNoGoRuntime(t *testing.T) {
	spec := Spec{Path: "/bin/true", Env: []string{"GODEBUG=inittrace=1"}, Umask: 0o022, PIDEnv: "LISTEN_PID"}
	// The probe works: the Go helper does report its inits.
	_, _, errs, exit := runVia(t, spec, helperImpl{wrap: viaGoHelper})
	if !exit.Success() || len(errs) == 0 || !strings.HasPrefix(errs[0], "init ") {
		t.Fatalf("go helper: %v, stderr %q; want init trace lines", exit, errs)
	}
	if !helperInC {
		t.Skip("no C helper in this build (cgo off or not glibc)")
	}
	_, _, errs, exit = runVia(t, spec, helperImpl{wrap: viaCHelper})
	if !exit.Success() || len(errs) != 0 {
		t.Errorf("helper: %v, stderr %q; want success and no Go init trace", exit, errs)
	}
}

func TestHelperParity(t *testing.T) {
	var ownGroups string
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Groups:"); ok {
				ownGroups = strings.TrimSpace(v)
			}
		}
	}
	for _, impl := range helperImpls() {
		t.Run(impl.name, func(t *testing.T) {
			t.Run("settings", func(t *testing.T) {
				nice := 7
				status, gotNice, limits := procStatusVia(t, Spec{
					Umask:   0o027,
					Nice:    &nice,
					PIDEnv:  "LISTEN_PID",
					Rlimits: []Rlimit{{Resource: unix.RLIMIT_NOFILE, Cur: 1000, Max: 2000}, {Resource: unix.RLIMIT_CORE, Cur: 0, Max: unix.RLIM_INFINITY}},
				}, impl.wrap)
				if status["Umask"] != "0027" || gotNice != 7 {
					t.Errorf("umask %q nice %d, want 0027 and 7", status["Umask"], gotNice)
				}
				if s, h, _ := limitsLine(limits, "Max open files"); s != "1000" || h != "2000" {
					t.Errorf("nofile %s:%s, want 1000:2000", s, h)
				}
				if s, h, _ := limitsLine(limits, "Max core file size"); s != "0" || h != "unlimited" {
					t.Errorf("core %s:%s, want 0:unlimited", s, h)
				}
			})
			t.Run("env", func(t *testing.T) {
				t.Setenv("SOCKD_OWN_SECRET", "must-not-leak")
				env := []string{"A=1", "LISTEN_PID=stale", "B=two words", "LISTEN_PIDX=3", "LISTEN_PID=older"}
				p, out, errs, exit := runVia(t, Spec{Path: "env", Argv: []string{"env"}, Env: env, Umask: -1, PIDEnv: "LISTEN_PID"}, impl)
				want := []string{"A=1", "B=two words", "LISTEN_PIDX=3", fmt.Sprintf("LISTEN_PID=%d", p.Pid())}
				if !exit.Success() || !slices.Equal(out, want) {
					t.Errorf("env: %v %q %q; want %q", exit, out, errs, want)
				}
			})
			t.Run("argv", func(t *testing.T) {
				args := []string{"printf", "%s|", "a b", "", "-x", "__sockd-exec"}
				_, out, errs, exit := runVia(t, Spec{Path: "/usr/bin/printf", Argv: args, Umask: 0o077}, impl)
				if want := []string{"a b||-x|__sockd-exec|"}; !exit.Success() || !slices.Equal(out, want) {
					t.Errorf("printf: %v %q %q; want %q", exit, out, errs, want)
				}
			})
			t.Run("failure", func(t *testing.T) {
				// Above fs.nr_open: EPERM even for root.
				const huge = 1 << 40
				spec := Spec{Path: "/bin/echo", Argv: []string{"echo", "ran"}, Umask: -1,
					Rlimits: []Rlimit{{Resource: unix.RLIMIT_NOFILE, Cur: huge, Max: huge}}}
				if impl.direct {
					wantStartError(t, spec, fmt.Sprintf("start /bin/echo: setrlimit 7 %d:%d: operation not permitted", huge, huge), syscall.EPERM)
					return
				}
				_, out, errs, exit := runVia(t, spec, impl)
				want := fmt.Sprintf("sockd-exec: setting \"rlimit=7:%d:%d\": setrlimit 7 %d:%d: operation not permitted", huge, huge, huge, huge)
				if exit.Code != helperExitCode || len(out) != 0 || !slices.Equal(errs, []string{want}) {
					t.Errorf("got %v %q %q, want exit status 127 and %q", exit, out, errs, want)
				}
			})
			t.Run("exec failure", func(t *testing.T) {
				// Executable, but neither ELF nor script: execve fails in
				// the helper, after Start returned.
				prog := t.TempDir() + "/prog"
				if err := os.WriteFile(prog, []byte{0, 1, 2, 3}, 0o755); err != nil {
					t.Fatal(err)
				}
				spec := Spec{Path: prog, Umask: -1, PIDEnv: "LISTEN_PID"}
				if impl.direct {
					wantStartError(t, spec, "start "+prog+": exec "+prog+": exec format error", syscall.ENOEXEC)
					return
				}
				_, out, errs, exit := runVia(t, spec, impl)
				want := "sockd-exec: exec " + prog + ": exec format error"
				if exit.Code != helperExitCode || len(out) != 0 || !slices.Equal(errs, []string{want}) {
					t.Errorf("got %v %q %q, want exit status 127 and %q", exit, out, errs, want)
				}
			})
			t.Run("bad settings", func(t *testing.T) {
				exe, err := os.Executable()
				if err != nil {
					t.Fatal(err)
				}
				arg, env := helperArg, []string(nil)
				switch impl.name {
				case "spawn":
					t.Skip("no settings to parse: the C spawn is handed them as data")
				case "forced-go", "go":
					arg, env = goHelperArg, []string{childEnv + "=gohelper"}
				}
				for settings, why := range map[string]string{
					"files=0,bogus=1":     `setting "bogus=1": unknown setting`,
					"files=0,rlimit=7:1":  `setting "rlimit=7:1": want resource:cur:max`,
					"files=0,groups=1:x":  `setting "groups=1:x": `,
					"files=0,umask=8,x=1": `setting "umask=8": `,
				} {
					_, out, errs, exit := runVia(t, Spec{Path: exe, Argv: []string{"sockd-exec", arg, settings, "/bin/echo", "echo", "ran"}, Env: env, Umask: -1}, helperImpl{})
					if exit.Code != helperExitCode || len(out) != 0 || len(errs) != 1 || !strings.HasPrefix(errs[0], "sockd-exec: "+why) {
						t.Errorf("%s: got %v %q %q, want exit status 127 and %q…", settings, exit, out, errs, why)
					}
				}
			})
			t.Run("credential", func(t *testing.T) {
				if os.Getuid() != 0 {
					t.Skip("needs root")
				}
				nice := -5
				status, gotNice, _ := procStatusVia(t, Spec{Umask: -1, Nice: &nice, PIDEnv: "LISTEN_PID",
					Credential: &syscall.Credential{Uid: 65534, Gid: 65533, Groups: []uint32{100, 65534}}}, impl.wrap)
				if status["Uid"] != "65534\t65534\t65534\t65534" || status["Gid"] != "65533\t65533\t65533\t65533" || gotNice != -5 {
					t.Errorf("uid %q gid %q nice %d, want 65534, 65533, -5", status["Uid"], status["Gid"], gotNice)
				}
				if g := strings.TrimSpace(status["Groups"]); g != "100 65534" {
					t.Errorf("supplementary groups %q, want 100 65534", g)
				}
				status, _, _ = procStatusVia(t, Spec{Umask: -1, PIDEnv: "LISTEN_PID",
					Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{100}, NoSetGroups: true}}, impl.wrap)
				if g := strings.TrimSpace(status["Groups"]); status["Uid"] != "65534\t65534\t65534\t65534" || g != ownGroups {
					t.Errorf("NoSetGroups: uid %q groups %q, want 65534 and sockd's %q", status["Uid"], g, ownGroups)
				}
			})
		})
	}
}

// wantStartError checks that Start fails on spec with the error text
// want, which wraps errno, and leaves no process behind.
func wantStartError(t *testing.T, spec Spec, want string, errno syscall.Errno) {
	t.Helper()
	p, err := Start(spec)
	if err == nil {
		waitDone(t, p)
		t.Fatalf("Start succeeded (pid %d, %v), want %q", p.Pid(), p.Exit(), want)
	}
	if err.Error() != want || !errors.Is(err, errno) {
		t.Errorf("Start: %q, want %q (wrapping %v)", err, want, errno)
	}
	if kids := childrenOf(os.Getpid()); len(kids) > 0 {
		t.Errorf("processes left after a failed start: %v", kids)
	}
}
