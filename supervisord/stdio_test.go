package supervisord

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/internal/testutil"
)

// With SOCKD_STDIO_CHILD=accept0 the test binary is a service whose
// stdin is a listening socket (StandardInput=socket or fd:NAME): it
// accepts on fd 0 and greets each connection with what it was handed.
func init() {
	if mode := os.Getenv("SOCKD_STDIO_CHILD"); mode != "" {
		children.MaybeRunHelper()
		stdioChild(mode)
	}
}

func stdioChild(mode string) {
	if mode != "accept0" {
		fmt.Fprintf(os.Stderr, "unknown mode %q\n", mode)
		os.Exit(2)
	}
	l, err := net.FileListener(os.NewFile(0, "stdin"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: fd 0:", err)
		os.Exit(1)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "child: accept:", err)
			os.Exit(1)
		}
		fmt.Fprintf(c, "fd0 fds=%s names=%s\n", os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES"))
		c.Close()
	}
}

// StandardInput=socket on Accept=yes, the inetd way: the connection is
// fds 0, 1 and 2 (StandardOutput= defaults to inherit, StandardError=
// follows), there is no fd 3 and no LISTEN_FDS, as in systemd; REMOTE_*
// are set.
func TestStdioAcceptSocket(t *testing.T) {
	for _, tc := range []struct {
		name, lines string
		send        string
		want        []string // the lines the client reads
		logs        []string // "stream line" in the socket unit's log
	}{
		{"cat", "ExecStart=/bin/cat\nStandardInput=socket", "hello\n", []string{"hello"}, nil},
		{"inetd", "ExecStart=:/bin/sh -c 'read x; echo \"got $x fds=${LISTEN_FDS:-none} pid=${LISTEN_PID:-none} remote=$REMOTE_ADDR\"; echo oops >&2; test -e /proc/$$/fd/3 || echo no fd 3'\n" +
			"StandardInput=socket", "hi\n", []string{"got hi fds=none pid=none remote=127.0.0.1", "oops", "no fd 3"}, nil},
		{"stderr journal", "ExecStart=/bin/sh -c 'read x; echo \"got $x\"; echo oops >&2'\nStandardInput=socket\nStandardError=journal",
			"hi\n", []string{"got hi"}, []string{"stderr oops"}},
		{"stdout only", "ExecStart=/bin/sh -c 'cat; echo \"eof fds=${LISTEN_FDS:-none}\"'\nStandardOutput=socket", "ignored\n", []string{"eof fds=none"}, nil},
		{"fd connection", "ExecStart=/bin/sh -c 'read x; echo \"got $x fds=$LISTEN_FDS names=$LISTEN_FDNAMES\"'\nStandardInput=fd:connection",
			"hi\n", []string{"got hi fds=1 names=connection"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newAcceptEnv(t, "ListenStream="+freeTCP(t)+"\n", "ExecStart=\n"+tc.lines+"\n")
			c := e.dial("tcp", nil)
			if _, err := io.WriteString(c, tc.send); err != nil {
				t.Fatal(err)
			}
			var got []string
			for range tc.want {
				l, err := c.line(20 * time.Second)
				if err != nil {
					t.Fatalf("read: %v; got %q so far, want %q", err, got, tc.want)
				}
				got = append(got, l)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("client read %q, want %q", got, tc.want)
			}
			c.Conn.(*net.TCPConn).CloseWrite()
			c.closedByPeer()
			e.await("instance gone", func(s api.ServiceStatus) bool { return len(s.Pids) == 0 && s.LastExit != "" })
			if st := e.status("echo").Service; st.LastExit != "exit status 0" {
				t.Errorf("instance ended with %q", st.LastExit)
			}
			if tc.logs != nil {
				if got := logLines(t, e.d, "echo"); !slices.Equal(got, tc.logs) {
					t.Errorf("logs %q, want %q", got, tc.logs)
				}
			}
		})
	}
}

// logLines returns the unit's log as "stream line" strings.
func logLines(t *testing.T, d *Daemon, unit string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ls, err := d.Logs(ctx, unit, api.LogQuery{N: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		out = append(out, l.Stream+" "+l.Line)
	}
	return out
}

// StandardInput=socket on an Accept=no unit hands over its one
// listening socket as stdin (and stdout), without LISTEN_FDS: the
// process accepts on fd 0.
func TestStdioListenerAsStdin(t *testing.T) {
	e := newEnv(t, "StandardInput=socket\nStandardError=journal\nEnvironment=SOCKD_STDIO_CHILD=accept0")
	for range 2 {
		if got := readGreeting(t, "unix", e.sock); got != "fd0 fds= names=" {
			t.Errorf("greeting %q, want no LISTEN_FDS", got)
		}
	}
	if st := e.status(); st.State != api.StateActive || len(st.Pids) != 1 {
		t.Errorf("status %+v, want one process serving", st)
	}
}

// fd:NAME picks the socket whose FileDescriptorName= is NAME among the
// service's, and the process still gets them all as fds 3… (systemd
// passes them unless a stream is socket).
func TestStdioNamedFD(t *testing.T) {
	e := newEnv(t, "StandardInput=fd:side\nStandardError=journal\nEnvironment=SOCKD_STDIO_CHILD=accept0")
	side := filepath.Join(filepath.Dir(e.sock), "side.sock")
	e.write("side.socket", "[Socket]\nListenStream="+side+"\nFileDescriptorName=side\nService=app.service\n")
	e.reload("StandardInput=fd:side\nStandardError=journal\nEnvironment=SOCKD_STDIO_CHILD=accept0")
	if got := readGreeting(t, "unix", side); got != "fd0 fds=2 names=app.socket:side" {
		t.Errorf("greeting %q, want fds=2 names=app.socket:side", got)
	}
}

// A standard stream that cannot be set up fails the start, naming why.
func TestStdioErrors(t *testing.T) {
	t.Run("two sockets", func(t *testing.T) {
		e := newEnv(t, "StandardInput=socket")
		other := filepath.Join(filepath.Dir(e.sock), "other.sock")
		e.write("other.socket", "[Socket]\nListenStream="+other+"\nService=app.service\n")
		e.reload("StandardInput=socket")
		if err := e.d.Start(e.ctx(), "app"); err == nil || !strings.Contains(err.Error(), "needs exactly one socket, not 2") {
			t.Errorf("start: %v, want an error about two sockets", err)
		}
	})
	t.Run("no such name", func(t *testing.T) {
		e := newEnv(t, "StandardOutput=fd:nope")
		if err := e.d.Start(e.ctx(), "app"); err == nil || !strings.Contains(err.Error(), `StandardOutput=fd:nope: no socket of that name (FileDescriptorName= of the sockets: ["app.socket"])`) {
			t.Errorf("start: %v, want an error naming fd:nope", err)
		}
	})
}

// StandardInputText=/StandardInputData= feed the process; output goes to
// the journal as usual.
func TestStdioData(t *testing.T) {
	e := newEnv(t, "ExecStart=\nExecStart=/bin/sh -c 'while read -r l; do echo \"got $l\"; done'\n"+
		"StandardInputText=hello %n\nStandardInputData=d29ybGQK")
	if err := e.d.Start(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 0 && st.Result != "" })
	if got, want := logLines(t, e.d, "app"), []string{"stdout got hello app.service", "stdout got world"}; !slices.Equal(got, want) {
		t.Errorf("logs %q, want %q", got, want)
	}
}

// StandardInput=file:PATH reads a file, or connects to the Unix socket
// at PATH as systemd does; file: read-write when stdout is the same file.
func TestStdioFile(t *testing.T) {
	dir := testutil.ShortDir(t)
	in := filepath.Join(dir, "in.txt")
	if err := os.WriteFile(in, []byte("from file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "ExecStart=\nExecStart=/bin/cat\nStandardInput=file:"+in)
	if err := e.d.Start(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 0 && st.Result != "" })
	if got, want := logLines(t, e.d, "app"), []string{"stdout from file"}; !slices.Equal(got, want) {
		t.Errorf("logs %q, want %q", got, want)
	}

	// The same file: as stdin and stdout: one read-write description.
	rw := filepath.Join(dir, "rw.txt")
	if err := os.WriteFile(rw, []byte("abc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.reload("ExecStart=\nExecStart=/bin/sh -c 'read x; echo \"$x$x\"'\nStandardInput=file:" + rw + "\nStandardOutput=file:" + rw)
	if err := e.d.Start(e.ctx(), "app"); err != nil {
		t.Fatal(err)
	}
	e.await(func(st api.ServiceStatus) bool { return len(st.Pids) == 0 && st.Result != "" })
	if b, err := os.ReadFile(rw); err != nil || string(b) != "abc\nabcabc\n" {
		t.Errorf("file %q, %v; want the line appended after the one read", b, err)
	}

	// A Unix socket at the path: connected to, and the write side shut.
	sock := filepath.Join(dir, "feed.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := openStdio(sock, os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "over the socket\n")
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("peer read %d, %v; want EOF (the write side is shut)", n, err)
	}
	if line, err := bufio.NewReader(f).ReadString('\n'); err != nil || line != "over the socket\n" {
		t.Errorf("read %q, %v", line, err)
	}
	if _, err := openStdio(filepath.Join(dir, "missing"), os.O_RDONLY); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// readGreeting connects to addr and reads one line.
func readGreeting(t *testing.T, network, addr string) string {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	s, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, s)
	}
	return strings.TrimSuffix(s, "\n")
}
