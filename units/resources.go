package units

// Resource control, systemd.resource-control(5): MemoryMax=, MemoryHigh=,
// TasksMax=, CPUWeight=, CPUQuota=, IOWeight=, as the values sockd
// writes to the unit's cgroup v2 interface files.

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Resource is one resource-control option of a service, as what is
// written to one interface file of the unit's cgroup.
type Resource struct {
	Option     string // "MemoryMax"
	Controller string // the cgroup v2 controller it needs: "memory"
	File       string // the interface file: "memory.max"
	Value      string // what is written to it: "1073741824", "max", "50000 100000"
	Source     string // the unit file (or drop-in) that set it
	Line       int
}

// resourceOptions are the options and how each becomes a file's value.
var resourceOptions = map[string]struct {
	controller, file string
	parse            func(string) (string, error)
}{
	"MemoryMax":  {"memory", "memory.max", parseMemory},
	"MemoryHigh": {"memory", "memory.high", parseMemory},
	"TasksMax":   {"pids", "pids.max", parseTasks},
	"CPUWeight":  {"cpu", "cpu.weight", parseWeight},
	"CPUQuota":   {"cpu", "cpu.max", parseCPUQuota},
	"IOWeight": {"io", "io.weight", func(v string) (string, error) {
		w, err := parseWeight(v)
		return "default " + w, err
	}},
}

// ResourceDefaults are the values of the interface files of
// resourceOptions in a cgroup none of them was set for: what sockd
// writes when an option is removed.
var ResourceDefaults = map[string]string{
	"memory.max":  "max",
	"memory.high": "max",
	"pids.max":    "max",
	"cpu.weight":  "100",
	"cpu.max":     "max 100000",
	"io.weight":   "default 100",
}

func init() {
	hs := map[string]serviceHandler{}
	for name, r := range resourceOptions {
		hs[name] = func(b *serviceBuild, o rawOption) error {
			// A later assignment replaces an earlier one; an empty one
			// resets the option.
			kept := b.s.Resources[:0:0]
			for _, x := range b.s.Resources {
				if x.Option != name {
					kept = append(kept, x)
				}
			}
			b.s.Resources = kept
			if strings.TrimSpace(o.Value) == "" {
				return nil
			}
			v, err := r.parse(strings.TrimSpace(o.Value))
			if err != nil {
				return err
			}
			b.s.Resources = append(b.s.Resources, Resource{Option: name, Controller: r.controller, File: r.file, Value: v, Source: o.File, Line: o.Line})
			return nil
		}
	}
	registerServiceOptions(hs)
}

// parseMemory reads bytes with a K, M, G, T (1024-based) suffix,
// "infinity", or a percentage of physical memory.
func parseMemory(v string) (string, error) {
	if v == "infinity" {
		return "max", nil
	}
	if pct, ok := strings.CutSuffix(v, "%"); ok {
		p, err := parsePercent(pct)
		if err != nil {
			return "", fmt.Errorf("invalid value %q: %w", v, err)
		}
		var si unix.Sysinfo_t
		if err := unix.Sysinfo(&si); err != nil {
			return "", fmt.Errorf("physical memory: %w", err)
		}
		total := float64(si.Totalram) * float64(si.Unit)
		return strconv.FormatUint(uint64(total*p/100), 10), nil
	}
	n, err := parseBytes(v)
	if err != nil {
		return "", fmt.Errorf("invalid value %q (want bytes with K, M, G or T, a percentage, or infinity): %w", v, err)
	}
	return strconv.FormatUint(n, 10), nil
}

// parseBytes reads "512", "512K", "1.5G" (1024-based, as systemd).
func parseBytes(v string) (uint64, error) {
	mult := uint64(1)
	if v != "" {
		switch v[len(v)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		case 'P':
			mult = 1 << 50
		case 'E':
			mult = 1 << 60
		}
		if mult != 1 {
			v = v[:len(v)-1]
		}
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || math.IsNaN(f) || strings.ContainsAny(v, "eExXpP_") {
		return 0, fmt.Errorf("not a size")
	}
	b := f * float64(mult)
	if b >= math.MaxUint64/2 {
		return 0, fmt.Errorf("too large")
	}
	return uint64(b), nil
}

// parsePercent reads "50" or "12.5" (of a percentage), 0 to 100.
func parsePercent(v string) (float64, error) {
	p, err := strconv.ParseFloat(v, 64)
	if err != nil || p < 0 || p > 100 || math.IsNaN(p) || strings.ContainsAny(v, "eExXpP_") {
		return 0, fmt.Errorf("not a percentage from 0 to 100")
	}
	return p, nil
}

// pidMax is the kernel's pid_max, the whole of TasksMax=100%.
var pidMax = func() (uint64, error) {
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// parseTasks reads a count, "infinity", or a percentage of pid_max.
func parseTasks(v string) (string, error) {
	if v == "infinity" {
		return "max", nil
	}
	if pct, ok := strings.CutSuffix(v, "%"); ok {
		p, err := parsePercent(pct)
		if err != nil {
			return "", fmt.Errorf("invalid value %q: %w", v, err)
		}
		m, err := pidMax()
		if err != nil {
			return "", fmt.Errorf("pid_max: %w", err)
		}
		return strconv.FormatUint(uint64(float64(m)*p/100), 10), nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return "", fmt.Errorf("invalid value %q (want a count above 0, a percentage, or infinity)", v)
	}
	return strconv.FormatUint(n, 10), nil
}

// parseWeight reads a weight from 1 to 10000.
func parseWeight(v string) (string, error) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n < 1 || n > 10000 {
		return "", fmt.Errorf("invalid value %q (want a weight from 1 to 10000)", v)
	}
	return strconv.FormatUint(n, 10), nil
}

// parseCPUQuota reads "NN%" of one CPU (above 100% for more than one):
// cpu.max's quota over a 100 ms period.
func parseCPUQuota(v string) (string, error) {
	pct, ok := strings.CutSuffix(v, "%")
	p, err := strconv.ParseFloat(pct, 64)
	if !ok || err != nil || p <= 0 || p > 1e6 || math.IsNaN(p) || strings.ContainsAny(pct, "eExXpP_") {
		return "", fmt.Errorf("invalid value %q (want a percentage above 0%%, e.g. 20%% or 150%%)", v)
	}
	quota := uint64(math.Round(p * 1000))
	if quota < 1000 {
		quota = 1000 // the kernel's minimum, 1 ms
	}
	return strconv.FormatUint(quota, 10) + " 100000", nil
}
