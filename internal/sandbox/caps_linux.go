package sandbox

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Every call here acts on the calling thread alone (prctl, capget and
// capset with pid 0), which is what Apply needs: the thread that execs
// the program is the one whose capabilities the program starts with.

// Capabilities that other options remove from the bounding set, and the
// one that decides about no_new_privs (linux/capability.h).
const (
	capSysModule = 16
	capSysRawio  = 17
	capSysAdmin  = 21
	capMknod     = 27
)

// boundingKept is the bounding set o asks for, and whether it narrows the
// one the process has at all.
func boundingKept(o *Options) (keep CapSet, narrowed bool) {
	keep = ^CapSet(0)
	if o.CapabilityBoundingSet != nil {
		keep = *o.CapabilityBoundingSet
	}
	// As systemd does: with PrivateDevices= there are no devices to make
	// or to poke at, with ProtectKernelModules= no modules to load, and
	// a service keeping these capabilities could undo the option.
	if o.PrivateDevices {
		keep &^= 1<<capMknod | 1<<capSysRawio
	}
	if o.ProtectKernelModules {
		keep &^= 1 << capSysModule
	}
	return keep, keep != ^CapSet(0)
}

// dropBoundingSet applies CapabilityBoundingSet= (and the capabilities
// PrivateDevices= and ProtectKernelModules= remove from it). It leaves the
// thread's own sets to raiseAmbient: switchUser, which comes between, may
// need CAP_SETUID and CAP_SETGID although the bounding set lost them.
func dropBoundingSet(o *Options) error {
	keep, narrowed := boundingKept(o)
	if !narrowed {
		return nil
	}
	bnd, err := boundingSet()
	if err != nil {
		return err
	}
	// Only what is still there: dropping needs CAP_SETPCAP, which a
	// helper run with fewer capabilities may lack while having nothing
	// to drop.
	for c := range 64 {
		if bnd.Has(c) && !keep.Has(c) {
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
				return fmt.Errorf("CapabilityBoundingSet=: drop %s: %w", CapabilityName(c), err)
			}
		}
	}
	return nil
}

// boundingSet reads the calling thread's bounding set. The kernel
// answers PR_CAPBSET_READ with EINVAL past its last capability (the one
// /proc/sys/kernel/cap_last_cap names), so this sees every capability the
// kernel has, even one capNames does not know; asking the kernel rather
// than the file also works once the mounts made /proc inaccessible.
func boundingSet() (CapSet, error) {
	var set CapSet
	for c := range 64 {
		in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("read the capability bounding set: %w", err)
		}
		if in == 1 {
			set |= 1 << c
		}
	}
	return set, nil
}

// setSecureBits applies SecureBits=, adding keep-caps while the uid
// changes if AmbientCapabilities= must survive the change.
func setSecureBits(o *Options, userChanges bool) error {
	bits := o.SecureBits
	if userChanges && o.AmbientCapabilities != 0 {
		// setresuid from root empties the permitted set unless keep-caps
		// is on, and an ambient capability must be permitted to be
		// raised. The bit may stay on: execve clears keep-caps, so the
		// program never sees it (systemd does the same).
		bits |= SecBitKeepCaps
	}
	if bits == 0 {
		return nil
	}
	if err := unix.Prctl(unix.PR_SET_SECUREBITS, uintptr(bits), 0, 0, 0); err != nil {
		return fmt.Errorf("SecureBits=: %w", err)
	}
	return nil
}

// raiseAmbient runs after switchUser. First it takes from the thread's
// effective, permitted and inheritable sets every capability the
// bounding set lacks, as systemd does: a root service without CAP_X in
// its bounding set does not have CAP_X either. (execve recomputes the
// effective and permitted sets, but gives root every capability of its
// inheritable set, bounded or not.) Then it raises AmbientCapabilities=,
// which must be in the bounding set. The uid change needs no case of its
// own: setSecureBits kept the permitted set through it.
func raiseAmbient(o *Options, _ bool) error {
	amb := o.AmbientCapabilities
	if _, narrowed := boundingKept(o); !narrowed && amb == 0 {
		return nil
	}
	bnd, err := boundingSet()
	if err != nil {
		return err
	}
	if missing := amb &^ bnd; missing != 0 {
		return fmt.Errorf("AmbientCapabilities=: %s not in the capability bounding set", missing)
	}
	caps, err := threadCaps()
	if err != nil {
		return err
	}
	caps.eff &= bnd
	caps.perm &= bnd
	caps.inh &= bnd
	if missing := amb &^ caps.perm; missing != 0 {
		return fmt.Errorf("AmbientCapabilities=: %s not permitted", missing)
	}
	// An ambient capability must be permitted and inheritable.
	caps.eff |= amb
	caps.inh |= amb
	if err := setThreadCaps(caps); err != nil {
		return err
	}
	for c := range 64 {
		if amb.Has(c) {
			if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); err != nil {
				return fmt.Errorf("AmbientCapabilities=: raise %s: %w", CapabilityName(c), err)
			}
		}
	}
	return nil
}

// capSets are a thread's effective, permitted and inheritable sets.
type capSets struct{ eff, perm, inh CapSet }

// threadCaps reads the calling thread's capability sets.
func threadCaps() (capSets, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var d [2]unix.CapUserData // version 3: the low, then the high 32 bits
	if err := unix.Capget(&hdr, &d[0]); err != nil {
		return capSets{}, fmt.Errorf("capget: %w", err)
	}
	join := func(lo, hi uint32) CapSet { return CapSet(hi)<<32 | CapSet(lo) }
	return capSets{
		eff:  join(d[0].Effective, d[1].Effective),
		perm: join(d[0].Permitted, d[1].Permitted),
		inh:  join(d[0].Inheritable, d[1].Inheritable),
	}, nil
}

// setThreadCaps sets the calling thread's capability sets.
func setThreadCaps(c capSets) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	d := [2]unix.CapUserData{
		{Effective: uint32(c.eff), Permitted: uint32(c.perm), Inheritable: uint32(c.inh)},
		{Effective: uint32(c.eff >> 32), Permitted: uint32(c.perm >> 32), Inheritable: uint32(c.inh >> 32)},
	}
	if err := unix.Capset(&hdr, &d[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}
