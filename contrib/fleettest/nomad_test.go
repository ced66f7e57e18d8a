package fleettest_test

import (
	"path"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// hclFile parses an HCL file (native syntax) and returns its body.
func hclFile(t *testing.T, p string) *hclsyntax.Body {
	t.Helper()
	f, diags := hclparse.NewParser().ParseHCLFile(p)
	if diags.HasErrors() {
		t.Fatalf("%s: %v", p, diags)
	}
	return f.Body.(*hclsyntax.Body)
}

// hblock is a block of an HCL file, where the test looks things up.
type hblock struct {
	t      *testing.T
	name   string // "job.group.task", for messages
	body   *hclsyntax.Body
	labels []string
}

// blocks returns the nested blocks of type typ, in order.
func (b hblock) blocks(typ string) []hblock {
	var out []hblock
	for _, c := range b.body.Blocks {
		if c.Type == typ {
			name := b.name + "." + typ
			for _, l := range c.Labels {
				name += " " + l
			}
			out = append(out, hblock{b.t, name, c.Body, c.Labels})
		}
	}
	return out
}

// block returns the one nested block of type typ with the label (""
// for a block without one).
func (b hblock) block(typ, label string) hblock {
	b.t.Helper()
	var found []hblock
	for _, c := range b.blocks(typ) {
		if strings.Join(c.labels, " ") == label {
			found = append(found, c)
		}
	}
	if len(found) != 1 {
		b.t.Fatalf("%s: %d %s blocks %q, want 1", b.name, len(found), typ, label)
	}
	return found[0]
}

// value evaluates the attribute name, which must be there and be a
// constant (no variables, functions or ${} interpolation).
func (b hblock) value(name string) cty.Value {
	b.t.Helper()
	a, ok := b.body.Attributes[name]
	if !ok {
		b.t.Fatalf("%s: no attribute %s", b.name, name)
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		b.t.Fatalf("%s.%s: %v", b.name, name, diags)
	}
	return v
}

func (b hblock) str(name string) string {
	b.t.Helper()
	v := b.value(name)
	if v.Type() != cty.String {
		b.t.Fatalf("%s.%s: %s, want a string", b.name, name, v.Type().FriendlyName())
	}
	return v.AsString()
}

func (b hblock) boolean(name string) bool {
	b.t.Helper()
	v := b.value(name)
	if v.Type() != cty.Bool {
		b.t.Fatalf("%s.%s: %s, want a bool", b.name, name, v.Type().FriendlyName())
	}
	return v.True()
}

func (b hblock) strs(name string) []string {
	b.t.Helper()
	v := b.value(name)
	if !v.Type().IsTupleType() && !v.Type().IsListType() {
		b.t.Fatalf("%s.%s: %s, want a list of strings", b.name, name, v.Type().FriendlyName())
	}
	var out []string
	for _, e := range v.AsValueSlice() {
		if e.Type() != cty.String {
			b.t.Fatalf("%s.%s: an element is %s, want a string", b.name, name, e.Type().FriendlyName())
		}
		out = append(out, e.AsString())
	}
	return out
}

func (b hblock) duration(name string) time.Duration {
	b.t.Helper()
	d, err := time.ParseDuration(b.str(name))
	if err != nil {
		b.t.Fatalf("%s.%s: %v", b.name, name, err)
	}
	return d
}

// nomadVars stands for the Nomad variables the templates read, as
// consul-template's nomadVar gives them: the items of one variable.
var nomadVars = map[string]map[string]string{
	"nomad/jobs/sockd": {"web_release": "v1"},
}

// renderTemplate renders a template block's data as Nomad would, with
// the template functions the job may use (nomadVar only).
func renderTemplate(t *testing.T, name, data string) string {
	t.Helper()
	tpl, err := template.New(name).Option("missingkey=error").Funcs(template.FuncMap{
		"nomadVar": func(p string) (map[string]string, error) {
			v, ok := nomadVars[p]
			if !ok {
				t.Fatalf("%s: nomadVar %q: a variable this job's tasks may not read (only nomad/jobs/sockd...)", name, p)
			}
			return v, nil
		},
	}).Parse(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var b strings.Builder
	if err := tpl.Execute(&b, nil); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Logf("%s renders:\n%s", name, b.String())
	return b.String()
}

// TestNomadJob checks contrib/nomad/sockd.nomad.hcl: a system job whose
// sockd task runs the image of contrib/Dockerfile on the node's network,
// its API socket on the host volume of contrib/nomad/client.hcl, its
// units rendered where --units points and loading clean, and the web
// service's template change running sockctl reload and the deploy
// hook's restart --wait in the task.
func TestNomadJob(t *testing.T) {
	im := loadImage(t)
	jobs := hblock{t, "sockd.nomad.hcl", hclFile(t, filepath.Join(contrib, "nomad", "sockd.nomad.hcl")), nil}.blocks("job")
	if len(jobs) != 1 || len(jobs[0].labels) != 1 || jobs[0].labels[0] != "sockd" {
		t.Fatalf("sockd.nomad.hcl: want one job, \"sockd\"")
	}
	job := jobs[0]
	if typ := job.str("type"); typ != "system" {
		t.Fatalf("job type %q, want system: one sockd on every node", typ)
	}
	if u := job.blocks("update"); len(u) > 0 && !u[0].value("max_parallel").Equals(cty.NumberIntVal(1)).True() {
		t.Fatal("job update: max_parallel is not 1: a new job version would stop sockd (and every unit) on several nodes at once")
	}
	group := job.block("group", "sockd")
	if mode := group.block("network", "").str("mode"); mode != "host" {
		t.Fatalf("group network mode %q, want host", mode)
	}
	task := group.block("task", "sockd")
	if d := task.str("driver"); d != "docker" {
		t.Fatalf("task driver %q, want docker (the image of contrib/Dockerfile)", d)
	}
	config := task.block("config", "")
	if nm := config.str("network_mode"); nm != "host" {
		t.Fatalf("docker network_mode %q, want host: without it Docker puts the task on its bridge", nm)
	}
	if img := config.str("image"); !strings.Contains(img, "sockd") {
		t.Fatalf("docker image %q, want the sockd image of contrib/Dockerfile", img)
	}

	// The API socket: a host volume, writable, mounted where --api is.
	mounts := task.blocks("volume_mount")
	if len(mounts) != 1 {
		t.Fatalf("task: %d volume_mount blocks, want 1 (the API socket's host volume)", len(mounts))
	}
	mount := mounts[0]
	vol := group.block("volume", mount.str("volume"))
	if typ := vol.str("type"); typ != "host" {
		t.Fatalf("volume %s: type %q, want host", mount.str("volume"), typ)
	}
	if vol.boolean("read_only") {
		t.Fatalf("volume %s is read-only: sockd cannot create its API socket there", mount.str("volume"))
	}
	apiMount := mount.str("destination")
	unitsDir, apiPath := checkSockdArgs(t, "sockd.nomad.hcl", config.strs("args"), apiMount)

	// The node's side of that volume: client.hcl, at the same path, so
	// sockctl --api works on the node as in the task.
	client := hblock{t, "client.hcl", hclFile(t, filepath.Join(contrib, "nomad", "client.hcl")), nil}.block("client", "")
	hv := client.block("host_volume", vol.str("source"))
	if p := hv.str("path"); p != apiMount {
		t.Fatalf("client.hcl: host volume %s at %s, but the task mounts it at %s: the README's sockctl --api %s would not work on the node", vol.str("source"), p, apiMount, apiPath)
	}
	if hv.boolean("read_only") {
		t.Fatal("client.hcl: the host volume is read-only")
	}

	// The units: every template renders into the task's local/ directory
	// (/local in the container) under --units.
	grace := task.duration("kill_timeout")
	files := map[string]string{}
	var deploys int
	for _, tb := range task.blocks("template") {
		dest := tb.str("destination")
		if "/"+path.Dir(dest) != unitsDir {
			t.Fatalf("template %s: renders into /%s, but sockd's --units is %s", dest, path.Dir(dest), unitsDir)
		}
		name := path.Base(dest)
		files[name] = renderTemplate(t, dest, tb.str("data"))
		switch mode := tb.str("change_mode"); {
		case mode == "signal" && tb.str("change_signal") == "SIGHUP":
			// sockd reloads its units on SIGHUP.
		case mode == "script" && strings.HasSuffix(name, ".service"):
			checkNomadDeploy(t, im, tb, strings.TrimSuffix(name, ".service"), apiPath)
			deploys++
		default:
			t.Fatalf("template %s: change_mode %q: want signal SIGHUP (sockd reloads), or script (the deploy step) for a service", dest, mode)
		}
	}
	if deploys == 0 {
		t.Fatal("no template runs the deploy step (change_mode script: sockctl restart --wait)")
	}
	checkUnits(t, "sockd.nomad.hcl templates", files, grace)
}

// checkNomadDeploy checks the change script of unit's service template:
// it runs in the task (a program of the image), loads the new file with
// sockctl reload, then restarts unit through the deploy hook (restart
// --wait), both on the task's API socket; it has the time a restart
// takes, and its failure (a rollback) does not kill the task, which
// would stop every unit of the node.
func checkNomadDeploy(t *testing.T, im image, tb hblock, unit, apiPath string) {
	t.Helper()
	cs := tb.block("change_script", "")
	cmd := cs.str("command")
	if !im.has(cmd) {
		t.Fatalf("change_script command %s is not in the image", cmd)
	}
	args := cs.strs("args")
	if cmd != "/bin/sh" || len(args) != 2 || args[0] != "-c" {
		t.Fatalf("change_script: %s %q, want /bin/sh -c SCRIPT", cmd, args)
	}
	script := args[1]
	reload := "sockctl --api " + apiPath + " reload && "
	hook := "/usr/local/lib/sockd/deploy-hook"
	restart := "exec " + hook + " " + unit + " --api " + apiPath
	if !strings.HasPrefix(script, reload) || strings.TrimPrefix(script, reload) != restart {
		t.Fatalf("change_script: %q, want %q", script, reload+restart)
	}
	checkDeployHook(t, im, hook)
	if cs.boolean("fail_on_error") {
		t.Fatal("change_script: fail_on_error kills the task, and with it every unit of the node, when a release is rolled back")
	}
	if d := cs.duration("timeout"); d < time.Minute {
		t.Fatalf("change_script: timeout %v: a restart waits for the new process to be ready and the old one to drain; give it a minute at least", d)
	}
}
