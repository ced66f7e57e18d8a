package activation

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// inode returns the inode of the socket behind f.
func inode(t *testing.T, f *os.File) uint64 {
	t.Helper()
	var st unix.Stat_t
	withFD(t, f, func(fd int) {
		if err := unix.Fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
	})
	return st.Ino
}

// epollWatches reports whether any epoll set of this process watches the
// open file description of the socket with inode ino.
func epollWatches(t *testing.T, ino uint64) bool {
	_, ok := epollMask(t, ino)
	return ok
}

// epollMask returns the event mask with which an epoll set of this
// process watches the open file description of the socket with inode
// ino. fdinfo of an epoll fd lists "tfd: N events: HEX data: … ino:HEX"
// per watched file.
func epollMask(t *testing.T, ino uint64) (uint32, bool) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || link != "anon_inode:[eventpoll]" {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc/self/fdinfo", e.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(line, "tfd:") {
				continue
			}
			fs := strings.Fields(line)
			var mask uint64
			match := false
			for i, f := range fs {
				if f == "events:" && i+1 < len(fs) {
					mask, _ = strconv.ParseUint(fs[i+1], 16, 32)
				}
				if h, ok := strings.CutPrefix(f, "ino:"); ok {
					if n, err := strconv.ParseUint(h, 16, 64); err == nil && n == ino {
						match = true
					}
				}
			}
			if match {
				return uint32(mask), true
			}
		}
	}
	return 0, false
}

// sockd is not on the data path: the listening socket is in the Go
// runtime's epoll set only while Wait runs, so the connections a child
// accepts never wake sockd.
func TestNoEpollWhileNotWaiting(t *testing.T) {
	l := mustOpen(t, tcpSocket("127.0.0.1:0"))[0]
	ino := inode(t, l.File())
	if epollWatches(t, ino) {
		t.Fatal("the socket is in an epoll set after Open")
	}
	done := make(chan error, 1)
	go func() {
		_, err := waitFor(t, []*Listener{l}, 10*time.Second)
		done <- err
	}()
	// While Wait runs, it is watched (that is how Wait learns of a
	// connection); poll /proc until it shows, bounded.
	deadline := time.Now().Add(5 * time.Second)
	for !epollWatches(t, ino) {
		if time.Now().After(deadline) {
			t.Fatal("the socket never showed in an epoll set while Wait ran")
		}
		time.Sleep(time.Millisecond)
	}
	dial(t, "tcp", l.Addr())
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if epollWatches(t, ino) {
		t.Fatal("the socket is still in an epoll set after Wait returned")
	}
	acceptQueued(t, l)
	if nonBlocking(t, l.File()) {
		t.Fatal("Wait left the socket non-blocking")
	}
}
