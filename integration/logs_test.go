package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockd/sockd/api"
)

// mkfifo makes a FIFO in dir.
func mkfifo(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeFIFO writes s to the FIFO p (waiting, bounded, for its reader).
func writeFIFO(t *testing.T, p, s string) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err == nil {
			_, err = f.WriteString(s)
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("nobody read the FIFO %s", p)
	}
}

// follower is `sockctl logs -f` running, its stdout read line by line.
type follower struct {
	t     *testing.T
	lines chan string
}

func (s *sockd) followLogs(args ...string) *follower {
	s.t.Helper()
	cmd := exec.Command(bin.sockctl, append([]string{"--api", s.api, "logs"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	f := &follower{t: s.t, lines: make(chan string, 1000)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f.lines <- sc.Text()
		}
		close(f.lines)
	}()
	s.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
	})
	return f
}

// expect reads the next line, which must end with want.
func (f *follower) expect(want string) {
	f.t.Helper()
	select {
	case l, ok := <-f.lines:
		if !ok || !strings.HasSuffix(l, want) {
			f.t.Fatalf("followed line %q (open %v), want one ending in %q", l, ok, want)
		}
	case <-time.After(20 * time.Second):
		f.t.Fatalf("no line %q within 20s", want)
	}
}

func TestLogsFollowFilters(t *testing.T) {
	dir := t.TempDir()
	fifo := mkfifo(t, dir, "in")
	// The child opens the FIFO read-write, so that it never reads an
	// end of file between the test's writes.
	units := writeUnits(t, map[string]string{
		"app.service": "[Service]\nExecStart=/bin/sh -c 'echo before; exec 3<>" + fifo +
			"; while read -r l <&3; do case $$l in err*) echo \"$$l\" >&2;; *) echo \"$$l\";; esac; done; exec sleep 600'\n",
	})
	s := startSockd(t, units)
	all := s.followLogs("app", "-f")
	errs := s.followLogs("app", "--follow", "--stream", "stderr")
	if _, e, code := s.ctl("start", "app"); code != 0 {
		t.Fatalf("start: %s", e)
	}
	all.expect("] before")
	// Lines printed after the follow began come, in order (within a
	// stream: stdout and stderr are two pipes); the stream filter keeps
	// stderr's.
	writeFIFO(t, fifo, "one\ntwo\n")
	all.expect("] one")
	all.expect("] two")
	writeFIFO(t, fifo, "err-x\n")
	all.expect(" stderr] err-x")
	errs.expect(" stderr] err-x")
	since := time.Now()
	writeFIFO(t, fifo, "three\n")
	all.expect("] three")
	writeFIFO(t, fifo, "err-four\n")
	all.expect(" stderr] err-four")
	errs.expect(" stderr] err-four")

	out, e, code := s.ctl("logs", "app", "--since", since.Format(time.RFC3339Nano), "--json")
	var lines []api.LogLine
	if code != 0 || json.Unmarshal([]byte(out), &lines) != nil || len(lines) != 2 || lines[0].Line != "three" || lines[1].Line != "err-four" {
		t.Fatalf("logs --since: exit %d %s\n%s", code, e, out)
	}
	out, _, _ = s.ctl("logs", "app", "--stream", "stdout")
	if !strings.Contains(out, "] before\n") || !strings.Contains(out, "] three\n") || strings.Contains(out, "err-") {
		t.Fatalf("logs --stream stdout:\n%s", out)
	}
	out, _, _ = s.ctl("logs", "app", "--stream", "stderr", "--since", "1h", "-n", "1")
	if !strings.HasSuffix(out, " stderr] err-four\n") || strings.Count(out, "\n") != 1 {
		t.Fatalf("logs --stream stderr --since 1h -n 1:\n%s", out)
	}
}

// A follower that never reads does not hold the unit back: its output is
// read and kept in the ring as ever, and the follower, once it reads
// again, learns that it lagged.
func TestLogsFollowerNeverReads(t *testing.T) {
	dir := t.TempDir()
	fifo, done := mkfifo(t, dir, "go"), mkfifo(t, dir, "done")
	// 1,000 lines of 4 KiB: 4 MB, four times the ring, far more than
	// the API socket's buffers.
	units := writeUnits(t, map[string]string{
		"flood.service": "[Service]\nExecStart=/bin/sh -c 'echo ready; read x <" + fifo +
			"; line=$$(head -c 4000 /dev/zero | tr \"\\\\000\" x); i=0; while [ $$i -lt 1000 ]; do echo \"$$i $$line\"; i=$$((i+1)); done; echo finished; echo done >" + done + "; exec sleep 600'\n",
	})
	s := startSockd(t, units)
	if _, e, code := s.ctl("start", "flood"); code != 0 {
		t.Fatalf("start: %s", e)
	}
	all := s.followLogs("flood", "-f")
	all.expect("] ready")
	// The follower: reads its answer up to the backlog, then nothing.
	conn, err := net.Dial("unix", s.api)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/units/flood/logs?follow=1&n=1 HTTP/1.1\r\nHost: sockd\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("follow: %v %v", resp, err)
	}
	dec := json.NewDecoder(resp.Body)
	var first api.LogLine
	if err := dec.Decode(&first); err != nil || first.Line != "ready" {
		t.Fatalf("backlog: %+v %v", first, err)
	}
	// The unit prints its 4 MB and says so, though the follower reads
	// nothing (a 64 KiB pipe: only a reader that keeps up lets it).
	writeFIFO(t, fifo, "go\n")
	got := make(chan string, 1)
	go func() {
		f, err := os.Open(done)
		if err != nil {
			got <- err.Error()
			return
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		got <- string(b)
	}()
	select {
	case msg := <-got:
		if msg != "done\n" {
			t.Fatalf("done FIFO: %q", msg)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the unit did not finish its output within 60s: blocked behind the follower that does not read?")
	}
	if st := s.status("flood"); st.Service.State != api.StateActive {
		t.Fatalf("flood: %s/%s", st.Service.State, st.Service.SubState)
	}
	// The active follower is still there: "finished" comes to it or,
	// had it lagged, its end (either way it never held the unit).
	// The ring kept the newest lines.
	out, _, _ := s.ctl("logs", "flood", "-n", "1")
	if !strings.HasSuffix(out, "] finished\n") {
		t.Fatalf("logs -n 1: %q", out)
	}
	// Now it reads: lines, then the end that says it lagged.
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	n := 0
	for {
		var line struct {
			api.LogLine
			End string `json:"end"`
		}
		if err := dec.Decode(&line); err != nil {
			t.Fatalf("after %d lines: %v, want the lagged end", n, err)
		}
		if line.End != "" {
			if line.End != api.LogEndLagged {
				t.Fatalf("end %q, want lagged", line.End)
			}
			break
		}
		if line.Line == "finished" {
			t.Fatalf("the follower that did not read got every line (%d): it never lagged, the test proves nothing", n)
		}
		n++
	}
	t.Logf("the follower that did not read got %d lines, then lagged", n)
}
