package supervisord

// [Unit] Condition*= and Assert*=, checked before each start, as
// systemd.unit(5) describes them. A condition that does not hold skips
// the start; an assertion that does not hold fails it.

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sockd/sockd/internal/ids"
	"github.com/sockd/sockd/units"
)

// checkConditions returns the first assertion that fails, or else the
// condition that keeps the unit from starting (nil, nil: start).
func checkConditions(cs []units.Condition) (failedAssert, unmet *units.Condition) {
	var trig []*units.Condition
	anyTrig := false
	for i := range cs {
		c := &cs[i]
		ok := conditionHolds(c)
		switch {
		case c.Assert && !ok:
			return c, nil
		case c.Trigger:
			trig = append(trig, c)
			anyTrig = anyTrig || ok
		case !ok && unmet == nil:
			unmet = c
		}
	}
	if unmet == nil && len(trig) > 0 && !anyTrig {
		unmet = trig[0]
	}
	return nil, unmet
}

// conditionHolds evaluates one condition, with its "!".
func conditionHolds(c *units.Condition) bool {
	return evalCondition(c.Kind, c.Value) != c.Negate
}

func evalCondition(kind, v string) bool {
	switch kind {
	case "PathExists":
		_, err := os.Stat(v)
		return err == nil
	case "PathExistsGlob":
		m, _ := filepath.Glob(v)
		return len(m) > 0
	case "PathIsDirectory":
		fi, err := os.Stat(v)
		return err == nil && fi.IsDir()
	case "PathIsSymbolicLink":
		fi, err := os.Lstat(v)
		return err == nil && fi.Mode()&os.ModeSymlink != 0
	case "PathIsReadWrite":
		var st unix.Statfs_t
		return unix.Statfs(v, &st) == nil && st.Flags&unix.ST_RDONLY == 0
	case "PathIsMountPoint":
		return isMountPoint(v)
	case "FileNotEmpty":
		fi, err := os.Stat(v)
		return err == nil && fi.Mode().IsRegular() && fi.Size() > 0
	case "DirectoryNotEmpty":
		f, err := os.Open(v)
		if err != nil {
			return false
		}
		defer f.Close()
		names, _ := f.Readdirnames(1)
		return len(names) > 0
	case "FileIsExecutable":
		fi, err := os.Stat(v)
		return err == nil && fi.Mode().IsRegular() && unix.Access(v, unix.X_OK) == nil
	case "User":
		return userMatches(v)
	case "Group":
		return groupMatches(v)
	case "Host":
		return hostMatches(v)
	case "Virtualization":
		return virtualizationMatches(v)
	case "KernelCommandLine":
		b, err := os.ReadFile("/proc/cmdline")
		if err != nil {
			return false
		}
		for _, w := range strings.Fields(string(b)) {
			if w == v || !strings.Contains(v, "=") && strings.HasPrefix(w, v+"=") {
				return true
			}
		}
		return false
	case "Environment":
		if k, val, ok := strings.Cut(v, "="); ok {
			cur, set := os.LookupEnv(k)
			return set && cur == val
		}
		_, set := os.LookupEnv(v)
		return set
	case "ACPower":
		want, err := strconv.ParseBool(boolWord(v))
		if err != nil {
			return false
		}
		return onACPower() == want
	}
	return true
}

// boolWord maps systemd's booleans to strconv's.
func boolWord(v string) string {
	switch strings.ToLower(v) {
	case "yes", "y", "on":
		return "true"
	case "no", "n", "off":
		return "false"
	}
	return v
}

// userMatches: sockd's own user, by name or number, or "@system" for a
// system user (uid below 1000).
func userMatches(v string) bool {
	uid := os.Getuid()
	if v == "@system" {
		return uid < 1000
	}
	if n, err := strconv.Atoi(v); err == nil {
		return n == uid
	}
	u, err := user.LookupId(strconv.Itoa(uid))
	return err == nil && u.Username == v
}

// groupMatches: sockd's group or one of its supplementary groups.
func groupMatches(v string) bool {
	gid, err := ids.LookupGroup(v)
	if err != nil {
		return false
	}
	if int(gid) == os.Getgid() {
		return true
	}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		if g == int(gid) {
			return true
		}
	}
	return false
}

// hostMatches: the host name (a shell glob, case-insensitive) or the
// machine id.
func hostMatches(v string) bool {
	if host, err := os.Hostname(); err == nil {
		if ok, _ := filepath.Match(strings.ToLower(v), strings.ToLower(host)); ok {
			return true
		}
	}
	id, err := os.ReadFile("/etc/machine-id")
	return err == nil && strings.EqualFold(strings.TrimSpace(string(id)), v)
}

// virtualization detects, as far as files tell, a container ("docker",
// "podman" or what /proc/1/environ's container= names) or a virtual
// machine ("kvm", "qemu", "vmware", "oracle", "xen", "microsoft",
// "amazon", "google", or "vm" for another hypervisor).
func virtualization() (container, vm string) {
	switch {
	case fileExists("/.dockerenv"):
		container = "docker"
	case fileExists("/run/.containerenv"):
		container = "podman"
	default:
		if b, err := os.ReadFile("/proc/1/environ"); err == nil {
			for _, kv := range bytes.Split(b, []byte{0}) {
				if c, ok := bytes.CutPrefix(kv, []byte("container=")); ok {
					container = string(c)
				}
			}
		}
	}
	vendor, _ := os.ReadFile("/sys/class/dmi/id/sys_vendor")
	product, _ := os.ReadFile("/sys/class/dmi/id/product_name")
	dmi := strings.ToLower(string(vendor) + " " + string(product))
	for _, v := range []struct{ needle, name string }{
		{"kvm", "kvm"}, {"qemu", "qemu"}, {"vmware", "vmware"}, {"virtualbox", "oracle"}, {"xen", "xen"},
		{"microsoft", "microsoft"}, {"amazon ec2", "amazon"}, {"google", "google"},
	} {
		if strings.Contains(dmi, v.needle) {
			return container, v.name
		}
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "flags") {
				if strings.Contains(sc.Text(), " hypervisor") {
					vm = "vm"
				}
				break
			}
		}
	}
	return container, vm
}

func virtualizationMatches(v string) bool {
	container, vm := virtualization()
	switch strings.ToLower(v) {
	case "container":
		return container != ""
	case "vm":
		return vm != ""
	case "private-users":
		b, err := os.ReadFile("/proc/self/uid_map")
		return err == nil && !strings.Contains(string(b), "4294967295")
	}
	if b, err := strconv.ParseBool(boolWord(v)); err == nil {
		return (container != "" || vm != "") == b
	}
	return strings.EqualFold(v, container) || strings.EqualFold(v, vm)
}

// onACPower is true when a mains supply is online, or when the machine
// reports no supply at all (as systemd's on_ac_power).
func onACPower() bool {
	dirs, _ := filepath.Glob("/sys/class/power_supply/*")
	found := false
	for _, d := range dirs {
		typ, _ := os.ReadFile(filepath.Join(d, "type"))
		if strings.TrimSpace(string(typ)) != "Mains" {
			continue
		}
		found = true
		if online, _ := os.ReadFile(filepath.Join(d, "online")); strings.TrimSpace(string(online)) == "1" {
			return true
		}
	}
	return !found
}

func isMountPoint(path string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	clean := filepath.Clean(path)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMount(f[4]) == clean {
			return true
		}
	}
	return false
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// conditionText is how status names a condition: "ConditionPathExists=!/x".
func conditionText(c *units.Condition) string {
	v := c.Value
	if c.Negate {
		v = "!" + v
	}
	if c.Trigger {
		v = "|" + v
	}
	return fmt.Sprintf("%s=%s", c.Name(), v)
}
