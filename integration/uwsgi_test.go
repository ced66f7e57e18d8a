package integration

// uWSGI on the template units Debian ships: uwsgi-app@.socket and
// uwsgi-app@.service from uwsgi-core, copied verbatim (below a header)
// into testdata/uwsgi and run unchanged. The instance is enabled as
// `systemctl enable uwsgi-app@NAME.socket` does it, by a link in
// sockets.target.wants/. .ci/deps installs uwsgi-core and
// uwsgi-plugin-python3.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
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

// The paths the shipped units name: the service reads
// /etc/uwsgi/apps-available/%i.ini, the socket listens on
// /var/run/uwsgi/%i.socket, StateDirectory=uwsgi/%i is below /var/lib.
const (
	uwsgiConfDir  = "/etc/uwsgi/apps-available"
	uwsgiSockDir  = "/var/run/uwsgi"
	uwsgiStateDir = "/var/lib/uwsgi"
)

// uwsgiApp is the WSGI app: it appends its pid to a file in
// $STATE_DIRECTORY, which only the dynamic user may write, and says who
// it is.
const uwsgiApp = `import os


def application(environ, start_response):
    state = os.environ["STATE_DIRECTORY"]
    with open(os.path.join(state, "requests"), "a") as f:
        f.write("%d\n" % os.getpid())
    body = "uwsgi pid %d ppid %d uid %d gid %d state %s\n" % (
        os.getpid(), os.getppid(), os.getuid(), os.getgid(), state)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
`

// uwsgiAnswer is what uwsgiApp says.
type uwsgiAnswer struct {
	pid, ppid, uid, gid int
	state               string
}

var uwsgiAnswerRE = regexp.MustCompile(`^uwsgi pid (\d+) ppid (\d+) uid (\d+) gid (\d+) state (\S+)\n$`)

func parseUWSGIAnswer(body string) (a uwsgiAnswer, ok bool) {
	m := uwsgiAnswerRE.FindStringSubmatch(body)
	if m == nil {
		return a, false
	}
	a.pid, _ = strconv.Atoi(m[1])
	a.ppid, _ = strconv.Atoi(m[2])
	a.uid, _ = strconv.Atoi(m[3])
	a.gid, _ = strconv.Atoi(m[4])
	a.state = m[5]
	return a, true
}

// TestUWSGI runs a Python WSGI app on Debian's uwsgi-app@ template
// units: DynamicUser= with User=www-%i and the static Group=www-data,
// StateDirectory=uwsgi/%i, KillSignal=SIGQUIT and Type=notify (uWSGI's
// master sends READY=1), on the Unix socket /var/run/uwsgi/%i.socket
// (SocketUser=www-data, SocketMode=0600). The steps, each within a
// bound: the first HTTP request starts it; `sockctl restart --wait`
// returns once the new master is ready, and the next answer comes from
// it; `sockctl stop` ends it and the socket stays; the next request
// starts it again.
//
// Neither unit needs a drop-in: the configuration goes where the shipped
// ExecStart= reads it, /etc/uwsgi/apps-available/NAME.ini, and the socket
// stays at its shipped path. The ini sets `protocol = http`: uWSGI takes
// the socket sockd passes (LISTEN_FDS) as a socket of its own, and
// speaks the uwsgi protocol on it unless told otherwise.
//
// The shipped service has no RuntimeDirectory=. `sockctl reload-app`
// (SIGHUP) is not a step: uWSGI 2.0.21's graceful reload re-executes
// itself and keeps only the sockets its configuration names
// (core/setup_utils.c, uwsgi_setup_inherited_sockets), so one that
// systemd or sockd passed is closed and uWSGI exits 1, under either.
//
// The instance name holds the test's pid, so that no file of an
// earlier or concurrent run is in the way; everything the test made
// below /etc, /run and /var/lib goes when it ends.
func TestUWSGI(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the shipped units use /var/run/uwsgi, /var/lib and DynamicUser=")
	}
	for _, p := range []string{"/usr/bin/uwsgi", "/usr/lib/uwsgi/plugins/python3_plugin.so"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v: .ci/deps installs uwsgi-core and uwsgi-plugin-python3", err)
		}
	}
	wwwData, err := user.LookupGroup("www-data")
	if err != nil {
		t.Fatalf("Group=www-data of the shipped unit: %v", err)
	}
	wwwDataGID, _ := strconv.Atoi(wwwData.Gid)
	wwwDataUser, err := user.Lookup("www-data")
	if err != nil {
		t.Fatalf("SocketUser=www-data of the shipped socket: %v", err)
	}
	wwwDataUID, _ := strconv.Atoi(wwwDataUser.Uid)

	name := fmt.Sprintf("sockdit%d", os.Getpid())
	unit := "uwsgi-app@" + name
	sock := filepath.Join(uwsgiSockDir, name+".socket")
	ini := filepath.Join(uwsgiConfDir, name+".ini")
	statePub := filepath.Join(uwsgiStateDir, name)
	statePriv := filepath.Join("/var/lib/private/uwsgi", name)

	// The app lives in the test's directory, which the dynamic user must
	// be able to read.
	appDir := testutil.ShortDir(t)
	if err := os.Chmod(appDir, 0o755); err != nil {
		t.Fatal(err)
	}
	app := filepath.Join(appDir, "app.py")
	if err := os.WriteFile(app, []byte(uwsgiApp), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, p := range []string{sock, ini, statePub, statePriv} {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s exists before the test", p)
		}
	}
	// Cleanup runs after sockd's (registered later, so run earlier):
	// then nothing of the unit runs any more.
	var seen []int // every uwsgi pid the test saw
	cleanupUWSGI(t, name, &seen)
	if err := os.MkdirAll(uwsgiConfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`# TestUWSGI: the app of %s.
[uwsgi]
plugin = python3
# sockd passes %s as fd 3 (LISTEN_FDS=1); uWSGI serves HTTP on it.
protocol = http
master = true
processes = 1
need-app = true
wsgi-file = %s
`, unit, sock, app)
	if err := os.WriteFile(ini, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}

	files := map[string]string{}
	for _, f := range []string{"uwsgi-app@.socket", "uwsgi-app@.service"} {
		b, err := os.ReadFile(filepath.Join("testdata/uwsgi", f))
		if err != nil {
			t.Fatal(err)
		}
		files[f] = string(b)
	}
	units := writeUnits(t, files)
	// What `systemctl enable uwsgi-app@NAME.socket` makes; only the
	// name counts (docs/units.md, "Socket templates").
	wants := filepath.Join(units, "sockets.target.wants")
	if err := os.Mkdir(wants, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/lib/systemd/system/uwsgi-app@.socket", filepath.Join(wants, unit+".socket")); err != nil {
		t.Fatal(err)
	}
	verifyUnits(t, units)

	var sd *sockd
	timed(t, "sockd start, socket listening", 15*time.Second, func() {
		sd = startSockd(t, units)
		pollUntil(t, 10*time.Second, "the instance socket is listed", func() bool {
			_, _, code := sd.ctl("status", unit)
			return code == 0
		})
	})
	st := sd.status(unit)
	if st.Service.State != api.StateInactive || len(st.Service.Pids) != 0 {
		t.Fatalf("before the first request: %s, pids %v; want inactive, none", st.Service.State, st.Service.Pids)
	}
	if len(st.Sockets) != 1 || st.Sockets[0].Unit != unit+".socket" {
		t.Fatalf("sockets: %+v, want %s.socket", st.Sockets, unit)
	}
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if sys := fi.Sys().(*syscall.Stat_t); fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 || int(sys.Uid) != wwwDataUID {
		t.Fatalf("%s: %v, owner %d; want a socket, 0600, owned by www-data (%d)", sock, fi.Mode(), sys.Uid, wwwDataUID)
	}

	c := client("unix", sock)
	var dynUID int
	// serving fetches / and checks who answered: a worker of the master
	// that status shows as the main process, both running as the dynamic
	// user and Group=www-data; it returns the answer.
	serving := func() uwsgiAnswer {
		t.Helper()
		body := get(t, c)
		a, ok := parseUWSGIAnswer(body)
		if !ok {
			t.Fatalf("GET: %q", body)
		}
		seen = append(seen, a.pid, a.ppid)
		st := sd.status(unit).Service
		if st.State != api.StateActive || st.MainPID != a.ppid {
			t.Fatalf("status: %s, main pid %d; the answer came from pid %d, child of %d", st.State, st.MainPID, a.pid, a.ppid)
		}
		if a.uid < 61184 || a.uid > 65519 {
			t.Fatalf("the app runs as uid %d, not a dynamic one (61184-65519)", a.uid)
		}
		if dynUID != 0 && a.uid != dynUID {
			t.Fatalf("the app runs as uid %d, before as %d: the id of the unit's StateDirectory= changed", a.uid, dynUID)
		}
		dynUID = a.uid
		if a.gid != wwwDataGID {
			t.Fatalf("the app runs as gid %d, want www-data (%d)", a.gid, wwwDataGID)
		}
		for _, pid := range []int{a.pid, a.ppid} {
			if p, ok := readProc(pid); !ok || p.uid != a.uid || p.gid != a.gid {
				t.Fatalf("pid %d: uid %d gid %d (alive %v), want %d %d", pid, p.uid, p.gid, ok, a.uid, a.gid)
			}
		}
		if a.state != statePub {
			t.Fatalf("STATE_DIRECTORY=%s, want %s", a.state, statePub)
		}
		return a
	}
	gone := func(what string, pids ...int) {
		t.Helper()
		pollUntil(t, 10*time.Second, what, func() bool {
			for _, pid := range pids {
				if pidAlive(pid) {
					return false
				}
			}
			return true
		})
	}

	var first uwsgiAnswer
	timed(t, "first request starts uwsgi", 30*time.Second, func() { first = serving() })
	st = sd.status(unit)
	if st.Service.Status == "" {
		t.Errorf("status: no STATUS= from uWSGI's sd_notify")
	}
	t.Logf("uwsgi master %d, worker %d, uid %d; STATUS=%q", first.ppid, first.pid, first.uid, st.Service.Status)

	// StateDirectory= with DynamicUser=yes: /var/lib/private/uwsgi/NAME,
	// owned by the dynamic user, behind /var/lib/uwsgi/NAME, a link to
	// ../private/uwsgi/NAME, as systemd makes them.
	if target, err := os.Readlink(statePub); err != nil || target != "../private/uwsgi/"+name {
		t.Fatalf("%s: link to %q (%v), want ../private/uwsgi/%s", statePub, target, err, name)
	}
	for _, p := range []string{statePriv, filepath.Join(statePriv, "requests")} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if sys := fi.Sys().(*syscall.Stat_t); int(sys.Uid) != first.uid || int(sys.Gid) != wwwDataGID {
			t.Fatalf("%s: owner %d:%d, want the dynamic user %d:%d", p, sys.Uid, sys.Gid, first.uid, wwwDataGID)
		}
	}

	// Type=notify: restart --wait returns once the new master said
	// READY=1, and the old one is drained (KillSignal=SIGQUIT).
	var progress string
	timed(t, "restart --wait", 30*time.Second, func() {
		out, errs, code := sd.ctl("restart", unit, "--wait")
		if code != 0 {
			t.Fatalf("restart --wait: exit %d\n%s%s", code, out, errs)
		}
		progress = out + errs
	})
	st = sd.status(unit)
	if !strings.Contains(progress, fmt.Sprintf("ready (pid %d)", st.Service.MainPID)) ||
		!strings.Contains(progress, fmt.Sprintf("pid %d stopped", first.ppid)) {
		t.Fatalf("restart --wait: want the new master %d ready and the old one %d stopped:\n%s", st.Service.MainPID, first.ppid, progress)
	}
	var second uwsgiAnswer
	timed(t, "answer from the new master", 10*time.Second, func() { second = serving() })
	if second.ppid == first.ppid || second.pid == first.pid {
		t.Fatalf("after restart: answer from pid %d of master %d, before from %d of %d", second.pid, second.ppid, first.pid, first.ppid)
	}
	gone("the old master and worker exit", first.pid, first.ppid)

	timed(t, "stop", 20*time.Second, func() {
		if out, errs, code := sd.ctl("stop", unit); code != 0 {
			t.Fatalf("stop: exit %d\n%s%s", code, out, errs)
		}
		gone("uwsgi exits", second.pid, second.ppid)
	})
	st = sd.status(unit)
	if st.Service.State != api.StateInactive || len(st.Service.Pids) != 0 {
		t.Fatalf("after stop: %s, pids %v", st.Service.State, st.Service.Pids)
	}
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("%s after stop: %v, %v; the socket stays", sock, fi, err)
	}

	var third uwsgiAnswer
	timed(t, "the next request starts uwsgi again", 30*time.Second, func() { third = serving() })
	if third.ppid == second.ppid {
		t.Fatalf("after stop: master %d answered again", third.ppid)
	}

	timed(t, "sockd stops", 30*time.Second, func() {
		if err := sd.stop(); err != nil {
			t.Fatalf("sockd exit: %v", err)
		}
	})
	gone("uwsgi exits with sockd", third.pid, third.ppid)
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s after sockd stopped: %v, want it removed", sock, err)
	}
}

// cleanupUWSGI removes, when the test ends, what TestUWSGI's instance
// NAME made outside the test's directories: its uwsgi processes (an
// error: they should be gone), its socket, its ini and its state
// directory, the parents of these that did not exist before, and the
// mode sockd gives /var/lib/private (0711 for 0700).
func cleanupUWSGI(t *testing.T, name string, seen *[]int) {
	t.Helper()
	var made []string // directories to remove, innermost first
	for _, d := range []string{
		uwsgiSockDir,
		uwsgiConfDir, filepath.Dir(uwsgiConfDir),
		uwsgiStateDir,
		"/var/lib/private/uwsgi", "/var/lib/private",
	} {
		if _, err := os.Lstat(d); errors.Is(err, fs.ErrNotExist) {
			made = append(made, d)
		}
	}
	var privMode fs.FileMode
	if fi, err := os.Stat("/var/lib/private"); err == nil {
		privMode = fi.Mode().Perm()
	}
	t.Cleanup(func() {
		for _, pid := range *seen {
			if pidAlive(pid) && strings.Contains(strings.ToLower(commOf(pid)), "uwsgi") {
				t.Errorf("uwsgi pid %d outlived the test", pid)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if err := os.Remove(filepath.Join(uwsgiSockDir, name+".socket")); err == nil {
			t.Logf("removed %s/%s.socket", uwsgiSockDir, name)
		}
		os.Remove(filepath.Join(uwsgiConfDir, name+".ini"))
		os.Remove(filepath.Join(uwsgiStateDir, name))
		os.RemoveAll(filepath.Join("/var/lib/private/uwsgi", name))
		for _, d := range made {
			os.Remove(d) // only if empty: someone else's files stay
		}
		if privMode != 0 {
			if fi, err := os.Stat("/var/lib/private"); err == nil && fi.Mode().Perm() != privMode {
				os.Chmod("/var/lib/private", privMode)
			}
		}
	})
}
