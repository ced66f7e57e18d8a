package sandbox

import (
	"slices"
	"strings"
	"testing"
)

// describe writes a plan one entry a line: path, kind, then "ro",
// "restore" and "optional" when set.
func describe(es []entry) []string {
	var out []string
	for _, e := range es {
		s := e.path + " " + e.kind.String()
		if e.ro {
			s += " ro"
		}
		if e.restore {
			s += " restore"
		}
		if e.optional {
			s += " optional"
		}
		out = append(out, s)
	}
	return out
}

func TestPlan(t *testing.T) {
	strict := func(o Options) Options { o.ProtectSystem = "strict"; return o }
	strictKeeps := []string{ // what ProtectSystem=strict leaves to the other options
		"/dev rw-implicit restore", "/home rw-implicit restore optional",
		"/proc rw-implicit restore", "/root rw-implicit restore optional",
		"/run/user rw-implicit restore optional", "/sys rw-implicit restore",
	}
	tests := []struct {
		name string
		s    Setup
		want []string
	}{
		{"protect system yes", Setup{Options: Options{ProtectSystem: "yes"}},
			[]string{"/boot read-only ro optional", "/efi read-only ro optional", "/usr read-only ro"}},
		{"protect system full", Setup{Options: Options{ProtectSystem: "full"}},
			[]string{"/boot read-only ro optional", "/efi read-only ro optional", "/etc read-only ro", "/usr read-only ro"}},
		{"strict: parents first, the writable paths put back",
			Setup{Options: strict(Options{
				ReadWritePaths: []Path{{Path: "/var/lib/app"}},
				ReadOnlyPaths:  []Path{{Path: "/var/lib/app/conf"}},
			}), Writable: []string{"/run/app"}},
			[]string{
				"/ read-only ro", "/dev rw-implicit restore", "/home rw-implicit restore optional",
				"/proc rw-implicit restore", "/root rw-implicit restore optional",
				"/run/app read-write restore optional", "/run/user rw-implicit restore optional",
				"/sys rw-implicit restore", "/var/lib/app read-write restore", "/var/lib/app/conf read-only ro",
			}},
		{"read-write under read-only under read-write",
			Setup{Options: Options{
				ReadWritePaths: []Path{{Path: "/a"}, {Path: "/a/b/c"}},
				ReadOnlyPaths:  []Path{{Path: "/a/b"}},
			}},
			[]string{"/a read-write", "/a/b read-only ro", "/a/b/c read-write restore"}},
		{"private tmp stays writable under strict",
			Setup{Options: strict(Options{PrivateTmp: true}), TmpDir: "/x/tmp", VarTmpDir: "/y/tmp"},
			append(append([]string{"/ read-only ro"}, strictKeeps...),
				"/tmp private-tmp restore", "/var/tmp private-tmp restore")},
		{"the most restrictive wins for one path",
			Setup{Options: Options{
				ReadWritePaths:    []Path{{Path: "/x"}, {Path: "/y"}},
				ReadOnlyPaths:     []Path{{Path: "/x"}, {Path: "/y"}},
				InaccessiblePaths: []Path{{Path: "/x"}},
			}},
			[]string{"/x inaccessible ro", "/y read-only ro"}},
		{"read-write wins over tmpfs but keeps its ro (systemd's order)",
			Setup{Options: Options{
				ReadWritePaths:      []Path{{Path: "/x"}},
				TemporaryFileSystem: []TmpFS{{Path: "/x", Options: "ro"}},
			}},
			[]string{"/x read-write ro"}},
		{"nothing under an inaccessible path",
			Setup{Options: Options{
				InaccessiblePaths: []Path{{Path: "/x"}},
				ReadWritePaths:    []Path{{Path: "/x/y"}, {Path: "/xy"}},
			}},
			[]string{"/x inaccessible ro", "/xy read-write"}},
		{"an entry that agrees with its parent is dropped",
			Setup{Options: Options{ProtectSystem: "yes", ReadOnlyPaths: []Path{{Path: "/usr/lib"}, {Path: "/usr/local", Optional: true}}}},
			[]string{"/boot read-only ro optional", "/efi read-only ro optional", "/usr read-only ro"}},
		{"component order: a directory before its contents",
			Setup{Options: Options{ReadOnlyPaths: []Path{{Path: "/a-b"}, {Path: "/a/b"}, {Path: "/a"}, {Path: "/a.b"}}}},
			[]string{"/a read-only ro", "/a-b read-only ro", "/a.b read-only ro"}},
		{"protect home",
			Setup{Options: Options{ProtectHome: "yes", ReadWritePaths: []Path{{Path: "/home/u/data"}}}},
			[]string{"/home inaccessible ro optional", "/root inaccessible ro optional", "/run/user inaccessible ro optional"}},
		{"protect home tmpfs", Setup{Options: Options{ProtectHome: "tmpfs"}},
			[]string{"/home tmpfs ro optional", "/root tmpfs ro optional", "/run/user tmpfs ro optional"}},
		{"kernel tunables, modules, control groups",
			Setup{Options: Options{ProtectKernelTunables: true, ProtectKernelModules: true, ProtectControlGroups: true}},
			[]string{
				"/lib/modules inaccessible ro optional",
				"/proc/acpi read-only ro optional", "/proc/apm read-only ro optional",
				"/proc/asound read-only ro optional", "/proc/bus read-only ro optional",
				"/proc/fs read-only ro optional", "/proc/irq read-only ro optional",
				"/proc/kallsyms inaccessible ro optional", "/proc/kcore inaccessible ro optional",
				"/proc/latency_stats read-only ro optional", "/proc/mtrr read-only ro optional",
				"/proc/scsi read-only ro optional", "/proc/sys read-only ro optional",
				"/proc/sysrq-trigger read-only ro optional", "/proc/timer_stats read-only ro optional",
				"/sys read-only ro",
				// /sys/fs/cgroup: read-only with /sys; selinux put back
				"/sys/fs/selinux rw-implicit restore optional",
				"/usr/lib/modules inaccessible ro optional",
			}},
		{"kernel tunables alone leave /sys/fs/cgroup as it is",
			Setup{Options: Options{ProtectKernelTunables: true, ProtectSystem: "yes"}},
			[]string{
				"/boot read-only ro optional", "/efi read-only ro optional",
				"/proc/acpi read-only ro optional", "/proc/apm read-only ro optional",
				"/proc/asound read-only ro optional", "/proc/bus read-only ro optional",
				"/proc/fs read-only ro optional", "/proc/irq read-only ro optional",
				"/proc/kallsyms inaccessible ro optional", "/proc/kcore inaccessible ro optional",
				"/proc/latency_stats read-only ro optional", "/proc/mtrr read-only ro optional",
				"/proc/scsi read-only ro optional", "/proc/sys read-only ro optional",
				"/proc/sysrq-trigger read-only ro optional", "/proc/timer_stats read-only ro optional",
				"/sys read-only ro",
				"/sys/fs/cgroup rw-implicit restore optional", "/sys/fs/selinux rw-implicit restore optional",
				"/usr read-only ro",
			}},
		{"private devices", Setup{Options: strict(Options{PrivateDevices: true})},
			append(append([]string{"/ read-only ro"}, "/dev private-dev restore"), strictKeeps[1:]...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es, err := wanted(&tt.s)
			if err != nil {
				t.Fatal(err)
			}
			got := describe(normalize(es))
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tt.want, "\n\t"))
			}
		})
	}
}

// TestPlanSources checks that an entry names the option it came from.
func TestPlanSources(t *testing.T) {
	es, err := wanted(&Setup{Options: Options{
		ProtectSystem:       "strict",
		ReadWritePaths:      []Path{{Path: "/srv/a", Optional: true}},
		TemporaryFileSystem: []TmpFS{{Path: "/srv/t", Options: "ro,mode=0700"}},
		PrivateTmp:          true,
	}, TmpDir: "/x", VarTmpDir: "/y", Writable: []string{"/run/app"}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range normalize(es) {
		got[e.path] = e.source
	}
	want := map[string]string{
		"/": "ProtectSystem=strict", "/proc": "ProtectSystem=strict",
		"/srv/a": "ReadWritePaths=/srv/a", "/srv/t": "TemporaryFileSystem=/srv/t:ro,mode=0700",
		"/tmp": "PrivateTmp=yes", "/run/app": "writable directory /run/app",
	}
	for p, src := range want {
		if got[p] != src {
			t.Errorf("%s: source %q; want %q", p, got[p], src)
		}
	}
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		s    Setup
		want string
	}{
		{Setup{Options: Options{ProtectSystem: "yes please"}}, "ProtectSystem=yes please: want yes, full or strict"},
		{Setup{Options: Options{ProtectHome: "no"}}, "ProtectHome=no: want yes, read-only or tmpfs"},
		{Setup{Options: Options{ReadOnlyPaths: []Path{{Path: "etc"}}}}, `ReadOnlyPaths=etc: "etc" is not a normalized absolute path`},
		{Setup{Options: Options{InaccessiblePaths: []Path{{Path: "/srv/../etc"}}}}, `InaccessiblePaths=/srv/../etc: "/srv/../etc" is not a normalized absolute path`},
		{Setup{Options: Options{TemporaryFileSystem: []TmpFS{{Path: "x"}}}}, `TemporaryFileSystem=x: "x" is not a normalized absolute path`},
		{Setup{Options: Options{PrivateTmp: true}, TmpDir: "/x"}, "PrivateTmp=yes: no private directories"},
	}
	for _, tt := range tests {
		_, err := wanted(&tt.s)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%+v: got %v; want %q", tt.s.Options, err, tt.want)
		}
	}
}

func TestTmpfsOptions(t *testing.T) {
	defaults := tmpfsOptions{attrs: attrNodev | attrStrictatime}
	tests := []struct {
		opts   string
		attrs  mountAttrs
		ro     bool
		params []string
	}{
		{"", attrNodev | attrStrictatime, false, nil},
		{"ro,mode=0700", attrNodev | attrStrictatime, true, []string{"mode=0700"}},
		{"nosuid,noexec,dev,size=1m,,rw", attrNosuid | attrNoexec | attrStrictatime, false, []string{"size=1m"}},
		{"noatime,nodiratime,huge=always,noswap", attrNodev | attrNoatime | attrNodiratime, false, []string{"huge=always", "noswap"}},
		{"noatime,atime", attrNodev | attrRelatime, false, nil},
		{"ro,rw,exec,suid", attrNodev | attrStrictatime, false, nil},
	}
	for _, tt := range tests {
		o := defaults.with(tt.opts)
		if o.attrs != tt.attrs || o.ro != tt.ro || !slices.Equal(o.params, tt.params) {
			t.Errorf("%q: got %#x ro=%v %q; want %#x ro=%v %q", tt.opts, o.attrs, o.ro, o.params, tt.attrs, tt.ro, tt.params)
		}
	}
	// TemporaryFileSystem='s own defaults come first, the unit's words after.
	es, err := wanted(&Setup{Options: Options{TemporaryFileSystem: []TmpFS{{Path: "/x", Options: "mode=0700,ro"}}}})
	if err != nil {
		t.Fatal(err)
	}
	o := es[0].tmpfs
	if !es[0].ro || !slices.Equal(o.params, []string{"mode=0755", "size=10%", "nr_inodes=400k", "mode=0700"}) {
		t.Errorf("TemporaryFileSystem=/x:mode=0700,ro: ro=%v params %q", es[0].ro, o.params)
	}
}

func TestNeedsStaging(t *testing.T) {
	for _, tt := range []struct {
		o    Options
		want bool
	}{
		{Options{ProtectSystem: "strict", PrivateTmp: true}, false},
		{Options{ProtectHome: "yes"}, true},
		{Options{ProtectHome: "tmpfs"}, false},
		{Options{PrivateDevices: true}, true},
		{Options{ProtectKernelTunables: true}, true}, // /proc/kallsyms
	} {
		es, err := wanted(&Setup{Options: tt.o, TmpDir: "/x", VarTmpDir: "/y"})
		if err != nil {
			t.Fatal(err)
		}
		if got := indexStaged(normalize(es)) >= 0; got != tt.want {
			t.Errorf("%+v: needs staging %v; want %v", tt.o, got, tt.want)
		}
	}
}
