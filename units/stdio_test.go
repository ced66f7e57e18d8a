package units

import (
	"reflect"
	"strings"
	"testing"
)

// The parsed StandardInput=/StandardOutput=/StandardError= and the
// defaults that depend on each other (systemd's service_fix_stdio).
func TestStdio(t *testing.T) {
	journal, inherit := Output{Kind: "journal"}, Output{Kind: "inherit"}
	for _, tc := range []struct {
		name     string
		lines    string
		in       Input
		data     string
		out, err Output
		diags    []string
	}{
		{"defaults", "", Input{}, "", journal, inherit, nil},
		{"null", "StandardInput=null", Input{Kind: "null"}, "", journal, inherit, nil},
		// A socket or fd: as stdin: stdout defaults to it, stderr follows.
		{"socket", "StandardInput=socket", Input{Kind: "socket"}, "", inherit, inherit, nil},
		{"socket journal", "StandardInput=socket\nStandardOutput=journal", Input{Kind: "socket"}, "", journal, inherit, nil},
		{"socket stderr", "StandardInput=socket\nStandardError=journal", Input{Kind: "socket"}, "", inherit, journal, nil},
		{"fd named", "StandardInput=fd:%p-in", Input{Kind: "fd", FDName: "app-in"}, "", inherit, inherit, nil},
		{"fd", "StandardInput=fd", Input{Kind: "fd", FDName: "stdin"}, "", inherit, inherit, nil},
		{"fd empty", "StandardInput=fd:", Input{Kind: "fd", FDName: "stdin"}, "", inherit, inherit, nil},
		{"file", "StandardInput=file:/etc/%p//in", Input{Kind: "file", Path: "/etc/app/in"}, "", journal, inherit, nil},
		{"tty", "StandardInput=tty-force", Input{Kind: "null"}, "", journal, inherit,
			[]string{"app.service:3: warning: StandardInput: tty-force is not supported by sockd: stdin is /dev/null"}},
		{"outputs", "StandardOutput=socket\nStandardError=fd", Input{}, "", Output{Kind: "socket"}, Output{Kind: "fd", FDName: "stderr"}, nil},
		{"output fd", "StandardOutput=fd\nStandardError=fd:log", Input{}, "", Output{Kind: "fd", FDName: "stdout"}, Output{Kind: "fd", FDName: "log"}, nil},
		{"kmsg", "StandardOutput=kmsg", Input{}, "", journal, inherit,
			[]string{"app.service:3: warning: StandardOutput: kmsg is sent to sockd's log (journal)"}},
		{"tty output", "StandardOutput=null\nStandardOutput=tty", Input{}, "", Output{Kind: "null"}, inherit,
			[]string{"app.service:4: warning: StandardOutput: tty is not supported by sockd, ignored"}},
		// Text and data append in order; either makes StandardInput= data.
		{"text", "StandardInputText=hello %n\nStandardInputText=a\\tb \"q\"\nStandardInputData=aGk=", Input{Kind: "data"},
			"hello app.service\na\tb \"q\"\nhi", journal, inherit, nil},
		{"data unpadded", "StandardInputData=aGk\nStandardInputData=aGkK", Input{Kind: "data"}, "hihi\n", journal, inherit, nil},
		{"data continued", "StandardInputData=aGVs \\\n bG8K", Input{Kind: "data"}, "hello\n", journal, inherit, nil},
		{"data reset", "StandardInputText=old\nStandardInputText=\nStandardInputText=new", Input{Kind: "data"}, "new\n", journal, inherit, nil},
		{"data explicit", "StandardInput=data\nStandardInputText=x", Input{Kind: "data"}, "x\n", journal, inherit, nil},
		{"data all reset", "StandardInputText=old\nStandardInputData=", Input{}, "", journal, inherit, nil},
		{"data ignored", "StandardInput=null\nStandardInputText=x", Input{Kind: "null"}, "x\n", journal, inherit,
			[]string{"app.service:4: warning: StandardInputText: ignored: StandardInput=null"}},
		{"data missing", "StandardInput=data", Input{Kind: "data"}, "", journal, inherit,
			[]string{"app.service:3: warning: StandardInput: no StandardInputText= or StandardInputData=: stdin is /dev/null"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, all := load(t, map[string]string{"app.service": okService + tc.lines + "\n"})
			var diags []string // the sockets' checks are TestStdioSockets'
			for _, d := range all {
				if !strings.HasSuffix(d, ": every start fails") {
					diags = append(diags, d)
				}
			}
			if !equalStrings(diags, tc.diags) {
				t.Errorf("diagnostics:\n got %q\nwant %q", diags, tc.diags)
			}
			s := set.Services["app.service"]
			if s == nil {
				t.Fatal("not loaded")
			}
			if s.StandardInput != tc.in || string(s.StandardInputData) != tc.data ||
				s.StandardOutput != tc.out || s.StandardError != tc.err {
				t.Errorf("got in %+v data %q out %+v err %+v\nwant in %+v data %q out %+v err %+v",
					s.StandardInput, s.StandardInputData, s.StandardOutput, s.StandardError, tc.in, tc.data, tc.out, tc.err)
			}
		})
	}
}

func TestStdioErrors(t *testing.T) {
	for _, tc := range []struct{ lines, want string }{
		{"StandardInput=tty:x", `app.service:3: StandardInput: invalid value "tty:x" (want null, socket, data, file:PATH or fd:NAME)`},
		{"StandardInput=file:in", `app.service:3: StandardInput: "in" is not an absolute path`},
		{"StandardInput=fd:a:b", `app.service:3: StandardInput: invalid character ':' in "a:b" (want printable ASCII, no ':')`},
		{"StandardOutput=socket:x", `app.service:3: StandardOutput: invalid value "socket:x" (want inherit, journal, null, socket, fd:NAME, file:PATH, append:PATH or truncate:PATH)`},
		{"StandardError=fd:" + strings.Repeat("x", 256), `app.service:3: StandardError: name longer than 255 characters`},
		{"StandardInputData=a!==", `app.service:3: StandardInputData: invalid base64: illegal base64 data at input byte 1`},
		{"StandardInputData===", `app.service:3: StandardInputData: invalid base64: illegal base64 data at input byte 0`},
		{"StandardInputText=\\q", `app.service:3: StandardInputText: invalid escape \q`},
		{"StandardInputText=%z", `app.service:3: StandardInputText: unknown specifier %z`},
	} {
		_, diags := load(t, map[string]string{"app.service": okService + tc.lines + "\n"})
		if len(diags) != 1 || diags[0] != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.lines, diags, tc.want)
		}
	}
}

// systemd's limit: 64 MiB of StandardInputText= and StandardInputData=
// together.
func TestStdinDataLimit(t *testing.T) {
	b := &serviceBuild{builder: &builder{}, s: &Service{StandardInputData: make([]byte, maxInputData-1)}}
	if err := b.addInputData(rawOption{}, []byte("x")); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	if err := b.addInputData(rawOption{}, []byte("x")); err == nil || len(b.s.StandardInputData) != maxInputData {
		t.Errorf("over the limit: %v, %d bytes kept", err, len(b.s.StandardInputData))
	}
}

// A template's text is expanded per instance.
func TestStdinTextInstance(t *testing.T) {
	set, diags := load(t, map[string]string{"app@.service": okService + "StandardInputText=I am %i\n"})
	if len(diags) != 0 {
		t.Fatal(diags)
	}
	inst, err := set.Services["app@.service"].Instantiate("x1")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Input{Kind: "data"}); inst.StandardInput != want || string(inst.StandardInputData) != "I am x1\n" {
		t.Errorf("instance: %+v %q", inst.StandardInput, inst.StandardInputData)
	}
	if !reflect.DeepEqual(set.Services["app@.service"].StandardInput, Input{Kind: "data"}) {
		t.Errorf("template: %+v", set.Services["app@.service"].StandardInput)
	}
}

// A service whose streams ask for sockets it does not have loads with a
// warning: every start would fail.
func TestStdioSockets(t *testing.T) {
	const fails = ": every start fails"
	sock := func(name, lines string) string {
		return "[Socket]\nListenStream=/run/sockd-test/" + name + ".sock\n" + lines
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"one socket", map[string]string{"app.socket": sock("app", ""), "app.service": okService + "StandardInput=socket\n"}, nil},
		{"two listens", map[string]string{"app.socket": sock("app", "ListenStream=/run/sockd-test/b.sock\n"), "app.service": okService + "StandardInput=socket\n"},
			[]string{"app.service: warning: a standard stream is socket: needs exactly one socket, not 2" + fails}},
		{"no socket", map[string]string{"app.service": okService + "StandardOutput=socket\n"},
			[]string{"app.service: warning: a standard stream is socket: needs exactly one socket, not 0" + fails}},
		{"oneshot", map[string]string{"app.service": "[Service]\nType=oneshot\nExecStart=/bin/true\nStandardInput=socket\n"}, nil},
		{"named", map[string]string{"app.socket": sock("app", ""), "side.socket": sock("side", "FileDescriptorName=side\nService=app.service\n"),
			"app.service": okService + "StandardInput=fd:side\nStandardError=fd:app.socket\n"}, nil},
		{"unnamed", map[string]string{"app.socket": sock("app", ""), "side.socket": sock("side", "FileDescriptorName=side\nService=app.service\n"),
			"app.service": okService + "StandardOutput=fd:nope\n"},
			[]string{`app.service: warning: StandardOutput=fd:nope: no socket of that name (FileDescriptorName= of the sockets: ["app.socket" "side"])` + fails}},
		{"accept", map[string]string{"echo.socket": sock("echo", "Accept=yes\n"), "echo@.service": okService + "StandardInput=socket\nStandardError=fd:connection\n"}, nil},
		{"accept unnamed", map[string]string{"echo.socket": sock("echo", "Accept=yes\n"), "echo@.service": okService + "StandardInput=fd:echo\n"},
			[]string{`echo@.service: warning: StandardInput=fd:echo: no socket of that name (FileDescriptorName= of the sockets: ["connection"])` + fails}},
		{"template", map[string]string{"w@.service": okService + "StandardInput=socket\n"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, diags := load(t, tc.files); !equalStrings(diags, tc.want) {
				t.Errorf("diagnostics:\n got %q\nwant %q", diags, tc.want)
			}
		})
	}
}
