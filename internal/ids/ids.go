// Package ids resolves the user and group names of unit files (User=,
// Group=, SupplementaryGroups=, SocketUser=, SocketGroup=), each given as
// a name or a decimal number, through os/user (passwd(5), group(5)).
package ids

import (
	"errors"
	"fmt"
	"math"
	"os/user"
	"strconv"
)

// LookupUser returns the passwd entry of a user name or a decimal uid.
// A uid without an entry is an error (user.UnknownUserIdError), as a
// name without one is (user.UnknownUserError).
func LookupUser(name string) (*user.User, error) {
	if _, ok, err := number(name, "user"); err != nil {
		return nil, err
	} else if ok {
		return user.LookupId(name)
	}
	return user.Lookup(name)
}

// LookupUID returns the uid of a user name, or the number of a decimal
// uid as it is, whether or not the passwd database knows it.
func LookupUID(name string) (uint32, error) {
	if n, ok, err := number(name, "user"); err != nil || ok {
		return n, err
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, err
	}
	return parseID(u.Uid, "user")
}

// LookupGroup returns the gid of a group name, or the number of a
// decimal gid as it is, whether or not the group database knows it.
func LookupGroup(name string) (uint32, error) {
	if n, ok, err := number(name, "group"); err != nil || ok {
		return n, err
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	return parseID(g.Gid, "group")
}

// number reports whether name is a decimal id, and returns it. An empty
// name, and 4294967295 ((uid_t)-1, which chown(2) reads as "unchanged"),
// are errors.
func number(name, kind string) (n uint32, ok bool, err error) {
	if name == "" {
		return 0, false, fmt.Errorf("empty %s name", kind)
	}
	v, err := strconv.ParseUint(name, 10, 32)
	if errors.Is(err, strconv.ErrRange) || (err == nil && v == math.MaxUint32) {
		return 0, false, fmt.Errorf("invalid %s id %s", kind, name)
	}
	if err != nil {
		return 0, false, nil // a name
	}
	return uint32(v), true, nil
}

// parseID parses an id from the passwd or group database.
func parseID(s, kind string) (uint32, error) {
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid %s id %q in the database: %w", kind, s, err)
	}
	return uint32(v), nil
}
