package fleettest_test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sockd/sockd/units"
)

// contrib is the contrib directory, from this package's.
const contrib = ".."

// image is what contrib/Dockerfile puts in the image: the files its last
// stage copies from the build stage, by their path in the image, with
// their source, and its entrypoint.
type image struct {
	files      map[string]string // path in the image → path in the build stage
	entrypoint []string
}

// has reports whether the image holds the program p: a file copied in,
// or one of debian:bookworm-slim's own that the files here run.
func (im image) has(p string) bool {
	if _, ok := im.files[p]; ok {
		return true
	}
	return p == "/bin/sh" || p == "/usr/bin/cat" || p == "/bin/cat"
}

// loadImage reads contrib/Dockerfile and checks its stages: the build
// stage is the Go of go.mod on bookworm and runs make build, the last
// stage is bookworm-slim, and it copies sockd and sockctl from the
// build stage's bin/, where make build writes them.
func loadImage(t *testing.T) image {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(contrib, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// Instructions, with continuation lines joined and comments dropped.
	var ins [][]string
	var cont string
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || line == "" && cont == "" {
			continue
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cont += s + " "
			continue
		}
		line, cont = cont+line, ""
		ins = append(ins, strings.Fields(line))
	}
	goVersion := goModVersion(t)
	im := image{files: map[string]string{}}
	var stages []string // FROM image of each stage
	var workdir string
	buildDir := map[string]string{} // stage name → its WORKDIR
	var stage string
	var ran []string // RUN commands of the build stage
	for _, in := range ins {
		switch op := strings.ToUpper(in[0]); op {
		case "FROM":
			stages = append(stages, in[1])
			stage = ""
			if len(in) == 4 && strings.EqualFold(in[2], "AS") {
				stage = in[3]
			}
			workdir = "/"
		case "WORKDIR":
			workdir = in[1]
			buildDir[stage] = workdir
		case "RUN":
			if len(stages) == 1 {
				ran = append(ran, strings.Join(in[1:], " "))
			}
		case "COPY":
			args := in[1:]
			from := ""
			if f, ok := strings.CutPrefix(args[0], "--from="); ok {
				from, args = f, args[1:]
			}
			if from == "" || len(stages) < 2 {
				continue // the build stage's own copies of the source
			}
			dst := args[len(args)-1]
			for _, src := range args[:len(args)-1] {
				if !path.IsAbs(src) {
					src = path.Join(buildDir[from], src)
				}
				p := dst
				if strings.HasSuffix(dst, "/") {
					p = path.Join(dst, path.Base(src))
				}
				im.files[p] = src
			}
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(strings.Join(in[1:], " ")), &im.entrypoint); err != nil {
				t.Fatalf("Dockerfile: ENTRYPOINT is not in exec form (a JSON array), so sockd would not be PID 1 and miss SIGTERM: %v", err)
			}
		}
	}
	if want := "golang:" + goVersion + "-bookworm"; len(stages) != 2 || stages[0] != want || stages[1] != "debian:bookworm-slim" {
		t.Fatalf("Dockerfile: stages %q, want [%s debian:bookworm-slim] (go.mod's Go; the same Debian release, for cgo's glibc)", stages, want)
	}
	if !slices.Contains(ran, "make build") {
		t.Fatalf("Dockerfile: the build stage runs %q, want make build", ran)
	}
	built := makeBuildOutputs(t)
	for _, bin := range []string{"sockd", "sockctl"} {
		src, ok := im.files["/usr/local/bin/"+bin]
		if !ok {
			t.Fatalf("Dockerfile: no /usr/local/bin/%s in the image (it has %v)", bin, im.files)
		}
		if !slices.Contains(built, path.Base(src)) || path.Base(path.Dir(src)) != "bin" {
			t.Fatalf("Dockerfile: /usr/local/bin/%s comes from %s, which make build does not write (it writes bin/%v)", bin, src, built)
		}
	}
	if len(im.entrypoint) == 0 || !im.has(im.entrypoint[0]) || path.Base(im.entrypoint[0]) != "sockd" {
		t.Fatalf("Dockerfile: ENTRYPOINT %q, want the image's sockd", im.entrypoint)
	}
	return im
}

// goModVersion is the major.minor Go version of go.mod.
func goModVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(contrib, "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(data)
	if m == nil {
		t.Fatal("go.mod: no go line")
	}
	return string(m[1])
}

// makeBuildOutputs are the names of the binaries make build writes.
func makeBuildOutputs(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(contrib, "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`-o \$\(BIN\)/(\S+)`).FindAllSubmatch(data, -1) {
		out = append(out, string(m[1]))
	}
	return out
}

// TestDockerfile checks contrib/Dockerfile: what loadImage checks, and
// that the deploy hook the orchestrators' deploy steps run is in the
// image, from contrib/deploy-hook, which restarts with --wait.
func TestDockerfile(t *testing.T) {
	im := loadImage(t)
	checkDeployHook(t, im, "/usr/local/lib/sockd/deploy-hook")
}

// checkDeployHook checks that the image has the deploy hook at p, copied
// from contrib/deploy-hook, and that the hook restarts its unit with
// --wait and exits with sockctl's status.
func checkDeployHook(t *testing.T, im image, p string) {
	t.Helper()
	src, ok := im.files[p]
	if !ok {
		t.Fatalf("the image has no %s (it has %v)", p, im.files)
	}
	if !strings.HasSuffix(src, "/contrib/deploy-hook") {
		t.Fatalf("the image's %s comes from %s, not contrib/deploy-hook", p, src)
	}
	data, err := os.ReadFile(filepath.Join(contrib, "deploy-hook"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\s*"\$\{SOCKCTL:-sockctl\}" restart "\$unit" --wait "\$@"$`).Match(data) {
		t.Fatal("contrib/deploy-hook does not run sockctl restart UNIT --wait")
	}
	if !strings.Contains(string(data), `exit "$rc"`) {
		t.Fatal("contrib/deploy-hook does not exit with sockctl's status")
	}
}

// flagValues reads --name VALUE and --name=VALUE pairs from args.
func flagValues(args []string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		name, ok := strings.CutPrefix(args[i], "--")
		if !ok {
			continue
		}
		if n, v, ok := strings.Cut(name, "="); ok {
			out[n] = v
		} else if i+1 < len(args) {
			out[name] = args[i+1]
			i++
		}
	}
	return out
}

// checkSockdArgs checks sockd's arguments: --units and --api are
// absolute paths, and the API socket lies in apiMount, the directory
// the host volume is mounted at, so that it is on the node.
func checkSockdArgs(t *testing.T, what string, args []string, apiMount string) (unitsDir, apiPath string) {
	t.Helper()
	f := flagValues(args)
	unitsDir, apiPath = f["units"], f["api"]
	if !path.IsAbs(unitsDir) {
		t.Fatalf("%s: sockd's --units is %q, want an absolute path", what, unitsDir)
	}
	if !path.IsAbs(apiPath) {
		t.Fatalf("%s: sockd's --api is %q, want an absolute path", what, apiPath)
	}
	if apiMount == "" || path.Dir(apiPath) != path.Clean(apiMount) {
		t.Fatalf("%s: sockd's --api %s is not in the host volume's mount %q", what, apiPath, apiMount)
	}
	if rt, ok := f["runtime-dir"]; ok && path.Clean(rt) != path.Clean(apiMount) {
		t.Fatalf("%s: --runtime-dir %s is not the host volume %s", what, rt, apiMount)
	}
	return unitsDir, apiPath
}

// checkUnits loads the unit files (name → content) as sockd verify
// does, and requires no diagnostic, a service with a socket, and every
// TimeoutStopSec= shorter than grace, the time the orchestrator gives
// sockd to stop. It returns the set.
func checkUnits(t *testing.T, what string, files map[string]string, grace time.Duration) *units.Set {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, diags, err := units.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diags {
		t.Errorf("%s: %s", what, d)
	}
	if t.Failed() {
		t.FailNow()
	}
	if len(set.Sockets) == 0 || len(set.Services) == 0 {
		t.Fatalf("%s: units %v: want a socket and its service", what, slices.Sorted(func(yield func(string) bool) {
			for n := range files {
				if !yield(n) {
					return
				}
			}
		}))
	}
	for name, s := range set.Services {
		if s.TimeoutStopSec >= grace {
			t.Fatalf("%s: %s has TimeoutStopSec=%v, not less than the %v the orchestrator waits for sockd to stop", what, name, s.TimeoutStopSec, grace)
		}
	}
	return set
}

// shellSyntax runs sh -n on the script at p.
func shellSyntax(t *testing.T, p string) {
	t.Helper()
	if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
		t.Fatalf("sh -n %s: %v\n%s", p, err, out)
	}
}
