package sandbox

import (
	"encoding/binary"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// The real-kernel tests in seccomp_test.go run our filters on the
// native ABI, and on i386 where the machine has IA32 emulation. These run
// them on every ABI of abiTable, arm64's too, with runBPF standing in for
// the kernel: the rules for system calls no process here can make.

// runBPF runs prog as seccomp would on a system call of arch with
// number nr and arguments args, and returns the filter's answer. It knows
// the instructions compileFilter emits and no others.
func runBPF(t *testing.T, prog []unix.SockFilter, arch, nr uint32, args ...uint64) uint32 {
	t.Helper()
	var data [64]byte // struct seccomp_data, little-endian
	binary.LittleEndian.PutUint32(data[offNr:], nr)
	binary.LittleEndian.PutUint32(data[offArch:], arch)
	for i, a := range args {
		binary.LittleEndian.PutUint64(data[16+8*i:], a)
	}
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			acc = binary.LittleEndian.Uint32(data[in.K:])
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			acc &= in.K
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.K)
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
			if acc == in.K {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		default:
			t.Fatalf("instruction %d: unexpected code %#x", pc, in.Code)
		}
	}
	t.Fatal("the filter ran off its end")
	return 0
}

// TestFilterEveryABI checks both options' rules on each ABI.
func TestFilterEveryABI(t *testing.T) {
	const (
		allow   = unix.SECCOMP_RET_ALLOW
		noAF    = unix.SECCOMP_RET_ERRNO | uint32(unix.EAFNOSUPPORT)
		noPerm  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		highArg = 1 << 32 // a high word the kernel ignores in an int
		r, w, x = unix.PROT_READ, unix.PROT_WRITE, unix.PROT_EXEC
	)
	o := &Options{RestrictAddressFamilies: afs("AF_INET", "AF_UNIX"), MemoryDenyWriteExecute: true}
	for goarch, abis := range abiTable {
		prog, err := seccompFilter(o, goarch)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range abis {
			check := func(what string, nr uint32, want uint32, args ...uint64) {
				t.Helper()
				if nr == 0 {
					return // not in this ABI
				}
				if got := runBPF(t, prog, n.arch, nr, args...); got != want {
					t.Errorf("%s, audit arch %#x: %s: got %#x, want %#x", goarch, n.arch, what, got, want)
				}
			}
			check("socket(AF_UNIX)", n.socket, allow, unix.AF_UNIX)
			check("socket(AF_INET)", n.socket, allow, unix.AF_INET)
			check("socket(AF_INET6)", n.socket, noAF, unix.AF_INET6)
			check("socket(AF_INET6 with a high word)", n.socket, noAF, highArg|unix.AF_INET6)
			check("socket(AF_UNIX with a high word)", n.socket, allow, highArg|unix.AF_UNIX)
			check("socketpair(AF_NETLINK)", n.socketpair, noAF, unix.AF_NETLINK)
			check("socketpair(AF_UNIX)", n.socketpair, allow, unix.AF_UNIX)
			check("socketcall(SYS_SOCKET)", n.socketcall, noAF, 1)
			check("socketcall(SYS_SOCKETPAIR)", n.socketcall, noAF, 8)
			check("socketcall(SYS_CONNECT)", n.socketcall, allow, 3)
			check("mmap(RWX)", n.mmap, noPerm, 0, 4096, r|w|x)
			check("mmap(WX)", n.mmap, noPerm, 0, 4096, w|x)
			check("mmap(RX)", n.mmap, allow, 0, 4096, r|x)
			check("mmap(RW)", n.mmap, allow, 0, 4096, r|w)
			check("old mmap", n.oldMmap, noPerm, 0)
			check("mprotect(X)", n.mprotect, noPerm, 0, 4096, x)
			check("mprotect(RW)", n.mprotect, allow, 0, 4096, r|w)
			check("pkey_mprotect(RX)", n.pkeyMprotect, noPerm, 0, 4096, r|x)
			check("pkey_mprotect(R)", n.pkeyMprotect, allow, 0, 4096, r)
			check("shmat(SHM_EXEC)", n.shmat, noPerm, 1, 0, shmExec)
			check("shmat(SHM_RDONLY)", n.shmat, allow, 1, 0, unix.SHM_RDONLY)
			check("ipc(SHMAT, SHM_EXEC)", n.ipc, noPerm, ipcShmat, 1, shmExec)
			check("ipc(SHMAT version 1, SHM_EXEC)", n.ipc, noPerm, 1<<16|ipcShmat, 1, shmExec)
			check("ipc(SHMAT)", n.ipc, allow, ipcShmat, 1, 0)
			check("ipc(SHMDT, SHM_EXEC)", n.ipc, allow, ipcShmat+1, 1, shmExec)
			if n.x32 {
				check("x32 socket(AF_INET6)", x32Bit|n.socket, noAF, unix.AF_INET6)
				check("x32 socket(AF_UNIX)", x32Bit|n.socket, allow, unix.AF_UNIX)
				check("x32 mmap(WX)", x32Bit|n.mmap, noPerm, 0, 4096, w|x)
			}
			check("a call no rule names", 1000, allow, unix.AF_INET6, 0, w|x)
		}
		if got := runBPF(t, prog, 0x1234, 1); got != unix.SECCOMP_RET_KILL_PROCESS {
			t.Errorf("%s: an unknown ABI: got %#x, want SECCOMP_RET_KILL_PROCESS", goarch, got)
		}
	}
}

// TestFilterDenyList checks a deny-list of several families, and
// that a list naming every family Linux has still fits classic BPF's
// jumps.
func TestFilterDenyList(t *testing.T) {
	n := abiTable["amd64"][0]
	prog, err := seccompFilter(&Options{RestrictAddressFamilies: afs("~AF_INET6", "AF_NETLINK", "AF_PACKET")}, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	for af, want := range map[uint64]uint32{
		unix.AF_UNIX:    unix.SECCOMP_RET_ALLOW,
		unix.AF_INET:    unix.SECCOMP_RET_ALLOW,
		unix.AF_INET6:   unix.SECCOMP_RET_ERRNO | uint32(unix.EAFNOSUPPORT),
		unix.AF_NETLINK: unix.SECCOMP_RET_ERRNO | uint32(unix.EAFNOSUPPORT),
		unix.AF_PACKET:  unix.SECCOMP_RET_ERRNO | uint32(unix.EAFNOSUPPORT),
	} {
		if got := runBPF(t, prog, n.arch, n.socket, af); got != want {
			t.Errorf("socket(%d): got %#x, want %#x", af, got, want)
		}
	}

	every := &AddressFamilies{}
	for _, af := range familyNames {
		every.Families = append(every.Families, af, af) // twice: still once in the filter
	}
	if _, err := seccompFilter(&Options{RestrictAddressFamilies: every, MemoryDenyWriteExecute: true}, "amd64"); err != nil {
		t.Error(err)
	}
}

// TestABITableNative checks the native numbers in abiTable against
// x/sys/unix's for the architecture the tests run on.
func TestABITableNative(t *testing.T) {
	abis, ok := abiTable[runtime.GOARCH]
	if !ok {
		t.Skipf("no seccomp filters on %s", runtime.GOARCH)
	}
	n := abis[0]
	for _, c := range []struct {
		name string
		got  uint32
		want int
	}{
		{"socket", n.socket, unix.SYS_SOCKET}, {"socketpair", n.socketpair, unix.SYS_SOCKETPAIR},
		{"mmap", n.mmap, unix.SYS_MMAP}, {"mprotect", n.mprotect, unix.SYS_MPROTECT},
		{"pkey_mprotect", n.pkeyMprotect, unix.SYS_PKEY_MPROTECT}, {"shmat", n.shmat, unix.SYS_SHMAT},
	} {
		if c.got != uint32(c.want) {
			t.Errorf("%s: %d in abiTable, %d in x/sys/unix", c.name, c.got, c.want)
		}
	}
}
