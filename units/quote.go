package units

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// splitWords splits s into words as systemd's extract_first_word does
// with EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE (systemd.syntax(7), "Quoting"):
// words are separated by whitespace; double or single quotes group text
// with whitespace into one word and may appear inside a word; a
// backslash introduces one of the C escapes cunescape knows (\a \b \f
// \n \r \t \v \\ \" \' \s \xNN \NNN \uNNNN \UNNNNNNNN), inside and
// outside quotes. Any other escape is an error; with an error, words
// holds the words before the bad one.
func splitWords(s string) (words []string, err error) {
	for {
		w, rest, ok, err := extractWord(s, false)
		if err != nil {
			return words, err
		}
		if !ok {
			return words, nil
		}
		words = append(words, w)
		s = rest
	}
}

// extractWord returns the first word of s and what follows it, with
// leading whitespace removed, as systemd's extract_first_word does with
// EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE; ok is false when s holds no word.
// With relax (EXTRACT_UNESCAPE_RELAX) an unknown escape, or a backslash
// at the end outside quotes, is kept as is, backslash included.
func extractWord(s string, relax bool) (word, rest string, ok bool, err error) {
	s = strings.TrimLeft(s, whitespace)
	if s == "" {
		return "", "", false, nil
	}
	var (
		w     strings.Builder
		quote byte
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 == len(s) {
				if relax && quote == 0 {
					w.WriteByte('\\')
					return w.String(), "", true, nil
				}
				if quote != 0 {
					return "", "", false, fmt.Errorf("unterminated quote %c", quote)
				}
				return "", "", false, errors.New("trailing backslash")
			}
			r, n, err := unescapeAt(s[i+1:])
			if err != nil {
				if !relax {
					return "", "", false, err
				}
				// Keep the backslash and go on with the character after
				// it, whatever it is: "a\ b" stays one word.
				w.WriteByte('\\')
				w.WriteByte(s[i+1])
				i++
				continue
			}
			w.WriteString(r)
			i += n
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				w.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote = c
		case strings.IndexByte(whitespace, c) >= 0:
			return w.String(), strings.TrimLeft(s[i:], whitespace), true, nil
		default:
			w.WriteByte(c)
		}
	}
	if quote != 0 {
		return "", "", false, fmt.Errorf("unterminated quote %c", quote)
	}
	return w.String(), "", true, nil
}

// unescapeAt decodes the escape whose backslash precedes s, as systemd's
// cunescape_one does, returning the decoded text and how many bytes of s
// it used.
func unescapeAt(s string) (string, int, error) {
	if s == "" {
		return "", 0, errors.New("trailing backslash")
	}
	switch s[0] {
	case 'a':
		return "\a", 1, nil
	case 'b':
		return "\b", 1, nil
	case 'f':
		return "\f", 1, nil
	case 'n':
		return "\n", 1, nil
	case 'r':
		return "\r", 1, nil
	case 't':
		return "\t", 1, nil
	case 'v':
		return "\v", 1, nil
	case 's':
		return " ", 1, nil
	case '\\', '"', '\'':
		return s[:1], 1, nil
	case 'x':
		if len(s) < 3 {
			return "", 0, fmt.Errorf("invalid escape \\%s", s)
		}
		v, err := strconv.ParseUint(s[1:3], 16, 8)
		if err != nil || v == 0 {
			return "", 0, fmt.Errorf("invalid escape \\%s", s[:3])
		}
		return string([]byte{byte(v)}), 3, nil
	case 'u', 'U':
		n := 4
		if s[0] == 'U' {
			n = 8
		}
		if len(s) < n+1 || !isHex(s[1:n+1]) {
			return "", 0, fmt.Errorf("invalid escape \\%s", s[:min(len(s), n+1)])
		}
		v, _ := strconv.ParseUint(s[1:n+1], 16, 32)
		if v == 0 || !utf8.ValidRune(rune(v)) || s[0] == 'U' && !unicharIsValid(rune(v)) {
			return "", 0, fmt.Errorf("invalid escape \\%s", s[:n+1])
		}
		return string(rune(v)), n + 1, nil
	case '0', '1', '2', '3', '4', '5', '6', '7':
		if len(s) < 3 {
			return "", 0, fmt.Errorf("invalid escape \\%s", s)
		}
		v, err := strconv.ParseUint(s[:3], 8, 16)
		if err != nil || v == 0 || v > 255 {
			return "", 0, fmt.Errorf("invalid escape \\%s", s[:3])
		}
		return string([]byte{byte(v)}), 3, nil
	}
	r, _ := utf8.DecodeRuneInString(s)
	return "", 0, fmt.Errorf("invalid escape \\%c", r)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// unicharIsValid is systemd's unichar_is_valid: a Unicode scalar value
// that is not a noncharacter.
func unicharIsValid(r rune) bool {
	return utf8.ValidRune(r) && !(r >= 0xfdd0 && r <= 0xfdef) && r&0xfffe != 0xfffe
}

// unitNameChars are the characters systemd allows in unit names besides '@'.
const unitNameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.\\"

// unitName is a unit name split into its parts.
type unitName struct {
	Full     string // "app@x.service"
	Prefix   string // "app"
	Instance string // "x"; "" for a template or a plain unit
	Template bool   // "app@.service"
	Suffix   string // "service"
}

// parseUnitName splits and validates a unit name as systemd.unit(5)
// describes it.
func parseUnitName(name string) (unitName, error) {
	u := unitName{Full: name}
	if len(name) > 255 {
		return u, fmt.Errorf("unit name %q: too long", name)
	}
	dot := strings.LastIndexByte(name, '.')
	if dot <= 0 {
		return u, fmt.Errorf("unit name %q: no type suffix", name)
	}
	u.Suffix = name[dot+1:]
	base := name[:dot]
	if at := strings.IndexByte(base, '@'); at >= 0 {
		u.Prefix, u.Instance = base[:at], base[at+1:]
		u.Template = u.Instance == ""
		if strings.IndexByte(u.Instance, '@') >= 0 {
			return u, fmt.Errorf("unit name %q: more than one '@'", name)
		}
	} else {
		u.Prefix = base
	}
	if u.Prefix == "" {
		return u, fmt.Errorf("unit name %q: empty prefix", name)
	}
	for _, part := range []string{u.Prefix, u.Instance} {
		for i := 0; i < len(part); i++ {
			if strings.IndexByte(unitNameChars, part[i]) < 0 {
				return u, fmt.Errorf("unit name %q: invalid character %q", name, part[i])
			}
		}
	}
	return u, nil
}

// validInstance reports whether s may be the instance of a unit name.
func validInstance(s string) error {
	if s == "" {
		return errors.New("empty instance")
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(unitNameChars, s[i]) < 0 {
			return fmt.Errorf("invalid character %q in instance %q", s[i], s)
		}
	}
	return nil
}

// unescapeName reverses systemd-escape: "-" is "/", "\xNN" a byte.
func unescapeName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '-':
			b.WriteByte('/')
		case s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x':
			if v, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
			b.WriteByte(s[i])
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// EscapeInstance escapes s for use as the instance of a unit name, as
// "systemd-escape" does: "/" becomes "-", and characters not allowed
// in unit names (and "-" itself) become "\xNN".
func EscapeInstance(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c == '.' && i == 0, c == '-', c == '\\', strings.IndexByte(unitNameChars, c) < 0:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
