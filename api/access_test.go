package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestMain lets the test binary play an API client running as another
// user (see runAs).
func TestMain(m *testing.M) {
	if ops := os.Getenv("SOCKD_API_TEST_CLIENT"); ops != "" {
		os.Exit(clientMain(os.Getenv("SOCKD_API_TEST_PATH"), strings.Fields(ops)))
	}
	if path := os.Getenv("SOCKD_API_TEST_FDLIMIT"); path != "" {
		os.Exit(fdLimitServerMain(path)) // spare_test.go
	}
	os.Exit(m.Run())
}

// clientMain makes one request per op ("status", "list", "restart",
// "hold") and
// prints each outcome on a line: "ok", "unreachable" or the status.
func clientMain(path string, ops []string) int {
	c := &Client{Path: path}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, op := range ops {
		var err error
		switch op {
		case "status":
			_, err = c.Status(ctx, "app")
		case "list":
			_, err = c.List(ctx)
		case "restart":
			_, err = c.Restart(ctx, "app", RestartOptions{}, nil)
		case "events":
			err = c.Events(ctx, "app", func(UnitEvent) error { return errStopEvents })
			if errors.Is(err, errStopEvents) {
				err = nil
			}
		case "hold":
			var h *Hold
			if h, err = c.Hold(ctx, "app"); err == nil {
				closeFiles(h.Files)
				h.Release()
			}
		default:
			err = fmt.Errorf("unknown op %q", op)
		}
		var (
			ae *Error
			ue *UnreachableError
		)
		switch {
		case err == nil:
			fmt.Println("ok")
		case errors.As(err, &ue):
			fmt.Println("unreachable")
		case errors.As(err, &ae) && errors.Is(err, ErrPermission):
			fmt.Printf("%d %s\n", ae.Status, ae.Message)
		default:
			fmt.Printf("other %v\n", err)
		}
	}
	return 0
}

// runAs runs the test binary as uid 65534 (nobody) with the given gid and
// supplementary groups, making the requests ops, and returns one outcome
// per op.
func runAs(t *testing.T, exe, path string, gid uint32, groups []uint32, ops ...string) []string {
	t.Helper()
	cmd := exec.Command(exe)
	cmd.Env = []string{"SOCKD_API_TEST_CLIENT=" + strings.Join(ops, " "), "SOCKD_API_TEST_PATH=" + path}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: gid, Groups: groups}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client as nobody: %v (%s)", err, out)
	}
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// nobodyDir makes a directory that uid 65534 can enter, holding a copy of
// the test binary it can run (go test's own build directory is 0700).
func nobodyDir(t *testing.T) (dir, exe string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run clients as another user")
	}
	dir, err := os.MkdirTemp("", "sockd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	exe = filepath.Join(dir, "client.test")
	dst, err := os.OpenFile(exe, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, exe
}

// serveAccess serves a backend whose status and restart succeed on a
// socket at path with mode and group, under acc.
// It returns the peers of the restarts the backend saw.
func serveAccess(t *testing.T, path string, mode os.FileMode, gid int, acc Access) <-chan Peer {
	t.Helper()
	l, err := ListenGroup(path, mode, gid)
	if err != nil {
		t.Fatal(err)
	}
	peers := make(chan Peer, 16)
	srv := &Server{
		Backend: &fakeBackend{
			status: func(ctx context.Context, unit string) (UnitStatus, error) { return sampleStatus, nil },
			restart: func(ctx context.Context, unit string, opts RestartOptions, progress func(Event)) (RestartResult, error) {
				p, _ := PeerFromContext(ctx)
				peers <- p
				return RestartResult{}, nil
			},
			events: subscribedOnly,
		},
		Log:    zerolog.New(zerolog.NewTestWriter(t)),
		Access: acc,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	})
	return peers
}

func TestAccessOtherUsers(t *testing.T) {
	dir, exe := nobodyDir(t)
	const readGroup, adminGroup, otherGroup = 4242, 4343, 4444
	path := filepath.Join(dir, "api.sock")
	// 0666: anyone may connect, so only the peer check keeps them out.
	serveAccess(t, path, 0o666, -1, Access{Groups: []int{readGroup}, AdminGroups: []int{adminGroup}})

	ops := []string{"status", "list", "restart"}
	tests := []struct {
		name   string
		gid    uint32
		groups []uint32
		want   []string // per op: "ok" or "403"
	}{
		{"no group", 65534, nil, []string{"403", "403", "403"}},
		{"other group", 65534, []uint32{otherGroup}, []string{"403", "403", "403"}},
		{"read group", 65534, []uint32{otherGroup, readGroup}, []string{"ok", "ok", "403"}},
		{"read group as gid", readGroup, nil, []string{"ok", "ok", "403"}},
		{"admin group", 65534, []uint32{adminGroup}, []string{"ok", "ok", "ok"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runAs(t, exe, path, tt.gid, tt.groups, ops...)
			if len(got) != len(ops) {
				t.Fatalf("outcomes %q, want one per op %q", got, ops)
			}
			for i, op := range ops {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("%s: %q, want %s", op, got[i], tt.want[i])
				}
				if tt.want[i] == "403" && !strings.Contains(got[i], "uid 65534") {
					t.Errorf("%s: refusal %q does not name the peer", op, got[i])
				}
			}
			if tt.want[2] == "403" && !strings.Contains(got[2], "group 4343") {
				t.Errorf("restart refusal %q does not name the admin group", got[2])
			}
		})
	}
	t.Run("root", func(t *testing.T) {
		c := &Client{Path: path}
		if _, err := c.Status(testCtx(t), "app"); err != nil {
			t.Error(err)
		}
		if _, err := c.Restart(testCtx(t), "app", RestartOptions{}, nil); err != nil {
			t.Error(err)
		}
	})
}

func TestAccessAdminUID(t *testing.T) {
	dir, exe := nobodyDir(t)
	path := filepath.Join(dir, "api.sock")
	restarts := serveAccess(t, path, 0o666, -1, Access{AdminUIDs: []int{65534}})
	if got := runAs(t, exe, path, 65534, nil, "status", "restart"); !slices.Equal(got, []string{"ok", "ok"}) {
		t.Errorf("admin uid: %q, want ok ok", got)
	}
	select {
	case p := <-restarts:
		if p.UID != 65534 || p.GID != 65534 {
			t.Errorf("restart by %+v, want uid 65534", p)
		}
	default:
		t.Error("no restart reached the backend")
	}
}

// TestAccessSocketGroup checks the file layer under the peer check: a
// 0660 socket of the read group keeps out who is not in it.
func TestAccessSocketGroup(t *testing.T) {
	dir, exe := nobodyDir(t)
	path := filepath.Join(dir, "api.sock")
	serveAccess(t, path, 0o660, 4242, Access{Groups: []int{4242}})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Gid != 4242 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket gid %d mode %v, want 4242 0660", st.Gid, fi.Mode().Perm())
	}
	if got := runAs(t, exe, path, 65534, []uint32{4242}, "status"); !slices.Equal(got, []string{"ok"}) {
		t.Errorf("in the group: %q", got)
	}
	if got := runAs(t, exe, path, 65534, nil, "status"); !slices.Equal(got, []string{"unreachable"}) {
		t.Errorf("not in the group: %q, want unreachable", got)
	}
}

func TestAccessCheck(t *testing.T) {
	acc := Access{Groups: []int{10}, AdminGroups: []int{20}, AdminUIDs: []int{1000}}
	tests := []struct {
		peer        Peer
		read, write bool
	}{
		{Peer{UID: 0, GID: 0}, true, true},
		{Peer{UID: os.Geteuid(), GID: 99}, true, true},
		{Peer{UID: 1000, GID: 99}, true, true},
		{Peer{UID: 1001, GID: 10}, true, false},
		{Peer{UID: 1001, GID: 99, Groups: []int{5, 10}}, true, false},
		{Peer{UID: 1001, GID: 99, Groups: []int{20}}, true, true},
		{Peer{UID: 1001, GID: 20}, true, true},
		{Peer{UID: 1001, GID: 99, Groups: []int{11}}, false, false},
	}
	for _, tt := range tests {
		for _, write := range []bool{false, true} {
			want := tt.read
			if write {
				want = tt.write
			}
			err := acc.check(tt.peer, true, "GET /x", write)
			if (err == nil) != want {
				t.Errorf("%+v write=%v: %v, want allowed=%v", tt.peer, write, err, want)
			}
			if err != nil && !errors.Is(err, ErrPermission) {
				t.Errorf("%v does not match ErrPermission", err)
			}
		}
	}
	if err := (Access{}).check(Peer{}, false, "GET /x", false); !errors.Is(err, ErrPermission) {
		t.Errorf("unknown peer: %v, want ErrPermission", err)
	}
	err := acc.check(Peer{UID: 1001, PID: 7, GID: 99}, true, "POST /v1/units/app/restart", true)
	want := "POST /v1/units/app/restart: permission denied: a write route, for root, uid 1000 or group 20; uid 1001 (pid 7, groups 99) is none of them"
	if err == nil || err.Error() != want {
		t.Errorf("message:\n got %v\nwant %s", err, want)
	}
}

func TestPeerGroups(t *testing.T) {
	peers := make(chan Peer, 1)
	ts := startServer(t, &fakeBackend{status: func(ctx context.Context, _ string) (UnitStatus, error) {
		p, _ := PeerFromContext(ctx)
		peers <- p
		return sampleStatus, nil
	}})
	if _, err := ts.client.Status(testCtx(t), "app"); err != nil {
		t.Fatal(err)
	}
	want, err := os.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	if p := <-peers; !slices.Equal(p.Groups, want) {
		t.Errorf("peer groups %v, want %v", p.Groups, want)
	}
}

// TestSlowBody checks that a client that sends its header but not the
// body it announced is answered 408 and cut off.
func TestSlowBody(t *testing.T) {
	ts := startServer(t, &fakeBackend{})
	ts.srv.BodyTimeout = 300 * time.Millisecond
	conn, err := net.Dial("unix", ts.path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprint(conn, "POST /v1/units/app/restart HTTP/1.1\r\nHost: sockd\r\nContent-Length: 100\r\n\r\n{\"wait\"")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(conn) // the server closes after answering
	if err != nil {
		t.Fatalf("read answer: %v (after %v)", err, time.Since(start))
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Errorf("cut off after %v, want about 300ms", d)
	}
	if !strings.HasPrefix(string(b), "HTTP/1.1 408 ") || !strings.Contains(string(b), "not received within 300ms") {
		t.Errorf("answer:\n%s", b)
	}
	_, body, _ := strings.Cut(string(b), "\r\n\r\n")
	var eb errorBody
	if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Error == "" {
		t.Errorf("body %q: %v", body, err)
	}
}

// TestBodyTooBig checks the cap on a body's size.
func TestBodyTooBig(t *testing.T) {
	ts := startServer(t, &fakeBackend{})
	status, _, body := ts.raw(t, "POST", "/v1/reload", `{"x":"`+strings.Repeat("a", maxBody)+`"}`)
	if status != 400 || !strings.Contains(string(body), "larger than 1048576 bytes") {
		t.Errorf("%d %s", status, body)
	}
}

// The event stream is a read route: the read group may follow it,
// others may not.
func TestAccessEvents(t *testing.T) {
	dir, exe := nobodyDir(t)
	path := filepath.Join(dir, "api.sock")
	serveAccess(t, path, 0o666, -1, Access{Groups: []int{4242}})
	if got := runAs(t, exe, path, 65534, []uint32{4242}, "events"); !slices.Equal(got, []string{"ok"}) {
		t.Errorf("read group: %q, want ok", got)
	}
	if got := runAs(t, exe, path, 65534, nil, "events"); len(got) != 1 || !strings.HasPrefix(got[0], "403") {
		t.Errorf("no group: %q, want 403", got)
	}
}
