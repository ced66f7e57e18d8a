package units

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// symlink makes the link name (relative to dir) pointing at target.
func symlink(t *testing.T, dir, target, name string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// loadDir loads dir and returns the set and the diagnostics with paths
// relative to dir.
func loadDir(t *testing.T, dir string) (*Set, []string) {
	t.Helper()
	set, diags, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	checkWellFormed(t, diags)
	var out []string
	for _, d := range diags {
		out = append(out, strings.ReplaceAll(d.Error(), dir+"/", ""))
	}
	return set, out
}

// An instance of a socket template is a file of its own, a link to the
// template in the unit directory, or a name in sockets.target.wants;
// each activates its own instance of the template service.
func TestSocketTemplateInstances(t *testing.T) {
	dir := writeUnits(t, map[string]string{
		"app@.socket": "[Unit]\nDescription=socket %i\n[Socket]\nListenStream=/run/app/%i.sock\nSocketMode=0600\n" +
			"[Install]\nWantedBy=sockets.target\n",
		"app@.service": "[Service]\nExecStart=/bin/app --name %i\n",
		// A file of its own: not read from the template.
		"app@file.socket": "[Socket]\nListenStream=/run/own-%i.sock\n",
	})
	symlink(t, dir, "app@.socket", "app@link.socket")
	// What systemctl enable makes: the target need not exist, only the
	// name counts.
	symlink(t, dir, "/lib/systemd/system/app@.socket", "sockets.target.wants/app@wants.socket")
	// Enabled and present in the directory: the directory's file wins.
	symlink(t, dir, "../app@.socket", "sockets.target.wants/app@file.socket")
	set, diags := loadDir(t, dir)
	if len(diags) != 0 {
		t.Fatalf("diagnostics %q", diags)
	}
	if got := keys(set.Sockets); !equalStrings(got, []string{"app@file.socket", "app@link.socket", "app@wants.socket"}) {
		t.Fatalf("sockets %q", got)
	}
	if got := keys(set.Services); !equalStrings(got, []string{"app@.service", "app@file.service", "app@link.service", "app@wants.service"}) {
		t.Fatalf("services %q", got)
	}
	tpl := filepath.Join(dir, "app@.socket")
	for _, tc := range []struct {
		inst, file, listen string
		mode               os.FileMode
	}{
		{"file", filepath.Join(dir, "app@file.socket"), "/run/own-file.sock", 0o666},
		{"link", tpl, "/run/app/link.sock", 0o600},
		{"wants", tpl, "/run/app/wants.sock", 0o600},
	} {
		name := "app@" + tc.inst + ".socket"
		s := set.Sockets[name]
		if s.Name != name || s.Instance != tc.inst || s.File != tc.file || s.Service != "app@"+tc.inst+".service" {
			t.Errorf("%s: name %q instance %q file %q service %q", name, s.Name, s.Instance, s.File, s.Service)
		}
		if len(s.Listens) != 1 || s.Listens[0].Address != tc.listen || s.Listens[0].File != tc.file || s.SocketMode != tc.mode {
			t.Errorf("%s: listens %+v mode %v", name, s.Listens, s.SocketMode)
		}
		if s.FDName() != "app@"+tc.inst+".socket" {
			t.Errorf("%s: FDName %q", name, s.FDName())
		}
		svcName := "app@" + tc.inst + ".service"
		if got := set.SocketsFor(svcName); len(got) != 1 || got[0] != s {
			t.Errorf("SocketsFor(%s) = %v", svcName, got)
		}
		svc := set.Services[svcName]
		if svc.Template || svc.Instance != tc.inst || !equalStrings(svc.ExecStart[0].Argv, []string{"/bin/app", "--name", tc.inst}) {
			t.Errorf("%s = %+v", svcName, svc)
		}
	}
	if s := set.Sockets["app@link.socket"]; s.Description != "socket %i" {
		t.Errorf("Description = %q (kept raw, as for services)", s.Description)
	}
	if got := set.SocketsFor("app@.service"); len(got) != 0 {
		t.Errorf("SocketsFor(app@.service) = %v: a template socket is no socket to open", got)
	}
}

// Every specifier expands in an instance's options; a template
// instance's own drop-ins apply.
func TestSocketTemplateSpecifiers(t *testing.T) {
	dir := writeUnits(t, map[string]string{
		"web-api@.socket": "[Socket]\nListenStream=/run/%p/%I/socket\nListenStream=@%N\n" +
			"FileDescriptorName=%i\nSymlinks=/run/links/%n\nSocketUser=u%i\nService=worker-%j@%i.service\n",
		"web-api@.socket.d/10-mode.conf": "[Socket]\nSocketMode=0640\nDirectoryMode=0700\n",
		"web-api@a-b.socket.d/20-x.conf": "[Socket]\nBacklog=7\n",
		"worker-api@.service":            "[Service]\nExecStart=/bin/w %i %I %f %y\n",
		"plain.socket":                   "[Socket]\nListenStream=/run/plain.sock\nService=worker-api@%%i.service\n",
	})
	symlink(t, dir, "web-api@.socket", "web-api@a-b.socket")
	set, diags := loadDir(t, dir)
	want := []string{`plain.socket:3: Service: unit name "worker-api@%i.service": invalid character '%'`}
	if !equalStrings(diags, want) {
		t.Fatalf("diagnostics %q, want %q", diags, want)
	}
	s := set.Sockets["web-api@a-b.socket"]
	if s == nil {
		t.Fatal("web-api@a-b.socket not loaded")
	}
	if len(s.Listens) != 2 || s.Listens[0].Address != "/run/web-api/a/b/socket" || s.Listens[1].Address != "@web-api@a-b" {
		t.Errorf("listens %+v", s.Listens)
	}
	if s.FDName() != "a-b" || !equalStrings(s.Symlinks, []string{"/run/links/web-api@a-b.socket"}) || s.SocketUser != "ua-b" {
		t.Errorf("fdname %q symlinks %q user %q", s.FDName(), s.Symlinks, s.SocketUser)
	}
	if s.SocketMode != 0o640 || s.DirectoryMode != 0o700 || s.Backlog != 7 || len(s.DropIns) != 2 {
		t.Errorf("drop-ins %q: mode %v dirmode %v backlog %d", s.DropIns, s.SocketMode, s.DirectoryMode, s.Backlog)
	}
	if s.Service != "worker-api@a-b.service" {
		t.Fatalf("Service = %q", s.Service)
	}
	svc := set.Services["worker-api@a-b.service"]
	if svc == nil {
		t.Fatal("worker-api@a-b.service not instantiated")
	}
	if want := []string{"/bin/w", "a-b", "a/b", "/a/b", filepath.Join(dir, "worker-api@.service")}; !equalStrings(svc.ExecStart[0].Argv, want) {
		t.Errorf("argv %q, want %q", svc.ExecStart[0].Argv, want)
	}
}

// An instance service file of its own replaces the template service for
// that instance; the instance's drop-ins apply to an instantiated one.
func TestSocketTemplateServiceOverride(t *testing.T) {
	dir := writeUnits(t, map[string]string{
		"app@.socket":                      "[Socket]\nListenStream=/run/app/%i.sock\n",
		"app@.service":                     "[Service]\nExecStart=/bin/app %i\nEnvironment=A=template\n",
		"app@.service.d/10-env.conf":       "[Service]\nEnvironment=B=template\n",
		"app@.service.d/20-env.conf":       "[Service]\nEnvironment=C=template\n",
		"app@own.service":                  "[Service]\nExecStart=/bin/own %i\n",
		"app@dropin.service.d/20-env.conf": "[Service]\nEnvironment=C=instance-%i\n",
		"app@dropin.service.d/30-env.conf": "[Service]\nEnvironment=D=instance\nProtectClock=yes\n",
	})
	for _, i := range []string{"own", "plain", "dropin"} {
		symlink(t, dir, "../app@.socket", "sockets.target.wants/app@"+i+".socket")
	}
	set, diags := loadDir(t, dir)
	want := []string{"app@dropin.service.d/30-env.conf:3: warning: ProtectClock: not supported by sockd, ignored"}
	if !equalStrings(diags, want) {
		t.Fatalf("diagnostics %q, want %q", diags, want)
	}
	own := set.Services["app@own.service"]
	if own == nil || own.File != filepath.Join(dir, "app@own.service") || !equalStrings(own.ExecStart[0].Argv, []string{"/bin/own", "own"}) {
		t.Errorf("app@own.service = %+v", own)
	}
	if got := set.Services["app@plain.service"].Environment; !equalStrings(got, []string{"A=template", "B=template", "C=template"}) {
		t.Errorf("app@plain.service environment %q", got)
	}
	d := set.Services["app@dropin.service"]
	if !equalStrings(d.Environment, []string{"A=template", "B=template", "C=instance-dropin", "D=instance"}) {
		t.Errorf("app@dropin.service environment %q", d.Environment)
	}
	var names []string
	for _, f := range d.DropIns {
		names = append(names, filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f))
	}
	if want := []string{"app@.service.d/10-env.conf", "app@dropin.service.d/20-env.conf", "app@dropin.service.d/30-env.conf"}; !equalStrings(names, want) {
		t.Errorf("DropIns %q, want %q", names, want)
	}
	if d.File != filepath.Join(dir, "app@.service") || !equalStrings(d.ExecStart[0].Argv, []string{"/bin/app", "dropin"}) {
		t.Errorf("app@dropin.service = %+v", d)
	}
}

// Problems of instances name the template's file and line, once; an
// instance without its template is an error naming where it is asked
// for.
func TestSocketTemplateDiagnostics(t *testing.T) {
	dir := writeUnits(t, map[string]string{
		"app@.socket":  "[Socket]\nListenStream=127.0.0.1:%i\nPassSecurity=yes\n",
		"app@.service": okService,
	})
	symlink(t, dir, "app@.socket", "app@8080.socket")
	symlink(t, dir, "app@.socket", "app@http.socket")
	symlink(t, dir, "app@.socket", "app@https.socket")
	symlink(t, dir, "nope@.socket", "nope@x.socket")
	symlink(t, dir, "/lib/systemd/system/gone@.socket", "sockets.target.wants/gone@x.socket")
	symlink(t, dir, "/lib/systemd/system/other.socket", "sockets.target.wants/other.socket")
	set, diags := loadDir(t, dir)
	want := []string{
		`app@.socket:2: ListenStream: invalid address "127.0.0.1:http": invalid port or address "http"`,
		`app@.socket:2: ListenStream: invalid address "127.0.0.1:https": invalid port or address "https"`,
		`app@.socket:3: warning: PassSecurity: not supported by sockd, ignored`,
		`nope@x.socket:1: cannot read unit: no such file or directory`,
		`sockets.target.wants/gone@x.socket:1: template gone@.socket not found in the unit directory`,
		`sockets.target.wants/other.socket:1: warning: ignored: sockd reads only instances of socket templates (NAME@INSTANCE.socket) from sockets.target.wants, and other.socket is not in the unit directory`,
	}
	if !equalStrings(diags, want) {
		t.Errorf("diagnostics:\n got %q\nwant %q", diags, want)
	}
	if got := keys(set.Sockets); !equalStrings(got, []string{"app@8080.socket"}) {
		t.Errorf("sockets %q", got)
	}
	if got := keys(set.Services); !equalStrings(got, []string{"app@.service", "app@8080.service"}) {
		t.Errorf("services %q", got)
	}
	if a := set.Sockets["app@8080.socket"].Listens[0].Address; a != "127.0.0.1:8080" {
		t.Errorf("address %q", a)
	}

	// A template line that fails in every instance is reported per
	// instance by LoadDir (each is left out), once by Verify.
	dir = writeUnits(t, map[string]string{
		"app@.socket":  "[Socket]\nListenStream=/run/%i.sock\nBacklog=lots\n",
		"app@.service": okService,
	})
	symlink(t, dir, "app@.socket", "app@a.socket")
	symlink(t, dir, "app@.socket", "app@b.socket")
	_, diags = loadDir(t, dir)
	if want := []string{`app@.socket:3: Backlog: invalid number "lots"`, `app@.socket:3: Backlog: invalid number "lots"`}; !equalStrings(diags, want) {
		t.Errorf("LoadDir diagnostics %q, want %q", diags, want)
	}
	ds, err := Verify(dir)
	if err != nil || len(ds) != 1 || ds[0].Unit != "app@a.socket" {
		t.Errorf("Verify = %v, %v; want one diagnostic", ds, err)
	}

	// An instance service that cannot be made fails the instance socket.
	_, diags = load(t, map[string]string{
		"app@.socket":       "[Socket]\nListenStream=/run/%i.sock\n",
		"app@.service":      okService + "User=%I\n",
		`app@a\x3ab.socket`: "[Socket]\nListenStream=/run/u.sock\n",
	})
	want = []string{`app@.service:3: User: invalid user or group name "a:b"`, `app@a\x3ab.socket:1: service app@a\x3ab.service has errors`}
	if !equalStrings(diags, want) {
		t.Errorf("diagnostics %q, want %q", diags, want)
	}
}

// A template no instance is read from is checked on its own, as
// systemd-analyze verify checks it: the options that use the instance
// are left to the instances.
func TestSocketTemplateAlone(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"ok", map[string]string{
			"app@.socket":  "[Socket]\nListenStream=%i\nListenDatagram=/run/%I.sock\nSymlinks=/run/x\nService=w@%i.service\n",
			"app@.service": okService,
		}, nil},
		{"literal percent", map[string]string{
			"app@.socket":  "[Socket]\nListenStream=%%i\n",
			"app@.service": okService,
		}, []string{`app@.socket:2: ListenStream: invalid port or address "%i"`}},
		{"errors", map[string]string{
			"app@.socket":  "[Socket]\nListenStream=/run/%i.sock\nListenStrem=1\nAccept=maybe\n",
			"app@.service": okService,
		}, []string{`app@.socket:3: ListenStrem: unknown option; did you mean ListenStream?`,
			`app@.socket:4: Accept: invalid boolean "maybe" (want yes/no, true/false, on/off, 1/0)`}},
		{"no listen", map[string]string{"app@.socket": "[Socket]\nBacklog=1\n", "app@.service": okService},
			[]string{`app@.socket:1: no ListenStream=, ListenDatagram=, ListenSequentialPacket= or ListenFIFO=`}},
		{"no service", map[string]string{"app@.socket": "[Socket]\nListenStream=/run/%i.sock\n", "app.service": okService},
			[]string{`app@.socket:1: service app@.service not found`}},
		{"accept without template", map[string]string{"app@.socket": "[Socket]\nListenStream=%i\nAccept=yes\n", "app.service": okService},
			[]string{`app@.socket:3: Accept: service app@.service not found`}},
		{"accept and service", map[string]string{"app@.socket": "[Socket]\nListenStream=%i\nAccept=yes\nService=x@%i.service\n", "app@.service": okService},
			[]string{`app@.socket:4: Service: not allowed with Accept=yes`}},
		{"masked", map[string]string{"app@.socket": "", "app@.service": okService},
			[]string{`app@.socket:1: unit is masked (an empty file)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, diags := load(t, tc.files)
			if !equalStrings(diags, tc.want) {
				t.Errorf("diagnostics:\n got %q\nwant %q", diags, tc.want)
			}
			if len(set.Sockets) != 0 {
				t.Errorf("sockets %q: a template is no socket", keys(set.Sockets))
			}
		})
	}
}

// An Accept=yes instance socket echo@x.socket spawns instances of
// echo@.service per connection, as in systemd (the socket's prefix
// names the template); sockd runs one Accept=yes socket per template.
func TestSocketTemplateAccept(t *testing.T) {
	dir := writeUnits(t, map[string]string{
		"echo@.socket":  "[Socket]\nListenStream=/run/echo-%i.sock\nAccept=yes\n",
		"echo@.service": "[Service]\nExecStart=/bin/echo %i\nStandardInput=socket\n",
	})
	symlink(t, dir, "echo@.socket", "echo@x.socket")
	set, diags := loadDir(t, dir)
	if len(diags) != 0 {
		t.Fatalf("diagnostics %q", diags)
	}
	s := set.Sockets["echo@x.socket"]
	if s == nil || !s.Accept || s.Service != "echo@.service" || s.Listens[0].Address != "/run/echo-x.sock" || s.TriggerLimitBurst != 200 {
		t.Fatalf("echo@x.socket = %+v", s)
	}
	if got := set.SocketsFor("echo@.service"); len(got) != 1 || got[0] != s {
		t.Errorf("SocketsFor(echo@.service) = %v", got)
	}
	if got := keys(set.Services); !equalStrings(got, []string{"echo@.service"}) {
		t.Errorf("services %q", got)
	}

	symlink(t, dir, "echo@.socket", "echo@y.socket")
	set, diags = loadDir(t, dir)
	want := []string{`echo@.socket:3: Accept: echo@x.socket already activates echo@.service: sockd runs one Accept=yes socket per template service`}
	if !equalStrings(diags, want) {
		t.Errorf("diagnostics %q, want %q", diags, want)
	}
	if got := keys(set.Sockets); !equalStrings(got, []string{"echo@x.socket"}) {
		t.Errorf("sockets %q", got)
	}
}

// The pair Debian 12's uwsgi-core ships (/lib/systemd/system,
// 2.0.21-5.1), enabled as its README.Debian says.
func TestSocketTemplateUWSGI(t *testing.T) {
	dir := writeUnits(t, map[string]string{
		"uwsgi-app@.socket": "[Unit]\nDescription=Socket for uWSGI app %i\n\n[Socket]\nListenStream=/var/run/uwsgi/%i.socket\n" +
			"SocketUser=www-data\nSocketMode=0600\n\n[Install]\nWantedBy=sockets.target\n",
		"uwsgi-app@.service": "[Unit]\nDescription=%i uWSGI app\n\n[Service]\nExecStart=/usr/bin/uwsgi --ini /etc/uwsgi/apps-available/%i.ini\n" +
			"User=www-%i\nGroup=www-data\nDynamicUser=yes\nStateDirectory=uwsgi/%i\nKillSignal=SIGQUIT\nType=notify\n",
		"uwsgi-app@nextcloud.service.d/override.conf": "[Service]\nReadWritePaths=/srv/nextcloud/data\n",
	})
	symlink(t, dir, "/lib/systemd/system/uwsgi-app@.socket", "sockets.target.wants/uwsgi-app@cgit.socket")
	symlink(t, dir, "/lib/systemd/system/uwsgi-app@.socket", "sockets.target.wants/uwsgi-app@nextcloud.socket")
	set, diags := loadDir(t, dir)
	if len(diags) != 0 {
		t.Fatalf("diagnostics %q", diags)
	}
	s := set.Sockets["uwsgi-app@cgit.socket"]
	if s == nil || s.Listens[0].Address != "/var/run/uwsgi/cgit.socket" || s.SocketUser != "www-data" || s.SocketMode != 0o600 {
		t.Fatalf("uwsgi-app@cgit.socket = %+v", s)
	}
	svc := set.Services["uwsgi-app@cgit.service"]
	if svc == nil || svc.User != "www-cgit" || !svc.DynamicUser || svc.Type != TypeNotify ||
		!equalStrings(svc.ExecDirs.State.Paths, []string{"uwsgi/cgit"}) || svc.ExecStart[0].Argv[2] != "/etc/uwsgi/apps-available/cgit.ini" {
		t.Errorf("uwsgi-app@cgit.service = %+v", svc)
	}
	// The instance's drop-in applies to that instance only.
	if nc := set.Services["uwsgi-app@nextcloud.service"]; nc == nil || fmt.Sprint(nc.Sandbox.ReadWritePaths) != "[{/srv/nextcloud/data false}]" ||
		svc.Sandbox.ReadWritePaths != nil {
		t.Errorf("ReadWritePaths: uwsgi-app@nextcloud.service %+v, uwsgi-app@cgit.service %+v", nc, svc.Sandbox.ReadWritePaths)
	}
	if got := set.SocketsFor("uwsgi-app@nextcloud.service"); len(got) != 1 || got[0].Name != "uwsgi-app@nextcloud.socket" {
		t.Errorf("SocketsFor(uwsgi-app@nextcloud.service) = %v", got)
	}
}

// sockd verify FILE of an instance link, or of a template, loads the
// template service beside it.
func TestSocketTemplateLoadFiles(t *testing.T) {
	dir := writeUnits(t, map[string]string{
		"app@.socket":  "[Socket]\nListenStream=/run/%i.sock\n",
		"app@.service": okService,
	})
	symlink(t, dir, "app@.socket", "app@x.socket")
	set, diags, err := LoadFiles(filepath.Join(dir, "app@x.socket"))
	if err != nil || len(diags) != 0 {
		t.Fatalf("LoadFiles: %v %v", diags, err)
	}
	if set.Sockets["app@x.socket"] == nil || set.Services["app@x.service"] == nil {
		t.Errorf("set %q %q", keys(set.Sockets), keys(set.Services))
	}
	ds, err := Verify(filepath.Join(dir, "app@.socket"))
	if err != nil || len(ds) != 0 {
		t.Errorf("Verify(template) = %v, %v", ds, err)
	}
	os.Remove(filepath.Join(dir, "app@.service"))
	ds, err = Verify(filepath.Join(dir, "app@.socket"))
	if err != nil || len(ds) != 1 || !strings.HasSuffix(ds[0].Error(), "app@.socket:1: service app@.service not found") {
		t.Errorf("Verify(template without service) = %v, %v", ds, err)
	}
}
