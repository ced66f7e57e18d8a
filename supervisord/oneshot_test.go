package supervisord

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/testutil"
)

// A socket-less Type=oneshot service runs its ExecStart= lines one after
// another at start, is activating meanwhile, and ends inactive (or failed
// when a line fails); restart runs it again.
func TestOneshot(t *testing.T) {
	base := testutil.ShortDir(t)
	dir := filepath.Join(base, "units")
	os.MkdirAll(dir, 0o755)
	trace := filepath.Join(base, "trace")
	os.WriteFile(filepath.Join(dir, "setup.service"), []byte("[Service]\nType=oneshot\n"+
		"ExecStart=/bin/sh -c 'echo one >> "+trace+"'\nExecStart=/bin/sh -c 'echo two >> "+trace+"'\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "bad.service"), []byte("[Service]\nType=oneshot\n"+
		"ExecStart=-/bin/false\nExecStart=/bin/sh -c 'exit 7'\n"), 0o644)
	states := make(chan string, 64)
	d := New(Config{UnitsDir: dir, RuntimeDir: filepath.Join(base, "rt"), Log: zerolog.New(zerolog.NewTestWriter(t)),
		Observe: func(unit string, st api.ServiceStatus) { states <- unit + " " + st.State + " " + st.Result }})
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		d.Shutdown(ctx)
	})
	want := map[string]bool{"setup.service inactive success": false, "bad.service failed exit-code": false}
	timeout := time.After(20 * time.Second)
	for done := 0; done < len(want); {
		select {
		case s := <-states:
			if seen, ok := want[s]; ok && !seen {
				want[s] = true
				done++
			}
		case <-timeout:
			t.Fatalf("states seen: %v", want)
		}
	}
	if b, _ := os.ReadFile(trace); string(b) != "one\ntwo\n" {
		t.Fatalf("trace %q", b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := d.Restart(ctx, "setup", api.RestartOptions{Wait: true}, nil)
	if err != nil || !res.OK {
		t.Fatalf("restart: %+v %v", res, err)
	}
	if b, _ := os.ReadFile(trace); string(b) != "one\ntwo\none\ntwo\n" {
		t.Fatalf("trace after restart %q", b)
	}
	res, err = d.Restart(ctx, "bad", api.RestartOptions{Wait: true}, nil)
	if err != nil || res.OK || !strings.Contains(res.Cause, "exit status 7") {
		t.Fatalf("restart of the failing oneshot: %+v %v", res, err)
	}
}

// A oneshot's ExecStart= lines write where StandardOutput= says, as the
// main process of any other type would.
func TestOneshotStandardOutput(t *testing.T) {
	out := filepath.Join(testutil.ShortDir(t), "out")
	e := newEnv(t, "Type=oneshot\nExecStart=\nExecStart=/bin/echo one\nExecStart=/bin/echo two\nStandardOutput=append:"+out+"\n")
	if err := e.d.Start(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil || string(b) != "one\ntwo\n" {
		t.Fatalf("%q %v", b, err)
	}
}
