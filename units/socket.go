package units

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// pendingListen is a Listen*= line whose Network is settled once
// BindIPv6Only= is known.
type pendingListen struct {
	Listen
	barePort bool
}

type socketBuild struct {
	*builder
	s          *Socket
	listens    []pendingListen
	acceptOpt  rawOption
	serviceOpt rawOption
	symlinkOpt rawOption
	burstSet   bool
	// listenFailed is set when a Listen*= option had an error, which
	// makes "no Listen*=" a consequence not worth reporting.
	listenFailed bool
	// otherListen is the first Listen*= option of a kind sockd does not
	// support (ListenNetlink=, ListenSpecial=, …).
	otherListen *rawOption
	// deferredListen and deferredService are set in a template when a
	// Listen*= or Service= option uses the instance: each instance
	// checks it.
	deferredListen, deferredService bool
}

type socketHandler func(b *socketBuild, o rawOption) error

var socketOptions = map[string]socketHandler{
	"ListenStream":           func(b *socketBuild, o rawOption) error { return b.listen(o, Stream) },
	"ListenDatagram":         func(b *socketBuild, o rawOption) error { return b.listen(o, Datagram) },
	"ListenSequentialPacket": func(b *socketBuild, o rawOption) error { return b.listen(o, SequentialPacket) },
	"ListenFIFO":             func(b *socketBuild, o rawOption) error { return b.listen(o, FIFO) },
	"Accept": func(b *socketBuild, o rawOption) error {
		b.acceptOpt = o
		return setBool(&b.s.Accept, o.Value)
	},
	"Service": func(b *socketBuild, o rawOption) error {
		v, ok := b.expand(o, o.Value)
		if !ok {
			return nil
		}
		n, err := parseUnitName(v)
		if err != nil {
			return err
		}
		if n.Suffix != "service" {
			return fmt.Errorf("%q is not a .service unit", v)
		}
		if n.Template {
			return fmt.Errorf("%q is a template; name an instance or use Accept=yes", v)
		}
		b.s.Service, b.serviceOpt = v, o
		return nil
	},
	"FileDescriptorName": func(b *socketBuild, o rawOption) error {
		v, ok := b.expand(o, o.Value)
		if !ok {
			return nil
		}
		if len(v) > 255 {
			return fmt.Errorf("name longer than 255 characters")
		}
		for i := 0; i < len(v); i++ {
			if v[i] < ' ' || v[i] > '~' || v[i] == ':' {
				return fmt.Errorf("invalid character %q in %q (want printable ASCII, no ':')", v[i], v)
			}
		}
		b.s.FileDescriptorName = v
		return nil
	},
	"Backlog": func(b *socketBuild, o rawOption) error { return setInt(&b.s.Backlog, o.Value, 1<<31-1) },
	"BindIPv6Only": func(b *socketBuild, o rawOption) error {
		switch o.Value {
		case "default", "both", "ipv6-only":
			b.s.BindIPv6Only = o.Value
			return nil
		}
		return fmt.Errorf("invalid value %q (want default, both or ipv6-only)", o.Value)
	},
	"ReusePort":            func(b *socketBuild, o rawOption) error { return setBool(&b.s.ReusePort, o.Value) },
	"NoDelay":              func(b *socketBuild, o rawOption) error { return setBool(&b.s.NoDelay, o.Value) },
	"KeepAlive":            func(b *socketBuild, o rawOption) error { return setBool(&b.s.KeepAlive, o.Value) },
	"KeepAliveTimeSec":     func(b *socketBuild, o rawOption) error { return setSeconds(&b.s.KeepAliveTime, o.Value) },
	"KeepAliveIntervalSec": func(b *socketBuild, o rawOption) error { return setSeconds(&b.s.KeepAliveInterval, o.Value) },
	"KeepAliveProbes":      func(b *socketBuild, o rawOption) error { return setInt(&b.s.KeepAliveProbes, o.Value, 127) },
	"FreeBind":             func(b *socketBuild, o rawOption) error { return setBool(&b.s.FreeBind, o.Value) },
	"Transparent":          func(b *socketBuild, o rawOption) error { return setBool(&b.s.Transparent, o.Value) },
	"Broadcast":            func(b *socketBuild, o rawOption) error { return setBool(&b.s.Broadcast, o.Value) },
	"PassCredentials":      func(b *socketBuild, o rawOption) error { return setBool(&b.s.PassCredentials, o.Value) },
	"ReceiveBuffer":        func(b *socketBuild, o rawOption) error { return setSize(&b.s.ReceiveBuffer, o.Value) },
	"SendBuffer":           func(b *socketBuild, o rawOption) error { return setSize(&b.s.SendBuffer, o.Value) },
	"BindToDevice": func(b *socketBuild, o rawOption) error {
		v, ok := b.expand(o, o.Value)
		if !ok {
			return nil
		}
		if len(v) > 15 || strings.ContainsAny(v, "/: \t") || v == "." || v == ".." {
			return fmt.Errorf("invalid network interface name %q", v)
		}
		b.s.BindToDevice = v
		return nil
	},
	"SocketMode":    func(b *socketBuild, o rawOption) error { return setMode(&b.s.SocketMode, o.Value) },
	"DirectoryMode": func(b *socketBuild, o rawOption) error { return setMode(&b.s.DirectoryMode, o.Value) },
	"SocketUser":    func(b *socketBuild, o rawOption) error { return b.setUser(&b.s.SocketUser, o) },
	"SocketGroup":   func(b *socketBuild, o rawOption) error { return b.setUser(&b.s.SocketGroup, o) },
	"RemoveOnStop":  func(b *socketBuild, o rawOption) error { return setBool(&b.s.RemoveOnStop, o.Value) },
	"Symlinks": func(b *socketBuild, o rawOption) error {
		ws, err := splitWords(o.Value)
		if err != nil {
			return err
		}
		if len(ws) == 0 {
			b.s.Symlinks = nil
			return nil
		}
		b.symlinkOpt = o
		for _, w := range ws {
			p, ok := b.expand(o, w)
			if !ok {
				return nil
			}
			if !filepath.IsAbs(p) {
				return fmt.Errorf("%q is not an absolute path", p)
			}
			b.s.Symlinks = append(b.s.Symlinks, filepath.Clean(p))
		}
		return nil
	},
	"NonBlocking":             func(b *socketBuild, o rawOption) error { return setBool(&b.s.NonBlocking, o.Value) },
	"MaxConnections":          func(b *socketBuild, o rawOption) error { return setPositive(&b.s.MaxConnections, o.Value) },
	"MaxConnectionsPerSource": func(b *socketBuild, o rawOption) error { return setInt(&b.s.MaxConnectionsPerSource, o.Value, 1<<31-1) },
	"TriggerLimitIntervalSec": func(b *socketBuild, o rawOption) error {
		return setSeconds(&b.s.TriggerLimitInterval, o.Value)
	},
	"TriggerLimitBurst": func(b *socketBuild, o rawOption) error {
		b.burstSet = true
		return setInt(&b.s.TriggerLimitBurst, o.Value, 1<<31-1)
	},
	"Mark":          func(b *socketBuild, o rawOption) error { return setOptInt(&b.s.Mark, o.Value, 0, 1<<31-1) },
	"Priority":      func(b *socketBuild, o rawOption) error { return setOptInt(&b.s.Priority, o.Value, 0, 1<<31-1) },
	"IPTOS":         func(b *socketBuild, o rawOption) error { return setIPTOS(&b.s.IPTOS, o.Value) },
	"IPTTL":         func(b *socketBuild, o rawOption) error { return setOptInt(&b.s.IPTTL, o.Value, 1, 255) },
	"TCPCongestion": func(b *socketBuild, o rawOption) error { return setCongestion(&b.s.TCPCongestion, o.Value) },
	"DeferAcceptSec": func(b *socketBuild, o rawOption) error {
		if o.Value == "" {
			b.s.DeferAccept = 0
			return nil
		}
		return setSeconds(&b.s.DeferAccept, o.Value)
	},
	"PipeSize": func(b *socketBuild, o rawOption) error {
		if o.Value == "" {
			b.s.PipeSize = 0
			return nil
		}
		return setSize(&b.s.PipeSize, o.Value)
	},
}

func setBool(dst *bool, v string) error {
	b, err := parseBool(v)
	if err == nil {
		*dst = b
	}
	return err
}

func setInt(dst *int, v string, max uint64) error {
	n, err := parseUint(v, max)
	if err == nil {
		*dst = int(n)
	}
	return err
}

// setOptInt reads an integer from min to max; an empty value resets dst
// to 0, "not set".
func setOptInt(dst *int, v string, min, max int64) error {
	if v == "" {
		*dst = 0
		return nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return fmt.Errorf("invalid number %q", v)
	}
	if n < min || n > max {
		return fmt.Errorf("%d out of range %d-%d", n, min, max)
	}
	*dst = int(n)
	return nil
}

// ipTOS are the names IPTOS= takes besides a number, as in systemd
// (ip(7): IPTOS_LOWDELAY, IPTOS_THROUGHPUT, IPTOS_RELIABILITY,
// IPTOS_MINCOST).
var ipTOS = map[string]int{"low-delay": 0x10, "throughput": 0x08, "reliability": 0x04, "low-cost": 0x02}

// setIPTOS reads IPTOS=: one of ipTOS's names or a number from 0 to 255
// (decimal, or hexadecimal after 0x).
func setIPTOS(dst *int, v string) error {
	if n, ok := ipTOS[v]; ok {
		*dst = n
		return nil
	}
	if v == "" {
		*dst = 0
		return nil
	}
	digits, base := v, 10
	if h, ok := strings.CutPrefix(v, "0x"); ok {
		digits, base = h, 16
	}
	n, err := strconv.ParseUint(digits, base, 8)
	if err != nil || digits == "" || digits[0] == '+' {
		return fmt.Errorf("invalid value %q (want low-delay, throughput, reliability, low-cost or a number 0-255)", v)
	}
	*dst = int(n)
	return nil
}

// setCongestion reads TCPCongestion=: the name of a congestion control
// algorithm as the kernel names them (TCP_CA_NAME_MAX is 16 bytes with
// its NUL). Whether the kernel has it is known only when the socket is
// made; an empty value resets it.
func setCongestion(dst *string, v string) error {
	if len(v) > 15 {
		return fmt.Errorf("%q: a congestion control name is at most 15 characters", v)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("invalid congestion control name %q", v)
		}
	}
	*dst = v
	return nil
}

func setPositive(dst *int, v string) error {
	n, err := parseUint(v, 1<<31-1)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("must be at least 1")
	}
	*dst = int(n)
	return nil
}

func setSeconds(dst *time.Duration, v string) error {
	d, err := parseTimespan(v, time.Second)
	if err == nil {
		*dst = d
	}
	return err
}

func setSize(dst *int, v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	if n > 1<<31-1 {
		return fmt.Errorf("size %q too large", v)
	}
	*dst = int(n)
	return nil
}

func setMode(dst *os.FileMode, v string) error {
	m, err := parseMode(v, 0o7777)
	if err == nil {
		*dst = fileMode(m)
	}
	return err
}

// fileMode turns Unix permission bits (with setuid, setgid and sticky)
// into an os.FileMode.
func fileMode(m uint64) os.FileMode {
	fm := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

func (b *builder) setUser(dst *string, o rawOption) error {
	v, ok := b.expand(o, o.Value)
	if !ok {
		return nil
	}
	if err := validUserName(v); err != nil {
		return err
	}
	*dst = v
	return nil
}

// validUserName accepts what systemd's relaxed user/group name check
// accepts: a numeric id or a name without whitespace, ':' or '/'.
func validUserName(v string) error {
	if v == "" {
		return nil
	}
	if len(v) > 256 || v == "." || v == ".." || v[0] == '-' || strings.ContainsAny(v, " \t\n:/,") {
		return fmt.Errorf("invalid user or group name %q", v)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < ' ' || v[i] == 0x7f {
			return fmt.Errorf("invalid user or group name %q", v)
		}
	}
	return nil
}

// listen parses one Listen*= option.
func (b *socketBuild) listen(o rawOption, kind ListenKind) error {
	if o.Value == "" {
		// An empty assignment resets the list (all Listen*= kinds, as in systemd).
		b.listens, b.otherListen = nil, nil
		return nil
	}
	v, ok := b.expand(o, o.Value)
	if !ok {
		return nil
	}
	l, bare, err := parseListen(kind, v)
	if err != nil {
		return err
	}
	l.Line, l.File = o.Line, o.File
	b.listens = append(b.listens, pendingListen{Listen: l, barePort: bare})
	return nil
}

// parseListen reads the address of a Listen*= option as
// systemd.socket(5) describes it.
func parseListen(kind ListenKind, v string) (Listen, bool, error) {
	l := Listen{Kind: kind}
	if kind == FIFO {
		if err := checkPath(v); err != nil {
			return l, false, err
		}
		l.Network, l.Address = "fifo", filepath.Clean(v)
		return l, false, nil
	}
	unixNet := map[ListenKind]string{Stream: "unix", Datagram: "unixgram", SequentialPacket: "unixpacket"}[kind]
	ipNet := map[ListenKind]string{Stream: "tcp", Datagram: "udp"}[kind]
	switch {
	case strings.HasPrefix(v, "/"):
		if err := checkPath(v); err != nil {
			return l, false, err
		}
		l.Network, l.Address = unixNet, filepath.Clean(v)
		return l, false, nil
	case strings.HasPrefix(v, "@"):
		if len(v) < 2 || len(v) >= 108 {
			return l, false, fmt.Errorf("abstract socket name %q: length must be 1 to 106 characters", v)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return l, false, fmt.Errorf("abstract socket name %q: NUL byte", v)
		}
		l.Network, l.Address = unixNet, v
		return l, false, nil
	case strings.HasPrefix(v, "vsock:"):
		return l, false, fmt.Errorf("%q: AF_VSOCK is not supported by sockd", v)
	}
	if ipNet == "" {
		return l, false, fmt.Errorf("%q: sequential packet sockets need a Unix socket path (SCTP is not supported)", v)
	}
	if port, err := parsePort(v); err == nil {
		l.Network, l.Address = ipNet, "[::]:"+strconv.Itoa(port)
		return l, true, nil
	} else if !strings.ContainsAny(v, ":") {
		return l, false, err
	}
	ap, err := netip.ParseAddrPort(v)
	if err != nil {
		host, port, ok := lastColon(v)
		if !ok {
			return l, false, fmt.Errorf("invalid address %q", v)
		}
		if _, err := parsePort(port); err != nil {
			return l, false, fmt.Errorf("invalid address %q: %w", v, err)
		}
		return l, false, fmt.Errorf("invalid address %q: %q is not an IP address", v, host)
	}
	if ap.Port() == 0 {
		return l, false, fmt.Errorf("invalid address %q: port must be 1-65535", v)
	}
	if ap.Addr().Is4In6() {
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	l.Network, l.Address = ipNet, ap.String()
	return l, false, nil
}

func lastColon(v string) (string, string, bool) {
	i := strings.LastIndexByte(v, ':')
	if i < 0 {
		return "", "", false
	}
	return v[:i], v[i+1:], true
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || s[0] == '+' || s[0] == '-' {
		return 0, fmt.Errorf("invalid port or address %q", s)
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d out of range 1-65535", n)
	}
	return n, nil
}

// checkPath validates the path of a Unix socket or FIFO.
func checkPath(p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("%q is not an absolute path", p)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("path %q: NUL byte", p)
	}
	if c := filepath.Clean(p); len(c) >= 108 {
		return fmt.Errorf("path %q: %d bytes, a Unix socket path must be shorter than 108", p, len(c))
	}
	return nil
}

// buildSocket applies opts to a new socket unit. An instance
// (app@x.socket) expands %i and the other instance specifiers; a
// template (app@.socket) is built only to be checked: it keeps them, and
// leaves the options whose value uses them to its instances.
func buildSocket(name unitName, file string, dropIns []string, opts []rawOption) (*Socket, Diagnostics) {
	b := &socketBuild{
		builder: &builder{unit: name.Full, spec: &specCtx{name: name, file: file, keepInstance: name.Template}},
		s: &Socket{
			Name: name.Full, File: file, DropIns: dropIns, Instance: name.Instance,
			Backlog: 4096, BindIPv6Only: "default", SocketMode: 0o666, DirectoryMode: 0o755,
			MaxConnections: 64, TriggerLimitInterval: 2 * time.Second, TriggerLimitBurst: 20,
		},
	}
	for _, o := range opts {
		if !b.sectionOK(o, "socket") || o.Name == "" {
			continue
		}
		if o.Section == "Unit" || o.Section == "Install" {
			b.unitOption(o, "socket")
			continue
		}
		if strings.HasPrefix(o.Section, "X-") || strings.HasPrefix(o.Name, "X-") {
			continue
		}
		if h, ok := socketOptions[o.Name]; ok {
			if name.Template && usesInstance(o.Value) {
				// What it means depends on the instance: checked there.
				switch {
				case strings.HasPrefix(o.Name, "Listen"):
					b.deferredListen = true
				case o.Name == "Service":
					b.deferredService, b.serviceOpt = true, o
				}
				continue
			}
			n := len(b.diags)
			if err := h(b, o); err != nil {
				b.errf(o, "%v", err)
			}
			if strings.HasPrefix(o.Name, "Listen") && Diagnostics(b.diags[n:]).Err() != nil {
				b.listenFailed = true
			}
			continue
		}
		if strings.HasPrefix(o.Name, "Listen") && systemdSocket[o.Name] {
			if o.Value == "" {
				// An empty Listen*= resets them all, whatever its kind.
				b.listens, b.otherListen = nil, nil
				continue
			}
			if b.otherListen == nil {
				b.otherListen = &o
			}
		}
		b.notImplemented(o, socketKnown())
	}
	s := b.s
	s.Description = b.desc
	for _, p := range b.listens {
		l := p.Listen
		if p.barePort && s.BindIPv6Only == "ipv6-only" {
			l.Network += "6"
		}
		s.Listens = append(s.Listens, l)
	}
	if !b.burstSet && s.Accept {
		s.TriggerLimitBurst = 200
	}
	if s.Accept {
		for _, l := range s.Listens {
			if l.Kind == Datagram || l.Kind == FIFO {
				b.errf(b.acceptOpt, "Accept=yes needs stream or sequential packet sockets, not Listen%s=%s", l.Kind, l.Address)
				break
			}
		}
		if s.Service != "" || b.deferredService {
			b.errf(b.serviceOpt, "not allowed with Accept=yes")
		}
		s.Service = name.Prefix + "@.service"
		s.linkOpt = b.acceptOpt
	} else if s.Service != "" {
		s.linkOpt = b.serviceOpt
	} else if !b.deferredService {
		// app.service; app@x.service for an instance, app@.service for
		// a template (systemd: the socket's name with the suffix
		// replaced).
		s.Service = trimSuffix(name.Full) + ".service"
	}
	whole := rawOption{File: file, Line: 1}
	switch {
	case len(s.Listens) > 0 || b.listenFailed || b.deferredListen:
	case b.otherListen != nil:
		// systemd loads it, and so does sockd: a socket that never
		// activates its service.
		b.warnf(*b.otherListen, "sockd supports none of the socket's Listen*= options: it never activates %s", s.Service)
	default:
		b.errf(whole, "no ListenStream=, ListenDatagram=, ListenSequentialPacket= or ListenFIFO=")
	}
	if len(s.Symlinks) > 0 && !b.deferredListen {
		paths := 0
		for _, l := range s.Listens {
			if strings.HasPrefix(l.Address, "/") {
				paths++
			}
		}
		if paths != 1 {
			b.errf(b.symlinkOpt, "needs exactly one Unix socket path or FIFO among the Listen*= options, not %d", paths)
		}
	}
	return s, b.diags
}

func socketKnown() map[string]bool { return knownNames("Socket", socketOptions) }
