package integration

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockd/sockd/internal/testutil"
)

// `make run` on the checkout serves the demo on 127.0.0.1:8080 as the
// README says: nothing runs before the first request, curl gets an
// answer, sockctl sees the unit, and Ctrl-C (SIGINT to the group) stops
// it all.
func TestMakeRun(t *testing.T) {
	if c, err := net.DialTimeout("tcp", "127.0.0.1:8080", time.Second); err == nil {
		c.Close()
		t.Fatal("127.0.0.1:8080 is taken: make run cannot serve the demo here")
	}
	api := filepath.Join(testutil.ShortDir(t), "api.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "-C", "..", "run", "API="+api)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = os.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed once make run is gone; exitErr then says how
	var exitErr error
	ready := make(chan struct{})
	var lines []string // read by the test only after exited
	go func() {
		sc := bufio.NewScanner(out)
		once := false
		for sc.Scan() {
			line := sc.Text()
			lines = append(lines, line)
			if !once && strings.Contains(line, "sockd ready") {
				once = true
				close(ready)
			}
		}
		exitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		// As Ctrl-C: sockd stops its children and its fd holder, which a
		// SIGKILL of sockd alone would leave running (they outlive a
		// crash on purpose) with 127.0.0.1:8080. SIGKILL only if it
		// does not stop.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	})
	select {
	case <-ready:
	case <-exited:
		t.Fatalf("make run exited before sockd was ready: %v\n%s", exitErr, strings.Join(lines, "\n"))
	case <-ctx.Done():
		t.Fatal("make run: sockd not ready in time")
	}
	sockctl := filepath.Join("..", "bin", "sockctl")
	st, err := exec.Command(sockctl, "--api", api, "status", "demo", "--json").Output()
	if err != nil || !strings.Contains(string(st), `"state":"inactive"`) {
		t.Fatalf("sockctl status before the first request: %v %s", err, st)
	}
	if body := get(t, client("tcp", "127.0.0.1:8080")); !strings.HasPrefix(body, "hello from sockd (pid ") {
		t.Fatalf("curl http://127.0.0.1:8080/: %q", body)
	}
	// The demo answers as soon as it accepts, and says READY=1 right
	// after: under load sockd may read that a moment later.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err = exec.Command(sockctl, "--api", api, "status", "demo", "--json").Output()
		if err == nil && strings.Contains(string(st), `"state":"active"`) {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("sockctl status after the request: %v %s", err, st)
		}
		time.Sleep(20 * time.Millisecond) // polling what an operator sees
	}
	// Ctrl-C in the terminal: SIGINT to the foreground process group.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("make run did not stop on SIGINT")
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:8080", time.Second); err == nil {
		c.Close()
		t.Fatal("127.0.0.1:8080 still served after make run stopped")
	}
}
