package units

// RuntimeDirectory=, StateDirectory=, CacheDirectory=, LogsDirectory=,
// ConfigurationDirectory=, their *Mode= options,
// RuntimeDirectoryPreserve= and DynamicUser= (systemd.exec(5)).

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strings"
)

// ExecDirs are the directories sockd makes for a service before its
// first command runs (systemd.exec(5), "RuntimeDirectory="). The parser
// sets every Mode to 0755 and RuntimePreserve to PreserveNo; a Service
// built by hand must set the modes of the kinds it uses.
type ExecDirs struct {
	Runtime       ExecDir // below /run
	State         ExecDir // below /var/lib
	Cache         ExecDir // below /var/cache
	Logs          ExecDir // below /var/log
	Configuration ExecDir // below /etc
	// RuntimePreserve is RuntimeDirectoryPreserve=: whether the
	// runtime directories outlive a stop. The zero value "" is treated
	// as PreserveNo.
	RuntimePreserve RuntimePreserve
}

// ExecDir is one kind of ExecDirs: the paths of one option and the mode
// of its *Mode= option.
type ExecDir struct {
	// Paths are relative, clean, without "..", "." or ":", without
	// duplicates, in the order of the unit file.
	Paths []string
	Mode  os.FileMode
}

// Empty reports whether the service asks for no directory at all.
func (d ExecDirs) Empty() bool {
	return len(d.Runtime.Paths)+len(d.State.Paths)+len(d.Cache.Paths)+len(d.Logs.Paths)+len(d.Configuration.Paths) == 0
}

// RuntimePreserve is RuntimeDirectoryPreserve=.
type RuntimePreserve string

// The RuntimeDirectoryPreserve= values of systemd.exec(5).
const (
	PreserveNo      RuntimePreserve = "no"      // removed whenever the service stops, a restart included
	PreserveYes     RuntimePreserve = "yes"     // never removed by sockd
	PreserveRestart RuntimePreserve = "restart" // kept across a restart, removed by a stop
)

// defaultExecDirs is what the parser starts from.
var defaultExecDirs = ExecDirs{
	Runtime: ExecDir{Mode: 0o755}, State: ExecDir{Mode: 0o755}, Cache: ExecDir{Mode: 0o755},
	Logs: ExecDir{Mode: 0o755}, Configuration: ExecDir{Mode: 0o755}, RuntimePreserve: PreserveNo,
}

func init() {
	dirs := map[string]func(*Service) *ExecDir{
		"Runtime":       func(s *Service) *ExecDir { return &s.ExecDirs.Runtime },
		"State":         func(s *Service) *ExecDir { return &s.ExecDirs.State },
		"Cache":         func(s *Service) *ExecDir { return &s.ExecDirs.Cache },
		"Logs":          func(s *Service) *ExecDir { return &s.ExecDirs.Logs },
		"Configuration": func(s *Service) *ExecDir { return &s.ExecDirs.Configuration },
	}
	hs := map[string]serviceHandler{
		"RuntimeDirectoryPreserve": func(b *serviceBuild, o rawOption) error {
			if o.Value == "restart" {
				b.s.ExecDirs.RuntimePreserve = PreserveRestart
				return nil
			}
			yes, err := parseBool(o.Value)
			if err != nil {
				return fmt.Errorf("invalid value %q (want yes, no or restart)", o.Value)
			}
			b.s.ExecDirs.RuntimePreserve = PreserveNo
			if yes {
				b.s.ExecDirs.RuntimePreserve = PreserveYes
			}
			return nil
		},
		"DynamicUser": func(b *serviceBuild, o rawOption) error { return setBool(&b.s.DynamicUser, o.Value) },
	}
	for kind, dir := range dirs {
		hs[kind+"Directory"] = func(b *serviceBuild, o rawOption) error { return b.execDir(dir(b.s), o) }
		hs[kind+"DirectoryMode"] = func(b *serviceBuild, o rawOption) error {
			m, err := parseMode(o.Value, 0o7777)
			if err == nil {
				dir(b.s).Mode = fileMode(m)
			}
			return err
		}
	}
	registerServiceOptions(hs)
}

// execDir applies one *Directory= option: whitespace-separated relative
// paths, each with its specifiers expanded, appended; an empty value
// resets the list.
func (b *serviceBuild) execDir(d *ExecDir, o rawOption) error {
	ws, err := splitWords(o.Value)
	if err != nil {
		return err
	}
	if len(ws) == 0 {
		d.Paths = nil
		return nil
	}
	for _, w := range ws {
		v, ok := b.expand(o, w)
		if !ok {
			return nil
		}
		p, err := execDirPath(v)
		if err != nil {
			return err
		}
		if !slices.Contains(d.Paths, p) {
			d.Paths = append(d.Paths, p)
		}
	}
	return nil
}

// execDirPath checks one path of a *Directory= option as systemd does
// (relative, no ".." component) and returns it without "." components,
// repeated or trailing slashes. The DIR:LINK form, which makes a
// symlink, is not supported.
func execDirPath(v string) (string, error) {
	if strings.HasPrefix(v, "/") {
		return "", fmt.Errorf("%q is an absolute path (want a path relative to the directory's root)", v)
	}
	if strings.ContainsRune(v, ':') {
		return "", fmt.Errorf("%q: DIR:LINK symlinks are not supported by sockd", v)
	}
	if len(v) >= 4096 || strings.ContainsRune(v, 0) {
		return "", fmt.Errorf("invalid path %q", v)
	}
	var parts []string
	for _, c := range strings.Split(v, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("%q: \"..\" is not allowed", v)
		}
		if len(c) > 255 {
			return "", fmt.Errorf("invalid path %q: a component is longer than 255 bytes", v)
		}
		parts = append(parts, c)
	}
	if len(parts) == 0 {
		return "", fmt.Errorf("empty path %q", v)
	}
	return strings.Join(parts, "/"), nil
}

// finishExecDirs applies what DynamicUser=yes implies once every option
// is read: as systemd does, without User= the user is named after the
// unit (DynamicUserName), and without Group= the group is the user's
// own.
func (b *serviceBuild) finishExecDirs() {
	s := b.s
	if !s.DynamicUser {
		return
	}
	if s.User == "" {
		s.User = DynamicUserName(b.spec.name.Prefix)
	}
	if s.Group == "" {
		s.Group = s.User
	}
}

// DynamicUserName is the name of a DynamicUser=yes service's user when
// it has no User=: the unit's prefix (the name without "@instance" and
// the type suffix) if that is a valid user name, else "_du" and 16 hex
// digits of a hash of the prefix. Every instance of a template shares
// it, as in systemd. (systemd hashes with SipHash; sockd's hash
// differs, so a hashed name differs from systemd's.)
func DynamicUserName(prefix string) string {
	if strictUserName(prefix) {
		return prefix
	}
	sum := sha256.Sum256([]byte(prefix))
	return fmt.Sprintf("_du%016x", binary.BigEndian.Uint64(sum[:8]))
}

// strictUserName reports whether s is a user name by systemd's strict
// rule: a letter or "_", then letters, digits, "_" or "-", at most 31
// bytes.
func strictUserName(s string) bool {
	if s == "" || len(s) > 31 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c == '-' || c >= '0' && c <= '9'):
		default:
			return false
		}
	}
	return true
}
