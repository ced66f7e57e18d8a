package sandbox

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
)

const (
	capChown          = 0
	capNetBindService = 10
)

// capHex is a set as /proc/*/status shows it.
func capHex(c CapSet) string { return fmt.Sprintf("%016x", uint64(c)) }

// TestBoundingKept checks which capabilities the options keep in the
// bounding set.
func TestBoundingKept(t *testing.T) {
	netBind := CapSet(1 << capNetBindService)
	all := AllCaps
	for _, c := range []struct {
		name     string
		o        Options
		keep     CapSet
		narrowed bool
	}{
		{"nothing", Options{}, ^CapSet(0), false},
		{"every capability", Options{CapabilityBoundingSet: new(^CapSet(0))}, ^CapSet(0), false},
		{"CapabilityBoundingSet=", Options{CapabilityBoundingSet: &netBind}, netBind, true},
		{"PrivateDevices=", Options{PrivateDevices: true}, ^CapSet(1<<capMknod | 1<<capSysRawio), true},
		{"ProtectKernelModules=", Options{ProtectKernelModules: true}, ^CapSet(1 << capSysModule), true},
		{"all three", Options{CapabilityBoundingSet: &all, PrivateDevices: true, ProtectKernelModules: true},
			AllCaps &^ (1<<capMknod | 1<<capSysRawio | 1<<capSysModule), true},
	} {
		keep, narrowed := boundingKept(&c.o)
		if keep != c.keep || narrowed != c.narrowed {
			t.Errorf("%s: got %s (%v), want %s (%v)", c.name, keep, narrowed, c.keep, c.narrowed)
		}
	}
}

// TestCapabilityBoundingSet runs a root service with only
// CAP_NET_BIND_SERVICE in its bounding set: it has no other capability,
// and chown(1) fails. A group change still works, although it needs
// CAP_SETGID, which the bounding set drops.
func TestCapabilityBoundingSet(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := fmt.Sprintf(`cat /proc/$$/status
touch %[1]s/f
if chown 65534 %[1]s/f 2>/dev/null; then echo chown: ok; else echo chown: failed; fi`, dir)
	netBind := CapSet(1 << capNetBindService)
	for _, c := range []struct {
		name     string
		o        Options
		gid      uint32
		bnd, eff string // "" for the full set
		chown    string
	}{
		{"unrestricted", Options{}, 0, "", "", "ok"},
		{"CAP_NET_BIND_SERVICE", Options{CapabilityBoundingSet: &netBind}, 0, capHex(netBind), capHex(netBind), "failed"},
		{"CAP_NET_BIND_SERVICE, group nogroup", Options{CapabilityBoundingSet: &netBind}, 65534, capHex(netBind), capHex(netBind), "failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runSandboxed(t, &Setup{Options: c.o}, 0, c.gid, script)
			if r.err != nil {
				t.Fatalf("%v, stderr %q", r.err, r.stderr)
			}
			got := keyValues(r.stdout, ":")
			want := map[string]string{"chown": c.chown, "CapInh": capHex(0), "CapAmb": capHex(0)}
			if c.bnd != "" {
				want["CapBnd"], want["CapEff"], want["CapPrm"] = c.bnd, c.eff, c.eff
			}
			expectValues(t, got, want)
		})
	}
}

// TestAmbientCapabilities runs nobody with and without
// AmbientCapabilities=CAP_NET_BIND_SERVICE, and root with it: with it,
// the capability is ambient and effective, and a port below 1024 can be
// bound.
func TestAmbientCapabilities(t *testing.T) {
	t.Parallel()
	port := freePrivilegedPort(t)
	bind := fmt.Sprintf("bind:%d", port)
	script := probeScript(t, `cat /proc/$$/status; python3 -c "$P" securebits `+bind)
	netBind := CapSet(1 << capNetBindService)
	netBindChown := netBind | 1<<capChown
	for _, c := range []struct {
		name string
		o    Options
		uid  uint32
		want map[string]string
	}{
		{"nobody", Options{}, 65534, map[string]string{
			"CapEff": capHex(0), "CapAmb": capHex(0), bind: "EACCES"}},
		{"nobody, ambient", Options{AmbientCapabilities: netBind}, 65534, map[string]string{
			"CapEff": capHex(netBind), "CapPrm": capHex(netBind), "CapInh": capHex(netBind), "CapAmb": capHex(netBind),
			bind: "ok", "securebits": "0"}}, // the keep-caps setSecureBits added is gone
		{"nobody, ambient, bounded", Options{AmbientCapabilities: netBind, CapabilityBoundingSet: &netBindChown}, 65534, map[string]string{
			"CapEff": capHex(netBind), "CapAmb": capHex(netBind), "CapBnd": capHex(netBindChown), bind: "ok"}},
		{"root, ambient, bounded", Options{AmbientCapabilities: netBind, CapabilityBoundingSet: &netBindChown}, 0, map[string]string{
			"CapEff": capHex(netBindChown), "CapAmb": capHex(netBind), bind: "ok"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runSandboxed(t, &Setup{Options: c.o}, c.uid, c.uid, script)
			if r.err != nil {
				t.Fatalf("%v, stderr %q", r.err, r.stderr)
			}
			got := keyValues(r.stdout, ":")
			for k, v := range keyValues(r.stdout, " ") {
				got[k] = v
			}
			expectValues(t, got, c.want)
		})
	}

	// An ambient capability outside the bounding set is an error, which
	// names it.
	chown := CapSet(1 << capChown)
	r := runSandboxed(t, &Setup{Options: Options{AmbientCapabilities: netBind, CapabilityBoundingSet: &chown}}, 65534, 65534, "true")
	if r.err == nil || !strings.Contains(r.stderr, "CAP_NET_BIND_SERVICE not in the capability bounding set") {
		t.Errorf("ambient outside the bounding set: %v, stderr %q", r.err, r.stderr)
	}
}

// freePrivilegedPort is a TCP port below 1024 that nothing listens on
// at 127.0.0.1 now.
func freePrivilegedPort(t *testing.T) int {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("binding a privileged port needs root")
	}
	for port := 1000; port > 900; port-- {
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			l.Close()
			return port
		}
	}
	t.Skip("no free port in 901-1000")
	return 0
}

// TestSecureBits sets noroot: root's program starts without
// capabilities. keep-caps, cleared by execve, is not seen.
func TestSecureBits(t *testing.T) {
	t.Parallel()
	script := probeScript(t, `cat /proc/$$/status; python3 -c "$P" securebits`)
	var bits SecureBits
	for _, w := range []string{"noroot", "noroot-locked", "keep-caps"} {
		b, err := ParseSecureBit(w)
		if err != nil {
			t.Fatal(err)
		}
		bits |= b
	}
	r := runSandboxed(t, &Setup{Options: Options{SecureBits: bits}}, 0, 0, script)
	if r.err != nil {
		t.Fatalf("%v, stderr %q", r.err, r.stderr)
	}
	got := keyValues(r.stdout, ":")
	for k, v := range keyValues(r.stdout, " ") {
		got[k] = v
	}
	expectValues(t, got, map[string]string{"CapEff": capHex(0), "CapPrm": capHex(0), "securebits": "3"})
}
