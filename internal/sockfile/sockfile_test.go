package sockfile

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sockd/sockd/internal/testutil"
)

// stale binds a socket of network at path and closes it, leaving the file.
func stale(t *testing.T, network, path string) {
	t.Helper()
	switch network {
	case "unix", "unixpacket":
		l, err := net.ListenUnix(network, &net.UnixAddr{Name: path, Net: network})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		l.Close()
	case "unixgram":
		c, err := net.ListenUnixgram(network, &net.UnixAddr{Name: path, Net: network})
		if err != nil {
			t.Fatal(err)
		}
		c.Close() // a datagram socket never unlinks its file
	}
}

// live binds a socket of network at path for the rest of the test.
func live(t *testing.T, network, path string) {
	t.Helper()
	var c interface{ Close() error }
	var err error
	switch network {
	case "unix", "unixpacket":
		c, err = net.ListenUnix(network, &net.UnixAddr{Name: path, Net: network})
	case "unixgram":
		c, err = net.ListenUnixgram(network, &net.UnixAddr{Name: path, Net: network})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
}

func TestRemoveStale(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, path string)
		want    error // nil, syscall.EADDRINUSE or fs.ErrExist
		message string
		kept    bool // path still exists afterwards
	}{
		{name: "missing", setup: func(*testing.T, string) {}},
		{name: "dead stream", setup: func(t *testing.T, p string) { stale(t, "unix", p) }},
		{name: "dead seqpacket", setup: func(t *testing.T, p string) { stale(t, "unixpacket", p) }},
		{name: "dead unixgram", setup: func(t *testing.T, p string) { stale(t, "unixgram", p) }},
		{
			name:  "live stream",
			setup: func(t *testing.T, p string) { live(t, "unix", p) },
			want:  syscall.EADDRINUSE, message: "is in use", kept: true,
		},
		{
			name:  "live seqpacket",
			setup: func(t *testing.T, p string) { live(t, "unixpacket", p) },
			want:  syscall.EADDRINUSE, message: "is in use", kept: true,
		},
		{
			name:  "live unixgram",
			setup: func(t *testing.T, p string) { live(t, "unixgram", p) },
			want:  syscall.EADDRINUSE, message: "is in use", kept: true,
		},
		{
			name: "regular file",
			setup: func(t *testing.T, p string) {
				if err := os.WriteFile(p, []byte("precious"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			want: fs.ErrExist, message: "is a regular file, not a socket", kept: true,
		},
		{
			name: "directory",
			setup: func(t *testing.T, p string) {
				if err := os.Mkdir(p, 0o700); err != nil {
					t.Fatal(err)
				}
			},
			want: fs.ErrExist, message: "is a directory, not a socket", kept: true,
		},
		{
			name: "symlink to a dead socket",
			setup: func(t *testing.T, p string) {
				target := p + ".target"
				stale(t, "unix", target)
				if err := os.Symlink(target, p); err != nil {
					t.Fatal(err)
				}
			},
			want: fs.ErrExist, message: "is a symlink, not a socket", kept: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(testutil.ShortDir(t), "s")
			tc.setup(t, path)
			before, _ := os.Lstat(path)
			err := RemoveStale(path)
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("RemoveStale: %v", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("RemoveStale: %v, want an error wrapping %v", err, tc.want)
			case tc.want != nil && (!strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.message)):
				t.Errorf("RemoveStale: %q, want the path and %q", err, tc.message)
			}
			after, err := os.Lstat(path)
			switch {
			case tc.kept && (err != nil || !os.SameFile(before, after)):
				t.Errorf("%s was removed or replaced: %v", path, err)
			case !tc.kept && !errors.Is(err, fs.ErrNotExist):
				t.Errorf("%s is still there: %v", path, err)
			}
		})
	}
}

// A live listener still answers after RemoveStale refused to touch it.
func TestRemoveStaleLiveUndisturbed(t *testing.T) {
	path := filepath.Join(testutil.ShortDir(t), "s")
	live(t, "unix", path)
	if err := RemoveStale(path); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("RemoveStale: %v", err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the live socket no longer answers: %v", err)
	}
	c.Close()
}

// A listener whose queue is full refuses a dial with EAGAIN: in use too.
func TestRemoveStaleFullQueue(t *testing.T) {
	path := filepath.Join(testutil.ShortDir(t), "s")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	// Fill the queue: no one accepts.
	for i := 0; ; i++ {
		c, err := net.Dial("unix", path)
		if errors.Is(err, syscall.EAGAIN) {
			break
		}
		if err != nil || i == 16 {
			t.Fatalf("filling the queue: %d connections, %v", i, err)
		}
		defer c.Close()
	}
	if err := RemoveStale(path); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("RemoveStale: %v, want EADDRINUSE", err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("socket removed: %v", err)
	}
}

func TestRemoveStaleAbstract(t *testing.T) {
	name := "@sockd-sockfile-test-" + filepath.Base(testutil.ShortDir(t))
	live(t, "unix", name)
	if err := RemoveStale(name); err != nil {
		t.Errorf("RemoveStale(%q): %v", name, err)
	}
	if err := Remove(name); err != nil {
		t.Errorf("Remove(%q): %v", name, err)
	}
}

func TestRemove(t *testing.T) {
	dir := testutil.ShortDir(t)

	// A socket, live or not, is removed.
	sock := filepath.Join(dir, "live")
	live(t, "unixgram", sock)
	if err := Remove(sock); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket still there: %v", err)
	}
	// Gone already: nothing to do.
	if err := Remove(sock); err != nil {
		t.Errorf("Remove of a missing file: %v", err)
	}

	// Anything else is kept.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	target := filepath.Join(dir, "target")
	stale(t, "unix", target)
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, link} {
		if err := Remove(p); !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), p) {
			t.Errorf("Remove(%s): %v, want an error naming it and wrapping fs.ErrExist", p, err)
		}
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
	if _, err := os.Lstat(target); err != nil {
		t.Errorf("symlink target removed: %v", err)
	}
}
