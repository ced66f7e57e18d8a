package cgroup

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// WaitEmpty waits until no process is left in g or below it, or ctx
// ends (its error then). The kernel reports the change of
// cgroup.events with a modify event, which inotify delivers: no polling.
func (g *Group) WaitEmpty(ctx context.Context) error {
	ifd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("cgroup %s: inotify: %w", g.dir, err)
	}
	in := os.NewFile(uintptr(ifd), "inotify") // in Go's poller: deadlines work
	defer in.Close()
	// The group's own descriptor names the file: no path is walked.
	events := "/proc/self/fd/" + strconv.Itoa(g.fd) + "/cgroup.events"
	if _, err := unix.InotifyAddWatch(ifd, events, unix.IN_MODIFY|unix.IN_DONT_FOLLOW); err != nil {
		return fmt.Errorf("cgroup %s: watch cgroup.events: %w", g.dir, err)
	}
	stop := context.AfterFunc(ctx, func() { in.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 4096)
	for {
		// Read after the watch is set: a change in between is not lost.
		pop, err := g.Populated()
		if err != nil {
			return err
		}
		if !pop {
			return nil
		}
		if _, err := in.Read(buf); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("cgroup %s: wait for empty: %w", g.dir, ctx.Err())
			}
			return fmt.Errorf("cgroup %s: wait for empty: %w", g.dir, err)
		}
	}
}
