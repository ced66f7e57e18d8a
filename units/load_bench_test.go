package units

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSocketIndex checks that SocketIndex gives for every service what
// SocketsFor gives: Sockets= first, in its order and without repeats,
// then the other sockets that activate the service, by name.
func TestSocketIndex(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"app.service":     "[Unit]\n[Service]\nExecStart=/bin/true\nSockets=z.socket b.socket z.socket\n",
		"z.socket":        "[Socket]\nListenStream=/tmp/z.sock\nService=app.service\n",
		"b.socket":        "[Socket]\nListenStream=/tmp/b.sock\nService=other.service\n",
		"c.socket":        "[Socket]\nListenStream=/tmp/c.sock\nService=app.service\n",
		"a.socket":        "[Socket]\nListenStream=/tmp/a.sock\nService=app.service\n",
		"other.service":   "[Service]\nExecStart=/bin/true\n",
		"lone.service":    "[Service]\nExecStart=/bin/true\n",
		"echo@.service":   "[Service]\nExecStart=/bin/cat\n",
		"echo.socket":     "[Socket]\nListenStream=/tmp/echo.sock\nAccept=yes\n",
		"plain.socket":    "[Socket]\nListenStream=/tmp/plain.sock\n",
		"plain.service":   "[Service]\nExecStart=/bin/true\n",
		"second.socket":   "[Socket]\nListenStream=/tmp/second.sock\nService=plain.service\n",
		"another.service": "[Service]\nExecStart=/bin/true\nSockets=plain.socket\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, diags, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diags.Err() != nil {
		t.Fatalf("diagnostics: %v", diags)
	}
	idx := set.SocketIndex()
	names := func(ss []*Socket) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.Name)
		}
		return out
	}
	if got, want := names(idx["app.service"]), []string{"z.socket", "b.socket", "a.socket", "c.socket"}; !slices.Equal(got, want) {
		t.Errorf("index[app.service] = %q, want %q", got, want)
	}
	if got, want := names(idx["plain.service"]), []string{"plain.socket", "second.socket"}; !slices.Equal(got, want) {
		t.Errorf("index[plain.service] = %q, want %q", got, want)
	}
	for name := range set.Services {
		if got, want := names(idx[name]), names(set.SocketsFor(name)); !slices.Equal(got, want) {
			t.Errorf("index[%s] = %q, SocketsFor = %q", name, got, want)
		}
	}
	for _, s := range set.Sockets {
		if got, want := names(idx[s.Service]), names(set.SocketsFor(s.Service)); !slices.Equal(got, want) {
			t.Errorf("index[%s] = %q, SocketsFor = %q", s.Service, got, want)
		}
	}
	if got := idx["missing.service"]; got != nil {
		t.Errorf("index[missing.service] = %q", names(got))
	}
}

// BenchmarkLoadDir loads a directory of n units, each a sleep service
// and its socket, as sockd's start and every reload do.
func BenchmarkLoadDir(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			dir := b.TempDir()
			for i := range n {
				name := filepath.Join(dir, fmt.Sprintf("u%05d", i))
				if err := os.WriteFile(name+".socket", []byte("[Socket]\nListenStream="+name+".sock\n"), 0o644); err != nil {
					b.Fatal(err)
				}
				if err := os.WriteFile(name+".service", []byte("[Service]\nExecStart=/bin/sleep infinity\n"), 0o644); err != nil {
					b.Fatal(err)
				}
			}
			var ru0, ru1 unix.Rusage
			unix.Getrusage(unix.RUSAGE_SELF, &ru0)
			b.ResetTimer()
			for b.Loop() {
				set, diags, err := LoadDir(dir)
				if err != nil || diags.Err() != nil || len(set.Services) != n {
					b.Fatalf("load: %v %v, %d services", err, diags, len(set.Services))
				}
			}
			unix.Getrusage(unix.RUSAGE_SELF, &ru1)
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/unit")
			// CPU is the figure to compare on shared cores.
			cpu := ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
			b.ReportMetric(float64(cpu)/1e3/float64(b.N)/float64(n), "cpuµs/unit")
		})
	}
}

// TestPrelexSameAsSequential loads a directory of units with errors,
// warnings, masked and instance files both ways, files read ahead in
// parallel and one after the other, and checks that the units and the
// diagnostics, in their order, are the same.
func TestPrelexSameAsSequential(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 60 {
		name := fmt.Sprintf("u%02d", i)
		sock, svc := "[Socket]\nListenStream=/tmp/"+name+".sock\n", "[Service]\nExecStart=/bin/sleep infinity\n"
		switch i % 6 {
		case 1:
			svc += "Bogus=1\n" // a warning
		case 2:
			sock = "[Socket]\nListenStream=\n" // an error: the unit is left out
		case 3:
			svc = "" // masked
		case 4:
			svc += "Restart=sometimes\n" // an error
		case 5:
			sock = "ListenStream=outside a section\n"
		}
		write(name+".socket", sock)
		write(name+".service", svc)
	}
	write("echo@.socket", "[Socket]\nListenStream=/tmp/echo-%i.sock\n")
	write("echo@.service", "[Service]\nExecStart=/bin/cat\n")
	if err := os.Symlink("echo@.socket", filepath.Join(dir, "echo@a.socket")); err != nil {
		t.Fatal(err)
	}
	par, pd, err := newLoader(dir, LoadOptions{}).loadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	l := newLoader(dir, LoadOptions{})
	l.sequential = true
	seq, sd, err := l.loadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(par, seq) {
		t.Errorf("units differ:\nparallel   %v %v\nsequential %v %v", sortedKeys(par.Services), sortedKeys(par.Sockets), sortedKeys(seq.Services), sortedKeys(seq.Sockets))
	}
	if !reflect.DeepEqual(pd, sd) {
		t.Errorf("diagnostics differ:\nparallel   %v\nsequential %v", pd, sd)
	}
	if len(pd) < 30 || len(par.Services) < 10 || len(par.Services) > 50 {
		t.Errorf("%d diagnostics, %d services: the directory does not test what it should", len(pd), len(par.Services))
	}
}
