// Command bench is `make bench`: it runs sockd, its peers and a load
// generator in one go and prints one table of figures, each beside the
// peer it is compared with, measured in the same run (cold start, data
// path, restart under load, scale, recovery after a re-exec and after a
// crash, leaks, one unit's idle RSS beside its peers', 10,000 tenants).
// It writes the table to -out as well. It expects `make
// build` to have written bin/ and builds bench/loadgen itself; it bounds
// its own time with -timeout.
//
//	go run ./bench [-bin bin] [-out bench/results/latest.md] [-timeout 12m]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// row is one line of the table.
type row struct {
	figure, sockd, peer, diff, target, met string
}

// results collects rows and notes as the steps run.
type results struct {
	rows  []row
	notes []string
}

func (r *results) add(x row) {
	r.rows = append(r.rows, x)
	fmt.Fprintf(os.Stderr, "  %s | %s | %s | %s | %s | %s\n", x.figure, x.sockd, x.peer, x.diff, x.target, x.met)
}

func (r *results) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	r.notes = append(r.notes, s)
	fmt.Fprintln(os.Stderr, "  note:", s)
}

// fail records a step that could not be measured.
func (r *results) fail(step string, err error) {
	r.add(row{figure: step, sockd: "not measured", met: "no"})
	r.note("%s: %v", step, err)
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func main() {
	binDir := flag.String("bin", "bin", "directory of sockd, sockctl and sockd-demo (make build)")
	out := flag.String("out", "", "also write the table to this file")
	timeout := flag.Duration("timeout", 12*time.Minute, "bound of the whole run")
	only := flag.String("only", "", "comma-separated steps to run (cold,datapath,restart,scale,recovery,leaks,oneunit,tenants); default all")
	flag.IntVar(&tenantsWant, "tenants", tenantUnits, "how many units the tenants step loads (fewer where the open-files limit holds fewer)")
	flag.Parse()
	if err := run(*binDir, *out, *timeout, *only); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(binDir, out string, timeout time.Duration, only string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	abs, err := filepath.Abs(binDir)
	if err != nil {
		return err
	}
	b := &bins{
		sockd:   filepath.Join(abs, "sockd"),
		sockctl: filepath.Join(abs, "sockctl"),
		demo:    filepath.Join(abs, "sockd-demo"),
		python:  "/usr/bin/python3",
	}
	for _, p := range []string{b.sockd, b.sockctl, b.demo} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w (run make build first)", err)
		}
	}
	if b.ssa, err = exec.LookPath("systemd-socket-activate"); err != nil {
		return fmt.Errorf("systemd-socket-activate (Debian's systemd package; make deps): %w", err)
	}
	tmp, err := os.MkdirTemp("", "sockd-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	b.loadgen = filepath.Join(tmp, "loadgen")
	b.floor = filepath.Join(tmp, "floor")
	b.acceptone = filepath.Join(tmp, "acceptone")
	for _, prog := range []string{b.loadgen, b.floor, b.acceptone} {
		build := exec.CommandContext(ctx, "go", "build", "-o", prog, "./bench/"+filepath.Base(prog))
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build bench/%s: %w", filepath.Base(prog), err)
		}
	}

	steps := []struct {
		name string
		run  func(context.Context, *bins, *ports, *results) error
		max  time.Duration
	}{
		{"cold", coldStart, 90 * time.Second},
		{"datapath", dataPath, 90 * time.Second},
		{"restart", restartUnderLoad, 240 * time.Second},
		{"scale", scale, 120 * time.Second},
		{"recovery", recovery, 90 * time.Second},
		{"leaks", leaks, 150 * time.Second},
		{"oneunit", oneUnit, 60 * time.Second},
		{"tenants", tenants, 300 * time.Second},
	}
	res := &results{}
	p := newPorts()
	start := time.Now()
	for _, st := range steps {
		if only != "" && !strings.Contains(","+only+",", ","+st.name+",") {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: %s (at most %s)\n", st.name, st.max)
		sctx, scancel := context.WithTimeout(ctx, st.max)
		t0 := time.Now()
		if err := st.run(sctx, b, p, res); err != nil {
			res.fail(st.name, err)
		}
		scancel()
		fmt.Fprintf(os.Stderr, "bench: %s took %.1f s\n", st.name, time.Since(t0).Seconds())
	}
	table := render(res, time.Since(start))
	fmt.Print(table)
	if out != "" {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(out, []byte(table), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", out, err)
		}
		fmt.Fprintf(os.Stderr, "bench: wrote %s\n", out)
	}
	return nil
}

// render formats the results as markdown.
func render(res *results, took time.Duration) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# sockd bench\n\n")
	fmt.Fprintf(&sb, "%s · %d CPUs (%s) · Linux %s · %s · `make bench` took %.0f s\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), cpuModel(), kernel(), runtime.Version(), took.Seconds())
	fmt.Fprintf(&sb, "| figure | sockd | peer | ratio / diff | target | met? |\n|---|---|---|---|---|---|\n")
	for _, r := range res.rows {
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %s |\n", r.figure, orDash(r.sockd), orDash(r.peer), orDash(r.diff), orDash(r.target), orDash(r.met))
	}
	if len(res.notes) > 0 {
		fmt.Fprintf(&sb, "\nNotes:\n\n")
		for _, n := range res.notes {
			fmt.Fprintf(&sb, "- %s\n", n)
		}
	}
	return sb.String()
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 8192))
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return "?"
}
