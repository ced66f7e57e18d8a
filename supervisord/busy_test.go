package supervisord

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/testutil"
)

// A unit whose address another process holds is not silently missing:
// it is listed as failed (address-in-use) naming the holder, and sockd
// binds it once the address is free, without a reload from outside.
func TestAddressInUseRetried(t *testing.T) {
	squatter, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer squatter.Close()
	addr := squatter.Addr().String()
	base := testutil.ShortDir(t)
	dir := filepath.Join(base, "units")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "app.socket"), []byte("[Socket]\nListenStream="+addr+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "app.service"), []byte("[Service]\nExecStart=/bin/true\n"), 0o644)
	listening := make(chan struct{}, 1)
	d := New(Config{UnitsDir: dir, RuntimeDir: filepath.Join(base, "rt"), Log: zerolog.New(zerolog.NewTestWriter(t)),
		Observe: func(unit string, st api.ServiceStatus) {
			if unit == "app.service" && st.SubState == "listening" {
				select {
				case listening <- struct{}{}:
				default:
				}
			}
		}})
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		d.Shutdown(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := d.Status(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	self := fmt.Sprintf("pid %d", os.Getpid())
	if st.Service.State != api.StateFailed || st.Service.Result != "address-in-use" || !strings.Contains(st.Service.LastExit, self) {
		t.Fatalf("status while the address is held: %+v; want failed, address-in-use, naming %s", st.Service, self)
	}
	if got := d.Waiting(); len(got) != 1 || got[0] != "app.service" {
		t.Fatalf("Waiting: %v", got)
	}
	all, err := d.List(ctx)
	if err != nil || len(all) != 1 || all[0].Service.Result != "address-in-use" {
		t.Fatalf("List: %+v %v", all, err)
	}

	squatter.Close()
	select {
	case <-listening:
	case <-time.After(15 * time.Second):
		t.Fatal("the unit did not bind its address within 15 s of it coming free")
	}
	if got := d.Waiting(); len(got) != 0 {
		t.Fatalf("still waiting: %v", got)
	}
	st, err = d.Status(ctx, "app")
	if err != nil || len(st.Sockets) != 1 || st.Sockets[0].Listen != addr {
		t.Fatalf("after the retry: %+v %v", st, err)
	}
}
