package units

import "strings"

// Expand returns c.Argv with environment variables substituted as
// systemd.service(5) describes for command lines: "${VAR}" anywhere in a
// word becomes the value of VAR as is; "$VAR" as a word of its own
// becomes the value split at whitespace (zero or more words); "$$" is a
// literal "$". Unset variables are empty. env holds "KEY=value" entries,
// the last one of a key winning. With the ":" prefix (NoEnvExpand) Argv
// is returned unchanged.
func (c Command) Expand(env []string) []string {
	out := make([]string, 0, len(c.Argv))
	if c.NoEnvExpand {
		return append(out, c.Argv...)
	}
	lookup := func(k string) string {
		for i := len(env) - 1; i >= 0; i-- {
			if key, v, ok := strings.Cut(env[i], "="); ok && key == k {
				return v
			}
		}
		return ""
	}
	for _, w := range c.Argv {
		if len(w) > 1 && w[0] == '$' && w[1] != '{' && w[1] != '$' && validEnvName(w[1:]) {
			out = append(out, strings.Fields(lookup(w[1:]))...)
			continue
		}
		var b strings.Builder
		for i := 0; i < len(w); i++ {
			if w[i] == '$' && i+1 < len(w) {
				if w[i+1] == '$' {
					b.WriteByte('$')
					i++
					continue
				}
				if w[i+1] == '{' {
					if end := strings.IndexByte(w[i+2:], '}'); end >= 0 && validEnvName(w[i+2:i+2+end]) {
						b.WriteString(lookup(w[i+2 : i+2+end]))
						i += end + 2
						continue
					}
				}
			}
			b.WriteByte(w[i])
		}
		out = append(out, b.String())
	}
	return out
}
