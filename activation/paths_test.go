package activation

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/nofollow"
	"github.com/sockd/sockd/internal/testutil"
	"github.com/sockd/sockd/units"
)

// TestOpenSymlinkSwapRace is issue 10's attack: whoever can write the
// socket's directory swaps the socket file for a symlink to a root-only
// file between the bind and the setting of SocketMode= and SocketUser=.
// sockd binds and rebinds while a goroutine races to swap; the target's
// mode and owner must never change. An Open that notices the swap and
// fails is fine.
func TestOpenSymlinkSwapRace(t *testing.T) {
	dir := testutil.ShortDir(t)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("root only"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(secret, 0o600); err != nil {
		t.Fatal(err)
	}
	var before unix.Stat_t
	if err := unix.Stat(secret, &before); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "app.sock")
	s := &units.Socket{
		Name:       "race.socket",
		Listens:    []units.Listen{{Kind: units.Stream, Network: "unix", Address: path}},
		SocketMode: 0o666,
	}
	if os.Geteuid() == 0 {
		s.SocketUser = "1234"
		s.SocketGroup = "1234"
	}

	stop := make(chan struct{})
	attackerDone := make(chan int)
	go func() {
		swaps := 0
		defer func() { attackerDone <- swaps }()
		tmp := filepath.Join(dir, "tmp.link")
		for {
			select {
			case <-stop:
				return
			default:
			}
			var st unix.Stat_t
			if unix.Lstat(path, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
				continue
			}
			// A socket is there: swap it for a symlink to the secret,
			// give sockd a moment to follow it, and make way again.
			os.Remove(tmp)
			if os.Symlink(secret, tmp) != nil || os.Rename(tmp, path) != nil {
				continue
			}
			swaps++
			for i := 0; i < 50; i++ {
				syscall.Getpid() // a short busy wait, no sleep granularity
			}
			os.Remove(path)
		}
	}()

	deadline := time.Now().Add(5 * time.Second)
	// caught counts swaps that came between the bind and the chown;
	// refused, symlinks already there before the bind.
	opened, caught, refused := 0, 0, 0
	for i := 0; i < 300 && time.Now().Before(deadline); i++ {
		ls, err := Open(s)
		switch {
		case err == nil:
			opened++
			CloseAll(ls)
		case errors.Is(err, errReplaced):
			caught++
		case errors.Is(err, fs.ErrExist), errors.Is(err, syscall.EADDRINUSE):
			refused++
		default:
			t.Errorf("open %d: %v", i, err)
		}
	}
	close(stop)
	swaps := <-attackerDone

	var after unix.Stat_t
	if err := unix.Stat(secret, &after); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d swaps: %d opens succeeded, %d caught a swap after the bind, %d met a symlink before it", swaps, opened, caught, refused)
	if after.Mode != before.Mode || after.Uid != before.Uid || after.Gid != before.Gid {
		t.Errorf("the symlink's target changed: mode %#o uid %d gid %d, was %#o %d %d",
			after.Mode&0o7777, after.Uid, after.Gid, before.Mode&0o7777, before.Uid, before.Gid)
	}
}

// TestOpenModesWithoutChmod shows the modes come from the bind's umask and
// fchmod, not from sockd's umask nor a chmod by path: with a process
// umask of 077, the socket still gets SocketMode=, the directories sockd
// makes DirectoryMode=, a directory that was there keeps its mode, and
// the process umask is unchanged afterwards.
func TestOpenModesWithoutChmod(t *testing.T) {
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	dir := testutil.ShortDir(t)
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "a", "b", "app.sock")
	s := &units.Socket{
		Name:          "modes.socket",
		Listens:       []units.Listen{{Kind: units.Stream, Network: "unix", Address: path}},
		DirectoryMode: 0o751,
	}
	CloseAll(mustOpen(t, s))
	mustOpen(t, s) // again, with the directories there
	if got := unix.Umask(0o077); got != 0o077 {
		t.Errorf("umask after Open = %#o, want 077", got)
	}
	for p, want := range map[string]os.FileMode{
		dir:                       0o700,
		filepath.Join(dir, "a"):   0o751,
		filepath.Join(dir, "a/b"): 0o751,
		path:                      os.ModeSocket | 0o666,
	} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() &^ os.ModeDir; got != want {
			t.Errorf("%s: mode %v, want %v", p, got, want)
		}
	}
}

// TestOpenParentSymlinkRefused shows the directories sockd makes are
// never reached through a symlink: a dangling symlink planted where
// sockd would make one (here to a directory that does not exist yet
// elsewhere) is refused, and nothing is made at its target.
func TestOpenParentSymlinkRefused(t *testing.T) {
	dir := testutil.ShortDir(t)
	target := filepath.Join(t.TempDir(), "new")
	if err := os.Symlink(target, filepath.Join(dir, "run")); err != nil {
		t.Fatal(err)
	}
	s := &units.Socket{
		Name:          "parent.socket",
		Listens:       []units.Listen{{Kind: units.Stream, Network: "unix", Address: filepath.Join(dir, "run", "app", "app.sock")}},
		DirectoryMode: 0o777,
	}
	if ls, err := Open(s); !errors.Is(err, nofollow.ErrSymlink) {
		CloseAll(ls)
		t.Errorf("Open = %v, want an error wrapping ErrSymlink", err)
	}
	if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("symlink target: %v, want not created", err)
	}
}

// TestOpenFIFORefusesLinks shows a FIFO path that is a symlink, or a hard
// link to a FIFO elsewhere, is refused and its target left alone.
func TestOpenFIFORefusesLinks(t *testing.T) {
	dir := testutil.ShortDir(t)
	other := testutil.ShortDir(t)
	secret := filepath.Join(other, "secret")
	if err := unix.Mkfifo(secret, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "app.fifo")
	s := &units.Socket{
		Name:       "fifo.socket",
		Listens:    []units.Listen{{Kind: units.FIFO, Network: "fifo", Address: path}},
		SocketMode: 0o666,
	}
	for _, link := range []func(string, string) error{os.Symlink, os.Link} {
		os.Remove(path)
		if err := link(secret, path); err != nil {
			t.Fatal(err)
		}
		if ls, err := Open(s); err == nil {
			CloseAll(ls)
			t.Errorf("Open through a link to %s succeeded", secret)
		}
		var st unix.Stat_t
		if err := unix.Stat(secret, &st); err != nil || st.Mode&0o7777 != 0o600 {
			t.Errorf("link target: mode %#o, %v; want 0600", st.Mode&0o7777, err)
		}
	}
}
