package units

import (
	"sort"
	"strings"
)

// unitIgnored are the [Unit] options sockd accepts silently:
// documentation, and dependencies that socket activation already
// provides. The other [Unit] options systemd knows are warnings.
var unitIgnored = words(`Description Documentation Wants Requires Requisite BindsTo PartOf Upholds
	Before After DefaultDependencies SourcePath IgnoreOnIsolate AllowIsolate CollectMode`)

// systemdKnows reports whether systemd's unit file parser (see
// systemd_options.go) knows the option name in section, "Unit",
// "Install", "Service" or "Socket".
func systemdKnows(section, name string) bool {
	switch section {
	case "Unit":
		return systemdUnit[name] || systemdNewerUnit[name]
	case "Install":
		return systemdInstall[name]
	case "Service":
		return systemdService[name] || systemdExec[name] || systemdNewerExec[name]
	case "Socket":
		return systemdSocket[name] || systemdExec[name] || systemdNewerExec[name] || systemdNewerSocket[name]
	}
	return false
}

// isCondition reports whether name is a Condition*= or Assert*= option
// systemd knows.
func isCondition(name string) bool {
	return (strings.HasPrefix(name, "Condition") || strings.HasPrefix(name, "Assert")) && systemdKnows("Unit", name)
}

// legacyName returns what replaced the legacy option name in section,
// with ok set when name is one.
func legacyName(section, name string) (repl string, ok bool) {
	if repl, ok = legacyOptions[section+"."+name]; ok {
		return repl, true
	}
	if section == "Service" || section == "Socket" {
		repl, ok = legacyExecOptions[name]
	}
	return repl, ok
}

// knownNames returns the option names of section that systemd or sockd
// knows, for suggestions: systemd's and the handlers in implemented.
func knownNames[H any](section string, implemented map[string]H) map[string]bool {
	m := map[string]bool{}
	add := func(ws map[string]bool) {
		for k := range ws {
			m[k] = true
		}
	}
	switch section {
	case "Unit":
		add(systemdUnit)
		add(systemdNewerUnit)
	case "Install":
		add(systemdInstall)
	case "Service":
		add(systemdService)
		add(systemdExec)
		add(systemdNewerExec)
	case "Socket":
		add(systemdSocket)
		add(systemdExec)
		add(systemdNewerExec)
		add(systemdNewerSocket)
	}
	for k := range implemented {
		m[k] = true
	}
	return m
}

// notImplemented reports an option no handler of sockd took: a warning
// for a name systemd knows (naming the current name of a legacy one),
// else an unknown option (an error, with a suggestion from known).
func (b *builder) notImplemented(o rawOption, known map[string]bool) {
	if repl, ok := legacyName(o.Section, o.Name); ok {
		sec, name, moved := strings.Cut(repl, ".")
		switch {
		case repl == "":
			b.warnf(o, "obsolete option, ignored (systemd ignores it too)")
		case moved:
			b.warnf(o, "belongs in [%s] (as %s=); not supported by sockd, ignored", sec, name)
		default:
			b.warnf(o, "legacy name of %s=; not supported by sockd, ignored", repl)
		}
		return
	}
	if systemdKnows(o.Section, o.Name) {
		b.warnf(o, "not supported by sockd, ignored")
		return
	}
	b.unknown(o, known)
}

func words(s string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(s) {
		m[strings.TrimSuffix(w, "?")] = true
	}
	return m
}

// suggest returns the candidate closest to name by edit distance, or ""
// when none is close enough to be a likely typo.
func suggest(name string, candidates ...map[string]bool) string {
	best, bestD := "", 1<<30
	if len(name) > 64 {
		return ""
	}
	var all []string
	for _, c := range candidates {
		for k := range c {
			all = append(all, k)
		}
	}
	sort.Strings(all)
	lname := strings.ToLower(name)
	for _, k := range all {
		if diff := len(k) - len(name); diff > 4 || diff < -4 {
			continue
		}
		d := editDistance(lname, strings.ToLower(k))
		if d < bestD {
			best, bestD = k, d
		}
	}
	limit := len(name) / 3
	if limit < 1 {
		limit = 1
	}
	if limit > 4 {
		limit = 4
	}
	if bestD > limit {
		return ""
	}
	return best
}

// editDistance is the Damerau–Levenshtein (optimal string alignment)
// distance between a and b.
func editDistance(a, b string) int {
	if len(a) > 200 || len(b) > 200 {
		return 1 << 20
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
