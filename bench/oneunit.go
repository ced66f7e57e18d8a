package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// oneUnitSettle is how long each process idles before its RSS is read.
const oneUnitSettle = 5 * time.Second

// oneUnit measures the idle RSS of sockd holding one unit (one TCP
// socket, a sleep service not started) beside its peers holding one
// socket in the same run: systemd-socket-activate (waiting for the first
// connection), start_server (Server::Starter; its own Perl process, not
// the worker it runs at once) and s6-fdholderd (the s6 fd holder, empty).
// sockd's own fd-holder process is reported on its own row.
func oneUnit(ctx context.Context, b *bins, p *ports, res *results) error {
	const mb = 1 << 20
	ps, err := p.take(3)
	if err != nil {
		return err
	}
	s, stop, err := oneUnitSockd(ctx, b, ps[0])
	if err != nil {
		return err
	}
	defer stop()
	if err := sleepCtx(ctx, oneUnitSettle); err != nil {
		return err
	}
	rss, err := vmRSS(s.pid())
	if err != nil {
		return err
	}
	anon, _ := statusField(s.pid(), "RssAnon:")
	holder := -1
	for _, k := range childrenOf(s.pid()) {
		if cmdline(k.pid, "__sockd-fdholder") {
			holder = k.pid
		}
	}
	var holderRSS int64
	if holder > 0 {
		holderRSS, _ = vmRSS(holder)
	}
	stop()

	var peers []string
	peer := func(name string, argv []string, marker string, stdoutLine bool) {
		r, err := peerRSS(ctx, argv, marker, stdoutLine)
		if err != nil {
			peers = append(peers, name+": not measured")
			res.note("one unit: %s: %v", name, err)
			return
		}
		peers = append(peers, fmt.Sprintf("%s %.1f MB", name, float64(r)/mb))
	}
	peer("systemd-socket-activate", []string{b.ssa, "-l", fmt.Sprintf("127.0.0.1:%d", ps[1]), "/bin/sleep", "1000"}, "Listening on", false)
	if ss, err := exec.LookPath("start_server"); err == nil {
		peer("start_server", []string{ss, fmt.Sprintf("--port=127.0.0.1:%d", ps[2]), "--", "/bin/sleep", "1000"}, "starting new worker", false)
	} else {
		peers = append(peers, "start_server: not installed (make deps)")
	}
	if fdh, err := exec.LookPath("s6-fdholder-daemon"); err == nil {
		dir, cleanup, err := shortDir("sockd-bench-s6")
		if err == nil {
			rules := filepath.Join(dir, "rules")
			os.Mkdir(rules, 0o755)
			peer("s6-fdholderd", []string{fdh, "-1", "-i", rules, filepath.Join(dir, "fdh.sock")}, "", true)
			cleanup()
		}
	} else {
		peers = append(peers, "s6-fdholderd: not installed (make deps)")
	}
	res.add(row{
		figure: "one unit: sockd's idle RSS (one TCP socket, service not started)",
		sockd:  fmt.Sprintf("%.1f MB (anonymous %.1f MB)", float64(rss)/mb, float64(anon)/mb),
		peer:   strings.Join(peers, "; "),
		target: "< 6 MB",
		met:    yesNo(rss < 6*mb),
	})
	if holder > 0 {
		res.add(row{
			figure: "one unit: sockd's fd-holder process, idle RSS",
			sockd:  fmt.Sprintf("%.1f MB", float64(holderRSS)/mb),
			peer:   "reported on its own row; not in sockd's figure",
		})
	} else {
		res.note("one unit: no fd-holder child of sockd found")
	}
	return nil
}

// oneUnitSockd starts sockd with one unit on 127.0.0.1:port whose
// service is a sleep, not started.
func oneUnitSockd(ctx context.Context, b *bins, port int) (*sockdProc, func(), error) {
	dir, cleanup, err := shortDir("sockd-bench-one")
	if err != nil {
		return nil, nil, err
	}
	if err := writeFiles(dir, map[string]string{
		"one.socket":  fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\n", port),
		"one.service": "[Service]\nExecStart=/bin/sleep 1000\n",
	}); err != nil {
		cleanup()
		return nil, nil, err
	}
	s, err := startSockd(ctx, b, dir)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	done := false
	return s, func() {
		if !done {
			done = true
			s.stop()
			cleanup()
		}
	}, nil
}

// peerRSS runs argv in a process group of its own, waits for marker on
// its stderr (or, with stdoutLine, for a line on its stdout), idles
// oneUnitSettle, reads its RSS and stops the group.
func peerRSS(ctx context.Context, argv []string, marker string, stdoutLine bool) (int64, error) {
	var a *app
	if stdoutLine {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return 0, err
		}
		if err := cmd.Start(); err != nil {
			return 0, fmt.Errorf("start %s: %w", argv[0], err)
		}
		a = &app{cmd: cmd, done: make(chan struct{})}
		line := make(chan error, 1)
		go func() {
			_, err := bufio.NewReader(out).ReadString('\n')
			line <- err
			cmd.Wait()
			close(a.done)
		}()
		select {
		case err := <-line:
			if err != nil {
				a.stop()
				return 0, fmt.Errorf("%s: no readiness line: %w", argv[0], err)
			}
		case <-ctx.Done():
			a.stop()
			return 0, ctx.Err()
		}
	} else {
		var err error
		if a, _, err = startApp(ctx, argv, nil, marker); err != nil {
			return 0, err
		}
	}
	defer a.stop()
	if err := sleepCtx(ctx, oneUnitSettle); err != nil {
		return 0, err
	}
	return vmRSS(a.cmd.Process.Pid)
}

// cmdline reports whether pid's command line holds arg.
func cmdline(pid int, arg string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(b), arg)
}
