package sandbox

import "syscall"

// overflowID is the kernel's nobody (overflowuid/overflowgid): what every
// id that a user namespace does not map appears as inside it.
const overflowID = 65534

// UserNamespace sets attr, with which the exec helper is forked, to make
// the helper in a user namespace of its own for PrivateUsers=. As in
// systemd, the namespace maps root to root and the service's user and
// group to themselves; every other id appears as nobody (65534) in it.
// uid and gid are the service's (0 without User=). The helper is root
// with every capability in the namespace, and so can still make its
// mount namespace and switch to the service's user; it has none outside
// it.
func UserNamespace(attr *syscall.SysProcAttr, uid, gid uint32) {
	attr.Cloneflags |= syscall.CLONE_NEWUSER
	attr.UidMappings = idMap(uid)
	attr.GidMappings = idMap(gid)
	attr.GidMappingsEnableSetgroups = true
}

func idMap(id uint32) []syscall.SysProcIDMap {
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}}
	if id != 0 {
		m = append(m, syscall.SysProcIDMap{ContainerID: int(id), HostID: int(id), Size: 1})
	}
	return m
}
