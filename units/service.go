package units

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type serviceBuild struct {
	*builder
	s         *Service
	typeSet   bool
	notifySet bool
	// restartOpt is the Restart= option in effect.
	restartOpt rawOption
	restart    restartBuild // RestartSteps=, RestartMaxDelaySec= (restart.go)
	// execStartFailed is set when an ExecStart= had an error.
	execStartFailed bool
	stdio           stdioBuild
}

type serviceHandler func(b *serviceBuild, o rawOption) error

// serviceOptions maps each implemented [Service] option to its handler.
// Files that implement a group of options add theirs with
// registerServiceOptions from an init function.
var serviceOptions = map[string]serviceHandler{}

// registerServiceOptions adds handlers to serviceOptions.
func registerServiceOptions(hs map[string]serviceHandler) {
	for name, h := range hs {
		if _, dup := serviceOptions[name]; dup {
			panic("units: option registered twice: " + name)
		}
		serviceOptions[name] = h
	}
}

func init() {
	registerServiceOptions(map[string]serviceHandler{
		"Type": func(b *serviceBuild, o rawOption) error {
			switch t := ServiceType(o.Value); t {
			case TypeSimple, TypeExec, TypeNotify, TypeOneshot:
				b.s.Type = t
			case "idle":
				b.s.Type = TypeSimple
				b.warnf(o, "idle is run as simple by sockd (no waiting for other jobs)")
			case "notify-reload":
				b.s.Type = TypeNotify
				b.warnf(o, "notify-reload is run as notify by sockd (reload restarts the service)")
			case TypeForking:
				b.s.Type = t
			case "dbus":
				b.s.Type = TypeSimple
				b.warnf(o, "dbus is run as simple by sockd (no bus name to wait for)")
			default:
				return fmt.Errorf("invalid type %q (want simple, exec, notify, oneshot or forking)", o.Value)
			}
			b.typeSet = true
			return nil
		},
		"ExecStart":     func(b *serviceBuild, o rawOption) error { return b.exec(&b.s.ExecStart, o) },
		"ExecStartPre":  func(b *serviceBuild, o rawOption) error { return b.exec(&b.s.ExecStartPre, o) },
		"ExecStartPost": func(b *serviceBuild, o rawOption) error { return b.exec(&b.s.ExecStartPost, o) },
		"ExecStop":      func(b *serviceBuild, o rawOption) error { return b.exec(&b.s.ExecStop, o) },
		"ExecReload":    func(b *serviceBuild, o rawOption) error { return b.exec(&b.s.ExecReload, o) },
		"Restart": func(b *serviceBuild, o rawOption) error {
			switch r := RestartPolicy(o.Value); r {
			case RestartNo, RestartOnSuccess, RestartOnFailure, RestartOnAbnormal, RestartOnWatchdog, RestartOnAbort, RestartAlways:
				b.s.Restart, b.restartOpt = r, o
				return nil
			}
			return fmt.Errorf("invalid value %q (want no, on-success, on-failure, on-abnormal, on-watchdog, on-abort or always)", o.Value)
		},
		"RestartSec": func(b *serviceBuild, o rawOption) error { return setSeconds(&b.s.RestartSec, o.Value) },
		"StartLimitInterval": func(b *serviceBuild, o rawOption) error {
			b.warnf(o, "deprecated; use StartLimitIntervalSec= in [Unit]")
			return setSeconds(&b.s.StartLimitInterval, o.Value)
		},
		"StartLimitIntervalSec": func(b *serviceBuild, o rawOption) error {
			b.warnf(o, "belongs in [Unit]")
			return setSeconds(&b.s.StartLimitInterval, o.Value)
		},
		"StartLimitBurst": func(b *serviceBuild, o rawOption) error {
			b.warnf(o, "belongs in [Unit]")
			return setInt(&b.s.StartLimitBurst, o.Value, 1<<31-1)
		},
		"TimeoutStartSec": func(b *serviceBuild, o rawOption) error { return setTimeout(&b.s.TimeoutStartSec, o.Value) },
		"TimeoutStopSec":  func(b *serviceBuild, o rawOption) error { return setTimeout(&b.s.TimeoutStopSec, o.Value) },
		"TimeoutSec": func(b *serviceBuild, o rawOption) error {
			if err := setTimeout(&b.s.TimeoutStartSec, o.Value); err != nil {
				return err
			}
			return setTimeout(&b.s.TimeoutStopSec, o.Value)
		},
		"KillSignal": func(b *serviceBuild, o rawOption) error {
			sig, err := parseSignal(o.Value)
			if err == nil {
				b.s.KillSignal = sig
			}
			return err
		},
		"KillMode": func(b *serviceBuild, o rawOption) error {
			switch m := KillMode(o.Value); m {
			case KillControlGroup, KillMixed, KillProcess, KillNone:
				b.s.KillMode = m
				return nil
			}
			return fmt.Errorf("invalid value %q (want control-group, mixed, process or none)", o.Value)
		},
		"SendSIGKILL": func(b *serviceBuild, o rawOption) error { return setBool(&b.s.SendSIGKILL, o.Value) },
		"SuccessExitStatus": func(b *serviceBuild, o rawOption) error {
			ws, err := splitWords(o.Value)
			if err != nil {
				return err
			}
			if len(ws) == 0 {
				b.s.SuccessExitStatus, b.s.SuccessSignals = nil, nil
				return nil
			}
			for _, w := range ws {
				if n, err := strconv.Atoi(w); err == nil {
					if n < 0 || n > 255 {
						return fmt.Errorf("exit status %d out of range 0-255", n)
					}
					b.s.SuccessExitStatus = append(b.s.SuccessExitStatus, n)
				} else if n, ok := exitStatusNames[w]; ok {
					b.s.SuccessExitStatus = append(b.s.SuccessExitStatus, n)
				} else if sig, err := parseSignal(w); err == nil {
					b.s.SuccessSignals = append(b.s.SuccessSignals, sig)
				} else {
					return fmt.Errorf("invalid exit status or signal %q", w)
				}
			}
			return nil
		},
		"Environment": func(b *serviceBuild, o rawOption) error {
			v, ok := b.expand(o, o.Value)
			if !ok {
				return nil
			}
			ws, err := splitWords(v)
			if err != nil {
				// As systemd: the assignments before the bad word
				// stand, the rest of the line is ignored.
				b.warnf(o, "%v: the rest of the line is ignored, as in systemd", err)
			}
			if len(ws) == 0 && err == nil {
				b.s.Environment = nil
				return nil
			}
			for _, w := range ws {
				k, _, ok := strings.Cut(w, "=")
				if !ok || !validEnvName(k) {
					b.warnf(o, "invalid environment assignment %q, ignored", w)
					continue
				}
				b.s.Environment = append(b.s.Environment, w)
			}
			return nil
		},
		"EnvironmentFile": func(b *serviceBuild, o rawOption) error {
			if o.Value == "" {
				b.s.EnvironmentFiles = nil
				return nil
			}
			v, ok := b.expand(o, o.Value)
			if !ok {
				return nil
			}
			f := EnvironmentFile{Path: v}
			if p, ok := strings.CutPrefix(v, "-"); ok {
				f = EnvironmentFile{Path: p, Optional: true}
			}
			if !filepath.IsAbs(f.Path) {
				return fmt.Errorf("%q is not an absolute path", f.Path)
			}
			b.s.EnvironmentFiles = append(b.s.EnvironmentFiles, f)
			return nil
		},
		"UnsetEnvironment": func(b *serviceBuild, o rawOption) error {
			return b.names(&b.s.UnsetEnvironment, o, func(w string) bool {
				k, _, _ := strings.Cut(w, "=")
				return validEnvName(k)
			})
		},
		"PassEnvironment": func(b *serviceBuild, o rawOption) error {
			return b.names(&b.s.PassEnvironment, o, validEnvName)
		},
		"WorkingDirectory": func(b *serviceBuild, o rawOption) error {
			v, ok := b.expand(o, o.Value)
			if !ok {
				return nil
			}
			opt := false
			if p, ok := strings.CutPrefix(v, "-"); ok {
				v, opt = p, true
			}
			if v != "" && v != "~" && !filepath.IsAbs(v) {
				return fmt.Errorf("%q is not an absolute path or ~", v)
			}
			if v != "" && v != "~" {
				v = filepath.Clean(v)
			}
			b.s.WorkingDirectory, b.s.WorkingDirectoryOptional = v, opt
			return nil
		},
		"User":  func(b *serviceBuild, o rawOption) error { return b.setUser(&b.s.User, o) },
		"Group": func(b *serviceBuild, o rawOption) error { return b.setUser(&b.s.Group, o) },
		"SupplementaryGroups": func(b *serviceBuild, o rawOption) error {
			return b.names(&b.s.SupplementaryGroups, o, func(w string) bool { return validUserName(w) == nil })
		},
		"UMask": func(b *serviceBuild, o rawOption) error {
			m, err := parseMode(o.Value, 0o777)
			if err == nil {
				b.s.UMask = fileMode(m)
			}
			return err
		},
		"Nice": func(b *serviceBuild, o rawOption) error {
			n, err := strconv.Atoi(o.Value)
			if err != nil || n < -20 || n > 19 {
				return fmt.Errorf("invalid nice level %q (want -20..19)", o.Value)
			}
			b.s.Nice, b.s.HasNice = n, true
			return nil
		},
		"Sockets": func(b *serviceBuild, o rawOption) error {
			err := b.names(&b.s.Sockets, o, func(w string) bool {
				if b.s.Template {
					// A template keeps %i and the other instance
					// specifiers for Instantiate: check the name with
					// a stand-in instance.
					w = standInInstance(w)
				}
				n, err := parseUnitName(w)
				return err == nil && n.Suffix == "socket" && !n.Template
			})
			if b.s.socketsOpt == nil {
				b.s.socketsOpt = map[string]rawOption{}
			}
			for _, n := range b.s.Sockets {
				if _, ok := b.s.socketsOpt[n]; !ok {
					b.s.socketsOpt[n] = o
				}
			}
			return err
		},
		"NotifyAccess": func(b *serviceBuild, o rawOption) error {
			switch a := NotifyAccess(o.Value); a {
			case NotifyNone, NotifyMain, NotifyExec, NotifyAll:
				b.s.NotifyAccess, b.notifySet = a, true
				return nil
			}
			return fmt.Errorf("invalid value %q (want none, main, exec or all)", o.Value)
		},
		"WatchdogSec": func(b *serviceBuild, o rawOption) error {
			if err := setSeconds(&b.s.WatchdogSec, o.Value); err != nil {
				return err
			}
			if b.s.WatchdogSec == Infinity {
				b.s.WatchdogSec = 0
			}
			return nil
		},
		"X-Instances": func(b *serviceBuild, o rawOption) error {
			n, err := parseUint(o.Value, 1024)
			if err != nil || n < 1 {
				return fmt.Errorf("invalid value %q (want a number from 1 to 1024)", o.Value)
			}
			b.s.Instances = int(n)
			return nil
		},
		"X-IdleTimeoutSec": func(b *serviceBuild, o rawOption) error {
			if err := setSeconds(&b.s.IdleTimeout, o.Value); err != nil {
				return err
			}
			if b.s.IdleTimeout == Infinity {
				b.s.IdleTimeout = 0
			}
			return nil
		},
		"X-ReadyAfterSec": func(b *serviceBuild, o rawOption) error {
			if err := setSeconds(&b.s.ReadyAfter, o.Value); err != nil {
				return err
			}
			if b.s.ReadyAfter == Infinity {
				return fmt.Errorf("infinity is not a valid readiness delay")
			}
			return nil
		},
	})
	for name := range limits {
		serviceOptions[name] = func(b *serviceBuild, o rawOption) error {
			if o.Value == "" {
				b.dropLimit(o.Name)
				return nil
			}
			l, err := parseRlimit(o.Name, o.Value)
			if err != nil {
				return err
			}
			b.dropLimit(o.Name)
			b.s.Limits = append(b.s.Limits, l)
			return nil
		}
	}
}

func (b *serviceBuild) dropLimit(name string) {
	res := limits[name].res
	out := b.s.Limits[:0]
	for _, l := range b.s.Limits {
		if l.Resource != res {
			out = append(out, l)
		}
	}
	b.s.Limits = out
}

func setTimeout(dst *time.Duration, v string) error {
	if err := setSeconds(dst, v); err != nil {
		return err
	}
	if *dst == 0 {
		*dst = Infinity
	}
	return nil
}

// validEnvName reports whether s is a valid environment variable name.
func validEnvName(s string) bool {
	if s == "" || len(s) > 4096 || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// names applies a whitespace-separated list option: words are expanded
// and appended, an empty value resets the list.
func (b *serviceBuild) names(dst *[]string, o rawOption, valid func(string) bool) error {
	ws, err := splitWords(o.Value)
	if err != nil {
		return err
	}
	if len(ws) == 0 {
		*dst = nil
		return nil
	}
	for _, w := range ws {
		v, ok := b.expand(o, w)
		if !ok {
			return nil
		}
		if !valid(v) {
			return fmt.Errorf("invalid value %q", v)
		}
		*dst = append(*dst, v)
	}
	return nil
}

// buildService applies opts to a new service unit.
func buildService(name unitName, file string, dropIns []string, opts []rawOption) (*Service, Diagnostics) {
	b := &serviceBuild{
		builder: &builder{unit: name.Full, spec: &specCtx{name: name, file: file, keepInstance: name.Template}},
		s: &Service{
			Name: name.Full, File: file, DropIns: dropIns, Template: name.Template, Instance: name.Instance,
			Type: TypeSimple, Restart: RestartNo, RestartSec: 100 * time.Millisecond,
			StartLimitInterval: 10 * time.Second, StartLimitBurst: 5,
			TimeoutStartSec: 90 * time.Second, TimeoutStopSec: 10 * time.Second,
			KillSignal: syscall.SIGTERM, KillMode: KillControlGroup, SendSIGKILL: true,
			UMask: 0o022, StandardOutput: Output{Kind: "journal"}, StandardError: Output{Kind: "inherit"},
			Instances: 1, GuessMainPID: true, ReloadSignal: syscall.SIGHUP, WatchdogSignal: syscall.SIGABRT,
			ExecDirs: defaultExecDirs,
		},
	}
	if name.Template {
		b.s.raw = opts
	}
	for _, o := range opts {
		if !b.sectionOK(o, "service") || o.Name == "" {
			continue
		}
		if o.Section == "Unit" || o.Section == "Install" {
			b.unitOption(o, "service")
			continue
		}
		if h, ok := serviceOptions[o.Name]; ok && o.Section == "Service" {
			n := len(b.diags)
			if err := h(b, o); err != nil {
				b.errf(o, "%v", err)
			}
			if o.Name == "ExecStart" && Diagnostics(b.diags[n:]).Err() != nil {
				b.execStartFailed = true
			}
			continue
		}
		if strings.HasPrefix(o.Section, "X-") || strings.HasPrefix(o.Name, "X-") {
			continue
		}
		b.notImplemented(o, serviceKnown())
	}
	b.finishStdio()
	b.finishExecDirs()
	b.finishRestart()
	s := b.s
	s.Description = b.desc
	s.Conditions = b.conds
	if b.startLimitInterval != nil {
		s.StartLimitInterval = *b.startLimitInterval
	}
	if b.startLimitBurst != nil {
		s.StartLimitBurst = *b.startLimitBurst
	}
	if !b.typeSet && len(s.ExecStart) == 0 {
		s.Type = TypeOneshot
	}
	if !b.notifySet && s.Type == TypeNotify {
		s.NotifyAccess = NotifyMain
	} else if !b.notifySet {
		s.NotifyAccess = NotifyNone
	}
	whole := rawOption{File: file, Line: 1}
	switch {
	case b.execStartFailed && len(s.ExecStart) == 0:
	case s.Type == TypeOneshot:
		if len(s.ExecStart) == 0 && len(s.ExecStop) == 0 {
			if b.successActionOpt == nil {
				b.errf(whole, "no ExecStart= or ExecStop=")
			} else {
				b.warnf(*b.successActionOpt, "the service has no ExecStart= or ExecStop=: it runs nothing under sockd")
			}
		}
		if s.Restart == RestartAlways || s.Restart == RestartOnSuccess {
			b.errf(b.restartOpt, "Restart=%s is not allowed for Type=oneshot", s.Restart)
		}
	case len(s.ExecStart) == 0:
		b.errf(whole, "no ExecStart=")
	case len(s.ExecStart) > 1:
		second := s.ExecStart[1]
		b.errf(rawOption{Name: "ExecStart", File: second.File, Line: second.Line}, "more than one ExecStart= is only allowed for Type=oneshot")
	}
	return s, b.diags
}

func serviceKnown() map[string]bool { return knownNames("Service", serviceOptions) }
