package fdstore

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// listenFDsStart is the first fd passed (SD_LISTEN_FDS_START).
const listenFDsStart = 3

// Inherited returns the fds the service manager passed to this process,
// by name, as sd_listen_fds_with_names(3) reads them: fds 3 to
// 3+$LISTEN_FDS-1, named in order by the colon-separated
// $LISTEN_FDNAMES ("unknown" when it is unset), when $LISTEN_PID is this
// process's pid. systemd may pass several fds under one name; each slice
// holds them in the order they were passed (the fd store passes the most
// recently stored first, after the fds of the service's socket units).
//
// Inherited marks the fds close-on-exec and leaves every other flag as it
// is (a socket stays non-blocking). It always unsets LISTEN_PID,
// LISTEN_FDS and LISTEN_FDNAMES, as sd_listen_fds(3) does, so that no
// process sockd starts sees them: call it once, early in main (a second
// call finds nothing).
//
// systemd keeps its own copies of what it passed: a name sockd no longer
// uses stays in the store, and comes back at every restart, until sockd
// calls Remove.
//
// It returns (nil, nil) when nothing was passed to this process:
// LISTEN_PID unset or another process's pid (the fds are then left
// alone). Malformed variables, or an fd they name that is not open, are
// an error; no fd is taken then.
func Inherited() (map[string][]*os.File, error) {
	pid, nfds, names := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES")
	_, haveNames := os.LookupEnv("LISTEN_FDNAMES")
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")

	fdNames, err := parseListen(os.Getpid(), pid, nfds, names, haveNames)
	if err != nil || len(fdNames) == 0 {
		return nil, err
	}
	// Every fd first, so that an error takes none.
	for i := range fdNames {
		if _, err := unix.FcntlInt(uintptr(listenFDsStart+i), unix.F_GETFD, 0); err != nil {
			return nil, fmt.Errorf("fdstore: LISTEN_FDS=%s: fd %d: %w", nfds, listenFDsStart+i, err)
		}
	}
	files := make(map[string][]*os.File)
	for i, name := range fdNames {
		fd := listenFDsStart + i
		unix.CloseOnExec(fd)
		files[name] = append(files[name], os.NewFile(uintptr(fd), name))
	}
	return files, nil
}

// parseListen returns the name of each fd passed to process self, given
// the values of LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES; nil when none
// was passed to it.
func parseListen(self int, pid, nfds, names string, haveNames bool) ([]string, error) {
	if pid == "" {
		return nil, nil
	}
	p, err := strconv.Atoi(pid)
	if err != nil || p <= 0 {
		return nil, fmt.Errorf("fdstore: LISTEN_PID=%q: not a pid", pid)
	}
	if p != self {
		return nil, nil
	}
	n, err := strconv.Atoi(nfds)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("fdstore: LISTEN_FDS=%q: not a count", nfds)
	}
	// fs.nr_open's default: no process has more fds, and a wild count
	// costs no allocation.
	if n > 1<<20 {
		return nil, fmt.Errorf("fdstore: LISTEN_FDS=%d: too many", n)
	}
	if n == 0 {
		return nil, nil
	}
	fdNames := make([]string, n)
	if !haveNames {
		for i := range fdNames {
			fdNames[i] = "unknown"
		}
		return fdNames, nil
	}
	split := strings.Split(names, ":")
	if len(split) != n {
		return nil, fmt.Errorf("fdstore: LISTEN_FDNAMES has %d names for LISTEN_FDS=%d", len(split), n)
	}
	for i, name := range split {
		if err := CheckName(name); err != nil && !errors.Is(err, ErrNameEmpty) {
			return nil, fmt.Errorf("fdstore: LISTEN_FDNAMES: name %d %q: %w", i, name, err)
		}
	}
	return split, nil
}
