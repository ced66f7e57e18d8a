package supervisord

import (
	"os"
	"strings"
)

// readEnvFile reads an EnvironmentFile= as systemd does (its
// parse_env_file): KEY=VALUE assignments; blank lines and lines starting
// with # or ; are comments; whitespace around the key and an unquoted
// value is dropped; a backslash escapes the next character and joins
// lines; single quotes keep everything literally, newlines included;
// double quotes do too, except that a backslash escapes ", \, ` and $
// and joins lines; quoted and unquoted parts of a value concatenate.
// Assignments with an invalid name are skipped. A leading "export " is
// accepted, as shells write it.
func readEnvFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	const (
		preKey = iota
		key
		preValue
		value
		valueEscape
		single
		double
		doubleEscape
		comment
		commentEscape
	)
	var (
		out      []string
		k, v     []byte
		state    = preKey
		keyEnd   int // length of k without trailing blanks
		valueEnd int // length of v without trailing unquoted blanks
		isBlank  = func(c byte) bool { return c == ' ' || c == '\t' || c == '\r' }
		push     = func() {
			name := strings.TrimPrefix(string(k[:keyEnd]), "export ")
			name = strings.TrimLeft(name, " \t")
			if envName(name) {
				out = append(out, name+"="+string(v[:valueEnd]))
			}
			k, v, keyEnd, valueEnd = k[:0], v[:0], 0, 0
		}
		keepValue = func(c byte) { v = append(v, c); valueEnd = len(v) }
	)
	for _, c := range b {
		switch state {
		case preKey:
			switch {
			case c == '#' || c == ';':
				state = comment
			case c == '\n' || isBlank(c):
			default:
				state = key
				k = append(k, c)
				keyEnd = len(k)
			}
		case key:
			switch {
			case c == '\n': // no "=": not an assignment
				k, keyEnd, state = k[:0], 0, preKey
			case c == '=':
				state = preValue
			default:
				k = append(k, c)
				if !isBlank(c) {
					keyEnd = len(k)
				}
			}
		case preValue, value:
			switch {
			case c == '\n':
				push()
				state = preKey
			case c == '\\':
				state = valueEscape
			case state == preValue && c == '\'':
				state = single
			case state == preValue && c == '"':
				state = double
			case state == preValue && isBlank(c):
			default: // quotes inside an unquoted value are literal
				v = append(v, c)
				if !isBlank(c) {
					valueEnd = len(v)
				}
				state = value
			}
		case valueEscape:
			if c != '\n' { // backslash-newline joins lines
				keepValue(c)
			}
			state = value
		case single:
			if c == '\'' {
				state = preValue
			} else {
				keepValue(c)
			}
		case double:
			switch c {
			case '"':
				state = preValue
			case '\\':
				state = doubleEscape
			default:
				keepValue(c)
			}
		case doubleEscape:
			switch c {
			case '"', '\\', '`', '$':
				keepValue(c)
			case '\n':
			default:
				keepValue('\\')
				keepValue(c)
			}
			state = double
		case comment:
			switch c {
			case '\\':
				state = commentEscape
			case '\n':
				state = preKey
			}
		case commentEscape:
			state = comment
		}
	}
	switch state { // a last line without a newline, or an open quote
	case preValue, value, valueEscape, single, double, doubleEscape:
		push()
	}
	return out, nil
}

// envName reports whether s is a valid environment variable name.
func envName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
