package cgroup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testBase is the cgroup v2 directory the tests make their bases in:
// the root of a unified host, or the unified hierarchy of a hybrid one
// (this project's machines and CI). The tests need it and fail without.
func testBase(t *testing.T) *Hierarchy {
	t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	point, _, ok := findMount(mi)
	if !ok {
		t.Fatal("no cgroup2 mount: these tests need cgroup v2 (/sys/fs/cgroup or /sys/fs/cgroup/unified)")
	}
	dir := filepath.Join(point, fmt.Sprintf("sockd-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	h, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.base.Kill()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.base.WaitEmpty(ctx)
		h.base.RemoveEmpty()
		if err := h.Remove(); err != nil {
			t.Errorf("remove base: %v", err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("base %s left behind", dir)
		}
	})
	return h
}

// startIn starts sh -c script born in g (CLONE_INTO_CGROUP).
func startIn(t *testing.T, g *Group, script string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: g.FD(), Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestBornInCgroupKillAndRemove(t *testing.T) {
	h := testBase(t)
	u, err := h.Unit("app.service")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := u.NewLeaf("p")
	if err != nil {
		t.Fatal(err)
	}
	// A grandchild that leaves the process group and the session.
	r, w, _ := os.Pipe()
	cmd := exec.Command("/bin/sh", "-c", `setsid sleep 1000 & echo $!; wait`)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: leaf.FD(), Setpgid: true}
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var grand int
	if _, err := fmt.Fscan(r, &grand); err != nil {
		t.Fatal(err)
	}
	r.Close()
	pidfd, err := unix.PidfdOpen(grand, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)

	if p, err := PathOf(grand); err != nil || p != leaf.Path() {
		t.Fatalf("grandchild's cgroup = %q, %v; want %q", p, err, leaf.Path())
	}
	procs, err := leaf.Procs()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(procs, cmd.Process.Pid) || !slices.Contains(procs, grand) {
		t.Fatalf("procs %v: want %d and %d", procs, cmd.Process.Pid, grand)
	}
	all, err := u.AllProcs()
	if err != nil || !slices.Contains(all, grand) {
		t.Fatalf("unit's AllProcs %v, %v: want %d", all, err, grand)
	}
	if pop, err := u.Populated(); err != nil || !pop {
		t.Fatalf("Populated = %v, %v", pop, err)
	}
	if err := leaf.Remove(); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("Remove of a populated cgroup: %v, want EBUSY", err)
	}
	leaf, err = u.child(leaf.Name(), false) // Remove closed it
	if err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { done <- leaf.WaitEmpty(ctx) }()
	if err := u.Kill(); err != nil { // the unit's cgroup: its leaves too
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if err := waitPidfd(pidfd, 10*time.Second); err != nil {
		t.Fatalf("grandchild %d: %v", grand, err)
	}
	if err := leaf.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := u.Remove(); err != nil {
		t.Fatal(err)
	}
}

func waitPidfd(pidfd int, d time.Duration) error {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, int(d.Milliseconds()))
	if err != nil {
		return err
	}
	if n == 0 {
		return errors.New("still running")
	}
	return nil
}

func TestSignalEveryProcess(t *testing.T) {
	h := testBase(t)
	u, err := h.Unit("sig.service")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	// Each shell says when its trap is set: a TERM before that, or a
	// count of processes taken while the setsid child was still being
	// forked, left it running (a flake under load).
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := startIn(t, u, `trap 'exit 7' TERM; setsid sh -c 'trap "exit 0" TERM; touch `+ready+`.inner; while :; do sleep 0.1; done' & touch `+ready+`.outer; while :; do sleep 0.1; done`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, e1 := os.Stat(ready + ".inner")
		_, e2 := os.Stat(ready + ".outer")
		if e1 == nil && e2 == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the shells did not set their traps within 10 s")
		}
		time.Sleep(10 * time.Millisecond) // no event for a file another process makes, short of inotify
	}
	if err := u.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := u.WaitEmpty(ctx); err != nil {
		procs, _ := u.Procs()
		t.Fatalf("%v (left: %v)", err, procs)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("main: %v, want exit 7 (SIGTERM trapped)", err)
	}
	if err := u.Remove(); err != nil {
		t.Fatal(err)
	}
}

func TestWaitEmptyCanceled(t *testing.T) {
	h := testBase(t)
	u, err := h.Unit("wait.service")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	cmd := startIn(t, u, `exec sleep 1000`)
	before := openFDs(t)
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		if err := u.WaitEmpty(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitEmpty = %v, want deadline exceeded", err)
		}
		cancel()
		u.Signal(0)
		u.AllProcs()
	}
	if after := openFDs(t); after != before {
		t.Fatalf("open fds %d, before %d: a watcher leaks", after, before)
	}
	u.Kill()
	cmd.Wait()
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestEscapeAndHostileNames(t *testing.T) {
	for in, want := range map[string]string{
		"app.service":     "app.service",
		"cgroup.procs":    "_cgroup.procs",
		"memory.service":  "_memory.service",
		".hidden.service": "_.hidden.service",
		"_x.service":      "__x.service",
		"a@b:c.service":   "a@b:c.service",
	} {
		if got, err := Escape(in); err != nil || got != want {
			t.Errorf("Escape(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	h := testBase(t)
	for _, bad := range []string{"", ".", "..", "../x", "a/b", "x\x00"} {
		if g, err := h.Unit(bad); err == nil {
			g.Close()
			t.Errorf("Unit(%q): no error", bad)
		}
	}
	// A symbolic link can not be made in cgroupfs; a leaf name with a
	// slash is refused before any system call.
	u, err := h.Unit("leaf.service")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Remove()
	if _, err := u.NewLeaf("../p"); err == nil {
		t.Error("NewLeaf(../p): no error")
	}
	if err := u.Set("../cgroup.procs", "1"); err == nil {
		t.Error("Set(../cgroup.procs): no error")
	}
}

func TestNewLeafSkipsTaken(t *testing.T) {
	h := testBase(t)
	u, err := h.Unit("leaves.service")
	if err != nil {
		t.Fatal(err)
	}
	// A leaf a previous sockd left.
	if err := os.Mkdir(filepath.Join(u.Dir(), "p1"), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := u.NewLeaf("p")
	if err != nil {
		t.Fatal(err)
	}
	if l.Name() != "p2" {
		t.Fatalf("leaf %s, want p2", l.Name())
	}
	l.Remove()
	u.RemoveEmpty()
	if _, err := os.Stat(filepath.Join(u.Dir(), "p1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("RemoveEmpty left p1")
	}
	if err := u.Remove(); err != nil {
		t.Fatal(err)
	}
}

func TestFindMountAndOwnCgroup(t *testing.T) {
	mi := []byte(`30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
41 30 0:38 / /mnt/a\040b rw - cgroup2 cgroup2 rw
`)
	if p, r, ok := findMount(mi); !ok || p != "/sys/fs/cgroup/unified" || r != "/" {
		t.Fatalf("findMount = %q %q %v", p, r, ok)
	}
	mi2 := append(mi, []byte("42 22 0:39 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")...)
	if p, _, _ := findMount(mi2); p != "/sys/fs/cgroup" {
		t.Fatalf("unified root not preferred: %q", p)
	}
	if got := unescape(`/mnt/a\040b`); got != "/mnt/a b" {
		t.Fatalf("unescape = %q", got)
	}
	if rel, ok := below("/", "/system.slice/sockd.service"); !ok || rel != "system.slice/sockd.service" {
		t.Fatalf("below = %q %v", rel, ok)
	}
	if _, ok := below("/a", "/ab"); ok {
		t.Fatal("below(/a, /ab)")
	}
	self, err := PathOf(os.Getpid())
	if err != nil || self == "" {
		t.Fatalf("PathOf(self) = %q, %v", self, err)
	}
	if _, err := PathOf(0x7fffffff); err == nil {
		t.Fatal("PathOf of no process: no error")
	}
}

func TestDetect(t *testing.T) {
	p, err := Detect()
	if err != nil {
		t.Fatal(err)
	}
	self, _ := PathOf(os.Getpid())
	if self == "/" && (p.Own || filepath.Base(p.Dir) != RootSubtree) {
		t.Fatalf("Detect at the root = %+v", p)
	}
}

func TestAvailableAndEnable(t *testing.T) {
	h := testBase(t)
	avail := h.Available()
	if err := h.Enable("no-such"); err == nil {
		t.Fatal("Enable(no-such): no error")
	}
	if err := h.Enable("+memory"); err == nil {
		t.Fatal("Enable(+memory): no error")
	}
	if !slices.Contains(avail, "memory") {
		if err := h.Enable("memory"); err == nil {
			t.Fatal("Enable(memory) without the controller: no error")
		}
	}
}

// In a delegated cgroup sockd never writes to the parent (systemd's), and
// turns controllers on only if systemd put it in its leaf: a sockd that
// moved itself there (an older systemd, without DelegateSubgroup=) leaves
// subtree_control alone, so that systemd can start the next sockd in the
// delegated cgroup after a crash. This test moves itself into the leaf of
// a cgroup it makes, and back.
func TestSetupDelegated(t *testing.T) {
	self, err := ownCgroup("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	point, root, _ := findMount(mi)
	rel, _ := below(root, self)
	home := filepath.Join(point, rel)
	h0 := testBase(t) // removed at the end, after the move back
	dir := h0.Dir()
	t.Setenv(movedEnv, "")
	os.Unsetenv(movedEnv)
	t.Cleanup(func() {
		if err := os.WriteFile(filepath.Join(home, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			t.Errorf("moving back to %s: %v", home, err)
		}
		os.Remove(filepath.Join(dir, SupervisorLeaf))
	})

	h, err := Setup(Place{Dir: dir, Own: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if got, _ := ownCgroup("/proc/self/cgroup"); filepath.Base(got) != SupervisorLeaf {
		t.Fatalf("sockd is in %s, want its %s leaf", got, SupervisorLeaf)
	}
	if h.parent >= 0 {
		t.Error("Setup kept a descriptor of the delegated cgroup's parent")
	}
	if os.Getenv(movedEnv) == "" {
		t.Errorf("%s not set for a re-exec", movedEnv)
	}
	err = h.Enable("hugetlb")
	if err == nil || !strings.Contains(err.Error(), "DelegateSubgroup") {
		t.Errorf("Enable after moving itself: %v, want a refusal naming DelegateSubgroup=", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control")); strings.TrimSpace(string(b)) != "" {
		t.Errorf("subtree_control %q, want empty", b)
	}
	if a := h.Available(); len(a) != 0 {
		t.Errorf("Available = %v, want none", a)
	}

	// Put in the leaf by systemd (no mark of its own): controllers on.
	os.Unsetenv(movedEnv)
	h2, err := Setup(Place{Dir: dir, Own: true, InLeaf: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if slices.Contains(h2.Available(), "hugetlb") {
		if err := h2.Enable("hugetlb"); err != nil {
			t.Errorf("Enable in systemd's leaf: %v", err)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control")); !strings.Contains(string(b), "hugetlb") {
			t.Errorf("subtree_control %q, want hugetlb", b)
		}
		os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("-hugetlb"), 0)
	}
}
