package fdstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testTimeout bounds every wait of these tests.
const testTimeout = 10 * time.Second

func TestCheckName(t *testing.T) {
	for _, c := range []struct {
		name string
		want error
	}{
		{"listen/app.socket/0", nil},
		{"a b~!", nil},
		{strings.Repeat("x", 255), nil},
		{"", ErrNameEmpty},
		{strings.Repeat("x", 256), ErrNameTooLong},
		{"a:b", ErrNameInvalid},
		{"a\nFDSTOREREMOVE=1", ErrNameInvalid},
		{"tab\t", ErrNameInvalid},
		{"del\x7f", ErrNameInvalid},
		{"café", ErrNameInvalid},
		{"nul\x00", ErrNameInvalid},
	} {
		if err := CheckName(c.name); err != c.want {
			t.Errorf("CheckName(%q) = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestParseListen(t *testing.T) {
	const self = 1234
	for _, c := range []struct {
		pid, nfds, names string
		haveNames        bool
		want             []string
		err              string
	}{
		{pid: "", want: nil},
		{pid: "999", nfds: "2", names: "a:b", haveNames: true, want: nil},
		{pid: "1234", nfds: "2", names: "a:b", haveNames: true, want: []string{"a", "b"}},
		{pid: "1234", nfds: "3", names: "a:a:b", haveNames: true, want: []string{"a", "a", "b"}},
		{pid: "1234", nfds: "2", want: []string{"unknown", "unknown"}},
		{pid: "1234", nfds: "2", names: ":b", haveNames: true, want: []string{"", "b"}},
		{pid: "1234", nfds: "0", want: nil},
		{pid: "x", nfds: "1", err: "LISTEN_PID"},
		{pid: "-1", nfds: "1", err: "LISTEN_PID"},
		{pid: "1234", nfds: "", err: "LISTEN_FDS"},
		{pid: "1234", nfds: "-1", err: "LISTEN_FDS"},
		{pid: "1234", nfds: "99999999", err: "too many"},
		{pid: "1234", nfds: "2", names: "a", haveNames: true, err: "1 names"},
		{pid: "1234", nfds: "1", names: "", haveNames: true, want: []string{""}},
		{pid: "1234", nfds: "1", names: "a\tb", haveNames: true, err: "name 0"},
	} {
		got, err := parseListen(self, c.pid, c.nfds, c.names, c.haveNames)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("parseListen(%q, %q, %q) = %q, %v; want an error with %q", c.pid, c.nfds, c.names, got, err, c.err)
		case c.err == "" && (err != nil || !slices.Equal(got, c.want)):
			t.Errorf("parseListen(%q, %q, %q) = %q, %v; want %q", c.pid, c.nfds, c.names, got, err, c.want)
		}
	}
}

// Without NOTIFY_SOCKET sockd has no store, and storing costs nothing.
func TestNoNotifySocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	s := Open()
	if s != nil {
		t.Fatalf("Open() = %v with NOTIFY_SOCKET empty", s)
	}
	os.Unsetenv("NOTIFY_SOCKET")
	if s := Open(); s != nil {
		t.Fatalf("Open() = %v with NOTIFY_SOCKET unset", s)
	}
	if err := s.Put("listen/a/0", os.Stdin); err != nil {
		t.Errorf("nil Store: Put: %v", err)
	}
	if err := s.Remove("listen/a/0"); err != nil {
		t.Errorf("nil Store: Remove: %v", err)
	}
}

// openHarness starts a harness in a temporary directory and points
// NOTIFY_SOCKET at it.
func openHarness(t *testing.T) (*Harness, *Store) {
	t.Helper()
	h, err := NewHarness(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	})
	t.Setenv("NOTIFY_SOCKET", strings.TrimPrefix(h.Env()[0], "NOTIFY_SOCKET="))
	s := Open()
	if s == nil {
		t.Fatal("Open() = nil")
	}
	return h, s
}

func settle(t *testing.T, h *Harness) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := h.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

// listener returns a TCP listener's file (a duplicate, non-blocking as
// Go leaves it) and closes the listener at the test's end.
func listener(t *testing.T) *os.File {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); f.Close() })
	return f
}

// stored returns the inodes the harness holds, by name.
func stored(t *testing.T, h *Harness) map[string][]uint64 {
	t.Helper()
	files, err := h.Files()
	if err != nil {
		t.Fatal(err)
	}
	inodes := make(map[string][]uint64)
	for name, fs := range files {
		for _, f := range fs {
			st, err := fdState(f)
			if err != nil {
				t.Fatal(err)
			}
			inodes[name] = append(inodes[name], st.Ino)
			f.Close()
		}
	}
	return inodes
}

func inode(t *testing.T, f *os.File) uint64 {
	t.Helper()
	st, err := fdState(f)
	if err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// Put replaces what the store holds under a name; the store keeps one
// copy of a file, under its first name; Remove drops a name; every
// message is systemd's wording.
func TestPutRemove(t *testing.T) {
	checkNoLeak(t)
	h, s := openHarness(t)
	a, b, c := listener(t), listener(t), listener(t)
	before, err := fdState(a)
	if err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		do   func() error
		want map[string][]uint64
	}{
		{func() error { return s.Put("A", a) }, map[string][]uint64{"A": {inode(t, a)}}},
		{func() error { return s.Put("B", b) }, map[string][]uint64{"A": {inode(t, a)}, "B": {inode(t, b)}}},
		{func() error { return s.Put("A", c) }, map[string][]uint64{"A": {inode(t, c)}, "B": {inode(t, b)}}},
		{func() error { return s.Put("C", b) }, map[string][]uint64{"A": {inode(t, c)}, "B": {inode(t, b)}}},
		{func() error { return s.Remove("B") }, map[string][]uint64{"A": {inode(t, c)}}},
		{func() error { return s.Remove("nothing") }, map[string][]uint64{"A": {inode(t, c)}}},
	}
	for i, step := range steps {
		if err := step.do(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		settle(t, h)
		if got := stored(t, h); fmt.Sprint(got) != fmt.Sprint(step.want) {
			t.Fatalf("step %d: store holds %v, want %v", i, got, step.want)
		}
	}

	var texts []string
	for _, m := range h.Messages() {
		if m.Text == "BARRIER=1\n" {
			continue // Sync's
		}
		if m.PID != os.Getpid() {
			t.Errorf("message %q from pid %d, want %d", m.Text, m.PID, os.Getpid())
		}
		if wantFiles := strings.Count(m.Text, "FDSTORE=1"); m.Files != wantFiles {
			t.Errorf("message %q came with %d fds, want %d", m.Text, m.Files, wantFiles)
		}
		texts = append(texts, m.Text)
	}
	want := []string{
		"FDSTOREREMOVE=1\nFDNAME=A\n", "FDSTORE=1\nFDPOLL=0\nFDNAME=A\n",
		"FDSTOREREMOVE=1\nFDNAME=B\n", "FDSTORE=1\nFDPOLL=0\nFDNAME=B\n",
		"FDSTOREREMOVE=1\nFDNAME=A\n", "FDSTORE=1\nFDPOLL=0\nFDNAME=A\n",
		"FDSTOREREMOVE=1\nFDNAME=C\n", "FDSTORE=1\nFDPOLL=0\nFDNAME=C\n",
		"FDSTOREREMOVE=1\nFDNAME=B\n",
		"FDSTOREREMOVE=1\nFDNAME=nothing\n",
	}
	if !slices.Equal(texts, want) {
		t.Errorf("messages:\n%q\nwant:\n%q", texts, want)
	}

	// Put left the caller's fd as it was.
	if after, err := fdState(a); err != nil || after != before {
		t.Errorf("a after Put: %v, %v; before: %v", after, err, before)
	}
}

// Invalid names are refused before anything is sent.
func TestPutRefusesInvalidNames(t *testing.T) {
	checkNoLeak(t)
	h, s := openHarness(t)
	f := listener(t)
	for _, name := range []string{"", "a:b", "a\nFDSTOREREMOVE=1", strings.Repeat("x", 256), "é"} {
		if err := s.Put(name, f); err == nil {
			t.Errorf("Put(%q) = nil", name)
		}
		if err := s.Remove(name); err == nil {
			t.Errorf("Remove(%q) = nil", name)
		}
	}
	if err := s.Put("ok", nil); err == nil {
		t.Error("Put of a nil file = nil")
	}
	settle(t, h)
	if m := h.Messages(); len(m) != 1 || m[0].Text != "BARRIER=1\n" {
		t.Errorf("the harness got %+v, want Sync's barrier alone", m)
	}
}

// NOTIFY_SOCKET may name an abstract socket.
func TestAbstractNotifySocket(t *testing.T) {
	checkNoLeak(t)
	addr := fmt.Sprintf("@sockd-fdstore-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Setenv("NOTIFY_SOCKET", addr)
	f := listener(t)
	if err := Open().Put("A", f); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(testTimeout))
	buf, oob := make([]byte, maxMessage), make([]byte, unix.CmsgSpace(4))
	for _, want := range []string{"FDSTOREREMOVE=1\nFDNAME=A\n", "FDSTORE=1\nFDPOLL=0\nFDNAME=A\n"} {
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			t.Fatal(err)
		}
		if string(buf[:n]) != want {
			t.Errorf("got %q, want %q", buf[:n], want)
		}
		var fds []int
		if oobn > 0 {
			cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
			if err != nil || len(cmsgs) != 1 {
				t.Fatalf("control messages: %v, %v", cmsgs, err)
			}
			if fds, err = unix.ParseUnixRights(&cmsgs[0]); err != nil {
				t.Fatal(err)
			}
		}
		if wantFDs := strings.Count(want, "FDSTORE=1"); len(fds) != wantFDs {
			t.Errorf("%q came with %d fds, want %d", want, len(fds), wantFDs)
		}
		closeAll(fds)
	}
}

// A store that is not there is an error of Put, with the name.
func TestPutNoListener(t *testing.T) {
	checkNoLeak(t)
	t.Setenv("NOTIFY_SOCKET", t.TempDir()+"/none.sock")
	err := Open().Put("A", listener(t))
	if !errors.Is(err, unix.ENOENT) || !strings.Contains(err.Error(), `put "A"`) {
		t.Errorf("Put = %v, want ENOENT naming A", err)
	}
}
