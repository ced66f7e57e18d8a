package fleettest_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// ynode is a value of a YAML document, with its path for messages.
type ynode struct {
	t    *testing.T
	path string
	v    any
}

// get returns the value at the keys below n, which must be there.
func (n ynode) get(keys ...string) ynode {
	n.t.Helper()
	for _, k := range keys {
		m, ok := n.v.(map[string]any)
		if !ok {
			n.t.Fatalf("%s: %T, want a mapping with %s", n.path, n.v, k)
		}
		v, ok := m[k]
		if !ok {
			n.t.Fatalf("%s: no %s", n.path, k)
		}
		n = ynode{n.t, n.path + "." + k, v}
	}
	return n
}

// has reports whether n is a mapping with the key k.
func (n ynode) has(k string) bool {
	m, ok := n.v.(map[string]any)
	_, ok2 := m[k]
	return ok && ok2
}

func (n ynode) str() string {
	n.t.Helper()
	s, ok := n.v.(string)
	if !ok {
		n.t.Fatalf("%s: %v (%T), want a string", n.path, n.v, n.v)
	}
	return s
}

func (n ynode) list() []ynode {
	n.t.Helper()
	l, ok := n.v.([]any)
	if !ok {
		n.t.Fatalf("%s: %T, want a list", n.path, n.v)
	}
	out := make([]ynode, len(l))
	for i, v := range l {
		out[i] = ynode{n.t, fmt.Sprintf("%s[%d]", n.path, i), v}
	}
	return out
}

func (n ynode) strs() []string {
	n.t.Helper()
	var out []string
	for _, e := range n.list() {
		out = append(out, e.str())
	}
	return out
}

// named returns the element of the list n whose name is name.
func (n ynode) named(name string) ynode {
	n.t.Helper()
	for _, e := range n.list() {
		if e.get("name").str() == name {
			return e
		}
	}
	n.t.Fatalf("%s: nothing named %q", n.path, name)
	return ynode{}
}

// k8sObjects reads the documents of a manifest, by kind/name.
func k8sObjects(t *testing.T, p string) map[string]ynode {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]ynode{}
	dec := yaml.NewDecoder(f)
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		n := ynode{t, filepath.Base(p), doc}
		key := n.get("kind").str() + "/" + n.get("metadata", "name").str()
		n.path += ":" + key
		out[key] = n
	}
}

// TestKubernetesDaemonSet checks contrib/kubernetes/sockd.yaml: a
// DaemonSet on the node's network whose sockd reads its units from the
// ConfigMap's volume through ..data (which the kubelet swaps on an
// update) and puts its API socket on a hostPath volume; the ConfigMap's
// units load clean; and the rollout script's deploy step, run in the
// pod, reloads and restarts with --wait through the deploy hook, with
// the names and paths of this manifest.
func TestKubernetesDaemonSet(t *testing.T) {
	im := loadImage(t)
	objs := k8sObjects(t, filepath.Join(contrib, "kubernetes", "sockd.yaml"))
	ds, ok := objs["DaemonSet/sockd"]
	if !ok {
		t.Fatalf("sockd.yaml: no DaemonSet sockd (it has %v)", keys(objs))
	}
	ns := ds.get("metadata", "namespace").str()
	if _, ok := objs["Namespace/"+ns]; !ok {
		t.Fatalf("sockd.yaml: the DaemonSet's namespace %s is not made", ns)
	}
	if typ := ds.get("spec", "updateStrategy", "type").str(); typ != "OnDelete" {
		t.Fatalf("%s: updateStrategy %s: a new pod template would replace sockd, and stop every unit, node after node on its own; OnDelete leaves the moment to the operator", ds.path, typ)
	}
	label := ds.get("spec", "selector", "matchLabels", "app.kubernetes.io/name").str()
	if l := ds.get("spec", "template", "metadata", "labels", "app.kubernetes.io/name").str(); l != label {
		t.Fatalf("%s: the pods are labelled %q, the selector wants %q", ds.path, l, label)
	}
	pod := ds.get("spec", "template", "spec")
	if pod.get("hostNetwork").v != true {
		t.Fatalf("%s: hostNetwork is %v, want true: the units' sockets are the node's", pod.path, pod.get("hostNetwork").v)
	}
	if dp := pod.get("dnsPolicy").str(); dp != "ClusterFirstWithHostNet" {
		t.Fatalf("%s: dnsPolicy %s, want ClusterFirstWithHostNet (with hostNetwork, the default resolves through the node only)", pod.path, dp)
	}
	c := pod.get("containers").named("sockd")
	if img := c.get("image").str(); !strings.Contains(img, "sockd") {
		t.Fatalf("%s: image %q, want the sockd image of contrib/Dockerfile", c.path, img)
	}
	if c.has("command") {
		t.Fatalf("%s: command replaces the image's ENTRYPOINT (sockd); give args only", c.path)
	}
	volumes := pod.get("volumes")
	mounts := map[string]ynode{} // by mountPath
	for _, m := range c.get("volumeMounts").list() {
		mounts[m.get("mountPath").str()] = m
	}

	// The API socket: a hostPath volume, mounted where --api is.
	args := c.get("args").strs()
	var apiMount string
	for p, m := range mounts {
		if v := volumes.named(m.get("name").str()); v.has("hostPath") {
			apiMount = p
			if hp := v.get("hostPath", "path").str(); hp != p {
				t.Fatalf("%s: hostPath %s mounted at %s: sockctl --api would differ on the node and in the pod", v.path, hp, p)
			}
			if typ := v.get("hostPath", "type").str(); typ != "DirectoryOrCreate" {
				t.Fatalf("%s: hostPath type %s, want DirectoryOrCreate (/run is empty at boot)", v.path, typ)
			}
		}
	}
	unitsDir, apiPath := checkSockdArgs(t, c.path, args, apiMount)
	for _, e := range c.get("env").list() {
		if e.get("name").str() == "SOCKD_API" && e.get("value").str() != apiPath {
			t.Fatalf("%s: SOCKD_API %s, but sockd's --api is %s", e.path, e.get("value").str(), apiPath)
		}
	}

	// The units: the ConfigMap's volume, read-only, and --units its
	// ..data link.
	mountPath, dotdot := path.Split(unitsDir)
	mountPath = path.Clean(mountPath)
	if dotdot != "..data" {
		t.Fatalf("%s: --units %s: want MOUNT/..data, the kubelet's link to the ConfigMap's files: the mount point itself is world-writable, and sockd refuses it", c.path, unitsDir)
	}
	um, ok := mounts[mountPath]
	if !ok {
		t.Fatalf("%s: nothing mounted at %s, where --units %s is", c.path, mountPath, unitsDir)
	}
	if um.get("readOnly").v != true {
		t.Fatalf("%s: the units' volume is not readOnly", um.path)
	}
	if um.has("subPath") {
		t.Fatalf("%s: a subPath mount of a ConfigMap is never updated", um.path)
	}
	uv := volumes.named(um.get("name").str())
	cmName := uv.get("configMap", "name").str()
	cm, ok := objs["ConfigMap/"+cmName]
	if !ok {
		t.Fatalf("%s: ConfigMap %s is not in sockd.yaml", uv.path, cmName)
	}
	if cmNS := cm.get("metadata", "namespace").str(); cmNS != ns {
		t.Fatalf("%s: namespace %s, the DaemonSet's is %s", cm.path, cmNS, ns)
	}
	files := map[string]string{}
	for k, v := range cm.get("data").v.(map[string]any) {
		files[k] = ynode{t, cm.path + ".data." + k, v}.str()
	}
	grace := time.Duration(pod.get("terminationGracePeriodSeconds").v.(int)) * time.Second
	set := checkUnits(t, cm.path, files, grace)

	// The deploy step: rollout, with this manifest's names and paths.
	rollout := filepath.Join(contrib, "kubernetes", "rollout")
	shellSyntax(t, rollout)
	data, err := os.ReadFile(rollout)
	if err != nil {
		t.Fatal(err)
	}
	script := string(data)
	for _, want := range []struct{ name, v string }{
		{"ns", "${SOCKD_NAMESPACE:-" + ns + "}"},
		{"cm", "${SOCKD_CONFIGMAP:-" + cmName + "}"},
		{"units", unitsDir},
	} {
		if !strings.Contains(script, "\n"+want.name+"="+want.v+"\n") {
			t.Errorf("rollout: no %s=%s", want.name, want.v)
		}
	}
	for _, want := range []string{
		"get pods -l app.kubernetes.io/name=" + label + " ",
		`exec "$1" -c ` + c.get("name").str() + ` -- cat "$units/$unit.service"`,
		`exec "$pod" -c ` + c.get("name").str() + ` -- sockctl reload || exit 1`,
		`exec "$pod" -c ` + c.get("name").str() + ` -- /usr/local/lib/sockd/deploy-hook "$unit"` + "\n",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("rollout: no %q", want)
		}
	}
	// The roll stops at the first node that fails.
	if !regexp.MustCompile(`(?s)deploy-hook "\$unit"\n\s*rc=\$\?\n\s*if \[ "\$rc" -ne 0 \]; then\n[^\n]*\n\s*exit "\$rc"`).MatchString(script) {
		t.Error("rollout: does not stop with the deploy hook's status when a node's restart fails")
	}
	checkDeployHook(t, im, "/usr/local/lib/sockd/deploy-hook")
	// kubectl exec runs sockctl from the image's PATH (the Dockerfile's
	// /usr/local/bin) and reaches sockd through SOCKD_API.
	if !im.has("/usr/local/bin/sockctl") {
		t.Fatal("the image has no /usr/local/bin/sockctl for kubectl exec")
	}
	for name := range set.Services {
		if _, ok := files[name]; !ok {
			t.Fatalf("%s: service %s has no key of its own, so rollout cannot deploy it", cm.path, name)
		}
	}
}

func keys(m map[string]ynode) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
