package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/testutil"
)

// The API answers at the fd limit: a server process with every fd slot
// taken serves each request on its spare fd, one after the other and
// several at once, instead of failing accept in a loop.
func TestServeAtFDLimit(t *testing.T) {
	path := filepath.Join(testutil.ShortDir(t), "api.sock")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SOCKD_API_TEST_FDLIMIT="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- strings.TrimSpace(line)
	}()
	select {
	case line := <-ready:
		if line != "ready" {
			t.Fatalf("server said %q; stderr: %s", line, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("server not ready; stderr: %s", logs.String())
	}
	c := &Client{Path: path}
	ask := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := c.Version(ctx); err != nil {
			return fmt.Errorf("version: %w", err)
		}
		if _, err := c.List(ctx); err != nil {
			return fmt.Errorf("list: %w", err)
		}
		return nil
	}
	for i := range 3 {
		if err := ask(); err != nil {
			t.Fatalf("request %d at the fd limit: %v", i, err)
		}
	}
	if !strings.Contains(logs.String(), "too many open files") {
		t.Errorf("the server never met its fd limit: the test proves nothing; log: %s", logs.String())
	}
	// A client that would keep its connection idle is told to close it:
	// it would hold the only fd the others are served on.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}}
	resp, err := hc.Get("http://sockd/v1/version")
	if err != nil {
		t.Fatalf("keep-alive client at the fd limit: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if !resp.Close {
		t.Errorf("answer on the spare fd without Connection: close: %v", resp.Header)
	}
	hc.CloseIdleConnections()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- ask()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent request at the fd limit: %v", err)
		}
	}
}

// fdLimitServerMain serves the API with every fd taken but the spare
// the server keeps, and says "ready" once the server has met the limit.
func fdLimitServerMain(path string) int {
	fail := func(err error) int {
		fmt.Println("error:", err)
		return 1
	}
	rl := unix.Rlimit{Cur: 64, Max: 64}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return fail(err)
	}
	l, err := Listen(path, 0o600)
	if err != nil {
		return fail(err)
	}
	srv := &Server{Backend: &fakeBackend{}, Log: zerolog.New(os.Stderr), Version: "test"}
	go srv.Serve(l)
	// One answer: the server is serving (and holds its spare); then the
	// server's side of that connection closes (ConnState says so).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := (&Client{Path: path}).Version(ctx); err != nil {
		return fail(err)
	}
	srv.mu.Lock()
	freed := srv.freed
	srv.mu.Unlock()
	select {
	case <-freed:
	case <-ctx.Done():
		return fail(errors.New("the server never closed the connection"))
	}
	// Take every free fd: the next accept fails with EMFILE.
	for {
		f, err := os.Open(os.DevNull)
		if errors.Is(err, syscall.EMFILE) {
			break
		}
		if err != nil {
			return fail(err)
		}
		filled = append(filled, f)
	}
	fmt.Println("ready")
	select {} // until killed
}

// lockedBuffer is a strings.Builder a child's stderr copier writes while
// the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// filled keeps the fds a child process took to reach its limit open:
// an *os.File that is garbage collected closes its fd.
var filled []*os.File
