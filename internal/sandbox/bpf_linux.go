package sandbox

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file compiles seccomp filters by hand, as classic BPF over struct
// seccomp_data (linux/seccomp.h; the kernel's
// Documentation/userspace-api/seccomp_filter.rst). Our two options need
// "this call, with this argument, fails with this errno" and nothing
// more, which is smaller to write than libseccomp is to link (cgo and a C
// library).

// Offsets in struct seccomp_data: the system call number, the audit
// architecture, then six 64-bit arguments from offset 16. argLow is the
// offset of an argument's low 32 bits on a little-endian CPU (amd64 and
// arm64, the only ones abiTable knows); classic BPF loads 32 bits at a
// time.
const (
	offNr   = 0
	offArch = 4
)

func argLow(i int) uint32 { return 16 + 8*uint32(i) }

// A sysRule makes one system call fail with errno when all of its
// conditions hold (always, with none).
type sysRule struct {
	nr    uint32
	conds []argCond
	errno unix.Errno
}

// An argCond holds when the low 32 bits of argument arg, masked with
// mask, are one of values, or with none set, are none of them. Only the
// low 32 bits: every argument our rules test is an int or a set of flags
// in the low bits, and the kernel ignores the high bits of an int
// argument (its syscall wrappers truncate it), so a caller cannot slip a
// value past the filter by setting them.
type argCond struct {
	arg    int
	mask   uint32
	values []uint32
	none   bool
}

// An archFilter holds the rules for the system calls made through one
// ABI, named by its AUDIT_ARCH_* number.
type archFilter struct {
	arch uint32
	// x32 folds amd64's x32 ABI onto the native one, so that it is no
	// way around a rule. x32 calls arrive with AUDIT_ARCH_X86_64 and the
	// number with bit 30 set (__X32_SYSCALL_BIT), and the calls our
	// rules name have the same number and arguments in both ABIs (the
	// x32-only calls are 512 and up): clearing the bit makes each rule
	// cover both.
	x32   bool
	rules []sysRule
}

const x32Bit = 0x40000000

// compileFilter turns rules into a seccomp program: a system call that
// no rule refuses is allowed, and one made through an ABI missing from
// arches kills the process. That cannot happen when arches lists every
// ABI a thread can call through on this CPU; if it did, we could not
// tell its socket(2) from anything else.
func compileFilter(arches []archFilter) ([]unix.SockFilter, error) {
	var prog []unix.SockFilter
	for _, a := range arches {
		block := compileArch(a)
		// Every jump inside block is shorter than block, so this one
		// check bounds them all to classic BPF's 8 bits.
		if len(block) > 255 {
			return nil, fmt.Errorf("seccomp filter for audit arch %#x: %d instructions, more than a jump can skip", a.arch, len(block))
		}
		prog = append(prog, load(offArch), jumpEq(a.arch, 0, len(block)))
		prog = append(prog, block...)
	}
	return append(prog, ret(unix.SECCOMP_RET_KILL_PROCESS)), nil
}

// compileArch tests each rule in turn and allows what none refuses.
func compileArch(a archFilter) []unix.SockFilter {
	var prog []unix.SockFilter
	for _, r := range a.rules {
		// Loaded again for each rule: the conditions of the one before
		// left an argument in the accumulator.
		prog = append(prog, load(offNr))
		if a.x32 {
			prog = append(prog, stmt(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, ^uint32(x32Bit)))
		}
		test := compileRule(r)
		prog = append(prog, jumpEq(r.nr, 0, len(test)))
		prog = append(prog, test...)
	}
	return append(prog, ret(unix.SECCOMP_RET_ALLOW))
}

// compileRule tests r's conditions and returns r's errno when they all
// hold; when one does not, it jumps to its own end.
func compileRule(r sysRule) []unix.SockFilter {
	prog := []unix.SockFilter{ret(unix.SECCOMP_RET_ERRNO | uint32(r.errno))}
	// Built from the end, so each condition knows how far its end is.
	for i := len(r.conds) - 1; i >= 0; i-- {
		prog = append(compileCond(r.conds[i], len(prog)), prog...)
	}
	return prog
}

// compileCond falls through when c holds, and otherwise jumps over the
// tail instructions that follow it.
func compileCond(c argCond, tail int) []unix.SockFilter {
	prog := []unix.SockFilter{load(argLow(c.arg))}
	if c.mask != ^uint32(0) {
		prog = append(prog, stmt(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, c.mask))
	}
	if len(c.values) == 0 && !c.none {
		return append(prog, stmt(unix.BPF_JMP|unix.BPF_JA, uint32(tail))) // one of nothing: never
	}
	for i, v := range c.values {
		after := len(c.values) - 1 - i // comparisons after this one; jumping over them means "holds"
		switch {
		case c.none:
			prog = append(prog, jumpEq(v, after+tail, 0))
		case after > 0:
			prog = append(prog, jumpEq(v, after, 0))
		default:
			prog = append(prog, jumpEq(v, 0, tail))
		}
	}
	return prog
}

func stmt(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }

func load(off uint32) unix.SockFilter { return stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, off) }

func ret(k uint32) unix.SockFilter { return stmt(unix.BPF_RET|unix.BPF_K, k) }

// jumpEq skips jt instructions if the accumulator is k, else jf. The
// callers keep both under 256 (see compileFilter).
func jumpEq(k uint32, jt, jf int) unix.SockFilter {
	return unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: uint8(jt), Jf: uint8(jf), K: k}
}

// loadFilter installs prog on the calling thread only: no
// SECCOMP_FILTER_FLAG_TSYNC, since the exec helper's other threads are
// the Go runtime's, not the service's. The thread needs no_new_privs or
// CAP_SYS_ADMIN. The filter stays through fork and execve.
func loadFilter(prog []unix.SockFilter) error {
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	_, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog)))
	if e != 0 {
		return e
	}
	return nil
}
