package children

import "testing"

// benchStart starts /bin/true from spec b.N times, one after the other,
// and waits for each to be reaped.
func benchStart(b *testing.B, spec Spec) {
	b.Helper()
	spec.Path, spec.Argv = "/bin/true", []string{"true"}
	for b.Loop() {
		p, err := Start(spec)
		if err != nil {
			b.Fatal(err)
		}
		<-p.Done()
		if exit := p.Exit(); !exit.Success() {
			b.Fatalf("true: %v", exit)
		}
	}
}

// BenchmarkStartDirect is the cost of a spawn without the exec helper.
func BenchmarkStartDirect(b *testing.B) {
	benchStart(b, Spec{Umask: -1})
}

// BenchmarkStartHelper is the cost of a spawn through the exec helper
// (PIDEnv set); the difference to BenchmarkStartDirect is the helper's.
func BenchmarkStartHelper(b *testing.B) {
	benchStart(b, Spec{Umask: -1, PIDEnv: "LISTEN_PID"})
}
