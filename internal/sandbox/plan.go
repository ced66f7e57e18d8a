package sandbox

// The mount namespace's plan: which paths get what, in which order. It is
// worked out here from Setup alone, without touching the system, so the
// rules below are tested without root; mounts_linux.go carries it out.
//
// The rules are systemd's (252, src/core/namespace.c): every option turns
// into entries (a path and a kind), sorted by path so that a parent comes
// before what is under it; of the entries for one path the first kind
// below wins; what an inaccessible entry hides is dropped, and so is an
// entry that would change nothing under its parent.
//
// The mounts are made in two rounds, as systemd makes them. The first
// puts a new thing on every entry that replaces its path (a tmpfs, the
// private /tmp, an inaccessible node) and makes every read-only entry a
// mount of its own. The second turns read-only, in path order, every
// entry that asks for it, each with everything under it; an entry under
// one of those that is not read-only itself (ReadWritePaths=, a private
// /tmp, /proc under ProtectSystem=strict) is then put back as the first
// round left it (restore). Read-only is only ever added: a path that is
// read-only on the host stays so, as systemd.exec(5) promises for
// ReadWritePaths= ("the same access modes as from outside").

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// kind is what an entry does to its path. Their order is systemd's
// MountMode order: of two entries for one path, the lower kind wins.
type kind int

const (
	inaccessible      kind = iota // an empty mode-0000 node, read-only
	privateTmp                    // a bind of sockd's directory (entry.from)
	privateDev                    // a new /dev with a few host devices
	readOnly                      // the path as it is, read-only
	readWrite                     // the path as it is (ReadWritePaths=)
	tmpfs                         // a new tmpfs (entry.tmpfs)
	readWriteImplicit             // as readWrite, but losing to everything
)

var kindNames = [...]string{"inaccessible", "private-tmp", "private-dev", "read-only", "read-write", "tmpfs", "rw-implicit"}

func (k kind) String() string { return kindNames[k] }

// keeps reports whether k leaves the path's contents as they are, only
// possibly changing whether it is read-only.
func (k kind) keeps() bool { return k == readOnly || k == readWrite || k == readWriteImplicit }

// entry is one path of the plan.
type entry struct {
	path     string
	kind     kind
	source   string // the option that asked for it, for errors: "ProtectSystem=strict"
	optional bool   // a missing path is skipped instead of failing the start
	ro       bool   // turned read-only in the second round, with what is under it
	restore  bool   // under a read-only entry but not read-only: put back after it
	from     string // privateTmp: the host directory mounted on path
	tmpfs    *tmpfsOptions
}

// The entries the options ask for, as systemd's tables in namespace.c
// have them. Optional ones may be missing on a given system.
var (
	protectSystemYes  = []string{"/usr", "-/boot", "-/efi"}
	protectSystemFull = []string{"/usr", "-/boot", "-/efi", "/etc"}
	// ProtectSystem=strict leaves the API file systems to
	// PrivateDevices=, ProtectKernelTunables= and ProtectControlGroups=,
	// and the homes to ProtectHome=: they keep their host modes.
	protectSystemStrictKeep = []string{"/proc", "/sys", "/dev", "-/home", "-/run/user", "-/root"}
	protectHome             = []string{"-/home", "-/run/user", "-/root"}
	kernelTunablesRO        = []string{
		"-/proc/acpi", "-/proc/apm", "-/proc/asound", "-/proc/bus", "-/proc/fs",
		"-/proc/irq", "-/proc/latency_stats", "-/proc/mtrr", "-/proc/scsi",
		"-/proc/sys", "-/proc/sysrq-trigger", "-/proc/timer_stats", "/sys",
		"-/sys/fs/bpf", "-/sys/kernel/debug", "-/sys/kernel/tracing",
	}
	kernelTunablesHidden = []string{"-/proc/kallsyms", "-/proc/kcore"}
	// /sys/fs/cgroup is ProtectControlGroups='s to decide; SELinux needs
	// its file system writable.
	kernelTunablesKeep = []string{"-/sys/fs/cgroup", "-/sys/fs/selinux"}
	kernelModules      = []string{"-/lib/modules", "-/usr/lib/modules"}
)

// Limits on the tmpfs mounts, systemd's (mount-util.h): nested tmpfs for
// TemporaryFileSystem=, almost nothing for ProtectHome=tmpfs, a little
// for the private /dev, which only holds nodes, links and directories.
const (
	nestedTmpfsLimits = "size=10%,nr_inodes=400k"
	emptyTmpfsLimits  = "size=4m,nr_inodes=1k"
	devTmpfsLimits    = "size=4m,nr_inodes=64k"
)

// wanted lists the entries s asks for, unsorted. It fails on what can
// never be mounted: a path that is not absolute and normalized (units
// refuses them already), an unknown ProtectSystem= or ProtectHome=
// value, PrivateTmp= without its directories.
func wanted(s *Setup) ([]entry, error) {
	var es []entry
	// add appends entries for paths, "-" marking an optional one.
	add := func(source string, k kind, ro bool, paths ...string) {
		for _, p := range paths {
			opt := strings.HasPrefix(p, "-")
			es = append(es, entry{path: filepath.Clean(strings.TrimPrefix(p, "-")), kind: k, source: source, optional: opt, ro: ro})
		}
	}
	addPaths := func(option string, k kind, ro bool, ps []Path) error {
		for _, p := range ps {
			src := option + "=" + p.Path
			if err := checkPath(src, p.Path); err != nil {
				return err
			}
			add(src, k, ro, p.Path)
			es[len(es)-1].optional = p.Optional
		}
		return nil
	}

	switch src := "ProtectSystem=" + string(s.ProtectSystem); s.ProtectSystem {
	case "":
	case "yes":
		add(src, readOnly, true, protectSystemYes...)
	case "full":
		add(src, readOnly, true, protectSystemFull...)
	case "strict":
		add(src, readOnly, true, "/")
		add(src, readWriteImplicit, false, protectSystemStrictKeep...)
	default:
		return nil, fmt.Errorf("%s: want yes, full or strict", src)
	}

	switch src := "ProtectHome=" + string(s.ProtectHome); s.ProtectHome {
	case "":
	case "yes":
		add(src, inaccessible, true, protectHome...)
	case "read-only":
		add(src, readOnly, true, protectHome...)
	case "tmpfs":
		for _, p := range protectHome {
			add(src, tmpfs, true, p)
			mode := "mode=0755,"
			if p == "-/root" { // systemd's table keeps root's home 0700
				mode = "mode=0700,"
			}
			o := tmpfsOptions{attrs: attrNodev | attrStrictatime, ro: true}.with(mode + emptyTmpfsLimits)
			es[len(es)-1].tmpfs = &o
		}
	default:
		return nil, fmt.Errorf("%s: want yes, read-only or tmpfs", src)
	}

	if err := addPaths("ReadWritePaths", readWrite, false, s.ReadWritePaths); err != nil {
		return nil, err
	}
	if err := addPaths("ReadOnlyPaths", readOnly, true, s.ReadOnlyPaths); err != nil {
		return nil, err
	}
	if err := addPaths("InaccessiblePaths", inaccessible, true, s.InaccessiblePaths); err != nil {
		return nil, err
	}
	for _, w := range s.Writable {
		// RuntimeDirectory= and kin: sockd made them, but one removed
		// since must not fail the start.
		src := "writable directory " + w
		if err := checkPath(src, w); err != nil {
			return nil, err
		}
		add(src, readWrite, false, "-"+w)
	}
	for _, t := range s.TemporaryFileSystem {
		src := "TemporaryFileSystem=" + t.Path
		if t.Options != "" {
			src += ":" + t.Options
		}
		if err := checkPath(src, t.Path); err != nil {
			return nil, err
		}
		// systemd's defaults come first, so the unit's words override them.
		o := tmpfsOptions{attrs: attrNodev | attrStrictatime}.with("mode=0755," + nestedTmpfsLimits + "," + t.Options)
		add(src, tmpfs, o.ro, t.Path)
		es[len(es)-1].tmpfs = &o
	}

	if s.PrivateTmp {
		if s.TmpDir == "" || s.VarTmpDir == "" {
			return nil, fmt.Errorf("PrivateTmp=yes: no private directories (Setup.TmpDir, Setup.VarTmpDir)")
		}
		add("PrivateTmp=yes", privateTmp, false, "/tmp", "/var/tmp")
		es[len(es)-2].from, es[len(es)-1].from = s.TmpDir, s.VarTmpDir
	}
	if s.PrivateDevices {
		add("PrivateDevices=yes", privateDev, false, "/dev")
	}
	if s.ProtectKernelTunables {
		const src = "ProtectKernelTunables=yes"
		add(src, readOnly, true, kernelTunablesRO...)
		add(src, inaccessible, true, kernelTunablesHidden...)
		add(src, readWriteImplicit, false, kernelTunablesKeep...)
	}
	if s.ProtectKernelModules {
		add("ProtectKernelModules=yes", inaccessible, true, kernelModules...)
	}
	if s.ProtectControlGroups {
		add("ProtectControlGroups=yes", readOnly, true, "/sys/fs/cgroup")
	}
	return es, nil
}

// checkPath refuses a path that is not absolute or has a ".." in it
// (systemd refuses those too: a path must say where it is).
func checkPath(source, p string) error {
	if !filepath.IsAbs(p) || slices.Contains(strings.Split(p, "/"), "..") {
		return fmt.Errorf("%s: %q is not a normalized absolute path", source, p)
	}
	return nil
}

// normalize sorts es by path, parents first, and drops what systemd
// drops (drop_duplicates, drop_inaccessible, drop_nop): for one path the
// entry of the lowest kind wins, read-only if any of them was; nothing
// under an inaccessible entry is mounted; a keeping entry (read-only,
// read-write) that agrees with its nearest keeping parent changes
// nothing. It then marks the entries to restore after the read-only
// round. es is reused.
func normalize(es []entry) []entry {
	slices.SortStableFunc(es, func(a, b entry) int {
		if c := comparePaths(a.path, b.path); c != 0 {
			return c
		}
		return cmp.Compare(a.kind, b.kind)
	})
	var unique []entry
	for _, e := range es {
		if n := len(unique); n > 0 && unique[n-1].path == e.path {
			unique[n-1].ro = unique[n-1].ro || e.ro
			continue
		}
		unique = append(unique, e)
	}

	// The entries are in path order, so a stack of the entries above
	// the current one finds its nearest parent.
	var out []entry
	var above []int // indices in out, nearest last
	parent := func(p string) *entry {
		for len(above) > 0 && !isUnder(p, out[above[len(above)-1]].path) {
			above = above[:len(above)-1]
		}
		if len(above) == 0 {
			return nil
		}
		return &out[above[len(above)-1]]
	}
	for _, e := range unique {
		e.restore = false
		if p := parent(e.path); p != nil {
			if p.kind == inaccessible || p.kind.keeps() && e.kind.keeps() && p.ro == e.ro {
				continue
			}
			// Made read-only with its parent, but not read-only
			// itself: put back afterwards.
			e.restore = p.ro && !e.ro
		}
		out = append(out, e)
		above = append(above, len(out)-1)
	}
	return out
}

// comparePaths orders clean absolute paths component by component, so
// that a directory comes right before everything under it ("/a",
// "/a/b", "/a-b"), as systemd's path_compare does.
func comparePaths(a, b string) int {
	as, bs := strings.Split(a, "/")[1:], strings.Split(b, "/")[1:]
	if a == "/" {
		as = nil
	}
	if b == "/" {
		bs = nil
	}
	return slices.Compare(as, bs)
}

// isUnder reports whether p is strictly under dir; both are clean.
func isUnder(p, dir string) bool {
	if dir == "/" {
		return p != "/"
	}
	return strings.HasPrefix(p, dir+"/")
}

// indexStaged is the index of the first entry of es that needs
// Setup.Staging (the inaccessible nodes and the private /dev are built
// there), or -1.
func indexStaged(es []entry) int {
	return slices.IndexFunc(es, func(e entry) bool { return e.kind == inaccessible || e.kind == privateDev })
}

// mountAttrs are mount_setattr(2)'s MOUNT_ATTR_* bits (linux/mount.h),
// spelled out here so that planning builds on every system;
// mounts_linux_test.go checks them against x/sys/unix.
type mountAttrs uint64

const (
	attrRdonly      mountAttrs = 0x01
	attrNosuid      mountAttrs = 0x02
	attrNodev       mountAttrs = 0x04
	attrNoexec      mountAttrs = 0x08
	attrAtime       mountAttrs = 0x70 // the access time field: one of the three below
	attrRelatime    mountAttrs = 0x00
	attrNoatime     mountAttrs = 0x10
	attrStrictatime mountAttrs = 0x20
	attrNodiratime  mountAttrs = 0x80
)

// attrWords are the mount options that are per-mount flags, and what
// each sets and clears.
var attrWords = map[string]struct{ set, clear mountAttrs }{
	"nosuid": {set: attrNosuid}, "suid": {clear: attrNosuid},
	"nodev": {set: attrNodev}, "dev": {clear: attrNodev},
	"noexec": {set: attrNoexec}, "exec": {clear: attrNoexec},
	"relatime":      {set: attrRelatime, clear: attrAtime},
	"noatime":       {set: attrNoatime, clear: attrAtime},
	"strictatime":   {set: attrStrictatime, clear: attrAtime},
	"atime":         {clear: attrNoatime},
	"nostrictatime": {clear: attrStrictatime},
	"nodiratime":    {set: attrNodiratime}, "diratime": {clear: attrNodiratime},
}

// tmpfsOptions are a tmpfs's mount options, split as the new mount API
// takes them: per-mount flags (attrs, for fsmount), read-only (made in
// the second round, as for every entry), and the rest for the file
// system itself ("key" or "key=value", handed to fsconfig in order, so
// that a later value wins as with mount(8)).
type tmpfsOptions struct {
	attrs  mountAttrs
	ro     bool
	params []string
}

// with returns o with the comma-separated options of opts applied after
// its own, as mount(8) reads them: "ro", "nosuid", "noexec" and the like
// are flags; anything else ("mode=0700", "size=10%", "huge=always") goes
// to the file system, which checks it when it is mounted.
func (o tmpfsOptions) with(opts string) tmpfsOptions {
	o.params = slices.Clone(o.params)
	for _, w := range strings.Split(opts, ",") {
		f, isAttr := attrWords[w]
		switch {
		case w == "":
		case w == "ro":
			o.ro = true
		case w == "rw":
			o.ro = false
		case isAttr:
			o.attrs = o.attrs&^f.clear | f.set
		default:
			o.params = append(o.params, w)
		}
	}
	return o
}
