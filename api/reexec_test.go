package api

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sockd/sockd/internal/testutil"
)

// POST /v1/daemon-reexec: the whole answer reaches the client before
// commit runs; a refusal is the client's error; without the hook, 501.
func TestDaemonReexecRoute(t *testing.T) {
	committed := make(chan struct{})
	var refuse atomic.Pointer[error]
	path := filepath.Join(testutil.ShortDir(t), "api.sock")
	l, err := Listen(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Backend: &fakeBackend{}, Log: zerolog.New(zerolog.NewTestWriter(t)), Version: "test",
		Reexec: func(ctx context.Context) (func(), error) {
			if e := refuse.Load(); e != nil {
				return nil, *e
			}
			return func() { close(committed) }, nil
		}}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	})
	c := &Client{Path: path}
	ctx := testCtx(t)
	res, err := c.DaemonReexec(ctx)
	if err != nil || !res.OK || res.Pid != os.Getpid() {
		t.Fatalf("DaemonReexec = %+v, %v", res, err)
	}
	select {
	case <-committed:
	case <-time.After(5 * time.Second):
		t.Fatal("commit not called after the answer")
	}

	e := errors.New("re-exec: /usr/local/bin/sockd fails its self-test: exit status 1")
	refuse.Store(&e)
	if _, err := c.DaemonReexec(ctx); err == nil || !strings.Contains(err.Error(), "self-test") {
		t.Fatalf("a refused re-exec: %v", err)
	}

	ts := startServer(t, &fakeBackend{})
	if _, err := ts.client.DaemonReexec(ctx); err == nil || !strings.Contains(err.Error(), "cannot re-execute") {
		t.Fatalf("without the hook: %v", err)
	}
}
