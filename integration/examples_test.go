package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every example unit directory passes `sockd verify`, and every example
// app serves through sockd, restarts with `--wait`, and serves from a new
// process afterwards.
func TestExamples(t *testing.T) {
	root, err := filepath.Abs("../contrib/examples")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin.sockd, "verify", root, filepath.Join(root, "gunicorn"), filepath.Join(root, "uvicorn"),
		filepath.Join(root, "go"), filepath.Join(root, "node")).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("sockd verify: %v\n%s", err, out)
	}
	for _, tc := range []struct{ dir, unit, answer string }{
		{"gunicorn", "web", "hello from gunicorn worker "},
		{"uvicorn", "api", "hello from uvicorn "},
		{"go", "goapp", "hello from a Go instance (pid "},
		{"node", "nodeapp", "hello from node "},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			port := freePort(t)
			files := map[string]string{}
			ents, _ := os.ReadDir(filepath.Join(root, tc.dir))
			for _, e := range ents {
				if !strings.HasSuffix(e.Name(), ".socket") && !strings.HasSuffix(e.Name(), ".service") {
					continue
				}
				b, err := os.ReadFile(filepath.Join(root, tc.dir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				s := strings.ReplaceAll(string(b), "/usr/local/share/sockd/examples", root)
				s = strings.ReplaceAll(s, "/usr/local/bin/sockd-demo", bin.demo)
				s = regexp.MustCompile(`127\.0\.0\.1:800\d`).ReplaceAllString(s, fmt.Sprintf("127.0.0.1:%d", port))
				files[e.Name()] = s
			}
			s := startSockd(t, writeUnits(t, files))
			c := client("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			first := get(t, c)
			if !strings.HasPrefix(first, tc.answer) {
				t.Fatalf("answer %q, want %q…", first, tc.answer)
			}
			before := s.status(tc.unit).Service.Pids
			if out, errs, code := s.ctl("restart", tc.unit, "--wait"); code != 0 {
				t.Fatalf("restart: exit %d\n%s%s", code, out, errs)
			}
			after := s.status(tc.unit).Service.Pids
			for _, p := range before {
				for _, q := range after {
					if p == q {
						t.Fatalf("pid %d survived the restart: before %v after %v", p, before, after)
					}
				}
				if pidAlive(p) {
					t.Fatalf("old pid %d alive after restart --wait", p)
				}
			}
			if got := get(t, c); !strings.HasPrefix(got, tc.answer) {
				t.Fatalf("after restart: %q", got)
			}
		})
	}
}
