package sandbox

import (
	"fmt"
	"runtime"
	"slices"

	"golang.org/x/sys/unix"
)

// applySeccomp loads the seccomp filters of RestrictAddressFamilies= and
// MemoryDenyWriteExecute= and sets no_new_privs for NoNewPrivileges= (or
// because a filter needs it).
//
// The kernel loads a filter only for a thread with no_new_privs or
// CAP_SYS_ADMIN. As systemd does, no_new_privs comes without being asked
// for only when the thread lacks CAP_SYS_ADMIN by now: a service that
// switched to another user, or one whose bounding set dropped it. A root
// service keeps setuid programs working.
func applySeccomp(o *Options) error {
	var prog []unix.SockFilter
	if o.RestrictAddressFamilies != nil || o.MemoryDenyWriteExecute {
		var err error
		if prog, err = seccompFilter(o, runtime.GOARCH); err != nil {
			return err
		}
	}
	noNewPrivs := o.NoNewPrivileges
	if prog != nil && !noNewPrivs {
		caps, err := threadCaps()
		if err != nil {
			return err
		}
		noNewPrivs = !caps.eff.Has(capSysAdmin)
	}
	if noNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("no_new_privs: %w", err)
		}
	}
	if prog != nil {
		if err := loadFilter(prog); err != nil {
			return fmt.Errorf("%s: seccomp: %w", seccompOptions(o), err)
		}
	}
	return nil
}

// seccompOptions names the options that asked for a filter, for errors.
func seccompOptions(o *Options) string {
	switch {
	case o.RestrictAddressFamilies == nil:
		return "MemoryDenyWriteExecute="
	case o.MemoryDenyWriteExecute:
		return "RestrictAddressFamilies=, MemoryDenyWriteExecute="
	}
	return "RestrictAddressFamilies="
}

// sysNums are the numbers of the system calls the filters look at in one
// ABI, from the kernel's tables (arch/x86/entry/syscalls/syscall_64.tbl
// and syscall_32.tbl, include/uapi/asm-generic/unistd.h for arm64,
// arch/arm/tools/syscall.tbl); 0 where the ABI lacks the call.
type sysNums struct {
	arch                           uint32 // AUDIT_ARCH_*
	x32                            bool   // see archFilter
	socket, socketpair, socketcall uint32
	mmap                           uint32 // mmap2 in the 32-bit ABIs: its prot is an argument too
	oldMmap                        uint32 // i386's mmap: its arguments are behind a pointer
	mprotect, pkeyMprotect         uint32
	shmat, ipc                     uint32
}

// abiTable lists, for each GOARCH sockd runs on, every ABI a thread can
// make system calls through, native first: a program can switch to the
// 32-bit one by exec'ing a 32-bit binary or, on amd64, with int 0x80.
// Filtering only the native ABI would leave that door open.
var abiTable = map[string][]sysNums{
	"amd64": {
		{arch: unix.AUDIT_ARCH_X86_64, x32: true, socket: 41, socketpair: 53,
			mmap: 9, mprotect: 10, pkeyMprotect: 329, shmat: 30},
		{arch: unix.AUDIT_ARCH_I386, socket: 359, socketpair: 360, socketcall: 102,
			mmap: 192, oldMmap: 90, mprotect: 125, pkeyMprotect: 380, shmat: 397, ipc: 117},
	},
	"arm64": {
		{arch: unix.AUDIT_ARCH_AARCH64, socket: 198, socketpair: 199,
			mmap: 222, mprotect: 226, pkeyMprotect: 288, shmat: 196},
		{arch: unix.AUDIT_ARCH_ARM, socket: 281, socketpair: 288,
			mmap: 192, mprotect: 125, pkeyMprotect: 394, shmat: 305},
	},
}

// seccompFilter compiles the one filter that holds the rules of both
// options, for every ABI of goarch.
func seccompFilter(o *Options, goarch string) ([]unix.SockFilter, error) {
	abis, ok := abiTable[goarch]
	if !ok {
		return nil, fmt.Errorf("%s: not supported on %s", seccompOptions(o), goarch)
	}
	var arches []archFilter
	for _, n := range abis {
		arches = append(arches, archFilter{arch: n.arch, x32: n.x32, rules: seccompRules(o, n)})
	}
	return compileFilter(arches)
}

// Constants the rules test (linux/net.h, linux/ipc.h, linux/shm.h).
const (
	sysSocketcallSocket     = 1 // socketcall(2)'s SYS_SOCKET
	sysSocketcallSocketpair = 8 // and SYS_SOCKETPAIR
	ipcShmat                = 21
	shmExec                 = 0o100000
)

// seccompRules are the rules of o for the ABI whose numbers n holds.
func seccompRules(o *Options, n sysNums) []sysRule {
	var rules []sysRule
	add := func(nr uint32, errno unix.Errno, conds ...argCond) {
		if nr != 0 {
			rules = append(rules, sysRule{nr: nr, conds: conds, errno: errno})
		}
	}
	if f := o.RestrictAddressFamilies; f != nil {
		// socket(2) and socketpair(2) take the family as an int in their
		// first argument. EAFNOSUPPORT is what systemd answers.
		family := argCond{arg: 0, mask: ^uint32(0), values: families(f.Families), none: !f.Deny}
		add(n.socket, unix.EAFNOSUPPORT, family)
		add(n.socketpair, unix.EAFNOSUPPORT, family)
		// i386's socketcall(2) passes the family behind a pointer, which
		// a filter cannot read, so making a socket through it is refused
		// whatever the family; its other calls (connect, sendmsg...) stay
		// open. systemd leaves it all open. The cost: a 32-bit program
		// whose C library makes sockets through socketcall rather than
		// socket(2) (Linux 4.3 and later) gets none.
		add(n.socketcall, unix.EAFNOSUPPORT, argCond{arg: 0, mask: ^uint32(0),
			values: []uint32{sysSocketcallSocket, sysSocketcallSocketpair}})
	}
	if o.MemoryDenyWriteExecute {
		// systemd's rules: no mapping both writable and executable, and
		// no making a mapping executable later.
		const wx = unix.PROT_WRITE | unix.PROT_EXEC
		add(n.mmap, unix.EPERM, argCond{arg: 2, mask: wx, values: []uint32{wx}})
		add(n.oldMmap, unix.EPERM)
		add(n.mprotect, unix.EPERM, argCond{arg: 2, mask: unix.PROT_EXEC, values: []uint32{unix.PROT_EXEC}})
		add(n.pkeyMprotect, unix.EPERM, argCond{arg: 2, mask: unix.PROT_EXEC, values: []uint32{unix.PROT_EXEC}})
		add(n.shmat, unix.EPERM, argCond{arg: 2, mask: shmExec, values: []uint32{shmExec}})
		// i386's ipc(2) multiplexes shmat: the call in the low 16 bits of
		// the first argument, shmat's flags in the third.
		add(n.ipc, unix.EPERM,
			argCond{arg: 0, mask: 0xffff, values: []uint32{ipcShmat}},
			argCond{arg: 2, mask: shmExec, values: []uint32{shmExec}})
	}
	return rules
}

// families are the AF_* numbers in order, each once, which bounds the
// filter's size by the number of families Linux has.
func families(afs []int) []uint32 {
	var v []uint32
	for _, af := range afs {
		v = append(v, uint32(af))
	}
	slices.Sort(v)
	return slices.Compact(v)
}
