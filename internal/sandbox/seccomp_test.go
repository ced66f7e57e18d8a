package sandbox

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/sockd/sockd/internal/testutil"
	"golang.org/x/sys/unix"
)

// pyProbe is a python3 program that tries what the sandbox should allow
// or refuse, one system call per argument ("socket:2" is socket(AF_INET,
// SOCK_DGRAM, 0)), and prints each argument with "ok" or the errno's
// name. Through ctypes it makes the calls themselves, as a C program
// would. It holds no single quote, so a shell script can quote it.
const pyProbe = `
import ctypes, errno, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
libc.syscall.restype = ctypes.c_long
L = ctypes.c_long
FAILED = ctypes.c_void_p(-1).value

def name(e):
    return errno.errorcode.get(e, str(e))

def check(r, failed=-1):
    return name(ctypes.get_errno()) if r == failed else "ok"

def i386(nr, *args):
    # A system call through int 0x80 (i386), from code in a page that is
    # never writable: push rbx; mov eax, edi; mov ebx, esi; xchg ecx, edx;
    # mov esi, r8d; mov edi, r9d; int 0x80; pop rbx; ret.
    fd = os.memfd_create("i386")
    os.write(fd, bytes.fromhex("5389f889f387d14489c64489cfcd805bc3"))
    page = libc.mmap(None, 4096, 5, 2, fd, 0)
    call = ctypes.CFUNCTYPE(*[ctypes.c_int] * 7)(page)
    r = call(nr, *(list(args) + [0] * 5)[:5])
    return name(-r) if -4096 < r < 0 else "ok"

for arg in sys.argv[1:]:
    op, _, rest = arg.partition(":")
    a = [int(x, 0) for x in rest.split(",") if x]
    if op == "socket":
        r = check(libc.socket(a[0], socket.SOCK_DGRAM, 0))
    elif op == "socketpair":
        r = check(libc.socketpair(a[0], socket.SOCK_DGRAM, 0, (ctypes.c_int * 2)()))
    elif op == "x32socket":
        r = check(libc.syscall(L(0x40000000 | 41), L(a[0]), L(socket.SOCK_DGRAM), L(0)))
    elif op == "i386":
        r = i386(*a)
    elif op == "bind":
        try:
            socket.socket().bind(("127.0.0.1", a[0]))
            r = "ok"
        except OSError as e:
            r = name(e.errno)
    elif op == "securebits":
        r = str(libc.prctl(27, 0, 0, 0, 0))
    elif op == "mmap":
        r = check(libc.mmap(None, 4096, a[0], 0x22, -1, 0), FAILED)
    elif op == "mprotect":
        r = check(libc.mprotect(libc.mmap(None, 4096, 3, 0x22, -1, 0), 4096, a[0]))
    elif op == "pkey_mprotect":
        r = check(libc.syscall(L(a[0]), L(libc.mmap(None, 4096, 3, 0x22, -1, 0)), L(4096), L(a[1]), L(-1)))
    elif op == "shmat":
        r = check(libc.shmat(a[0], None, a[1]), FAILED)
    print(arg, r)
`

// probeScript is a shell script that has pyProbe in $P, for
// python3 -c "$P" in what follows.
func probeScript(t *testing.T, script string) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("the probes need /usr/bin/python3")
	}
	return "P='" + pyProbe + "'\n" + script
}

// probe runs pyProbe with args in a sandbox made from s, as uid, and
// returns what it printed for each argument.
func probe(t *testing.T, s *Setup, uid uint32, args ...string) map[string]string {
	t.Helper()
	script := probeScript(t, `exec python3 -c "$P" `+strings.Join(args, " "))
	r := runSandboxed(t, s, uid, uid, script)
	if r.err != nil {
		t.Fatalf("probe %v: %v, stderr %q", args, r.err, r.stderr)
	}
	return keyValues(r.stdout, " ")
}

// keyValues reads lines of "key<sep>value" (sep ":" for /proc/*/status).
func keyValues(out, sep string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, sep); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// expectValues fails t for every key of want that got holds otherwise.
func expectValues(t *testing.T, got, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %q, want %q", k, got[k], w)
		}
	}
}

// i386Works reports whether this machine runs i386 system calls from a
// 64-bit program (IA32 emulation): the probe's getpid(2), unsandboxed.
func i386Works() bool {
	if runtime.GOARCH != "amd64" {
		return false
	}
	out, err := exec.Command("/usr/bin/python3", "-c", pyProbe, "i386:20").Output()
	return err == nil && string(out) == "i386:20 ok\n"
}

// afs is RestrictAddressFamilies= of names ("~AF_INET6" for a deny-list).
func afs(names ...string) *AddressFamilies {
	f := &AddressFamilies{}
	for _, n := range names {
		if strings.HasPrefix(n, "~") {
			f.Deny, n = true, n[1:]
		}
		af, err := ParseAddressFamily(n)
		if err != nil {
			panic(err)
		}
		f.Families = append(f.Families, af)
	}
	return f
}

// TestRestrictAddressFamilies makes sockets of several families under
// allow-lists, a deny-list and "none": the refused ones fail with
// EAFNOSUPPORT, the others are made.
func TestRestrictAddressFamilies(t *testing.T) {
	t.Parallel()
	const no = "EAFNOSUPPORT"
	args := []string{"socket:1", "socket:2", "socket:10", "socket:16", "socketpair:1", "socketpair:2"}
	for _, c := range []struct {
		name string
		f    *AddressFamilies
		want []string // for each of args
	}{
		// socketpair(AF_INET) is not a thing: the kernel's own answer is
		// EOPNOTSUPP, which python calls ENOTSUP.
		{"unrestricted", nil, []string{"ok", "ok", "ok", "ok", "ok", "ENOTSUP"}},
		{"AF_UNIX", afs("AF_UNIX"), []string{"ok", no, no, no, "ok", no}},
		{"AF_UNIX AF_INET AF_NETLINK", afs("AF_INET", "AF_NETLINK", "AF_UNIX", "AF_INET"), []string{"ok", "ok", no, "ok", "ok", "ENOTSUP"}},
		{"~AF_INET6 AF_NETLINK", afs("~AF_INET6", "AF_NETLINK"), []string{"ok", "ok", no, no, "ok", "ENOTSUP"}},
		{"none", &AddressFamilies{}, []string{no, no, no, no, no, no}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := probe(t, &Setup{Options: Options{RestrictAddressFamilies: c.f}}, 0, args...)
			want := map[string]string{}
			for i, a := range args {
				want[a] = c.want[i]
			}
			expectValues(t, got, want)
		})
	}
}

// TestRestrictAddressFamiliesOtherABIs checks that amd64's other ways
// into the kernel are filtered too: x32 numbers (bit 30 set) and i386
// system calls through int 0x80, socketcall(2) among them.
func TestRestrictAddressFamiliesOtherABIs(t *testing.T) {
	t.Parallel()
	if runtime.GOARCH != "amd64" {
		t.Skip("amd64's x32 and i386 ABIs")
	}
	const no = "EAFNOSUPPORT"
	args := []string{"x32socket:1", "x32socket:2"}
	want := map[string]string{"x32socket:2": no}
	if i386Works() {
		args = append(args,
			"i386:359,1,2,0", "i386:359,2,2,0", // socket
			"i386:360,1,2,0,0", "i386:360,2,2,0,0", // socketpair, no room for the fds
			"i386:102,1,0", "i386:102,8,0", "i386:102,3,0") // socketcall: socket, socketpair, connect
		expectValues(t, probe(t, &Setup{}, 0, args[2:]...), map[string]string{
			"i386:359,2,2,0": "ok", "i386:360,1,2,0,0": "EFAULT", "i386:102,1,0": "EFAULT",
		})
		want["i386:359,1,2,0"] = "ok"
		want["i386:359,2,2,0"] = no
		want["i386:360,1,2,0,0"] = "EFAULT" // went through to the kernel
		want["i386:360,2,2,0,0"] = no
		want["i386:102,1,0"] = no
		want["i386:102,8,0"] = no
		want["i386:102,3,0"] = "EFAULT"
	} else {
		t.Log("no IA32 emulation: the i386 ABI is not tested")
	}
	got := probe(t, &Setup{Options: Options{RestrictAddressFamilies: afs("AF_UNIX")}}, 0, args...)
	expectValues(t, got, want)
	// This kernel may not have x32; the filter must not stand in its way.
	if r := got["x32socket:1"]; r != "ok" && r != "ENOSYS" {
		t.Errorf("x32socket:1: got %q, want ok or ENOSYS", r)
	}
}

// TestMemoryDenyWriteExecute checks systemd's rules: no mapping both
// writable and executable, none made executable later, no executable
// System V shared memory; python3 itself still runs.
func TestMemoryDenyWriteExecute(t *testing.T) {
	t.Parallel()
	const (
		r, w, x = unix.PROT_READ, unix.PROT_WRITE, unix.PROT_EXEC
		shmExec = "0x8000"
	)
	pkey := func(prot int) string {
		return "pkey_mprotect:" + strconv.Itoa(unix.SYS_PKEY_MPROTECT) + "," + strconv.Itoa(prot)
	}
	args := []string{
		"mmap:" + strconv.Itoa(r|w|x), "mmap:" + strconv.Itoa(w|x), "mmap:" + strconv.Itoa(r|w), "mmap:" + strconv.Itoa(r|x),
		"mprotect:" + strconv.Itoa(r|x), "mprotect:" + strconv.Itoa(x), "mprotect:" + strconv.Itoa(r),
		pkey(r | x), pkey(r),
		// An invalid segment id: EINVAL shows the call reached the kernel.
		"shmat:-1," + shmExec, "shmat:-1,0",
	}
	want := map[string]string{}
	for i, a := range args {
		want[a] = []string{"EPERM", "EPERM", "ok", "ok", "EPERM", "EPERM", "ok", "EPERM", "ok", "EPERM", "EINVAL"}[i]
	}
	if i386Works() {
		i386 := map[string]string{
			"i386:192,0,4096,7,0x22,-1": "EPERM", // mmap2
			"i386:192,0,4096,3,0x22,-1": "ok",
			"i386:90,0":                 "EPERM", // old mmap, arguments behind a pointer
			"i386:397,-1,0,0x8000":      "EPERM", // shmat
			"i386:397,-1,0,0":           "EINVAL",
			"i386:117,21,-1,0x8000,0,0": "EPERM", // ipc(SHMAT)
			"i386:117,21,-1,0,0,0":      "EINVAL",
		}
		for a, v := range i386 {
			args = append(args, a)
			want[a] = v
		}
	}
	unfiltered := probe(t, &Setup{}, 0, args...)
	for _, a := range args {
		if v := unfiltered[a]; v != "ok" && v != "EINVAL" && v != "EFAULT" {
			t.Fatalf("without the filter, %s: %s", a, v)
		}
	}
	expectValues(t, probe(t, &Setup{Options: Options{MemoryDenyWriteExecute: true}}, 0, args...), want)
}

// TestSeccompInherited checks that the filter, one for both options,
// holds in the program's children and grandchildren.
func TestSeccompInherited(t *testing.T) {
	t.Parallel()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	before, _ := strconv.Atoi(keyValues(string(status), ":")["Seccomp_filters"]) // 0 unless the tests run under one
	script := probeScript(t, `
python3 -c "$P" socket:2
sh -c 'python3 -c "$1" socket:10 mmap:7; grep ^Seccomp /proc/self/status' sh "$P"
`)
	s := &Setup{Options: Options{RestrictAddressFamilies: afs("AF_UNIX"), MemoryDenyWriteExecute: true}}
	r := runSandboxed(t, s, 0, 0, script)
	if r.err != nil {
		t.Fatalf("%v, stderr %q", r.err, r.stderr)
	}
	expectValues(t, keyValues(r.stdout, " "), map[string]string{
		"socket:2": "EAFNOSUPPORT", "socket:10": "EAFNOSUPPORT", "mmap:7": "EPERM",
	})
	expectValues(t, keyValues(r.stdout, ":"), map[string]string{
		"Seccomp": "2", "Seccomp_filters": strconv.Itoa(before + 1),
	})
}

// TestNoNewPrivsRule checks when no_new_privs is set: on request, and
// for a filter when the thread lacks CAP_SYS_ADMIN by then.
func TestNoNewPrivsRule(t *testing.T) {
	t.Parallel()
	unixOnly := afs("AF_UNIX")
	netBind := CapSet(1 << 10)
	for _, c := range []struct {
		name string
		o    Options
		uid  uint32
		want string
	}{
		{"nothing", Options{}, 0, "0"},
		{"NoNewPrivileges", Options{NoNewPrivileges: true}, 0, "1"},
		{"root with a filter", Options{RestrictAddressFamilies: unixOnly}, 0, "0"},
		{"nobody with a filter", Options{RestrictAddressFamilies: unixOnly}, 65534, "1"},
		{"root without CAP_SYS_ADMIN with a filter", Options{RestrictAddressFamilies: unixOnly, CapabilityBoundingSet: &netBind}, 0, "1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runSandboxed(t, &Setup{Options: c.o}, c.uid, c.uid, "cat /proc/$$/status")
			if r.err != nil {
				t.Fatalf("%v, stderr %q", r.err, r.stderr)
			}
			expectValues(t, keyValues(r.stdout, ":"), map[string]string{"NoNewPrivs": c.want})
		})
	}
}

// TestNoNewPrivileges runs a setuid-root copy of id(1) as nobody: it
// becomes root without NoNewPrivileges=, and not with it.
func TestNoNewPrivileges(t *testing.T) {
	t.Parallel()
	dir := testutil.ShortDir(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/usr/bin/id")
	if err != nil {
		t.Skip(err)
	}
	id := filepath.Join(dir, "id")
	if err := os.WriteFile(id, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(id, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		nnp  bool
		want string
	}{{false, "0\n"}, {true, "65534\n"}} {
		r := runSandboxed(t, &Setup{Options: Options{NoNewPrivileges: c.nnp}}, 65534, 65534, id+" -u")
		if r.err != nil || r.stdout != c.want {
			t.Errorf("NoNewPrivileges=%v: euid %q, %v, stderr %q; want %q", c.nnp, r.stdout, r.err, r.stderr, c.want)
		}
	}
}
