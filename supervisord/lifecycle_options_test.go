package supervisord

// The [Service] options of a service's life, through the process seam.

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
)

// RemainAfterExit=: a oneshot stays active (exited) after its
// ExecStart=; a stop runs ExecStop= and ExecStopPost=, in that order.
func TestRemainAfterExitOneshot(t *testing.T) {
	e := newActor(t, "Type=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\nExecStop=/bin/exit0\nExecStopPost=/bin/exit3\n")
	st := e.awaitSub("exited")
	if st.State != api.StateActive || st.Result != "success" {
		t.Fatalf("%+v", st)
	}
	if r := e.wait(e.async(reqStop, api.RestartOptions{})); r.err != nil {
		t.Fatal(r.err)
	}
	if got := e.k.helpers; !slices.Equal(got, []string{"/bin/true", "/bin/exit0", "/bin/exit3"}) {
		t.Fatalf("helpers ran: %v", got)
	}
	if st := e.status(); st.SubState != "dead" {
		t.Fatalf("after stop: %+v", st)
	}
}

// ExecStopPost= runs after an unexpected exit too, before Restart=.
func TestExecStopPostAfterCrash(t *testing.T) {
	e := newActor(t, "ExecStart=/srv/app\nExecStopPost=/bin/true\nRestart=on-failure\nRestartSec=1ms\n")
	e.proc().exitWith(children.ExitStatus{Code: 1})
	e.proc()
	if !slices.Equal(e.k.helpers, []string{"/bin/true"}) {
		t.Fatalf("helpers ran: %v", e.k.helpers)
	}
}

// RestartPreventExitStatus= wins over Restart=always;
// RestartForceExitStatus= restarts under Restart=no.
func TestRestartExitStatusSets(t *testing.T) {
	e := newActor(t, "ExecStart=/srv/app\nRestart=always\nRestartSec=1ms\nRestartPreventExitStatus=42 SIGUSR1\n")
	e.proc().exitWith(children.ExitStatus{Code: 42})
	e.awaitSub("failed")
	e.noProc()

	e = newActor(t, "ExecStart=/srv/app\nRestart=no\nRestartSec=1ms\nRestartForceExitStatus=SIGUSR2\n")
	e.proc().exitWith(children.ExitStatus{Code: -1, Signal: syscall.SIGUSR2})
	e.proc()
}

// ExecCondition=: an exit of 1-254 skips the start (the unit is not
// failed); 255 fails it.
func TestExecCondition(t *testing.T) {
	e := newActor(t, "ExecCondition=/bin/exit1\nExecStart=/srv/app\n")
	st := e.awaitSub("dead")
	if st.State != api.StateInactive || !strings.Contains(st.LastExit, "condition not met") {
		t.Fatalf("%+v", st)
	}
	e.noProc()

	e = newActor(t, "ExecCondition=/bin/exit255\nExecStart=/srv/app\n")
	if st := e.awaitSub("failed"); st.Result != "exit-code" {
		t.Fatalf("%+v", st)
	}
	e.noProc()

	e = newActor(t, "ExecCondition=/bin/exit0\nExecStart=/srv/app\n")
	e.proc()
}

// RuntimeMaxSec= stops the service after that long: result timeout.
func TestRuntimeMaxSec(t *testing.T) {
	e := newActor(t, "ExecStart=/srv/app\nRuntimeMaxSec=20ms\n")
	p := e.proc()
	st := e.await("failed", func(st api.ServiceStatus) bool { return st.State == api.StateFailed })
	if st.Result != "timeout" || !slices.Equal(p.signals(), []string{"group TERM"}) {
		t.Fatalf("%+v %v", st, p.signals())
	}
}

// ReloadSignal= is what reload-app sends without ExecReload=.
func TestReloadSignal(t *testing.T) {
	e := newActor(t, notifyUnit+"ReloadSignal=SIGUSR1\n")
	p := e.proc()
	e.notify(p.pid, "READY=1")
	e.awaitSub("running")
	p.mu.Lock()
	p.ignore = map[syscall.Signal]bool{syscall.SIGUSR1: true}
	p.mu.Unlock()
	if r := e.wait(e.async(reqReloadApp, api.RestartOptions{})); r.err != nil {
		t.Fatal(r.err)
	}
	if got := p.signals(); !slices.Equal(got, []string{"SIGUSR1"}) && !slices.Equal(got, []string{"user defined signal 1"}) {
		t.Fatalf("signals %v", got)
	}
}

// Type=forking: the first process exits, the PID file names the main
// process, which is adopted; a restart is stop-then-start.
func TestForkingPIDFile(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "app.pid")
	e := newActor(t, "Type=forking\nExecStart=/srv/app\nPIDFile="+pidFile+"\n")
	starter := e.proc()
	if st := e.status(); st.SubState != "start" {
		t.Fatalf("before the first process exits: %+v", st)
	}
	os.WriteFile(pidFile, []byte("200000123\n"), 0o644)
	starter.exitWith(children.ExitStatus{})
	main := e.proc()
	st := e.awaitSub("running")
	if main.pid != 200000123 || st.MainPID != 200000123 || !slices.Equal(st.Pids, []int{200000123}) {
		t.Fatalf("%+v", st)
	}
	res := e.async(reqRestart, api.RestartOptions{Wait: true})
	next := e.proc()
	if len(main.signals()) == 0 {
		t.Fatal("the old daemon was not stopped before the new start")
	}
	os.WriteFile(pidFile, []byte("200000124\n"), 0o644)
	next.exitWith(children.ExitStatus{})
	e.proc()
	if r := e.wait(res); !r.result.OK {
		t.Fatalf("%+v", r.result)
	}
}

// Type=forking whose PID file is not a regular file fails the start
// with result protocol; one that never comes fails it when
// TimeoutStartSec= passes (result timeout); one written after the first
// process exited is waited for, as systemd does.
func TestForkingPIDFileProblems(t *testing.T) {
	dir := t.TempDir()
	os.Symlink("/etc/hostname", filepath.Join(dir, "link.pid"))
	e := newActor(t, "Type=forking\nExecStart=/srv/app\nPIDFile="+filepath.Join(dir, "link.pid")+"\n")
	e.proc().exitWith(children.ExitStatus{})
	st := e.await("failed", func(st api.ServiceStatus) bool { return st.State == api.StateFailed })
	if st.Result != "protocol" || !strings.Contains(st.LastExit, "PIDFile=") {
		t.Fatalf("link: %+v", st)
	}

	e = newActor(t, "Type=forking\nExecStart=/srv/app\nTimeoutStartSec=100ms\nPIDFile="+filepath.Join(dir, "never.pid")+"\n")
	e.proc().exitWith(children.ExitStatus{})
	st = e.await("failed", func(st api.ServiceStatus) bool { return st.State == api.StateFailed })
	if st.Result != "timeout" || !strings.Contains(st.LastExit, "not written within TimeoutStartSec=") {
		t.Fatalf("never: %+v", st)
	}

	late := filepath.Join(dir, "late.pid")
	e = newActor(t, "Type=forking\nExecStart=/srv/app\nPIDFile="+late+"\n")
	e.proc().exitWith(children.ExitStatus{})
	e.await("waiting", func(st api.ServiceStatus) bool { return st.SubState == "start" })
	os.WriteFile(late, []byte("200000777\n"), 0o644)
	if main := e.proc(); main.pid != 200000777 {
		t.Fatalf("adopted %d", main.pid)
	}
	e.awaitSub("running")
}

// Condition*= that does not hold skips the start; Assert*= fails it; a
// "|" condition needs one of its kind to hold.
func TestConditions(t *testing.T) {
	dir := t.TempDir()
	e := newActor(t, "ExecStart=/srv/app\n[Unit]\nConditionPathExists="+dir+"/missing\n")
	st := e.awaitSub("dead")
	if st.State != api.StateInactive || !strings.Contains(st.LastExit, "ConditionPathExists="+dir+"/missing") {
		t.Fatalf("%+v", st)
	}
	e.noProc()

	e = newActor(t, "ExecStart=/srv/app\n[Unit]\nAssertPathIsDirectory=/etc/hostname\n")
	if st := e.awaitSub("failed"); st.Result != "assert" {
		t.Fatalf("%+v", st)
	}
	e.noProc()

	e = newActor(t, "ExecStart=/srv/app\n[Unit]\nConditionPathExists=|"+dir+"/missing\nConditionPathIsDirectory=|"+dir+
		"\nConditionPathExists=!"+dir+"/missing\nConditionUser=root\nConditionEnvironment=PATH\n")
	e.proc()
}

func TestConditionKinds(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "full"), []byte("x"), 0o755)
	os.Symlink("full", filepath.Join(dir, "link"))
	host, _ := os.Hostname()
	for _, tc := range []struct {
		kind, value string
		want        bool
	}{
		{"PathExists", dir + "/full", true}, {"PathExists", dir + "/none", false},
		{"PathExistsGlob", dir + "/f*", true}, {"PathExistsGlob", dir + "/z*", false},
		{"PathIsDirectory", dir, true}, {"PathIsDirectory", dir + "/full", false},
		{"PathIsSymbolicLink", dir + "/link", true}, {"PathIsSymbolicLink", dir + "/full", false},
		{"FileNotEmpty", dir + "/full", true}, {"FileNotEmpty", dir + "/empty", false},
		{"DirectoryNotEmpty", dir, true}, {"FileIsExecutable", dir + "/full", true},
		{"FileIsExecutable", dir + "/empty", false}, {"PathIsMountPoint", "/", true},
		{"PathIsMountPoint", dir, false}, {"PathIsReadWrite", dir, true},
		{"User", "root", true}, {"User", "0", true}, {"User", "nobody", false}, {"User", "@system", true},
		{"Group", "root", true}, {"Group", "nogroup", false},
		{"Host", host, true}, {"Host", "no-such-host-*", false},
		{"Environment", "PATH", true}, {"Environment", "SOCKD_NO_SUCH_VAR", false},
		{"KernelCommandLine", "sockd.no.such.word", false},
	} {
		if got := evalCondition(tc.kind, tc.value); got != tc.want {
			t.Errorf("Condition%s=%s: %v, want %v", tc.kind, tc.value, got, tc.want)
		}
	}
}

// RuntimeDirectory= and StateDirectory= are made before the start and
// named in the environment of every process; the runtime one goes when
// the unit stops, the state one stays. DynamicUser= owns them.
func TestExecDirsWired(t *testing.T) {
	e := newActor(t, "ExecStart=/srv/app\nRuntimeDirectory=app\nStateDirectory=app\nDynamicUser=yes\nExecStop=/bin/true\n")
	p := e.proc()
	run := filepath.Join(e.u.roots.Runtime, "app")
	if !slices.Contains(p.env, "RUNTIME_DIRECTORY="+run) {
		t.Fatalf("env %v", p.env)
	}
	fi, err := os.Stat(run)
	if err != nil {
		t.Fatal(err)
	}
	uid := fi.Sys().(*syscall.Stat_t).Uid
	if uid < 61184 || uid > 65519 {
		t.Fatalf("%s owned by %d, want a dynamic uid", run, uid)
	}
	e.wait(e.async(reqStop, api.RestartOptions{}))
	if _, err := os.Stat(run); !os.IsNotExist(err) {
		t.Fatalf("RuntimeDirectory= after stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.u.roots.State, "app")); err != nil {
		t.Fatalf("StateDirectory= after stop: %v", err)
	}
}

// A missed watchdog: WatchdogSignal= (SIGABRT) without ExecStop=, and
// SIGKILL after TimeoutAbortSec=.
func TestWatchdogAbort(t *testing.T) {
	e := newActor(t, notifyUnit+"WatchdogSec=20ms\nTimeoutAbortSec=20ms\nExecStop=/bin/true\n")
	p := e.proc()
	p.mu.Lock()
	p.ignore = map[syscall.Signal]bool{syscall.SIGABRT: true}
	p.mu.Unlock()
	e.notify(p.pid, "READY=1")
	st := e.await("failed", func(st api.ServiceStatus) bool { return st.State == api.StateFailed })
	if st.Result != "watchdog" || !slices.Equal(p.signals(), []string{"group aborted", "group KILL"}) || len(e.k.helpers) != 0 {
		t.Fatalf("%+v, signals %v, helpers %v", st, p.signals(), e.k.helpers)
	}
}
