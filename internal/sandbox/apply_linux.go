package sandbox

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Apply sets s up on the calling thread, which must be locked to its
// goroutine (runtime.LockOSThread) and must exec the program next: mount
// namespaces, capabilities, no_new_privs and seccomp filters are per
// thread, and execve keeps only the thread that calls it. switchUser
// changes the credentials (setgroups, setresgid, setresuid) or is nil
// when they stay; it runs where systemd changes them, after the mounts and
// the bounding set and before ambient capabilities, no_new_privs and the
// seccomp filters. userChanges tells whether switchUser leaves uid 0.
//
// The order, as systemd's exec_child has it:
//  1. the mount namespace, then the working directory;
//  2. the bounding set; SecureBits= (with keep-caps while the uid
//     changes, if ambient capabilities must survive it);
//  3. switchUser;
//  4. the thread's effective, permitted and inheritable sets trimmed to
//     the bounding set (only now: the switch needed CAP_SETUID), then
//     ambient capabilities;
//  5. seccomp filters (with no_new_privs when the process is no longer
//     root: the kernel requires one or the other); NoNewPrivileges=.
func Apply(s *Setup, switchUser func() error, userChanges bool) error {
	if s.MountNamespace() {
		if err := setupMounts(s); err != nil {
			return err
		}
	}
	if s.Dir != "" {
		if err := unix.Chdir(s.Dir); err != nil {
			return fmt.Errorf("chdir %s: %w", s.Dir, err)
		}
	}
	if err := dropBoundingSet(&s.Options); err != nil {
		return err
	}
	if err := setSecureBits(&s.Options, userChanges); err != nil {
		return err
	}
	if switchUser != nil {
		if err := switchUser(); err != nil {
			return err
		}
	}
	if err := raiseAmbient(&s.Options, userChanges); err != nil {
		return err
	}
	return applySeccomp(&s.Options)
}
