package supervisord

// cgroups v2: each unit's processes live in the unit's cgroup, so that
// a grandchild that calls setsid(2) is still the unit's: listed in its
// status, signalled and killed with it. See docs/architecture.md,
// "Control groups".
//
// BASE/UNIT is the unit's cgroup (kept while sockd runs, found again by
// name after a re-exec or a crash); every process sockd starts for the
// unit (the service's, and each Exec*= command) is born (clone3's
// CLONE_INTO_CGROUP) in a leaf of its own, BASE/UNIT/pN. The leaf is the
// process's control group: KillMode= signals it, and what is left of it
// when its main process exits is killed (control-group, mixed). Two
// generations of an overlapping restart have two leaves, so the end of
// one never kills the other. Resource options apply to BASE/UNIT, the
// whole unit.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/internal/cgroup"
	"github.com/sockd/sockd/units"
)

// CgroupAuto and CgroupOff are the values of Config.Cgroup besides a
// directory.
const (
	CgroupAuto = "auto"
	CgroupOff  = "off"
)

// emptyWait bounds the wait for a killed leaf to become empty (a process
// in uninterruptible sleep dies late).
const emptyWait = 10 * time.Second

// openCgroup sets up d.cg as Config.Cgroup says: "" and "off" use
// process groups; "auto" the hierarchy Detect finds, else process
// groups; a directory that one (an error if it cannot be used).
func (d *Daemon) openCgroup() error {
	switch d.cfg.Cgroup {
	case "", CgroupOff:
		return nil
	case CgroupAuto:
		place, err := cgroup.Detect()
		if err != nil {
			d.log.Info().Err(err).Msg("no cgroup v2 for the units: process groups are their control groups")
			return nil
		}
		if !place.Own && d.runDir != DefaultRuntimeDir {
			// Another sockd (its own runtime directory, its own state)
			// gets a base of its own, the same at each of its starts.
			place.Dir = filepath.Join(filepath.Dir(place.Dir), baseName(d.runDir))
		}
		h, err := cgroup.Setup(place)
		if err != nil {
			d.log.Warn().Err(err).Msg("no cgroup v2 for the units: process groups are their control groups")
			return nil
		}
		d.cg, d.cgOwn = h, place.Own
	default:
		h, err := cgroup.Open(d.cfg.Cgroup)
		if err != nil {
			return err
		}
		d.cg = h
	}
	d.pids.cgBase = d.cg.Path()
	d.log.Info().Str("cgroup", d.cg.Dir()).Strs("controllers", d.cg.Available()).Msg("units run in cgroups")
	return nil
}

// baseName is the name of the base cgroup, below the hierarchy's root,
// of the sockd whose runtime directory is runDir: "sockd" for
// /run/sockd, "sockd-HASH" for another.
func baseName(runDir string) string {
	if runDir == DefaultRuntimeDir {
		return cgroup.RootSubtree
	}
	sum := sha256.Sum256([]byte(filepath.Clean(runDir)))
	return cgroup.RootSubtree + "-" + hex.EncodeToString(sum[:6])
}

// closeCgroup removes, at a clean shutdown, the cgroups left empty (the
// base too, unless it is sockd's own), and closes the base.
func (d *Daemon) closeCgroup(clean bool) {
	if d.cg == nil {
		return
	}
	if clean {
		d.cg.RemoveEmptyUnits()
		if !d.cgOwn {
			d.cg.Remove()
			return
		}
	}
	d.cg.Close()
}

// unitCgroup opens the cgroup of the unit name and checks its resource
// options against the controllers there are; nil without cgroups.
func (d *Daemon) unitCgroup(name string) *unitCG {
	if d.cg == nil {
		return nil
	}
	g, err := d.cg.Unit(name)
	if err != nil {
		d.log.Error().Err(err).Str("unit", name).Msg("no cgroup for the unit: its process groups are its control groups")
		return nil
	}
	return &unitCG{g: g, h: d.cg, refs: 1}
}

// cgroup returns the unit's cgroup, made and opened when a process is
// to run in it: an idle unit holds none (no fd, no mkdir at load), and
// gives it back when it parks (releaseCgroup). nil without cgroups.
func (u *unit) cgroup() *unitCG {
	if u.cg == nil && u.cgd != nil {
		if u.cg = u.cgd.unitCgroup(u.name); u.cg != nil {
			u.pids.addCgroup(u.cg.g.Path(), u)
		}
	}
	return u.cg
}

// cgroupName is the unit's control group as status shows it, whether
// or not it is open now.
func (u *unit) cgroupName() string {
	if u.cg != nil || u.cgd == nil {
		return u.cg.name()
	}
	esc, err := cgroup.Escape(u.name)
	if err != nil {
		return "process group"
	}
	return "cgroup " + filepath.Join(u.cgd.cg.Dir(), esc)
}

// closeCgroup ends the actor's hold of the unit's cgroup; the cgroup
// stays (a later sockd, or the unit added again, finds it by name).
func (u *unit) closeCgroup() {
	if u.cg == nil {
		return
	}
	u.pids.removeCgroup(u.cg.g.Path(), u)
	u.cg.release()
}

// releaseCgroup lets the unit's cgroup go while the unit is idle (its
// directory stays); the next process opens it again.
func (u *unit) releaseCgroup() {
	u.closeCgroup()
	u.cg = nil
}

// close ends an acceptor's hold of its cgroup (none: nothing).
func (c *unitCG) close() {
	if c != nil {
		c.release()
	}
}

// resourceDiagnostics warns, once per load or reload, of each resource
// option that is not applied: no cgroup v2, or its controller is not
// in the hierarchy.
func (d *Daemon) resourceDiagnostics(set *units.Set) units.Diagnostics {
	var avail []string
	if d.cg != nil {
		avail = d.cg.Available()
	}
	var out units.Diagnostics
	names := make([]string, 0, len(set.Services))
	for name := range set.Services {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		svc := set.Services[name]
		for _, r := range svc.Resources {
			dg := units.Diagnostic{File: r.Source, Line: r.Line, Option: r.Option, Unit: svc.Name, Severity: units.Warning}
			switch {
			case d.cg == nil:
				dg.Msg = "no cgroup v2 for the units (sockd --cgroup): not applied"
			case !slices.Contains(avail, r.Controller):
				dg.Msg = fmt.Sprintf("the %s controller is not in the cgroup v2 hierarchy (%s/cgroup.controllers): not applied", r.Controller, d.cg.Dir())
			default:
				continue
			}
			out = append(out, dg)
		}
	}
	return out
}

// unitCG is a unit's cgroup, shared by its actor and by the leaves of
// its processes: its descriptor is closed when the last of them is done
// with it (a leaf is removed through it).
type unitCG struct {
	g    *cgroup.Group
	h    *cgroup.Hierarchy
	mu   sync.Mutex
	refs int // the actor's, and one per live leaf
}

func (c *unitCG) acquire() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refs == 0 {
		return false
	}
	c.refs++
	return true
}

func (c *unitCG) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refs--; c.refs == 0 {
		c.g.Close()
	}
}

// applyResources writes svc's resource options to the unit's cgroup,
// and the default of each one it does not set, where the controller
// is available; the rest was warned about at load.
func (c *unitCG) applyResources(svc *units.Service) []error {
	avail := c.h.Available()
	set := map[string]units.Resource{}
	for _, r := range svc.Resources {
		set[r.File] = r
	}
	var errs []error
	for file, def := range units.ResourceDefaults {
		ctrl, _, _ := strings.Cut(file, ".")
		if !slices.Contains(avail, ctrl) {
			continue
		}
		r, ok := set[file]
		if !ok && !c.has(file) {
			continue
		}
		if err := c.h.Enable(ctrl); err != nil {
			errs = append(errs, err)
			continue
		}
		v := def
		if ok {
			v = r.Value
		}
		if err := c.g.Set(file, v); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %s=: %w", r.Source, r.Line, r.Option, err))
		}
	}
	return errs
}

// has reports whether the unit's cgroup has the interface file (its
// controller is enabled for it).
func (c *unitCG) has(file string) bool { return c.g.Exists(file) }

// starter is u.start with every process born in a new leaf of the
// unit's cgroup, and its Done closed only once what KillMode= kills of
// the leaf is gone.
func (u *unit) starter() startFunc {
	return cgStarter(u.cgroup(), killGroupOnExit(u.svc), u.start)
}

// cgStarter is start with every process born in a new leaf of c (start
// itself when c is nil); killRest: what is left of the leaf is killed
// when the process exits.
func cgStarter(c *unitCG, killRest bool, start startFunc) startFunc {
	if c == nil {
		return start
	}
	return func(spec children.Spec) (process, error) {
		if !c.acquire() {
			return start(spec) // the actor is gone: no leaf to put it in
		}
		leaf, err := c.g.NewLeaf("p")
		if err != nil {
			c.release()
			return nil, err
		}
		spec.UseCgroup, spec.CgroupFD = true, leaf.FD()
		p, err := start(spec)
		if err != nil {
			leaf.Remove()
			c.release()
			return nil, err
		}
		return newCgProc(p, leaf, killRest, c.release), nil
	}
}

// adoptInto puts p, a process sockd adopted (Type=forking's main
// process, one taken back after a crash), under the leaf it runs in, if
// that is one of the unit's; else p is returned as it is.
func (u *unit) adoptInto(p process, killRest bool) process {
	if p == nil {
		return p
	}
	c := u.cgroup()
	if c == nil {
		return p
	}
	path, err := cgroup.PathOf(p.Pid())
	if err != nil {
		return p
	}
	rest, ok := strings.CutPrefix(path, c.g.Path()+"/")
	if !ok || rest == "" {
		return p
	}
	name, _, _ := strings.Cut(rest, "/")
	if !c.acquire() {
		return p
	}
	leaf, err := c.g.Leaf(name)
	if err != nil {
		c.release()
		return p
	}
	return newCgProc(p, leaf, killRest, c.release)
}

// cgProc is a process with its leaf cgroup: SignalGroup signals every
// process of the leaf (SIGKILL: cgroup.kill), and Done waits for the
// leaf to be empty when KillMode= kills what is left.
type cgProc struct {
	process
	done    chan struct{}
	path    string // the leaf's, as /proc/PID/cgroup shows it
	mu      sync.Mutex
	leaf    *cgroup.Group // nil once closed
	release func()
}

func newCgProc(p process, leaf *cgroup.Group, killRest bool, release func()) *cgProc {
	c := &cgProc{process: p, done: make(chan struct{}), path: leaf.Path(), leaf: leaf, release: release}
	go c.watch(killRest)
	return c
}

func (c *cgProc) Done() <-chan struct{} { return c.done }

// SignalGroup sends sig to every process of the leaf.
func (c *cgProc) SignalGroup(sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leaf == nil {
		return nil
	}
	if sig == syscall.SIGKILL {
		return c.leaf.Kill()
	}
	return c.leaf.Signal(sig)
}

// watch ends the leaf with its process: what is left is killed (with
// killRest) as soon as the process exits, the leaf removed once empty.
func (c *cgProc) watch(killRest bool) {
	defer close(c.done)
	defer c.release()
	exited := c.process.Done()
	if e, ok := c.process.(interface{ Exited() <-chan struct{} }); ok {
		exited = e.Exited() // before the output drain, which a grandchild may hold up
	}
	<-exited
	if killRest {
		c.SignalGroup(syscall.SIGKILL)
	}
	<-c.process.Done()
	if killRest {
		// Not under mu: the actor's SignalGroup must never wait for this.
		ctx, cancel := context.WithTimeout(context.Background(), emptyWait)
		c.leaf.WaitEmpty(ctx)
		cancel()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if pop, err := c.leaf.Populated(); err == nil && !pop {
		c.leaf.Remove()
	} else {
		c.leaf.Close() // KillMode=process or none: what is left stays, and the leaf
	}
	c.leaf = nil
}

// cgroupPath is the leaf of p, "" when it has none.
func cgroupPath(p process) string {
	if c, ok := p.(*cgProc); ok {
		return c.path
	}
	return ""
}

// name is the status line of the unit's control group.
func (c *unitCG) name() string {
	if c == nil {
		return "process group"
	}
	return "cgroup " + c.g.Dir()
}

// pids lists every process in the unit's cgroup (none without one). It
// reads cgroup.procs of every leaf: only a status asked for one unit
// does (fullStatus), not the list, the observer or the metrics.
func (c *unitCG) pids() []int {
	if c == nil {
		return nil
	}
	pids, _ := c.g.AllProcs()
	return pids
}

// procByCgroup is the unit's process whose leaf pid is in, or nil.
func (u *unit) procByCgroup(pid int) *proc {
	if u.cg == nil {
		return nil
	}
	path, err := cgroup.PathOf(pid)
	if err != nil {
		return nil
	}
	for _, p := range u.processes() {
		if p == nil || p.p == nil {
			continue
		}
		if lp := cgroupPath(p.p); lp != "" && (path == lp || strings.HasPrefix(path, lp+"/")) {
			return p
		}
	}
	return nil
}

// addCgroup routes the messages of processes in the cgroup path (and
// below) to u.
func (t *pidTable) addCgroup(path string, u *unit) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byCgroup == nil {
		t.byCgroup = map[string]*unit{}
	}
	t.byCgroup[path] = u
}

func (t *pidTable) removeCgroup(path string, u *unit) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byCgroup[path] == u {
		delete(t.byCgroup, path)
	}
}

// cgroupOf is pid's cgroup as the kernel names it in /proc/PID/cgroup
// (which the sender cannot forge), "" if unknown.
func cgroupOf(pid int) string {
	p, _ := cgroup.PathOf(pid)
	return p
}

// byCgroupLocked finds the unit whose cgroup holds the cgroup path; nil
// without cgroups or for a path outside the units'.
func (t *pidTable) byCgroupLocked(path string) *unit {
	if t.cgBase == "" || path == "" {
		return nil
	}
	base := strings.TrimSuffix(t.cgBase, "/")
	rest, ok := strings.CutPrefix(path, base+"/")
	if !ok {
		return nil
	}
	name, _, _ := strings.Cut(rest, "/")
	return t.byCgroup[base+"/"+name]
}

// applyResources writes the unit's resource options to its cgroup
// before a process starts; a failure is logged, the start goes on.
func (u *unit) applyResources() {
	c := u.cgroup()
	if c == nil {
		return
	}
	for _, err := range c.applyResources(u.svc) {
		u.log.Warn().Err(err).Msg("resource option not applied")
	}
}

// killsCgroup reports whether KillMode= kills what is left of a
// process's cgroup when it exits (control-group, mixed): for Type=forking's
// main process, unlike killGroupOnExit.
func killsCgroup(svc *units.Service) bool {
	return svc.KillMode == "" || svc.KillMode == units.KillControlGroup || svc.KillMode == units.KillMixed
}
