package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sockd/sockd/api"
)

const usage = `usage: sockctl [--api PATH] [--json] [--timeout DUR] VERB [ARGS]

Verbs:
  list [PATTERN] [--state S]
                            list units: UNIT, STATE, PIDS, LISTEN; PATTERN
                            keeps the units whose name or socket's name
                            matches a glob ("app-*", "web.socket"; "app" is
                            app.service; several: "a*,b*"); --state keeps
                            those in a state or sub-state (failed, active,
                            running, listening, …; several: failed,activating)
  status UNIT               show one unit, with each socket's accept queue
  start UNIT                start the unit's service now
  stop UNIT                 stop the unit's service (its sockets stay open)
  restart UNIT [--wait] [--stop-first]
                            restart without dropping connections; --wait
                            follows it to the end and fails if it rolled back
  reload-app UNIT           run ExecReload= (or send SIGHUP) to its processes
  reset-failed [UNIT]       make a failed unit (without UNIT: every failed
                            unit) forget its failure, its start and trigger
                            limits and its back-off, and listen again
  reload                    re-read the unit directory and apply changes
  logs UNIT [-n N] [-f] [--since TIME] [--stream stdout|stderr]
                            show the last N output lines (default 100); -f
                            (--follow) then shows new lines as they come,
                            until interrupted; --since keeps the lines
                            written since TIME (RFC 3339, "2006-01-02
                            15:04:05" local time, or a duration ago: 10m,
                            -1h30m, "2h ago"); --stream keeps one stream
  events [UNIT]             follow lifecycle events (of UNIT, else of all
                            units and of sockd) as they happen, one a line
                            (--json: NDJSON), until Ctrl-C
  exec UNIT -- CMD [ARGS]   run CMD on the unit's sockets (LISTEN_FDS) in
                            place of its service, which no connection
                            starts until CMD exits; exits with CMD's status
  daemon-reexec             upgrade sockd in place: it checks the binary it
                            was started from (which may be new), then execs
                            it, keeping every socket and process; waits
                            until the new sockd answers
  help                      show this help

UNIT is a service name, with or without ".service". Flags may come before
or after the verb; for exec, everything after -- is the command's.
  --api PATH     the API socket (default $SOCKD_API, else ` + api.DefaultPath + `)
  --json         print JSON instead of text
  --timeout DUR  give up after DUR, e.g. 30s (default: no limit; for exec,
                 the wait for the sockets)

Exit codes: 0 done, 1 the operation failed, 2 usage, 3 cannot reach sockd;
exec: CMD's status (128+N when killed by signal N), 127 when CMD cannot
start, and 1, 2, 3 as above before it starts.
`

// cli is one run of sockctl with its surroundings, so tests can run it
// in-process.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	terminal       bool     // stdout is a terminal: show restart phases live
	stdin          *os.File // exec's command reads it; nil: /dev/null
}

// usageError is wrong use of the command line: exit 2, with the usage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// exitError ends sockctl with code after the output already said why.
type exitError struct{ code int }

func (e *exitError) Error() string { return "" }

// exitCode maps the error of a run to sockctl's exit code.
func exitCode(err error) int {
	var (
		ue *usageError
		ee *exitError
		un *api.UnreachableError
	)
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		return 2
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &un):
		return 3
	default:
		return 1
	}
}

// errorText is what sockctl prints to stderr for the error of a run.
func errorText(err error) string {
	var (
		ue *usageError
		ee *exitError
	)
	switch {
	case err == nil, errors.As(err, &ee):
		return ""
	case errors.As(err, &ue):
		return "sockctl: " + ue.msg + "\n\n" + strings.TrimRight(usage, "\n")
	default:
		return "sockctl: " + err.Error()
	}
}

// flagSpec describes one flag. Flags with verb set belong to that verb.
type flagSpec struct {
	value bool // takes a value: --api PATH or --api=PATH
	verb  string
}

var flagSpecs = map[string]flagSpec{
	"api":        {value: true},
	"json":       {},
	"timeout":    {value: true},
	"h":          {},
	"help":       {},
	"wait":       {verb: "restart"},
	"stop-first": {verb: "restart"},
	"n":          {value: true, verb: "logs"},
	"f":          {verb: "logs"},
	"follow":     {verb: "logs"},
	"since":      {value: true, verb: "logs"},
	"stream":     {value: true, verb: "logs"},
	"state":      {value: true, verb: "list"},
}

// options are the parsed command line.
type options struct {
	flags map[string]string // name → value ("true" for booleans given)
	verb  string
	args  []string
	dash  int      // how many positional arguments (the verb too) came before "--"; -1: no "--"
	cmd   []string // exec's command: what follows "--"
}

func (o *options) bool(name string) bool {
	v, ok := o.flags[name]
	return ok && v == "true"
}

// parse splits args into flags (anywhere; "-x" and "--x" alike) and
// positional arguments, the first of which is the verb.
func parse(args []string) (*options, error) {
	o := &options{flags: map[string]string{}, dash: -1}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			o.dash = len(pos)
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		name, val, hasVal := strings.Cut(name, "=")
		spec, ok := flagSpecs[name]
		if !ok {
			return nil, &usageError{fmt.Sprintf("unknown flag %s", a)}
		}
		switch {
		case spec.value && !hasVal:
			if i+1 >= len(args) {
				return nil, &usageError{fmt.Sprintf("flag %s needs a value", a)}
			}
			i++
			val = args[i]
		case !spec.value && hasVal:
			b, err := strconv.ParseBool(val)
			if err != nil {
				return nil, &usageError{fmt.Sprintf("flag %s: not a boolean: %q", a, val)}
			}
			val = strconv.FormatBool(b)
		case !spec.value:
			val = "true"
		}
		o.flags[name] = val
	}
	if len(pos) > 0 {
		o.verb, o.args = pos[0], pos[1:]
	}
	return o, nil
}

// splitCommand moves what follows "--" into o.cmd; "--" must come
// right after the verb's n arguments, so that the command's own flags
// are never taken for sockctl's.
func (o *options) splitCommand(n int) error {
	form := fmt.Sprintf("sockctl %s UNIT -- CMD [ARGS...]", o.verb)
	switch {
	case o.dash < 0 && len(o.args) <= n:
		return &usageError{fmt.Sprintf("%s: missing -- CMD: %s", o.verb, form)}
	case o.dash < 0 || o.dash != 1+n:
		return &usageError{fmt.Sprintf("%s: the command goes after --: %s", o.verb, form)}
	case len(o.args) == n:
		return &usageError{fmt.Sprintf("%s: missing CMD after --: %s", o.verb, form)}
	}
	o.args, o.cmd = o.args[:n], o.args[n:]
	return nil
}

// verb is one sockctl verb: its positional arguments and what it does.
type verb struct {
	args    []string // names of the required positional arguments
	run     func(c *cli, ctx context.Context, cl *api.Client, o *options) error
	command bool   // a command follows the arguments, after "--" (options.cmd)
	opt     string // the name of an optional positional argument after args, if any
}

var verbs = map[string]verb{
	"list":          {nil, (*cli).list, false, "PATTERN"},
	"status":        {[]string{"UNIT"}, (*cli).status, false, ""},
	"start":         {[]string{"UNIT"}, (*cli).start, false, ""},
	"stop":          {[]string{"UNIT"}, (*cli).stop, false, ""},
	"restart":       {[]string{"UNIT"}, (*cli).restart, false, ""},
	"reload-app":    {[]string{"UNIT"}, (*cli).reloadApp, false, ""},
	"reload":        {nil, (*cli).reload, false, ""},
	"reset-failed":  {nil, (*cli).resetFailed, false, "UNIT"},
	"logs":          {[]string{"UNIT"}, (*cli).logs, false, ""},
	"exec":          {[]string{"UNIT"}, (*cli).exec, true, ""}, // exec_linux.go
	"daemon-reexec": {nil, (*cli).daemonReexec, false, ""},
	"events":        {nil, (*cli).events, false, "UNIT"}, // events.go
}

// run runs sockctl with args (without the program name).
func (c *cli) run(ctx context.Context, args []string) error {
	o, err := parse(args)
	if err != nil {
		return err
	}
	if o.bool("h") || o.bool("help") || o.verb == "help" {
		io.WriteString(c.stdout, usage)
		return nil
	}
	if o.verb == "" {
		return &usageError{"missing verb"}
	}
	if h, ok := hidden[o.verb]; ok {
		return h(c, ctx, o) // man.go
	}
	v, ok := verbs[o.verb]
	if !ok {
		return &usageError{fmt.Sprintf("unknown verb %q", o.verb)}
	}
	for name := range o.flags {
		if s := flagSpecs[name]; s.verb != "" && s.verb != o.verb {
			return &usageError{fmt.Sprintf("flag --%s is only for %s", name, s.verb)}
		}
	}
	if v.command {
		if err := o.splitCommand(len(v.args)); err != nil {
			return err
		}
	}
	if len(o.args) < len(v.args) {
		return &usageError{fmt.Sprintf("%s: missing %s", o.verb, v.args[len(o.args)])}
	}
	if n := len(v.args); len(o.args) > n && (v.opt == "" || len(o.args) > n+1) {
		if v.opt != "" {
			n++
		}
		return &usageError{fmt.Sprintf("%s: unexpected argument %q", o.verb, o.args[n])}
	}
	if s, ok := o.flags["timeout"]; ok {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return &usageError{fmt.Sprintf("--timeout: not a positive duration: %q", s)}
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	cl := c.client(o)
	err = v.run(c, ctx, cl, o)
	var (
		ae *api.Error
		ue *api.UnreachableError
		xe *exitError
		se *usageError
	)
	if err == nil || errors.As(err, &ae) || errors.As(err, &ue) || errors.As(err, &xe) || errors.As(err, &se) {
		return err
	}
	what := o.verb
	if len(o.args) > 0 {
		what += " " + o.args[0]
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: timed out after %s", what, o.flags["timeout"])
	}
	return fmt.Errorf("%s: %w", what, err)
}

// client is the API client for --api, else $SOCKD_API, else the
// default path.
func (c *cli) client(o *options) *api.Client {
	path := o.flags["api"]
	if path == "" {
		path = c.getenv("SOCKD_API")
	}
	if path == "" {
		path = api.DefaultPath
	}
	return &api.Client{Path: path}
}

// printJSON writes v as one line of JSON.
func (c *cli) printJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = c.stdout.Write(append(b, '\n'))
	return err
}

// listOptions are list's PATTERN and --state as the API takes them: a
// service state (api.State*) filters the state, any other value the
// sub-state, as systemctl's --state takes either.
func listOptions(o *options) (api.ListOptions, error) {
	var lo api.ListOptions
	if len(o.args) > 0 {
		lo.Names = strings.Split(o.args[0], ",")
	}
	if s, ok := o.flags["state"]; ok {
		for _, v := range strings.Split(s, ",") {
			switch v {
			case api.StateInactive, api.StateActivating, api.StateActive, api.StateDeactivating, api.StateFailed:
				lo.States = append(lo.States, v)
			default:
				lo.SubStates = append(lo.SubStates, v)
			}
		}
	}
	lo, err := lo.Normalize()
	var fe *api.FieldError
	if errors.As(err, &fe) {
		what := "PATTERN"
		if fe.Field != "name" {
			what = "--state"
		}
		return lo, &usageError{fmt.Sprintf("list: %s: %s", what, fe.Message)}
	}
	return lo, err
}

func (c *cli) list(ctx context.Context, cl *api.Client, o *options) error {
	lo, err := listOptions(o)
	if err != nil {
		return err
	}
	units, err := cl.ListFiltered(ctx, lo)
	if err != nil {
		return err
	}
	if o.bool("json") {
		if units == nil {
			units = []api.UnitStatus{}
		}
		return c.printJSON(units)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "UNIT\tSTATE\tPIDS\tLISTEN")
	for _, u := range units {
		var listen []string
		for _, s := range u.Sockets {
			listen = append(listen, s.Listen)
		}
		st := state(u.Service)
		if len(u.LoadErrors) > 0 && u.Service.SubState != loadErrorState {
			st += ", load error"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, st, orDash(joinInts(u.Service.Pids, ",")), orDash(strings.Join(listen, ",")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Where the load errors are: the unit runs as loaded before.
	for _, u := range units {
		for _, d := range u.LoadErrors {
			fmt.Fprintf(c.stderr, "%s: load error: %s\n", u.Name, diagText(d))
		}
	}
	// sockd's own problems, which no unit shows (an older sockd has
	// none to tell).
	if v, err := cl.Version(ctx); err == nil {
		for _, w := range v.Warnings {
			fmt.Fprintf(c.stderr, "warning: sockd: %s\n", w)
		}
	}
	return nil
}

func state(s api.ServiceStatus) string {
	if s.SubState == "" {
		return s.State
	}
	return s.State + " (" + s.SubState + ")"
}

func joinInts(xs []int, sep string) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, sep)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c *cli) status(ctx context.Context, cl *api.Client, o *options) error {
	u, err := cl.Status(ctx, o.args[0])
	if err != nil {
		return err
	}
	if o.bool("json") {
		return c.printJSON(u)
	}
	s := u.Service
	w := c.stdout
	line := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%12s: %s\n", label, fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(w, "%s - %s", u.Name, state(s))
	if !s.Since.IsZero() {
		fmt.Fprintf(w, " since %s; %s ago", s.Since.Local().Format("2006-01-02 15:04:05 MST"), time.Since(s.Since).Round(time.Second))
	}
	fmt.Fprintln(w)
	if len(s.Pids) > 0 {
		pids := make([]string, len(s.Pids))
		for i, p := range s.Pids {
			pids[i] = strconv.Itoa(p)
			if p == s.MainPID {
				pids[i] += " (main)"
			}
		}
		line("Pids", "%s", strings.Join(pids, ", "))
	}
	for i, so := range u.Sockets {
		label := ""
		if i == 0 {
			label = "Listen"
		}
		txt := fmt.Sprintf("%s %s (%s, fd %s)", so.Listen, so.Unit, so.Type, so.FDName)
		if so.QueueDepth != nil {
			txt += fmt.Sprintf(" queue %d/%d", *so.QueueDepth, so.Backlog)
		}
		if so.Closed {
			txt += " closed: connections refused until sockctl start or reset-failed"
		}
		line(label, "%s", txt)
		if so.QueueDepth != nil && so.Backlog > 0 && *so.QueueDepth*2 > so.Backlog {
			line("", "  warning: the app does not accept fast enough: %d of %d queued", *so.QueueDepth, so.Backlog)
		}
		if so.Replaced > 0 && so.ReplacedAt != nil {
			line("", "  socket-replaced %d×, last %s ago: %s", so.Replaced,
				time.Since(*so.ReplacedAt).Round(time.Second), so.ReplacedCause)
		}
	}
	if s.ControlGroup != "" {
		line("CGroup", "%s", s.ControlGroup)
		if len(s.CgroupPids) > 0 {
			pids := make([]string, len(s.CgroupPids))
			for i, p := range s.CgroupPids {
				pids[i] = strconv.Itoa(p)
			}
			line("", "%s", strings.Join(pids, ", "))
		}
	}
	if s.HeldBy != 0 {
		line("Held by", "pid %d, outside sockd (sockctl exec): no connection starts the service", s.HeldBy)
	}
	line("Generation", "%d, %d restarts, %d instances", s.Generation, s.Restarts, s.Instances)
	if len(s.InstancePhases) > 0 {
		line("Instances", "%s", strings.Join(s.InstancePhases, " "))
	}
	if s.Status != "" {
		line("Status", "%q", s.Status)
	}
	if s.Result != "" || s.LastExit != "" {
		txt := s.LastExit
		if s.Result != "" {
			txt = strings.TrimPrefix(txt+", result "+s.Result, ", ")
		}
		line("Last exit", "%s", txt)
	}
	if !s.NextStart.IsZero() {
		when := fmt.Sprintf("%s (in %s)", s.NextStart.Local().Format("2006-01-02 15:04:05 MST"),
			max(time.Until(s.NextStart), 0).Round(100*time.Millisecond))
		if s.SubState == "auto-restart" {
			line("Next start", "%s", when)
		} else {
			line("Next start", "%s on a connection: back-off after a failed start", when)
		}
	}
	if r := s.LastRestart; r != nil {
		txt := fmt.Sprintf("%s in %d ms", r.Outcome, r.Millis)
		if r.Cause != "" {
			txt += ": " + r.Cause
		}
		line("Last restart", "%s", txt)
	}
	for i, d := range u.LoadErrors {
		label := ""
		if i == 0 {
			label = "Load error"
		}
		line(label, "%s", diagText(d))
	}
	switch {
	case s.SubState == loadErrorState:
		fmt.Fprintln(w, "The unit's files did not load: it does not run. Fix them; sockd loads them at the next reload.")
		return &exitError{1}
	case len(u.LoadErrors) > 0:
		fmt.Fprintln(w, "The unit runs as loaded before its files had these errors; a reload after the fix clears them.")
	}
	return nil
}

// loadErrorState is the sub-state of a unit whose files never loaded.
const loadErrorState = "load-error"

// diagText is a diagnostic as "file:line: Option: message".
func diagText(d api.Diagnostic) string {
	if d.Text != "" {
		return d.Text
	}
	text := d.File
	if d.Line > 0 {
		text += ":" + strconv.Itoa(d.Line)
	}
	if d.Option != "" {
		text += ": " + d.Option
	}
	return text + ": " + d.Message
}

func (c *cli) start(ctx context.Context, cl *api.Client, o *options) error {
	return cl.Start(ctx, o.args[0])
}

func (c *cli) stop(ctx context.Context, cl *api.Client, o *options) error {
	return cl.Stop(ctx, o.args[0])
}

// resetFailed resets one failed unit, or every one; with --json it
// prints the units that were failed, else nothing, as systemctl.
func (c *cli) resetFailed(ctx context.Context, cl *api.Client, o *options) error {
	unit := ""
	if len(o.args) > 0 {
		unit = o.args[0]
	}
	units, err := cl.ResetFailed(ctx, unit)
	if err != nil {
		return err
	}
	if o.bool("json") {
		return c.printJSON(api.ResetFailedResult{Units: units})
	}
	return nil
}

func (c *cli) reloadApp(ctx context.Context, cl *api.Client, o *options) error {
	return cl.ReloadApp(ctx, o.args[0])
}

func (c *cli) restart(ctx context.Context, cl *api.Client, o *options) error {
	opts := api.RestartOptions{Wait: o.bool("wait"), StopFirst: o.bool("stop-first")}
	if !opts.Wait {
		_, err := cl.Restart(ctx, o.args[0], opts, nil)
		return err
	}
	p := &progress{w: c.stdout, live: c.terminal && !o.bool("json"), json: o.bool("json")}
	res, err := cl.Restart(ctx, o.args[0], opts, p.event)
	p.end()
	if err != nil {
		return err
	}
	if p.json {
		c.printJSON(struct {
			Result api.RestartResult `json:"result"`
		}{res})
	} else if res.OK {
		fmt.Fprintf(c.stdout, "done in %d ms\n", res.Millis)
	}
	if res.OK {
		return nil
	}
	unit := res.Unit
	if unit == "" {
		unit = o.args[0]
	}
	msg := fmt.Sprintf("restart %s: %s", unit, orDefault(res.Outcome, "failed"))
	if res.Cause != "" {
		msg += ": " + res.Cause
	}
	fmt.Fprintln(c.stderr, "sockctl: "+msg)
	if len(res.LogTail) > 0 {
		fmt.Fprintln(c.stderr, "last output:")
		for _, l := range res.LogTail {
			fmt.Fprintln(c.stderr, "  "+l)
		}
	}
	return &exitError{1}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// progress prints restart events as they come: line by line, or on a
// terminal with the waiting phases shown on a line the next one replaces,
// or as NDJSON.
type progress struct {
	w       io.Writer
	live    bool
	json    bool
	pending bool // a transient line is on screen, without newline
}

func (p *progress) event(e api.Event) {
	if p.json {
		b, _ := json.Marshal(e)
		p.w.Write(append(b, '\n'))
		return
	}
	var text string
	transient := false
	switch e.Phase {
	case api.PhaseQueued:
		text, transient = "queued behind "+e.Message, true
	case api.PhaseStartPre:
		text, transient = "running ExecStartPre=", true
	case api.PhaseNote:
		text = e.Message
	case api.PhaseSpawned:
		text = fmt.Sprintf("spawned pid %d", e.Pid)
	case api.PhaseWaiting:
		text, transient = "waiting for ready...", true
		if p.live {
			text = "waiting for ready…"
		}
	case api.PhaseReady:
		text = "ready"
		if e.Pid != 0 {
			text += fmt.Sprintf(" (pid %d)", e.Pid)
		}
	case api.PhaseDraining:
		text = fmt.Sprintf("draining pid %d", e.Pid)
	case api.PhaseStopped:
		text = fmt.Sprintf("pid %d stopped", e.Pid)
	case api.PhaseFailed:
		text = "failed"
	case api.PhaseDone:
		return // the result says it
	default:
		text = e.Phase
		if e.Pid != 0 {
			text += fmt.Sprintf(" pid %d", e.Pid)
		}
	}
	if e.Message != "" && e.Phase != api.PhaseNote {
		text += ": " + e.Message
	}
	p.clear()
	if p.live && transient {
		io.WriteString(p.w, text)
		p.pending = true
		return
	}
	io.WriteString(p.w, text+"\n")
}

// clear removes a transient line from the terminal.
func (p *progress) clear() {
	if p.pending {
		io.WriteString(p.w, "\r\x1b[K")
		p.pending = false
	}
}

// end is called when the stream ends.
func (p *progress) end() { p.clear() }

// daemonReexec asks sockd to re-execute itself and waits until the new
// image answers (the same pid, a later start). A refusal (a binary that
// fails its self-test, say) is an error: exit 1, the old sockd serving.
func (c *cli) daemonReexec(ctx context.Context, cl *api.Client, o *options) error {
	before, err := cl.Version(ctx)
	if err != nil {
		return err
	}
	res, err := cl.DaemonReexec(ctx)
	if err != nil {
		return err
	}
	// Until the exec, the old image may still answer: ask until the new
	// one does (a connection made meanwhile waits in the API socket).
	wait, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		v, err := cl.Version(wait)
		if err == nil && v.Pid == res.Pid && v.Started.After(before.Started) {
			if o.bool("json") {
				return c.printJSON(v)
			}
			fmt.Fprintf(c.stdout, "sockd re-executed: pid %d, version %s\n", v.Pid, v.Version)
			return nil
		}
		if wait.Err() != nil {
			return fmt.Errorf("sockd did not come back within 2 minutes of its re-exec: %v", err)
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-wait.Done():
		}
	}
}

func (c *cli) reload(ctx context.Context, cl *api.Client, o *options) error {
	res, err := cl.Reload(ctx)
	if err != nil {
		return err
	}
	if o.bool("json") {
		if err := c.printJSON(res); err != nil {
			return err
		}
	} else {
		for _, ch := range []struct {
			what  string
			units []string
		}{{"added", res.Added}, {"removed", res.Removed}, {"changed", res.Changed}} {
			for _, u := range ch.units {
				fmt.Fprintf(c.stdout, "%s: %s\n", ch.what, u)
			}
		}
		if len(res.Added)+len(res.Removed)+len(res.Changed) == 0 {
			fmt.Fprintln(c.stdout, "no changes")
		}
	}
	failed := false
	for _, d := range res.Diagnostics {
		text := diagText(d)
		if !o.bool("json") {
			fmt.Fprintf(c.stderr, "%s: %s\n", orDefault(d.Severity, "error"), text)
		}
		if d.Severity != "warning" {
			failed = true
		}
	}
	if failed {
		if !o.bool("json") {
			fmt.Fprintln(c.stderr, "sockctl: reload: unit files have errors")
		}
		return &exitError{1}
	}
	return nil
}

func (c *cli) logs(ctx context.Context, cl *api.Client, o *options) error {
	var q api.LogQuery
	if s, ok := o.flags["n"]; ok {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > api.MaxLogLines {
			return &usageError{fmt.Sprintf("-n: not an integer from 1 to %d: %q", api.MaxLogLines, s)}
		}
		q.N = v
	}
	if s, ok := o.flags["since"]; ok {
		t, err := parseSince(s, time.Now())
		if err != nil {
			return &usageError{err.Error()}
		}
		q.Since = t
	}
	if s, ok := o.flags["stream"]; ok {
		if s != api.StreamStdout && s != api.StreamStderr {
			return &usageError{fmt.Sprintf("--stream: stdout or stderr, not %q", s)}
		}
		q.Stream = s
	}
	if o.bool("f") || o.bool("follow") {
		err := cl.FollowLogs(ctx, o.args[0], q, func(l api.LogLine) {
			if o.bool("json") {
				c.printJSON(l)
			} else {
				c.printLogLine(l)
			}
		})
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return nil // interrupted, or --timeout: the end the user asked for
		}
		return err
	}
	lines, err := cl.Logs(ctx, o.args[0], q)
	if err != nil {
		return err
	}
	if o.bool("json") {
		if lines == nil {
			lines = []api.LogLine{}
		}
		return c.printJSON(lines)
	}
	for _, l := range lines {
		c.printLogLine(l)
	}
	return nil
}

// printLogLine prints one output line: local time, [pid], a stderr
// mark, the line.
func (c *cli) printLogLine(l api.LogLine) {
	who := strconv.Itoa(l.Pid)
	if l.Stream == api.StreamStderr {
		who += " stderr"
	}
	fmt.Fprintf(c.stdout, "%s [%s] %s\n", l.Time.Local().Format("2006-01-02 15:04:05.000"), who, l.Line)
}

// parseSince reads --since: an RFC 3339 time, a local "2006-01-02
// 15:04:05" (or without seconds, or a date alone: its midnight), or a
// duration before now ("10m", "-10m", "10m ago"), as journalctl --since
// reads most of them.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	d := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "ago"))
	d = strings.TrimPrefix(d, "-")
	if v, err := time.ParseDuration(d); err == nil && v >= 0 {
		return now.Add(-v), nil
	}
	return time.Time{}, fmt.Errorf("--since: not a time (RFC 3339, \"2006-01-02 15:04:05\") or a duration ago (10m): %q", s)
}
