package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
	"github.com/sockd/sockd/internal/fdholder"
	"github.com/sockd/sockd/internal/fdstore"
	"github.com/sockd/sockd/metrics"
	"github.com/sockd/sockd/supervisord"
	"github.com/sockd/sockd/units"
)

// version is set by the build (-ldflags "-X main.version=…").
var version = "dev"

const usage = `usage: sockd [--units DIR] [--api PATH] [--watch=false] [--log-format auto|json|console] [--log-level LEVEL] [--allow-untrusted-units] [--fd-holder=false] [--metrics ADDR]
       sockd verify [--allow-untrusted-units] DIR|FILE...
       sockd self-test

sockd owns the sockets declared in the unit files of DIR (env SOCKD_UNITS)
and starts each service on its first connection. The control API listens
on PATH (env SOCKD_API, default /run/sockd/api.sock); see sockctl.
GET /metrics on it is the Prometheus exposition; --metrics ADDR also
serves it (and nothing else, to anyone who can connect) over TCP.

sockd raises its RLIMIT_NOFILE at start: the soft limit to the hard one,
and as root the hard one to fs.nr_open where it may (each idle unit keeps
its sockets open). The units' processes get the limit sockd was started
with, unless their unit sets LimitNOFILE=.

Signals: SIGHUP reloads the unit files; SIGUSR2 re-executes sockd in
place (the binary it was started from, which may have been upgraded:
sockets, processes and their output carry across); SIGTERM and SIGINT
stop every unit and sockd.
`

// run is sockd's whole life; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) (int, error) {
	if len(args) > 0 && args[0] == "verify" {
		return verify(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "self-test" {
		// What a re-exec asks of the binary it is about to become.
		fmt.Fprintf(stdout, "sockd %s state-version %d\n", version, supervisord.StateVersion)
		return 0, nil
	}
	// The binary to re-exec: the file sockd was started from, which an
	// upgrade may have replaced since.
	exe, err := os.Executable()
	if err != nil {
		return 1, err
	}
	started := time.Now()
	fs := flag.NewFlagSet("sockd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	var manErr error
	if len(args) == 1 && args[0] == manVerb {
		// sockd(8), from this flag set once it is whole: Parse calls
		// Usage for -help after every flag below is defined (man.go).
		manEnv()
		fs.Usage = func() { manErr = writeManPage(stdout, fs) }
		args = []string{"-help"}
	}
	unitsDir := fs.String("units", envOr("SOCKD_UNITS", "/etc/sockd/units"), "directory of unit files")
	apiPath := fs.String("api", envOr("SOCKD_API", api.DefaultPath), "control socket path")
	apiMode := fs.String("api-mode", "", "control socket file mode (default 0600, 0660 with --api-group)")
	apiAccess := addAPIAccessFlags(fs)
	logFormat := fs.String("log-format", "auto", "auto (console on a terminal, else JSON), json or console")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	runDir := fs.String("runtime-dir", "", "runtime directory, for the NOTIFY_SOCKET every service gets; it and its parents must be searchable by every user (default: /run/sockd as root, else a temporary directory)")
	watch := fs.Bool("watch", true, "reload the unit directory when its files change (SIGHUP and `sockctl reload` always do)")
	allowUntrusted := fs.Bool("allow-untrusted-units", false, allowUntrustedHelp)
	cgroupDir := fs.String("cgroup", envOr("SOCKD_CGROUP", supervisord.CgroupAuto), "where each unit's processes live: auto (the cgroup v2 hierarchy sockd may write: its delegated cgroup under systemd, else a \"sockd\" cgroup below the root of /sys/fs/cgroup or /sys/fs/cgroup/unified; else process groups), off (process groups), or a cgroup v2 directory")
	metricsAddr := fs.String("metrics", "", "also serve GET /metrics, and nothing else, over TCP on this address (127.0.0.1:9101); off by default. No access rules apply there: whoever can connect can read it")
	useHolder := fs.Bool("fd-holder", true, "keep a copy of every socket and output pipe in an fd holder process, so that a sockd started after a crash takes them back")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			if manErr != nil {
				return 1, fmt.Errorf("write man page: %w", manErr)
			}
			return 0, nil
		}
		return 2, nil
	}
	if fs.NArg() > 0 {
		fmt.Fprint(stderr, usage)
		return 2, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	apiSock, err := apiAccess.resolve(*apiMode)
	if err != nil {
		return 2, err
	}
	log, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return 2, err
	}
	// Under systemd, with stderr on the journal: sockd's own log and its
	// units' output go to the journal with fields (journal.go).
	var output func(supervisord.OutputLine)
	if j := detectJournal(stderr); j != nil {
		log = zerolog.New(j).Level(log.GetLevel())
		output = j.output
	}
	// The metrics count every event from the first unit's on; the
	// --metrics listener is bound before any unit starts, so a taken
	// address stops sockd with nothing to undo.
	m := metrics.New(metrics.Options{ErrorLog: promLogger{log}})
	var ml *metricsListener
	if *metricsAddr != "" {
		if ml, err = listenMetrics(*metricsAddr, m.Handler(), log); err != nil {
			return 1, err
		}
		defer ml.close()
	}
	// SIGPIPE is caught and dropped, not ignored: an ignored signal
	// stays ignored in every child sockd execs.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE, syscall.SIGUSR2)
	defer signal.Stop(sigs)

	raiseNofile().log(log) // nofile.go
	// Orphans of the units (a Type=forking daemon) reparent to sockd,
	// which reaps them and so learns how a forking service's main
	// process ended.
	if err := children.BecomeSubreaper(); err != nil {
		log.Warn().Err(err).Msg("not the child subreaper: Type=forking main processes are watched without their exit status")
	}
	// Under systemd with FileDescriptorStoreMax=, its fd store keeps a
	// copy of every listening socket, and gives them back (LISTEN_FDS)
	// when it starts sockd again.
	var keepers []supervisord.FDKeeper
	var held *supervisord.Held
	var heldAPI *os.File // the API socket given back (fd store, holder, or a systemd socket unit)
	if store := fdstore.Open(); store != nil {
		keepers = append(keepers, store)
	}
	if fds, err := fdstore.Inherited(); err != nil {
		log.Warn().Err(err).Msg("LISTEN_FDS: not taken")
	} else if len(fds) > 0 {
		held = &supervisord.Held{Files: map[string]*os.File{}}
		for name, fs := range fds {
			for _, extra := range fs[1:] {
				extra.Close() // an older copy under the same name
			}
			// The API socket: sockd's own name in the fd store, or
			// FileDescriptorName=sockd-api of a systemd socket unit.
			if name == apiName || name == "sockd-api" {
				if heldAPI != nil {
					heldAPI.Close()
				}
				heldAPI = fs[0]
				continue
			}
			held.Files[name] = fs[0]
		}
		log.Info().Int("fds", len(fds)).Msg("took sockets back from systemd (fd store, socket units)")
	}
	// The fd holder keeps a copy of every socket and output pipe, so a
	// sockd started after this one crashed takes them back.
	var holder *fdholder.Client
	keep := func(dir string) ([]supervisord.FDKeeper, *supervisord.Held, error) {
		if !*useHolder {
			return nil, nil, nil
		}
		c, err := fdholder.Connect(dir)
		if err != nil {
			return nil, nil, err
		}
		h, err := c.Take()
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		holder = c
		if f := h.Files[apiName]; f != nil {
			if heldAPI == nil {
				heldAPI = f
			} else {
				f.Close() // systemd's copy is the same socket
			}
			delete(h.Files, apiName)
		}
		return []supervisord.FDKeeper{c}, &supervisord.Held{Files: h.Files, Output: h.Output}, nil
	}
	d := supervisord.New(supervisord.Config{UnitsDir: *unitsDir, AllowUntrustedUnits: *allowUntrusted, RuntimeDir: *runDir, Log: log,
		Keepers: keepers, Held: held, Keep: keep, Cgroup: *cgroupDir, OnEvent: m.Observe, Output: output})
	m.SetSource(d)
	// A sockd that fails to start leaves no holder behind, unless it
	// holds what a previous sockd's units still use (a state file).
	stopHolder := func() {
		if holder != nil && !d.Recovering() {
			holder.Shutdown()
			holder = nil
		}
	}
	if err := d.Open(); err != nil {
		d.Shutdown(context.Background())
		stopHolder()
		return 1, err
	}
	defer func() {
		if holder != nil {
			holder.Close()
		}
	}()
	l, err := listenAPI(*apiPath, apiSock.mode, apiSock.gid, heldAPI)
	if err != nil {
		d.Shutdown(context.Background())
		stopHolder()
		return 1, err
	}
	keepAPI(l, log, append(append([]supervisord.FDKeeper(nil), keepers...), holderKeeper(holder)...)...)
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	var warnings daemonWarnings
	if *watch {
		if _, err := d.Watch(watchCtx); err != nil {
			log.Error().Err(err).Msg("not watching the unit directory; SIGHUP or `sockctl reload` reload it")
			warnings.add(fmt.Sprintf("not watching the unit directory (%v): SIGHUP or `sockctl reload` reload it", err))
		}
	}
	srv := &api.Server{Backend: d, Log: log, Version: version, Access: apiSock.access, Started: started, Warnings: warnings.list, Metrics: m.Handler(),
		Reexec: func(ctx context.Context) (func(), error) {
			log.Info().Str("binary", exe).Msg("sockctl daemon-reexec: re-executing")
			commit, err := prepareReexec(context.WithoutCancel(ctx), exe, d, log)
			if err != nil {
				log.Error().Err(err).Msg("re-exec refused; this sockd serves on")
				return nil, err
			}
			return func() {
				log.Error().Err(commit()).Msg("re-exec failed; this sockd serves on")
			}, nil
		}}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(l) }()
	var metricsErr chan error // nil (never ready) without --metrics
	if ml != nil {
		metricsErr = make(chan error, 1)
		go func() { metricsErr <- ml.serve() }()
		log.Info().Str("metrics", ml.l.Addr().String()).Msg("serving GET /metrics over TCP")
	}
	// Loading parsed every unit file: hand the garbage back to the kernel
	// now, since an idle sockd may not collect again for a long time.
	debug.FreeOSMemory()
	if waiting := d.Waiting(); len(waiting) > 0 {
		log.Error().Strs("units", waiting).Msg("these units wait for addresses another process holds; sockd retries (sockctl list shows them)")
	}
	// Ready means every unit serves or is listed as failed with its
	// reason: the line and STATUS= say how many of each.
	ready := readiness(d.Serving(), d.Failed())
	ev := log.Info()
	if ready.failed > 0 {
		ev = log.Warn().Strs("failed_units", ready.names).Interface("failed_by_result", ready.byResult)
	}
	ev.Str("units", *unitsDir).Str("api", *apiPath).Int("pid", os.Getpid()).
		Int("serving", ready.serving).Int("failed", ready.failed).Str("status", ready.String()).Msg("sockd ready")
	// NOTIFY_SOCKET stays set: STOPPING=1 and FDSTORE= use it later
	// (children never see it: their environment is the unit's alone).
	daemon.SdNotify(false, daemon.SdNotifyReady+"\nSTATUS="+ready.String())

	// SIGHUP reloads off the signal loop, so that a SIGTERM during a
	// long reload is heard at once (Shutdown cuts the reload short).
	// SIGHUPs that come while one runs fold into one more reload.
	hup := make(chan struct{}, 1)
	reloaderDone := make(chan struct{})
	go func() {
		defer close(reloaderDone)
		for range hup {
			log.Info().Msg("SIGHUP: reloading unit files")
			if _, err := d.Reload(context.Background()); err != nil {
				log.Error().Err(err).Msg("reload")
			}
			debug.FreeOSMemory()
		}
	}()
	defer func() { <-reloaderDone }()
	defer close(hup)

	code := 0
loop:
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGPIPE {
				continue
			}
			if sig == syscall.SIGUSR2 {
				log.Info().Str("binary", exe).Msg("SIGUSR2: re-executing")
				err := reexec(exe, d, log)
				log.Error().Err(err).Msg("re-exec failed; this sockd serves on")
				continue
			}
			if sig == syscall.SIGHUP {
				select {
				case hup <- struct{}{}:
				default: // one is pending already
				}
				continue
			}
			log.Info().Str("signal", sig.String()).Msg("shutting down")
			break loop
		case err := <-serveErr:
			log.Error().Err(err).Msg("api server stopped")
			code = 1
			break loop
		case err := <-metricsErr:
			// The units and the API go on without it.
			log.Error().Err(err).Msg("metrics listener stopped")
			metricsErr = nil
		}
	}
	daemon.SdNotify(false, daemon.SdNotifyStopping)
	stopWatch()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	srv.Shutdown(ctx)
	if ml != nil {
		ml.shutdown(ctx)
	}
	cancel()
	// Units stop in parallel, each bounded by its TimeoutStopSec=; a
	// second signal is not needed, SIGKILL follows the timeout.
	if err := d.Shutdown(context.Background()); err != nil {
		log.Error().Err(err).Msg("shutdown")
		code = 1
	} else if holder != nil {
		// Every unit stopped: nothing is left to keep.
		if err := holder.Shutdown(); err != nil {
			log.Warn().Err(err).Msg("fd holder")
		}
	}
	log.Info().Msg("sockd stopped")
	return code, nil
}

// daemonWarnings are sockd's own problems, which GET /v1/version (and
// sockctl list) report.
type daemonWarnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *daemonWarnings) add(msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *daemonWarnings) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.msgs...)
}

// ready is what sockd says when it is ready: how many units serve, and
// which failed with what result.
type ready struct {
	serving, failed int
	names           []string
	byResult        map[string]int
}

func readiness(serving int, failed []api.UnitStatus) ready {
	r := ready{serving: serving, failed: len(failed), byResult: map[string]int{}}
	for _, u := range failed {
		r.names = append(r.names, u.Name)
		r.byResult[u.Service.Result]++
	}
	return r
}

// String is sd_notify's STATUS=: "3 units serving", or "6 units
// serving, 94 failed (resources: 94); sockctl list shows them".
func (r ready) String() string {
	s := fmt.Sprintf("%d units serving", r.serving)
	if r.failed == 0 {
		return s
	}
	results := make([]string, 0, len(r.byResult))
	for res, n := range r.byResult {
		results = append(results, fmt.Sprintf("%s: %d", res, n))
	}
	sort.Strings(results)
	return fmt.Sprintf("%s, %d failed (%s); sockctl list shows them", s, r.failed, strings.Join(results, ", "))
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func newLogger(w io.Writer, format, level string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		return zerolog.Logger{}, fmt.Errorf("--log-level %q: %w", level, err)
	}
	switch format {
	case "auto":
		if f, ok := w.(*os.File); ok && isTerminal(f) {
			w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"}
		}
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000", NoColor: true}
	case "json":
	default:
		return zerolog.Logger{}, fmt.Errorf("--log-format %q: want auto, json or console", format)
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// allowUntrustedHelp is the help of --allow-untrusted-units.
const allowUntrustedHelp = "as root, load unit files and directories that a user other than root can write, with a warning, instead of refusing them (for development)"

// verify prints every problem of the named unit files or directories as
// file:line: message; exit 1 when any is an error.
func verify(args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("sockd verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	allowUntrusted := fs.Bool("allow-untrusted-units", false, allowUntrustedHelp)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, nil
		}
		return 2, nil
	}
	paths := fs.Args()
	if len(paths) == 0 {
		fmt.Fprint(stderr, usage)
		return 2, nil
	}
	diags, err := units.LoadOptions{AllowUntrusted: *allowUntrusted}.Verify(paths...)
	if err != nil {
		return 1, err
	}
	code := 0
	for _, d := range diags {
		fmt.Fprintln(stdout, d.Error())
		if d.Severity == units.Error {
			code = 1
		}
	}
	return code, nil
}
