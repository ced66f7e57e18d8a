package children

import (
	"os"
	"testing"

	"github.com/sockd/sockd/internal/sandbox"
)

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

// BenchmarkStartDirect is the cost of a spawn with nothing to set up in
// the child: the C spawn in cgo builds.
func BenchmarkStartDirect(b *testing.B) {
	benchStart(b, Spec{Umask: -1})
}

// BenchmarkStartHelper is the cost of a spawn with PIDEnv set: the C
// spawn in cgo builds (no exec helper), the Go helper without cgo.
func BenchmarkStartHelper(b *testing.B) {
	benchStart(b, Spec{Umask: -1, PIDEnv: "LISTEN_PID"})
}

// BenchmarkStartForkExec is BenchmarkStartDirect through Go's
// syscall.ForkExec, as Start did before the C spawn.
func BenchmarkStartForkExec(b *testing.B) {
	forceForkExec = true
	defer func() { forceForkExec = false }()
	benchStart(b, Spec{Umask: -1})
}

// BenchmarkStartForkExecHelper is BenchmarkStartHelper through
// ForkExec and the exec helper (the C one in cgo builds), as Start did
// before the C spawn: the difference to BenchmarkStartHelper is what the
// spawn saves.
func BenchmarkStartForkExecHelper(b *testing.B) {
	forceForkExec = true
	defer func() { forceForkExec = false }()
	benchStart(b, Spec{Umask: -1, PIDEnv: "LISTEN_PID"})
}

// BenchmarkStartSandboxNNP is a spawn with the smallest sandbox
// (NoNewPrivileges=): ForkExec and the Go helper, so the difference to
// BenchmarkStartForkExecHelper is a Go runtime's start.
func BenchmarkStartSandboxNNP(b *testing.B) {
	benchStart(b, Spec{Umask: -1, PIDEnv: "LISTEN_PID", Sandbox: &sandbox.Setup{Options: sandbox.Options{NoNewPrivileges: true}}})
}

// BenchmarkStartSandboxStrict adds a mount namespace
// (ProtectSystem=strict, PrivateDevices=): the cost of building it.
func BenchmarkStartSandboxStrict(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("mount namespaces need root")
	}
	staging := b.TempDir()
	benchStart(b, Spec{Umask: -1, PIDEnv: "LISTEN_PID", Sandbox: &sandbox.Setup{Staging: staging,
		Options: sandbox.Options{NoNewPrivileges: true, ProtectSystem: "strict", PrivateDevices: true}}})
}
