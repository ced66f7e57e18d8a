package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"go.yaml.in/yaml/v3"
)

// kubectlShim stands in for kubectl and a cluster, which this machine
// has not, for contrib/kubernetes/rollout: its pods are sockd processes
// of this test, each with a directory $FLEET/POD holding its unit
// directory (units/..data, a link to a directory beside, as the
// kubelet's) and the path of
// its API socket (api). It answers only what rollout asks:
//
//	get configmap … -o go-template=…   $FLEET/configmap/UNIT.service
//	get pods …                         pod0@node0 pod1@node1 …
//	exec POD -c sockd -- CMD ARGS      CMD run here, with the pod's paths
//
// A pod whose directory has next/ is behind, as a pod is until the
// kubelet's next sync: the first cat there shows its old file, then
// the shim swaps units/..data to next, as the kubelet does.
const kubectlShim = `#!/bin/sh
set -eu
[ "$1" = -n ] && shift 2
verb=$1; shift
case $verb in
get)
	case $1 in
	configmap) exec cat "$FLEET/configmap/$(cat "$FLEET/unit").service" ;;
	pods) for p in $(cat "$FLEET/pods"); do printf '%s@node-%s ' "$p" "$p"; done; exit 0 ;;
	esac ;;
exec)
	pod=$1; shift
	[ "$1" = -c ] && [ "$2" = sockd ] && [ "$3" = -- ] || { echo "kubectl shim: exec $*" >&2; exit 2; }
	shift 3
	d=$FLEET/$pod
	export SOCKD_API="$(cat "$d/api")"
	case $1 in
	cat)
		cat "$d/units/..data/${2#/etc/sockd/units/..data/}"
		if [ -d "$d/next" ]; then
			mv "$d/next" "$d/gen-shim-$$"
			ln -s "../gen-shim-$$" "$d/units/..data_tmp" && mv -T "$d/units/..data_tmp" "$d/units/..data"
		fi
		exit 0 ;;
	sockctl) shift; exec sockctl "$@" ;;
	/usr/local/lib/sockd/deploy-hook) shift; exec "$DEPLOY_HOOK" "$@" ;;
	esac ;;
esac
echo "kubectl shim: $verb $*" >&2
exit 2
`

// fleetPod is one sockd of TestKubernetesRollout, standing for a pod.
type fleetPod struct {
	name string
	dir  string // $FLEET/NAME
	port int
	s    *sockd
}

// TestKubernetesRollout runs contrib/kubernetes/rollout across three
// sockd, each with a unit directory laid out as a ConfigMap volume and
// the units of contrib/kubernetes/sockd.yaml (on loopback ports), under
// continuous load on each, with kubectl played by kubectlShim. A new
// release reaches every node, the roll waiting for a node whose volume
// is behind, with no failed request; a broken release stops the roll at
// the first node, which rolls back, and leaves the others untouched:
// every node serves the previous release, with no failed request.
func TestKubernetesRollout(t *testing.T) {
	cmUnits := configMapUnits(t, "../contrib/kubernetes/sockd.yaml")
	service := strings.ReplaceAll(cmUnits["web.service"], "ExecStart=/usr/local/bin/sockd-demo", "ExecStart="+bin.demo)
	if !strings.Contains(service, "release v1") || service == cmUnits["web.service"] {
		t.Fatalf("sockd.yaml's web.service is not the demo's release v1:\n%s", cmUnits["web.service"])
	}
	fleet := filepathAbs(t, t.TempDir())
	os.Chmod(fleet, 0o755)
	write := func(p, content string) {
		t.Helper()
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	shim := filepath.Join(fleet, "bin", "kubectl")
	write(shim, kubectlShim)
	os.Chmod(shim, 0o755)
	write(filepath.Join(fleet, "unit"), "web")
	write(filepath.Join(fleet, "configmap", "web.service"), service)

	var pods []*fleetPod
	var names []string
	for i := range 3 {
		p := &fleetPod{name: fmt.Sprintf("sockd-%c", 'a'+i), port: freePort(t)}
		p.dir = filepath.Join(fleet, p.name)
		socket := strings.ReplaceAll(cmUnits["web.socket"], "0.0.0.0:8080", fmt.Sprintf("127.0.0.1:%d", p.port))
		write(filepath.Join(p.dir, "gen-0", "web.socket"), socket)
		write(filepath.Join(p.dir, "gen-0", "web.service"), service)
		os.MkdirAll(filepath.Join(p.dir, "units"), 0o755)
		if err := os.Symlink("../gen-0", filepath.Join(p.dir, "units", "..data")); err != nil {
			t.Fatal(err)
		}
		p.s = startSockd(t, filepath.Join(p.dir, "units", "..data"))
		write(filepath.Join(p.dir, "api"), p.s.api)
		pods = append(pods, p)
		names = append(names, p.name)
	}
	write(filepath.Join(fleet, "pods"), strings.Join(names, " "))

	// release puts the ConfigMap's new web.service on the pods: at once
	// on those listed, at their first look (rollout's first cat) on the
	// others. A pod's files change as the kubelet changes them: a new
	// directory, and a new ..data link renamed over the old one.
	gen := 0
	release := func(svc string, now ...*fleetPod) {
		t.Helper()
		gen++
		write(filepath.Join(fleet, "configmap", "web.service"), svc)
		for _, p := range pods {
			next := filepath.Join(p.dir, "next")
			write(filepath.Join(next, "web.socket"), strings.ReplaceAll(cmUnits["web.socket"], "0.0.0.0:8080", fmt.Sprintf("127.0.0.1:%d", p.port)))
			write(filepath.Join(next, "web.service"), svc)
			if !slices.Contains(now, p) {
				continue
			}
			name := fmt.Sprintf("gen-%d", gen)
			tmp := filepath.Join(p.dir, "units", "..data_tmp")
			if err := os.Rename(next, filepath.Join(p.dir, name)); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("../"+name, tmp); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(p.dir, "units", "..data")); err != nil {
				t.Fatal(err)
			}
		}
	}
	rollout := func() (string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sh", "../contrib/kubernetes/rollout", "web")
		cmd.Env = append(os.Environ(), "FLEET="+fleet, "KUBECTL="+shim, "SOCKD_SYNC_TIMEOUT=20",
			"DEPLOY_HOOK="+filepathAbs(t, "../contrib/deploy-hook"), "PATH="+bin.dir+":"+os.Getenv("PATH"))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("rollout: %v\n%s", err, out.String())
		}
		t.Logf("rollout web: exit %d\n%s", cmd.ProcessState.ExitCode(), out.String())
		return out.String(), cmd.ProcessState.ExitCode()
	}
	serves := func(what, want string) {
		t.Helper()
		for _, p := range pods {
			if got := get(t, client("tcp", fmt.Sprintf("127.0.0.1:%d", p.port))); !strings.HasPrefix(got, want) {
				t.Fatalf("%s: %s answers %q, want %s", what, p.name, got, want)
			}
		}
	}
	loads := func() []*load {
		var ls []*load
		for _, p := range pods {
			ls = append(ls, startLoad(t, fmt.Sprintf("127.0.0.1:%d", p.port), false, false))
		}
		return ls
	}
	noFailures := func(what string, ls []*load) {
		t.Helper()
		for i, l := range ls {
			r := l.stop()
			t.Logf("%s: %s: %d requests, failures %v", what, pods[i].name, r.Requests, r.Failures)
			if len(r.Failures) > 0 || r.OK == 0 {
				t.Fatalf("%s: %s: failed requests %v %v", what, pods[i].name, r.Failures, r.Errors)
			}
		}
	}

	serves("first release", "web release v1")
	v2 := strings.ReplaceAll(service, "release v1", "release v2")
	release(v2, pods[0], pods[2]) // sockd-b is behind
	ls := loads()
	out, code := rollout()
	noFailures("release v2", ls)
	if code != 0 || !strings.Contains(out, "restarted on 3 nodes") {
		t.Fatalf("rollout of v2: exit %d", code)
	}
	if strings.Count(out, "rollout: waiting for the kubelet") != 1 || !strings.Contains(out, "update web.service in sockd-b\n") {
		t.Fatal("rollout of v2: did not wait for sockd-b, and only for it, to see the new web.service")
	}
	serves("after the roll of v2", "web release v2")
	gens := map[string]int{}
	for _, p := range pods {
		gens[p.name] = p.s.status("web").Service.Generation
	}

	broken := strings.ReplaceAll(service, "release v1", "release v3") + "Environment=DEMO_FAIL=1\n"
	release(broken, pods...)
	ls = loads()
	out, code = rollout()
	noFailures("broken release v3", ls)
	if code != 1 || !strings.Contains(out, "stopped at node-sockd-a") || strings.Contains(out, "on node-sockd-b") {
		t.Fatalf("rollout of a broken release: exit %d, want 1, stopped at the first node", code)
	}
	serves("after the broken roll", "web release v2")
	if st := pods[0].s.status("web"); st.Service.LastRestart == nil || st.Service.LastRestart.Outcome != "rolled-back" {
		t.Fatalf("sockd-a: last restart %+v, want rolled-back", st.Service.LastRestart)
	}
	for _, p := range pods[1:] {
		if g := p.s.status("web").Service.Generation; g != gens[p.name] {
			t.Fatalf("%s: generation %d, was %d: a node past the rollback was restarted", p.name, g, gens[p.name])
		}
	}
}

// configMapUnits reads the unit files of the ConfigMap in a manifest.
func configMapUnits(t *testing.T, p string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			t.Fatalf("%s: no ConfigMap", p)
		}
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if doc.Kind == "ConfigMap" {
			return doc.Data
		}
	}
}

func filepathAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// nomadJobFile is what TestNomadChangeScript reads of
// contrib/nomad/sockd.nomad.hcl: the sockd task's templates.
type nomadJobFile struct {
	Job struct {
		Group struct {
			Task struct {
				Templates []struct {
					Destination  string `hcl:"destination"`
					Data         string `hcl:"data"`
					ChangeMode   string `hcl:"change_mode"`
					ChangeScript *struct {
						Command string   `hcl:"command"`
						Args    []string `hcl:"args"`
						Rest    hcl.Body `hcl:",remain"`
					} `hcl:"change_script,block"`
					Rest hcl.Body `hcl:",remain"`
				} `hcl:"template,block"`
				Name string   `hcl:"name,label"`
				Rest hcl.Body `hcl:",remain"`
			} `hcl:"task,block"`
			Name string   `hcl:"name,label"`
			Rest hcl.Body `hcl:",remain"`
		} `hcl:"group,block"`
		Name string   `hcl:"name,label"`
		Rest hcl.Body `hcl:",remain"`
	} `hcl:"job,block"`
}

// TestNomadChangeScript runs the deploy step of
// contrib/nomad/sockd.nomad.hcl as Nomad would: sockd serves the units
// its templates render (with the variable's release, on a loopback
// port), a new release is rendered over the service's file, and the
// template's change script runs, as written in the job but for the
// paths of this test (the API socket, the deploy hook). Under load: a
// new release is restarted into with no failed request; a broken one
// makes the script fail, and the old release serves on.
func TestNomadChangeScript(t *testing.T) {
	f, diags := hclparse.NewParser().ParseHCLFile("../contrib/nomad/sockd.nomad.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var job nomadJobFile
	if diags := gohcl.DecodeBody(f.Body, nil, &job); diags.HasErrors() {
		t.Fatal(diags)
	}
	port := freePort(t)
	render := func(data, release string) string {
		t.Helper()
		tpl, err := template.New("").Funcs(template.FuncMap{
			"nomadVar": func(string) map[string]string { return map[string]string{"web_release": release} },
		}).Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		if err := tpl.Execute(&b, nil); err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(b.String(), "ExecStart=/usr/local/bin/sockd-demo", "ExecStart="+bin.demo)
		return strings.ReplaceAll(s, "0.0.0.0:8080", fmt.Sprintf("127.0.0.1:%d", port))
	}
	files := map[string]string{}
	var svcData, script string
	for _, tb := range job.Job.Group.Task.Templates {
		name := filepath.Base(tb.Destination)
		files[name] = render(tb.Data, "v1")
		if tb.ChangeMode == "script" {
			svcData, script = tb.Data, tb.ChangeScript.Args[1]
			if tb.ChangeScript.Command != "/bin/sh" || tb.ChangeScript.Args[0] != "-c" || name != "web.service" {
				t.Fatalf("the change script of %s is %s %q, want /bin/sh -c SCRIPT on web.service", name, tb.ChangeScript.Command, tb.ChangeScript.Args)
			}
		}
	}
	if script == "" {
		t.Fatal("no template with a change script")
	}
	dir := writeUnits(t, files)
	s := startSockd(t, dir)
	c := client("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if got := get(t, c); !strings.HasPrefix(got, "web release v1") {
		t.Fatalf("release v1 answers %q", got)
	}
	script = strings.ReplaceAll(script, "/run/sockd/api.sock", s.api)
	script = strings.ReplaceAll(script, "/usr/local/lib/sockd/deploy-hook", filepathAbs(t, "../contrib/deploy-hook"))
	// deploy renders svc as consul-template does (a temporary file
	// renamed over the unit file), runs the change script, and returns
	// its exit status; no request may fail meanwhile.
	deploy := func(svc string) int {
		t.Helper()
		tmp := filepath.Join(dir, ".web.service.tmp")
		if err := os.WriteFile(tmp, []byte(svc), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "web.service")); err != nil {
			t.Fatal(err)
		}
		l := startLoad(t, fmt.Sprintf("127.0.0.1:%d", port), false, false)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
		cmd.Env = append(os.Environ(), "PATH="+bin.dir+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("change script: %v\n%s", err, out)
		}
		t.Logf("change script: exit %d\n%s", cmd.ProcessState.ExitCode(), out)
		r := l.stop()
		t.Logf("%d requests, failures %v", r.Requests, r.Failures)
		if len(r.Failures) > 0 || r.OK == 0 {
			t.Fatalf("failed requests during the deploy: %v %v", r.Failures, r.Errors)
		}
		return cmd.ProcessState.ExitCode()
	}
	if code := deploy(render(svcData, "v2")); code != 0 {
		t.Fatalf("release v2: the change script exited %d", code)
	}
	if got := get(t, c); !strings.HasPrefix(got, "web release v2") {
		t.Fatalf("after release v2: %q", got)
	}
	if code := deploy(render(svcData, "v3") + "Environment=DEMO_FAIL=1\n"); code != 1 {
		t.Fatalf("a broken release: the change script exited %d, want 1", code)
	}
	if got := get(t, c); !strings.HasPrefix(got, "web release v2") {
		t.Fatalf("after a broken release: %q, want release v2 serving on", got)
	}
}
