package integration

// Debian's own daemons on the unit files Debian ships: nginx (Type=forking
// with PIDFile=, no socket) and uuidd (socket-activated on a Unix socket,
// User=). testdata/debian12-nginx and testdata/debian12-uuidd hold the
// packaged files, verbatim below a header; drop-ins change addresses and
// nothing else. Each daemon is started (nginx at once, uuidd by its first
// connection), served, restarted with `sockctl restart --wait`, stopped,
// and started again, every step within a bound, and no process or file
// outlives the test. .ci/deps installs the packages.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/testutil"
)

// nginxPIDFile is the shipped nginx.service's PIDFile=, which its
// ExecStop= names too; the test's configuration writes it there.
const nginxPIDFile = "/run/nginx.pid"

// TestNginx runs nginx on Debian's nginx.service: Type=forking, the main
// process from PIDFile=, ExecStartPre= (nginx -t), ExecReload= (nginx -s
// reload), ExecStop= (start-stop-daemon), KillMode=mixed.
//
// nginx reads the configuration compiled into it (/etc/nginx/nginx.conf,
// port 80), and the shipped unit has no Environment= or
// EnvironmentFile= a drop-in could point elsewhere: so the drop-in repeats
// the three shipped lines that run nginx with `-c` and the test's
// configuration added, which sets the address. PIDFile= and ExecStop= stay
// as shipped, so the configuration keeps pid /run/nginx.pid: the test
// fails at once if a running nginx outside it holds that file.
func TestNginx(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the shipped unit writes /run/nginx.pid")
	}
	if pid, err := readPIDFile(nginxPIDFile); err == nil {
		if p, ok := readProc(pid); ok && p.comm == "nginx" {
			t.Fatalf("%s names pid %d, an nginx: one outside this test uses the shipped unit's PID file; stop it", nginxPIDFile, pid)
		}
	}
	dir := testutil.ShortDir(t)
	port := freePort(t)
	conf := filepath.Join(dir, "nginx.conf")
	writeConf := func(gen int) {
		t.Helper()
		if err := os.WriteFile(conf, []byte(nginxConf(dir, port, gen)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConf(1)
	files := debianUnits(t, "debian12-nginx", "nginx.service")
	files["nginx.service.d/address.conf"] = fmt.Sprintf(`# TestNginx: the shipped lines that run nginx, with -c and the test's
# configuration (its address, its files) added; nothing else changes.
[Service]
ExecStartPre=
ExecStartPre=/usr/sbin/nginx -t -q -g 'daemon on; master_process on;' -c %[1]s
ExecStart=
ExecStart=/usr/sbin/nginx -g 'daemon on; master_process on;' -c %[1]s
ExecReload=
ExecReload=/usr/sbin/nginx -g 'daemon on; master_process on;' -s reload -c %[1]s
`, conf)
	units := writeUnits(t, files)
	verifyUnits(t, units)

	// Every nginx pid the test sees. If one outlives the test, it has
	// failed already; the process is killed, and the PID file removed.
	var seen []int
	t.Cleanup(func() {
		for _, pid := range seen {
			if p, ok := readProc(pid); ok && p.comm == "nginx" {
				t.Errorf("nginx pid %d outlived the test", pid)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if pid, err := readPIDFile(nginxPIDFile); err == nil {
			for _, p := range seen {
				if p == pid {
					t.Errorf("%s outlived the test", nginxPIDFile)
					os.Remove(nginxPIDFile)
				}
			}
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c := client("tcp", addr)
	var sd *sockd

	// serving checks that nginx answers from a worker of the master that
	// the PID file names and status shows as the main process, and returns
	// the master's and the worker's pids.
	serving := func(gen int) (master, worker int) {
		t.Helper()
		master, err := readPIDFile(nginxPIDFile)
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, master)
		st := sd.status("nginx").Service
		if st.State != api.StateActive || st.MainPID != master || len(st.Pids) != 1 || st.Pids[0] != master {
			t.Fatalf("status: %s, main pid %d, pids %v; %s says %d", st.State, st.MainPID, st.Pids, nginxPIDFile, master)
		}
		body := get(t, c)
		want := fmt.Sprintf("nginx generation %d, worker pid ", gen)
		if !strings.HasPrefix(body, want) {
			t.Fatalf("GET: %q, want %q…", body, want)
		}
		if worker, err = strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(body, want))); err != nil {
			t.Fatalf("GET: %q: no worker pid", body)
		}
		seen = append(seen, worker)
		if p, ok := readProc(worker); !ok || p.ppid != master || p.comm != "nginx" {
			t.Fatalf("worker %d: %+v (found: %v), want an nginx child of master %d", worker, p, ok, master)
		}
		return master, worker
	}
	gone := func(what string, pids ...int) {
		t.Helper()
		for _, pid := range pids {
			if p, ok := readProc(pid); ok && p.comm == "nginx" {
				t.Fatalf("%s: nginx pid %d is still there (state %c)", what, pid, p.state)
			}
		}
	}
	active := func() {
		t.Helper()
		pollUntil(t, 15*time.Second, "nginx active", func() bool {
			return sd.status("nginx").Service.State == api.StateActive
		})
	}

	// nginx has no socket: sockd starts it at once.
	timed(t, "sockd start, nginx active", 30*time.Second, func() {
		sd = startSockd(t, units)
		active()
	})
	var master, worker int
	timed(t, "serve", 10*time.Second, func() { master, worker = serving(1) })

	// reload-app runs ExecReload=: nginx -s reload sends SIGHUP to the
	// master the PID file names, which starts new workers on the new
	// configuration and lets the old ones finish.
	writeConf(2)
	timed(t, "reload-app", 15*time.Second, func() {
		if out, errs, code := sd.ctl("reload-app", "nginx"); code != 0 {
			t.Fatalf("reload-app: exit %d\n%s%s", code, out, errs)
		}
		pollUntil(t, 10*time.Second, "nginx serves the new configuration", func() bool {
			return strings.HasPrefix(get(t, c), "nginx generation 2,")
		})
		pollUntil(t, 10*time.Second, "the old worker exits", func() bool {
			p, ok := readProc(worker)
			return !ok || p.comm != "nginx"
		})
	})
	if m, _ := serving(2); m != master {
		t.Fatalf("reload-app replaced the master: %d, then %d", master, m)
	}

	// A forking daemon binds its own ports: restart stops, then starts.
	var progress string
	timed(t, "restart --wait", 30*time.Second, func() {
		out, errs, code := sd.ctl("restart", "nginx", "--wait")
		if code != 0 {
			t.Fatalf("restart --wait: exit %d\n%s%s", code, out, errs)
		}
		progress = out + errs
	})
	stopped := strings.Index(progress, fmt.Sprintf("pid %d stopped", master))
	spawned := strings.Index(progress, "spawned pid")
	if !strings.Contains(progress, "Type=forking: stop, then start") || stopped < 0 || spawned < stopped {
		t.Fatalf("restart --wait: want the note, the old master %d stopped, then a spawn:\n%s", master, progress)
	}
	gone("after restart", seen...)
	old := master
	if master, _ = serving(2); master == old {
		t.Fatalf("restart kept master %d", master)
	}

	timed(t, "stop", 20*time.Second, func() {
		if out, errs, code := sd.ctl("stop", "nginx"); code != 0 {
			t.Fatalf("stop: exit %d\n%s%s", code, out, errs)
		}
	})
	// The shipped ExecStop= is start-stop-daemon --retry QUIT/5, which
	// polls until nginx is gone: the stop is answered once it has ended,
	// as in systemd, so nothing of the unit is left.
	gone("after stop", seen...)
	noProcessLeft(t, sd, "")
	if st := sd.status("nginx").Service; st.State != api.StateInactive || st.MainPID != 0 || len(st.Pids) != 0 {
		t.Fatalf("after stop: %s, main pid %d, pids %v", st.State, st.MainPID, st.Pids)
	}
	if _, err := os.Lstat(nginxPIDFile); err == nil {
		t.Fatalf("after stop: %s is still there", nginxPIDFile)
	}
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Fatalf("after stop: %s still accepts", addr)
	}

	timed(t, "start again", 20*time.Second, func() {
		if out, errs, code := sd.ctl("start", "nginx"); code != 0 {
			t.Fatalf("start: exit %d\n%s%s", code, out, errs)
		}
		active()
	})
	old = master
	if master, _ = serving(2); master == old {
		t.Fatalf("start again: master %d again", master)
	}

	timed(t, "sockd shutdown", 30*time.Second, func() {
		if err := sd.stop(); err != nil {
			t.Fatalf("sockd exit: %v", err)
		}
	})
	gone("after sockd's shutdown", seen...)
	if _, err := os.Lstat(nginxPIDFile); err == nil {
		t.Fatalf("after sockd's shutdown: %s is still there", nginxPIDFile)
	}
}

// nginxConf is TestNginx's configuration: its address, and every file
// nginx writes in dir but the PID file, which stays where the shipped
// unit's PIDFile= and ExecStop= look for it. The answer names gen, so a
// reload shows, and the worker's pid.
func nginxConf(dir string, port, gen int) string {
	return fmt.Sprintf(`pid %[1]s;
error_log %[2]s/error.log;
events {
	worker_connections 64;
}
http {
	access_log %[2]s/access.log;
	client_body_temp_path %[2]s/body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	server {
		listen 127.0.0.1:%[3]d;
		location / {
			return 200 "nginx generation %[4]d, worker pid $pid\n";
		}
	}
}
`, nginxPIDFile, dir, port, gen)
}

// TestUuidd runs uuidd on Debian's uuidd.socket and uuidd.service: a
// socket-activated service on a Unix socket, as User=uuidd, with
// sandboxing options sockd warns about and ignores.
//
// The shipped address is /run/uuidd/request, which libuuid (uuidgen -t)
// dials and, when nothing answers, silently generates the UUID itself: a
// uuidgen that succeeds proves nothing, and a uuidd.socket that systemd
// holds on the machine would take the path. So a drop-in moves the socket
// to the test's directory, and the test talks uuidd's protocol (util-linux
// misc-utils/uuidd.c) itself, which tells the serving daemon's pid, and
// runs uuidd's own client (uuidd -s PATH -t), which fails when no daemon
// answers.
func TestUuidd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the shipped unit runs uuidd as User=uuidd")
	}
	usr, err := user.Lookup("uuidd")
	if err != nil {
		t.Fatalf("user uuidd (uuid-runtime makes it; make deps installs the package): %v", err)
	}
	dir := testutil.ShortDir(t)
	sock := filepath.Join(dir, "request")
	files := debianUnits(t, "debian12-uuidd", "uuidd.socket", "uuidd.service")
	files["uuidd.socket.d/address.conf"] = "# TestUuidd: the test's address instead of /run/uuidd/request.\n" +
		"[Socket]\nListenStream=\nListenStream=" + sock + "\n"
	units := writeUnits(t, files)
	verifyUnits(t, units)

	// uuidd keeps its clock in /var/lib/libuuid/clock.txt (uuid-runtime
	// makes the directory); a clock the test made goes with it.
	const clock = "/var/lib/libuuid/clock.txt"
	if _, err := os.Lstat(clock); os.IsNotExist(err) {
		t.Cleanup(func() { os.Remove(clock) })
	}
	var seen []int
	t.Cleanup(func() {
		for _, pid := range seen {
			if p, ok := readProc(pid); ok && p.comm == "uuidd" {
				t.Errorf("uuidd pid %d outlived the test", pid)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	// served checks that uuidd answers on the socket as User=uuidd from
	// the process status shows, and returns its pid.
	served := func(sd *sockd) int {
		t.Helper()
		pid, err := uuiddPID(sock)
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, pid)
		st := sd.status("uuidd").Service
		if st.State != api.StateActive || st.MainPID != pid || len(st.Pids) != 1 || st.Pids[0] != pid {
			t.Fatalf("status: %s, main pid %d, pids %v; uuidd says pid %d", st.State, st.MainPID, st.Pids, pid)
		}
		if p, ok := readProc(pid); !ok || p.comm != "uuidd" || strconv.Itoa(p.uid) != usr.Uid {
			t.Fatalf("pid %d: %+v (found: %v), want uuidd as uid %s", pid, p, ok, usr.Uid)
		}
		uu, err := uuiddCall(sock, uuiddOpTimeUUID)
		if err != nil {
			t.Fatal(err)
		}
		if len(uu) != 16 || uu[6]>>4 != 1 {
			t.Fatalf("time UUID: %x, want 16 bytes of version 1", uu)
		}
		out, err := exec.Command("/usr/sbin/uuidd", "-s", sock, "-t").CombinedOutput()
		if err != nil || !regexp.MustCompile(`(?m)^[0-9a-f]{8}-[0-9a-f]{4}-1[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$`).Match(out) {
			t.Fatalf("uuidd -s %s -t: %v: %q", sock, err, out)
		}
		if again, err := uuiddPID(sock); err != nil || again != pid {
			t.Fatalf("uuidd pid %d, then %d (%v)", pid, again, err)
		}
		uuiddSandboxed(t, pid)
		return pid
	}
	gone := func(what string, pids ...int) {
		t.Helper()
		for _, pid := range pids {
			if p, ok := readProc(pid); ok && p.comm == "uuidd" {
				t.Fatalf("%s: uuidd pid %d is still there (state %c)", what, pid, p.state)
			}
		}
	}
	listening := func(sd *sockd, what string) {
		t.Helper()
		st := sd.status("uuidd").Service
		if st.State != api.StateInactive || st.SubState != "listening" || len(st.Pids) != 0 {
			t.Fatalf("%s: %s (%s), pids %v; want inactive (listening)", what, st.State, st.SubState, st.Pids)
		}
		if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != os.ModeSocket {
			t.Fatalf("%s: %s: %v %v, want a socket", what, sock, fi, err)
		}
	}

	var sd *sockd
	timed(t, "sockd start", 20*time.Second, func() { sd = startSockd(t, units) })
	listening(sd, "before the first connection")
	noProcessLeft(t, sd, "")
	var pid int
	timed(t, "first connection, serve", 15*time.Second, func() { pid = served(sd) })

	// uuidd is Type=simple: the restart overlaps, on the same socket.
	timed(t, "restart --wait", 20*time.Second, func() {
		out, errs, code := sd.ctl("restart", "uuidd", "--wait")
		if code != 0 || strings.Contains(out+errs, "stop, then start") {
			t.Fatalf("restart --wait: exit %d\n%s%s", code, out, errs)
		}
	})
	gone("after restart", pid)
	old := pid
	if pid = served(sd); pid == old {
		t.Fatalf("restart kept pid %d", pid)
	}

	timed(t, "stop", 15*time.Second, func() {
		if out, errs, code := sd.ctl("stop", "uuidd"); code != 0 {
			t.Fatalf("stop: exit %d\n%s%s", code, out, errs)
		}
	})
	gone("after stop", seen...)
	listening(sd, "after stop")
	noProcessLeft(t, sd, "")

	old = pid
	timed(t, "next connection starts it again, serve", 15*time.Second, func() { pid = served(sd) })
	if pid == old {
		t.Fatalf("start again: pid %d again", pid)
	}

	timed(t, "sockd shutdown", 20*time.Second, func() {
		if err := sd.stop(); err != nil {
			t.Fatalf("sockd exit: %v", err)
		}
	})
	gone("after sockd's shutdown", seen...)
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatalf("after sockd's shutdown: %s: %v, want it removed", sock, err)
	}
}

// uuidd's requests (util-linux libuuid/src/uuidd.h).
const (
	uuiddOpGetPID   = 0
	uuiddOpTimeUUID = 2
)

// uuiddCall sends one request in uuidd's protocol: the op byte; the answer
// is a length (a native-endian int32) and as many bytes.
func uuiddCall(path string, op byte) ([]byte, error) {
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("uuidd op %d: %w", op, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte{op}); err != nil {
		return nil, fmt.Errorf("uuidd op %d: %w", op, err)
	}
	var n int32
	if err := binary.Read(conn, binary.NativeEndian, &n); err != nil {
		return nil, fmt.Errorf("uuidd op %d: answer length: %w", op, err)
	}
	if n < 0 || n > 4096 {
		return nil, fmt.Errorf("uuidd op %d: answer length %d", op, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(conn, b); err != nil {
		return nil, fmt.Errorf("uuidd op %d: answer: %w", op, err)
	}
	return b, nil
}

// uuiddPID asks the uuidd serving path for its pid.
func uuiddPID(path string) (int, error) {
	b, err := uuiddCall(path, uuiddOpGetPID)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(string(bytes.TrimRight(b, "\x00")))
	if err != nil {
		return 0, fmt.Errorf("uuidd pid: %q", b)
	}
	return pid, nil
}

// debianUnits reads the copies of Debian's unit files in testdata/dir.
// Where the installed package's file differs (a newer package), it says
// so; the copy is what is tested.
func debianUnits(t *testing.T, dir string, names ...string) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join("testdata", dir, name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = string(b)
		installed, err := os.ReadFile(filepath.Join("/lib/systemd/system", name))
		if err == nil && !bytes.HasSuffix(b, installed) {
			t.Logf("the installed /lib/systemd/system/%s differs from testdata/%s/%s: the copy is tested", name, dir, name)
		}
	}
	return files
}

// verifyUnits runs sockd verify on dir: warnings are fine, errors fail.
func verifyUnits(t *testing.T, dir string) {
	t.Helper()
	out, err := exec.Command(bin.sockd, "verify", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("sockd verify: %v\n%s", err, out)
	}
}

// timed runs step, and fails the test if it took longer than limit.
func timed(t *testing.T, what string, limit time.Duration, step func()) {
	t.Helper()
	start := time.Now()
	step()
	d := time.Since(start)
	if d > limit {
		t.Fatalf("%s took %v, more than %v", what, d.Round(time.Millisecond), limit)
	}
	t.Logf("%s: %v", what, d.Round(time.Millisecond))
}

// pollUntil checks cond every 20 ms until it holds, and fails the test
// after timeout.
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procInfo is what /proc/PID/stat and /proc/PID/status tell of a process.
type procInfo struct {
	pid, ppid, uid, gid int
	comm                string
	state               byte // 'S', 'R', 'Z' (a zombie)…
}

// commOf returns pid's comm, "" once it is gone.
func commOf(pid int) string {
	p, _ := readProc(pid)
	return p.comm
}

// readProc reads pid's procInfo; ok is false once the process is reaped.
func readProc(pid int) (p procInfo, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return p, false
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open || len(s) < end+4 {
		return p, false
	}
	p.pid, p.comm, p.state = pid, s[open+1:end], s[end+2]
	if f := strings.Fields(s[end+2:]); len(f) > 1 {
		p.ppid, _ = strconv.Atoi(f[1])
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return p, false
	}
	for _, line := range strings.Split(string(st), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 1 && f[0] == "Uid:":
			p.uid, _ = strconv.Atoi(f[1])
		case len(f) > 1 && f[0] == "Gid:":
			p.gid, _ = strconv.Atoi(f[1])
		}
	}
	return p, true
}

// childrenOf lists pid's children, from every thread's
// /proc/PID/task/TID/children.
func childrenOf(pid int) []procInfo {
	var kids []procInfo
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, w := range strings.Fields(string(b)) {
			if k, err := strconv.Atoi(w); err == nil {
				if p, ok := readProc(k); ok {
					kids = append(kids, p)
				}
			}
		}
	}
	return kids
}

// noProcessLeft fails the test if sockd has a child process, a zombie
// included: once a unit has stopped, sockd runs nothing of it and has
// reaped everything. A child named lingering (a comm, "" for none) is a
// known sockd bug: it is logged, and waited for until sockd has reaped
// it, at most 10 s.
func noProcessLeft(t *testing.T, sd *sockd, lingering string) {
	t.Helper()
	holders := map[int]bool{}
	for _, h := range holdersIn(t, sd.runDirOf()) {
		holders[h] = true // sockd's fd holder is its child by design
	}
	for _, p := range childrenOf(sd.cmd.Process.Pid) {
		if holders[p.pid] {
			continue
		}
		if lingering == "" || p.comm != lingering {
			t.Fatalf("sockd still has a child: pid %d %q, state %c", p.pid, p.comm, p.state)
		}
		t.Logf("sockd bug: ExecStop= %q (pid %d, state %c) not reaped yet when the stop was answered", p.comm, p.pid, p.state)
		pollUntil(t, 10*time.Second, fmt.Sprintf("%s (pid %d) exits", p.comm, p.pid), func() bool {
			q, ok := readProc(p.pid)
			return !ok || q.ppid != sd.cmd.Process.Pid
		})
	}
}

// readPIDFile reads the pid in a PID file.
func readPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a pid", path, b)
	}
	return pid, nil
}

// uuiddSandboxed checks that uuidd runs in the sandbox its unit asks
// for: its own user namespace (PrivateUsers=: root and uuidd mapped
// only), "/" read-only but /var/lib/libuuid (ProtectSystem=strict,
// ReadWritePaths=), /home covered (ProtectHome=), a seccomp filter
// (MemoryDenyWriteExecute=) with no_new_privs (it is not root), and no
// CAP_MKNOD or CAP_SYS_MODULE in its bounding set (PrivateDevices=,
// ProtectKernelModules=).
func uuiddSandboxed(t *testing.T, pid int) {
	t.Helper()
	read := func(name string) string {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if lines := strings.Split(strings.TrimSpace(read("uid_map")), "\n"); len(lines) != 2 {
		t.Errorf("uuidd's uid_map %q: want root and uuidd mapped only", lines)
	}
	status := read("status")
	for _, want := range []string{"NoNewPrivs:\t1", "Seccomp:\t2"} {
		if !strings.Contains(status, want+"\n") {
			t.Errorf("uuidd's status lacks %q", want)
		}
	}
	var bnd uint64
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:\t"); ok {
			bnd, _ = strconv.ParseUint(v, 16, 64)
		}
	}
	if bnd&(1<<27|1<<16) != 0 {
		t.Errorf("uuidd's bounding set %#x holds CAP_MKNOD or CAP_SYS_MODULE", bnd)
	}
	mounts := map[string]string{} // mount point: its options (the last mount wins)
	for _, line := range strings.Split(read("mountinfo"), "\n") {
		if f := strings.Fields(line); len(f) > 5 {
			mounts[f[4]] = f[5]
		}
	}
	for point, want := range map[string]string{"/": "ro", "/var/lib/libuuid": "rw", "/home": "ro", "/usr": "ro"} {
		if _, err := os.Stat(point); err != nil {
			continue // ProtectHome= skips a missing /home
		}
		opts, ok := mounts[point]
		if point == "/usr" && !ok {
			opts, ok = mounts["/"] // /usr on the root file system
		}
		if !ok || strings.Split(opts, ",")[0] != want {
			t.Errorf("uuidd's %s: mounted %v with %q, want %s", point, ok, opts, want)
		}
	}
}
