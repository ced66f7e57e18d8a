package units

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// specCtx is what the specifiers of one unit expand to.
type specCtx struct {
	name unitName
	file string // path of the unit file (%y)
	// keepInstance leaves the instance specifiers (%i %I %n %N %f) as
	// they are: a template is expanded by Instantiate.
	keepInstance bool
}

// hostInfo is the part of the specifier values that comes from the
// system; read once.
type hostInfo struct {
	user, uid, home, group, gid, shell  string
	hostname, machineID, bootID, kernel string
	runtimeDir                          string
}

var (
	hostOnce sync.Once
	host     hostInfo
)

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func getHost() *hostInfo {
	hostOnce.Do(func() {
		h := &host
		h.uid = strconv.Itoa(os.Getuid())
		h.gid = strconv.Itoa(os.Getgid())
		h.user, h.home, h.shell, h.group = h.uid, "/", "/bin/sh", h.gid
		if u, err := user.Current(); err == nil {
			h.user, h.home = u.Username, u.HomeDir
		}
		if g, err := user.LookupGroupId(h.gid); err == nil {
			h.group = g.Name
		}
		if os.Getuid() == 0 {
			h.user, h.home = "root", "/root"
		}
		h.hostname, _ = os.Hostname()
		h.machineID = readTrim("/etc/machine-id")
		h.bootID = strings.ReplaceAll(readTrim("/proc/sys/kernel/random/boot_id"), "-", "")
		h.kernel = readTrim("/proc/sys/kernel/osrelease")
		h.runtimeDir = "/run"
		if os.Getuid() != 0 {
			if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
				h.runtimeDir = d
			} else {
				h.runtimeDir = "/run/user/" + h.uid
			}
		}
	})
	return &host
}

// expand replaces the specifiers of systemd.unit(5) in s.
func (c *specCtx) expand(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 >= len(s) {
			return "", fmt.Errorf("incomplete specifier '%%' at end of %q", s)
		}
		i++
		v, err := c.specifier(s[i])
		if err != nil {
			return "", err
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

func (c *specCtx) specifier(ch byte) (string, error) {
	n := c.name
	if c.keepInstance {
		switch ch {
		case 'i', 'I', 'n', 'N', 'f':
			return "%" + string(ch), nil
		}
	}
	base := n.Prefix
	if n.Instance != "" || n.Template {
		base += "@" + n.Instance
	}
	switch ch {
	case '%':
		return "%", nil
	case 'n':
		return n.Full, nil
	case 'N':
		return base, nil
	case 'p':
		return n.Prefix, nil
	case 'P':
		return unescapeName(n.Prefix), nil
	case 'i':
		return n.Instance, nil
	case 'I':
		return unescapeName(n.Instance), nil
	case 'f':
		p := unescapeName(n.Prefix)
		if n.Instance != "" {
			p = unescapeName(n.Instance)
		}
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		return p, nil
	case 'j':
		return n.Prefix[strings.LastIndexByte(n.Prefix, '-')+1:], nil
	case 'J':
		return unescapeName(n.Prefix[strings.LastIndexByte(n.Prefix, '-')+1:]), nil
	case 'y':
		return c.file, nil
	case 'Y':
		return filepath.Dir(c.file), nil
	}
	h := getHost()
	switch ch {
	case 'u':
		return h.user, nil
	case 'U':
		return h.uid, nil
	case 'h':
		return h.home, nil
	case 's':
		return h.shell, nil
	case 'g':
		return h.group, nil
	case 'G':
		return h.gid, nil
	case 'H':
		return h.hostname, nil
	case 'l':
		return strings.SplitN(h.hostname, ".", 2)[0], nil
	case 'm':
		return h.machineID, nil
	case 'b':
		return h.bootID, nil
	case 'v':
		return h.kernel, nil
	case 't':
		return h.runtimeDir, nil
	case 'T':
		return "/tmp", nil
	case 'V':
		return "/var/tmp", nil
	case 'S':
		return "/var/lib", nil
	case 'C':
		return "/var/cache", nil
	case 'L':
		return "/var/log", nil
	case 'E':
		return "/etc", nil
	}
	switch ch {
	case 'a', 'A', 'B', 'd', 'M', 'o', 'q', 'w', 'W':
		return "", fmt.Errorf("specifier %%%c is not supported by sockd", ch)
	}
	return "", fmt.Errorf("unknown specifier %%%c", ch)
}

// standInInstance replaces the instance specifiers a template keeps
// (%i %I %n %N %f) with "x", to check a name built from them.
func standInInstance(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+1 < len(s) && strings.IndexByte("iInNf", s[i+1]) >= 0 {
			b.WriteByte('x')
			i++
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// usesInstance reports whether s holds one of the instance specifiers a
// template keeps (%i %I %n %N %f); "%%i" is a literal "%i".
func usesInstance(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if strings.IndexByte("iInNf", s[i+1]) >= 0 {
			return true
		}
		i++
	}
	return false
}
