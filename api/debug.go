package api

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
)

// RuntimeInfo is the body of GET /v1/debug/runtime: counts of the daemon
// process itself, to watch for leaks (make bench compares them before and
// after many restarts).
type RuntimeInfo struct {
	Goroutines int `json:"goroutines"` // runtime.NumGoroutine
	Threads    int `json:"threads"`    // OS threads: Threads: in /proc/self/status
	FDs        int `json:"fds"`        // open file descriptors: entries of /proc/self/fd
}

// runtimeInfo serves GET /v1/debug/runtime.
func (s *Server) runtimeInfo(w http.ResponseWriter, r *http.Request) error {
	info, err := readRuntimeInfo()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

// readRuntimeInfo counts the calling process's goroutines, threads and
// open fds. The fd count includes the one used to list /proc/self/fd.
func readRuntimeInfo() (RuntimeInfo, error) {
	info := RuntimeInfo{Goroutines: runtime.NumGoroutine()}
	const status = "/proc/self/status"
	b, err := os.ReadFile(status)
	if err != nil {
		return info, fmt.Errorf("read %s: %w", status, err)
	}
	found := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		v, ok := bytes.CutPrefix(sc.Bytes(), []byte("Threads:"))
		if !ok {
			continue
		}
		n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
		if err != nil {
			return info, fmt.Errorf("read %s: Threads: %w", status, err)
		}
		info.Threads, found = n, true
		break
	}
	if !found {
		return info, fmt.Errorf("read %s: no Threads: line", status)
	}
	const fdDir = "/proc/self/fd"
	f, err := os.Open(fdDir)
	if err != nil {
		return info, fmt.Errorf("open %s: %w", fdDir, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return info, fmt.Errorf("read %s: %w", fdDir, err)
	}
	info.FDs = len(names) - 1 // not the directory's own fd
	return info, nil
}

// Runtime returns the daemon's goroutine, thread and fd counts.
func (c *Client) Runtime(ctx context.Context) (RuntimeInfo, error) {
	var info RuntimeInfo
	err := c.do(ctx, http.MethodGet, "/v1/debug/runtime", nil, &info, http.StatusOK)
	return info, err
}
