package integration

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockd/sockd/internal/testutil"
)

// A child that writes 200 MB without a newline through sockd's output
// capture (StandardOutput=journal, the default) leaves the real sockd
// binary's peak RSS under 40 MB, and `sockctl logs` returns at most the
// unit's 1 MiB buffer. Before the byte bound, the same output took sockd
// from 10 to 142 MB.
func TestOutputFloodRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 200 MB through sockd")
	}
	port := freePort(t)
	units := writeUnits(t, map[string]string{
		"flood.socket":  fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\n", port),
		"flood.service": "[Service]\nExecStart=/bin/sh -c \"yes x | tr -d '[:space:]' | head -c 200000000\"\n",
	})
	run := testutil.ShortDir(t)
	api := filepath.Join(run, "api.sock")
	// A build without -race (whose shadow memory would be measured too),
	// as sockd ships.
	plain := filepath.Join(t.TempDir(), "sockd")
	if out, err := exec.Command("go", "build", "-o", plain, "../cmd/sockd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// Not the harness's sockd: it keeps every log line, and sockd logs
	// each 64 KiB piece of the flood. This test only looks for two lines.
	cmd := exec.Command(plain, "--units", units, "--api", api, "--log-format", "json", "--runtime-dir", filepath.Join(run, "rt"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready, exited, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		r := bufio.NewReaderSize(stderr, 1<<16)
		readyOnce, exitOnce := false, false
		for {
			line, err := r.ReadSlice('\n')
			if err == bufio.ErrBufferFull {
				for err == bufio.ErrBufferFull { // a flood line: skip it
					_, err = r.ReadSlice('\n')
				}
				continue
			}
			if err != nil {
				return
			}
			s := string(line)
			if !readyOnce && strings.Contains(s, `"message":"sockd ready"`) {
				readyOnce = true
				close(ready)
			}
			if !exitOnce && strings.Contains(s, `"unit":"flood.service"`) && strings.Contains(s, `"message":"exited"`) {
				exitOnce = true
				close(exited)
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		cmd.Wait()
	})
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("sockd not ready within 20 s")
	}
	before := peakRSS(t, cmd.Process.Pid)

	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	select {
	case <-exited:
	case <-time.After(3 * time.Minute):
		t.Fatal("the flood did not end within 3 minutes")
	}
	took := time.Since(start)
	after := peakRSS(t, cmd.Process.Pid)
	t.Logf("200 MB without a newline in %s: sockd's peak RSS %d KiB before, %d KiB after", took.Round(time.Millisecond), before, after)
	if after > 40<<10 {
		t.Errorf("sockd's peak RSS %d KiB after the flood, want under 40 MiB", after)
	}

	out, err := exec.Command(bin.sockctl, "--api", api, "logs", "flood", "-n", "1000").Output()
	if err != nil {
		t.Fatalf("sockctl logs: %v", err)
	}
	if len(out) > 1<<20+64<<10 {
		t.Errorf("sockctl logs -n 1000 returned %d bytes, want about 1 MiB at most", len(out))
	}
	if len(out) < 512<<10 {
		t.Errorf("sockctl logs -n 1000 returned only %d bytes of the flood", len(out))
	}
}

// peakRSS returns VmHWM (the peak resident set) of pid in KiB.
func peakRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}
