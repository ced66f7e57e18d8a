//go:build cgo && linux

package children

/*
#include <stdlib.h>
#include "spawn_cgo.h"
*/
import "C"

import (
	"fmt"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// spawnInC reports whether Start can spawn a process in C (spawn_cgo.c)
// without the exec helper.
const spawnInC = true

// spawnCgroupInC reports whether the C spawn can start a process in a
// cgroup (clone3 with CLONE_INTO_CGROUP, written for amd64 only).
var spawnCgroupInC = C.sockd_spawn_cgroup_ok() == 1

// spawn starts path in C, the way spawn_cgo.c describes: fds[i] becomes
// fd i, and spec's settings are applied before the exec. It returns the
// pid, registered in owned, or the error of the step that failed (the
// child is reaped then).
func spawn(path string, argv []string, fds []uintptr, spec *Spec) (int, error) {
	if err := checkSettings(spec); err != nil {
		return 0, err
	}
	if err := checkNUL(path, argv, spec); err != nil {
		return 0, err
	}
	var a cmem
	defer a.free()
	s := (*C.struct_sockd_spawn)(a.alloc(C.sizeof_struct_sockd_spawn))
	s.path = a.str(path)
	s.argv = a.strs(argv, nil)
	env := spec.Env
	var pidSlot *C.char
	if spec.PIDEnv != "" {
		kept := make([]string, 0, len(env)+1)
		for _, kv := range env {
			if !strings.HasPrefix(kv, spec.PIDEnv+"=") {
				kept = append(kept, kv)
			}
		}
		// The last entry is "NAME=" and room for the pid's digits.
		env = append(kept, spec.PIDEnv+"="+strings.Repeat("\x00", 21))
		s.envp = a.strs(env, &pidSlot)
		s.pid_digits = (*C.char)(unsafe.Add(unsafe.Pointer(pidSlot), len(spec.PIDEnv)+1))
	} else {
		s.envp = a.strs(env, nil)
	}
	if spec.Dir != "" {
		s.dir = a.str(spec.Dir)
	}
	s.nfds = C.int(len(fds))
	if len(fds) > 0 {
		p := (*C.int)(a.alloc(uintptr(len(fds)) * C.sizeof_int))
		f := unsafe.Slice(p, len(fds))
		for i, fd := range fds {
			f[i] = C.int(fd)
		}
		s.fds = p
		s.scratch = (*C.int)(a.alloc(uintptr(len(fds)) * C.sizeof_int))
	}
	s.cgroup_fd = -1
	if spec.UseCgroup {
		s.cgroup_fd = C.int(spec.CgroupFD)
	}
	s.umask = -1
	if spec.Umask >= 0 {
		s.umask = C.int(spec.Umask)
	}
	if spec.Nice != nil {
		s.have_nice, s.nice = 1, C.int(*spec.Nice)
	}
	if n := len(spec.Rlimits); n > 0 {
		p := (*C.struct_sockd_rlimit)(a.alloc(uintptr(n) * C.sizeof_struct_sockd_rlimit))
		rl := unsafe.Slice(p, n)
		for i, r := range spec.Rlimits {
			rl[i] = C.struct_sockd_rlimit{resource: C.int(r.Resource), cur: C.uint64_t(r.Cur), max: C.uint64_t(r.Max)}
		}
		s.rlimits, s.nrlimits = p, C.int(n)
	}
	if c := spec.Credential; c != nil {
		s.have_cred, s.uid, s.gid = 1, C.uint32_t(c.Uid), C.uint32_t(c.Gid)
		if !c.NoSetGroups {
			s.set_groups = 1
			if n := len(c.Groups); n > 0 {
				p := (*C.uint32_t)(a.alloc(uintptr(n) * 4))
				copy(unsafe.Slice((*uint32)(unsafe.Pointer(p)), n), c.Groups)
				s.groups, s.ngroups = p, C.int(n)
			}
		}
	}

	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return 0, fmt.Errorf("pipe: %w", err)
	}
	defer unix.Close(p[0])
	s.errfd = C.int(p[1])

	// As syscall.ForkExec: no descriptor is made without close-on-exec
	// meanwhile (ForkLock), and the reaper never sees the child
	// unregistered (see owned).
	syscall.ForkLock.Lock()
	owned.mu.Lock()
	ret := C.sockd_spawn(s)
	unix.Close(p[1])
	syscall.ForkLock.Unlock()
	if ret < 0 {
		owned.mu.Unlock()
		return 0, syscall.Errno(-ret)
	}
	pid := int(ret)
	// The child has exec'd (the pipe closes) or written its report and
	// exited: its thread has left sockd's memory either way.
	var rep C.struct_sockd_spawn_report
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&rep)), C.sizeof_struct_sockd_spawn_report)
	n, rerr := readFull(p[0], buf)
	if n == 0 && rerr == nil {
		owned.addLocked(pid)
		owned.mu.Unlock()
		return pid, nil
	}
	var ws syscall.WaitStatus
	ignoringEINTR(func() error { _, err := syscall.Wait4(pid, &ws, 0, nil); return err })
	owned.mu.Unlock()
	if rerr != nil || n != len(buf) {
		return 0, fmt.Errorf("spawn: short report from the child (%d bytes, %v)", n, rerr)
	}
	return 0, spawnError(&rep, path, spec)
}

// checkNUL refuses a string that C would cut short, as ForkExec does.
func checkNUL(path string, argv []string, spec *Spec) error {
	bad := func(s string) bool { return strings.IndexByte(s, 0) >= 0 }
	switch {
	case bad(path):
		return fmt.Errorf("path %q: NUL byte: %w", path, syscall.EINVAL)
	case bad(spec.Dir):
		return fmt.Errorf("working directory %q: NUL byte: %w", spec.Dir, syscall.EINVAL)
	}
	for i, a := range argv {
		if bad(a) {
			return fmt.Errorf("argument %d %q: NUL byte: %w", i, a, syscall.EINVAL)
		}
	}
	for _, kv := range spec.Env {
		if bad(kv) {
			k, _, _ := strings.Cut(kv, "=")
			return fmt.Errorf("environment variable %q: NUL byte: %w", k, syscall.EINVAL)
		}
	}
	return nil
}

// readFull reads into buf until it is full or at end of file.
func readFull(fd int, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

// spawnError names the step of the child that failed, in the exec
// helper's words.
func spawnError(r *C.struct_sockd_spawn_report, path string, spec *Spec) error {
	e := syscall.Errno(r.err)
	switch r.step {
	case C.SOCKD_STEP_SIGNALS:
		return fmt.Errorf("signal mask: %w", e)
	case C.SOCKD_STEP_SETPGID:
		return fmt.Errorf("setpgid: %w", e)
	case C.SOCKD_STEP_CHDIR:
		return fmt.Errorf("chdir %s: %w", spec.Dir, e)
	case C.SOCKD_STEP_DUP:
		if r.index < 0 {
			return fmt.Errorf("error pipe: %w", e)
		}
		return fmt.Errorf("fd %d: %w", r.index, e)
	case C.SOCKD_STEP_RLIMIT:
		if i := int(r.index); i >= 0 && i < len(spec.Rlimits) {
			l := spec.Rlimits[i]
			return fmt.Errorf("setrlimit %d %d:%d: %w", l.Resource, l.Cur, l.Max, e)
		}
		return fmt.Errorf("setrlimit: %w", e)
	case C.SOCKD_STEP_NICE:
		return fmt.Errorf("setpriority %d: %w", *spec.Nice, e)
	case C.SOCKD_STEP_SETGROUPS:
		return fmt.Errorf("setgroups %v: %w", spec.Credential.Groups, e)
	case C.SOCKD_STEP_SETRESGID:
		return fmt.Errorf("setresgid %d: %w", spec.Credential.Gid, e)
	case C.SOCKD_STEP_SETRESUID:
		return fmt.Errorf("setresuid %d: %w", spec.Credential.Uid, e)
	case C.SOCKD_STEP_EXEC:
		return fmt.Errorf("exec %s: %w", path, e)
	}
	return fmt.Errorf("spawn step %d: %w", r.step, e)
}

// cmem is the C memory of one spawn: the child may read nothing the Go
// runtime could move or free.
type cmem struct {
	blocks []unsafe.Pointer
}

// alloc returns n zeroed bytes of C memory.
func (m *cmem) alloc(n uintptr) unsafe.Pointer {
	p := C.calloc(1, C.size_t(max(n, 1)))
	if p == nil {
		panic("children: out of C memory")
	}
	m.blocks = append(m.blocks, p)
	return p
}

// str returns s as a C string.
func (m *cmem) str(s string) *C.char {
	p := m.alloc(uintptr(len(s)) + 1)
	copy(unsafe.Slice((*byte)(p), len(s)), s)
	return (*C.char)(p)
}

// strs returns ss as a NULL-terminated array of C strings; last, if
// set, receives the last string.
func (m *cmem) strs(ss []string, last **C.char) **C.char {
	arr := (**C.char)(m.alloc(uintptr(len(ss)+1) * unsafe.Sizeof((*C.char)(nil))))
	v := unsafe.Slice(arr, len(ss)+1)
	for i, s := range ss {
		v[i] = m.str(s)
	}
	if last != nil && len(ss) > 0 {
		*last = v[len(ss)-1]
	}
	return arr
}

// free releases all of m.
func (m *cmem) free() {
	for _, p := range m.blocks {
		C.free(p)
	}
	m.blocks = nil
}
