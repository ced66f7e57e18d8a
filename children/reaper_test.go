package children

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// stopReaper ends the reaper TestMain started, once the orphans the
// tests left (grandchildren killed at cleanup, say) are reaped. It
// returns 1 if some are still there after a while: a leak.
func stopReaper() int {
	deadline := time.Now().Add(testTimeout)
	for len(Orphans()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	code := 0
	if o := Orphans(); len(o) > 0 {
		fmt.Fprintf(os.Stderr, "leak: orphans not reaped: %v\n", childrenOf(os.Getpid()))
		code = 1
	}
	close(reaperStop)
	<-reaperDone
	return code
}

// ourZombie reports whether pid is a child of this process that exited
// and was not reaped.
func ourZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // state ppid …
	return f[0] == "Z" && f[1] == strconv.Itoa(os.Getpid())
}

// ourChild reports whether pid is a child of this process, exited or
// not.
func ourChild(pid int) bool {
	ppid, ok := statPPid(pid)
	return ok && ppid == strconv.Itoa(os.Getpid())
}

// waitGone waits until pid is no longer a child of this process: it was
// reaped.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for ourChild(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still a child of ours after %v (zombie: %v)", pid, testTimeout, ourZombie(pid))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startOrphan starts sh, which starts script in the background, prints
// its pid and exits: script's process is reparented to this process. It
// returns the pid and the pidfd of the orphan, killed at cleanup.
func startOrphan(t *testing.T, script string) (int, int) {
	t.Helper()
	out := newCapture()
	spec := shSpec("(" + script + ") >/dev/null & echo $!")
	spec.Stdout.Lines = out.add
	p := start(t, spec)
	pid, err := strconv.Atoi(out.next(t))
	if err != nil {
		t.Fatal(err)
	}
	fd := pidfd(t, pid)
	if exit := waitDone(t, p); !exit.Success() {
		t.Fatalf("sh: %v", exit)
	}
	return pid, fd
}

// TestMain called BecomeSubreaper; a second call changes nothing.
func TestBecomeSubreaperTwice(t *testing.T) {
	if err := BecomeSubreaper(); err != nil {
		t.Fatal(err)
	}
	var on int32
	if err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&on)), 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	if on != 1 {
		t.Errorf("PR_GET_CHILD_SUBREAPER: %d", on)
	}
}

// An orphan is reparented to the subreaper, listed by Orphans while it
// runs, and reaped when it exits: no zombie is left.
func TestOrphanReaped(t *testing.T) {
	pid, _ := startOrphan(t, "exec sleep 0.3")
	if !ourChild(pid) {
		t.Fatalf("orphan %d not reparented to us (parent %v)", pid, childrenOf(os.Getpid()))
	}
	if o := Orphans(); !slices.Contains(o, pid) {
		t.Errorf("Orphans() = %v, without the orphan %d", o, pid)
	}
	waitGone(t, pid)
	if o := Orphans(); slices.Contains(o, pid) {
		t.Errorf("Orphans() = %v, still with the reaped %d", o, pid)
	}
}

// A zombie is reparented too: the grandchild exits first, its parent
// never reaps it and exits in turn, leaving sockd a zombie.
func TestReparentedZombieReaped(t *testing.T) {
	out := newCapture()
	// exec: no shell is left to reap the background job.
	spec := shSpec("sleep 0 & echo $!; exec sleep 0.3")
	spec.Stdout.Lines = out.add
	p := start(t, spec)
	gc, err := strconv.Atoi(out.next(t))
	if err != nil {
		t.Fatal(err)
	}
	if exit := waitDone(t, p); !exit.Success() {
		t.Fatalf("the parent's status: %v", exit)
	}
	waitGone(t, gc)
}

// Orphans lists neither started nor adopted processes.
func TestOrphansExcludesOwned(t *testing.T) {
	p := waitReady(t, selfSpec(t, "block"))
	if !ourChild(p.Pid()) {
		t.Fatalf("started %d is not our child", p.Pid())
	}
	if o := Orphans(); slices.Contains(o, p.Pid()) {
		t.Errorf("Orphans() = %v, with the started %d", o, p.Pid())
	}
}

// The two ways to list children agree.
func TestChildPidsByStat(t *testing.T) {
	var pids []int
	for range 3 {
		pids = append(pids, waitReady(t, selfSpec(t, "block")).Pid())
	}
	a, err := childPids()
	if err != nil {
		t.Fatal(err)
	}
	b, err := childPidsByStat()
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if !slices.Contains(a, pid) || !slices.Contains(b, pid) {
			t.Errorf("children %v (task files), %v (stat); want both to have %v", a, b, pids)
			break
		}
	}
}

// The reaper never takes the status of a started child: many short
// children are started from several goroutines while orphans die around
// them, and each Exit is the child's own.
func TestReaperLeavesStartedChildren(t *testing.T) {
	const workers, each, orphans = 4, 25, 40
	stopOrphans := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // orphans dying all the while
		defer wg.Done()
		for i := 0; i < orphans; i++ {
			select {
			case <-stopOrphans:
				return
			default:
			}
			p, err := Start(shSpec("sleep 0.01 & sleep 0 & exit 0"))
			if err != nil {
				t.Error(err)
				return
			}
			<-p.Done()
			if exit := p.Exit(); !exit.Success() {
				t.Errorf("orphan maker: %v", exit)
			}
		}
	}()
	var mu sync.Mutex
	bad := map[string]int{}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				code := (w*each+i)%200 + 1
				spec := shSpec("exit " + strconv.Itoa(code))
				if i%2 == 1 {
					spec.PIDEnv = "LISTEN_PID" // through the exec helper
				}
				p, err := Start(spec)
				if err != nil {
					t.Error(err)
					return
				}
				<-p.Done()
				if exit := p.Exit(); exit.Code != code || exit.Err != nil || exit.Signal != 0 {
					mu.Lock()
					bad[fmt.Sprintf("want %d, got %v", code, exit)]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(stopOrphans)
	if len(bad) > 0 {
		t.Errorf("wrong exit statuses: %v", bad)
	}
	for _, pid := range Orphans() {
		waitGone(t, pid)
	}
}

// A Process leaves the registry once reaped.
func TestRegistryEmptyAfterExit(t *testing.T) {
	_, _, exit := run(t, shSpec("exit 5"))
	if exit.Code != 5 {
		t.Fatalf("exit %v", exit)
	}
	owned.mu.Lock()
	n := len(owned.n)
	owned.mu.Unlock()
	if n != 0 {
		t.Errorf("registry holds %d pids after every Process exited", n)
	}
}

// A child forked behind Start's back is not owned: the reaper takes its
// status, which is why os/exec must not be used beside BecomeSubreaper.
func TestReaperTakesUnownedChild(t *testing.T) {
	pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", "exit 3"}, &syscall.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); err != syscall.ECHILD {
		t.Errorf("wait4 after the reaper: %v, want ECHILD", err)
	}
}
