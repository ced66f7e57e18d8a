package main

import (
	"bufio"
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/sockd/sockd/internal/mangen"
)

// hidden are the verbs that no help lists: for make man and for the
// shell completions (contrib/completion), which so follow the verb
// table and the flags without a list of their own.
var hidden = map[string]func(c *cli, ctx context.Context, o *options) error{
	"__man":      (*cli).man,
	"__complete": (*cli).complete,
}

// verbHelp is every verb with its synopsis and text: those of usage's
// "Verbs:" list in its order, then any verb of the table usage does not
// list, with its arguments.
func verbHelp() []mangen.Item {
	var items []mangen.Item
	seen := map[string]bool{}
	for _, b := range mangen.ParseUsage(usage).Blocks {
		if b.Heading != "Verbs" {
			continue
		}
		for _, it := range b.Items {
			name, _, _ := strings.Cut(it.Term, " ")
			seen[name] = true
			items = append(items, it)
		}
	}
	var rest []string
	for name := range verbs {
		if !seen[name] {
			rest = append(rest, name)
		}
	}
	sort.Strings(rest)
	for _, name := range rest {
		v := verbs[name]
		term := strings.Join(append([]string{name}, v.args...), " ")
		if v.opt != "" {
			term += " [" + v.opt + "]"
		}
		if v.command {
			term += " -- CMD [ARGS]"
		}
		items = append(items, mangen.Item{Term: term})
	}
	return items
}

// flagName is how a flag is written: -n, --api.
func flagName(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// mentions reports whether text names the flag (-n: "[-n N]", not
// "re-new").
func mentions(text, flag string) bool {
	return regexp.MustCompile(`(^|[\s\[])` + regexp.QuoteMeta(flag) + `([\s\]=]|$)`).MatchString(text)
}

// man prints sockctl(1): usage's synopsis, verbs, flags and exit codes,
// and the verbs and flags of the tables that usage does not list.
func (c *cli) man(ctx context.Context, o *options) error {
	u := mangen.ParseUsage(usage)
	out := bufio.NewWriter(c.stdout)
	p := mangen.NewPage(out, "sockctl", "1", mangen.Date(), "sockd", "User Commands")
	p.Name("sockctl", "control a running sockd")
	p.Synopsis(u.Synopsis)
	p.Section("DESCRIPTION")
	p.Para(mangen.Text("sockctl lists, starts, stops, restarts and follows the units of a running sockd(8) through its control API socket, and asks sockd to reload its unit directory or to re-execute itself."))
	var opts []mangen.Item
	var exit []string
	for _, b := range u.Blocks {
		switch {
		case strings.HasPrefix(b.Para, "Exit codes:"):
			exit = append(exit, strings.TrimSpace(strings.TrimPrefix(b.Para, "Exit codes:")))
		case b.Para != "":
			p.Para(mangen.Text(b.Para))
		case b.Heading == "Verbs":
		case len(b.Items) > 0 && strings.HasPrefix(b.Items[0].Term, "-"):
			opts = append(opts, b.Items...)
		default:
			for _, it := range b.Items {
				p.Tagged(mangen.Bold(mangen.Literally(it.Term)), mangen.Text(it.Text))
			}
		}
	}
	p.Section("COMMANDS")
	for _, it := range verbHelp() {
		p.Tagged(mangen.Bold(mangen.Literally(it.Term)), mangen.Text(it.Text))
	}
	p.Section("OPTIONS")
	page := usage // the flags it mentions are in the page already
	for _, it := range opts {
		p.Tagged(mangen.Bold(mangen.Literally(it.Term)), mangen.Text(it.Text))
	}
	var names []string
	for name := range flagSpecs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s := flagSpecs[name]
		if name == "h" || mentions(page, flagName(name)) {
			continue
		}
		text := ""
		switch {
		case name == "help":
			text = "show this help (-h too, and the help verb)"
		case s.verb != "":
			text = "for " + s.verb
		}
		term := flagName(name)
		if s.value {
			term += " VALUE"
		}
		p.Tagged(mangen.Bold(mangen.Literally(term)), mangen.Text(text))
	}
	if len(exit) > 0 {
		p.Section("EXIT STATUS")
		for _, e := range exit {
			p.Para(mangen.Text(e))
		}
	}
	p.Section("ENVIRONMENT")
	p.Tagged(mangen.Bold("SOCKD_API"), mangen.Text("The API socket when --api is not given."))
	p.Section("SEE ALSO")
	p.Para(mangen.Text("sockd(8), sockd.units(5)"))
	if err := p.Err(); err != nil {
		return err
	}
	return out.Flush()
}

// complete prints what a shell completes, one per line:
//
//	__complete verbs          VERB:TEXT, the verbs with their help's first words
//	__complete flags [VERB]   the flags, the global ones and VERB's
//	__complete values         the flags that take a value (--api PATH)
//	__complete unit-verbs     the verbs whose first argument is a UNIT
//	__complete units [failed] the units of the sockd at --api (the failed ones)
//
// Unit names are printed without ".service"; the wait for sockd is
// bounded, since a shell waits on it.
func (c *cli) complete(ctx context.Context, o *options) error {
	what := ""
	if len(o.args) > 0 {
		what = o.args[0]
	}
	switch what {
	case "verbs":
		for _, it := range verbHelp() {
			name, _, _ := strings.Cut(it.Term, " ")
			text, _, _ := strings.Cut(it.Text, ";")
			text, _, _ = strings.Cut(text, ". ")
			text = strings.TrimSuffix(text, ".")
			if i := strings.LastIndex(text[:min(len(text), 60)], " "); len(text) > 60 && i > 0 {
				text = text[:i] + "..."
			}
			fmt.Fprintf(c.stdout, "%s:%s\n", name, text)
		}
	case "flags":
		verb := ""
		if len(o.args) > 1 {
			verb = o.args[1]
		}
		var names []string
		for name, s := range flagSpecs {
			if name != "h" && (s.verb == "" || s.verb == verb) {
				names = append(names, flagName(name))
			}
		}
		sort.Strings(names)
		fmt.Fprintln(c.stdout, strings.Join(names, "\n"))
	case "values":
		var names []string
		for name, s := range flagSpecs {
			if s.value {
				names = append(names, flagName(name))
			}
		}
		sort.Strings(names)
		fmt.Fprintln(c.stdout, strings.Join(names, "\n"))
	case "unit-verbs":
		var names []string
		for name, v := range verbs {
			if len(v.args) > 0 && v.args[0] == "UNIT" || len(v.args) == 0 && v.opt == "UNIT" {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		fmt.Fprintln(c.stdout, strings.Join(names, "\n"))
	case "units":
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		units, err := c.client(o).List(ctx)
		if err != nil {
			return err
		}
		failed := len(o.args) > 1 && o.args[1] == "failed"
		for _, u := range units {
			if !failed || u.Service.State == "failed" {
				fmt.Fprintln(c.stdout, strings.TrimSuffix(u.Name, ".service"))
			}
		}
	default:
		return &usageError{"__complete: want verbs, flags [VERB], values, unit-verbs or units [failed]"}
	}
	return nil
}
