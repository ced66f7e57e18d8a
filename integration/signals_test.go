package integration

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// SIGTERM during a SIGHUP reload is heard at once: the reload runs off
// the signal loop, and shutdown cuts its wait short. Here the reload
// waits for a unit that ignores SIGTERM (SIGKILL only after
// TimeoutStopSec=10s); sockd begins shutting down within 5 s anyway.
func TestSIGTERMDuringSIGHUPReload(t *testing.T) {
	units := writeUnits(t, map[string]string{
		"slow.service": "[Service]\nType=notify\nNotifyAccess=all\nTimeoutStopSec=10s\n" +
			"ExecStart=/bin/sh -c \"trap '' TERM; systemd-notify --ready; exec sleep 60\"\n",
	})
	s := startSockdArgs(t, units, []string{"--watch=false"})
	s.waitLog(10*time.Second, func(l map[string]any) bool {
		return l["unit"] == "slow.service" && l["message"] == "phase" && l["to"] == "running"
	})
	if err := os.Remove(filepath.Join(units, "slow.service")); err != nil {
		t.Fatal(err)
	}
	s.cmd.Process.Signal(syscall.SIGHUP)
	s.waitLog(10*time.Second, func(l map[string]any) bool {
		return l["unit"] == "slow.service" && l["message"] == "stopping"
	})
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.waitLog(5*time.Second, func(l map[string]any) bool { return l["message"] == "shutting down" })
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("sockd did not exit; log:\n%s", s.log())
	}
}
