package integration

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/testutil"
)

// journalSocket is where go-systemd's journal package sends, as
// journald listens there.
const journalSocket = "/run/systemd/journal/socket"

// bindJournal plays journald: it binds its socket (no journald runs on
// the test machines; a test never takes over one that answers) and
// returns the entries sent to it, parsed. Everything it made is removed
// at the end.
func bindJournal(t *testing.T) <-chan map[string]string {
	t.Helper()
	if c, err := net.Dial("unixgram", journalSocket); err == nil {
		c.Close()
		t.Fatalf("something listens at %s (a journald?): this test does not take it over", journalSocket)
	}
	var made []string
	for _, d := range []string{"/run/systemd", "/run/systemd/journal"} {
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
			made = append(made, d)
		}
	}
	if fi, err := os.Lstat(journalSocket); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			t.Fatalf("%s is not a socket: left alone", journalSocket)
		}
		os.Remove(journalSocket) // a socket nobody answers on
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: journalSocket, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadBuffer(8 << 20)
	entries := make(chan map[string]string, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf, oob := make([]byte, 1<<20), make([]byte, 256)
		for {
			n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
			if err != nil {
				return
			}
			data := buf[:n]
			if oobn > 0 {
				// A large entry comes as a file (memfd or /dev/shm)
				// passed with SCM_RIGHTS.
				if data, err = passedEntry(oob[:oobn]); err != nil {
					t.Errorf("journal: %v", err)
					continue
				}
			}
			e, err := parseJournal(data)
			if err != nil {
				t.Errorf("journal: %v: %q", err, data)
				continue
			}
			select {
			case entries <- e:
			default:
				t.Errorf("journal: entries not read, %q dropped", e["MESSAGE"])
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
		os.Remove(journalSocket)
		for i := len(made) - 1; i >= 0; i-- {
			os.Remove(made[i])
		}
	})
	return entries
}

// passedEntry reads the entry in the file passed in oob.
func passedEntry(oob []byte) ([]byte, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("control message: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("passed fds %v: %v", fds, err)
	}
	f := os.NewFile(uintptr(fds[0]), "journal entry")
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.NewSectionReader(f, 0, fi.Size()))
}

// parseJournal parses journald's native protocol: KEY=VALUE lines, and
// KEY, a newline, a little-endian 64-bit size, VALUE and a newline for
// values that hold a newline (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/).
func parseJournal(b []byte) (map[string]string, error) {
	e := map[string]string{}
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			return nil, errors.New("field without a newline")
		}
		line := b[:nl]
		if k, v, ok := bytes.Cut(line, []byte("=")); ok {
			e[string(k)] = string(v)
			b = b[nl+1:]
			continue
		}
		b = b[nl+1:]
		if len(b) < 8 {
			return nil, fmt.Errorf("binary field %s: no size", line)
		}
		size := binary.LittleEndian.Uint64(b)
		b = b[8:]
		if uint64(len(b)) < size+1 || b[size] != '\n' {
			return nil, fmt.Errorf("binary field %s: size %d past the end", line, size)
		}
		e[string(line)] = string(b[:size])
		b = b[size+1:]
	}
	return e, nil
}

// journalLog is every entry read so far.
type journalLog struct {
	t       *testing.T
	entries <-chan map[string]string
	seen    []map[string]string
}

// await returns the first entry, of all sent since the start, for which
// match is true, waiting for it at most 20s.
func (j *journalLog) await(what string, match func(map[string]string) bool) map[string]string {
	j.t.Helper()
	deadline := time.After(20 * time.Second)
	for i := 0; ; i++ {
		for ; i < len(j.seen); i++ {
			if match(j.seen[i]) {
				return j.seen[i]
			}
		}
		select {
		case e := <-j.entries:
			j.seen = append(j.seen, e)
		case <-deadline:
			j.t.Fatalf("no journal entry %s within 20s; entries: %v", what, j.seen)
		}
		i--
	}
}

// message matches the entries with MESSAGE msg.
func message(msg string) func(map[string]string) bool {
	return func(e map[string]string) bool { return e["MESSAGE"] == msg }
}

func TestJournal(t *testing.T) {
	entries := bindJournal(t)
	units := writeUnits(t, map[string]string{
		"app.service": "[Service]\nExecStart=/bin/sh -c 'echo out-line; echo err-line >&2; echo \"<3>marked\" >&2; " +
			"printf \"odd \\\\001\\\\033[31m bytes\\\\n\"; exec sleep 600'\n",
	})
	run := testutil.ShortDir(t)
	os.Chmod(run, 0o755)
	apiPath := filepath.Join(run, "api.sock")
	// sockd's stderr is a pipe whose device and inode JOURNAL_STREAM
	// names, as systemd does for StandardError=journal.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(w.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin.sockd, "--units", units, "--api", apiPath, "--runtime-dir", filepath.Join(run, "rt"), "--log-level", "debug")
	cmd.Env = append(os.Environ(), fmt.Sprintf("JOURNAL_STREAM=%d:%d", st.Dev, st.Ino))
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	// sockd's exit, not its stderr's end: the fd holder it starts
	// inherits stderr.
	var exitErr error
	exited := make(chan struct{})
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("sockd did not exit within 30s of SIGTERM")
		}
	})

	journal := &journalLog{t: t, entries: entries}
	ready := journal.await("sockd ready", message("sockd ready"))
	if ready["PRIORITY"] != "6" || ready["SYSLOG_IDENTIFIER"] != "sockd" || ready["SERVING"] != "1" {
		t.Errorf("sockd ready: %v", ready)
	}
	s := &sockd{t: t, api: apiPath}
	if _, e, code := s.ctl("start", "app"); code != 0 {
		t.Fatalf("start: %s", e)
	}
	pid := strconv.Itoa(s.status("app").Service.MainPID)
	// stdout and stderr are two pipes, read apart: their entries come
	// in either order.
	for _, want := range []map[string]string{
		{"MESSAGE": "out-line", "PRIORITY": "6", "SOCKD_STREAM": "stdout"},
		{"MESSAGE": "odd \x01\x1b[31m bytes", "PRIORITY": "6", "SOCKD_STREAM": "stdout"},
		{"MESSAGE": "err-line", "PRIORITY": "5", "SOCKD_STREAM": "stderr"},
		{"MESSAGE": "marked", "PRIORITY": "3", "SOCKD_STREAM": "stderr"}, // "<3>": the line's own priority
	} {
		checkEntry(t, journal.await(want["MESSAGE"], func(e map[string]string) bool {
			return e["MESSAGE"] == want["MESSAGE"] && e["SYSLOG_IDENTIFIER"] == "app"
		}), want, pid)
	}
	// sockd's own event about app carries its fields.
	spawned := journal.await("spawned", func(e map[string]string) bool {
		return e["MESSAGE"] == "spawned" && e["SYSLOG_IDENTIFIER"] == "sockd"
	})
	if spawned["SOCKD_UNIT"] != "app.service" || spawned["SOCKD_PID"] != pid || spawned["PRIORITY"] != "6" || spawned["GEN"] != "1" {
		t.Errorf("sockd's spawned entry: %v", spawned)
	}
	// The log ring has them as ever, as printed.
	if out, _, _ := s.ctl("logs", "app"); !bytes.Contains([]byte(out), []byte("] out-line\n")) || !bytes.Contains([]byte(out), []byte("] <3>marked\n")) {
		t.Errorf("sockctl logs:\n%s", out)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if exitErr != nil {
			t.Errorf("sockd: %v", exitErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sockd did not stop")
	}
	journal.await("sockd stopped", message("sockd stopped"))
	// Everything went to the journal: nothing on stderr.
	r.SetReadDeadline(time.Now().Add(time.Second))
	if b, _ := io.ReadAll(r); len(b) != 0 {
		t.Errorf("sockd wrote to stderr:\n%s", b)
	}
}

// checkEntry checks a child's line's entry: want's fields, the unit, the
// child's pid, and the identifier.
func checkEntry(t *testing.T, e, want map[string]string, pid string) {
	t.Helper()
	want["SOCKD_UNIT"], want["SOCKD_PID"], want["SYSLOG_IDENTIFIER"] = "app.service", pid, "app"
	for k, v := range want {
		if e[k] != v {
			t.Errorf("entry %q: %s=%q, want %q (entry %v)", want["MESSAGE"], k, e[k], v, e)
		}
	}
}
