package supervisord

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/sockd/sockd/api"
)

// An explicit start while a process started by a connection is not yet
// ready (Type=notify, no READY=1 yet) waits for its readiness: it does not
// report success while the unit is not active. (It used to return at once
// because the slot was taken.)
func TestStartWaitsForTriggeredProcess(t *testing.T) {
	e := newEnv(t, "Type=notify\nEnvironment=SOCKD_TEST_CHILD=never-ready\nTimeoutStartSec=60s\n")
	c, err := net.Dial("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := e.d.Start(ctx, "app"); err == nil {
		if st := e.status(); st.State != api.StateActive {
			t.Fatalf("Start returned success while the unit is %s (%+v)", st.State, st)
		}
	}
}
