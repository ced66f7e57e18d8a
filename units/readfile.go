package units

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxUnitFileSize bounds the size of a unit file or drop-in sockd reads.
const maxUnitFileSize = 4 << 20

// readUnitFile reads a unit file or drop-in. It follows symbolic links,
// as unit directories use them for aliases, but reads only regular
// files: a FIFO, a device or a socket is refused without being opened,
// so a link to /dev/zero or to a FIFO can neither hang nor exhaust
// memory, and the file opened is checked again (O_NONBLOCK, fstat) in
// case it was replaced in between. Files over maxUnitFileSize are
// refused. check, if not nil, is given the fstat of the file opened
// before it is read; its error is returned as is. Checking the opened
// file, not the path, leaves no time to swap the file in between.
//
// As in systemd, a link to /dev/null and an empty file are masked: then
// masked says which, and data is nil. The error, if any, has no path in
// it: callers put the path in the Diagnostic.
func readUnitFile(path string, check func(fs.FileInfo) error) (data []byte, masked string, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, "", bareError(err)
	}
	if isDevNull(st) {
		if lst, err := os.Lstat(path); err == nil && lst.Mode()&fs.ModeSymlink != 0 {
			return nil, "a link to /dev/null", nil
		}
		return nil, "/dev/null", nil
	}
	if err := checkRegular(st); err != nil {
		return nil, "", err
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, "", err
	}
	// The fd stays a plain fd: an os.File of it would cost a fcntl and
	// an epoll_ctl per file (10,000 units: 40,000 syscalls).
	defer unix.Close(fd)
	fi := &statInfo{name: filepath.Base(path)}
	if err := syscall.Fstat(fd, &fi.st); err != nil {
		return nil, "", err
	}
	st = fi
	if err := checkRegular(st); err != nil {
		return nil, "", err
	}
	if check != nil {
		if err := check(st); err != nil {
			return nil, "", err
		}
	}
	if st.Size() > maxUnitFileSize {
		return nil, "", fmt.Errorf("file too large: %d bytes, a unit file may have at most %d (4 MiB)", st.Size(), maxUnitFileSize)
	}
	data, err = readFD(fd, int(st.Size())+1, maxUnitFileSize+1)
	if err != nil {
		return nil, "", err
	}
	if len(data) > maxUnitFileSize {
		return nil, "", fmt.Errorf("file too large: more than %d bytes (4 MiB)", maxUnitFileSize)
	}
	if len(data) == 0 {
		return nil, "an empty file", nil
	}
	return data, "", nil
}

// readFD reads fd to its end or to limit bytes, starting with a buffer
// of size bytes.
func readFD(fd, size, limit int) ([]byte, error) {
	buf := make([]byte, 0, min(max(size, 512), limit))
	for len(buf) < limit {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(cap(buf), limit-len(buf)))
		}
		n, err := unix.Read(fd, buf[len(buf):min(cap(buf), limit)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
		buf = buf[:len(buf)+n]
	}
	return buf, nil
}

// statInfo is the fs.FileInfo of an fstat(2), as os.File.Stat makes it.
type statInfo struct {
	name string
	st   syscall.Stat_t
}

func (s *statInfo) Name() string       { return s.name }
func (s *statInfo) Size() int64        { return s.st.Size }
func (s *statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Unix()) }
func (s *statInfo) IsDir() bool        { return s.Mode().IsDir() }
func (s *statInfo) Sys() any           { return &s.st }

// Mode converts the st_mode bits as package os does.
func (s *statInfo) Mode() fs.FileMode {
	m := fs.FileMode(s.st.Mode & 0o777)
	switch s.st.Mode & syscall.S_IFMT {
	case syscall.S_IFBLK:
		m |= fs.ModeDevice
	case syscall.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		m |= fs.ModeDir
	case syscall.S_IFIFO:
		m |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		m |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if s.st.Mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if s.st.Mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if s.st.Mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// isDevNull reports whether st is the character device /dev/null (1:3).
func isDevNull(st fs.FileInfo) bool {
	if st.Mode()&fs.ModeCharDevice == 0 {
		return false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	return unix.Major(uint64(sys.Rdev)) == 1 && unix.Minor(uint64(sys.Rdev)) == 3
}

// checkRegular returns an error naming the kind of file st is when it is
// not a regular file.
func checkRegular(st fs.FileInfo) error {
	m := st.Mode()
	var kind string
	switch {
	case m.IsRegular():
		return nil
	case m.IsDir():
		kind = "a directory"
	case m&fs.ModeNamedPipe != 0:
		kind = "a FIFO"
	case m&fs.ModeCharDevice != 0:
		kind = "a character device"
	case m&fs.ModeDevice != 0:
		kind = "a block device"
	case m&fs.ModeSocket != 0:
		kind = "a socket"
	default:
		kind = "of type " + m.Type().String()
	}
	return fmt.Errorf("not a regular file: %s", kind)
}

// bareError strips the operation and path of an *fs.PathError.
func bareError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
