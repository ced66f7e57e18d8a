package units

// Standard input and output of a service's processes: StandardInput=,
// StandardInputText=, StandardInputData=, StandardOutput= and
// StandardError= (systemd.exec(5), "Logging and Standard Input/Output").

import (
	"encoding/base64"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// maxInputData bounds StandardInputText= and StandardInputData= together,
// as systemd's EXEC_STDIN_DATA_MAX does.
const maxInputData = 64 << 20

// stdioBuild is what the parser keeps of these options until the unit's
// last line, where defaults that depend on each other are settled
// (finishStdio).
type stdioBuild struct {
	inputOpt  *rawOption // the StandardInput= in force, nil if none
	dataOpt   *rawOption // the first StandardInputText=/StandardInputData= since the data was last reset
	outputSet bool       // StandardOutput= was given
}

func init() {
	registerServiceOptions(map[string]serviceHandler{
		"StandardInput": func(b *serviceBuild, o rawOption) error {
			in, ok, err := b.input(o)
			if ok {
				b.s.StandardInput, b.stdio.inputOpt = in, &o
			}
			return err
		},
		"StandardInputText": func(b *serviceBuild, o rawOption) error {
			if o.Value == "" {
				b.resetInputData()
				return nil
			}
			text, err := cunescape(o.Value)
			if err != nil {
				return err
			}
			text, ok := b.expand(o, text)
			if !ok {
				return nil
			}
			return b.addInputData(o, []byte(text+"\n"))
		},
		"StandardInputData": func(b *serviceBuild, o rawOption) error {
			if o.Value == "" {
				b.resetInputData()
				return nil
			}
			data, err := decodeBase64(o.Value)
			if err != nil {
				return err
			}
			return b.addInputData(o, data)
		},
		"StandardOutput": func(b *serviceBuild, o rawOption) error {
			out, ok, err := b.output(o, "stdout")
			if ok {
				b.s.StandardOutput, b.stdio.outputSet = out, true
			}
			return err
		},
		"StandardError": func(b *serviceBuild, o rawOption) error {
			out, ok, err := b.output(o, "stderr")
			if ok {
				b.s.StandardError = out
			}
			return err
		},
	})
}

// input parses StandardInput=; ok is false when the value does not apply.
func (b *serviceBuild) input(o rawOption) (in Input, ok bool, err error) {
	kind, arg, hasArg := strings.Cut(o.Value, ":")
	switch kind {
	case "null", "socket", "data":
		if hasArg {
			break
		}
		return Input{Kind: kind}, true, nil
	case "tty", "tty-force", "tty-fail":
		if hasArg {
			break
		}
		b.warnf(o, "%s is not supported by sockd: stdin is /dev/null", kind)
		return Input{Kind: "null"}, true, nil
	case "file":
		p, ok, err := b.stdioPath(o, arg)
		return Input{Kind: kind, Path: p}, ok, err
	case "fd":
		name, ok, err := b.fdName(o, arg, "stdin")
		return Input{Kind: kind, FDName: name}, ok, err
	}
	return Input{}, false, fmt.Errorf("invalid value %q (want null, socket, data, file:PATH or fd:NAME)", o.Value)
}

// output parses StandardOutput= or StandardError= of the stream named
// stream; ok is false when the value does not apply.
func (b *serviceBuild) output(o rawOption, stream string) (out Output, ok bool, err error) {
	kind, arg, hasArg := strings.Cut(o.Value, ":")
	switch kind {
	case "inherit", "journal", "null", "socket":
		if hasArg {
			break
		}
		return Output{Kind: kind}, true, nil
	case "journal+console", "syslog", "syslog+console", "kmsg", "kmsg+console":
		if hasArg {
			break
		}
		b.warnf(o, "%s is sent to sockd's log (journal)", kind)
		return Output{Kind: "journal"}, true, nil
	case "file", "append", "truncate":
		if !hasArg {
			break
		}
		p, ok, err := b.stdioPath(o, arg)
		return Output{Kind: kind, Path: p}, ok, err
	case "fd":
		name, ok, err := b.fdName(o, arg, stream)
		return Output{Kind: kind, FDName: name}, ok, err
	case "tty":
		if hasArg {
			break
		}
		b.warnf(o, "%s is not supported by sockd, ignored", kind)
		return Output{}, false, nil
	}
	return Output{}, false, fmt.Errorf("invalid value %q (want inherit, journal, null, socket, fd:NAME, file:PATH, append:PATH or truncate:PATH)", o.Value)
}

// stdioPath expands and checks the PATH of file:PATH and its kin.
func (b *serviceBuild) stdioPath(o rawOption, path string) (string, bool, error) {
	p, ok := b.expand(o, path)
	if !ok {
		return "", false, nil
	}
	if !filepath.IsAbs(p) {
		return "", false, fmt.Errorf("%q is not an absolute path", p)
	}
	return filepath.Clean(p), true, nil
}

// fdName expands and checks the NAME of fd:NAME, a FileDescriptorName=
// of one of the service's sockets; fd alone names def.
func (b *serviceBuild) fdName(o rawOption, name, def string) (string, bool, error) {
	v, ok := b.expand(o, name)
	if !ok {
		return "", false, nil
	}
	if v == "" {
		return def, true, nil
	}
	if err := validFDName(v); err != nil {
		return "", false, err
	}
	return v, true, nil
}

// validFDName checks a name as systemd's fdname_is_valid does.
func validFDName(v string) error {
	if len(v) > 255 {
		return fmt.Errorf("name longer than 255 characters")
	}
	for i := 0; i < len(v); i++ {
		if v[i] < ' ' || v[i] > '~' || v[i] == ':' {
			return fmt.Errorf("invalid character %q in %q (want printable ASCII, no ':')", v[i], v)
		}
	}
	return nil
}

func (b *serviceBuild) addInputData(o rawOption, data []byte) error {
	if n := len(b.s.StandardInputData) + len(data); n > maxInputData {
		return fmt.Errorf("standard input data too large (%d bytes, at most %d)", n, maxInputData)
	}
	if b.stdio.dataOpt == nil {
		b.stdio.dataOpt = &o
	}
	b.s.StandardInputData = append(b.s.StandardInputData, data...)
	return nil
}

func (b *serviceBuild) resetInputData() {
	b.s.StandardInputData, b.stdio.dataOpt = nil, nil
}

// finishStdio settles the defaults that depend on other options, as
// systemd's service_fix_stdio does: StandardInput= is data when it is
// not set and there is data; StandardOutput= is inherit (the socket
// itself) when stdin is a socket, socket or fd:, and it is not set.
// StandardError= follows StandardOutput= already (its default, inherit).
func (b *serviceBuild) finishStdio() {
	s, st := b.s, &b.stdio
	switch {
	case len(s.StandardInputData) > 0 && st.inputOpt == nil:
		s.StandardInput = Input{Kind: "data"}
	case len(s.StandardInputData) > 0 && s.StandardInput.Kind != "data":
		b.warnf(*st.dataOpt, "ignored: StandardInput=%s", st.inputOpt.Value)
	case len(s.StandardInputData) == 0 && s.StandardInput.Kind == "data":
		b.warnf(*st.inputOpt, "no StandardInputText= or StandardInputData=: stdin is /dev/null")
	}
	if !st.outputSet && (s.StandardInput.Kind == "socket" || s.StandardInput.Kind == "fd") {
		s.StandardOutput = Output{Kind: "inherit"}
	}
}

// cunescape decodes the C escapes of s (systemd.syntax(7)), as
// StandardInputText= takes them; quotes are text.
func cunescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var w strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			w.WriteByte(s[i])
			continue
		}
		r, n, err := unescapeAt(s[i+1:])
		if err != nil {
			return "", err
		}
		w.WriteString(r)
		i += n
	}
	return w.String(), nil
}

// decodeBase64 decodes StandardInputData=: whitespace (continued lines)
// is ignored, and padding may be left out.
func decodeBase64(v string) ([]byte, error) {
	v = strings.Join(strings.Fields(v), "")
	enc := base64.StdEncoding
	if !strings.HasSuffix(v, "=") && len(v)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	data, err := enc.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("invalid base64: %v", err)
	}
	return data, nil
}

// checkStdio warns, once units are linked, of a service whose standard
// streams ask for sockets it will not have: socket needs exactly one (an
// Accept=yes instance's connection, or the service's one listening
// socket), fd:NAME one whose FileDescriptorName= is NAME. Every start of
// such a service fails, as in systemd. A oneshot's streams do not apply.
func (l *loader) checkStdio() {
	idx := l.set.SocketIndex()
	for _, name := range sortedKeys(l.set.Services) {
		svc := l.set.Services[name]
		if svc.Type == TypeOneshot {
			continue
		}
		var fds []string // the LISTEN_FDNAMES a process gets
		accept := false
		for _, sock := range idx[name] {
			accept = accept || sock.Accept
			for range sock.Listens {
				fds = append(fds, sock.FDName())
			}
		}
		if accept {
			fds = []string{"connection"}
		} else if svc.Template {
			continue // its instances are checked
		}
		for _, msg := range stdioProblems(svc, fds) {
			l.diags = append(l.diags, Diagnostic{File: svc.File, Unit: name, Severity: Warning, Msg: msg + ": every start fails"})
		}
	}
}

// stdioProblems lists what of svc's standard streams the sockets named
// fds cannot give.
func stdioProblems(svc *Service, fds []string) []string {
	var out []string
	in, stdout, stderr := svc.StandardInput, svc.StandardOutput, svc.StandardError
	if (in.Kind == "socket" || stdout.Kind == "socket" || stderr.Kind == "socket") && len(fds) != 1 {
		out = append(out, fmt.Sprintf("a standard stream is socket: needs exactly one socket, not %d", len(fds)))
	}
	for _, s := range []struct{ option, kind, name string }{
		{"StandardInput", in.Kind, in.FDName}, {"StandardOutput", stdout.Kind, stdout.FDName}, {"StandardError", stderr.Kind, stderr.FDName},
	} {
		if s.kind == "fd" && !slices.Contains(fds, s.name) {
			out = append(out, fmt.Sprintf("%s=fd:%s: no socket of that name (FileDescriptorName= of the sockets: %q)", s.option, s.name, fds))
		}
	}
	return out
}
