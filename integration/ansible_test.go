package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/testutil"
)

// fleetHost is one inventory host of the Ansible test: a sockd of its own
// on this machine, sharing nothing with the others.
type fleetHost struct {
	name, dir, addr string
}

func (h fleetHost) path(name string) string { return filepath.Join(h.dir, name) }

// vars are the host's inventory variables: its own binaries, unit
// directory, API socket, runtime directory (so its own cgroup, which sockd
// names after it), app directory, state directory and loopback port.
func (h fleetHost) vars() map[string]any {
	return map[string]any{
		"sockd_bindir":           h.path("bin"),
		"sockd_units_dir":        h.path("units"),
		"sockd_api":              h.path("api.sock"),
		"sockd_runtime_dir":      h.path("rt"),
		"sockd_deploy_state_dir": h.path("state"),
		"sockd_pidfile":          h.path("sockd.pid"),
		"sockd_logfile":          h.path("sockd.log"),
		"sockd_app_root":         h.path("app"),
		"sockd_app_listen":       []string{h.addr},
	}
}

// answer asks the host's app once: its release and pid.
func (h fleetHost) answer(t *testing.T) (release string, pid int) {
	t.Helper()
	body := get(t, client("tcp", h.addr))
	m := regexp.MustCompile(`^release (\S+) \(pid (\d+)\)\n$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("%s: answer %q is not the demo's", h.name, body)
	}
	pid, _ = strconv.Atoi(m[2])
	return m[1], pid
}

// TestAnsibleRollingDeploy runs contrib/ansible with Debian's ansible-core
// against five sockd instances on this machine (ansible_connection=local,
// each with its own paths and port), the demo app on each under continuous
// load: site.yml installs sockd (started without a service manager) and
// deploys release v1; deploy.yml rolls v2 out in batches of 40% with no
// failed request; a second roll of v2 changes nothing and restarts
// nothing; a unit file with an error is refused before it replaces
// anything, and a changed one restarts the unit; a broken release stops
// the roll at the first host, which sockd rolls back, so that every host
// still serves v2.
func TestAnsibleRollingDeploy(t *testing.T) {
	playbook, err := exec.LookPath("ansible-playbook")
	if err != nil {
		t.Fatal("ansible-playbook not found: make deps installs ansible-core")
	}
	contrib, err := filepath.Abs("../contrib/ansible")
	if err != nil {
		t.Fatal(err)
	}
	root := testutil.ShortDir(t)
	if err := os.Chmod(root, 0o755); err != nil { // the runtime directories' parents
		t.Fatal(err)
	}
	reapDaemons(t)

	// The releases, as a build would leave them on the controller: the
	// demo binary and the environment it reads at each start.
	releases := map[string]string{
		"v1":     "DEMO_MESSAGE=release v1\n",
		"v2":     "DEMO_MESSAGE=release v2\n",
		"broken": "DEMO_MESSAGE=release broken\nDEMO_FAIL=1\n",
	}
	for name, env := range releases {
		dir := filepath.Join(root, "releases", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		copyFile(t, bin.demo, filepath.Join(dir, "sockd-demo"))
		if err := os.WriteFile(filepath.Join(dir, "release.env"), []byte(env), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	var hosts []fleetHost
	inv := map[string]any{}
	for i := 1; i <= 5; i++ {
		h := fleetHost{name: fmt.Sprintf("h%d", i), dir: filepath.Join(root, fmt.Sprintf("h%d", i)),
			addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
		if err := os.Mkdir(h.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, h)
		inv[h.name] = h.vars()
		t.Cleanup(func() { stopDaemon(t, h) })
	}
	inventory := filepath.Join(root, "inventory.json")
	writeJSON(t, inventory, map[string]any{"sockd": map[string]any{
		"hosts": inv,
		"vars": map[string]any{
			"ansible_connection":         "local",
			"sockd_service_manager":      "none",
			"sockd_bin_src":              bin.dir,
			"sockd_app_name":             "demo",
			"sockd_app_exec":             "sockd-demo",
			"sockd_app_release_src":      filepath.Join(root, "releases") + "/{{ sockd_app_release }}",
			"sockd_app_service_options":  map[string]any{"TimeoutStopSec": "10s"},
			"sockd_app_socket_options":   map[string]any{"FileDescriptorName": "http"},
			"sockd_restart_timeout":      "60s",
			"ansible_python_interpreter": "/usr/bin/python3",
		},
	}})
	ans := &ansible{t: t, playbook: playbook, dir: contrib, inventory: inventory, home: filepath.Join(root, "ansible")}

	// The first install: every host at once, sockd started by
	// start-stop-daemon, v1 started by its first restart.
	start := time.Now()
	out := ans.run(0, "site.yml", "sockd_app_release=v1")
	t.Logf("site.yml on %d hosts at once: %s", len(hosts), time.Since(start).Round(time.Millisecond))
	pids := map[string]int{}
	for _, h := range hosts {
		rel, pid := h.answer(t)
		if rel != "v1" {
			t.Fatalf("%s serves %s after site.yml with v1:\n%s", h.name, rel, out)
		}
		pids[h.name] = pid
	}

	loads := map[string]*load{}
	for _, h := range hosts {
		loads[h.name] = startLoadArgs(t, "-addr", h.addr, "-c", "2", "-rate", "50", "-d", "0", "-timeout", "20s")
	}

	// The roll: batches of 2, 2 and 1 hosts, each host restarted once.
	start = time.Now()
	out = ans.run(0, "deploy.yml", "sockd_app_release=v2", "sockd_serial=40%")
	took := time.Since(start)
	if n := strings.Count(out, "PLAY [Roll a release out]"); n != 3 {
		t.Errorf("serial 40%% of 5 hosts: %d batches, want 3:\n%s", n, out)
	}
	recap := playRecap(t, out)
	var restartMs []string
	for _, h := range hosts {
		if r, ok := recap[h.name]; !ok || r.failed != 0 || r.changed == 0 {
			t.Errorf("%s in the roll's recap: %+v, want changed and not failed", h.name, r)
		}
		rel, pid := h.answer(t)
		if rel != "v2" || pid == pids[h.name] {
			t.Errorf("%s after the roll: release %s, pid %d (was %d); want v2 on a new pid", h.name, rel, pid, pids[h.name])
		}
		pids[h.name] = pid
	}
	for _, m := range regexp.MustCompile(`done: done in (\d+) ms`).FindAllStringSubmatch(out, -1) {
		restartMs = append(restartMs, m[1])
	}
	if len(restartMs) != len(hosts) {
		t.Errorf("restart phases printed for %d hosts, want %d:\n%s", len(restartMs), len(hosts), out)
	}
	t.Logf("roll of %d hosts in 3 batches: %s; per-host restarts (ms): %s", len(hosts), took.Round(time.Millisecond), strings.Join(restartMs, " "))

	// Nothing changed: nothing to do, no restart.
	start = time.Now()
	out = ans.run(0, "deploy.yml", "sockd_app_release=v2", "sockd_serial=100%")
	t.Logf("a roll with nothing changed, one batch: %s", time.Since(start).Round(time.Millisecond))
	recap = playRecap(t, out)
	for _, h := range hosts {
		if r := recap[h.name]; r.ok == 0 || r.changed != 0 || r.failed != 0 {
			t.Errorf("%s, second roll of v2: %+v, want changed=0", h.name, r)
		}
		if rel, pid := h.answer(t); rel != "v2" || pid != pids[h.name] {
			t.Errorf("%s after a roll that changed nothing: release %s, pid %d; want v2 on pid %d", h.name, rel, pid, pids[h.name])
		}
	}

	// A unit file with an error: sockd verify refuses it before anything is
	// replaced.
	h1 := hosts[0]
	service := func() string {
		b, err := os.ReadFile(h1.path("units/demo.service"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	before := service()
	out = ans.run(2, "deploy.yml", "sockd_hosts=h1", "sockd_app_release=v2", `{"sockd_app_service_options": {"Bogus": "1"}}`)
	if !regexp.MustCompile(`sockd verify: nothing installed: demo.service:\d+: Bogus: unknown option`).MatchString(out) {
		t.Errorf("a unit with an unknown option: no sockd verify error in:\n%s", out)
	}
	if service() != before {
		t.Errorf("demo.service was replaced by a file sockd verify refused")
	}
	if rel, pid := h1.answer(t); rel != "v2" || pid != pids["h1"] {
		t.Errorf("h1 after a refused unit file: release %s, pid %d; want v2 on pid %d", rel, pid, pids["h1"])
	}

	// A changed unit file alone restarts the unit.
	start = time.Now()
	out = ans.run(0, "deploy.yml", "sockd_hosts=h1", "sockd_app_release=v2", `{"sockd_app_service_options": {"TimeoutStopSec": "11s"}}`)
	t.Logf("a roll of one host (a unit file changed): %s", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(out, "unit files changed: demo.service") {
		t.Errorf("a changed unit file: no restart for it in:\n%s", out)
	}
	rel, pid := h1.answer(t)
	if rel != "v2" || pid == pids["h1"] {
		t.Errorf("h1 after its unit file changed: release %s, pid %d (was %d); want v2 on a new pid", rel, pid, pids["h1"])
	}
	pids["h1"] = pid
	before = service()

	// A release that exits at once, with h1's unit file changed back: the
	// first host rolls back, gets its link and unit file back, and fails,
	// which ends the roll there.
	out = ans.run(2, "deploy.yml", "sockd_app_release=broken", "sockd_serial=1")
	recap = playRecap(t, out)
	if r := recap["h1"]; r.failed != 1 {
		t.Errorf("h1, broken release: %+v, want failed=1:\n%s", r, out)
	}
	for _, want := range []string{"rolled-back: exited before ready", "DEMO_FAIL=1: exiting with status 3", "it serves its previous release"} {
		if !strings.Contains(out, want) {
			t.Errorf("the broken roll's output lacks %q:\n%s", want, out)
		}
	}
	if service() != before {
		t.Errorf("h1's demo.service after the rollback:\n%s\nwant it put back:\n%s", service(), before)
	}
	for i, h := range hosts {
		if _, ran := recap[h.name]; i > 0 && ran {
			t.Errorf("%s took part in the roll after h1 failed:\n%s", h.name, out)
		}
		if rel, pid := h.answer(t); rel != "v2" || pid != pids[h.name] {
			t.Errorf("%s after the broken roll: release %s, pid %d; want v2 on pid %d", h.name, rel, pid, pids[h.name])
		}
		if target, err := os.Readlink(h.path("app/current")); err != nil || target != h.path("app/releases/v2") {
			t.Errorf("%s: current links to %q (%v), want releases/v2", h.name, target, err)
		}
		_, err := os.Stat(h.path("app/releases/broken"))
		if copied := err == nil; copied != (i == 0) {
			t.Errorf("%s: broken release copied: %v", h.name, copied)
		}
	}

	for _, h := range hosts {
		r := loads[h.name].stop()
		if r.Failed() != 0 || r.Requests < 100 {
			t.Errorf("%s under load: %d requests, %d failed %v %v", h.name, r.Requests, r.Failed(), r.Failures, r.Errors)
		}
	}
}

// ansible runs ansible-playbook on contrib/ansible with a home and
// temporary directories of the test's own.
type ansible struct {
	t                              *testing.T
	playbook, dir, inventory, home string
}

// run runs a playbook with extra variables, wants its exit code, and
// returns its output.
func (a *ansible) run(want int, playbook string, extraVars ...string) string {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"-i", a.inventory, playbook}
	for _, v := range extraVars {
		args = append(args, "-e", v)
	}
	cmd := exec.CommandContext(ctx, a.playbook, args...)
	cmd.Dir = a.dir
	cmd.Env = append(os.Environ(),
		"HOME="+a.home,
		"ANSIBLE_CONFIG="+filepath.Join(a.dir, "ansible.cfg"),
		"ANSIBLE_LOCAL_TEMP="+filepath.Join(a.home, "tmp-local"),
		"ANSIBLE_REMOTE_TEMP="+filepath.Join(a.home, "tmp-remote"),
		"ANSIBLE_NOCOLOR=1",
		// start-stop-daemon is in /usr/sbin.
		"PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		a.t.Fatalf("ansible-playbook %s: %v\n%s", playbook, err, out.String())
	}
	if code != want {
		a.t.Fatalf("ansible-playbook %s %v: exit %d, want %d:\n%s", playbook, extraVars, code, want, out.String())
	}
	return out.String()
}

type recapLine struct{ ok, changed, failed int }

// playRecap reads the PLAY RECAP of ansible-playbook's output.
func playRecap(t *testing.T, out string) map[string]recapLine {
	t.Helper()
	re := regexp.MustCompile(`(?m)^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)`)
	m := map[string]recapLine{}
	for _, l := range re.FindAllStringSubmatch(out, -1) {
		ok, _ := strconv.Atoi(l[2])
		changed, _ := strconv.Atoi(l[3])
		failed, _ := strconv.Atoi(l[4])
		m[l[1]] = recapLine{ok, changed, failed}
	}
	if len(m) == 0 {
		t.Fatalf("no PLAY RECAP in:\n%s", out)
	}
	return m
}

// reapDaemons makes this test process the child subreaper until the test
// ends: start-stop-daemon leaves sockd an orphan, which then becomes this
// process's child, so that stopDaemon can reap it.
func reapDaemons(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
}

// stopDaemon stops the sockd that Ansible started for h (SIGTERM: its
// apps and its fd holder stop with it), reaps it, and fails the test if
// any process still runs from h's directory.
func stopDaemon(t *testing.T, h fleetHost) {
	b, err := os.ReadFile(h.path("sockd.pid"))
	if err != nil {
		return // never started
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Errorf("%s: pid file: %q", h.name, b)
		return
	}
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe != h.path("bin/sockd") {
		return // gone already: its pid is another process's now, or no one's
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Errorf("%s: pidfd of sockd %d: %v", h.name, pid, err)
		return
	}
	defer unix.Close(pidfd)
	unix.Kill(pid, syscall.SIGTERM)
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	if n, _ := unix.Poll(fds, 30_000); n != 1 {
		t.Errorf("%s: sockd %d did not exit within 30 s of SIGTERM; killed", h.name, pid)
		unix.Kill(pid, syscall.SIGKILL)
		unix.Poll(fds, 10_000)
	}
	var ws unix.WaitStatus
	unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	if t.Failed() {
		if log, err := os.ReadFile(h.path("sockd.log")); err == nil {
			t.Logf("%s: sockd log:\n%s", h.name, log)
		}
	}
	if left := processesUnder(h.dir); len(left) > 0 {
		t.Errorf("%s: processes left after sockd stopped: %v", h.name, left)
	}
}

// processesUnder lists the processes whose executable or first argument
// lies in dir.
func processesUnder(dir string) []string {
	var left []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		exe, _ := os.Readlink("/proc/" + e.Name() + "/exe")
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		arg0, _, _ := bytes.Cut(cmdline, []byte{0})
		for _, p := range []string{exe, string(arg0)} {
			if strings.HasPrefix(p, dir+"/") {
				left = append(left, e.Name()+" "+p)
				break
			}
		}
	}
	return left
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
