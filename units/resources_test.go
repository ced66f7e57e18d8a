package units

import (
	"strings"
	"testing"
)

func TestResourceOptions(t *testing.T) {
	for _, c := range []struct {
		opt, val, file, want, err string
	}{
		{"MemoryMax", "512M", "memory.max", "536870912", ""},
		{"MemoryMax", "1G", "memory.max", "1073741824", ""},
		{"MemoryMax", "4096", "memory.max", "4096", ""},
		{"MemoryMax", "infinity", "memory.max", "max", ""},
		{"MemoryHigh", "1.5K", "memory.high", "1536", ""},
		{"TasksMax", "64", "pids.max", "64", ""},
		{"TasksMax", "infinity", "pids.max", "max", ""},
		{"CPUWeight", "200", "cpu.weight", "200", ""},
		{"CPUQuota", "20%", "cpu.max", "20000 100000", ""},
		{"CPUQuota", "150%", "cpu.max", "150000 100000", ""},
		{"IOWeight", "50", "io.weight", "default 50", ""},
		{"MemoryMax", "12Q", "", "", "app.service:6: MemoryMax: invalid value \"12Q\""},
		{"MemoryMax", "-1", "", "", "invalid value"},
		{"MemoryMax", "101%", "", "", "not a percentage"},
		{"TasksMax", "0", "", "", "invalid value"},
		{"CPUWeight", "0", "", "", "weight from 1 to 10000"},
		{"CPUWeight", "10001", "", "", "weight from 1 to 10000"},
		{"IOWeight", "x", "", "", "weight from 1 to 10000"},
		{"CPUQuota", "20", "", "", "want a percentage"},
		{"CPUQuota", "0%", "", "", "want a percentage"},
	} {
		src := "[Service]\nExecStart=/bin/true\nKillMode=control-group\nType=simple\nUser=root\n" + c.opt + "=" + c.val + "\n"
		svc, diags := parseServiceForTest(t, src)
		if c.err != "" {
			if !strings.Contains(diags, c.err) {
				t.Errorf("%s=%s: diagnostics %q, want %q", c.opt, c.val, diags, c.err)
			}
			continue
		}
		if diags != "" {
			t.Errorf("%s=%s: diagnostics %q", c.opt, c.val, diags)
			continue
		}
		if len(svc.Resources) != 1 {
			t.Errorf("%s=%s: resources %+v", c.opt, c.val, svc.Resources)
			continue
		}
		r := svc.Resources[0]
		if r.File != c.file || r.Value != c.want || r.Line != 6 || r.Option != c.opt || !strings.HasSuffix(r.Source, "app.service") {
			t.Errorf("%s=%s: %+v, want %s=%q on line 6", c.opt, c.val, r, c.file, c.want)
		}
	}
}

func TestResourceReset(t *testing.T) {
	svc, diags := parseServiceForTest(t, "[Service]\nExecStart=/bin/true\nMemoryMax=1G\nTasksMax=10\nMemoryMax=2G\nTasksMax=\n")
	if diags != "" {
		t.Fatal(diags)
	}
	if len(svc.Resources) != 1 || svc.Resources[0].Value != "2147483648" || svc.Resources[0].Line != 5 {
		t.Fatalf("resources %+v, want MemoryMax=2G from line 5 only", svc.Resources)
	}
	svc, _ = parseServiceForTest(t, "[Service]\nExecStart=/bin/true\nMemoryMax=50%\nTasksMax=10%\n")
	if len(svc.Resources) != 2 || svc.Resources[0].Value == "0" || svc.Resources[1].Value == "0" {
		t.Fatalf("percentages: %+v", svc.Resources)
	}
}

// parseServiceForTest loads app.service with src and returns it (nil if
// it did not load) and its diagnostics joined.
func parseServiceForTest(t *testing.T, src string) (*Service, string) {
	t.Helper()
	set, diags := load(t, map[string]string{"app.service": src})
	var svc *Service
	for _, s := range set.Services {
		if s.Name == "app.service" {
			svc = s
		}
	}
	return svc, strings.Join(diags, "\n")
}
