package units

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse runs the lexer and the validators on arbitrary unit text:
// they must not panic, and every diagnostic must be well formed. Its
// seeds in testdata/fuzz/FuzzParse include unit files Debian 12 ships
// (debian-*).
func FuzzParse(f *testing.F) {
	f.Add([]byte("[Socket]\nListenStream=80\n"), true)
	f.Add([]byte("[Service]\nExecStart=/bin/echo \"a b\" %i\n"), false)
	f.Add([]byte("[Service]\r# comment \\\rType=oneshot\rExecStart=-/bin/a \\; \\$x a\\ b ; @/bin/b b0 ; \\\r  :/bin/c \"\\x41\"\r"), false)
	f.Add([]byte("[Socket]\r\nListenNetlink=route 1\x00ListenStream=/run/a\xff\n[Unit]\nBindTo=x.service\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, socket bool) {
		name := "fuzz@.service"
		if socket {
			name = "fuzz.socket"
		}
		n, err := parseUnitName(name)
		if err != nil {
			t.Fatal(err)
		}
		opts, diags := lex("/u/"+name, name, data)
		for _, o := range opts {
			if o.Line < 1 || o.File == "" || strings.ContainsAny(o.Name, "\n=") {
				t.Fatalf("bad option %+v", o)
			}
		}
		var more Diagnostics
		if socket {
			var s *Socket
			s, more = buildSocket(n, "/u/"+name, nil, opts)
			if more.Err() == nil {
				for _, l := range s.Listens {
					if l.Network == "" || l.Address == "" || l.Line < 1 {
						t.Fatalf("bad listen %+v", l)
					}
				}
				if s.Service == "" {
					t.Fatal("socket without service")
				}
			}
		} else {
			var s *Service
			s, more = buildService(n, "/u/"+name, nil, opts)
			if more.Err() == nil {
				if len(s.ExecStart) == 0 && s.Type != TypeOneshot {
					t.Fatal("service without ExecStart")
				}
				for _, c := range append(append(s.ExecStartPre, s.ExecStart...), s.ExecStop...) {
					if c.Path == "" || len(c.Argv) == 0 || c.Line < 1 {
						t.Fatalf("bad command %+v", c)
					}
				}
				if inst, err := s.Instantiate("x-1"); err == nil && inst.Name != "fuzz@x-1.service" {
					t.Fatalf("instance name %q", inst.Name)
				}
			}
		}
		if socket {
			// The same text as a template and as its instance.
			for _, tn := range []string{"fuzz@.socket", "fuzz@x-1.socket"} {
				n, _ := parseUnitName(tn)
				s, ds := buildSocket(n, "/u/"+tn, nil, opts)
				if ds.Err() == nil && !n.Template && (s.Service == "" || s.Instance != "x-1") {
					t.Fatalf("instance %+v", s)
				}
				for _, d := range ds {
					if d.Unit != tn || d.Line < 1 || d.File == "" || d.Msg == "" {
						t.Fatalf("malformed diagnostic %#v", d)
					}
				}
			}
		}
		for _, d := range append(diags, more...) {
			if d.File == "" || d.Msg == "" || d.Unit != name || d.Line < 1 || strings.Contains(d.Msg, "\n") {
				t.Fatalf("malformed diagnostic %#v", d)
			}
			s := d.Error()
			if !strings.HasPrefix(s, d.File+":") {
				t.Fatalf("bad format %q", s)
			}
			if !utf8.ValidString(s) {
				t.Fatalf("invalid UTF-8 in %q", s)
			}
			for _, r := range s {
				if r < ' ' || r >= 0x7f && r <= 0x9f {
					t.Fatalf("unescaped %q in %q", r, s)
				}
			}
		}
	})
}
