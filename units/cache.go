package units

// What a load saw of each file, so that the next load through the same
// Cache reads and parses only the files that changed.

import (
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Cache keeps, between loads, what each unit was built from (the stat
// of its file, of its drop-in directories and of each drop-in) and what
// it built (the *Socket or *Service and its diagnostics). A load through
// a Cache (LoadOptions.Cache) stats every file it would read and reads
// and parses only the units whose files changed, and what depends on
// them: a unit whose drop-in directory gained, lost or changed a file; the
// instances of a changed template (app@.socket, app@.service). A unit
// whose files did not change is the same pointer as in the last load, so
// a caller can tell unchanged units apart without comparing them.
//
// A file counts as changed when its device, inode, size, mode, owner,
// mtime or ctime (in ns) differ. A file rewritten within the file
// system's timestamp granularity of a load's start could keep all of
// them (git's "racy" files): such a file is read again by every load
// until its times are older than the last load's start by more than the
// granularity (100 ms; 2 s on a file system without sub-second times).
//
// Everything else a unit is built from is fixed for the life of the
// process: the specifiers that come from the host (%H, %m, %b, the user
// ones) are read once (specifier.go), and EnvironmentFile= is read at
// each spawn, not at load. The links between units (Service=, Sockets=,
// instances of sockets.target.wants) are checked again by every load.
//
// One load at a time uses a Cache; a second waits.
type Cache struct {
	mu    sync.Mutex
	trust trustPolicy
	units map[buildKey]*cachedUnit
	insts map[string]*cachedInstance
	// spare and stat are maps a load empties and fills again: 10,000
	// units make maps whose allocation costs more than clearing them.
	spare map[buildKey]*cachedUnit
	stat  map[string]stamp
	// parsed counts the files read and lexed through the Cache.
	parsed atomic.Int64
	// racy is the timestamp granularity assumed for file systems with
	// sub-second times; tests set 0 to make every file old at once.
	racy time.Duration
}

// NewCache returns an empty Cache.
func NewCache() *Cache {
	return &Cache{racy: 100 * time.Millisecond}
}

// Parsed returns the number of unit files and drop-ins the loads through
// c have read and parsed so far.
func (c *Cache) Parsed() int64 { return c.parsed.Load() }

// coarseRacy is the granularity assumed for a file whose mtime and ctime
// both have no nanoseconds: ext3 and others have 1 s, FAT 2 s.
const coarseRacy = 2 * time.Second

type buildKey struct{ unit, file, dropDir string }

// stamp is what stat(2) says of a file, as far as a change shows in it.
type stamp struct {
	absent         bool // ENOENT or ENOTDIR
	racy           bool // not to be trusted: a stat error, or too recent
	dev, ino       uint64
	mode, uid, gid uint32
	size           int64
	mtime, ctime   int64
}

// same reports whether old, a stamp of an earlier load, says that the
// file is unchanged now (s).
func (old stamp) same(s stamp) bool {
	return !old.racy && !s.racy && old == s
}

// fileStamp is a path and its stamp.
type fileStamp struct {
	path string
	st   stamp
}

// cachedUnit is a unit built by build, and what it was built from.
type cachedUnit struct {
	file    stamp
	dirs    []fileStamp // the drop-in directories looked in, absent or not
	dropIns []fileStamp // the *.conf files found in them
	unit    any
	diags   Diagnostics
	ok      bool
	masked  bool
}

// cachedInstance is a service made from a template by instantiate.
type cachedInstance struct {
	template *Service
	dirs     []fileStamp
	dropIns  []fileStamp
	inst     *Service
	diags    Diagnostics
}

// loadCache is a load's side of a Cache: what the last load left
// (old), what this one keeps (next), and the stat of each file this
// load looked at, taken once, before the file is read.
type loadCache struct {
	c     *Cache
	start int64 // the load's start, ns since the epoch
	old   map[buildKey]*cachedUnit
	next  map[buildKey]*cachedUnit
	oldI  map[string]*cachedInstance
	nextI map[string]*cachedInstance
	mu    sync.Mutex // guards stamps (prelex stats in parallel)
	stat  map[string]stamp
	// dir and dirFD are the unit directory, open while the load runs:
	// its files are stat'ed relative to it, one path component each.
	dir   string
	dirFD int
}

// begin starts a load through c, for the trust policy t: what the last
// load kept is forgotten if it was made with another policy.
func (c *Cache) begin(t trustPolicy) *loadCache {
	c.mu.Lock()
	if c.trust != t {
		c.units, c.insts, c.trust = nil, nil, t
	}
	if c.spare == nil {
		c.spare = make(map[buildKey]*cachedUnit, len(c.units))
	}
	if c.stat == nil {
		c.stat = make(map[string]stamp, len(c.units))
	}
	return &loadCache{c: c, start: time.Now().UnixNano(), old: c.units, oldI: c.insts,
		next: c.spare, nextI: map[string]*cachedInstance{}, stat: c.stat, dirFD: -1}
}

// openDir opens the unit directory dir for statting its files.
func (lc *loadCache) openDir(dir string) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		lc.dir, lc.dirFD = filepath.Clean(dir), fd
	}
}

// end keeps what this load built, and only that, for the next load.
func (lc *loadCache) end() {
	if lc.dirFD >= 0 {
		unix.Close(lc.dirFD)
	}
	c := lc.c
	c.units, c.insts, c.spare = lc.next, lc.nextI, lc.old
	clear(c.spare)
	clear(c.stat)
	c.mu.Unlock()
}

// stamp stats path (links followed), once per load.
func (lc *loadCache) stamp(path string) stamp {
	lc.mu.Lock()
	s, ok := lc.stat[path]
	lc.mu.Unlock()
	if ok {
		return s
	}
	s = lc.statNow(path)
	lc.mu.Lock()
	lc.stat[path] = s
	lc.mu.Unlock()
	return s
}

func (lc *loadCache) statNow(path string) stamp {
	var st unix.Stat_t
	var err error
	if dir, name := filepath.Split(path); lc.dirFD >= 0 && filepath.Clean(dir) == lc.dir {
		err = unix.Fstatat(lc.dirFD, name, &st, 0)
	} else {
		err = unix.Stat(path, &st)
	}
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
			return stamp{absent: true}
		}
		return stamp{racy: true}
	}
	s := stamp{dev: st.Dev, ino: st.Ino, mode: st.Mode, uid: st.Uid, gid: st.Gid, size: st.Size,
		mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano()}
	window := lc.c.racy
	if window > 0 && st.Mtim.Nsec == 0 && st.Ctim.Nsec == 0 {
		window = coarseRacy
	}
	s.racy = max(s.mtime, s.ctime) >= lc.start-int64(window)
	return s
}

// dirStamp is the stamp of the drop-in directory d of dir, known absent
// without a stat when dir is the unit directory l listed and d is not in
// it.
func (l *loader) dirStamp(dir, d string) fileStamp {
	p := filepath.Join(dir, d)
	if l.listed != nil && dir == l.listedDir && !l.listed[d] {
		return fileStamp{p, stamp{absent: true}}
	}
	return fileStamp{p, l.cache.stamp(p)}
}

// dropInDirs names the drop-in directories of n, in the order
// dropInFiles reads them.
func dropInDirs(n unitName) []string {
	if n.Instance != "" {
		return []string{n.Prefix + "@." + n.Suffix + ".d", n.Full + ".d"}
	}
	return []string{n.Full + ".d"}
}

// sameFiles reports whether every file of fs is unchanged in this load.
func (l *loader) sameFiles(fs []fileStamp) bool {
	for _, f := range fs {
		if !f.st.same(l.cache.stamp(f.path)) {
			return false
		}
	}
	return true
}

// sameDirs reports whether the drop-in directories of n in dir are the
// ones of dirs, each unchanged (or absent both times; dirs nil: all
// absent, see stampDirs).
func (l *loader) sameDirs(dir string, n unitName, dirs []fileStamp) bool {
	names := dropInDirs(n)
	if dirs == nil {
		for _, d := range names {
			if !l.dirStamp(dir, d).st.absent {
				return false
			}
		}
		return true
	}
	if len(names) != len(dirs) {
		return false
	}
	for i, d := range names {
		now := l.dirStamp(dir, d)
		old := dirs[i]
		if now.path != old.path {
			return false
		}
		if now.st.absent && old.st.absent {
			continue
		}
		if !old.st.same(now.st) {
			return false
		}
	}
	return true
}

// stampDirs stats the drop-in directories of n in dir, before they are
// read; nil when there is none, as for most units (10,000 units: a
// slice and a path fewer each).
func (l *loader) stampDirs(dir string, n unitName) []fileStamp {
	names := dropInDirs(n)
	out := make([]fileStamp, len(names))
	found := false
	for i, d := range names {
		out[i] = l.dirStamp(dir, d)
		found = found || !out[i].st.absent
	}
	if !found {
		return nil
	}
	return out
}

// stampFiles is the stamps of files, taken when dropInFiles listed them.
func (l *loader) stampFiles(files []string) []fileStamp {
	out := make([]fileStamp, len(files))
	for i, f := range files {
		out[i] = fileStamp{f, l.cache.stamp(f)}
	}
	return out
}

// cachedBuild is build through the cache: the unit of the last load if
// none of its files changed, else built again and kept.
func (l *loader) cachedBuild(n unitName, file, dropDir string) (any, Diagnostics, bool) {
	k := buildKey{n.Full, file, dropDir}
	if e := l.cache.old[k]; e != nil && e.file.same(l.cache.stamp(file)) &&
		l.sameDirs(dropDir, n, e.dirs) && l.sameFiles(e.dropIns) {
		l.cache.next[k] = e
		if e.masked {
			l.masked[n.Full] = true
		}
		return e.unit, slices.Clip(e.diags), e.ok
	}
	e := &cachedUnit{file: l.cache.stamp(file), dirs: l.stampDirs(dropDir, n)}
	var dropIns []string
	e.unit, e.diags, e.ok = l.buildFresh(n, file, dropDir, &dropIns)
	e.dropIns = l.stampFiles(dropIns)
	e.masked = l.masked[n.Full]
	l.cache.next[k] = e
	return e.unit, slices.Clip(e.diags), e.ok
}

// cachedInstantiate is instantiate through the cache: the instance of
// the last load if its template is the same (unchanged) one and its own
// drop-ins did not change.
func (l *loader) cachedInstantiate(t *Service, n unitName) (*Service, Diagnostics) {
	dir := filepath.Dir(t.File)
	if e := l.cache.oldI[n.Full]; e != nil && e.template == t && l.sameDirs(dir, n, e.dirs) && l.sameFiles(e.dropIns) {
		l.cache.nextI[n.Full] = e
		return e.inst, slices.Clip(e.diags)
	}
	e := &cachedInstance{template: t, dirs: l.stampDirs(dir, n)}
	var dropIns []string
	e.inst, e.diags = l.instantiateFresh(t, n, &dropIns)
	e.dropIns = l.stampFiles(dropIns)
	l.cache.nextI[n.Full] = e
	return e.inst, slices.Clip(e.diags)
}

// unchanged reports whether the unit file path of the unit directory,
// read by prelex, is the one the last load built its unit from: then
// prelex does not read it. It runs on prelex's goroutines: it only
// reads the last load's map.
func (l *loader) unchanged(path string) bool {
	if l.cache == nil {
		return false
	}
	e := l.cache.old[buildKey{filepath.Base(path), path, filepath.Dir(path)}]
	return e != nil && e.file.same(l.cache.stamp(path))
}
