package children

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// childEnv selects the role of the test binary when a test starts it as
// a child.
const childEnv = "CHILDREN_TEST_CHILD"

func TestMain(m *testing.M) {
	MaybeRunHelper()
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	if os.Getenv(activationEnv) != "" {
		os.Exit(runActivation())
	}
	// Every test runs as sockd does: as the child subreaper, its reaper
	// beside the Processes' waiters.
	if err := BecomeSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	baseline := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		code = stopReaper()
	}
	if code == 0 {
		code = checkLeaks(baseline)
	}
	os.Exit(code)
}

// runChild plays one of the children the tests start.
func runChild(mode string) int {
	switch mode {
	case "block": // dies of SIGTERM
		fmt.Println("ready")
		time.Sleep(time.Hour)
	case "ignoreterm":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		time.Sleep(time.Hour)
	case "notify":
		ok, err := daemon.SdNotify(false, "READY=1\nSTATUS=starting\nSTATUS=serving")
		if !ok || err != nil {
			fmt.Fprintf(os.Stderr, "sdnotify: %v %v\n", ok, err)
			return 1
		}
		fmt.Println("sent")
		time.Sleep(time.Hour)
	case "spawner":
		return runSpawner()
	case "gohelper": // the Go exec helper, whatever Start uses
		if len(os.Args) < 5 || os.Args[1] != goHelperArg {
			fmt.Fprintf(os.Stderr, "gohelper: bad arguments %q\n", os.Args)
			return 2
		}
		os.Unsetenv(childEnv)
		err := runHelper(os.Args[2], os.Args[3], os.Args[4:])
		os.Stderr.WriteString("sockd-exec: " + err.Error() + "\n")
		return helperExitCode
	default:
		fmt.Fprintf(os.Stderr, "unknown child mode %q\n", mode)
		return 2
	}
	return 0
}

// runSpawner is a sockd stand-in started with a low RLIMIT_NOFILE soft
// limit: Go raises its own limit, and the programs it starts must still
// get the low one unless their Rlimits say otherwise. It prints the soft
// limit each of three children sees.
func runSpawner() int {
	var own syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &own)
	fmt.Printf("own %d\n", own.Cur)
	for _, c := range []struct {
		name string
		spec Spec
	}{
		{"direct", Spec{Umask: -1}},
		{"helper", Spec{Umask: -1, PIDEnv: "LISTEN_PID"}},
		{"rlimit", Spec{Umask: -1, Rlimits: []Rlimit{{Resource: syscall.RLIMIT_NOFILE, Cur: 2000, Max: 3000}}}},
	} {
		var out strings.Builder
		c.spec.Path = "/bin/cat"
		c.spec.Argv = []string{"cat", "/proc/self/limits"}
		c.spec.Stdout.Lines = func(l string) { out.WriteString(l + "\n") }
		p, err := Start(c.spec)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		<-p.Done()
		soft, _, err := limitsLine(out.String(), "Max open files")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("%s %s\n", c.name, soft)
	}
	return 0
}

// limitsLine returns the soft and hard values of one /proc/PID/limits row.
func limitsLine(limits, name string) (soft, hard string, err error) {
	for _, line := range strings.Split(limits, "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			f := strings.Fields(rest)
			if len(f) >= 2 {
				return f[0], f[1], nil
			}
		}
	}
	return "", "", fmt.Errorf("no %q in limits:\n%s", name, limits)
}

// checkLeaks fails the run if a goroutine of this package still runs or
// a child of the test process (zombie or not) is left.
func checkLeaks(baseline int) int {
	idle := make(chan struct{})
	go func() { live.Wait(); close(idle) }()
	select {
	case <-idle:
	case <-time.After(10 * time.Second):
		fmt.Fprintln(os.Stderr, "leak: goroutines of package children still running")
		return 1
	}
	// Goroutines of the testing package may still be on their way out;
	// any goroutine running code of this package (but this one) leaked.
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	stacks := strings.Split(string(buf), "\n\n")
	for _, g := range stacks[1:] { // stacks[0] is this goroutine
		if strings.Contains(g, "created by github.com/sockd/sockd/children.checkLeaks") {
			continue // the live.Wait goroutine above, closed idle and exiting
		}
		if strings.Contains(g, "sockd/sockd/children.") {
			fmt.Fprintf(os.Stderr, "leak: %d goroutines, %d at start; this one runs:\n%s\n", runtime.NumGoroutine(), baseline, g)
			return 1
		}
	}
	if kids := childrenOf(os.Getpid()); len(kids) > 0 {
		fmt.Fprintf(os.Stderr, "leak: child processes left: %v\n", kids)
		return 1
	}
	return 0
}

// childrenOf lists "pid state" of the processes whose parent is ppid.
func childrenOf(ppid int) []string {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var kids []string
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // gone meanwhile
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:]) // state ppid …
		if len(f) >= 2 && f[1] == strconv.Itoa(ppid) {
			kids = append(kids, s[:strings.IndexByte(s, ' ')]+" "+f[0])
		}
	}
	return kids
}
