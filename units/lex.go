package units

import (
	"bytes"
	"fmt"
	"io/fs"
	"strings"
	"unicode/utf8"
)

// rawOption is one "Key=Value" assignment of a unit file, after
// continuation lines were joined, with the place it came from. A section
// header is a rawOption with an empty Name.
type rawOption struct {
	Section string
	Name    string
	Value   string
	File    string
	Line    int // line of the key
}

// maxLineLen bounds one logical line, as systemd's LONG_LINE_MAX does.
const maxLineLen = 1 << 20

// lexFile reads path (see readUnitFile) and lexes it. masked is set,
// with no options, for a masked file. A file a user other than root can
// write is refused with an *untrustedError, or read with a warning in
// diags when AllowUntrusted (see trust.go).
func (l *loader) lexFile(path, unit string) (opts []rawOption, diags Diagnostics, masked string, err error) {
	if l.cache != nil {
		l.cache.stamp(path) // before the read: a later change shows
		l.cache.c.parsed.Add(1)
	}
	data, masked, err := readUnitFile(path, func(st fs.FileInfo) error {
		err := l.trust.untrusted(path, st)
		if d, ok := trustDiag(path, unit, err); ok && d.Severity == Warning {
			diags = append(diags, d)
			return nil
		}
		return err
	})
	if err != nil || masked != "" {
		return nil, diags, masked, err
	}
	opts, ds := lex(path, unit, data)
	return opts, append(diags, ds...), "", nil
}

// lex splits a unit file into sections and assignments as systemd's
// config_parse (src/shared/conf-parser.c) does:
//
//   - lines end at "\n", "\r" or a NUL byte, and "\r\n" (or "\n\r") is
//     one line end, as systemd's read_line reads them;
//   - a line whose first non-blank character is '#' or ';' is a comment,
//     also between continued lines, and a comment never continues, even
//     when it ends in a backslash;
//   - any other line ending in an unescaped backslash continues on the
//     next line, the backslash becoming a space;
//   - a logical line that is not valid UTF-8 is an error: systemd
//     refuses the whole unit;
//   - keys and values are stripped of surrounding whitespace.
//
// Text before the first section header, malformed headers and lines
// without '=' are errors (systemd logs and ignores them).
func lex(file, unit string, data []byte) ([]rawOption, Diagnostics) {
	var (
		opts    []rawOption
		diags   Diagnostics
		section string
		cont    strings.Builder
		inCont  bool
		contAt  int
	)
	add := func(line int, sev Severity, format string, args ...any) {
		diags = append(diags, Diagnostic{File: file, Line: line, Unit: unit, Severity: sev, Msg: fmt.Sprintf(format, args...)})
	}
	errAt := func(line int, format string, args ...any) { add(line, Error, format, args...) }
	parse := func(at int, l string) {
		if len(l) > maxLineLen {
			errAt(at, "line too long")
			return
		}
		s := strings.Trim(l, whitespace)
		if s == "" {
			return
		}
		if !validUTF8(s) {
			errAt(at, "invalid UTF-8; systemd refuses the unit")
			return
		}
		if s[0] == '[' {
			name := strings.TrimSuffix(s[1:], "]")
			switch {
			case len(s) < 3 || s[len(s)-1] != ']' || strings.ContainsAny(name, "[]"):
				errAt(at, "invalid section header %q", s)
			case !stringIsSafe(name):
				errAt(at, "bad characters in section header %q", s)
			default:
				section = name
				opts = append(opts, rawOption{Section: section, File: file, Line: at})
				return
			}
			section = "\x00invalid"
			return
		}
		if strings.HasPrefix(s, ".include ") {
			errAt(at, ".include is not supported; use drop-ins")
			return
		}
		if section == "" {
			errAt(at, "assignment outside of any section")
			return
		}
		if section == "\x00invalid" {
			return
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			errAt(at, "missing '=' in %q", s)
			return
		}
		key := strings.Trim(s[:eq], whitespace)
		if key == "" {
			errAt(at, "missing option name before '='")
			return
		}
		opts = append(opts, rawOption{Section: section, Name: key, Value: strings.Trim(s[eq+1:], whitespace), File: file, Line: at})
	}

	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	lines, nulAt := splitLines(data)
	if nulAt > 0 {
		add(nulAt, Warning, "NUL byte read as the end of a line, as systemd does")
	}
	for i, l := range lines {
		n := i + 1
		if t := strings.TrimLeft(l, whitespace); t != "" && (t[0] == '#' || t[0] == ';') {
			continue
		}
		escaped := false
		for j := 0; j < len(l); j++ {
			if escaped {
				escaped = false
			} else if l[j] == '\\' {
				escaped = true
			}
		}
		if escaped {
			if !inCont {
				inCont, contAt = true, n
			}
			cont.WriteString(l[:len(l)-1])
			cont.WriteByte(' ')
			if cont.Len() > maxLineLen {
				errAt(contAt, "line too long")
				inCont = false
				cont.Reset()
			}
			continue
		}
		if !inCont {
			parse(n, l)
			continue
		}
		cont.WriteString(l)
		parse(contAt, cont.String())
		inCont = false
		cont.Reset()
	}
	if inCont {
		// The last line ends in a backslash: systemd parses what it has.
		parse(contAt, cont.String())
	}
	return opts, diags
}

const whitespace = " \t\n\r"

// splitLines splits data into lines as systemd's read_line
// (src/basic/fileio.c) does: a line ends at "\n", "\r" or NUL, and a run
// of end markers holding each of "\n" and "\r" at most once, optionally
// followed by one NUL, is one line end ("\r\n", "\n\r", "\r\n\0", …). A
// last line without an end marker counts; an end marker at the end of
// data does not start another line. nulAt is the 1-based number of the
// first line ended by a NUL byte, 0 if none.
func splitLines(data []byte) (lines []string, nulAt int) {
	const cr, lf, nul = 1, 2, 4
	kind := func(c byte) int {
		switch c {
		case '\r':
			return cr
		case '\n':
			return lf
		case 0:
			return nul
		}
		return 0
	}
	start := 0
	for i := 0; i < len(data); {
		if kind(data[i]) == 0 {
			i++
			continue
		}
		lines = append(lines, string(data[start:i]))
		seen := 0
		for i < len(data) {
			k := kind(data[i])
			if k == 0 || seen&nul != 0 || seen&k != 0 {
				break
			}
			if k == nul && nulAt == 0 {
				nulAt = len(lines)
			}
			seen |= k
			i++
		}
		start = i
	}
	if start < len(data) {
		lines = append(lines, string(data[start:]))
	}
	return lines, nulAt
}

// validUTF8 reports whether s is valid UTF-8 as systemd's utf8_is_valid
// judges it: Go's rules (no surrogates, no overlong forms) and no
// noncharacters (U+FDD0..U+FDEF and U+xxFFFE, U+xxFFFF).
func validUTF8(s string) bool {
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return false
		}
		if r >= 0xfdd0 && r <= 0xfdef || r&0xfffe == 0xfffe {
			return false
		}
		i += size
	}
	return true
}

// stringIsSafe reports whether s has no control characters, quotes or
// backslashes, as systemd's string_is_safe.
func stringIsSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == 0x7f || c == '"' || c == '\'' || c == '\\' {
			return false
		}
	}
	return true
}
