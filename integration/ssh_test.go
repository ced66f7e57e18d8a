package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockd/sockd/api"
)

// The ssh tests run sshd on Debian's own unit files (testdata/debian12-ssh
// as bookworm ships them, testdata/debian11-ssh as Debian shipped them
// before), unchanged: drop-ins written by the test move the socket to a
// loopback port and point sshd at the test's host key, authorized key,
// config and log. A real ssh client logs in as root with a key.

const sshdPath = "/usr/sbin/sshd"

// runSSHD is the directory Debian's units name in RuntimeDirectory=sshd,
// which sockd makes and removes; sshd refuses to run without it.
const runSSHD = "/run/sshd"

// sshFixture is one test's sshd: its files, its address and the client key.
type sshFixture struct {
	t    *testing.T
	port int
	addr string
	// dir (a t.TempDir()) holds the keys, sshd_config, the environment
	// file that gives sshd its options, and sshd's log.
	dir, key, config, envFile, log string
	// runDirExisted says /run/sshd was there before the test (a system
	// sshd's), so its absence cannot be checked.
	runDirExisted bool
}

// newSSHFixture makes the keys and the sshd config of one test.
func newSSHFixture(t *testing.T) *sshFixture {
	t.Helper()
	for _, tool := range []string{sshdPath, "ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%v: make deps installs openssh-server and openssh-client", err)
		}
	}
	existed := lockRunSSHD(t) // first: it may wait for another test
	f := &sshFixture{t: t, dir: t.TempDir(), port: freePort(t), runDirExisted: existed}
	f.addr = fmt.Sprintf("127.0.0.1:%d", f.port)
	f.key = filepath.Join(f.dir, "client_key")
	f.config = filepath.Join(f.dir, "sshd_config")
	f.envFile = filepath.Join(f.dir, "default-ssh")
	f.log = filepath.Join(f.dir, "sshd.log")
	hostKey := filepath.Join(f.dir, "ssh_host_ed25519_key")
	for _, k := range []string{hostKey, f.key} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sockd-test", "-f", k).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("ssh-keygen %s: %v: %s", k, err, out)
		}
	}

	// sshd's StrictModes (on by default) refuses an authorized keys file
	// below a directory that others may write to, and t.TempDir() is
	// below /tmp (1777): the file gets a directory of its own in /run.
	akDir, err := os.MkdirTemp("/run", "sockd-it-ssh-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(akDir) })
	if err := os.Chmod(akDir, 0o700); err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(f.key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	authorized := filepath.Join(akDir, "authorized_keys")
	if err := os.WriteFile(authorized, pub, 0o600); err != nil {
		t.Fatal(err)
	}

	config := fmt.Sprintf(`# sshd_config of one sockd integration test (integration/ssh_test.go).
# sshd takes its socket from sockd; should it ever bind one itself, this
# address, sockd's, fails instead of sshd taking port 22.
ListenAddress %s
HostKey %s
AuthorizedKeysFile %s
# PermitRootLogin is left at its default, prohibit-password: a key logs in.
# Not /run/sshd.pid, which a system sshd may own.
PidFile none
# As Debian's /etc/ssh/sshd_config.
UsePAM yes
LogLevel VERBOSE
`, f.addr, hostKey, authorized)
	if err := os.WriteFile(f.config, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	// Debian's units read SSHD_OPTS from /etc/default/ssh; an
	// EnvironmentFile= read later wins, so the drop-ins add this one.
	env := fmt.Sprintf("# sockd integration test: sshd's options.\nSSHD_OPTS=\"-f %s -E %s\"\n", f.config, f.log)
	if err := os.WriteFile(f.envFile, []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(f.log)
			t.Logf("sshd log (%s):\n%s", f.log, b)
		}
	})
	return f
}

// lockRunSSHD makes the tests that use /run/sshd take turns, in this
// process and in any other go test run on the machine (make test in the
// background): it holds an exclusive flock on the sshd binary, which
// leaves no lock file behind, until the test ends. It reports whether
// /run/sshd was there already (a system sshd's); if so, it is made again
// when the test ends, should sockd have removed it.
func lockRunSSHD(t *testing.T) (existed bool) {
	t.Helper()
	f, err := os.Open(sshdPath)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			t.Fatalf("flock %s (another test using %s): %v", sshdPath, runSSHD, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	fi, err := os.Lstat(runSSHD)
	existed = err == nil
	t.Cleanup(func() {
		defer f.Close() // releases the flock
		if _, err := os.Lstat(runSSHD); existed && errors.Is(err, os.ErrNotExist) {
			if err := os.Mkdir(runSSHD, 0o755); err == nil {
				os.Chmod(runSSHD, fi.Mode().Perm())
			}
		}
	})
	return existed
}

// units returns the unit files of testdata/dir, with a drop-in that moves
// ssh.socket to the test's address.
func (f *sshFixture) units(dir string) map[string]string {
	f.t.Helper()
	files := map[string]string{}
	entries, err := os.ReadDir(filepath.Join("testdata", dir))
	if err != nil {
		f.t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("testdata", dir, e.Name()))
		if err != nil {
			f.t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	files["ssh.socket.d/sockd-test.conf"] = "# sockd integration test: a loopback port instead of 22.\n" +
		"[Socket]\nListenStream=\nListenStream=" + f.addr + "\n"
	return files
}

// sshArgs are the client's arguments for command: no ssh_config, no known
// hosts, the test's key only, no prompts.
func (f *sshFixture) sshArgs(command string) []string {
	return []string{"-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes",
		"-o", "ConnectTimeout=20", "-i", f.key, "-p", strconv.Itoa(f.port), "root@127.0.0.1", command}
}

// run runs command as root over ssh, within 30s, and returns its output.
func (f *sshFixture) run(command string) string {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", append([]string{"-n"}, f.sshArgs(command)...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		f.t.Fatalf("ssh %s: %v; stdout %q, stderr %q", command, err, out.String(), errb.String())
	}
	return out.String()
}

// checkRunDir waits up to 5s for /run/sshd to be there (0755, root's) or
// gone.
func (f *sshFixture) checkRunDir(want bool) {
	f.t.Helper()
	if !want && f.runDirExisted {
		return // a system sshd's: cannot tell
	}
	var fi os.FileInfo
	var err error
	ok := eventually(5*time.Second, func() bool {
		fi, err = os.Lstat(runSSHD)
		return (err == nil) == want
	})
	switch {
	case !ok && want:
		f.t.Fatalf("%s: %v; RuntimeDirectory=sshd should have made it", runSSHD, err)
	case !ok:
		f.t.Fatalf("%s still there; RuntimeDirectory=sshd should have removed it", runSSHD)
	case want:
		st := fi.Sys().(*syscall.Stat_t)
		if !fi.IsDir() || fi.Mode().Perm() != 0o755 || st.Uid != 0 || st.Gid != 0 {
			f.t.Fatalf("%s: %v uid %d gid %d, want a directory 0755 of root's", runSSHD, fi.Mode(), st.Uid, st.Gid)
		}
	}
}

// waitLog waits up to 20s for a line of sshd's log that contains s.
func (f *sshFixture) waitLog(s string) {
	f.t.Helper()
	if !eventually(20*time.Second, func() bool {
		b, _ := os.ReadFile(f.log)
		return bytes.Contains(b, []byte(s))
	}) {
		f.t.Fatalf("sshd did not log %q within 20s", s)
	}
}

// sshSession is a login that stays open: the remote shell prints "ready
// PID", then becomes cat, which echoes every line sent until the client's
// stdin closes or the connection ends.
type sshSession struct {
	t      *testing.T
	name   string
	in     io.WriteCloser
	lines  chan string
	pid    int // the remote shell's, now cat's
	done   chan struct{}
	err    error
	stderr bytes.Buffer
}

// hold logs in and leaves the session open; the test's end closes it.
func (f *sshFixture) hold(name string) *sshSession {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	cmd := exec.CommandContext(ctx, "ssh", f.sshArgs("echo ready $$; exec cat")...)
	s := &sshSession{t: f.t, name: name, lines: make(chan string, 64), done: make(chan struct{})}
	cmd.Stderr = &s.stderr
	var err error
	if s.in, err = cmd.StdinPipe(); err != nil {
		f.t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		f.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		f.t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		s.err = cmd.Wait()
		cancel()
		close(s.lines)
		close(s.done)
	}()
	f.t.Cleanup(func() {
		s.in.Close()
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-s.done
		}
	})
	if _, err := fmt.Sscanf(s.readLine(), "ready %d", &s.pid); err != nil {
		f.t.Fatalf("session %s: %v", name, err)
	}
	return s
}

func (s *sshSession) readLine() string {
	s.t.Helper()
	select {
	case line, ok := <-s.lines:
		if !ok {
			<-s.done
			s.t.Fatalf("session %s ended: %v: %s", s.name, s.err, s.stderr.String())
		}
		return line
	case <-time.After(30 * time.Second):
		s.t.Fatalf("session %s: no line within 30s", s.name)
		return ""
	}
}

// echo sends line and wants it back.
func (s *sshSession) echo(line string) {
	s.t.Helper()
	if _, err := io.WriteString(s.in, line+"\n"); err != nil {
		s.t.Fatalf("session %s: %v", s.name, err)
	}
	if got := s.readLine(); got != line {
		s.t.Fatalf("session %s: got %q, want %q", s.name, got, line)
	}
}

// wait waits up to 30s for ssh to exit and returns its error.
func (s *sshSession) wait() error {
	s.t.Helper()
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.t.Fatalf("session %s still open after 30s", s.name)
	}
	return s.err
}

// end closes the session's stdin: cat, the shell and the login end.
func (s *sshSession) end() {
	s.t.Helper()
	s.in.Close()
	if err := s.wait(); err != nil {
		s.t.Fatalf("session %s: %v: %s", s.name, err, s.stderr.String())
	}
	s.gone()
}

// closedByServer wants the session ended by the server, not by the client.
func (s *sshSession) closedByServer() {
	s.t.Helper()
	if err := s.wait(); err == nil {
		s.t.Fatalf("session %s ended cleanly; want the server to close it", s.name)
	}
	s.gone()
}

// gone wants the remote shell (cat) gone within 5s: no process of the
// session outlives it.
func (s *sshSession) gone() {
	s.t.Helper()
	if !eventually(5*time.Second, func() bool { return !pidAlive(s.pid) }) {
		s.t.Fatalf("session %s: its remote process %d outlived it", s.name, s.pid)
	}
}

// eventually polls cond every 20ms for up to timeout.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procCmdline returns pid's command line, NULs as spaces.
func procCmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
}

// Debian 12's ssh.socket (Accept=no) and ssh.service as bookworm ships
// them: one sshd -D takes the listening socket from LISTEN_FDS and says
// READY=1 (Type=notify); KillMode=process leaves the logins' own sshd
// processes alone; RuntimeDirectory=sshd makes /run/sshd; ExecReload=
// sends $MAINPID SIGHUP.
func TestSSHDebian12SocketActivated(t *testing.T) {
	f := newSSHFixture(t)
	files := f.units("debian12-ssh")
	// The shipped ExecStartPre= and ExecReload= run `sshd -t` without
	// $SSHD_OPTS, which would check the machine's /etc/ssh/sshd_config:
	// reset, and given $SSHD_OPTS, otherwise as shipped.
	files["ssh.service.d/sockd-test.conf"] = "# sockd integration test: sshd's options from the test's environment file.\n" +
		"[Service]\nEnvironmentFile=" + f.envFile + "\n" +
		"ExecStartPre=\nExecStartPre=/usr/sbin/sshd -t $SSHD_OPTS\n" +
		"ExecReload=\nExecReload=/usr/sbin/sshd -t $SSHD_OPTS\nExecReload=/bin/kill -HUP $MAINPID\n"
	s := startSockd(t, writeUnits(t, files))

	// Lazy: nothing runs, and /run/sshd is not made, before a client comes.
	st := s.status("ssh")
	if st.Name != "ssh.service" || st.Service.State != "inactive" || len(st.Service.Pids) != 0 ||
		len(st.Sockets) != 1 || st.Sockets[0].Listen != f.addr {
		t.Fatalf("before any connection: %+v", st)
	}
	f.checkRunDir(false)

	// Served: the first connection starts sshd -D on the socket.
	if out := f.run("echo hello"); out != "hello\n" {
		t.Fatalf("ssh echo hello: %q", out)
	}
	st = s.status("ssh")
	first := st.Service.MainPID
	if st.Service.State != "active" || first == 0 || len(st.Service.Pids) != 1 {
		t.Fatalf("after the first login: %+v", st.Service)
	}
	if cl := procCmdline(first); !strings.Contains(cl, "sshd") || !strings.Contains(cl, f.config) {
		t.Fatalf("main pid %d is %q, want sshd -D -f %s", first, cl, f.config)
	}
	f.checkRunDir(true)

	// A login that stays open through the restart and the stop.
	held := f.hold("held")

	// Restarted: a new sshd on the same socket, ready, then the old one
	// drained with SIGTERM to it alone (KillMode=process), as systemd
	// does: the open login keeps its own sshd.
	if out, errs, code := s.ctl("restart", "ssh", "--wait"); code != 0 {
		t.Fatalf("sockctl restart ssh --wait: exit %d: %s%s", code, out, errs)
	}
	st = s.status("ssh")
	second := st.Service.MainPID
	if st.Service.State != "active" || second == 0 || second == first || st.Service.Restarts != 1 {
		t.Fatalf("after the restart: %+v, old main pid %d", st.Service, first)
	}
	if !eventually(5*time.Second, func() bool { return !pidAlive(first) }) {
		t.Fatalf("old sshd %d alive after the restart", first)
	}
	held.echo("across the restart")
	if out := f.run("echo hello"); out != "hello\n" {
		t.Fatalf("after the restart: %q", out)
	}
	f.checkRunDir(true)

	// Stopped: the main sshd gets SIGTERM, the login stays (KillMode=process),
	// /run/sshd goes (RuntimeDirectoryPreserve=no), the socket stays.
	if out, errs, code := s.ctl("stop", "ssh"); code != 0 {
		t.Fatalf("sockctl stop ssh: exit %d: %s%s", code, out, errs)
	}
	st = s.status("ssh")
	if st.Service.State != "inactive" || len(st.Service.Pids) != 0 || len(st.Sockets) != 1 {
		t.Fatalf("after the stop: %+v", st)
	}
	if !eventually(5*time.Second, func() bool { return !pidAlive(second) }) {
		t.Fatalf("sshd %d alive after the stop", second)
	}
	f.checkRunDir(false)
	held.echo("after the stop")
	held.end()

	// Re-triggered: the next connection starts a new sshd.
	if out := f.run("echo hello"); out != "hello\n" {
		t.Fatalf("after the stop: %q", out)
	}
	st = s.status("ssh")
	third := st.Service.MainPID
	if st.Service.State != "active" || third == 0 || third == second {
		t.Fatalf("re-triggered: %+v", st.Service)
	}
	f.checkRunDir(true)

	// Reloaded: ExecReload= checks the config and sends SIGHUP to
	// $MAINPID. sshd then re-executes itself, and bookworm's sshd (9.2p1)
	// no longer finds LISTEN_FDS: it binds ListenAddress itself, which
	// fails (sockd holds it), and exits 255; it does the same under
	// systemd-socket-activate. RestartPreventExitStatus=255 keeps
	// Restart=on-failure from restarting it, and the next connection
	// starts it again. Should sshd keep its socket, the same login works.
	if out, errs, code := s.ctl("reload-app", "ssh"); code != 0 {
		t.Fatalf("sockctl reload-app ssh: exit %d: %s%s", code, out, errs)
	}
	f.waitLog("Received SIGHUP; restarting.")
	if eventually(3*time.Second, func() bool { return !pidAlive(third) }) {
		time.Sleep(time.Second) // RestartSec= is 100ms: a restart would have begun
		st = s.status("ssh")
		if st.Service.State != "failed" || st.Service.Result != "exit-code" || st.Service.LastExit != "exit status 255" ||
			len(st.Service.Pids) != 0 {
			t.Fatalf("sshd %d exited after SIGHUP: %+v; want failed with exit status 255, not restarted", third, st.Service)
		}
	}
	if out := f.run("echo hello"); out != "hello\n" {
		t.Fatalf("after the reload: %q", out)
	}
	st = s.status("ssh")
	if st.Service.State != "active" || st.Service.MainPID == 0 {
		t.Fatalf("after the reload: %+v", st.Service)
	}
	if b, _ := os.ReadFile(f.log); st.Service.MainPID != third && bytes.Contains(b, []byte("Cannot bind any address")) {
		t.Logf("sshd %d lost its socket on SIGHUP and exited; the next connection started sshd %d", third, st.Service.MainPID)
	} else {
		t.Logf("sshd %d after SIGHUP, sshd %d serves", third, st.Service.MainPID)
	}

	// sockd's SIGTERM stops sshd; nothing of it is left.
	last := st.Service.MainPID
	if err := s.stop(); err != nil {
		t.Fatalf("sockd exit: %v", err)
	}
	if pidAlive(last) {
		t.Fatalf("sshd %d survived sockd's SIGTERM", last)
	}
	f.checkRunDir(false)
}

// The inetd-style pair Debian shipped before bookworm: ssh.socket with
// Accept=yes, and ssh@.service running sshd -i on each connection as its
// stdin and stdout (StandardInput=socket).
func TestSSHDebian11Inetd(t *testing.T) {
	f := newSSHFixture(t)
	files := f.units("debian11-ssh")
	files["ssh@.service.d/sockd-test.conf"] = "# sockd integration test: sshd's options from the test's environment file.\n" +
		"[Service]\nEnvironmentFile=" + f.envFile + "\n"
	s := startSockd(t, writeUnits(t, files))
	// idle waits for the instances to be gone. Every instance's exit
	// removes /run/sshd, as in systemd (bullseye's ssh@.service lacks
	// RuntimeDirectoryPreserve=yes: Debian bug #934663), so an sshd -i
	// that starts while another exits may find it missing: a login does
	// not start while the last one's instance is still exiting.
	idle := func() {
		t.Helper()
		var st api.UnitStatus
		if !eventually(10*time.Second, func() bool { st = s.status("ssh"); return len(st.Service.Pids) == 0 }) {
			t.Fatalf("instances still running: %+v", st.Service)
		}
	}

	// Lazy: no instance, and no /run/sshd, before a client comes.
	st := s.status("ssh")
	if st.Name != "ssh@.service" || st.Service.State != "inactive" || len(st.Service.Pids) != 0 ||
		len(st.Sockets) != 1 || st.Sockets[0].Listen != f.addr {
		t.Fatalf("before any connection: %+v", st)
	}
	f.checkRunDir(false)

	// Served: the connection gets its own sshd -i, which exits with it;
	// /run/sshd goes with the last instance.
	if out := f.run("echo hello"); out != "hello\n" {
		t.Fatalf("ssh echo hello: %q", out)
	}
	prefix := fmt.Sprintf("ssh@0-%s-127.0.0.1:", f.addr)
	s.waitLog(20*time.Second, func(l map[string]any) bool {
		name, _ := l["instance"].(string)
		return l["message"] == "exited" && strings.HasPrefix(name, prefix)
	})
	idle()
	f.checkRunDir(false)

	// Two logins at once: an instance each.
	a, b := f.hold("a"), f.hold("b")
	st = s.status("ssh")
	if st.Service.State != "active" || len(st.Service.Pids) != 2 || a.pid == b.pid {
		t.Fatalf("with two logins: %+v", st.Service)
	}
	for _, pid := range st.Service.Pids {
		if cl := procCmdline(pid); !strings.Contains(cl, "sshd") {
			t.Fatalf("instance pid %d is %q, want sshd", pid, cl)
		}
	}
	a.echo("a")
	b.echo("b")
	f.checkRunDir(true)

	// Restarted: every instance is stopped, its login with it; the socket
	// keeps accepting, and the next connection gets a new instance.
	if out, errs, code := s.ctl("restart", "ssh", "--wait"); code != 0 {
		t.Fatalf("sockctl restart ssh --wait: exit %d: %s%s", code, out, errs)
	}
	a.closedByServer()
	b.closedByServer()
	if st := s.status("ssh"); len(st.Service.Pids) != 0 {
		t.Fatalf("after the restart: %+v", st.Service)
	}
	f.checkRunDir(false)
	if out := f.run("echo hello"); out != "hello\n" {
		t.Fatalf("after the restart: %q", out)
	}
	idle()

	// Stopped: the same, and the socket still listens.
	c := f.hold("c")
	if out, errs, code := s.ctl("stop", "ssh"); code != 0 {
		t.Fatalf("sockctl stop ssh: exit %d: %s%s", code, out, errs)
	}
	c.closedByServer()
	st = s.status("ssh")
	if len(st.Service.Pids) != 0 || len(st.Sockets) != 1 {
		t.Fatalf("after the stop: %+v", st)
	}
	f.checkRunDir(false)

	// Re-triggered: the next connection is served.
	if out := f.run("echo hello"); out != "hello\n" {
		t.Fatalf("after the stop: %q", out)
	}
	idle()

	// sockd's SIGTERM ends a login left open.
	d := f.hold("d")
	d.echo("d")
	if err := s.stop(); err != nil {
		t.Fatalf("sockd exit: %v", err)
	}
	d.closedByServer()
	f.checkRunDir(false)
}
