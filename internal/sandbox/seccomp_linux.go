package sandbox

import "errors"

// applySeccomp loads the seccomp filters of RestrictAddressFamilies= and
// MemoryDenyWriteExecute= and sets no_new_privs for NoNewPrivileges= (or
// because a filter needs it).
func applySeccomp(o *Options) error {
	if o.RestrictAddressFamilies != nil || o.MemoryDenyWriteExecute || o.NoNewPrivileges {
		return errors.New("seccomp and NoNewPrivileges=: not implemented yet")
	}
	return nil
}
