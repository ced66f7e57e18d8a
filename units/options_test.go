package units

import (
	"strings"
	"testing"
)

// The option names come from one systemd release; a change of release
// changes this test on purpose.
func TestSystemdOptions(t *testing.T) {
	if systemdOptionsVersion != "v257 (70bae7648f2c18010187c9cf20093155eaa26029)" {
		t.Errorf("version %q", systemdOptionsVersion)
	}
	counts := map[string]int{"Unit": len(systemdUnit), "Install": len(systemdInstall), "Exec": len(systemdExec),
		"Service": len(systemdService), "Socket": len(systemdSocket)}
	want := map[string]int{"Unit": 116, "Install": 6, "Exec": 228, "Service": 49, "Socket": 63}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("%s: %d names, want %d", k, counts[k], n)
		}
	}
	for _, name := range []string{"ReadWriteDirectories", "ReadOnlyDirectories", "InaccessibleDirectories", "MemoryLimit", "CPUShares"} {
		if !systemdExec[name] {
			t.Errorf("legacy %s= missing", name)
		}
	}
	for key := range legacyOptions {
		sec, name, _ := strings.Cut(key, ".")
		if !systemdKnows(sec, name) {
			t.Errorf("legacy %s is not in the lists", key)
		}
	}
	for name := range legacyExecOptions {
		if !systemdExec[name] {
			t.Errorf("legacy %s is not in systemdExec", name)
		}
	}
	// Every option sockd implements is systemd's, or sockd's own.
	own := map[string]bool{"Service.X-Instances": true, "Service.X-ReadyAfterSec": true, "Service.X-IdleTimeoutSec": true, "Service.X-LogBufferBytes": true,
		"Service.StartLimitIntervalSec": true, "Socket.NonBlocking": true}
	for name := range serviceOptions {
		if !systemdKnows("Service", name) && !own["Service."+name] {
			t.Errorf("[Service] %s= is neither systemd's nor listed as sockd's own", name)
		}
	}
	for name := range socketOptions {
		if !systemdKnows("Socket", name) && !own["Socket."+name] {
			t.Errorf("[Socket] %s= is neither systemd's nor listed as sockd's own", name)
		}
	}
	for name := range unitIgnored {
		if !systemdUnit[name] {
			t.Errorf("[Unit] %s= is not systemd's", name)
		}
	}
}

// Names systemd's parser knows are never unknown: legacy ones say what
// replaced them; names of other tools and unit types stay errors.
func TestOptionNames(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		body  string
		want  []string
		loads bool
	}{
		{"legacy exec", "app.service", okService + "ReadWriteDirectories=/var/x\nReadOnlyDirectories=/\nInaccessibleDirectories=/home\nMemoryLimit=1G\n",
			[]string{"app.service:3: warning: ReadWriteDirectories: deprecated; use ReadWritePaths=",
				"app.service:4: warning: ReadOnlyDirectories: deprecated; use ReadOnlyPaths=",
				"app.service:5: warning: InaccessibleDirectories: deprecated; use InaccessiblePaths=",
				"app.service:6: warning: MemoryLimit: legacy name of MemoryMax=; not supported by sockd, ignored"}, true},
		{"legacy socket", "app.socket", "[Socket]\nListenStream=80\nReadWriteDirectories=/x\nCapabilities=cap_net_raw+ep\n",
			[]string{"app.socket:3: warning: ReadWriteDirectories: legacy name of ReadWritePaths=; not supported by sockd, ignored",
				"app.socket:4: warning: Capabilities: obsolete option, ignored (systemd ignores it too)"}, true},
		{"legacy unit", "app.service", "[Unit]\nBindTo=db.service\nStartLimitInterval=30\nRequiresOverridable=x.socket\nPropagateReloadTo=y.service\nIgnoreOnSnapshot=yes\n" + okService,
			[]string{"app.service:2: warning: BindTo: legacy name of BindsTo=, read as BindsTo=",
				"app.service:2: warning: BindTo: dependency on db.service ignored: sockd does not order or pull in other services",
				"app.service:3: warning: StartLimitInterval: legacy name of StartLimitIntervalSec=, read as StartLimitIntervalSec=",
				"app.service:4: warning: RequiresOverridable: legacy name of Requires=, read as Requires=",
				"app.service:5: warning: PropagateReloadTo: legacy name of PropagatesReloadTo=; not supported by sockd, ignored",
				"app.service:6: warning: IgnoreOnSnapshot: obsolete option, ignored (systemd ignores it too)"}, true},
		{"moved to unit", "app.service", okService + "FailureAction=reboot\nStartLimitAction=none\n",
			[]string{"app.service:3: warning: FailureAction: belongs in [Unit] (as FailureAction=); not supported by sockd, ignored",
				"app.service:4: warning: StartLimitAction: belongs in [Unit] (as StartLimitAction=); not supported by sockd, ignored"}, true},
		{"documented, not implemented", "app.service", "[Unit]\nJobTimeoutSec=5\nConditionOSRelease=ID=debian\n" + okService + "ProtectProc=invisible\nCoredumpReceive=no\nManagedOOMMemoryPressureDurationSec=5s\n",
			[]string{"app.service:2: warning: JobTimeoutSec: not supported by sockd, ignored",
				"app.service:3: warning: ConditionOSRelease: not supported by sockd, ignored",
				"app.service:6: warning: ProtectProc: not supported by sockd, ignored",
				"app.service:7: warning: CoredumpReceive: not supported by sockd, ignored",
				"app.service:8: warning: ManagedOOMMemoryPressureDurationSec: not supported by sockd, ignored"}, true},
		{"socket only", "app.service", okService + "TCPCongestion=bbr\n",
			[]string{"app.service:3: TCPCongestion: unknown option"}, false},
		{"journald", "app.service", okService + "Storage=persistent\n",
			[]string{"app.service:3: Storage: unknown option"}, false},
		{"networkd", "app.socket", "[Socket]\nListenStream=80\nDHCP=yes\n",
			[]string{"app.socket:3: DHCP: unknown option"}, false},
		{"udev", "app.service", okService + "RUN=/bin/true\n",
			[]string{"app.service:3: RUN: unknown option"}, false},
		{"kernel command line", "app.service", "[Unit]\nsystemd.unit=rescue.target\n" + okService,
			[]string{"app.service:2: systemd.unit: unknown option"}, false},
		{"other unit type", "app.service", "[Unit]\nOnCalendar=daily\n" + okService,
			[]string{"app.service:2: OnCalendar: unknown option"}, false},
		{"typo suggests a systemd name", "app.service", okService + "ProtectSytem=strict\n",
			[]string{"app.service:3: ProtectSytem: unknown option; did you mean ProtectSystem?"}, false},
		{"install", "app.service", okService + "[Install]\nWantedBy=multi-user.target\nUpheldBy=x.target\nDefaultInstance=a\n", nil, true},
		{"only unsupported listens", "app.socket", "[Socket]\nListenNetlink=route 1361\nListenSpecial=/dev/rfkill\n",
			[]string{"app.socket:2: warning: ListenNetlink: not supported by sockd, ignored",
				"app.socket:2: warning: ListenNetlink: sockd supports none of the socket's Listen*= options: it never activates app.service",
				"app.socket:3: warning: ListenSpecial: not supported by sockd, ignored"}, true},
		{"unsupported listen reset", "app.socket", "[Socket]\nListenNetlink=route 1361\nListenSpecial=\n",
			[]string{"app.socket:1: no ListenStream=, ListenDatagram=, ListenSequentialPacket= or ListenFIFO=",
				"app.socket:2: warning: ListenNetlink: not supported by sockd, ignored"}, false},
		{"success action", "app.service", "[Unit]\nSuccessAction=exit-force\n[Service]\nType=oneshot\n",
			[]string{"app.service:2: warning: SuccessAction: not supported by sockd, ignored",
				"app.service:2: warning: SuccessAction: the service has no ExecStart= or ExecStop=: it runs nothing under sockd"}, true},
		{"success action simple", "app.service", "[Unit]\nSuccessAction=exit\n[Service]\nType=simple\n",
			[]string{"app.service:1: no ExecStart=", "app.service:2: warning: SuccessAction: not supported by sockd, ignored"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{tc.file: tc.body}
			if strings.HasSuffix(tc.file, ".socket") {
				files["app.service"] = okService
			}
			set, got := load(t, files)
			if !equalStrings(got, tc.want) {
				t.Errorf("diagnostics:\n got %q\nwant %q", got, tc.want)
			}
			_, isSock := set.Sockets[tc.file]
			_, isSvc := set.Services[tc.file]
			if (isSock || isSvc) != tc.loads {
				t.Errorf("%s loaded = %v, want %v", tc.file, isSock || isSvc, tc.loads)
			}
		})
	}
}
