package sandbox

import "syscall"

// UserNamespace sets attr, with which the exec helper is forked, to make
// the helper in a user namespace of its own for PrivateUsers=. As in
// systemd, the namespace maps root to root and the service's user and
// group to themselves; every other id appears as the kernel's overflow id (nobody, 65534) in it.
// uid and gid are the service's (0 without User=). The helper is root
// with every capability in the namespace, and so can still make its
// mount namespace and switch to the service's user; it has none outside
// it. groups, the service's supplementary groups, are mapped to
// themselves too: the helper sets them inside the namespace, where an
// unmapped group cannot be named, and the process holds them either way.
func UserNamespace(attr *syscall.SysProcAttr, uid, gid uint32, groups []uint32) {
	attr.Cloneflags |= syscall.CLONE_NEWUSER
	attr.UidMappings = idMap(uid)
	attr.GidMappings = idMap(append([]uint32{gid}, groups...)...)
	attr.GidMappingsEnableSetgroups = true
}

// idMap maps 0 and each of ids to itself, once each; the kernel refuses
// overlapping ranges.
func idMap(ids ...uint32) []syscall.SysProcIDMap {
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}}
	seen := map[uint32]bool{0: true}
	for _, id := range ids {
		if !seen[id] && len(m) < 340 { // the kernel's limit of lines
			seen[id] = true
			m = append(m, syscall.SysProcIDMap{ContainerID: int(id), HostID: int(id), Size: 1})
		}
	}
	return m
}
