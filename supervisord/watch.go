package supervisord

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/sockd/sockd/units"
)

// watchSettle is how long the unit directory must be quiet before a
// change is loaded: editors and deploy tools write a file in several
// steps (temporary file, rename, drop-in directory).
const watchSettle = 250 * time.Millisecond

// Watch reloads the unit directory whenever a file in it, in one of
// its NAME.socket.d/NAME.service.d drop-in directories or in its
// sockets.target.wants directory (units.WantsDir) changes, once the
// directory has been quiet for a moment, until ctx ends. It returns once
// the watch is in place (so no later change is missed), or an error if
// the directory cannot be watched; done reports the watcher's end, after
// the watch is closed. A unit whose new file has an error keeps running
// as it was (see Reload).
//
// The directory may go away: Watch also watches its parent (and, if the
// unit directory is a symbolic link, the parent of the directory it
// points to). While the directory is missing nothing is reloaded, so
// every unit keeps running as it is; once a directory of that name is
// back, Watch watches it and reloads it.
func (d *Daemon) Watch(ctx context.Context) (done <-chan error, err error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", d.cfg.UnitsDir, err)
	}
	uw := &dirWatch{d: d, w: w, dir: filepath.Clean(d.cfg.UnitsDir),
		names: map[string]bool{}, parents: map[string]bool{}}
	if err := uw.arm(); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch %s: %w", d.cfg.UnitsDir, err)
	}
	ch := make(chan error, 1)
	go func() {
		err := uw.run(ctx)
		w.Close()
		ch <- err
	}()
	return ch, nil
}

// dirWatch is the watch of the unit directory, owned by the goroutine
// that runs it.
type dirWatch struct {
	d   *Daemon
	w   *fsnotify.Watcher
	dir string // the unit directory, cleaned (fsnotify names events after it)
	// names are the paths whose entry in a parent directory is the unit
	// directory: dir, and what it resolves to if it is a symbolic link.
	names map[string]bool
	// parents are the watched directories that hold the names.
	parents map[string]bool
	// cur is the directory watched now; nil while it is missing.
	cur os.FileInfo
}

func (uw *dirWatch) run(ctx context.Context) error {
	d := uw.d
	var settle *time.Timer
	var fire <-chan time.Time
	quiet := func() {
		if settle == nil {
			settle = time.NewTimer(watchSettle)
		} else {
			settle.Reset(watchSettle)
		}
		fire = settle.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-uw.w.Events:
			if !ok {
				return nil
			}
			name := filepath.Clean(ev.Name)
			switch dir := filepath.Dir(name); {
			case uw.names[name]:
				// The unit directory itself: created, removed, renamed
				// or replaced (a symbolic link swapped).
				if !uw.check(ev.Has(fsnotify.Create) || ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename)) {
					if settle != nil {
						settle.Stop()
					}
					fire = nil // nothing to reload while it is gone
					continue
				}
			case uw.parents[name] && (ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename)):
				delete(uw.parents, name)
				d.log.Warn().Str("dir", name).Str("units", uw.dir).
					Msg("the unit directory's parent is gone: a unit directory created again there will not be noticed until sockd restarts")
				continue
			case uw.parents[dir] && dir != uw.dir:
				continue // a neighbour of the unit directory
			case ev.Has(fsnotify.Create) && watchedSubdir(filepath.Base(name)):
				d.watchDropIns(uw.w)
			}
			quiet()
		case err, ok := <-uw.w.Errors:
			if !ok {
				return nil
			}
			d.log.Error().Err(err).Str("dir", d.cfg.UnitsDir).Msg("watching the unit directory")
		case <-fire:
			fire = nil
			// A missing directory is not an empty one: reloading now
			// would fail (or, were it empty, stop every unit).
			if !uw.check(false) {
				continue
			}
			d.log.Info().Str("dir", d.cfg.UnitsDir).Msg("unit files changed: reloading")
			res, err := d.Reload(ctx)
			if err != nil {
				d.log.Error().Err(err).Msg("reload")
				continue
			}
			d.log.Info().Strs("added", res.Added).Strs("removed", res.Removed).Strs("changed", res.Changed).
				Int("problems", len(res.Diagnostics)).Msg("reloaded")
			if d.cfg.Reloaded != nil {
				d.cfg.Reloaded(res)
			}
		}
	}
}

// arm watches the unit directory, its drop-in directories and the
// parents of its names. A directory that was watched before is watched
// afresh: it may be a new one under the same name.
func (uw *dirWatch) arm() error {
	clear(uw.names) // a swapped symbolic link points elsewhere now
	uw.names[uw.dir] = true
	if r, err := filepath.EvalSymlinks(uw.dir); err == nil {
		uw.names[r] = true
	}
	for n := range uw.names {
		p := filepath.Dir(n)
		if uw.parents[p] || p == n {
			continue
		}
		if err := uw.w.Add(p); err != nil {
			uw.d.log.Warn().Err(err).Str("dir", p).Msg("watch the unit directory's parent: its removal and return will go unnoticed")
			continue
		}
		uw.parents[p] = true
	}
	st, err := os.Stat(uw.dir)
	if err != nil {
		return err
	}
	uw.w.Remove(uw.dir) // gone already if the directory was (fsnotify dropped it)
	if err := uw.w.Add(uw.dir); err != nil {
		return err
	}
	uw.cur = st
	uw.d.watchDropIns(uw.w)
	return nil
}

// check looks at the unit directory and reports whether it is there and
// watched. With renew, or when it is another directory than the one
// watched, it is watched afresh. It logs the directory going away and
// coming back, once each.
func (uw *dirWatch) check(renew bool) bool {
	log := uw.d.log
	st, err := os.Stat(uw.dir)
	if err == nil && !st.IsDir() {
		err = fmt.Errorf("not a directory")
	}
	if err == nil && !renew && uw.cur != nil && os.SameFile(st, uw.cur) {
		return true
	}
	was := uw.cur != nil
	if err == nil {
		err = uw.arm()
	}
	if err != nil {
		if was {
			uw.cur = nil
			uw.w.Remove(uw.dir)
			log.Warn().Err(err).Str("dir", uw.dir).
				Msg("the unit directory is gone: every unit keeps running as it is until it is back")
		}
		return false
	}
	if !was {
		log.Info().Str("dir", uw.dir).Msg("the unit directory is back: reloading it once it is quiet")
	}
	return true
}

// watchedSubdir reports whether a directory of that name in the unit
// directory holds what LoadDir reads: drop-ins, or the instances of
// socket templates.
func watchedSubdir(name string) bool {
	return strings.HasSuffix(name, ".d") || name == units.WantsDir
}

// watchDropIns adds every drop-in directory of the unit directory, and
// its sockets.target.wants, to w (adding one twice is harmless).
func (d *Daemon) watchDropIns(w *fsnotify.Watcher) {
	ents, err := os.ReadDir(d.cfg.UnitsDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.IsDir() && watchedSubdir(e.Name()) {
			if err := w.Add(filepath.Join(d.cfg.UnitsDir, e.Name())); err != nil {
				d.log.Warn().Err(err).Str("dir", e.Name()).Msg("watch drop-in directory")
			}
		}
	}
}
