package units

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Exec*= command lines (systemd.service(5), "Command lines"), parsed as
// systemd's config_parse_exec (src/core/load-fragment.c) parses them.

// splitExec splits the value of an Exec*= option into command lines:
//
//   - words are unquoted and unescaped as splitWords does, except that an
//     unknown escape ("\-", "\.", "\$", "\ ", …) or a trailing backslash
//     keeps its backslash; each word that has one is in warnings;
//   - a lone unquoted ";" between words ends one command and starts the
//     next (systemd still accepts this, without documenting it), and a
//     lone "\;" is a ";" argument;
//   - an unterminated quote is an error.
func splitExec(v string) (cmds [][]string, warnings []string, err error) {
	word := func(p string) (string, string, bool, error) {
		w, rest, ok, err := extractWord(p, false)
		if err == nil {
			return w, rest, ok, nil
		}
		w, rest, ok, rerr := extractWord(p, true)
		if rerr != nil {
			return "", "", false, rerr
		}
		warnings = append(warnings, w)
		return w, rest, ok, nil
	}
	lone := func(p, tok string) bool {
		return strings.HasPrefix(p, tok) && (len(p) == len(tok) || strings.IndexByte(whitespace, p[len(tok)]) >= 0)
	}
	p := v
	for {
		first, rest, ok, err := word(p)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			return cmds, warnings, nil
		}
		p = rest
		if first == ";" {
			continue
		}
		argv := []string{first}
		more := false
		for p != "" {
			if lone(p, ";") {
				p, more = strings.TrimLeft(p[1:], whitespace), true
				break
			}
			if lone(p, `\;`) {
				p = strings.TrimLeft(p[2:], whitespace)
				argv = append(argv, ";")
				continue
			}
			w, rest, ok, err := word(p)
			if err != nil {
				return nil, nil, err
			}
			if !ok {
				break
			}
			argv = append(argv, w)
			p = rest
		}
		cmds = append(cmds, argv)
		if !more {
			return cmds, warnings, nil
		}
	}
}

// exec parses one Exec*= option and appends its commands to dst; an
// empty value resets the list. As in systemd, a problem with a command
// whose prefixes include "-" is a warning that drops that command and
// the rest of the line.
func (b *serviceBuild) exec(dst *[]Command, o rawOption) error {
	if o.Value == "" {
		*dst = nil
		return nil
	}
	cmds, warnings, err := splitExec(o.Value)
	for _, w := range warnings {
		b.warnf(o, "\"%s\": unknown escape sequence, the backslash is kept (as in systemd)", w)
	}
	if err != nil {
		return err
	}
	if len(cmds) == 0 {
		return fmt.Errorf("empty command")
	}
	for _, ws := range cmds {
		c, err := b.command(o, ws)
		if err != nil {
			if c.IgnoreFailure {
				b.warnf(o, "%v; ignored because of the \"-\" prefix, as systemd does", err)
				return nil
			}
			return err
		}
		*dst = append(*dst, c)
	}
	return nil
}

// command reads the prefixes and the program of one command line and
// expands its specifiers. On error the returned Command still tells
// whether the "-" prefix was given.
func (b *serviceBuild) command(o rawOption, ws []string) (Command, error) {
	c := Command{Line: o.Line, File: o.File}
	// Each prefix counts once, and only one of "+", "!", "!!": the first
	// character that does not fit starts the program, as in systemd.
	first, argv0, priv := ws[0], false, ""
prefixes:
	for ; first != ""; first = first[1:] {
		switch {
		case first[0] == '-' && !c.IgnoreFailure:
			c.IgnoreFailure = true
		case first[0] == '@' && !argv0:
			argv0 = true
		case first[0] == ':' && !c.NoEnvExpand:
			c.NoEnvExpand = true
		case first[0] == '+' && priv == "", first[0] == '!' && priv == "":
			priv = first[:1]
		case first[0] == '!' && priv == "!":
			priv = "!!"
		case first[0] == '|':
			return c, fmt.Errorf("prefix \"|\" (login shell) is not supported by sockd")
		default:
			break prefixes
		}
	}
	switch priv {
	case "+":
		// The command runs as root, outside the sandbox (types.go).
		c.FullPrivileges = true
	case "!", "!!":
		b.warnf(o, "prefix %q (privileged execution) is not supported by sockd, ignored", priv)
	}
	if first == "" {
		return c, fmt.Errorf("empty program name")
	}
	ws = append([]string{first}, ws[1:]...)
	for i, w := range ws {
		var err error
		if ws[i], err = b.spec.expand(w); err != nil {
			return c, err
		}
	}
	c.Path = ws[0]
	if argv0 {
		if len(ws) < 2 {
			return c, fmt.Errorf("prefix \"@\" needs an argv[0] after the program")
		}
		c.Argv = ws[1:]
	} else {
		c.Argv = ws
	}
	switch {
	case c.Path == "":
		return c, fmt.Errorf("empty program name")
	case !stringIsSafe(c.Path):
		return c, fmt.Errorf("program %q contains special characters", c.Path)
	case strings.HasSuffix(c.Path, "/") || filepath.Base(c.Path) == "." || filepath.Base(c.Path) == "..":
		return c, fmt.Errorf("program %q is a directory", c.Path)
	case !filepath.IsAbs(c.Path) && strings.ContainsRune(c.Path, '/'):
		return c, fmt.Errorf("%q is neither an absolute path nor a plain program name", c.Path)
	}
	return c, nil
}
