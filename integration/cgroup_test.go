package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/testutil"
)

// A service whose grandchild daemonizes (setsid, its own session and
// process group) cannot escape the real sockd: the grandchild is listed
// in sockctl status (it lives in the unit's cgroup), and sockctl stop
// leaves nothing running. This machine's cgroup v2 mount (the root of a
// unified host, or /sys/fs/cgroup/unified of a hybrid one, as on CI) is
// required: without it the test fails.
func TestEscapeeCaught(t *testing.T) {
	dir := testutil.ShortDir(t)
	pidFile := filepath.Join(dir, "escapee.pid")
	script := filepath.Join(dir, "daemonize.sh")
	// The service forks a grandchild into a new session, which writes
	// its pid and sleeps; the service itself says READY=1 and waits.
	os.WriteFile(script, []byte(fmt.Sprintf(`#!/bin/sh
setsid sh -c 'echo $$ > %s.tmp && mv %s.tmp %s && exec sleep 1000' </dev/null >/dev/null 2>&1 &
exec sleep 1000
`, pidFile, pidFile, pidFile)), 0o755)
	s := startSockd(t, writeUnits(t, map[string]string{
		"daemonize.service": "[Service]\nExecStart=" + script + "\nTimeoutStopSec=3s\n",
	}))
	var escapee int
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(pidFile); err == nil {
			escapee, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the grandchild never wrote its pid\n%s", s.log())
		}
		time.Sleep(10 * time.Millisecond) // a file, not an event
	}
	if sid, _ := unix.Getsid(escapee); sid != escapee {
		t.Fatalf("grandchild %d is not a session leader (sid %d): the test does not test an escape", escapee, sid)
	}
	pidfd, err := unix.PidfdOpen(escapee, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)

	st := s.status("daemonize")
	if !strings.HasPrefix(st.Service.ControlGroup, "cgroup ") {
		t.Fatalf("control group %q: this test needs sockd on cgroup v2 (/sys/fs/cgroup/unified on CI)", st.Service.ControlGroup)
	}
	found := false
	for _, p := range st.Service.CgroupPids {
		found = found || p == escapee
	}
	if !found {
		t.Fatalf("the daemonized grandchild %d is not in the status: %v", escapee, st.Service.CgroupPids)
	}
	out, _, _ := s.ctl("status", "daemonize")
	if !strings.Contains(out, strconv.Itoa(escapee)) {
		t.Errorf("sockctl status does not list %d:\n%s", escapee, out)
	}

	if _, errs, code := s.ctl("stop", "daemonize"); code != 0 {
		t.Fatalf("sockctl stop: %s", errs)
	}
	// The pidfd is readable once the process has exited.
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, 10_000); err != nil || n != 1 {
		t.Fatalf("the daemonized grandchild %d still runs 10 s after sockctl stop (%v)", escapee, err)
	}
	if st := s.status("daemonize"); len(st.Service.CgroupPids) != 0 {
		t.Errorf("processes left in the unit's cgroup: %v", st.Service.CgroupPids)
	}
}
