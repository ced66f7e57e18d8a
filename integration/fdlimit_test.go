package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/testutil"
)

// sockd with RLIMIT_NOFILE 64 (soft and hard: it cannot raise it) and
// 100 units: it keeps the fds it needs itself, opens the units whose
// sockets fit with room for one process, and lists the others as failed
// with the limit in their reason; the API answers, a unit spawns its app,
// a second spawn past the budget fails its start and succeeds once the
// first process is gone, the unit directory is watched, and neither the
// ready line nor READY=1 claims that every unit is ready. Removing a
// unit makes room for one that failed.
func TestFDLimit(t *testing.T) {
	const n = 100
	sockDir := testutil.ShortDir(t)
	files := map[string]string{}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("f%03d", i)
		files[name+".socket"] = "[Socket]\nListenStream=" + filepath.Join(sockDir, name+".sock") + "\n"
		files[name+".service"] = "[Service]\nType=notify\nExecStart=" + bin.demo + "\nEnvironment=DEMO_MESSAGE=hi\n"
	}
	units := writeUnits(t, files)
	// The limit is set by the shell sockd is exec'd from: ulimit -n
	// sets the soft and the hard limit. As root sockd raises its hard
	// limit when it has CAP_SYS_RESOURCE: setpriv (util-linux) takes it
	// away.
	exec := "exec "
	if os.Geteuid() == 0 {
		exec += "setpriv --bounding-set=-sys_resource --inh-caps=-sys_resource "
	}
	wrapper := filepath.Join(testutil.ShortDir(t), "sockd-64")
	if err := os.WriteFile(wrapper, []byte("#!/bin/sh\nulimit -n 64 || exit 1\n"+exec+bin.sockd+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	notify, ready := listenNotify(t)
	s := startSockdExe(t, wrapper, units, nil, "NOTIFY_SOCKET="+notify)

	plan := s.waitLog(time.Second, func(l map[string]any) bool {
		return strings.HasPrefix(fmt.Sprint(l["message"]), "fds: limit 64, units need ~")
	})
	if plan["units"] != float64(n) || plan["limit"] != float64(64) || plan["fits"] != false {
		t.Errorf("fd plan line %v: want limit 64, %d units, fits false", plan, n)
	}

	start := time.Now()
	out, errs, code := s.ctl("list", "--json")
	if code != 0 {
		t.Fatalf("sockctl list: exit %d: %s", code, errs)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("sockctl list took %s at the fd limit", took)
	}
	var list []api.UnitStatus
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("sockctl list --json: %v: %q", err, out)
	}
	byName := map[string]api.UnitStatus{}
	for _, u := range list {
		byName[u.Name] = u
	}
	var serving, failed []string
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("f%03d.service", i)
		u, ok := byName[name]
		switch {
		case !ok:
			t.Errorf("%s is not listed", name)
		case u.Service.SubState == "listening" && len(u.Sockets) == 1:
			serving = append(serving, strings.TrimSuffix(name, ".service"))
		case u.Service.State == api.StateFailed && u.Service.Result == "resources" &&
			strings.Contains(u.Service.LastExit, "too many open files") && strings.Contains(u.Service.LastExit, "fd limit 64"):
			failed = append(failed, strings.TrimSuffix(name, ".service"))
		default:
			t.Errorf("%s: %+v; want listening, or failed (resources) with the fd limit in its reason", name, u.Service)
		}
	}
	if len(serving) == 0 || len(failed) == 0 {
		t.Fatalf("%d units serve and %d failed; want some of each at an fd limit of 64", len(serving), len(failed))
	}
	t.Logf("at an fd limit of 64: %d units serve, %d failed", len(serving), len(failed))

	// Neither the ready line nor READY=1 says all is well.
	line := s.waitLog(time.Second, func(l map[string]any) bool { return l["message"] == "sockd ready" })
	if line["level"] != "warn" || line["serving"] != float64(len(serving)) || line["failed"] != float64(len(failed)) {
		t.Errorf("ready line %v: want warn, serving %d, failed %d", line, len(serving), len(failed))
	}
	select {
	case msg := <-ready:
		if want := fmt.Sprintf("STATUS=%d units serving, %d failed (resources: %d)", len(serving), len(failed), len(failed)); !strings.Contains(msg, want) {
			t.Errorf("sd_notify %q; want %q", msg, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no READY=1 from sockd")
	}

	out, errs, code = s.ctl("status", failed[0])
	if code != 0 || !strings.Contains(out, "failed (resources)") || !strings.Contains(out, "too many open files (fd limit 64") {
		t.Errorf("sockctl status %s: exit %d: %s%s", failed[0], code, out, errs)
	}

	// The units' sockets fill the budget but for one process: the first
	// unit triggered gets its app; the second's spawn does not fit and
	// fails that start (result resources, the limit named), its socket
	// staying; once the first has stopped, the second starts.
	if body := get(t, client("unix", filepath.Join(sockDir, serving[0]+".sock"))); !strings.HasPrefix(body, "hi (pid ") {
		t.Errorf("%s answered %q", serving[0], body)
	}
	if st := s.status(serving[0]); st.Service.State != "active" || len(st.Service.Pids) != 1 {
		t.Errorf("%s after its request: %+v", serving[0], st.Service)
	}
	want := "start " + serving[1] + ".service: too many open files (fd limit 64;"
	if _, errs, code := s.ctl("start", serving[1]); code != 1 || !strings.Contains(errs, want) {
		t.Errorf("sockctl start %s with %s running: exit %d: %s; want 1 and %q", serving[1], serving[0], code, errs, want)
	}
	st := s.status(serving[1])
	if st.Service.Result != "resources" || !strings.Contains(st.Service.LastExit, want) || len(st.Sockets) != 1 {
		t.Errorf("%s after a spawn past the budget: %+v; want result resources, %q, its socket", serving[1], st, want)
	}
	if _, errs, code := s.ctl("stop", serving[0]); code != 0 {
		t.Fatalf("sockctl stop %s: exit %d: %s", serving[0], code, errs)
	}
	if _, errs, code := s.ctl("start", serving[1]); code != 0 {
		t.Errorf("sockctl start %s once %s stopped: exit %d: %s", serving[1], serving[0], code, errs)
	}
	if body := get(t, client("unix", filepath.Join(sockDir, serving[1]+".sock"))); !strings.HasPrefix(body, "hi (pid ") {
		t.Errorf("%s answered %q", serving[1], body)
	}
	if strings.Contains(s.log(), "not watching the unit directory") {
		t.Error("the unit directory is not watched")
	}
	_, errs, code = s.ctl("list")
	if code != 0 || strings.Contains(errs, "warning") {
		t.Errorf("sockctl list at the limit: exit %d: %s", code, errs)
	}
	if _, errs, code := s.ctl("stop", serving[1]); code != 0 {
		t.Fatalf("sockctl stop %s: exit %d: %s", serving[1], code, errs)
	}

	// The watch works at the limit, and a reload that removes a unit
	// makes room for one that failed.
	gone := serving[0]
	os.Remove(filepath.Join(units, gone+".socket"))
	os.Remove(filepath.Join(units, gone+".service"))
	reloaded := s.waitLog(30*time.Second, func(l map[string]any) bool { return l["message"] == "reloaded" })
	if added, _ := reloaded["added"].([]any); len(added) != 1 || added[0] != failed[0]+".service" {
		t.Errorf("the reload after removing %s: %v; want %s added", gone, reloaded, failed[0])
	}
	if st := s.status(failed[0]); st.Service.SubState != "listening" {
		t.Errorf("%s after the reload: %+v", failed[0], st.Service)
	}
	if body := get(t, client("unix", filepath.Join(sockDir, failed[0]+".sock"))); !strings.HasPrefix(body, "hi (pid ") {
		t.Errorf("%s answered %q", failed[0], body)
	}
	if err := s.stop(); err != nil {
		t.Errorf("sockd exit: %v", err)
	}
}

// listenNotify is a NOTIFY_SOCKET for sockd: the path, and the messages
// that say READY=1. Descriptors sent along (FDSTORE=1) are closed.
func listenNotify(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(testutil.ShortDir(t), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		oob := make([]byte, unix.CmsgSpace(4*253))
		for {
			nb, noob, _, _, err := c.ReadMsgUnix(buf, oob)
			if err != nil {
				return
			}
			if msgs, err := unix.ParseSocketControlMessage(oob[:noob]); err == nil {
				for i := range msgs {
					if fds, err := unix.ParseUnixRights(&msgs[i]); err == nil {
						for _, fd := range fds {
							unix.Close(fd)
						}
					}
				}
			}
			if msg := string(buf[:nb]); strings.Contains(msg, "READY=1") {
				select {
				case ready <- msg:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return path, ready
}

// sockd raises its own RLIMIT_NOFILE (the soft limit to the hard one;
// as root the hard one to fs.nr_open when it may), and its children get
// the limit it was started with: here a soft limit of 256 below the
// hard one, which Go alone would have raised in sockd and restored at
// exec only while sockd left its limit alone. A unit's LimitNOFILE=
// still wins. Both go through the exec helper (LISTEN_PID).
func TestChildNofile(t *testing.T) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Max < 512 {
		t.Fatalf("hard RLIMIT_NOFILE %d: the test needs 512", rl.Max)
	}
	sockDir := testutil.ShortDir(t)
	show := "ExecStart=/bin/sh -c 'echo nofile $(ulimit -Sn):$(ulimit -Hn); exec sleep 60'\n"
	units := writeUnits(t, map[string]string{
		"plain.socket":  "[Socket]\nListenStream=" + filepath.Join(sockDir, "plain.sock") + "\n",
		"plain.service": "[Service]\n" + show,
		"own.socket":    "[Socket]\nListenStream=" + filepath.Join(sockDir, "own.sock") + "\n",
		"own.service":   "[Service]\nLimitNOFILE=100:200\n" + show,
	})
	wrapper := filepath.Join(testutil.ShortDir(t), "sockd-256")
	if err := os.WriteFile(wrapper, []byte("#!/bin/sh\nulimit -Sn 256 || exit 1\nexec "+bin.sockd+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := startSockdExe(t, wrapper, units, nil)
	line := s.waitLog(time.Second, func(l map[string]any) bool { return l["message"] == "RLIMIT_NOFILE" })
	hard := float64(rl.Max)
	if line["children_soft"] != float64(256) || line["children_hard"] != hard || line["soft"] != line["hard"] {
		t.Errorf("sockd's RLIMIT_NOFILE line %v: want children 256:%d, soft = hard", line, rl.Max)
	}
	if os.Geteuid() == 0 {
		nr, err := os.ReadFile("/proc/sys/fs/nr_open")
		if err != nil {
			t.Fatal(err)
		}
		raised := fmt.Sprint(line["hard"]) == strings.TrimSpace(string(nr))
		if !raised && (line["not_raised"] == nil || line["hard"] != hard) {
			t.Errorf("as root: hard limit %v, neither fs.nr_open %s nor %d with the reason: %v", line["hard"], nr, rl.Max, line)
		}
		t.Logf("hard limit raised to fs.nr_open: %v (%v)", raised, line["not_raised"])
	}
	for unit, want := range map[string]string{"plain": fmt.Sprintf("nofile 256:%d", rl.Max), "own": "nofile 100:200"} {
		c, err := net.Dial("unix", filepath.Join(sockDir, unit+".sock"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		got := s.waitLog(10*time.Second, func(l map[string]any) bool {
			return l["unit"] == unit+".service" && strings.HasPrefix(fmt.Sprint(l["message"]), "nofile ")
		})
		if got["message"] != want {
			t.Errorf("%s's process: %q, want %q", unit, got["message"], want)
		}
	}
	if err := s.stop(); err != nil {
		t.Errorf("sockd exit: %v", err)
	}
}
