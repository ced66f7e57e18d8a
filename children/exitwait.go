package children

// Waiting for a process's exit without holding an OS thread. A blocking
// waitid(2) or poll(2) takes a thread for as long as the process runs:
// 250 running tenants were 250 threads, and Go keeps a thread it made
// for good, so sockd's RSS stayed high after the tenants stopped. A
// pidfd (pidfd_open(2)) becomes readable when its process exits; Go's
// netpoller waits for that instead, as for a socket.

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// awaitExit returns once the process behind pidfd has exited (it may be
// a zombie: nothing is reaped). It takes pidfd and closes it.
func awaitExit(pidfd int) error {
	if err := unix.SetNonblock(pidfd, true); err != nil {
		unix.Close(pidfd)
		return os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(pidfd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var perr error
	if err := rc.Read(func(fd uintptr) bool {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
		switch {
		case err == unix.EINTR:
			return false // asked again at the next event; poll with 0 is not interrupted in practice
		case err != nil:
			perr = os.NewSyscallError("poll", err)
			return true
		}
		return n > 0 // false: the netpoller waits until it is readable
	}); err != nil {
		return fmt.Errorf("wait for pidfd: %w", err)
	}
	return perr
}

// awaitExitPid returns once process pid, a child of sockd's that nobody
// else reaps, has exited, leaving it a zombie. Without a pidfd (Linux
// before 5.3, or no fd left) a blocking waitid(WNOWAIT) does, holding a
// thread.
func awaitExitPid(pid int) error {
	if fd, err := unix.PidfdOpen(pid, 0); err == nil { // close-on-exec
		if err := awaitExit(fd); err == nil {
			return nil
		}
	}
	var info unix.Siginfo
	return ignoringEINTR(func() error {
		return unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
	})
}
