package units

import (
	"reflect"
	"testing"
	"time"
)

// RestartSteps= and RestartMaxDelaySec=: good values, their defaults,
// and bad values with file, line and option.
func TestRestartBackoffOptions(t *testing.T) {
	for _, tc := range []struct {
		name      string
		lines     string
		steps     int
		max, sec  time.Duration
		wantDiags []string
	}{
		{"defaults", "", 0, 0, 100 * time.Millisecond, nil},
		{"both", "RestartSec=1\nRestartSteps=5\nRestartMaxDelaySec=1min\n", 5, time.Minute, time.Second, nil},
		{"units", "RestartSteps=3\nRestartMaxDelaySec=2min 30s\n", 3, 150 * time.Second, 100 * time.Millisecond, nil},
		{"infinity is the default", "RestartSteps=3\nRestartMaxDelaySec=5s\nRestartMaxDelaySec=infinity\n", 3, 0, 100 * time.Millisecond,
			[]string{"app.service:3: warning: RestartSteps: no RestartMaxDelaySec=: ignored, as in systemd"}},
		{"steps alone", "RestartSteps=4\n", 4, 0, 100 * time.Millisecond,
			[]string{"app.service:3: warning: RestartSteps: no RestartMaxDelaySec=: ignored, as in systemd"}},
		{"max alone", "RestartMaxDelaySec=10s\n", 0, 10 * time.Second, 100 * time.Millisecond,
			[]string{"app.service:3: warning: RestartMaxDelaySec: no RestartSteps=: ignored, as in systemd"}},
		{"max below RestartSec", "RestartSec=5s\nRestartSteps=2\nRestartMaxDelaySec=2s\n", 2, 2 * time.Second, 2 * time.Second,
			[]string{"app.service:5: warning: RestartMaxDelaySec: 2s is below RestartSec=5s: RestartSec= is lowered to it, as in systemd"}},
		{"steps 0", "RestartSteps=0\n", 0, 0, 100 * time.Millisecond, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, diags := load(t, map[string]string{"app.service": okService + tc.lines})
			if !reflect.DeepEqual(diags, tc.wantDiags) {
				t.Errorf("diagnostics %q, want %q", diags, tc.wantDiags)
			}
			s := set.Services["app.service"]
			if s == nil {
				t.Fatal("not loaded")
			}
			if s.RestartSteps != tc.steps || s.RestartMaxDelay != tc.max || s.RestartSec != tc.sec {
				t.Errorf("RestartSteps=%d RestartMaxDelay=%v RestartSec=%v, want %d %v %v",
					s.RestartSteps, s.RestartMaxDelay, s.RestartSec, tc.steps, tc.max, tc.sec)
			}
		})
	}
	for _, tc := range []struct{ name, lines, want string }{
		{"steps negative", "RestartSteps=-1\n", `app.service:3: RestartSteps: invalid number "-1"`},
		{"steps word", "RestartSteps=many\n", `app.service:3: RestartSteps: invalid number "many"`},
		{"steps empty", "RestartSteps=\n", `app.service:3: RestartSteps: invalid number ""`},
		{"steps too large", "RestartSteps=4294967296\n", "app.service:3: RestartSteps: 4294967296 out of range (max 2147483647)"},
		{"max bad", "RestartSteps=2\nRestartMaxDelaySec=soon\n", `app.service:4: RestartMaxDelaySec: invalid time span "soon"`},
		{"max negative", "RestartSteps=2\nRestartMaxDelaySec=-5s\n", `app.service:4: RestartMaxDelaySec: invalid time span "-5s"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, diags := load(t, map[string]string{"app.service": okService + tc.lines})
			found := false
			for _, d := range diags {
				found = found || d == tc.want
			}
			if !found {
				t.Errorf("diagnostics %q, want %q among them", diags, tc.want)
			}
			if set.Services["app.service"] != nil {
				t.Errorf("loaded despite the error")
			}
		})
	}
}
