package units

import (
	"bytes"
	"fmt"
	"os"
	"strings"
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

// lexFile reads path and lexes it.
func lexFile(path, unit string) ([]rawOption, Diagnostics, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read unit %s: %w", path, err)
	}
	opts, diags := lex(path, unit, data)
	return opts, diags, nil
}

// lex splits a unit file into sections and assignments following
// systemd.syntax(7) and systemd's conf-parser: lines whose first
// non-blank character is '#' or ';' are comments (also inside a
// continuation), a line ending in an unescaped backslash continues on
// the next line with the backslash replaced by a space, keys and values
// are stripped of surrounding whitespace. Text before the first section
// header, malformed headers and lines without '=' are errors.
func lex(file, unit string, data []byte) ([]rawOption, Diagnostics) {
	var (
		opts    []rawOption
		diags   Diagnostics
		section string
		cont    strings.Builder
		inCont  bool
		contAt  int
	)
	errAt := func(line int, format string, args ...any) {
		diags = append(diags, Diagnostic{File: file, Line: line, Unit: unit, Severity: Error, Msg: fmt.Sprintf(format, args...)})
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	lines := strings.Split(string(data), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for i, l := range lines {
		n := i + 1
		l = strings.TrimSuffix(l, "\r")
		if strings.IndexByte(l, 0) >= 0 {
			errAt(n, "NUL byte in line")
			inCont = false
			cont.Reset()
			continue
		}
		if inCont {
			t := strings.TrimLeft(l, whitespace)
			if t != "" && (t[0] == '#' || t[0] == ';') {
				continue
			}
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
		at := n
		if inCont {
			cont.WriteString(l)
			l = cont.String()
			at = contAt
			inCont = false
			cont.Reset()
		}
		if len(l) > maxLineLen {
			errAt(at, "line too long")
			continue
		}
		s := strings.Trim(l, whitespace)
		if s == "" || s[0] == '#' || s[0] == ';' {
			continue
		}
		if s[0] == '[' {
			if len(s) < 3 || s[len(s)-1] != ']' || strings.ContainsAny(s[1:len(s)-1], "[]") {
				errAt(at, "invalid section header %q", s)
				section = "\x00invalid"
				continue
			}
			section = s[1 : len(s)-1]
			opts = append(opts, rawOption{Section: section, File: file, Line: at})
			continue
		}
		if strings.HasPrefix(s, ".include ") {
			errAt(at, ".include is not supported; use drop-ins")
			continue
		}
		if section == "" {
			errAt(at, "assignment outside of any section")
			continue
		}
		if section == "\x00invalid" {
			continue
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			errAt(at, "missing '=' in %q", s)
			continue
		}
		key := strings.Trim(s[:eq], whitespace)
		if key == "" {
			errAt(at, "missing option name before '='")
			continue
		}
		opts = append(opts, rawOption{Section: section, Name: key, Value: strings.Trim(s[eq+1:], whitespace), File: file, Line: at})
	}
	if inCont {
		// A final line ending in a backslash: systemd parses what it has.
		s := strings.Trim(cont.String(), whitespace)
		if s != "" && s[0] != '#' && s[0] != ';' {
			if section == "" {
				errAt(contAt, "assignment outside of any section")
			} else if eq := strings.IndexByte(s, '='); eq < 0 || strings.HasPrefix(s, "[") {
				errAt(contAt, "missing '=' in %q", s)
			} else if key := strings.Trim(s[:eq], whitespace); key != "" && section != "\x00invalid" {
				opts = append(opts, rawOption{Section: section, Name: key, Value: strings.Trim(s[eq+1:], whitespace), File: file, Line: contAt})
			}
		}
	}
	return opts, diags
}

const whitespace = " \t\n\r"
