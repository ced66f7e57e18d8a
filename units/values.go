package units

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// parseBool reads a boolean as systemd does.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "yes", "y", "true", "t", "on":
		return true, nil
	case "0", "no", "n", "false", "f", "off":
		return false, nil
	}
	return false, fmt.Errorf("invalid boolean %q (want yes/no, true/false, on/off, 1/0)", s)
}

var timeUnits = []struct {
	name string
	d    float64 // nanoseconds
}{
	// Longest names first so that "ms" wins over "m" and "min" over "m".
	{"seconds", 1e9}, {"second", 1e9}, {"minutes", 60e9}, {"minute", 60e9},
	{"months", 2629800e9}, {"month", 2629800e9}, {"weeks", 604800e9}, {"week", 604800e9},
	{"hours", 3600e9}, {"hour", 3600e9}, {"years", 31557600e9}, {"year", 31557600e9},
	{"days", 86400e9}, {"day", 86400e9}, {"usec", 1e3}, {"msec", 1e6}, {"nsec", 1},
	{"sec", 1e9}, {"min", 60e9}, {"hr", 3600e9}, {"us", 1e3}, {"µs", 1e3}, {"μs", 1e3},
	{"ms", 1e6}, {"ns", 1}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}, {"d", 86400e9},
	{"w", 604800e9}, {"M", 2629800e9}, {"y", 31557600e9},
}

// parseTimespan reads a time span as systemd.time(7) describes it:
// "1min 30s", "500ms", "2h", "1.5s", "infinity"; a number without unit
// is in def (seconds for the *Sec= options).
func parseTimespan(s string, def time.Duration) (time.Duration, error) {
	orig := s
	s = strings.TrimSpace(s)
	if s == "infinity" {
		return Infinity, nil
	}
	if s == "" {
		return 0, errors.New("empty time span")
	}
	var total float64
	for s != "" {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("invalid time span %q", orig)
		}
		num, err := strconv.ParseFloat(s[:i], 64)
		if err != nil {
			return 0, fmt.Errorf("invalid time span %q", orig)
		}
		s = strings.TrimLeft(s[i:], " \t")
		unit := float64(def)
		if s != "" && !(s[0] >= '0' && s[0] <= '9') {
			found := false
			for _, u := range timeUnits {
				if strings.HasPrefix(s, u.name) {
					rest := s[len(u.name):]
					if rest != "" && !(rest[0] >= '0' && rest[0] <= '9' || rest[0] == ' ' || rest[0] == '\t') {
						continue
					}
					unit, s, found = u.d, rest, true
					break
				}
			}
			if !found {
				return 0, fmt.Errorf("invalid time span %q: unknown unit", orig)
			}
		}
		s = strings.TrimLeft(s, " \t")
		total += num * unit
		if total >= math.MaxInt64 {
			return 0, fmt.Errorf("time span %q too large", orig)
		}
	}
	return time.Duration(total), nil
}

// parseSize reads a size in bytes with an optional K, M, G, T, P, E
// suffix in base 1024 (and an optional "B").
func parseSize(s string) (uint64, error) {
	orig := s
	s = strings.TrimSuffix(strings.TrimSpace(s), "B")
	mult := uint64(1)
	if s != "" {
		if i := strings.IndexByte("KMGTPE", s[len(s)-1]); i >= 0 {
			mult = 1 << (10 * uint(i+1))
			s = strings.TrimSpace(s[:len(s)-1])
		}
	}
	if s == "" || s[0] == '-' || s[0] == '+' {
		return 0, fmt.Errorf("invalid size %q", orig)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("invalid size %q", orig)
	}
	v := f * float64(mult)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q too large", orig)
	}
	return uint64(v), nil
}

// parseUint reads a non-negative decimal integer no larger than max.
func parseUint(s string, max uint64) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid number %q", s)
	}
	if v > max {
		return 0, fmt.Errorf("%d out of range (max %d)", v, max)
	}
	return v, nil
}

// parseMode reads an octal file mode no larger than max.
func parseMode(s string, max uint64) (uint64, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > max {
		return 0, fmt.Errorf("invalid octal mode %q", s)
	}
	return v, nil
}

// sigRTMin and sigRTMax are SIGRTMIN and SIGRTMAX as systemd and C
// programs number them: glibc keeps the kernel's first two real-time
// signals (32 and 33) for itself. Neither syscall nor x/sys/unix names
// them.
const (
	sigRTMin syscall.Signal = 34
	sigRTMax syscall.Signal = 64
)

// parseSignal reads a signal as "SIGTERM", "TERM", "15", "SIGRTMIN+n" or
// "SIGRTMAX-n".
func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > int(sigRTMax) {
			return 0, fmt.Errorf("invalid signal %q", s)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	if rest, ok := strings.CutPrefix(name, "SIGRTMIN+"); ok {
		if n, err := strconv.Atoi(rest); err == nil && n >= 0 && n <= int(sigRTMax-sigRTMin) {
			return sigRTMin + syscall.Signal(n), nil
		}
	}
	if rest, ok := strings.CutPrefix(name, "SIGRTMAX-"); ok {
		if n, err := strconv.Atoi(rest); err == nil && n >= 0 && n <= int(sigRTMax-sigRTMin) {
			return sigRTMax - syscall.Signal(n), nil
		}
	}
	switch name {
	case "SIGRTMIN":
		return sigRTMin, nil
	case "SIGRTMAX":
		return sigRTMax, nil
	}
	return 0, fmt.Errorf("invalid signal %q", s)
}

// limitKind tells how the value of a Limit*= option is read.
type limitKind int

const (
	limitNumber limitKind = iota
	limitBytes
	limitSeconds // LimitCPU=: a time span, stored in seconds
	limitUsec    // LimitRTTIME=: a time span, stored in microseconds
	limitNice    // LimitNICE=: "+N"/"-N" nice level or raw 0..40
)

var limits = map[string]struct {
	res  int
	kind limitKind
}{
	"LimitCPU":        {unix.RLIMIT_CPU, limitSeconds},
	"LimitFSIZE":      {unix.RLIMIT_FSIZE, limitBytes},
	"LimitDATA":       {unix.RLIMIT_DATA, limitBytes},
	"LimitSTACK":      {unix.RLIMIT_STACK, limitBytes},
	"LimitCORE":       {unix.RLIMIT_CORE, limitBytes},
	"LimitRSS":        {unix.RLIMIT_RSS, limitBytes},
	"LimitNOFILE":     {unix.RLIMIT_NOFILE, limitNumber},
	"LimitAS":         {unix.RLIMIT_AS, limitBytes},
	"LimitNPROC":      {unix.RLIMIT_NPROC, limitNumber},
	"LimitMEMLOCK":    {unix.RLIMIT_MEMLOCK, limitBytes},
	"LimitLOCKS":      {unix.RLIMIT_LOCKS, limitNumber},
	"LimitSIGPENDING": {unix.RLIMIT_SIGPENDING, limitNumber},
	"LimitMSGQUEUE":   {unix.RLIMIT_MSGQUEUE, limitBytes},
	"LimitNICE":       {unix.RLIMIT_NICE, limitNice},
	"LimitRTPRIO":     {unix.RLIMIT_RTPRIO, limitNumber},
	"LimitRTTIME":     {unix.RLIMIT_RTTIME, limitUsec},
}

func parseLimitValue(s string, kind limitKind) (uint64, error) {
	if s == "infinity" {
		return unix.RLIM_INFINITY, nil
	}
	switch kind {
	case limitBytes:
		return parseSize(s)
	case limitSeconds, limitUsec:
		def := time.Second
		if kind == limitUsec {
			def = time.Microsecond
		}
		d, err := parseTimespan(s, def)
		if err != nil {
			return 0, err
		}
		if d == Infinity {
			return unix.RLIM_INFINITY, nil
		}
		if kind == limitSeconds {
			return uint64((d + time.Second - 1) / time.Second), nil
		}
		return uint64(d / time.Microsecond), nil
	case limitNice:
		if s != "" && (s[0] == '+' || s[0] == '-') {
			n, err := strconv.Atoi(s)
			if err != nil || n < -20 || n > 19 {
				return 0, fmt.Errorf("invalid nice level %q", s)
			}
			return uint64(20 - n), nil
		}
		return parseUint(s, 40)
	}
	return parseUint(s, math.MaxUint64-1)
}

// parseRlimit reads "soft:hard" or one value for both.
func parseRlimit(name, s string) (Rlimit, error) {
	l := limits[name]
	soft, hard, two := strings.Cut(s, ":")
	sv, err := parseLimitValue(soft, l.kind)
	if err != nil {
		return Rlimit{}, err
	}
	hv := sv
	if two {
		if hv, err = parseLimitValue(hard, l.kind); err != nil {
			return Rlimit{}, err
		}
		if sv > hv {
			return Rlimit{}, fmt.Errorf("soft limit %s above hard limit %s", soft, hard)
		}
	}
	return Rlimit{Resource: l.res, Soft: sv, Hard: hv}, nil
}

// exitStatusNames are the symbolic exit codes of BSD sysexits.h, which
// systemd accepts in SuccessExitStatus=.
var exitStatusNames = map[string]int{
	"USAGE": 64, "DATAERR": 65, "NOINPUT": 66, "NOUSER": 67, "NOHOST": 68,
	"UNAVAILABLE": 69, "SOFTWARE": 70, "OSERR": 71, "OSFILE": 72, "CANTCREAT": 73,
	"IOERR": 74, "TEMPFAIL": 75, "PROTOCOL": 76, "NOPERM": 77, "CONFIG": 78,
}
