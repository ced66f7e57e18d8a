package cgroup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// Hierarchy is the base cgroup sockd makes its units' cgroups in.
type Hierarchy struct {
	base *Group
	// parent is the base's parent directory, for enabling a controller
	// the base lacks; -1 if it could not be opened, and for a delegated
	// cgroup, whose parent is systemd's.
	parent int
	// noEnable says why Enable may not turn a controller on; "" if it
	// may.
	noEnable string
}

// movedEnv marks a sockd that moved itself into its supervisor leaf, for
// the sockd it re-executes as, which finds itself in the leaf.
const movedEnv = "SOCKD_CGROUP_MOVED_SELF"

// Setup opens p, moving sockd into p.Dir/SupervisorLeaf first when
// p.Own is set. In a delegated cgroup, sockd turns controllers on for
// its units only if systemd put it in the leaf (DelegateSubgroup=,
// systemd 254 and later): a controller turned on in the delegated
// cgroup forbids processes in it ("no internal processes"), so an older
// systemd, which starts the next sockd there after a crash, could not.
// Nor does it ever write to the delegated cgroup's parent, systemd's.
func Setup(p Place) (*Hierarchy, error) {
	moved := os.Getenv(movedEnv) != ""
	if p.Own && !p.InLeaf {
		if err := moveSelf(p.Dir); err != nil {
			return nil, err
		}
		os.Setenv(movedEnv, "1")
		moved = true
	}
	h, err := Open(p.Dir)
	if err != nil || !p.Own {
		return h, err
	}
	if h.parent >= 0 {
		unix.Close(h.parent)
		h.parent = -1
	}
	if moved {
		h.noEnable = "systemd did not start sockd in its \"" + SupervisorLeaf + "\" leaf (DelegateSubgroup=, systemd 254 and later): a controller turned on in " + p.Dir + " would keep systemd from starting sockd again there after a crash"
	}
	return h, nil
}

// moveSelf moves sockd's processes into dir/SupervisorLeaf.
func moveSelf(dir string) error {
	leaf := filepath.Join(dir, SupervisorLeaf)
	if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("cgroup %s: %w", leaf, err)
	}
	if err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		return fmt.Errorf("cgroup %s: move sockd: %w", leaf, err)
	}
	return nil
}

// Open opens (and makes, if it is missing) the base cgroup dir, whose
// parent must be a cgroup v2 directory. Open follows symbolic links in
// dir itself, which is configuration; nothing below it is followed.
func Open(dir string) (*Hierarchy, error) {
	dir = filepath.Clean(dir)
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("cgroup %s: not an absolute path", dir)
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("cgroup %s: %w", dir, err)
	}
	fd, err := unix.Open(dir, dirFlags, 0)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: open: %w", dir, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		unix.Close(fd)
		return nil, fmt.Errorf("cgroup %s: not a cgroup v2 directory", dir)
	}
	rel, err := relPath(dir)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	parent, err := unix.Open(filepath.Dir(dir), dirFlags, 0)
	if err != nil {
		parent = -1
	}
	return &Hierarchy{base: &Group{fd: fd, dir: dir, rel: rel, parent: nil}, parent: parent}, nil
}

// relPath is dir's cgroup path as /proc/PID/cgroup shows it.
func relPath(dir string) (string, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("cgroup %s: %w", dir, err)
	}
	best, bestRoot := "", ""
	for _, l := range strings.Split(string(mi), "\n") {
		f := strings.Fields(l)
		i := slices.Index(f, "-")
		if i < 5 || i+1 >= len(f) || f[i+1] != "cgroup2" {
			continue
		}
		p := unescape(f[4])
		if (dir == p || strings.HasPrefix(dir, p+"/") || p == "/") && len(p) > len(best) {
			best, bestRoot = p, unescape(f[3])
		}
	}
	if best == "" {
		return "", fmt.Errorf("cgroup %s: not on a cgroup2 mount", dir)
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(dir, best), "/")
	return filepath.Join(bestRoot, rest), nil
}

// Base returns the base cgroup itself (its descriptor is h's).
func (h *Hierarchy) Base() (*Group, error) { return h.base, nil }

// Dir is the base cgroup's directory.
func (h *Hierarchy) Dir() string { return h.base.dir }

// Path is the base cgroup's path as /proc/PID/cgroup shows it.
func (h *Hierarchy) Path() string { return h.base.rel }

// Close closes the base's descriptors; the cgroups stay.
func (h *Hierarchy) Close() error {
	if h.parent >= 0 {
		unix.Close(h.parent)
		h.parent = -1
	}
	return h.base.Close()
}

// Remove removes the base cgroup if it is empty (no unit cgroup left),
// and closes h.
func (h *Hierarchy) Remove() error {
	err := h.base.Remove()
	h.Close()
	return err
}

// RemoveEmptyUnits removes every empty cgroup below the base (units and
// leaves); populated ones stay, for the next sockd to find.
func (h *Hierarchy) RemoveEmptyUnits() { h.base.RemoveEmpty() }

// Unit opens the cgroup of the unit name, BASE/ESCAPED-NAME, making it
// if it is missing: a cgroup left by a previous sockd (a re-exec, a
// crash) is taken as it is.
func (h *Hierarchy) Unit(name string) (*Group, error) {
	esc, err := Escape(name)
	if err != nil {
		return nil, err
	}
	return h.base.child(esc, false)
}

// Available lists the controllers the units' cgroups may have
// (cgroup.controllers of the base and of its parent).
func (h *Hierarchy) Available() []string {
	if h.noEnable != "" {
		return h.base.controllers("cgroup.subtree_control") // on already, or not at all
	}
	out := h.base.controllers("cgroup.controllers")
	if h.parent >= 0 {
		b, err := readAt(h.parent, "cgroup.controllers")
		if err == nil {
			for _, c := range strings.Fields(string(b)) {
				if !slices.Contains(out, c) {
					out = append(out, c)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// Enable turns controller on for the units' cgroups: in the parent's
// cgroup.subtree_control when the base lacks it, then in the base's.
func (h *Hierarchy) Enable(controller string) error {
	if controller == "" || strings.ContainsAny(controller, " \n+-/") {
		return fmt.Errorf("cgroup %s: controller %q: %w", h.base.dir, controller, unix.EINVAL)
	}
	if slices.Contains(h.base.controllers("cgroup.subtree_control"), controller) {
		return nil
	}
	if h.noEnable != "" {
		return fmt.Errorf("cgroup %s: controller %s not turned on: %s", h.base.dir, controller, h.noEnable)
	}
	if !slices.Contains(h.base.controllers("cgroup.controllers"), controller) {
		if h.parent < 0 {
			return fmt.Errorf("cgroup %s: controller %s: not available", h.base.dir, controller)
		}
		if err := writeAt(h.parent, "cgroup.subtree_control", "+"+controller); err != nil {
			return fmt.Errorf("cgroup %s: enable %s: %w", filepath.Dir(h.base.dir), controller, err)
		}
	}
	if err := writeAt(h.base.fd, "cgroup.subtree_control", "+"+controller); err != nil {
		return fmt.Errorf("cgroup %s: enable %s: %w", h.base.dir, controller, err)
	}
	return nil
}

// Group is one open cgroup: a unit's, or a leaf below it.
type Group struct {
	fd     int
	dir    string // for messages and the status
	rel    string // as /proc/PID/cgroup shows it
	name   string // in parent
	parent *Group // nil: the base
	next   atomic.Int64
}

// Dir is the group's directory, e.g. /sys/fs/cgroup/unified/sockd/app.service.
func (g *Group) Dir() string { return g.dir }

// Path is the group's path as /proc/PID/cgroup shows it.
func (g *Group) Path() string { return g.rel }

// Name is the group's directory name.
func (g *Group) Name() string { return g.name }

// FD is the group's directory descriptor, for CLONE_INTO_CGROUP; owned
// by g, valid until Close.
func (g *Group) FD() int { return g.fd }

// Close closes g's descriptor; the cgroup stays.
func (g *Group) Close() error {
	if g.fd < 0 {
		return nil
	}
	err := unix.Close(g.fd)
	g.fd = -1
	return err
}

func (g *Group) child(name string, exclusive bool) (*Group, error) {
	if err := unix.Mkdirat(g.fd, name, 0o755); err != nil && (exclusive || err != unix.EEXIST) {
		return nil, &os.PathError{Op: "mkdir", Path: filepath.Join(g.dir, name), Err: err}
	}
	fd, err := unix.Openat(g.fd, name, dirFlags, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: filepath.Join(g.dir, name), Err: err}
	}
	return &Group{fd: fd, dir: filepath.Join(g.dir, name), rel: filepath.Join(g.rel, name), name: name, parent: g}, nil
}

// Leaf opens the existing child cgroup name of g.
func (g *Group) Leaf(name string) (*Group, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return nil, fmt.Errorf("cgroup leaf %q: %w", name, unix.EINVAL)
	}
	return g.openChild(name)
}

// Exists reports whether g has the interface file name (memory.max is
// there when the memory controller is enabled for g).
func (g *Group) Exists(name string) bool {
	if name == "" || strings.ContainsAny(name, "/\x00") {
		return false
	}
	return unix.Faccessat(g.fd, name, unix.F_OK, unix.AT_SYMLINK_NOFOLLOW) == nil
}

// NewLeaf makes a new child cgroup named prefix followed by a number not
// taken yet (a leaf left by a previous sockd is never shared).
func (g *Group) NewLeaf(prefix string) (*Group, error) {
	if strings.ContainsAny(prefix, "/.\x00") {
		return nil, fmt.Errorf("cgroup leaf %q: %w", prefix, unix.EINVAL)
	}
	for range 1000 {
		n := g.next.Add(1)
		c, err := g.child(prefix+strconv.FormatInt(n, 10), true)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		return c, err
	}
	return nil, fmt.Errorf("cgroup %s: no free leaf name %s…", g.dir, prefix)
}

// Remove removes g if it is empty (no process, no child cgroup) and
// closes it. A populated cgroup stays (EBUSY).
func (g *Group) Remove() error {
	g.Close()
	var err error
	switch {
	case g.parent == nil:
		err = unix.Rmdir(g.dir) // the base, whose path is configuration
	case g.parent.fd < 0:
		err = unix.EBADF // never by path below the base
	default:
		err = unix.Unlinkat(g.parent.fd, g.name, unix.AT_REMOVEDIR)
	}
	if err != nil && err != unix.ENOENT {
		return &os.PathError{Op: "rmdir", Path: g.dir, Err: err}
	}
	return nil
}

// RemoveEmpty removes every empty child cgroup of g (leaves a previous
// sockd left); populated ones stay.
func (g *Group) RemoveEmpty() {
	for _, name := range g.children() {
		if c, err := g.child(name, false); err == nil {
			c.RemoveEmpty()
			c.Remove()
		}
	}
}

// children lists the names of g's child cgroups.
func (g *Group) children() []string {
	fd, err := unix.Openat(g.fd, ".", dirFlags, 0)
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), g.dir)
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && e.Type()&os.ModeSymlink == 0 {
			out = append(out, e.Name())
		}
	}
	return out
}

// Set writes value to the interface file name of g (memory.max, say).
func (g *Group) Set(name, value string) error {
	if strings.ContainsAny(name, "/\x00") || name == "" || name[0] == '.' {
		return fmt.Errorf("cgroup %s: file %q: %w", g.dir, name, unix.EINVAL)
	}
	if err := writeAt(g.fd, name, value); err != nil {
		return fmt.Errorf("cgroup %s: write %s: %w", g.dir, name, err)
	}
	return nil
}

func (g *Group) controllers(file string) []string {
	b, err := readAt(g.fd, file)
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}

// Procs lists the processes of g itself (cgroup.procs).
func (g *Group) Procs() ([]int, error) {
	b, err := readAt(g.fd, "cgroup.procs")
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: read cgroup.procs: %w", g.dir, err)
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out, nil
}

// maxDepth bounds the walk of a group's descendants: a delegated child
// may make cgroups of its own.
const maxDepth = 16

// AllProcs lists the processes of g and of every cgroup below it.
func (g *Group) AllProcs() ([]int, error) {
	return g.allProcs(0)
}

func (g *Group) allProcs(depth int) ([]int, error) {
	out, err := g.Procs()
	if err != nil || depth >= maxDepth {
		return out, err
	}
	for _, name := range g.children() {
		c, err := g.openChild(name)
		if err != nil {
			continue // gone meanwhile
		}
		more, _ := c.allProcs(depth + 1)
		c.Close()
		out = append(out, more...)
	}
	slices.Sort(out)
	return out, nil
}

func (g *Group) openChild(name string) (*Group, error) {
	fd, err := unix.Openat(g.fd, name, dirFlags, 0)
	if err != nil {
		return nil, err
	}
	return &Group{fd: fd, dir: filepath.Join(g.dir, name), rel: filepath.Join(g.rel, name), name: name, parent: g}, nil
}

// Kill kills every process of g and of the cgroups below it with
// SIGKILL (cgroup.kill, Linux 5.14), at once: none can fork away
// meanwhile. Without cgroup.kill, every process listed is sent SIGKILL.
func (g *Group) Kill() error {
	err := writeAt(g.fd, "cgroup.kill", "1")
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.ENOENT) {
		return g.Signal(unix.SIGKILL)
	}
	return fmt.Errorf("cgroup %s: kill: %w", g.dir, err)
}

// Signal sends sig to every process of g and of the cgroups below it.
// Each pid is pinned with a pidfd and checked to be in g still before
// the signal, so that a pid reused meanwhile is never signalled.
func (g *Group) Signal(sig syscall.Signal) error {
	pids, err := g.AllProcs()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		pfd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // gone
		}
		if p, err := PathOf(pid); err == nil && (p == g.rel || strings.HasPrefix(p, g.rel+"/")) {
			unix.PidfdSendSignal(pfd, sig, nil, 0)
		}
		unix.Close(pfd)
	}
	return nil
}

// Populated reports whether a process is in g or below it
// (cgroup.events).
func (g *Group) Populated() (bool, error) {
	b, err := readAt(g.fd, "cgroup.events")
	if err != nil {
		return false, fmt.Errorf("cgroup %s: read cgroup.events: %w", g.dir, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "populated "); ok {
			return v != "0", nil
		}
	}
	return false, fmt.Errorf("cgroup %s: cgroup.events: no populated line", g.dir)
}

const maxFile = 1 << 20

func readAt(dirfd int, name string) ([]byte, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxFile))
}

func writeAt(dirfd int, name, value string) error {
	fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, err = unix.Write(fd, []byte(value))
	return err
}
