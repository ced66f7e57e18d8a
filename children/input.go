package children

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Input says what the child reads on fd 0. With both fields unset it
// reads /dev/null.
type Input struct {
	// File, if set, becomes fd 0: a socket (an Accept=yes connection, a
	// listening socket), a file. The child gets a duplicate of its
	// descriptor; the flags of its open file description are left as
	// they are.
	File *os.File
	// Data, if set and File is nil, is what the child reads from fd 0,
	// then end of file. Start copies it into a sealed, read-only memfd,
	// as systemd does for StandardInputData=: nothing has to feed it
	// while the child runs, and a child that never reads costs no
	// goroutine and blocks nobody. At most MaxInputData bytes.
	Data []byte
}

// MaxInputData is the largest Input.Data Start accepts: systemd's limit
// for StandardInputText=/StandardInputData= (EXEC_STDIN_DATA_MAX).
const MaxInputData = 64 << 20

// input returns the descriptor the child reads as fd 0.
func (s *fdSet) input(in Input, devnull int) (int, error) {
	switch {
	case in.File != nil:
		fd, err := s.dup(in.File)
		if err != nil {
			return -1, fmt.Errorf("stdin %s: %w", in.File.Name(), err)
		}
		return fd, nil
	case len(in.Data) > 0:
		fd, err := dataFD(in.Data)
		if err != nil {
			return -1, fmt.Errorf("stdin: %w", err)
		}
		s.close = append(s.close, fd)
		return fd, nil
	default:
		return devnull, nil
	}
}

// dataFD returns a close-on-exec, read-only descriptor that reads data
// from its start: a memfd sealed against every change, reopened
// read-only so that the child cannot even try to write it.
func dataFD(data []byte) (int, error) {
	if len(data) > MaxInputData {
		return -1, fmt.Errorf("%d bytes of data, more than %d", len(data), MaxInputData)
	}
	// MFD_NOEXEC_SEAL (Linux 6.3) keeps newer kernels from logging a
	// warning about executable memfds; older ones refuse the flag.
	flags := unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	mfd, err := unix.MemfdCreate("sockd-stdin", flags|unix.MFD_NOEXEC_SEAL)
	if errors.Is(err, unix.EINVAL) {
		mfd, err = unix.MemfdCreate("sockd-stdin", flags)
	}
	if err != nil {
		return -1, os.NewSyscallError("memfd_create", err)
	}
	defer unix.Close(mfd)
	for b := data; len(b) > 0; {
		n, err := unix.Write(mfd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return -1, os.NewSyscallError("write memfd", err)
		}
		b = b[n:]
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(mfd), unix.F_ADD_SEALS, seals); err != nil {
		return -1, os.NewSyscallError("fcntl F_ADD_SEALS", err)
	}
	// A new open file description: read-only, at offset 0.
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(mfd), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("reopen memfd: %w", err)
	}
	return fd, nil
}
