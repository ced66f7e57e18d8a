package main

import (
	"flag"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/sockd/sockd/api"
)

// idList is a repeatable flag of comma-separated user or group names or
// numbers.
type idList []string

func (l *idList) String() string { return strings.Join(*l, ",") }

func (l *idList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// apiAccessFlags are the flags that say who may use the control API.
type apiAccessFlags struct {
	group       string
	adminGroups idList
	adminUIDs   idList
}

// addAPIAccessFlags registers --api-group, --api-admin-group and
// --api-admin-uid on fs.
func addAPIAccessFlags(fs *flag.FlagSet) *apiAccessFlags {
	f := &apiAccessFlags{}
	fs.StringVar(&f.group, "api-group", "", "group NAME|GID of the control socket; its members may use the read routes (default: none, socket 0600)")
	fs.Var(&f.adminGroups, "api-admin-group", "groups NAME|GID whose members may also use the write routes (repeatable, comma-separated)")
	fs.Var(&f.adminUIDs, "api-admin-uid", "users NAME|UID who may also use the write routes (repeatable, comma-separated)")
	return f
}

// apiSocket is how the control socket is made and who may use it.
type apiSocket struct {
	mode   os.FileMode
	gid    int // -1: root's group
	access api.Access
}

// resolve looks the names up and works out the socket's mode: modeFlag
// if set, else 0660 with --api-group and 0600 without.
func (f *apiAccessFlags) resolve(modeFlag string) (apiSocket, error) {
	s := apiSocket{mode: 0o600, gid: -1}
	if f.group != "" {
		gid, err := lookupGroup(f.group)
		if err != nil {
			return s, fmt.Errorf("--api-group: %w", err)
		}
		s.gid, s.mode = gid, 0o660
		s.access.Groups = []int{gid}
	}
	for _, g := range f.adminGroups {
		gid, err := lookupGroup(g)
		if err != nil {
			return s, fmt.Errorf("--api-admin-group: %w", err)
		}
		s.access.AdminGroups = append(s.access.AdminGroups, gid)
	}
	for _, u := range f.adminUIDs {
		uid, err := lookupUser(u)
		if err != nil {
			return s, fmt.Errorf("--api-admin-uid: %w", err)
		}
		s.access.AdminUIDs = append(s.access.AdminUIDs, uid)
	}
	if modeFlag != "" {
		m, err := strconv.ParseUint(modeFlag, 8, 32)
		if err != nil || m > 0o777 {
			return s, fmt.Errorf("--api-mode %q: not an octal mode", modeFlag)
		}
		s.mode = os.FileMode(m)
	}
	return s, nil
}

func lookupGroup(v string) (int, error) {
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(v)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}

func lookupUser(v string) (int, error) {
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return n, nil
	}
	u, err := user.Lookup(v)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(u.Uid)
}
