// Package cgroup is sockd's use of a cgroup v2 hierarchy (see the
// kernel's Documentation/admin-guide/cgroup-v2.rst): it finds the part
// of the hierarchy sockd may write (Detect), makes one cgroup per unit
// below it and one leaf per process below that (Hierarchy, Group), and
// lists, signals, kills and waits for the processes of a group, which
// no setsid(2) or double fork can leave.
//
// Every change is made relative to a directory opened once, with the
// *at system calls and O_NOFOLLOW: a name that came from a unit file or
// a child never reaches a path sockd walks from the root.
package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SupervisorLeaf is the leaf sockd moves itself into when it uses its own
// (delegated) cgroup: a cgroup with children may hold no processes once
// controllers are enabled for them, as systemd's "no internal processes"
// rule has it (systemd itself names its leaf init.scope or supervisor).
const SupervisorLeaf = "supervisor"

// RootSubtree is the directory sockd makes below the root of a cgroup v2
// hierarchy it runs at the root of (a host without systemd, or the
// "unified" hierarchy of a hybrid host).
const RootSubtree = "sockd"

// Place is where sockd may make its units' cgroups.
type Place struct {
	// Dir is the directory of the base cgroup, e.g.
	// /sys/fs/cgroup/unified/sockd or
	// /sys/fs/cgroup/system.slice/sockd.service.
	Dir string
	// Own is set when Dir is sockd's own, delegated cgroup: sockd must
	// move itself into Dir/SupervisorLeaf before it makes children.
	Own bool
	// InLeaf is set when sockd was in Dir/SupervisorLeaf already: put
	// there by systemd 254 or later (DelegateSubgroup=), or by itself
	// before a re-exec.
	InLeaf bool
}

// Detect finds where sockd may make cgroups: below the root of the
// cgroup2 mount when sockd is in the root cgroup, or its own cgroup when
// that was delegated to it (systemd's Delegate=yes marks it with the
// extended attribute trusted.delegate or user.delegate). An error says
// why there is none: no cgroup2 mount, or a cgroup not delegated.
func Detect() (Place, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return Place{}, fmt.Errorf("detect cgroup v2: %w", err)
	}
	point, root, ok := findMount(mi)
	if !ok {
		return Place{}, errors.New("detect cgroup v2: no cgroup2 mount")
	}
	self, err := ownCgroup("/proc/self/cgroup")
	if err != nil {
		return Place{}, err
	}
	rel, ok := below(root, self)
	if !ok {
		return Place{}, fmt.Errorf("detect cgroup v2: sockd's cgroup %s is outside the mount's root %s", self, root)
	}
	if rel == "" {
		return Place{Dir: filepath.Join(point, RootSubtree)}, nil
	}
	if filepath.Base(rel) == SupervisorLeaf {
		// A sockd that re-executed itself is in the leaf already.
		if parent := filepath.Dir(rel); parent != "." && delegated(filepath.Join(point, parent)) {
			return Place{Dir: filepath.Join(point, parent), Own: true, InLeaf: true}, nil
		}
	}
	dir := filepath.Join(point, rel)
	if !delegated(dir) {
		return Place{}, fmt.Errorf("detect cgroup v2: sockd's cgroup %s is not delegated to it (Delegate=yes)", dir)
	}
	return Place{Dir: dir, Own: true}, nil
}

// delegated reports whether systemd delegated dir (xattr trusted.delegate
// or user.delegate set to 1).
func delegated(dir string) bool {
	buf := make([]byte, 8)
	for _, name := range []string{"trusted.delegate", "user.delegate"} {
		n, err := unix.Lgetxattr(dir, name, buf)
		if err == nil && string(buf[:n]) == "1" {
			return true
		}
	}
	return false
}

// findMount returns the mount point and root of the cgroup2 mount in a
// /proc/self/mountinfo text, /sys/fs/cgroup before /sys/fs/cgroup/unified
// before any other.
func findMount(mountinfo []byte) (point, root string, ok bool) {
	rank := 3
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := -1
		for i, s := range f {
			if s == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+1 >= len(f) || f[sep+1] != "cgroup2" {
			continue
		}
		p, r := unescape(f[4]), unescape(f[3])
		k := 2
		switch p {
		case "/sys/fs/cgroup":
			k = 0
		case "/sys/fs/cgroup/unified":
			k = 1
		}
		if k < rank {
			point, root, ok, rank = p, r, true, k
		}
	}
	return point, root, ok
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// below returns p relative to root ("" for root itself), both absolute
// cgroup paths; ok is false when p is not below root.
func below(root, p string) (string, bool) {
	root, p = filepath.Clean(root), filepath.Clean(p)
	if root == p {
		return "", true
	}
	if root == "/" {
		return strings.TrimPrefix(p, "/"), true
	}
	if rest, ok := strings.CutPrefix(p, root+"/"); ok {
		return rest, true
	}
	return "", false
}

// maxProcFile bounds what is read of a /proc/PID/cgroup file: the
// process may be hostile, though the kernel writes the file.
const maxProcFile = 64 << 10

// ownCgroup returns the cgroup v2 path ("0::PATH") in a /proc/PID/cgroup
// file.
func ownCgroup(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("read cgroup: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxProcFile))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", file, err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok && strings.HasPrefix(p, "/") {
			return p, nil
		}
	}
	return "", fmt.Errorf("read %s: no cgroup v2 line (0::)", file)
}

// PathOf returns the cgroup v2 path of process pid, as the kernel
// writes it in /proc/PID/cgroup ("/sockd/app.service/p3"), relative to
// the reader's cgroup namespace.
func PathOf(pid int) (string, error) {
	return ownCgroup("/proc/" + strconv.Itoa(pid) + "/cgroup")
}

// Escape turns a unit name into a cgroup directory name, as systemd's
// cg_escape does: a name that could be taken for an interface file
// ("cgroup.procs", "memory.max") or that begins with "_" or "." gets a
// leading "_". A name with "/" or NUL, or empty, is refused.
func Escape(name string) (string, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || len(name) > 240 {
		return "", fmt.Errorf("cgroup name %q: %w", name, unix.EINVAL)
	}
	if name[0] == '_' || name[0] == '.' {
		return "_" + name, nil
	}
	if pre, _, ok := strings.Cut(name, "."); ok {
		switch pre {
		case "cgroup", "cpu", "cpuset", "cpuacct", "io", "blkio", "memory", "devices", "freezer",
			"net_cls", "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc", "dmem":
			return "_" + name, nil
		}
	}
	switch name {
	case "notify_on_release", "release_agent", "tasks":
		return "_" + name, nil
	}
	return name, nil
}

// Mount returns the mount point of the cgroup2 hierarchy
// (/sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid
// one).
func Mount() (string, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("find cgroup v2: %w", err)
	}
	point, _, ok := findMount(mi)
	if !ok {
		return "", errors.New("find cgroup v2: no cgroup2 mount")
	}
	return point, nil
}
