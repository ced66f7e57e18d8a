package main

import (
	"bufio"
	"flag"
	"io"
	"os"
	"strings"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/internal/mangen"
)

// manVerb is the hidden first argument that prints sockd(8) instead of
// running (make man). The page is made from the flag set run defines
// and from usage, so that a flag added there is in the page.
const manVerb = "__man"

// manEnv clears the environment that flags take their defaults from
// (SOCKD_API and the like), so that the page shows sockd's own defaults,
// not the ones of the shell that ran make.
func manEnv() {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "SOCKD_") {
			os.Unsetenv(k)
		}
	}
}

// subcommands are what sockd's other forms in the synopsis do.
var subcommands = []mangen.Item{
	{Term: "verify [--allow-untrusted-units] DIR|FILE...", Text: "Check unit files without running anything: print every problem as file:line: message (warnings as file:line: warning: ...), and exit 1 if any is an error, else 0. A file's linked units in the same directory (a socket's service, a service's Sockets=) are checked too. --allow-untrusted-units as for sockd. See sockd.units(5)."},
	{Term: "self-test", Text: "Print sockd's version and the version of the state it hands over at a re-exec, and exit. A re-exec (SIGUSR2, sockctl daemon-reexec) runs it on the new binary first."},
}

// writeManPage writes sockd(8): the synopsis and text of usage, the
// flags of fs.
func writeManPage(w io.Writer, fs *flag.FlagSet) error {
	u := mangen.ParseUsage(usage)
	out := bufio.NewWriter(w)
	p := mangen.NewPage(out, "sockd", "8", mangen.Date(), "sockd "+version, "System Administration")
	p.Name("sockd", "socket-activation supervisor")
	p.Synopsis(u.Synopsis)
	p.Section("DESCRIPTION")
	var signals []string
	for _, b := range u.Blocks {
		switch {
		case strings.HasPrefix(b.Para, "Signals:"):
			signals = append(signals, strings.TrimSpace(strings.TrimPrefix(b.Para, "Signals:")))
		case b.Para != "":
			p.Para(mangen.Text(b.Para))
		default:
			for _, it := range b.Items {
				p.Tagged(mangen.Bold(mangen.Literally(it.Term)), mangen.Text(it.Text))
			}
		}
	}
	p.Para(mangen.Text("Unit files are systemd's: NAME.socket declares listening sockets, NAME.service the program that receives them (sockd.units(5)). sockd runs as root, under systemd as sockd.service (Type=notify), and is controlled with sockctl(1)."))
	p.Section("OPTIONS")
	p.Options(mangen.FlagOptions(fs, u.Synopsis))
	p.Section("COMMANDS")
	for _, c := range subcommands {
		p.Tagged(mangen.Bold(mangen.Literally(c.Term)), mangen.Text(c.Text))
	}
	if len(signals) > 0 {
		p.Section("SIGNALS")
		for _, s := range signals {
			p.Para(mangen.Text(s))
		}
	}
	p.Section("ENVIRONMENT")
	for _, e := range []mangen.Item{
		{Term: "SOCKD_UNITS", Text: "The default of --units."},
		{Term: "SOCKD_API", Text: "The default of --api."},
		{Term: "SOCKD_CGROUP", Text: "The default of --cgroup."},
		{Term: "SOCKD_CHILD_NOFILE", Text: "Set by sockd itself to the RLIMIT_NOFILE it was started with (soft:hard), which its children get; a re-executed sockd reads it, having started with the raised limit."},
		{Term: "NOTIFY_SOCKET, LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES", Text: "Under systemd: sockd says READY=1 and keeps its sockets in systemd's fd store (FileDescriptorStoreMax=), and takes them back when systemd starts it again."},
	} {
		p.Tagged(mangen.Bold(mangen.Literally(e.Term)), mangen.Text(e.Text))
	}
	p.Section("FILES")
	p.Tagged(mangen.Bold(mangen.Literally("/etc/sockd/units")), mangen.Text("The unit directory (--units)."))
	p.Tagged(mangen.Bold(mangen.Literally(api.DefaultPath)), mangen.Text("The control API socket (--api)."))
	p.Section("EXIT STATUS")
	p.Para(mangen.Text("0 after a clean stop; 1 when sockd could not start (a unit directory it cannot read, an API socket it cannot bind), when its API server failed, or when a unit did not stop; 2 for a wrong command line."))
	p.Section("SEE ALSO")
	p.Para(mangen.Text("sockctl(1), sockd.units(5), systemd.socket(5), systemd.service(5), sd_notify(3)"))
	if err := p.Err(); err != nil {
		return err
	}
	return out.Flush()
}
