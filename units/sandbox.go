package units

// The sandboxing options of systemd.exec(5) ("Sandboxing", "Security",
// "Capabilities", "System Call Filtering"), read into Service.Sandbox
// with systemd's merging rules (src/core/load-fragment.c, v252 to v257).
// Package sandbox applies them in the exec helper; the options not here
// (ProtectClock=, PrivateNetwork=, RestrictNamespaces=, …) stay on the
// "not supported by sockd, ignored" path of notImplemented.

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sockd/sockd/internal/sandbox"
)

// syscallFilterWarning is the warning of the System Call Filtering
// options sockd reads but does not enforce.
const syscallFilterWarning = "not enforced by sockd (no seccomp syscall filter; see docs/security.md)"

func init() {
	boolOpt := func(field func(*sandbox.Options) *bool) serviceHandler {
		return func(b *serviceBuild, o rawOption) error { return setBool(field(&b.s.Sandbox), o.Value) }
	}
	paths := func(field func(*sandbox.Options) *[]sandbox.Path) serviceHandler {
		return func(b *serviceBuild, o rawOption) error { return b.sandboxPaths(field(&b.s.Sandbox), o) }
	}
	legacyPaths := func(repl string, field func(*sandbox.Options) *[]sandbox.Path) serviceHandler {
		return func(b *serviceBuild, o rawOption) error {
			b.warnf(o, "deprecated; use %s=", repl)
			return b.sandboxPaths(field(&b.s.Sandbox), o)
		}
	}
	notEnforced := func(b *serviceBuild, o rawOption) error {
		b.warnf(o, syscallFilterWarning)
		return nil
	}
	rw := func(o *sandbox.Options) *[]sandbox.Path { return &o.ReadWritePaths }
	ro := func(o *sandbox.Options) *[]sandbox.Path { return &o.ReadOnlyPaths }
	inacc := func(o *sandbox.Options) *[]sandbox.Path { return &o.InaccessiblePaths }

	registerServiceOptions(map[string]serviceHandler{
		"NoNewPrivileges":        boolOpt(func(o *sandbox.Options) *bool { return &o.NoNewPrivileges }),
		"PrivateDevices":         boolOpt(func(o *sandbox.Options) *bool { return &o.PrivateDevices }),
		"ProtectKernelTunables":  boolOpt(func(o *sandbox.Options) *bool { return &o.ProtectKernelTunables }),
		"ProtectKernelModules":   boolOpt(func(o *sandbox.Options) *bool { return &o.ProtectKernelModules }),
		"MemoryDenyWriteExecute": boolOpt(func(o *sandbox.Options) *bool { return &o.MemoryDenyWriteExecute }),
		"PrivateTmp": func(b *serviceBuild, o rawOption) error {
			return b.boolOrWord(&b.s.Sandbox.PrivateTmp, o, "disconnected", map[string]string{
				"disconnected": "disconnected is run as yes by sockd (/tmp and /var/tmp are private directories on the host, not a fresh tmpfs)",
			})
		},
		"PrivateUsers": func(b *serviceBuild, o rawOption) error {
			return b.boolOrWord(&b.s.Sandbox.PrivateUsers, o, "self or identity", map[string]string{
				"self":     "",
				"identity": "identity is run as yes by sockd (only root and the service's user and group are mapped, not the first 65536 ids)",
			})
		},
		"ProtectControlGroups": func(b *serviceBuild, o rawOption) error {
			return b.boolOrWord(&b.s.Sandbox.ProtectControlGroups, o, "private or strict", map[string]string{
				"private": "private is run as yes by sockd (no cgroup namespace: /sys/fs/cgroup is read-only)",
				"strict":  "strict is run as yes by sockd (no cgroup namespace: /sys/fs/cgroup is read-only)",
			})
		},
		"ProtectSystem": func(b *serviceBuild, o rawOption) error {
			v, err := yesNoOr(o.Value, "full", "strict")
			if err != nil {
				return fmt.Errorf("invalid value %q (want yes, no, full or strict)", o.Value)
			}
			b.s.Sandbox.ProtectSystem = sandbox.ProtectSystem(v)
			return nil
		},
		"ProtectHome": func(b *serviceBuild, o rawOption) error {
			v, err := yesNoOr(o.Value, "read-only", "tmpfs")
			if err != nil {
				return fmt.Errorf("invalid value %q (want yes, no, read-only or tmpfs)", o.Value)
			}
			b.s.Sandbox.ProtectHome = sandbox.ProtectHome(v)
			return nil
		},
		"ReadWritePaths":          paths(rw),
		"ReadOnlyPaths":           paths(ro),
		"InaccessiblePaths":       paths(inacc),
		"ReadWriteDirectories":    legacyPaths("ReadWritePaths", rw),
		"ReadOnlyDirectories":     legacyPaths("ReadOnlyPaths", ro),
		"InaccessibleDirectories": legacyPaths("InaccessiblePaths", inacc),
		"TemporaryFileSystem":     func(b *serviceBuild, o rawOption) error { return b.tmpFS(o) },
		"CapabilityBoundingSet": func(b *serviceBuild, o rawOption) error {
			caps, invert, err := parseCapLine(o.Value)
			if err != nil {
				return err
			}
			cur := b.s.Sandbox.CapabilityBoundingSet
			fresh := cur == nil
			if fresh {
				cur = new(sandbox.CapSet)
				b.s.Sandbox.CapabilityBoundingSet = cur
			}
			*cur = mergeCaps(*cur, caps, invert, fresh)
			return nil
		},
		"AmbientCapabilities": func(b *serviceBuild, o rawOption) error {
			caps, invert, err := parseCapLine(o.Value)
			if err != nil {
				return err
			}
			cur := &b.s.Sandbox.AmbientCapabilities
			*cur = mergeCaps(*cur, caps, invert, *cur == 0)
			return nil
		},
		"SecureBits": func(b *serviceBuild, o rawOption) error {
			ws, err := splitWords(o.Value)
			if err != nil {
				return err
			}
			if len(ws) == 0 {
				b.s.Sandbox.SecureBits = 0
				return nil
			}
			var bits sandbox.SecureBits
			for _, w := range ws {
				bit, err := sandbox.ParseSecureBit(w)
				if err != nil {
					return err
				}
				bits |= bit
			}
			b.s.Sandbox.SecureBits |= bits
			return nil
		},
		"RestrictAddressFamilies": func(b *serviceBuild, o rawOption) error { return b.addressFamilies(o) },
		"SystemCallFilter":        notEnforced,
		"SystemCallArchitectures": notEnforced,
		"SystemCallErrorNumber":   notEnforced,
		"SystemCallLog":           notEnforced,
	})
}

// boolOrWord applies a boolean option that systemd 257 extended with
// words: each word of words is read as yes, with the warning it maps to
// ("" for none). An empty value resets the option to no. want lists the
// words for the error message.
func (b *serviceBuild) boolOrWord(dst *bool, o rawOption, want string, words map[string]string) error {
	if o.Value == "" {
		*dst = false
		return nil
	}
	if warning, ok := words[o.Value]; ok {
		if warning != "" {
			b.warnf(o, "%s", warning)
		}
		*dst = true
		return nil
	}
	yes, err := parseBool(o.Value)
	if err != nil {
		return fmt.Errorf("invalid value %q (want a boolean, %s)", o.Value, want)
	}
	*dst = yes
	return nil
}

// yesNoOr reads ProtectSystem= and ProtectHome=: a boolean ("yes" or ""
// for no) or one of words. An empty value is no, as in systemd.
func yesNoOr(v string, words ...string) (string, error) {
	if v == "" || slices.Contains(words, v) {
		return v, nil
	}
	yes, err := parseBool(v)
	if err != nil {
		return "", err
	}
	if yes {
		return "yes", nil
	}
	return "", nil
}

// sandboxPaths applies ReadWritePaths=, ReadOnlyPaths= or
// InaccessiblePaths=: whitespace-separated absolute paths, each with its
// specifiers expanded and then its prefixes read, appended; an empty
// value resets the list. The "-" prefix makes a path Optional; the "+"
// prefix (relative to RootDirectory=, which sockd does not have) is
// accepted and leaves the path as it is. systemd reads the two only in
// the order "-+"; sockd takes "+-" too.
func (b *serviceBuild) sandboxPaths(dst *[]sandbox.Path, o rawOption) error {
	ws, err := splitWords(o.Value)
	if err != nil {
		return err
	}
	if len(ws) == 0 {
		*dst = nil
		return nil
	}
	for _, w := range ws {
		v, ok := b.expand(o, w)
		if !ok {
			return nil
		}
		p := sandbox.Path{}
		plus := false
	prefixes:
		for ; v != ""; v = v[1:] {
			switch {
			case v[0] == '-' && !p.Optional:
				p.Optional = true
			case v[0] == '+' && !plus:
				plus = true
			default:
				break prefixes
			}
		}
		if p.Path, err = b.sandboxPath(v); err != nil {
			return err
		}
		*dst = append(*dst, p)
	}
	return nil
}

// tmpFS applies TemporaryFileSystem=: whitespace-separated PATH[:OPTIONS]
// entries, PATH absolute with its specifiers expanded, OPTIONS (mount
// options) as they are; an empty value resets the list.
func (b *serviceBuild) tmpFS(o rawOption) error {
	ws, err := splitWords(o.Value)
	if err != nil {
		return err
	}
	if len(ws) == 0 {
		b.s.Sandbox.TemporaryFileSystem = nil
		return nil
	}
	for _, w := range ws {
		path, opts, _ := strings.Cut(w, ":")
		if strings.ContainsAny(opts, whitespace) {
			return fmt.Errorf("%q: mount options with whitespace", w)
		}
		v, ok := b.expand(o, path)
		if !ok {
			return nil
		}
		p, err := b.sandboxPath(v)
		if err != nil {
			return err
		}
		b.s.Sandbox.TemporaryFileSystem = append(b.s.Sandbox.TemporaryFileSystem, sandbox.TmpFS{Path: p, Options: opts})
	}
	return nil
}

// sandboxPath checks a path of the sandboxing options, specifiers
// expanded: absolute, without ".." components (systemd refuses them
// too), and returns it cleaned. A template keeps a path that uses the
// instance as it is, for its instances to check, unless it is relative
// whatever the instance: only "/", %f and %I (of an instance starting
// with "-") begin an absolute path.
func (b *serviceBuild) sandboxPath(v string) (string, error) {
	if b.s.Template && usesInstance(v) && (strings.HasPrefix(v, "%f") || strings.HasPrefix(v, "%I") || strings.HasPrefix(v, "/")) {
		return v, nil
	}
	if !filepath.IsAbs(v) {
		return "", fmt.Errorf("%q is not an absolute path", v)
	}
	if slices.Contains(strings.Split(v, "/"), "..") {
		return "", fmt.Errorf("%q: \"..\" is not allowed", v)
	}
	return filepath.Clean(v), nil
}

// parseCapLine reads a line of CapabilityBoundingSet= or
// AmbientCapabilities=: capability names, the whole list inverted by a
// leading "~".
func parseCapLine(v string) (caps sandbox.CapSet, invert bool, err error) {
	if rest, ok := strings.CutPrefix(v, "~"); ok {
		v, invert = rest, true
	}
	ws, err := splitWords(v)
	if err != nil {
		return 0, false, err
	}
	for _, w := range ws {
		n, err := sandbox.ParseCapability(w)
		if err != nil {
			return 0, false, err
		}
		caps |= 1 << n
	}
	return caps, invert, nil
}

// mergeCaps applies one line, caps and invert, to the set cur as
// systemd's config_parse_capability_set does: the first line (fresh), an
// empty one ("" is no capability, "~" every one) replaces the set with
// caps, or with every capability but caps for "~"; any other line adds
// caps to the set, or with "~" removes them.
func mergeCaps(cur, caps sandbox.CapSet, invert, fresh bool) sandbox.CapSet {
	switch {
	case (fresh || caps == 0) && invert:
		return sandbox.AllCaps &^ caps
	case fresh || caps == 0:
		return caps
	case invert:
		return cur &^ caps
	}
	return cur | caps
}

// addressFamilies applies RestrictAddressFamilies= as systemd's
// config_parse_address_families does: an empty value resets it (every
// family allowed); "none" allows none, and leaves the mode to the next
// line; a list, or with "~" a list of families to deny, sets the mode
// when none is set yet, and later lists add to the families of that
// mode, or remove from them when of the other mode.
func (b *serviceBuild) addressFamilies(o rawOption) error {
	if o.Value == "" {
		b.s.Sandbox.RestrictAddressFamilies = nil
		return nil
	}
	if o.Value == "none" {
		// Families nil (not empty) marks "none": no mode yet.
		b.s.Sandbox.RestrictAddressFamilies = &sandbox.AddressFamilies{}
		return nil
	}
	v, deny := strings.CutPrefix(o.Value, "~")
	ws, err := splitWords(v)
	if err != nil {
		return err
	}
	fams := make([]int, 0, len(ws))
	for _, w := range ws {
		af, err := sandbox.ParseAddressFamily(w)
		if err != nil {
			return err
		}
		fams = append(fams, af)
	}
	cur := b.s.Sandbox.RestrictAddressFamilies
	if cur == nil || cur.Families == nil {
		cur = &sandbox.AddressFamilies{Deny: deny, Families: []int{}}
		b.s.Sandbox.RestrictAddressFamilies = cur
	}
	for _, af := range fams {
		i, found := slices.BinarySearch(cur.Families, af)
		switch {
		case deny == cur.Deny && !found:
			cur.Families = slices.Insert(cur.Families, i, af)
		case deny != cur.Deny && found:
			cur.Families = slices.Delete(cur.Families, i, i+1)
		}
	}
	return nil
}
