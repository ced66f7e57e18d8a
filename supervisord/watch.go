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
// the watch is in place (so no later change is missed); done reports the
// watcher's end. A unit whose new file has an error keeps running as it
// was (see Reload).
func (d *Daemon) Watch(ctx context.Context) (done <-chan error, err error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", d.cfg.UnitsDir, err)
	}
	if err := w.Add(d.cfg.UnitsDir); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch %s: %w", d.cfg.UnitsDir, err)
	}
	d.watchDropIns(w)
	ch := make(chan error, 1)
	go func() {
		defer w.Close()
		ch <- d.watch(ctx, w)
	}()
	return ch, nil
}

func (d *Daemon) watch(ctx context.Context, w *fsnotify.Watcher) error {
	var settle *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Has(fsnotify.Create) && watchedSubdir(filepath.Base(ev.Name)) {
				d.watchDropIns(w)
			}
			if settle == nil {
				settle = time.NewTimer(watchSettle)
			} else {
				settle.Reset(watchSettle)
			}
			fire = settle.C
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			d.log.Error().Err(err).Str("dir", d.cfg.UnitsDir).Msg("watching the unit directory")
		case <-fire:
			fire = nil
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
