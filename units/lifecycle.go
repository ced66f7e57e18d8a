package units

// [Service] options of a service's life beyond starting and stopping it:
// forking daemons, conditions, what runs after the stop, and which exits
// restart (systemd.service(5)).

import (
	"fmt"
	"path/filepath"
	"strconv"
	"syscall"
)

// ExitStatusSet is a list of exit codes and signals, as
// RestartPreventExitStatus= and RestartForceExitStatus= take them.
type ExitStatusSet struct {
	Codes   []int
	Signals []syscall.Signal
}

// Has reports whether an exit with code (or, when sig is not 0, the
// signal sig) is in the set.
func (s ExitStatusSet) Has(code int, sig syscall.Signal) bool {
	if sig != 0 {
		for _, x := range s.Signals {
			if x == sig {
				return true
			}
		}
		return false
	}
	for _, c := range s.Codes {
		if c == code {
			return true
		}
	}
	return false
}

// parseExitStatusSet adds the codes and signals of v to dst; an empty
// value resets it.
func parseExitStatusSet(dst *ExitStatusSet, v string) error {
	ws, err := splitWords(v)
	if err != nil {
		return err
	}
	if len(ws) == 0 {
		*dst = ExitStatusSet{}
		return nil
	}
	for _, w := range ws {
		if n, err := strconv.Atoi(w); err == nil {
			if n < 0 || n > 255 {
				return fmt.Errorf("exit status %d out of range 0-255", n)
			}
			dst.Codes = append(dst.Codes, n)
		} else if n, ok := exitStatusNames[w]; ok {
			dst.Codes = append(dst.Codes, n)
		} else if sig, err := parseSignal(w); err == nil {
			dst.Signals = append(dst.Signals, sig)
		} else {
			return fmt.Errorf("invalid exit status or signal %q", w)
		}
	}
	return nil
}

func init() {
	registerServiceOptions(map[string]serviceHandler{
		"PIDFile": func(b *serviceBuild, o rawOption) error {
			v, ok := b.expand(o, o.Value)
			if !ok {
				return nil
			}
			if v == "" {
				b.s.PIDFile = ""
				return nil
			}
			if !filepath.IsAbs(v) {
				// systemd takes a relative name under /run.
				v = filepath.Join("/run", v)
			}
			b.s.PIDFile = filepath.Clean(v)
			return nil
		},
		"GuessMainPID":    func(b *serviceBuild, o rawOption) error { return setBool(&b.s.GuessMainPID, o.Value) },
		"RemainAfterExit": func(b *serviceBuild, o rawOption) error { return setBool(&b.s.RemainAfterExit, o.Value) },
		"ExecCondition":   func(b *serviceBuild, o rawOption) error { return b.exec(&b.s.ExecCondition, o) },
		"ExecStopPost":    func(b *serviceBuild, o rawOption) error { return b.exec(&b.s.ExecStopPost, o) },
		"RestartPreventExitStatus": func(b *serviceBuild, o rawOption) error {
			return parseExitStatusSet(&b.s.RestartPreventExitStatus, o.Value)
		},
		"RestartForceExitStatus": func(b *serviceBuild, o rawOption) error {
			return parseExitStatusSet(&b.s.RestartForceExitStatus, o.Value)
		},
		"RuntimeMaxSec": func(b *serviceBuild, o rawOption) error {
			if err := setSeconds(&b.s.RuntimeMax, o.Value); err != nil {
				return err
			}
			if b.s.RuntimeMax == Infinity {
				b.s.RuntimeMax = 0
			}
			return nil
		},
		"WatchdogSignal": func(b *serviceBuild, o rawOption) error {
			sig, err := parseSignal(o.Value)
			if err == nil {
				b.s.WatchdogSignal = sig
			}
			return err
		},
		"TimeoutAbortSec": func(b *serviceBuild, o rawOption) error {
			if o.Value == "" {
				b.s.TimeoutAbort = 0
				return nil
			}
			return setTimeout(&b.s.TimeoutAbort, o.Value)
		},
		"ReloadSignal": func(b *serviceBuild, o rawOption) error {
			sig, err := parseSignal(o.Value)
			if err == nil {
				b.s.ReloadSignal = sig
			}
			return err
		},
	})
}
