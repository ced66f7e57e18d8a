package supervisord

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sockd/sockd/api"
)

// WatchdogSec= gives the child WATCHDOG_USEC; a child that never pings is
// stopped and the unit's result is "watchdog".
func TestOptionsWatchdog(t *testing.T) {
	// Long enough for the child to write its report first, under -race
	// on a loaded machine (300 ms was not).
	e := newEnv(t, reportService("WatchdogSec=1500ms"))
	t0 := time.Now() // the watchdog counts from the spawn, before Start returns
	if err := e.d.Start(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	st := e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 0 && st.Result != "" })
	if st.Result != "watchdog" || st.State != api.StateFailed {
		t.Fatalf("status %+v, want failed with result watchdog", st)
	}
	if d := time.Since(t0); d < 1500*time.Millisecond {
		t.Fatalf("killed after %v, before WatchdogSec=1500ms", d)
	}
	r, _ := e.reportFromLogs("app")
	checkEnv(t, r, map[string]string{"WATCHDOG_USEC": "1500000"})
	if _, ok := r.env("NOTIFY_SOCKET"); !ok {
		t.Errorf("no NOTIFY_SOCKET for a service with WatchdogSec=")
	}
}

// NotifyAccess=: READY=1 from a grandchild counts with "all", not with
// "main" (the default of Type=notify).
func TestOptionsNotifyAccess(t *testing.T) {
	for _, tc := range []struct {
		access string
		ready  bool
	}{
		{"", false},
		{"main", false},
		{"all", true},
	} {
		t.Run("access="+tc.access, func(t *testing.T) {
			// 2 s: the grandchild must be up and sending under -race on a loaded machine.
			lines := "Type=notify\nTimeoutStartSec=2s\nEnvironment=CHILD_GRANDCHILD=notify\n"
			if tc.access != "" {
				lines += "NotifyAccess=" + tc.access + "\n"
			}
			e := newEnv(t, reportService(lines))
			err := e.d.Start(e.ctx(), "app")
			if tc.ready {
				if err != nil {
					t.Fatalf("start: %v", err)
				}
				if st := e.status(); st.State != api.StateActive {
					t.Fatalf("status %+v", st)
				}
				return
			}
			if err == nil {
				t.Fatal("start succeeded on a grandchild's READY=1")
			}
			st := e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 0 && st.Result != "" })
			if st.Result != "timeout" {
				t.Fatalf("status %+v, want result timeout", st)
			}
		})
	}
}

// Type=simple is active once spawned; Type=notify is activating until
// READY=1.
func TestOptionsType(t *testing.T) {
	t.Run("simple", func(t *testing.T) {
		e := newEnv(t, reportService("Type=simple"))
		if err := e.d.Start(e.ctx(), "app"); err != nil {
			t.Fatal(err)
		}
		st := e.await(func(st api.ServiceStatus) bool { return len(st.Pids) > 0 })
		if st.State != api.StateActive {
			t.Fatalf("first status with a process: %+v, want active", st)
		}
	})
	t.Run("notify", func(t *testing.T) {
		e := newEnv(t, reportService("Type=notify"))
		started := make(chan error, 1)
		go func() { started <- e.d.Start(e.ctx(), "app") }()
		st := e.await(func(st api.ServiceStatus) bool { return len(st.Pids) > 0 })
		if st.State != api.StateActive && st.State != api.StateActivating {
			t.Fatalf("first status with a process: %+v", st)
		}
		if st.State == api.StateActive {
			t.Fatalf("active before READY=1: %+v", st)
		}
		select {
		case err := <-started:
			t.Fatalf("start returned (%v) before READY=1", err)
		default:
		}
		// The child says READY=1 when asked over its socket; the
		// connection waits in the queue until it accepts.
		if err := e.getPath("/ready"); err != nil {
			t.Fatal(err)
		}
		e.await(func(st api.ServiceStatus) bool { return st.State == api.StateActive })
		if err := <-started; err != nil {
			t.Fatalf("start: %v", err)
		}
	})
}

func (e *env) getPath(path string) error {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", e.sock)
		}}}
	resp, err := c.Get("http://app" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	return err
}
