package units

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/sandbox"
)

// capsOf is the set of the capabilities ns.
func capsOf(ns ...int) sandbox.CapSet {
	var c sandbox.CapSet
	for _, n := range ns {
		c |= 1 << n
	}
	return c
}

// capSet is capsOf as a CapabilityBoundingSet=.
func capSet(c sandbox.CapSet) *sandbox.CapSet { return &c }

// Each sandboxing option: its values, systemd's merging of several
// lines (drop-ins included), the empty reset, and the exact errors.
func TestSandboxOptions(t *testing.T) {
	const filterWarning = "not enforced by sockd (no seccomp syscall filter; see docs/security.md)"
	tests := []struct {
		name  string
		body  string // after okService: the first line is 3
		want  sandbox.Options
		diags []string
	}{
		{"none", "", sandbox.Options{}, nil},

		// Booleans.
		{"booleans", "NoNewPrivileges=yes\nPrivateDevices=true\nProtectKernelTunables=on\nProtectKernelModules=1\n" +
			"MemoryDenyWriteExecute=yes\nMemoryDenyWriteExecute=no\nPrivateTmp=y\nPrivateUsers=yes\nProtectControlGroups=true\n",
			sandbox.Options{NoNewPrivileges: true, PrivateDevices: true, ProtectKernelTunables: true, ProtectKernelModules: true,
				PrivateTmp: true, PrivateUsers: true, ProtectControlGroups: true}, nil},
		{"bad boolean", "NoNewPrivileges=maybe\n", sandbox.Options{},
			[]string{`app.service:3: NoNewPrivileges: invalid boolean "maybe" (want yes/no, true/false, on/off, 1/0)`}},
		{"empty boolean", "ProtectKernelModules=\n", sandbox.Options{},
			[]string{`app.service:3: ProtectKernelModules: invalid boolean "" (want yes/no, true/false, on/off, 1/0)`}},

		// systemd 257's words beside the booleans.
		{"private tmp disconnected", "PrivateTmp=disconnected\n", sandbox.Options{PrivateTmp: true},
			[]string{"app.service:3: warning: PrivateTmp: disconnected is run as yes by sockd (/tmp and /var/tmp are private directories on the host, not a fresh tmpfs)"}},
		{"private tmp reset", "PrivateTmp=yes\nPrivateTmp=\n", sandbox.Options{}, nil},
		{"private tmp no", "PrivateTmp=yes\nPrivateTmp=off\n", sandbox.Options{}, nil},
		{"bad private tmp", "PrivateTmp=shared\n", sandbox.Options{},
			[]string{`app.service:3: PrivateTmp: invalid value "shared" (want a boolean, disconnected)`}},
		{"private users self", "PrivateUsers=self\n", sandbox.Options{PrivateUsers: true}, nil},
		{"private users identity", "PrivateUsers=identity\n", sandbox.Options{PrivateUsers: true},
			[]string{"app.service:3: warning: PrivateUsers: identity is run as yes by sockd (only root and the service's user and group are mapped, not the first 65536 ids)"}},
		{"bad private users", "PrivateUsers=managed\n", sandbox.Options{},
			[]string{`app.service:3: PrivateUsers: invalid value "managed" (want a boolean, self or identity)`}},
		{"protect control groups private", "ProtectControlGroups=private\n", sandbox.Options{ProtectControlGroups: true},
			[]string{"app.service:3: warning: ProtectControlGroups: private is run as yes by sockd (no cgroup namespace: /sys/fs/cgroup is read-only)"}},
		{"protect control groups strict", "ProtectControlGroups=strict\nProtectControlGroups=no\nProtectControlGroups=strict\n",
			sandbox.Options{ProtectControlGroups: true},
			[]string{"app.service:3: warning: ProtectControlGroups: strict is run as yes by sockd (no cgroup namespace: /sys/fs/cgroup is read-only)",
				"app.service:5: warning: ProtectControlGroups: strict is run as yes by sockd (no cgroup namespace: /sys/fs/cgroup is read-only)"}},
		{"bad protect control groups", "ProtectControlGroups=ro\n", sandbox.Options{},
			[]string{`app.service:3: ProtectControlGroups: invalid value "ro" (want a boolean, private or strict)`}},

		// ProtectSystem=, ProtectHome=.
		{"protect system yes", "ProtectSystem=yes\n", sandbox.Options{ProtectSystem: "yes"}, nil},
		{"protect system true", "ProtectSystem=true\n", sandbox.Options{ProtectSystem: "yes"}, nil},
		{"protect system 1", "ProtectSystem=1\n", sandbox.Options{ProtectSystem: "yes"}, nil},
		{"protect system on", "ProtectSystem=on\n", sandbox.Options{ProtectSystem: "yes"}, nil},
		{"protect system full", "ProtectSystem=full\n", sandbox.Options{ProtectSystem: "full"}, nil},
		{"protect system strict", "ProtectSystem=strict\n", sandbox.Options{ProtectSystem: "strict"}, nil},
		{"protect system no", "ProtectSystem=strict\nProtectSystem=no\n", sandbox.Options{}, nil},
		{"protect system false", "ProtectSystem=full\nProtectSystem=false\n", sandbox.Options{}, nil},
		{"protect system empty", "ProtectSystem=full\nProtectSystem=\n", sandbox.Options{}, nil},
		{"bad protect system", "ProtectSystem=Strict\n", sandbox.Options{},
			[]string{`app.service:3: ProtectSystem: invalid value "Strict" (want yes, no, full or strict)`}},
		{"protect home yes", "ProtectHome=yes\n", sandbox.Options{ProtectHome: "yes"}, nil},
		{"protect home read-only", "ProtectHome=read-only\n", sandbox.Options{ProtectHome: "read-only"}, nil},
		{"protect home tmpfs", "ProtectHome=tmpfs\n", sandbox.Options{ProtectHome: "tmpfs"}, nil},
		{"protect home no", "ProtectHome=tmpfs\nProtectHome=no\n", sandbox.Options{}, nil},
		{"bad protect home", "ProtectHome=strict\n", sandbox.Options{},
			[]string{`app.service:3: ProtectHome: invalid value "strict" (want yes, no, read-only or tmpfs)`}},

		// ReadWritePaths= and kin.
		{"paths", `ReadWritePaths=/var/lib/x/ -/opt//y/./z +/srv -+/a +-/b "/with space" /\x41
ReadWritePaths=/c
ReadOnlyPaths=/etc %E/app/
InaccessiblePaths=-%S/%p %C
`, sandbox.Options{
			ReadWritePaths: []sandbox.Path{{Path: "/var/lib/x"}, {Path: "/opt/y/z", Optional: true}, {Path: "/srv"},
				{Path: "/a", Optional: true}, {Path: "/b", Optional: true}, {Path: "/with space"}, {Path: "/A"}, {Path: "/c"}},
			ReadOnlyPaths:     []sandbox.Path{{Path: "/etc"}, {Path: "/etc/app"}},
			InaccessiblePaths: []sandbox.Path{{Path: "/var/lib/app", Optional: true}, {Path: "/var/cache"}},
		}, nil},
		{"paths reset", "ReadOnlyPaths=/a\nReadOnlyPaths=\nReadOnlyPaths=/b\nInaccessiblePaths=/c\nInaccessiblePaths=\n",
			sandbox.Options{ReadOnlyPaths: []sandbox.Path{{Path: "/b"}}}, nil},
		{"legacy paths", "ReadWriteDirectories=/a\nReadOnlyDirectories=/b\nInaccessibleDirectories=-/c\nReadWritePaths=/d\n",
			sandbox.Options{ReadWritePaths: []sandbox.Path{{Path: "/a"}, {Path: "/d"}}, ReadOnlyPaths: []sandbox.Path{{Path: "/b"}},
				InaccessiblePaths: []sandbox.Path{{Path: "/c", Optional: true}}},
			[]string{"app.service:3: warning: ReadWriteDirectories: deprecated; use ReadWritePaths=",
				"app.service:4: warning: ReadOnlyDirectories: deprecated; use ReadOnlyPaths=",
				"app.service:5: warning: InaccessibleDirectories: deprecated; use InaccessiblePaths="}},
		{"relative path", "ReadWritePaths=/a var/x\n", sandbox.Options{},
			[]string{`app.service:3: ReadWritePaths: "var/x" is not an absolute path`}},
		{"double prefix", "ReadOnlyPaths=--/x\n", sandbox.Options{},
			[]string{`app.service:3: ReadOnlyPaths: "-/x" is not an absolute path`}},
		{"prefix alone", "InaccessiblePaths=-\n", sandbox.Options{},
			[]string{`app.service:3: InaccessiblePaths: "" is not an absolute path`}},
		{"dot dot", "InaccessiblePaths=/srv/../etc\n", sandbox.Options{},
			[]string{`app.service:3: InaccessiblePaths: "/srv/../etc": ".." is not allowed`}},
		{"path quote", "ReadWritePaths=\"/a\n", sandbox.Options{},
			[]string{`app.service:3: ReadWritePaths: unterminated quote "`}},
		{"path specifier", "ReadWritePaths=/a/%z\n", sandbox.Options{},
			[]string{`app.service:3: ReadWritePaths: unknown specifier %z`}},
		{"legacy relative", "ReadOnlyDirectories=x\n", sandbox.Options{},
			[]string{"app.service:3: warning: ReadOnlyDirectories: deprecated; use ReadOnlyPaths=",
				`app.service:3: ReadOnlyDirectories: "x" is not an absolute path`}},

		// TemporaryFileSystem=.
		{"tmpfs", "TemporaryFileSystem=/run/x:mode=0700,size=10M /var//y/\nTemporaryFileSystem=%S/%p: /z:ro\n",
			sandbox.Options{TemporaryFileSystem: []sandbox.TmpFS{{Path: "/run/x", Options: "mode=0700,size=10M"}, {Path: "/var/y"},
				{Path: "/var/lib/app"}, {Path: "/z", Options: "ro"}}}, nil},
		{"tmpfs reset", "TemporaryFileSystem=/a\nTemporaryFileSystem=\nTemporaryFileSystem=/b\n",
			sandbox.Options{TemporaryFileSystem: []sandbox.TmpFS{{Path: "/b"}}}, nil},
		{"tmpfs relative", "TemporaryFileSystem=run:ro\n", sandbox.Options{},
			[]string{`app.service:3: TemporaryFileSystem: "run" is not an absolute path`}},
		{"tmpfs no path", "TemporaryFileSystem=:ro\n", sandbox.Options{},
			[]string{`app.service:3: TemporaryFileSystem: "" is not an absolute path`}},
		{"tmpfs whitespace", "TemporaryFileSystem=\"/x:mode=0700, size=1M\"\n", sandbox.Options{},
			[]string{`app.service:3: TemporaryFileSystem: "/x:mode=0700, size=1M": mount options with whitespace`}},

		// CapabilityBoundingSet=: the caps kept.
		{"bounding set or", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE cap_chown\nCapabilityBoundingSet=CAP_KILL\n",
			sandbox.Options{CapabilityBoundingSet: capSet(capsOf(unix.CAP_NET_BIND_SERVICE, unix.CAP_CHOWN, unix.CAP_KILL))}, nil},
		{"bounding set inverted", "CapabilityBoundingSet=~CAP_SYS_ADMIN\nCapabilityBoundingSet=~CAP_NET_RAW CAP_SYS_PTRACE\n",
			sandbox.Options{CapabilityBoundingSet: capSet(sandbox.AllCaps &^ capsOf(unix.CAP_SYS_ADMIN, unix.CAP_NET_RAW, unix.CAP_SYS_PTRACE))}, nil},
		{"bounding set remove", "CapabilityBoundingSet=CAP_CHOWN CAP_KILL\nCapabilityBoundingSet=~CAP_KILL CAP_SETUID\n",
			sandbox.Options{CapabilityBoundingSet: capSet(capsOf(unix.CAP_CHOWN))}, nil},
		{"bounding set add after inverted", "CapabilityBoundingSet=~CAP_SYS_ADMIN CAP_KILL\nCapabilityBoundingSet=CAP_KILL\n",
			sandbox.Options{CapabilityBoundingSet: capSet(sandbox.AllCaps &^ capsOf(unix.CAP_SYS_ADMIN))}, nil},
		{"bounding set empty", "CapabilityBoundingSet=CAP_CHOWN\nCapabilityBoundingSet=\n",
			sandbox.Options{CapabilityBoundingSet: capSet(0)}, nil},
		{"bounding set empty first", "CapabilityBoundingSet=\nCapabilityBoundingSet=CAP_KILL\n",
			sandbox.Options{CapabilityBoundingSet: capSet(capsOf(unix.CAP_KILL))}, nil},
		{"bounding set tilde", "CapabilityBoundingSet=CAP_CHOWN\nCapabilityBoundingSet=~\n",
			sandbox.Options{CapabilityBoundingSet: capSet(sandbox.AllCaps)}, nil},
		{"bounding set number", "CapabilityBoundingSet=0 21\n",
			sandbox.Options{CapabilityBoundingSet: capSet(capsOf(unix.CAP_CHOWN, unix.CAP_SYS_ADMIN))}, nil},
		{"bounding set unknown", "CapabilityBoundingSet=CAP_CHOWN CAP_FOO\n", sandbox.Options{},
			[]string{`app.service:3: CapabilityBoundingSet: unknown capability "CAP_FOO"`}},
		{"bounding set unknown inverted", "CapabilityBoundingSet=~CHOWN\n", sandbox.Options{},
			[]string{`app.service:3: CapabilityBoundingSet: unknown capability "CHOWN"`}},

		// AmbientCapabilities=.
		{"ambient", "AmbientCapabilities=CAP_NET_BIND_SERVICE\nAmbientCapabilities=CAP_NET_RAW CAP_KILL\nAmbientCapabilities=~CAP_NET_RAW\n",
			sandbox.Options{AmbientCapabilities: capsOf(unix.CAP_NET_BIND_SERVICE, unix.CAP_KILL)}, nil},
		{"ambient reset", "AmbientCapabilities=CAP_KILL\nAmbientCapabilities=\n", sandbox.Options{}, nil},
		{"ambient inverted first", "AmbientCapabilities=~CAP_SYS_ADMIN\n",
			sandbox.Options{AmbientCapabilities: sandbox.AllCaps &^ capsOf(unix.CAP_SYS_ADMIN)}, nil},
		{"ambient unknown", "AmbientCapabilities=CAP_NET_BIND\n", sandbox.Options{},
			[]string{`app.service:3: AmbientCapabilities: unknown capability "CAP_NET_BIND"`}},

		// SecureBits=.
		{"secure bits", "SecureBits=keep-caps\nSecureBits=noroot noroot-locked\n",
			sandbox.Options{SecureBits: sandbox.SecBitKeepCaps | 1<<0 | 1<<1}, nil},
		{"secure bits reset", "SecureBits=keep-caps\nSecureBits=\nSecureBits=no-setuid-fixup\n",
			sandbox.Options{SecureBits: 1 << 2}, nil},
		{"secure bits unknown", "SecureBits=keep-caps keepcaps\n", sandbox.Options{},
			[]string{`app.service:3: SecureBits: unknown secure bit "keepcaps" (want noroot, noroot-locked, no-setuid-fixup, no-setuid-fixup-locked, keep-caps or keep-caps-locked)`}},

		// RestrictAddressFamilies=.
		{"families allow", "RestrictAddressFamilies=AF_UNIX AF_INET\nRestrictAddressFamilies=AF_INET6 AF_UNIX\n",
			sandbox.Options{RestrictAddressFamilies: &sandbox.AddressFamilies{Families: []int{unix.AF_UNIX, unix.AF_INET, unix.AF_INET6}}}, nil},
		{"families deny", "RestrictAddressFamilies=~AF_PACKET AF_NETLINK\nRestrictAddressFamilies=~AF_BLUETOOTH\n",
			sandbox.Options{RestrictAddressFamilies: &sandbox.AddressFamilies{Deny: true, Families: []int{unix.AF_NETLINK, unix.AF_PACKET, unix.AF_BLUETOOTH}}}, nil},
		{"families allow minus", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\nRestrictAddressFamilies=~AF_INET6 AF_NETLINK\n",
			sandbox.Options{RestrictAddressFamilies: &sandbox.AddressFamilies{Families: []int{unix.AF_UNIX, unix.AF_INET}}}, nil},
		{"families deny minus", "RestrictAddressFamilies=~AF_PACKET AF_NETLINK\nRestrictAddressFamilies=AF_NETLINK\n",
			sandbox.Options{RestrictAddressFamilies: &sandbox.AddressFamilies{Deny: true, Families: []int{unix.AF_PACKET}}}, nil},
		{"families all removed", "RestrictAddressFamilies=AF_UNIX\nRestrictAddressFamilies=~AF_UNIX\nRestrictAddressFamilies=~AF_INET\n",
			sandbox.Options{RestrictAddressFamilies: &sandbox.AddressFamilies{Families: []int{}}}, nil},
		{"families none", "RestrictAddressFamilies=AF_UNIX\nRestrictAddressFamilies=none\n",
			sandbox.Options{RestrictAddressFamilies: &sandbox.AddressFamilies{}}, nil},
		{"families none then allow", "RestrictAddressFamilies=none\nRestrictAddressFamilies=AF_UNIX\n",
			sandbox.Options{RestrictAddressFamilies: &sandbox.AddressFamilies{Families: []int{unix.AF_UNIX}}}, nil},
		// As in systemd: after "none" the next line sets the mode anew.
		{"families none then deny", "RestrictAddressFamilies=none\nRestrictAddressFamilies=~AF_INET\n",
			sandbox.Options{RestrictAddressFamilies: &sandbox.AddressFamilies{Deny: true, Families: []int{unix.AF_INET}}}, nil},
		{"families reset", "RestrictAddressFamilies=AF_UNIX\nRestrictAddressFamilies=\n", sandbox.Options{}, nil},
		{"families reset then deny", "RestrictAddressFamilies=AF_UNIX\nRestrictAddressFamilies=\nRestrictAddressFamilies=~AF_UNIX\n",
			sandbox.Options{RestrictAddressFamilies: &sandbox.AddressFamilies{Deny: true, Families: []int{unix.AF_UNIX}}}, nil},
		{"families unknown", "RestrictAddressFamilies=AF_UNIX AF_FOO\n", sandbox.Options{},
			[]string{`app.service:3: RestrictAddressFamilies: unknown address family "AF_FOO"`}},
		{"families lower case", "RestrictAddressFamilies=~af_packet\n", sandbox.Options{},
			[]string{`app.service:3: RestrictAddressFamilies: unknown address family "af_packet"`}},

		// System call filtering: read, not enforced.
		{"syscall filter", "SystemCallFilter=@system-service\nSystemCallArchitectures=native\nSystemCallErrorNumber=EPERM\nSystemCallLog=~@default\n",
			sandbox.Options{}, []string{
				"app.service:3: warning: SystemCallFilter: " + filterWarning,
				"app.service:4: warning: SystemCallArchitectures: " + filterWarning,
				"app.service:5: warning: SystemCallErrorNumber: " + filterWarning,
				"app.service:6: warning: SystemCallLog: " + filterWarning}},

		// The rest of systemd's sandboxing stays unsupported.
		{"unsupported", "ProtectClock=yes\nProtectHostname=yes\nPrivateNetwork=yes\nRestrictNamespaces=yes\nLockPersonality=yes\n" +
			"RestrictRealtime=yes\nRestrictSUIDSGID=yes\nProtectProc=invisible\nProcSubset=pid\nRemoveIPC=yes\nProtectKernelLogs=yes\n",
			sandbox.Options{}, []string{
				"app.service:3: warning: ProtectClock: not supported by sockd, ignored",
				"app.service:4: warning: ProtectHostname: not supported by sockd, ignored",
				"app.service:5: warning: PrivateNetwork: not supported by sockd, ignored",
				"app.service:6: warning: RestrictNamespaces: not supported by sockd, ignored",
				"app.service:7: warning: LockPersonality: not supported by sockd, ignored",
				"app.service:8: warning: RestrictRealtime: not supported by sockd, ignored",
				"app.service:9: warning: RestrictSUIDSGID: not supported by sockd, ignored",
				"app.service:10: warning: ProtectProc: not supported by sockd, ignored",
				"app.service:11: warning: ProcSubset: not supported by sockd, ignored",
				"app.service:12: warning: RemoveIPC: not supported by sockd, ignored",
				"app.service:13: warning: ProtectKernelLogs: not supported by sockd, ignored"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, diags := load(t, map[string]string{"app.service": okService + tc.body})
			if !equalStrings(diags, tc.diags) {
				t.Errorf("diagnostics:\n got %q\nwant %q", diags, tc.diags)
			}
			failed := false
			for _, d := range tc.diags {
				failed = failed || !strings.Contains(d, ": warning: ")
			}
			s := set.Services["app.service"]
			if (s == nil) != failed {
				t.Fatalf("app.service loaded: %v, want %v", s != nil, !failed)
			}
			if s != nil && !reflect.DeepEqual(s.Sandbox, tc.want) {
				t.Errorf("Sandbox:\n got %s\nwant %s", showOptions(s.Sandbox), showOptions(tc.want))
			}
		})
	}
}

// showOptions prints o with its pointers followed.
func showOptions(o sandbox.Options) string {
	s := fmt.Sprintf("%+v", o)
	if o.CapabilityBoundingSet != nil {
		s += fmt.Sprintf(" CapabilityBoundingSet=[%v]", *o.CapabilityBoundingSet)
	}
	if f := o.RestrictAddressFamilies; f != nil {
		s += fmt.Sprintf(" RestrictAddressFamilies=%+v (Families nil: %v)", *f, f.Families == nil)
	}
	return s
}

// Debian 12's uuidd.service (the copy the integration test runs) loads
// with the one warning for SystemCallFilter=, and its sandbox as the
// file says it.
func TestSandboxUuidd(t *testing.T) {
	b, err := os.ReadFile("../integration/testdata/debian12-uuidd/uuidd.service")
	if err != nil {
		t.Fatal(err)
	}
	content := string(b)
	line := 1 + strings.Count(content[:strings.Index(content, "\nSystemCallFilter=")+1], "\n")
	set, diags := load(t, map[string]string{"uuidd.service": content})
	want := []string{fmt.Sprintf("uuidd.service:%d: warning: SystemCallFilter: not enforced by sockd (no seccomp syscall filter; see docs/security.md)", line)}
	if !equalStrings(diags, want) {
		t.Errorf("diagnostics:\n got %q\nwant %q", diags, want)
	}
	s := set.Services["uuidd.service"]
	if s == nil {
		t.Fatal("uuidd.service not loaded")
	}
	wantOpts := sandbox.Options{
		ProtectSystem: "strict", ProtectHome: "yes", PrivateDevices: true, PrivateUsers: true,
		ProtectKernelTunables: true, ProtectKernelModules: true, ProtectControlGroups: true,
		MemoryDenyWriteExecute: true, ReadWritePaths: []sandbox.Path{{Path: "/var/lib/libuuid"}},
	}
	if !reflect.DeepEqual(s.Sandbox, wantOpts) {
		t.Errorf("Sandbox:\n got %s\nwant %s", showOptions(s.Sandbox), showOptions(wantOpts))
	}
	if !s.Sandbox.MountNamespace() || s.User != "uuidd" || s.Group != "uuidd" {
		t.Errorf("uuidd.service = %+v", s)
	}
}

// In a template, a path that uses the instance is checked by each
// instance; one that does not is checked with the template.
func TestSandboxTemplate(t *testing.T) {
	set, diags := load(t, map[string]string{
		"app@.service": okService + "ReadWritePaths=%f -%S/%i\nReadOnlyPaths=-%I\nTemporaryFileSystem=%f/tmp:mode=0700\n",
		"bad@.service": okService + "ReadWritePaths=relative/%i\n",
	})
	want := []string{`bad@.service:3: ReadWritePaths: "relative/%i" is not an absolute path`}
	if !equalStrings(diags, want) {
		t.Errorf("diagnostics:\n got %q\nwant %q", diags, want)
	}
	tpl := set.Services["app@.service"]
	if tpl == nil {
		t.Fatal("app@.service not loaded")
	}
	inst, err := tpl.Instantiate("srv-data")
	if err == nil {
		t.Fatalf("instance srv-data: %+v, want an error for ReadOnlyPaths=-%%I", inst.Sandbox)
	}
	if got, want := err.Error(), `instantiate app@srv-data.service: `; !strings.HasPrefix(got, want) ||
		!strings.HasSuffix(got, `ReadOnlyPaths: "srv/data" is not an absolute path`) {
		t.Errorf("error %q", got)
	}
	inst, err = tpl.Instantiate("-srv-data")
	if err != nil {
		t.Fatal(err)
	}
	wantOpts := sandbox.Options{
		ReadWritePaths:      []sandbox.Path{{Path: "/srv/data"}, {Path: "/var/lib/-srv-data", Optional: true}},
		ReadOnlyPaths:       []sandbox.Path{{Path: "/srv/data", Optional: true}},
		TemporaryFileSystem: []sandbox.TmpFS{{Path: "/srv/data/tmp", Options: "mode=0700"}},
	}
	if !reflect.DeepEqual(inst.Sandbox, wantOpts) {
		t.Errorf("Sandbox:\n got %s\nwant %s", showOptions(inst.Sandbox), showOptions(wantOpts))
	}
}

// The "+" prefix of a command line runs it with full privileges, without
// a warning; "!" and "!!" stay warnings (see TestDiagnostics).
func TestExecFullPrivileges(t *testing.T) {
	set, diags := load(t, map[string]string{
		"app.service": "[Service]\nExecStart=+/bin/true\nExecStartPre=-+/bin/a\nExecStartPre=+@/bin/b b0\nExecStartPost=/bin/c\nExecStop=!/bin/d\n",
	})
	want := []string{`app.service:6: warning: ExecStop: prefix "!" (privileged execution) is not supported by sockd, ignored`}
	if !equalStrings(diags, want) {
		t.Errorf("diagnostics:\n got %q\nwant %q", diags, want)
	}
	s := set.Services["app.service"]
	if s == nil {
		t.Fatal("app.service not loaded")
	}
	for _, c := range []struct {
		cmd  Command
		full bool
	}{
		{s.ExecStart[0], true}, {s.ExecStartPre[0], true}, {s.ExecStartPre[1], true}, {s.ExecStartPost[0], false}, {s.ExecStop[0], false},
	} {
		if c.cmd.FullPrivileges != c.full {
			t.Errorf("%s line %d: FullPrivileges = %v, want %v", c.cmd.Path, c.cmd.Line, c.cmd.FullPrivileges, c.full)
		}
	}
	if pre := s.ExecStartPre; !pre[0].IgnoreFailure || pre[0].Path != "/bin/a" || pre[1].Path != "/bin/b" || pre[1].Argv[0] != "b0" {
		t.Errorf("ExecStartPre = %+v", pre)
	}
}
