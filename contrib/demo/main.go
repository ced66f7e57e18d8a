// Command sockd-demo is a small HTTP app for socket activation: it takes
// its listening sockets from sockd (or systemd) with go-systemd's
// activation package, answers every request with its pid, tells its
// supervisor READY=1 through sd_notify, and drains gracefully on SIGTERM.
//
// Environment: DEMO_MESSAGE (the greeting), DEMO_START_DELAY (a Go
// duration to wait before READY=1, to watch a readiness-gated restart),
// DEMO_FAIL=1 (exit at once with status 3: a broken build), DEMO_NEVER_READY=1
// (serve but never send READY=1), DEMO_EXTRA_ADDR (also bind this address
// itself, beside the sockets it was handed).
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
)

func main() {
	log.SetFlags(0)
	if os.Getenv("DEMO_FAIL") == "1" {
		log.Print("DEMO_FAIL=1: exiting with status 3")
		os.Exit(3)
	}
	named, err := activation.ListenersWithNames()
	if err != nil {
		log.Fatalf("activation: %v", err)
	}
	var ls []net.Listener
	for name, group := range named {
		for _, l := range group {
			log.Printf("listening on %s (%s)", l.Addr(), name)
			ls = append(ls, l)
		}
	}
	if extra := os.Getenv("DEMO_EXTRA_ADDR"); extra != "" {
		// A socket of its own beside sockd's, served by the same process
		// and handler: make bench compares the two paths with nothing
		// else different.
		l, err := net.Listen("tcp", extra)
		if err != nil {
			log.Fatal(err)
		}
		log.Printf("also listening on %s (own socket)", l.Addr())
		ls = append(ls, l)
	}
	if len(ls) == 0 {
		l, err := net.Listen("tcp", envOr("DEMO_ADDR", "127.0.0.1:8080"))
		if err != nil {
			log.Fatal(err)
		}
		log.Printf("no sockets passed (LISTEN_FDS); listening on %s", l.Addr())
		ls = append(ls, l)
	}
	msg := envOr("DEMO_MESSAGE", "hello from sockd-demo")
	conns := newConnCounter()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s (pid %d)\n", msg, os.Getpid())
		}),
		ConnState: conns.track,
	}
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				log.Printf("serve: %v", err)
			}
		}()
	}
	if d, err := time.ParseDuration(os.Getenv("DEMO_START_DELAY")); err == nil {
		time.Sleep(d) // pretend to warm up
	}
	if os.Getenv("DEMO_NEVER_READY") != "1" {
		daemon.SdNotify(false, daemon.SdNotifyReady)
		daemon.SdNotify(false, "STATUS=serving")
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	<-sigs
	log.Print("draining")
	daemon.SdNotify(false, daemon.SdNotifyStopping)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	drain(ctx, srv, ls, &wg, conns)
}

// drain stops an HTTP server without failing a request, on a listening
// socket that the next process keeps serving. Server.Shutdown alone is
// not enough: it drops a request that it reads from a connection
// accepted just before shutdown began (the connection closes unanswered,
// golang/go#65802). So: stop accepting (what is still queued goes to the
// next process), answer every connection already accepted with
// "Connection: close", and only then shut down.
func drain(ctx context.Context, srv *http.Server, ls []net.Listener, serving *sync.WaitGroup, conns *connCounter) {
	for _, l := range ls {
		l.Close()
	}
	// Once every Serve loop has returned, each connection it accepted
	// has been counted (Serve reports StateNew before accepting again).
	serving.Wait()
	srv.SetKeepAlivesEnabled(false)
	conns.waitNone(ctx, 5*time.Second)
	srv.Shutdown(ctx)
}

// connCounter counts the connections that may still carry a request:
// new (accepted, nothing read yet) and active ones.
type connCounter struct {
	mu      sync.Mutex
	busy    map[net.Conn]bool
	changed chan struct{} // closed and replaced on every change
}

func newConnCounter() *connCounter {
	return &connCounter{busy: map[net.Conn]bool{}, changed: make(chan struct{})}
}

func (c *connCounter) track(conn net.Conn, st http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch st {
	case http.StateNew, http.StateActive:
		c.busy[conn] = true
	default:
		delete(c.busy, conn)
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

// waitNone waits until no connection is new or active, for at most
// idle without a change (a client that connected and never spoke).
func (c *connCounter) waitNone(ctx context.Context, idle time.Duration) {
	for {
		c.mu.Lock()
		n, ch := len(c.busy), c.changed
		c.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-ch:
		case <-time.After(idle):
			return
		case <-ctx.Done():
			return
		}
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
