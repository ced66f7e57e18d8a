package sandbox

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The mount tests run real sandboxes (runSandboxed) and look at them
// from inside with a list of checks: each a shell command and what it
// should end with: "ok", the last part of its error ("Read-only file
// system", "Permission denied"), or "failed" if it failed silently. Every sandbox is also checked from
// outside: the host's mount table is the same before and after, and the
// staging directory is still empty.

const nobody = 65534

// check is one command run in the sandbox and what it should give.
type check struct {
	cmd, want string
}

// tryShell defines try: it runs its arguments and prints one line, "ok"
// or what the error says after its last ": " ("failed" if nothing); and
// empty, which fails unless the directories it is given are empty.
const tryShell = `try() {
	if out=$("$@" 2>&1); then echo ok
	elif [ -n "$out" ]; then out=$(echo $out); echo "${out##*: }"
	else echo failed; fi
}
empty() { test -z "$(find "$@" -mindepth 1 -maxdepth 1)"; }
`

// mountinfoMark separates the checks' output from the sandbox's
// /proc/self/mountinfo, which sandboxed always prints last.
const mountinfoMark = "--- mountinfo ---\n"

// sandboxed runs the checks in a sandbox made from s (with a staging
// directory of its own if s has none) as uid, and fails t if any gives
// something else, if the sandbox did not start, or if the host's mount
// table changed. It returns the sandbox's mountinfo.
func sandboxed(t *testing.T, s *Setup, uid uint32, checks ...check) string {
	t.Helper()
	r := sandboxedResult(t, s, uid, checks...)
	if r.err != nil {
		t.Fatalf("as uid %d: %v: %s", uid, r.err, r.stderr)
	}
	out, mountinfo, _ := strings.Cut(r.stdout, mountinfoMark)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(checks) {
		t.Fatalf("as uid %d: got %q (stderr %q); want %d lines", uid, out, r.stderr, len(checks))
	}
	for i, c := range checks {
		if lines[i] != c.want {
			t.Errorf("as uid %d, %s: got %q; want %q", uid, c.cmd, lines[i], c.want)
		}
	}
	return mountinfo
}

// sandboxedResult is sandboxed without looking at the result.
func sandboxedResult(t *testing.T, s *Setup, uid uint32, checks ...check) result {
	t.Helper()
	if s.Staging == "" {
		s.Staging = t.TempDir()
	}
	var script strings.Builder
	script.WriteString(tryShell)
	for _, c := range checks {
		fmt.Fprintf(&script, "try %s\n", c.cmd)
	}
	fmt.Fprintf(&script, "printf %%s '%s'; cat /proc/self/mountinfo\n", mountinfoMark)

	before := readFile(t, "/proc/self/mountinfo")
	r := runSandboxed(t, s, uid, uid, script.String())
	if after := readFile(t, "/proc/self/mountinfo"); after != before {
		t.Errorf("the host's mount table changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if ents, err := os.ReadDir(s.Staging); err != nil || len(ents) != 0 {
		t.Errorf("staging directory on the host: %v, %v; want it empty", ents, err)
	}
	return r
}

// startFails runs a sandbox made from s that must fail to start with an
// error containing want.
func startFails(t *testing.T, s *Setup, want string) {
	t.Helper()
	r := sandboxedResult(t, s, 0, check{"true", "ok"})
	if r.err == nil || !strings.Contains(r.stderr, want) {
		t.Errorf("got %v, stderr %q; want a failed start with %q", r.err, r.stderr, want)
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mountOptions returns the per-mount options of the mount that a
// process whose mountinfo this is sees at p. It walks down from the root
// as a path lookup does, taking at each mount point the mount on top of
// the stack there (mounts hidden under others are in mountinfo too).
func mountOptions(t *testing.T, mountinfo, p string) []string {
	t.Helper()
	type mount struct{ id, parent, point, opts string }
	var ms []mount
	for _, line := range strings.Split(mountinfo, "\n") {
		if f := strings.Fields(line); len(f) >= 6 {
			ms = append(ms, mount{f[0], f[1], f[4], f[5]})
		}
	}
	// child is the mount on cur, on cur's own root (stacked) if same,
	// else the deepest one on the way to p.
	child := func(cur mount, same bool) (mount, bool) {
		var best mount
		found := false
		for _, m := range ms {
			ok := m.parent == cur.id && (same && m.point == cur.point ||
				!same && (m.point == p || isUnder(p, m.point)) && isUnder(m.point, cur.point))
			if ok && (!found || len(m.point) > len(best.point)) {
				best, found = m, true
			}
		}
		return best, found
	}
	i := slices.IndexFunc(ms, func(m mount) bool {
		return m.point == "/" && !slices.ContainsFunc(ms, func(o mount) bool { return o.id == m.parent })
	})
	if i < 0 {
		t.Fatalf("no root mount in\n%s", mountinfo)
	}
	cur := ms[i]
	for {
		for up, ok := child(cur, true); ok; up, ok = child(cur, true) {
			cur = up
		}
		next, ok := child(cur, false)
		if !ok {
			return strings.Split(cur.opts, ",")
		}
		cur = next
	}
}

// wantMountRO fails t unless the mount seen at p is read-only (ro true)
// or not.
func wantMountRO(t *testing.T, mountinfo, p string, ro bool) {
	t.Helper()
	if opts := mountOptions(t, mountinfo, p); slices.Contains(opts, "ro") != ro {
		t.Errorf("mount at %s: options %q; want read-only %v", p, opts, ro)
	}
}

// sharedDir makes a directory that nobody (65534) can write too.
func sharedDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	// t.TempDir's parent is 0700.
	if err := os.Chmod(filepath.Dir(d), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o1777); err != nil {
		t.Fatal(err)
	}
	return d
}

// outsideTmp makes a directory that nobody can write, out of /tmp and
// /var/tmp, which PrivateTmp= replaces.
func outsideTmp(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/var/lib", "sockd-sandbox-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o1777); err != nil {
		t.Fatal(err)
	}
	return d
}

// wantFile fails t unless the host has name with content.
func wantFile(t *testing.T, name, content string) {
	t.Helper()
	if b, err := os.ReadFile(name); err != nil || string(b) != content {
		t.Errorf("on the host, %s: %q, %v; want %q", name, b, err, content)
	}
}

// hostLitter removes files a failing test may have made where the
// sandbox should have stopped it.
func hostLitter(t *testing.T, names ...string) {
	t.Cleanup(func() {
		for _, n := range names {
			os.Remove(n)
		}
	})
}

// TestMountAttrs checks plan.go's copy of MOUNT_ATTR_*.
func TestMountAttrs(t *testing.T) {
	for _, c := range []struct {
		ours mountAttrs
		unix uint64
	}{
		{attrRdonly, unix.MOUNT_ATTR_RDONLY}, {attrNosuid, unix.MOUNT_ATTR_NOSUID},
		{attrNodev, unix.MOUNT_ATTR_NODEV}, {attrNoexec, unix.MOUNT_ATTR_NOEXEC},
		{attrAtime, unix.MOUNT_ATTR__ATIME}, {attrRelatime, unix.MOUNT_ATTR_RELATIME},
		{attrNoatime, unix.MOUNT_ATTR_NOATIME}, {attrStrictatime, unix.MOUNT_ATTR_STRICTATIME},
		{attrNodiratime, unix.MOUNT_ATTR_NODIRATIME},
	} {
		if uint64(c.ours) != c.unix {
			t.Errorf("%#x; want %#x", c.ours, c.unix)
		}
	}
}

func TestProtectSystemStrict(t *testing.T) {
	hostLitter(t, "/usr/.sockd-sandbox-test", "/etc/.sockd-sandbox-test")
	for _, uid := range []uint32{0, nobody} {
		rw, state := sharedDir(t), sharedDir(t)
		mi := sandboxed(t, &Setup{
			Options:  Options{ProtectSystem: "strict", ReadWritePaths: []Path{{Path: rw}}},
			Writable: []string{state, "/nonexistent/state"},
		}, uid,
			check{"touch /usr/.sockd-sandbox-test", "Read-only file system"},
			check{"touch /etc/.sockd-sandbox-test", "Read-only file system"},
			check{"touch /var/.sockd-sandbox-test", "Read-only file system"},
			check{"touch /tmp/.sockd-sandbox-test", "Read-only file system"},
			check{"sh -c 'echo x >/dev/null'", "ok"},
			check{"sh -c 'echo rw >" + rw + "/f'", "ok"},
			check{"sh -c 'echo state >" + state + "/f'", "ok"},
		)
		wantFile(t, rw+"/f", "rw\n")
		wantFile(t, state+"/f", "state\n")
		wantMountRO(t, mi, "/", true)
		wantMountRO(t, mi, rw, false)
		// The API file systems keep the host's modes.
		for _, p := range []string{"/proc", "/sys", "/dev", "/dev/shm"} {
			wantMountRO(t, mi, p, false)
		}
	}
}

func TestProtectSystemYesFull(t *testing.T) {
	hostLitter(t, "/usr/.sockd-sandbox-test")
	mi := sandboxed(t, &Setup{Options: Options{ProtectSystem: "yes"}}, 0,
		check{"touch /usr/.sockd-sandbox-test", "Read-only file system"},
		check{"test -w /etc", "ok"},
		check{"test -w /var", "ok"},
	)
	wantMountRO(t, mi, "/usr", true)
	wantMountRO(t, mi, "/etc", false)

	mi = sandboxed(t, &Setup{Options: Options{ProtectSystem: "full"}}, 0,
		check{"test -w /usr", "failed"},
		check{"test -w /etc", "failed"},
		check{"test -w /var", "ok"},
	)
	wantMountRO(t, mi, "/etc", true)
	wantMountRO(t, mi, "/var", false)
}

func TestPrivateTmp(t *testing.T) {
	host, err := os.CreateTemp("/tmp", "sockd-sandbox-host-")
	if err != nil {
		t.Fatal(err)
	}
	host.Close()
	t.Cleanup(func() { os.Remove(host.Name()) })

	for _, tt := range []struct {
		uid uint32
		o   Options
	}{
		{0, Options{PrivateTmp: true}},
		{nobody, Options{PrivateTmp: true, ProtectSystem: "strict"}},
		{0, Options{PrivateTmp: true, ProtectSystem: "strict", PrivateUsers: true}},
		{nobody, Options{PrivateTmp: true, PrivateUsers: true}},
	} {
		tmp, vartmp := sharedDir(t), sharedDir(t)
		sandboxed(t, &Setup{Options: tt.o, TmpDir: tmp, VarTmpDir: vartmp}, tt.uid,
			check{"test -e " + host.Name(), "failed"},
			check{"empty /tmp /var/tmp", "ok"},
			check{"sh -c 'echo tmp >/tmp/f'", "ok"},
			check{"sh -c 'echo vartmp >/var/tmp/f'", "ok"},
		)
		wantFile(t, tmp+"/f", "tmp\n")
		wantFile(t, vartmp+"/f", "vartmp\n")
	}
}

func TestProtectHome(t *testing.T) {
	hostLitter(t, "/root/.sockd-sandbox-test")
	// As root, who may read a mode-0000 directory, /root is empty.
	mi := sandboxed(t, &Setup{Options: Options{ProtectHome: "yes"}}, 0,
		check{"empty /root /home", "ok"},
		check{"touch /root/.sockd-sandbox-test", "Read-only file system"},
		check{`sh -c 'test "$(stat -c %a /root)" = 0'`, "ok"},
	)
	wantMountRO(t, mi, "/root", true)
	sandboxed(t, &Setup{Options: Options{ProtectHome: "yes"}}, nobody,
		check{"ls /root", "Permission denied"},
		check{"ls /home", "Permission denied"},
	)
	sandboxed(t, &Setup{Options: Options{ProtectHome: "read-only"}}, 0,
		check{"empty /root", "failed"},
		check{"touch /root/.sockd-sandbox-test", "Read-only file system"},
	)
	sandboxed(t, &Setup{Options: Options{ProtectHome: "tmpfs"}}, 0,
		check{"empty /root /home", "ok"},
		check{"touch /root/.sockd-sandbox-test", "Read-only file system"},
		check{`sh -c 'test "$(stat -c %a /root /home)" = "700
755"'`, "ok"},
	)
}

func TestInaccessiblePaths(t *testing.T) {
	d := sharedDir(t)
	dir, file, fifo, sock := d+"/dir", d+"/file", d+"/fifo", d+"/sock"
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{dir + "/secret", file} {
		if err := os.WriteFile(name, []byte("secret\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mkfifo(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	paths := []Path{{Path: dir}, {Path: file}, {Path: fifo}, {Path: sock}, {Path: d + "/missing", Optional: true}}
	sandboxed(t, &Setup{Options: Options{InaccessiblePaths: paths}}, nobody,
		check{"ls " + dir, "Permission denied"},
		check{"cat " + dir + "/secret", "Permission denied"},
		check{"cat " + file, "Permission denied"},
		check{"test -p " + fifo, "failed"},
		check{"test -S " + sock, "failed"},
		check{"touch " + d + "/other", "ok"},
	)
	// Root may open mode-0000 nodes: it finds them empty.
	sandboxed(t, &Setup{Options: Options{InaccessiblePaths: paths}}, 0,
		check{"empty " + dir, "ok"},
		check{"test -s " + file, "failed"},
		check{"touch " + file, "Read-only file system"},
		check{"touch " + dir + "/x", "Read-only file system"},
	)
	wantFile(t, file, "secret\n")

	startFails(t, &Setup{Options: Options{InaccessiblePaths: []Path{{Path: d + "/missing"}}}},
		"InaccessiblePaths="+d+"/missing: no such file or directory")
	startFails(t, &Setup{Options: Options{ReadWritePaths: []Path{{Path: d + "/missing/x"}}}},
		"ReadWritePaths="+d+"/missing/x: lstat "+d+"/missing: no such file or directory")
}

// TestNesting checks that the deepest entry decides: read-only under
// read-write, and read-write under read-only.
func TestNesting(t *testing.T) {
	hostLitter(t, "/var/.sockd-sandbox-test")
	for _, uid := range []uint32{0, nobody} {
		a, b := sharedDir(t), sharedDir(t)
		for _, d := range []string{a + "/conf", b + "/data", b + "/data/conf"} {
			if err := os.Mkdir(d, 0); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(d, 0o1777); err != nil {
				t.Fatal(err)
			}
		}
		sandboxed(t, &Setup{Options: Options{
			ProtectSystem:  "strict",
			ReadWritePaths: []Path{{Path: a}, {Path: b + "/data"}},
			ReadOnlyPaths:  []Path{{Path: a + "/conf"}, {Path: b}, {Path: b + "/data/conf"}},
		}}, uid,
			check{"sh -c 'echo a >" + a + "/f'", "ok"},
			check{"touch " + a + "/conf/f", "Read-only file system"},
			check{"touch " + b + "/f", "Read-only file system"},
			check{"sh -c 'echo data >" + b + "/data/f'", "ok"},
			check{"touch " + b + "/data/conf/f", "Read-only file system"},
			check{"touch /var/.sockd-sandbox-test", "Read-only file system"},
		)
		wantFile(t, a+"/f", "a\n")
		wantFile(t, b+"/data/f", "data\n")
	}
}

func TestTemporaryFileSystem(t *testing.T) {
	ro, rw := sharedDir(t), sharedDir(t)
	for _, d := range []string{ro, rw} {
		if err := os.WriteFile(d+"/host", nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mi := sandboxed(t, &Setup{Options: Options{TemporaryFileSystem: []TmpFS{
		{Path: ro, Options: "ro,mode=0700"},
		{Path: rw, Options: "mode=1777,nosuid,size=1m"},
	}}}, 0,
		check{"empty " + ro + " " + rw, "ok"},
		check{"touch " + ro + "/f", "Read-only file system"},
		check{"sh -c 'echo x >" + rw + "/f'", "ok"},
		check{`sh -c 'test "$(stat -c %a ` + ro + ` ` + rw + `)" = "700
1777"'`, "ok"},
	)
	wantMountRO(t, mi, ro, true)
	if opts := mountOptions(t, mi, rw); !slices.Contains(opts, "nosuid") || !slices.Contains(opts, "nodev") {
		t.Errorf("TemporaryFileSystem=%s:nosuid: mount options %q; want nosuid and the default nodev", rw, opts)
	}
	if _, err := os.Stat(rw + "/f"); err == nil {
		t.Errorf("a file written to the tmpfs is on the host")
	}

	startFails(t, &Setup{Options: Options{TemporaryFileSystem: []TmpFS{{Path: rw, Options: "size=lots"}}}},
		"TemporaryFileSystem="+rw+":size=lots: tmpfs option size=lots: invalid argument")
	startFails(t, &Setup{Options: Options{TemporaryFileSystem: []TmpFS{{Path: rw + "/missing"}}}},
		"TemporaryFileSystem="+rw+"/missing: no such file or directory")
}

func TestPrivateDevices(t *testing.T) {
	for _, tt := range []struct {
		uid uint32
		o   Options
	}{
		{0, Options{PrivateDevices: true}},
		{nobody, Options{PrivateDevices: true, ProtectSystem: "strict"}},
		{0, Options{PrivateDevices: true, PrivateUsers: true}},
	} {
		mi := sandboxed(t, &Setup{Options: tt.o}, tt.uid,
			check{"test -c /dev/null -a -c /dev/zero -a -c /dev/full -a -c /dev/random -a -c /dev/urandom -a -c /dev/tty", "ok"},
			check{`sh -c 'test -z "$(find /dev -type b)"'`, "ok"},
			check{"sh -c 'echo x >/dev/null'", "ok"},
			check{"head -c 1 /dev/urandom", "ok"},
			check{"touch /dev/x", "Read-only file system"},
			check{"touch /dev/shm/x", "ok"},
			check{"test -L /dev/ptmx -a -c /dev/pts/ptmx", "ok"},
			check{"test /dev/stdout -ef /proc/self/fd/1", "ok"},
			check{`sh -c 'test "$(ls /dev/pts)" = ptmx'`, "ok"},
			// A pty from the namespace's own devpts: the first.
			check{`sh -c 'script -q -c tty /dev/null </dev/null | grep -q ^/dev/pts/0'`, "ok"},
		)
		wantMountRO(t, mi, "/dev", true)
		wantMountRO(t, mi, "/dev/shm", false)
		wantMountRO(t, mi, "/dev/pts", false)
	}
}

func TestProtectKernel(t *testing.T) {
	mi := sandboxed(t, &Setup{Options: Options{ProtectKernelTunables: true}}, 0,
		check{"sh -c 'echo sockd >/proc/sys/kernel/domainname'", "Read-only file system"},
		check{"test -w /sys/kernel", "failed"},
		check{"test -s /proc/kallsyms", "failed"},
	)
	wantMountRO(t, mi, "/proc", false)
	wantMountRO(t, mi, "/proc/sys", true)
	wantMountRO(t, mi, "/sys", true)
	// /sys/fs/cgroup is ProtectControlGroups='s.
	wantMountRO(t, mi, "/sys/fs/cgroup", false)

	mi = sandboxed(t, &Setup{Options: Options{ProtectControlGroups: true}}, 0,
		check{"test -w /sys/fs/cgroup", "failed"},
	)
	wantMountRO(t, mi, "/sys/fs/cgroup", true)
	wantMountRO(t, mi, "/sys", false)

	want := check{"ls -A /lib/modules /usr/lib/modules", "No such file or directory"}
	if _, err := os.Stat("/usr/lib/modules"); err == nil {
		want = check{"empty /lib/modules /usr/lib/modules", "ok"}
	}
	sandboxed(t, &Setup{Options: Options{ProtectKernelModules: true}}, 0, want)
}

// TestSymlinks checks the rule for symlinks on a unit's paths (resolve):
// root's are followed and the mount goes on their target; another
// user's fail the start.
func TestSymlinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("sandboxing needs root")
	}
	d := sharedDir(t)
	real, link, userLink := d+"/real", d+"/link", d+"/user-link"
	if err := os.Mkdir(real, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(real, 0o1777); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{link, userLink} {
		if err := os.Symlink("real", l); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Lchown(userLink, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	userEtc := d + "/etc"
	if err := os.Symlink("/etc", userEtc); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(userEtc, nobody, nobody); err != nil {
		t.Fatal(err)
	}

	sandboxed(t, &Setup{Options: Options{ProtectSystem: "strict", ReadWritePaths: []Path{{Path: link}}}}, nobody,
		check{"sh -c 'echo x >" + link + "/f'", "ok"},
		check{"touch " + d + "/f", "Read-only file system"},
	)
	wantFile(t, real+"/f", "x\n")
	sandboxed(t, &Setup{Options: Options{InaccessiblePaths: []Path{{Path: link}}}}, nobody,
		check{"ls " + real, "Permission denied"},
		check{"test -L " + link, "ok"},
	)

	for _, o := range []Options{
		{ProtectSystem: "strict", ReadWritePaths: []Path{{Path: userEtc}}},
		{ProtectSystem: "strict", ReadWritePaths: []Path{{Path: userEtc + "/ssl", Optional: true}}},
	} {
		startFails(t, &Setup{Options: o}, "symlink "+userEtc+" is not root's: not followed")
	}
	startFails(t, &Setup{Options: Options{InaccessiblePaths: []Path{{Path: userLink}}}},
		"InaccessiblePaths="+userLink+": symlink "+userLink+" is not root's: not followed")
}

func TestMountErrors(t *testing.T) {
	startFails(t, &Setup{Options: Options{ReadOnlyPaths: []Path{{Path: "/nonexistent/sockd"}}}},
		"ReadOnlyPaths=/nonexistent/sockd: lstat /nonexistent: no such file or directory")
	sandboxed(t, &Setup{Options: Options{ReadOnlyPaths: []Path{{Path: "/nonexistent/sockd", Optional: true}}}}, 0,
		check{"true", "ok"})
	startFails(t, &Setup{Options: Options{PrivateTmp: true}}, "PrivateTmp=yes: no private directories")

	r := runSandboxed(t, &Setup{Options: Options{InaccessiblePaths: []Path{{Path: "/etc"}}}}, 0, 0, "true")
	if want := "InaccessiblePaths=/etc: no staging directory"; r.err == nil || !strings.Contains(r.stderr, want) {
		t.Errorf("got %v, %q; want %q", r.err, r.stderr, want)
	}
}

// TestMountsFds checks that the helper leaves the program no descriptor
// of its own: the shell has the same ones with every option as without.
func TestMountsFds(t *testing.T) {
	const script = "ls /proc/$$/fd"
	plain := runSandboxed(t, &Setup{}, 0, 0, script)
	tmp, vartmp := sharedDir(t), sharedDir(t)
	r := runSandboxed(t, &Setup{
		Options: Options{
			ProtectSystem: "strict", ProtectHome: "yes", PrivateTmp: true, PrivateDevices: true,
			ProtectKernelTunables: true, ProtectControlGroups: true, ProtectKernelModules: true,
			InaccessiblePaths:   []Path{{Path: "/etc/shadow"}},
			TemporaryFileSystem: []TmpFS{{Path: "/mnt"}},
		},
		TmpDir: tmp, VarTmpDir: vartmp, Staging: t.TempDir(),
	}, 0, 0, script)
	if plain.err != nil || r.err != nil || r.stdout != plain.stdout {
		t.Errorf("descriptors: got %q (%v, %s); want %q as without a sandbox (%v)", r.stdout, r.err, r.stderr, plain.stdout, plain.err)
	}
}

// TestReadWriteKeepsHostModes checks that ReadWritePaths= gives a path
// the host's access modes, as systemd.exec(5) says, and does not make a
// read-only mount under it writable; also in a user namespace, where
// the kernel would refuse to clear that read-only flag.
func TestReadWriteKeepsHostModes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting on the host needs root")
	}
	d := sharedDir(t)
	ro := d + "/ro"
	if err := os.Mkdir(ro, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", ro, "tmpfs", unix.MS_RDONLY, "size=64k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(ro, unix.MNT_DETACH) })
	for _, o := range []Options{
		{ProtectSystem: "strict", ReadWritePaths: []Path{{Path: d}}},
		{ProtectSystem: "strict", ReadWritePaths: []Path{{Path: d}}, PrivateUsers: true},
	} {
		sandboxed(t, &Setup{Options: o}, nobody,
			check{"touch " + d + "/f", "ok"},
			check{"touch " + ro + "/f", "Read-only file system"},
		)
	}
}

// TestPrivateUsersAll runs every mount option at once in a user
// namespace (PrivateUsers=), where the mounts copied from the host are
// locked: they can be covered and made read-only, not uncovered.
func TestPrivateUsersAll(t *testing.T) {
	hostLitter(t, "/etc/.sockd-sandbox-test")
	// Not under /tmp, which PrivateTmp= replaces.
	rw, hidden := outsideTmp(t), outsideTmp(t)
	tmp, vartmp := sharedDir(t), sharedDir(t)
	if err := os.WriteFile(hidden+"/secret", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, uid := range []uint32{0, nobody} {
		sandboxed(t, &Setup{Options: Options{
			PrivateUsers:  true,
			ProtectSystem: "strict", ProtectHome: "yes", PrivateTmp: true, PrivateDevices: true,
			ProtectKernelTunables: true, ProtectControlGroups: true, ProtectKernelModules: true,
			ReadWritePaths:      []Path{{Path: rw}},
			InaccessiblePaths:   []Path{{Path: hidden}},
			TemporaryFileSystem: []TmpFS{{Path: "/mnt", Options: "mode=0777"}},
		}, TmpDir: tmp, VarTmpDir: vartmp}, uid,
			check{"touch /etc/.sockd-sandbox-test", "Read-only file system"},
			check{"touch " + rw + "/" + fmt.Sprint(uid), "ok"},
			check{strings.ReplaceAll("touch /tmp/U /var/tmp/U /dev/shm/U /mnt/U", "U", fmt.Sprint(uid)), "ok"},
			check{"sh -c 'echo x >/dev/null'", "ok"},
			check{"sh -c 'echo x >/proc/sys/kernel/domainname'", "Read-only file system"},
			check{"empty " + hidden, "ok"},
			check{"empty /home /root", "ok"},
		)
	}
}

// TestResolve checks resolve's walk on its own: relative, absolute and
// ".." links, a loop, a missing path.
func TestResolve(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("resolve follows root's links only")
	}
	d := t.TempDir()
	for _, name := range []string{"a/b", "c"} {
		if err := os.MkdirAll(filepath.Join(d, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"a/up": "..", "a/b/abs": d + "/c", "rel": "a/b", "loop": "loop",
	} {
		if err := os.Symlink(target, filepath.Join(d, link)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct{ in, want, err string }{
		{d + "/a/b", d + "/a/b", ""},
		{d + "/rel/abs", d + "/c", ""},
		{d + "/a/up/c", d + "/c", ""},
		{d + "/rel/abs/missing", "", "lstat " + d + "/c/missing: no such file or directory"},
		{d + "/loop", "", "resolve " + d + "/loop: too many levels of symbolic links"},
	} {
		got, err := resolve(tt.in)
		errText := ""
		if err != nil {
			errText = err.Error()
		}
		if got != tt.want || errText != tt.err {
			t.Errorf("resolve(%s) = %q, %v; want %q, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}
