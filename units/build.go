package units

import (
	"fmt"
	"strings"
	"time"
)

// builder collects the diagnostics of one unit while its options are
// applied.
type builder struct {
	unit  string
	spec  *specCtx
	diags Diagnostics
	// desc is the Description= of the unit.
	desc string
	// startLimit* are [Unit] StartLimitIntervalSec=/StartLimitBurst=.
	startLimitInterval    *time.Duration
	startLimitBurst       *int
	startLimitIntervalOpt rawOption
	// successActionOpt is a [Unit] SuccessAction= other than none: with
	// it, a service needs no command (systemd's service_verify).
	successActionOpt *rawOption
	// unknowns counts unknown options, to bound the cost of suggestions.
	unknowns int
	// conds are the Condition*=/Assert*= lines sockd checks.
	conds []Condition
}

func (b *builder) add(o rawOption, sev Severity, format string, args ...any) {
	b.diags = append(b.diags, Diagnostic{File: o.File, Line: o.Line, Option: o.Name, Unit: b.unit, Severity: sev, Msg: fmt.Sprintf(format, args...)})
}

func (b *builder) errf(o rawOption, format string, args ...any) {
	b.add(o, Error, format, args...)
}

func (b *builder) warnf(o rawOption, format string, args ...any) {
	b.add(o, Warning, format, args...)
}

// expand expands the specifiers of o's value, reporting an error.
func (b *builder) expand(o rawOption, s string) (string, bool) {
	v, err := b.spec.expand(s)
	if err != nil {
		b.errf(o, "%v", err)
		return "", false
	}
	return v, true
}

// unknown reports an option of no known kind, with a suggestion.
func (b *builder) unknown(o rawOption, candidates ...map[string]bool) {
	// Suggestions cost an edit distance per known option: offer them for
	// the first few unknown options of a unit only.
	b.unknowns++
	if b.unknowns > 20 {
		b.errf(o, "unknown option")
		return
	}
	if s := suggest(o.Name, candidates...); s != "" {
		b.errf(o, "unknown option; did you mean %s?", s)
		return
	}
	b.errf(o, "unknown option")
}

// sectionOK checks a section name for a unit of type kind ("socket" or
// "service") and reports it once when it is not valid there.
func (b *builder) sectionOK(o rawOption, kind string) bool {
	switch {
	case o.Section == "Unit", o.Section == "Install", strings.HasPrefix(o.Section, "X-"):
		return true
	case strings.EqualFold(o.Section, kind):
		if o.Section != strings.ToUpper(kind[:1])+kind[1:] {
			if o.Name == "" {
				b.errf(o, "unknown section [%s]; did you mean [%s]?", o.Section, strings.ToUpper(kind[:1])+kind[1:])
			}
			return false
		}
		return true
	}
	if o.Name == "" {
		switch o.Section {
		case "Socket", "Service", "Timer", "Path", "Mount", "Automount", "Swap", "Slice", "Scope":
			b.errf(o, "section [%s] is not valid in a .%s unit", o.Section, kind)
		default:
			if s := suggest(o.Section, map[string]bool{"Unit": true, "Install": true, strings.ToUpper(kind[:1]) + kind[1:]: true}); s != "" {
				b.errf(o, "unknown section [%s]; did you mean [%s]?", o.Section, s)
			} else {
				b.errf(o, "unknown section [%s]", o.Section)
			}
		}
	}
	return false
}

// unitOption applies one option of [Unit] or [Install].
func (b *builder) unitOption(o rawOption, kind string) {
	if o.Section == "Install" {
		if !systemdInstall[o.Name] {
			b.unknown(o, systemdInstall)
		}
		return
	}
	name := o.Name
	if repl, ok := legacyName("Unit", name); ok && (unitIgnored[repl] || kind == "service" && repl == "StartLimitIntervalSec") {
		b.warnf(o, "legacy name of %s=, read as %s=", repl, repl)
		name = repl
	}
	switch {
	case name == "Description":
		b.desc = o.Value
	case kind == "service" && name == "StartLimitIntervalSec":
		d, err := parseTimespan(o.Value, time.Second)
		if err != nil {
			b.errf(o, "%v", err)
			return
		}
		b.startLimitInterval, b.startLimitIntervalOpt = &d, o
	case kind == "service" && name == "StartLimitBurst":
		n, err := parseUint(o.Value, 1<<31-1)
		if err != nil {
			b.errf(o, "%v", err)
			return
		}
		v := int(n)
		b.startLimitBurst = &v
	case name == "After" || name == "Before" || name == "Wants" || name == "Requires" ||
		name == "BindsTo" || name == "PartOf" || name == "Requisite" || name == "Upholds":
		// Unit names, split at whitespace without unquoting, as systemd
		// reads them (EXTRACT_RETAIN_ESCAPE).
		for _, w := range strings.FieldsFunc(o.Value, func(r rune) bool { return strings.ContainsRune(whitespace, r) }) {
			if strings.HasSuffix(w, ".service") {
				b.warnf(o, "dependency on %s ignored: sockd does not order or pull in other services", w)
			}
		}
	case unitIgnored[name]:
	case kind == "service" && isCondition(name) && b.condition(o, &b.conds):
	default:
		if name == "SuccessAction" && o.Value != "" && o.Value != "none" {
			b.successActionOpt = &o
		}
		b.notImplemented(o, knownNames[bool]("Unit", nil))
	}
}
