package units

import (
	"fmt"
	"testing"
)

func TestLogBufferBytes(t *testing.T) {
	for _, c := range []struct {
		value string
		want  int
		diag  string
	}{
		{"", 0, ""},
		{"512K", 512 << 10, ""},
		{"4M", 4 << 20, ""},
		{"1G", 1 << 30, ""},
		{"65536", 64 << 10, ""},
		{"1.5M", 3 << 19, ""},
		{"1K", 0, `app.service:3: X-LogBufferBytes: invalid value "1K" (want a size from 4K to 1G)`},
		{"2G", 0, `app.service:3: X-LogBufferBytes: invalid value "2G" (want a size from 4K to 1G)`},
		{"lots", 0, `app.service:3: X-LogBufferBytes: invalid value "lots" (want a size from 4K to 1G)`},
	} {
		set, diags := load(t, map[string]string{"app.service": okService + "X-LogBufferBytes=" + c.value + "\n"})
		if c.diag != "" {
			if fmt.Sprint(diags) != fmt.Sprint([]string{c.diag}) {
				t.Errorf("%q: diagnostics %q, want %q", c.value, diags, c.diag)
			}
			continue
		}
		if len(diags) != 0 {
			t.Errorf("%q: diagnostics %q", c.value, diags)
			continue
		}
		if got := set.Services["app.service"].LogBufferBytes; got != c.want {
			t.Errorf("%q: LogBufferBytes = %d, want %d", c.value, got, c.want)
		}
	}
}
