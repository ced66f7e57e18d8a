//go:build !cgo || !linux

package children

import "syscall"

// spawnInC reports whether Start can spawn a process in C (spawn_cgo.c)
// without the exec helper; without cgo it cannot.
const spawnInC = false

// spawnCgroupInC reports whether the C spawn can start a process in a
// cgroup.
var spawnCgroupInC = false

func spawn(string, []string, []uintptr, *Spec) (int, error) { return 0, syscall.ENOSYS }
