package units

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestSocketValues(t *testing.T) {
	set, diags := load(t, map[string]string{
		"app.service": okService,
		"app.socket": `[Unit]
Description=App sockets
[Socket]
ListenStream=8080
ListenStream=127.0.0.1:9090
ListenStream=[::1]:9091
ListenStream=[::ffff:127.0.0.1]:9092
ListenDatagram=53
ListenStream=/run/app/app.sock
ListenDatagram=@app-abstract
ListenSequentialPacket=/run/app/seq.sock
ListenFIFO=/run/app/fifo
Backlog=128
BindIPv6Only=ipv6-only
ReusePort=yes
NoDelay=on
KeepAlive=true
KeepAliveTimeSec=1min 30s
KeepAliveIntervalSec=5
KeepAliveProbes=3
FreeBind=1
Transparent=y
Broadcast=yes
PassCredentials=yes
ReceiveBuffer=4K
SendBuffer=1.5M
BindToDevice=lo
SocketMode=0600
DirectoryMode=2750
SocketUser=app
SocketGroup=1000
RemoveOnStop=yes
NonBlocking=yes
MaxConnections=10
MaxConnectionsPerSource=2
TriggerLimitIntervalSec=5s
TriggerLimitBurst=7
FileDescriptorName=%p-fd
Mark=4242
Priority=6
IPTOS=low-delay
IPTTL=12
TCPCongestion=cubic
DeferAcceptSec=1min
PipeSize=256K
`,
	})
	if len(diags) != 0 {
		t.Fatalf("diagnostics: %q", diags)
	}
	s := set.Sockets["app.socket"]
	if s == nil {
		t.Fatal("app.socket not loaded")
	}
	var got []string
	for _, l := range s.Listens {
		got = append(got, l.Kind.String()+" "+l.Network+" "+l.Address)
	}
	want := []string{
		"Stream tcp6 [::]:8080", "Stream tcp 127.0.0.1:9090", "Stream tcp [::1]:9091",
		"Stream tcp 127.0.0.1:9092", "Datagram udp6 [::]:53", "Stream unix /run/app/app.sock",
		"Datagram unixgram @app-abstract", "SequentialPacket unixpacket /run/app/seq.sock",
		"FIFO fifo /run/app/fifo",
	}
	if !equalStrings(got, want) {
		t.Errorf("listens:\n got %q\nwant %q", got, want)
	}
	if s.Listens[0].Line != 4 || !strings.HasSuffix(s.Listens[0].File, "app.socket") {
		t.Errorf("listen line/file = %d %s", s.Listens[0].Line, s.Listens[0].File)
	}
	wantS := *s
	wantS.Listens = s.Listens
	wantS.Description = "App sockets"
	wantS.Service = "app.service"
	wantS.Backlog, wantS.BindIPv6Only, wantS.ReusePort, wantS.NoDelay, wantS.KeepAlive = 128, "ipv6-only", true, true, true
	wantS.KeepAliveTime, wantS.KeepAliveInterval, wantS.KeepAliveProbes = 90*time.Second, 5*time.Second, 3
	wantS.FreeBind, wantS.Transparent, wantS.Broadcast, wantS.PassCredentials = true, true, true, true
	wantS.ReceiveBuffer, wantS.SendBuffer, wantS.BindToDevice = 4096, 1572864, "lo"
	wantS.SocketMode, wantS.DirectoryMode = 0o600, os.ModeSetgid|0o750
	wantS.SocketUser, wantS.SocketGroup, wantS.RemoveOnStop, wantS.NonBlocking = "app", "1000", true, true
	wantS.MaxConnections, wantS.MaxConnectionsPerSource = 10, 2
	wantS.TriggerLimitInterval, wantS.TriggerLimitBurst = 5*time.Second, 7
	wantS.FileDescriptorName = "app-fd"
	wantS.Mark, wantS.Priority, wantS.IPTOS, wantS.IPTTL = 4242, 6, 0x10, 12
	wantS.TCPCongestion, wantS.DeferAccept, wantS.PipeSize = "cubic", time.Minute, 256<<10
	if !reflect.DeepEqual(*s, wantS) {
		t.Errorf("socket:\n got %+v\nwant %+v", *s, wantS)
	}
	if s.FDName() != "app-fd" {
		t.Errorf("FDName = %q", s.FDName())
	}
}

func TestSocketDefaults(t *testing.T) {
	set, diags := load(t, map[string]string{"app.service": okService, "app.socket": "[Socket]\nListenStream=80\n"})
	if len(diags) != 0 {
		t.Fatal(diags)
	}
	s := set.Sockets["app.socket"]
	want := &Socket{Name: "app.socket", File: s.File, Service: "app.service",
		Listens: []Listen{{Kind: Stream, Network: "tcp", Address: "[::]:80", Line: 2, File: s.File}},
		Backlog: 4096, BindIPv6Only: "default", SocketMode: 0o666, DirectoryMode: 0o755,
		MaxConnections: 64, TriggerLimitInterval: 2 * time.Second, TriggerLimitBurst: 20}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("socket:\n got %+v\nwant %+v", s, want)
	}
	if s.FDName() != "app.socket" { // systemd's default: the unit's id
		t.Errorf("FDName = %q", s.FDName())
	}
}

func TestServiceValues(t *testing.T) {
	set, diags := load(t, map[string]string{
		"app.service": `[Unit]
Description=The app
StartLimitIntervalSec=1min
StartLimitBurst=3
[Service]
Type=notify
ExecStartPre=-/bin/mkdir -p /run/app
ExecStart=@/usr/bin/app app-argv0 --flag "two words" 'single \"q\"' a\sb \
  # a comment inside the continuation
  --last
ExecStartPost=:/bin/echo $MAINPID
ExecStop=/bin/kill -TERM $MAINPID
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-abnormal
RestartSec=500ms
TimeoutStartSec=0
TimeoutStopSec=1min 30s
KillSignal=INT
KillMode=mixed
SendSIGKILL=no
SuccessExitStatus=1 TEMPFAIL SIGKILL HUP
Environment="A=b c" D=e
Environment=F=%n
EnvironmentFile=-/etc/default/app
EnvironmentFile=/etc/app.env
UnsetEnvironment=X Y=1
PassEnvironment=PATH LANG
WorkingDirectory=~
User=app
Group=app
SupplementaryGroups=adm wheel
UMask=0027
Nice=-5
LimitNOFILE=1024:4096
LimitCORE=infinity
LimitAS=1G
LimitCPU=1min
LimitNICE=-10
StandardOutput=append:/var/log/app.log
StandardError=null
NotifyAccess=all
WatchdogSec=30
X-Instances=3
X-ReadyAfterSec=2s
X-IdleTimeoutSec=5min
X-Other=ignored
`,
	})
	if len(diags) != 0 {
		t.Fatalf("diagnostics: %q", diags)
	}
	s := set.Services["app.service"]
	f := s.File
	want := &Service{Name: "app.service", File: f, Description: "The app",
		Type:          TypeNotify,
		ExecStartPre:  []Command{{Path: "/bin/mkdir", Argv: []string{"/bin/mkdir", "-p", "/run/app"}, IgnoreFailure: true, Line: 7, File: f}},
		ExecStart:     []Command{{Path: "/usr/bin/app", Argv: []string{"app-argv0", "--flag", "two words", `single "q"`, "a b", "--last"}, Line: 8, File: f}},
		ExecStartPost: []Command{{Path: "/bin/echo", Argv: []string{"/bin/echo", "$MAINPID"}, NoEnvExpand: true, Line: 11, File: f}},
		ExecStop:      []Command{{Path: "/bin/kill", Argv: []string{"/bin/kill", "-TERM", "$MAINPID"}, Line: 12, File: f}},
		ExecReload:    []Command{{Path: "/bin/kill", Argv: []string{"/bin/kill", "-HUP", "$MAINPID"}, Line: 13, File: f}},
		Restart:       RestartOnAbnormal, RestartSec: 500 * time.Millisecond,
		StartLimitInterval: time.Minute, StartLimitBurst: 3,
		TimeoutStartSec: Infinity, TimeoutStopSec: 90 * time.Second,
		KillSignal: syscall.SIGINT, KillMode: KillMixed, SendSIGKILL: false,
		SuccessExitStatus: []int{1, 75}, SuccessSignals: []syscall.Signal{syscall.SIGKILL, syscall.SIGHUP},
		Environment:      []string{"A=b c", "D=e", "F=app.service"},
		EnvironmentFiles: []EnvironmentFile{{Path: "/etc/default/app", Optional: true}, {Path: "/etc/app.env"}},
		UnsetEnvironment: []string{"X", "Y=1"}, PassEnvironment: []string{"PATH", "LANG"},
		WorkingDirectory: "~", User: "app", Group: "app", SupplementaryGroups: []string{"adm", "wheel"},
		UMask: 0o027, Nice: -5, HasNice: true,
		Limits: []Rlimit{
			{Resource: unix.RLIMIT_NOFILE, Soft: 1024, Hard: 4096},
			{Resource: unix.RLIMIT_CORE, Soft: unix.RLIM_INFINITY, Hard: unix.RLIM_INFINITY},
			{Resource: unix.RLIMIT_AS, Soft: 1 << 30, Hard: 1 << 30},
			{Resource: unix.RLIMIT_CPU, Soft: 60, Hard: 60},
			{Resource: unix.RLIMIT_NICE, Soft: 30, Hard: 30},
		},
		StandardOutput: Output{Kind: "append", Path: "/var/log/app.log"}, StandardError: Output{Kind: "null"},
		NotifyAccess: NotifyAll, WatchdogSec: 30 * time.Second, Instances: 3, ReadyAfter: 2 * time.Second, IdleTimeout: 5 * time.Minute, GuessMainPID: true, ReloadSignal: syscall.SIGHUP, WatchdogSignal: syscall.SIGABRT,
		ExecDirs: defaultExecDirs,
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("service:\n got %+v\nwant %+v", s, want)
	}
}

func TestServiceDefaults(t *testing.T) {
	set, _ := load(t, map[string]string{
		"app.service": okService,
		"n.service":   "[Service]\nType=notify\nExecStart=/bin/true\n",
		"o.service":   "[Service]\nExecStop=/bin/true\n",
		"i.service":   "[Service]\nType=idle\nExecStart=/bin/true\n",
		"r.service":   "[Service]\nType=notify-reload\nExecStart=/bin/true\n",
	})
	s := set.Services["app.service"]
	want := &Service{Name: "app.service", File: s.File, Type: TypeSimple,
		ExecStart: []Command{{Path: "/bin/true", Argv: []string{"/bin/true"}, Line: 2, File: s.File}},
		Restart:   RestartNo, RestartSec: 100 * time.Millisecond, StartLimitInterval: 10 * time.Second, StartLimitBurst: 5,
		TimeoutStartSec: 90 * time.Second, TimeoutStopSec: 10 * time.Second, KillSignal: syscall.SIGTERM,
		KillMode: KillControlGroup, SendSIGKILL: true, UMask: 0o022,
		StandardOutput: Output{Kind: "journal"}, StandardError: Output{Kind: "inherit"},
		NotifyAccess: NotifyNone, Instances: 1, GuessMainPID: true, ReloadSignal: syscall.SIGHUP, WatchdogSignal: syscall.SIGABRT, ExecDirs: defaultExecDirs}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("service:\n got %+v\nwant %+v", s, want)
	}
	if n := set.Services["n.service"]; n.NotifyAccess != NotifyMain {
		t.Errorf("notify NotifyAccess = %q", n.NotifyAccess)
	}
	if o := set.Services["o.service"]; o == nil || o.Type != TypeOneshot {
		t.Errorf("service without ExecStart: %+v, want Type=oneshot", o)
	}
	if i := set.Services["i.service"]; i == nil || i.Type != TypeSimple {
		t.Errorf("Type=idle: %+v, want Type=simple", i)
	}
	if r := set.Services["r.service"]; r == nil || r.Type != TypeNotify || r.NotifyAccess != NotifyMain {
		t.Errorf("Type=notify-reload: %+v, want Type=notify, NotifyAccess=main", r)
	}
}

func TestTimespan(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"5", 5 * time.Second, false}, {"500ms", 500 * time.Millisecond, false},
		{"1min 30s", 90 * time.Second, false}, {"1min30s", 90 * time.Second, false},
		{"2h", 2 * time.Hour, false}, {"1.5s", 1500 * time.Millisecond, false},
		{"10us", 10 * time.Microsecond, false}, {"1d", 24 * time.Hour, false},
		{"1w", 7 * 24 * time.Hour, false}, {"5 min", 5 * time.Minute, false},
		{"3 seconds", 3 * time.Second, false}, {"1h 2m 3s", time.Hour + 2*time.Minute + 3*time.Second, false},
		{"infinity", Infinity, false}, {"", 0, true}, {"-1", 0, true}, {"5 parsecs", 0, true},
		{"s", 0, true}, {"1e3", 0, true}, {"99999999999999999999", 0, true},
	}
	for _, tc := range tests {
		got, err := parseTimespan(tc.in, time.Second)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseTimespan(%q) = %v, %v; want %v, err %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParseSignal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want syscall.Signal // 0: an error
	}{
		{"SIGTERM", syscall.SIGTERM}, {"TERM", syscall.SIGTERM}, {"term", syscall.SIGTERM},
		{"15", syscall.SIGTERM}, {"9", syscall.SIGKILL}, {"SIGHUP", syscall.SIGHUP},
		{"SIGRTMIN", 34}, {"SIGRTMIN+0", 34}, {"RTMIN+2", 36}, {"SIGRTMIN+30", 64},
		{"SIGRTMAX", 64}, {"SIGRTMAX-1", 63}, {"SIGRTMAX-30", 34}, {"64", 64},
		{"0", 0}, {"65", 0}, {"-1", 0}, {"SIGRTMIN+31", 0}, {"SIGRTMAX-31", 0},
		{"SIGFOO", 0}, {"", 0},
	} {
		got, err := parseSignal(tc.in)
		if got != tc.want || (err != nil) != (tc.want == 0) {
			t.Errorf("parseSignal(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestSplitWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{`a b  c`, []string{"a", "b", "c"}, false},
		{`"a b" 'c d'`, []string{"a b", "c d"}, false},
		{`a"b c"d`, []string{"ab cd"}, false},
		{`"" x`, []string{"", "x"}, false},
		{`\x41\101\u00e9\t\s\\`, []string{"AAé\t \\"}, false},
		{`"it's"`, []string{"it's"}, false},
		{`'say "hi"'`, []string{`say "hi"`}, false},
		{`\;`, nil, true}, {`\$`, nil, true}, {`a\ b`, nil, true}, {`\400`, nil, true}, {`\777`, nil, true},
		{`\101\x41`, []string{"AA"}, false}, {"a\tb\r\nc", []string{"a", "b", "c"}, false},
		{`"open`, nil, true}, {`a\`, nil, true}, {`\x4`, nil, true}, {`\q`, nil, true}, {`\x00`, nil, true},
	}
	for _, tc := range tests {
		got, err := splitWords(tc.in)
		if (err != nil) != tc.err || !equalStrings(got, tc.want) {
			t.Errorf("splitWords(%q) = %q, %v; want %q, err %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestLexer(t *testing.T) {
	in := "\xef\xbb\xbf# comment\n; other comment\n[Service]\r\n  ExecStart = /bin/a \\\n  # inside\n ; inside too\n   b \\\\\nEnvironment=X=1\\\n\n[X-Foo]\nK=\\\n"
	opts, diags := lex("f", "u", []byte(in))
	if len(diags) != 0 {
		t.Fatal(diags)
	}
	var got []string
	for _, o := range opts {
		got = append(got, o.Section+"|"+o.Name+"|"+o.Value+"|"+strconv.Itoa(o.Line))
	}
	want := []string{"Service|||3", `Service|ExecStart|/bin/a     b \\|4`, "Service|Environment|X=1|8", "X-Foo|||10", "X-Foo|K||11"}
	if !equalStrings(got, want) {
		t.Errorf("lex:\n got %q\nwant %q", got, want)
	}
}

func TestEditDistanceSuggest(t *testing.T) {
	if s := suggest("ListenStrem", socketKnown()); s != "ListenStream" {
		t.Errorf("suggest = %q", s)
	}
	if s := suggest("RestartSecs", serviceKnown()); s != "RestartSec" {
		t.Errorf("suggest = %q", s)
	}
	if s := suggest("Zzz", serviceKnown()); s != "" {
		t.Errorf("suggest = %q, want none", s)
	}
}

func TestDropIns(t *testing.T) {
	set, diags := load(t, map[string]string{
		"app.socket":                "[Socket]\nListenStream=80\nBacklog=10\n",
		"app.socket.d/10-more.conf": "[Socket]\nListenStream=81\n",
		"app.socket.d/20-reset.conf": "[Socket]\n# replace all listens\nListenStream=\nListenStream=/run/app.sock\n" +
			"Backlog=20\n",
		"app.socket.d/05-first.conf": "[Socket]\nBacklog=5\nNoDelay=yes\n",
		"app.socket.d/ignored.txt":   "[Socket]\nBacklog=99\n",
		"app.service":                "[Service]\nExecStart=/bin/app\nEnvironment=A=1\nTimeoutStopSec=5\n",
		"app.service.d/override.conf": "[Service]\nExecStart=\nExecStart=/bin/other\nEnvironment=B=2\n" +
			"TimeoutStopSec=7\nBogus=1\n",
	})
	want := []string{"app.service.d/override.conf:6: Bogus: unknown option", "app.socket:1: service app.service has errors"}
	if !equalStrings(diags, want) {
		t.Errorf("diagnostics %q, want %q", diags, want)
	}
	if _, ok := set.Services["app.service"]; ok {
		t.Error("app.service loaded despite an error in its drop-in")
	}
	s := set.Sockets["app.socket"]
	if s != nil {
		t.Errorf("app.socket loaded although its service failed")
	}
	// Without the broken line.
	set, diags = load(t, map[string]string{
		"app.socket":                 "[Socket]\nListenStream=80\nBacklog=10\n",
		"app.socket.d/10-more.conf":  "[Socket]\nListenStream=81\n",
		"app.socket.d/20-reset.conf": "[Socket]\n# replace all listens\nListenStream=\nListenStream=/run/app.sock\nBacklog=20\n",
		"app.socket.d/05-first.conf": "[Socket]\nBacklog=5\nNoDelay=yes\n",
		"app.service":                "[Service]\nExecStart=/bin/app\nEnvironment=A=1\nTimeoutStopSec=5\n",
		"app.service.d/override.conf": "[Service]\nExecStart=\nExecStart=/bin/other\nEnvironment=B=2\n" +
			"TimeoutStopSec=7\nProtectClock=yes\n",
	})
	want = []string{"app.service.d/override.conf:6: warning: ProtectClock: not supported by sockd, ignored"}
	if !equalStrings(diags, want) {
		t.Errorf("diagnostics %q, want %q", diags, want)
	}
	s = set.Sockets["app.socket"]
	if len(s.Listens) != 1 || s.Listens[0].Address != "/run/app.sock" || s.Listens[0].Line != 4 ||
		!strings.HasSuffix(s.Listens[0].File, "20-reset.conf") {
		t.Errorf("listens = %+v", s.Listens)
	}
	if s.Backlog != 20 || !s.NoDelay {
		t.Errorf("Backlog = %d NoDelay = %v", s.Backlog, s.NoDelay)
	}
	var names []string
	for _, d := range s.DropIns {
		names = append(names, filepath.Base(d))
	}
	if !equalStrings(names, []string{"05-first.conf", "10-more.conf", "20-reset.conf"}) {
		t.Errorf("DropIns = %q", names)
	}
	svc := set.Services["app.service"]
	if len(svc.ExecStart) != 1 || svc.ExecStart[0].Path != "/bin/other" || !equalStrings(svc.Environment, []string{"A=1", "B=2"}) || svc.TimeoutStopSec != 7*time.Second {
		t.Errorf("service = %+v", svc)
	}
}

func TestTemplates(t *testing.T) {
	set, diags := load(t, map[string]string{
		"echo.socket": "[Socket]\nListenStream=127.0.0.1:7777\nAccept=yes\n",
		"echo@.service": "[Unit]\nDescription=Echo %i\n[Service]\nExecStart=/bin/echo %i %I %n %N %p %P %f %j %% %y\n" +
			"WorkingDirectory=/srv/%i\nEnvironment=INST=%i\n",
		"echo@.service.d/x.conf": "[Service]\nEnvironment=FROM_DROPIN=%I\n",
		"web-api.socket":         "[Socket]\nListenStream=/run/web-api.sock\nService=worker@web-api.service\n",
		"worker@.service":        "[Service]\nExecStart=/bin/worker %i\n",
	})
	if len(diags) != 0 {
		t.Fatalf("diagnostics %q", diags)
	}
	tpl := set.Services["echo@.service"]
	if tpl == nil || !tpl.Template {
		t.Fatalf("template not loaded: %+v", tpl)
	}
	if got := tpl.ExecStart[0].Argv[1]; got != "%i" {
		t.Errorf("template argv[1] = %q, want raw %%i", got)
	}
	if got := set.SocketsFor("echo@.service"); len(got) != 1 || got[0].Name != "echo.socket" {
		t.Errorf("SocketsFor(echo@.service) = %v", got)
	}
	inst, err := tpl.Instantiate(`a\x2db-c`)
	if err != nil {
		t.Fatal(err)
	}
	wantArgv := []string{"/bin/echo", `a\x2db-c`, "a-b/c", `echo@a\x2db-c.service`, `echo@a\x2db-c`, "echo", "echo", "/a-b/c", "echo", "%", tpl.File}
	if !equalStrings(inst.ExecStart[0].Argv, wantArgv) {
		t.Errorf("argv:\n got %q\nwant %q", inst.ExecStart[0].Argv, wantArgv)
	}
	if inst.Name != `echo@a\x2db-c.service` || inst.Instance != `a\x2db-c` || inst.Template || inst.Description != "Echo %i" {
		t.Errorf("instance = %+v", inst)
	}
	if inst.WorkingDirectory != `/srv/a\x2db-c` || !equalStrings(inst.Environment, []string{"INST=a-b-c", "FROM_DROPIN=a-b/c"}) {
		t.Errorf("instance dir %q env %q", inst.WorkingDirectory, inst.Environment)
	}
	if _, err := tpl.Instantiate("bad/inst"); err == nil {
		t.Error("Instantiate accepted an invalid instance")
	}
	if _, err := set.Services["worker@web-api.service"]; !err {
		t.Fatal("worker@web-api.service not instantiated for Service=")
	}
	if got := set.Services["worker@web-api.service"].ExecStart[0].Argv; !equalStrings(got, []string{"/bin/worker", "web-api"}) {
		t.Errorf("worker argv = %q", got)
	}
	if _, err := set.Services["echo.socket"]; err {
		t.Error("socket in Services")
	}
	if _, err := (&Service{Name: "x.service"}).Instantiate("a"); err == nil {
		t.Error("Instantiate of a non-template succeeded")
	}
	if EscapeInstance("/a-b/c") != `-a\x2db-c` {
		t.Errorf("EscapeInstance = %q", EscapeInstance("/a-b/c"))
	}
}

func TestAcceptMissingTemplate(t *testing.T) {
	_, diags := load(t, map[string]string{
		"echo.socket":  "[Socket]\nListenStream=7777\nAccept=yes\n",
		"echo.service": okService,
	})
	want := []string{"echo.socket:3: Accept: service echo@.service not found"}
	if !equalStrings(diags, want) {
		t.Errorf("diagnostics %q, want %q", diags, want)
	}
	_, diags = load(t, map[string]string{
		"echo.socket":   "[Socket]\nListenStream=7777\nAccept=yes\nService=other.service\n",
		"echo@.service": okService, "other.service": okService,
	})
	want = []string{"echo.socket:4: Service: not allowed with Accept=yes"}
	if !equalStrings(diags, want) {
		t.Errorf("diagnostics %q, want %q", diags, want)
	}
}

func TestBrokenUnitDoesNotStopOthers(t *testing.T) {
	set, diags := load(t, map[string]string{
		"good.socket":   "[Socket]\nListenStream=80\n",
		"good.service":  okService,
		"bad.socket":    "[Socket]\nListenStream=81\n",
		"bad.service":   "[Service]\nExecStart=/bin/true\nRestart=whenever\n",
		"uses.service":  okService + "Sockets=bad.socket\n",
		"alone.service": okService,
		"junk.service":  "\x00\x01garbage",
	})
	if got := keys(set.Services); !equalStrings(got, []string{"alone.service", "good.service"}) {
		t.Errorf("services = %q", got)
	}
	if got := keys(set.Sockets); !equalStrings(got, []string{"good.socket"}) {
		t.Errorf("sockets = %q", got)
	}
	want := []string{
		`bad.service:3: Restart: invalid value "whenever" (want no, on-success, on-failure, on-abnormal, on-watchdog, on-abort or always)`,
		"bad.socket:1: service bad.service has errors",
		"junk.service:1: warning: NUL byte read as the end of a line, as systemd does",
		"junk.service:1: no ExecStart= or ExecStop=",
		"junk.service:2: assignment outside of any section",
		"uses.service:3: Sockets: socket bad.socket has errors",
	}
	if !equalStrings(diags, want) {
		t.Errorf("diagnostics:\n got %q\nwant %q", diags, want)
	}
}

func TestSocketsFor(t *testing.T) {
	set, diags := load(t, map[string]string{
		"b.socket":      "[Socket]\nListenStream=81\nService=app.service\n",
		"a.socket":      "[Socket]\nListenStream=80\nService=app.service\n",
		"app.socket":    "[Socket]\nListenStream=82\n",
		"extra.socket":  "[Socket]\nListenStream=83\nService=other.service\n",
		"app.service":   okService + "Sockets=extra.socket app.socket\n",
		"other.service": okService,
	})
	if len(diags) != 0 {
		t.Fatal(diags)
	}
	var got []string
	for _, s := range set.SocketsFor("app.service") {
		got = append(got, s.Name)
	}
	if want := []string{"extra.socket", "app.socket", "a.socket", "b.socket"}; !equalStrings(got, want) {
		t.Errorf("SocketsFor = %q, want %q", got, want)
	}
	if got := set.SocketsFor("missing.service"); len(got) != 0 {
		t.Errorf("SocketsFor(missing) = %v", got)
	}
}

func TestSpecifiers(t *testing.T) {
	c := &specCtx{name: unitName{Full: "a-b.service", Prefix: "a-b", Suffix: "service"}, file: "/x/a-b.service"}
	for in, want := range map[string]string{
		"%n %N %p %P %j %J %f %i": "a-b.service a-b a-b a/b b b /a/b ",
		"%t/x":                    getHost().runtimeDir + "/x",
		"%%i":                     "%i",
		"%Y %E %T %V %S %C %L":    "/x /etc /tmp /var/tmp /var/lib /var/cache /var/log",
	} {
		got, err := c.expand(in)
		if err != nil || got != want {
			t.Errorf("expand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"%", "x%", "%z", "%d"} {
		if _, err := c.expand(in); err == nil {
			t.Errorf("expand(%q) succeeded", in)
		}
	}
	if h, err := c.expand("%H"); err != nil || h == "" {
		t.Errorf("%%H = %q, %v", h, err)
	}
}

func TestExamples(t *testing.T) {
	set, diags, err := LoadDir("testdata/examples")
	if err != nil {
		t.Fatal(err)
	}
	checkWellFormed(t, diags)
	if diags.Err() != nil {
		t.Fatalf("errors: %v", diags.Err())
	}
	var warns []string
	for _, d := range diags {
		warns = append(warns, d.Error())
	}
	var want []string // sshd@.service's StandardInput=socket is supported
	if !equalStrings(warns, want) {
		t.Errorf("warnings:\n got %q\nwant %q", warns, want)
	}
	if got := keys(set.Sockets); !equalStrings(got, []string{"foobar.socket", "sshd.socket", "web.socket"}) {
		t.Errorf("sockets %q", got)
	}
	if got := keys(set.Services); !equalStrings(got, []string{"cleanup.service", "echo.service", "foobar.service", "notify.service", "sshd@.service", "webapp.service"}) {
		t.Errorf("services %q", got)
	}
	ssh := set.Sockets["sshd.socket"]
	if !ssh.Accept || ssh.Service != "sshd@.service" || ssh.TriggerLimitBurst != 200 {
		t.Errorf("sshd.socket = %+v", ssh)
	}
	inst, err := set.Services["sshd@.service"].Instantiate("1-127.0.0.1:2222-127.0.0.1:4242")
	if err != nil {
		t.Fatal(err)
	}
	if got := inst.ExecStart[0]; !got.IgnoreFailure || got.Argv[3] != "SetEnv=INSTANCE=1-127.0.0.1:2222-127.0.0.1:4242" {
		t.Errorf("sshd instance command = %+v", got)
	}
	web := set.SocketsFor("webapp.service")
	if len(web) != 1 || len(web[0].Listens) != 3 || web[0].FDName() != "web" {
		t.Errorf("webapp sockets = %+v", web)
	}
	if got := set.Services["echo.service"].ExecStart[0].Expand(set.Services["echo.service"].Environment); !equalStrings(got, []string{"/bin/echo", "one", "two", "two", "two two"}) {
		t.Errorf("echo Expand = %q", got)
	}
	if wa := set.Services["webapp.service"]; wa.Instances != 2 || wa.ReadyAfter != 500*time.Millisecond || !wa.WorkingDirectoryOptional {
		t.Errorf("webapp = %+v", wa)
	}
}

func TestLoadFilesAndVerify(t *testing.T) {
	dir := writeUnits(t, map[string]string{
		"app.socket":  "[Socket]\nListenStream=80\n",
		"app.service": okService,
		"bad.service": "[Service]\nExecStart=/bin/true\nListenStream=1\n",
	})
	set, diags, err := LoadFiles(filepath.Join(dir, "app.socket"))
	if err != nil || len(diags) != 0 {
		t.Fatalf("LoadFiles: %v %v", diags, err)
	}
	if set.Services["app.service"] == nil || set.Sockets["app.socket"] == nil || set.Dir != "" {
		t.Errorf("LoadFiles set = %+v", set)
	}
	if _, _, err := LoadFiles(filepath.Join(dir, "missing.service")); err == nil {
		t.Error("LoadFiles of a missing file succeeded")
	}
	ds, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Error() != filepath.Join(dir, "bad.service")+":3: ListenStream: unknown option" {
		t.Errorf("Verify(dir) = %q", ds)
	}
	ds, err = Verify(filepath.Join(dir, "app.service"), filepath.Join(dir, "bad.service"))
	if err != nil || len(ds) != 1 {
		t.Errorf("Verify(files) = %q, %v", ds, err)
	}
	if _, err := Verify(filepath.Join(dir, "nope")); err == nil {
		t.Error("Verify of a missing path succeeded")
	}
	if _, _, err := LoadDir(filepath.Join(dir, "nope")); err == nil {
		t.Error("LoadDir of a missing dir succeeded")
	}
}
