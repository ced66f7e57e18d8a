package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitReady waits for the n-th "sockd ready" line.
func (s *sockd) waitReady(t *testing.T, n int) {
	t.Helper()
	seen := 0
	s.waitLog(30*time.Second, func(l map[string]any) bool {
		if l["message"] == "sockd ready" {
			seen++
		}
		return seen >= n
	})
}

// socketInodes lists the inodes of the sockets pid holds.
func socketInodes(t *testing.T, pid int) map[string]bool {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, e := range ents {
		if link, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(link, "socket:") {
			inodes[link] = true
		}
	}
	return inodes
}

// 10 re-execs of sockd under continuous load, by `sockctl daemon-reexec`
// and by SIGUSR2 in turn: no request fails, sockd keeps its pid, the
// child its pid, and sockd holds the very socket the child serves on
// after each. A binary that fails its self-test is refused: sockctl
// exits 1 with the reason, and the old sockd serves on.
func TestReexecUnderLoad(t *testing.T) {
	port := freePort(t)
	exe := filepath.Join(t.TempDir(), "sockd")
	copyFile(t, bin.sockd, exe)
	s := startSockdBinary(t, exe, writeUnits(t, demoUnits(port)))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	web := client("tcp", addr)
	child := pidOf(t, get(t, web))
	// The listening socket: the one socket both hold.
	var shared []string
	mine := socketInodes(t, s.cmd.Process.Pid)
	for ino := range socketInodes(t, child) {
		if mine[ino] {
			shared = append(shared, ino)
		}
	}
	if len(shared) != 1 {
		t.Fatalf("sockd and its child share sockets %v, want the one listening socket", shared)
	}
	listening := shared[0]

	l := startLoad(t, addr, false, false)
	for i := range 10 {
		if i%2 == 0 {
			out, errs, code := s.ctl("daemon-reexec")
			if code != 0 || !strings.Contains(out, fmt.Sprintf("pid %d", s.cmd.Process.Pid)) {
				t.Fatalf("re-exec %d: sockctl daemon-reexec: exit %d\n%s%s", i+1, code, out, errs)
			}
		} else if err := s.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
			t.Fatal(err)
		}
		s.waitReady(t, i+2)
		st := s.status("demo").Service
		if len(st.Pids) != 1 || st.Pids[0] != child {
			t.Fatalf("re-exec %d: pids %v, want %d kept", i+1, st.Pids, child)
		}
		if !socketInodes(t, s.cmd.Process.Pid)[listening] {
			t.Fatalf("re-exec %d: sockd does not hold the child's listening socket %s", i+1, listening)
		}
	}
	r := l.stop()
	t.Logf("10 re-execs: %d requests, failures %v, p99 %.1f ms, max %.1f ms", r.Requests, r.Failures, r.P99, r.Max)
	if len(r.Failures) > 0 || r.OK == 0 {
		t.Fatalf("failed requests across re-execs: %v %v", r.Failures, r.Errors)
	}
	if got := pidOf(t, get(t, web)); got != child {
		t.Fatalf("served by %d after the re-execs, want %d", got, child)
	}

	// A binary that fails its self-test: sockd says why and serves on.
	if err := os.WriteFile(exe+".new", []byte("#!/bin/sh\necho broken >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(exe+".new", exe); err != nil {
		t.Fatal(err)
	}
	out, errs, code := s.ctl("daemon-reexec")
	if code != 1 || !strings.Contains(errs, "self-test") {
		t.Fatalf("daemon-reexec into a broken binary: exit %d, want 1 naming the self-test\n%s%s", code, out, errs)
	}
	s.cmd.Process.Signal(syscall.SIGUSR2)
	s.waitLog(30*time.Second, func(l map[string]any) bool {
		return l["message"] == "re-exec failed; this sockd serves on" && strings.Contains(fmt.Sprint(l["error"]), "self-test")
	})
	if got := pidOf(t, get(t, web)); got != child {
		t.Fatalf("after a refused re-exec: served by %d, want %d", got, child)
	}
	if out, errs, code := s.ctl("restart", "demo", "--wait"); code != 0 {
		t.Fatalf("restart after a refused re-exec: exit %d\n%s%s", code, out, errs)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
