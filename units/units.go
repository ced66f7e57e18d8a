// Package units reads systemd-style .socket and .service unit files
// (systemd.unit(5), systemd.socket(5), systemd.service(5)) into plain,
// validated values. It knows nothing of processes or sockets: it only
// parses, merges drop-ins, expands specifiers and reports problems with
// file, line and option.
package units

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Severity tells whether a Diagnostic keeps its unit out of the Set.
type Severity int

const (
	// Warning: the unit loads; something in it is ignored or differs from systemd.
	Warning Severity = iota
	// Error: the unit is left out of the Set.
	Error
)

// Diagnostic is one problem found in a unit file.
type Diagnostic struct {
	File     string // path of the file holding the problem
	Line     int    // 1-based; a problem of the whole unit is on line 1 or on the line of the option that caused it
	Option   string // the option name, "" when not about one option
	Unit     string // the unit the problem belongs to, e.g. "app.socket"
	Severity Severity
	Msg      string
}

// Error formats the diagnostic as "file:line: Option: message", with
// control characters and bytes that are not UTF-8 escaped (see
// escapeControl), so that a unit file cannot write to a terminal
// through it.
func (d Diagnostic) Error() string {
	s := escapeControl(d.File)
	if d.Line > 0 {
		s += fmt.Sprintf(":%d", d.Line)
	}
	s += ": "
	if d.Severity == Warning {
		s += "warning: "
	}
	if d.Option != "" {
		s += escapeControl(d.Option) + ": "
	}
	return s + escapeControl(d.Msg)
}

// escapeControl returns s with C0 and C1 control characters, DEL and
// bytes that are not valid UTF-8 written as \xNN (\u0085 for C1
// characters); other text, a backslash included, is kept as is.
func escapeControl(s string) string {
	clean := true
	for _, r := range s {
		if r < ' ' || r >= 0x7f && r <= 0x9f || r == utf8.RuneError {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1, r < ' ', r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r >= 0x80 && r <= 0x9f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// Diagnostics is the list of problems found while loading units.
type Diagnostics []Diagnostic

// Errors returns the diagnostics of severity Error.
func (ds Diagnostics) Errors() Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Severity == Error {
			out = append(out, d)
		}
	}
	return out
}

// Err returns nil when ds holds no Error, else all errors joined.
func (ds Diagnostics) Err() error {
	var errs []error
	for _, d := range ds.Errors() {
		errs = append(errs, d)
	}
	return errors.Join(errs...)
}

// FDName returns the name the socket's fds carry in LISTEN_FDNAMES.
func (s *Socket) FDName() string {
	if s.FileDescriptorName != "" {
		return s.FileDescriptorName
	}
	return s.Name // systemd: the socket unit's id, ".socket" included
}

func trimSuffix(name string) string {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '.' {
			return name[:i]
		}
	}
	return name
}

// String returns the address as systemd prints it in "Listen" lines.
func (l Listen) String() string { return l.Address }

// String names the kind as the option does: "Stream", "Datagram", …
func (k ListenKind) String() string {
	switch k {
	case Stream:
		return "Stream"
	case Datagram:
		return "Datagram"
	case SequentialPacket:
		return "SequentialPacket"
	case FIFO:
		return "FIFO"
	}
	return fmt.Sprintf("ListenKind(%d)", int(k))
}
