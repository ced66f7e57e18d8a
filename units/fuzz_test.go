package units

import (
	"strings"
	"testing"
)

// FuzzParse runs the lexer and the validators on arbitrary unit text:
// they must not panic, and every diagnostic must be well formed.
func FuzzParse(f *testing.F) {
	f.Add([]byte("[Socket]\nListenStream=80\n"), true)
	f.Add([]byte("[Service]\nExecStart=/bin/echo \"a b\" %i\n"), false)
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
				if inst, err := s.Instantiate("x-1"); err == nil && inst.Name != "fuzz@x-1.service" {
					t.Fatalf("instance name %q", inst.Name)
				}
			}
		}
		for _, d := range append(diags, more...) {
			if d.File == "" || d.Msg == "" || d.Unit != name || d.Line < 0 || strings.Contains(d.Msg, "\n") {
				t.Fatalf("malformed diagnostic %#v", d)
			}
			if d.Line > 0 && !strings.HasPrefix(d.Error(), d.File+":") {
				t.Fatalf("bad format %q", d.Error())
			}
		}
	})
}
