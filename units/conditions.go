package units

// [Unit] Condition*= and Assert*= that sockd checks before it starts a
// service (systemd.unit(5)). The others are accepted with a warning.

import "strings"

// Condition is one Condition*= or Assert*= line of a service.
type Condition struct {
	// Kind is the name without its prefix: "PathExists", "User", …
	Kind string
	// Assert is set for Assert*=: a failure fails the start instead of
	// skipping it.
	Assert bool
	// Trigger is the "|" prefix: of the trigger conditions, one passing
	// is enough.
	Trigger bool
	// Negate is the "!" prefix.
	Negate bool
	// Value is the argument, with the prefixes removed.
	Value string
	File  string
	Line  int
}

// Name is the option as written: "ConditionPathExists", "AssertUser".
func (c Condition) Name() string {
	if c.Assert {
		return "Assert" + c.Kind
	}
	return "Condition" + c.Kind
}

// checkedConditions are the kinds sockd evaluates.
var checkedConditions = words(`PathExists PathExistsGlob PathIsDirectory PathIsSymbolicLink
	PathIsReadWrite PathIsMountPoint FileNotEmpty DirectoryNotEmpty FileIsExecutable User Group
	Host Virtualization KernelCommandLine Environment ACPower`)

// condition parses a Condition*=/Assert*= line sockd checks; ok is false
// for the kinds it only warns about. An empty value resets the list of
// that option, as in systemd.
func (b *builder) condition(o rawOption, dst *[]Condition) (handled bool) {
	kind, isAssert := strings.CutPrefix(o.Name, "Assert")
	if !isAssert {
		kind = strings.TrimPrefix(o.Name, "Condition")
	}
	if !checkedConditions[kind] {
		return false
	}
	if o.Value == "" {
		kept := (*dst)[:0]
		for _, c := range *dst {
			if c.Kind != kind || c.Assert != isAssert {
				kept = append(kept, c)
			}
		}
		*dst = kept
		return true
	}
	v, ok := b.expand(o, o.Value)
	if !ok {
		return true
	}
	c := Condition{Kind: kind, Assert: isAssert, File: o.File, Line: o.Line}
	if rest, ok := strings.CutPrefix(v, "|"); ok {
		c.Trigger, v = true, strings.TrimLeft(rest, " ")
	}
	if rest, ok := strings.CutPrefix(v, "!"); ok {
		c.Negate, v = true, strings.TrimLeft(rest, " ")
	}
	if strings.HasPrefix(kind, "Path") || strings.HasPrefix(kind, "File") || strings.HasPrefix(kind, "Directory") {
		if !strings.HasPrefix(v, "/") {
			b.errf(o, "%q is not an absolute path", v)
			return true
		}
	}
	c.Value = v
	*dst = append(*dst, c)
	return true
}
