package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockd/sockd/internal/testutil"
)

func demoUnits(port int) map[string]string {
	return map[string]string{
		"demo.socket": fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\n", port),
		"demo.service": "[Service]\nType=notify\nExecStart=sockd-demo\n" +
			"Environment=DEMO_MESSAGE=hi\n",
	}
}

// pidOf parses the demo's "… (pid N)" answer.
func pidOf(t *testing.T, body string) int {
	t.Helper()
	i := strings.LastIndex(body, "(pid ")
	if i < 0 {
		t.Fatalf("no pid in %q", body)
	}
	pid, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(body[i+5:]), ")"))
	if err != nil {
		t.Fatalf("pid in %q: %v", body, err)
	}
	return pid
}

// A unit's child does not exist before the first connection; the first
// request gets its answer from a child that took its socket through
// go-systemd's activation package (which checks LISTEN_PID).
func TestLazyStartGoSystemd(t *testing.T) {
	port := freePort(t)
	s := startSockd(t, writeUnits(t, demoUnits(port)))

	st := s.status("demo")
	if st.Service.State != "inactive" || len(st.Service.Pids) != 0 {
		t.Fatalf("before any connection: state %q pids %v, want inactive and none", st.Service.State, st.Service.Pids)
	}
	if len(st.Sockets) != 1 || st.Sockets[0].Listen != fmt.Sprintf("127.0.0.1:%d", port) {
		t.Fatalf("sockets = %+v", st.Sockets)
	}
	body := get(t, client("tcp", fmt.Sprintf("127.0.0.1:%d", port)))
	if !strings.HasPrefix(body, "hi (pid ") {
		t.Fatalf("answer %q", body)
	}
	pid := pidOf(t, body)
	st = s.status("demo.service")
	if st.Service.State != "active" || len(st.Service.Pids) != 1 || st.Service.Pids[0] != pid {
		t.Fatalf("after the request: state %q pids %v, want active [%d]", st.Service.State, st.Service.Pids, pid)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("sockd exit: %v", err)
	}
	if pidAlive(pid) {
		t.Fatalf("child %d survived sockd's SIGTERM", pid)
	}
}

// Gunicorn (Debian's python3-gunicorn) run with no --bind takes the
// socket through LISTEN_FDS/LISTEN_PID and answers.
func TestGunicorn(t *testing.T) {
	port := freePort(t)
	app := testutil.ShortDir(t)
	os.WriteFile(filepath.Join(app, "app.py"), []byte(`import os
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("gunicorn worker %d\n" % os.getpid()).encode()]
`), 0o644)
	s := startSockd(t, writeUnits(t, map[string]string{
		"web.socket": fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\n", port),
		"web.service": "[Service]\nType=notify\nWorkingDirectory=" + app +
			"\nExecStart=/usr/bin/python3 -m gunicorn --workers 2 app:app\n",
	}))
	body := get(t, client("tcp", fmt.Sprintf("127.0.0.1:%d", port)))
	if !strings.HasPrefix(body, "gunicorn worker ") {
		t.Fatalf("answer %q", body)
	}
	st := s.status("web")
	if st.Service.State != "active" || len(st.Service.Pids) != 1 {
		t.Fatalf("status %+v", st.Service)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("sockd exit: %v", err)
	}
	if pidAlive(st.Service.Pids[0]) {
		t.Fatalf("gunicorn master %d survived", st.Service.Pids[0])
	}
}

// 50 connections opened at once against a cold unit get 50 answers.
func TestColdBurst(t *testing.T) {
	port := freePort(t)
	s := startSockd(t, writeUnits(t, demoUnits(port)))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	pids := make(chan int, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client("tcp", addr).Get("http://sockd.test/")
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			var b strings.Builder
			buf := make([]byte, 256)
			for {
				k, err := resp.Body.Read(buf)
				b.Write(buf[:k])
				if err != nil {
					break
				}
			}
			if resp.StatusCode != 200 {
				errs <- fmt.Errorf("status %s", resp.Status)
				return
			}
			pids <- pidOf(t, b.String())
		}()
	}
	wg.Wait()
	close(errs)
	close(pids)
	for err := range errs {
		t.Errorf("request: %v", err)
	}
	seen := map[int]bool{}
	count := 0
	for p := range pids {
		seen[p] = true
		count++
	}
	if count != n || len(seen) != 1 {
		t.Fatalf("%d answers from pids %v, want %d from one child", count, seen, n)
	}
	_ = s
}

// A unit with a TCP and a Unix socket hands both, named, in declaration
// order, with LISTEN_PID equal to the child's own pid.
func TestTwoSocketsNamedInOrder(t *testing.T) {
	port := freePort(t)
	dir := testutil.ShortDir(t)
	sock := filepath.Join(dir, "app.sock")
	s := startSockd(t, writeUnits(t, map[string]string{
		"two.socket": fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\nListenStream=%s\n", port, sock),
		"two.service": "[Service]\nType=notify\nExecStart=" + bin.self +
			"\nEnvironment=SOCKD_TEST_CHILD=fds GORACE=atexit_sleep_ms=0\n",
		"extra.socket": "[Socket]\nService=two.service\nFileDescriptorName=admin\nListenStream=" + filepath.Join(dir, "admin.sock") + "\n",
	}))
	var rep fdReport
	if err := json.Unmarshal([]byte(get(t, client("unix", sock))), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.ListenPID != strconv.Itoa(rep.Pid) {
		t.Errorf("LISTEN_PID=%q in child %d", rep.ListenPID, rep.Pid)
	}
	wantNames := []string{"admin", "two.socket", "two.socket"}
	if strings.Join(rep.Names, ",") != strings.Join(wantNames, ",") {
		t.Errorf("names %v, want %v (sockets sorted by unit name: extra.socket first)", rep.Names, wantNames)
	}
	wantAddrs := []string{filepath.Join(dir, "admin.sock"), fmt.Sprintf("127.0.0.1:%d", port), sock}
	if strings.Join(rep.Addrs, ",") != strings.Join(wantAddrs, ",") {
		t.Errorf("fds %v, want %v", rep.Addrs, wantAddrs)
	}
	// The same child answers on the TCP socket.
	var rep2 fdReport
	json.Unmarshal([]byte(get(t, client("tcp", fmt.Sprintf("127.0.0.1:%d", port)))), &rep2)
	if rep2.Pid != rep.Pid {
		t.Errorf("TCP answered by %d, Unix by %d", rep2.Pid, rep.Pid)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{sock, filepath.Join(dir, "admin.sock")} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("socket file %s left after sockd exit (%v)", p, err)
		}
	}
}

// sockctl stop stops the child but keeps the socket: the next request
// starts a new child. After SIGTERM no child and no socket file is left.
func TestStopThenRequestAndShutdown(t *testing.T) {
	dir := testutil.ShortDir(t)
	sock := filepath.Join(dir, "demo.sock")
	s := startSockd(t, writeUnits(t, map[string]string{
		"demo.socket":  "[Socket]\nListenStream=" + sock + "\nSocketMode=0660\n",
		"demo.service": "[Service]\nType=notify\nExecStart=sockd-demo\n",
	}))
	c := client("unix", sock)
	first := pidOf(t, get(t, c))
	if out, errs, code := s.ctl("stop", "demo"); code != 0 {
		t.Fatalf("sockctl stop: %d %s %s", code, out, errs)
	}
	if pidAlive(first) {
		t.Fatalf("pid %d alive after sockctl stop returned", first)
	}
	st := s.status("demo")
	if st.Service.State != "inactive" || len(st.Service.Pids) != 0 {
		t.Fatalf("after stop: %+v", st.Service)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket file after stop: %v %v", fi, err)
	}
	second := pidOf(t, get(t, c))
	if second == first {
		t.Fatalf("same pid %d answered after stop", second)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("sockd exit status: %v", err)
	}
	if pidAlive(second) {
		t.Fatalf("child %d left after sockd exit", second)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket file left: %v", err)
	}
}

// A unit file with an error is reported with file, line and option, and
// the other units serve as before.
func TestBrokenUnitDoesNotStopOthers(t *testing.T) {
	port := freePort(t)
	files := demoUnits(port)
	files["bad.socket"] = "[Socket]\nListenStream=127.0.0.1:1\nListenStrem=127.0.0.1:2\n"
	files["bad.service"] = "[Service]\nExecStart=/bin/true\n"
	dir := writeUnits(t, files)
	s := startSockd(t, dir)
	l := s.waitLog(5*time.Second, func(l map[string]any) bool { return l["option"] == "ListenStrem" })
	if l["file"] != filepath.Join(dir, "bad.socket") || l["line"] != float64(3) {
		t.Fatalf("diagnostic %v, want file %s line 3", l, filepath.Join(dir, "bad.socket"))
	}
	if !strings.HasPrefix(get(t, client("tcp", fmt.Sprintf("127.0.0.1:%d", port))), "hi (pid ") {
		t.Fatal("demo does not answer")
	}
	if _, _, code := s.ctl("status", "bad"); code != 1 {
		t.Fatalf("sockctl status bad: exit %d, want 1 (not loaded)", code)
	}
	// Nothing listens on the broken unit's first address either.
	if c, err := net.Dial("tcp", "127.0.0.1:1"); err == nil {
		c.Close()
		t.Fatal("broken unit's socket is open")
	}
}

// sockd watches its unit directory: a unit written while it runs serves
// once the directory is quiet; a broken edit of a serving unit is
// reported and the unit keeps serving.
func TestLiveReload(t *testing.T) {
	port := freePort(t)
	dir := writeUnits(t, map[string]string{})
	s := startSockd(t, dir)
	files := demoUnits(port)
	for _, name := range []string{"demo.socket", "demo.service"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(files[name]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.waitLog(10*time.Second, func(l map[string]any) bool {
		added, _ := l["added"].([]any)
		return l["message"] == "reloaded" && len(added) == 1 && added[0] == "demo.service"
	})
	c := client("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	pid := pidOf(t, get(t, c))
	os.WriteFile(filepath.Join(dir, "demo.service"), []byte(files["demo.service"]+"Restrat=always\n"), 0o644)
	s.waitLog(10*time.Second, func(l map[string]any) bool { return l["option"] == "Restrat" })
	if got := pidOf(t, get(t, c)); got != pid {
		t.Fatalf("answer from %d after a broken edit, want %d still serving", got, pid)
	}
}
