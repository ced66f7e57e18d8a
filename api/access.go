package api

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Access says who may use the API. The server checks it on every request
// against the peer's credentials as the kernel reports them for the
// connection (SO_PEERCRED, SO_PEERGROUPS), so the socket file's mode is
// not what keeps anyone out.
//
// Root, and the uid the server runs as, may use every route. Members of
// Groups may use the read routes. The users AdminUIDs and members of
// AdminGroups may use every route, read and write. Membership counts the
// peer's effective gid and its supplementary groups. The zero Access lets
// in root and the server's own uid only.
type Access struct {
	Groups      []int // may read: list, status, logs, events, version, debug
	AdminGroups []int // may read and write
	AdminUIDs   []int // may read and write
}

// check returns nil if peer may use route, else an error matching
// ErrPermission that says what is missing. known is false when the
// server could not read the peer's credentials: then nothing is allowed.
func (a Access) check(peer Peer, known bool, route string, isWrite bool) error {
	if !known {
		return fmt.Errorf("%s: %w: the peer's credentials are unknown (not a Unix socket?)", route, ErrPermission)
	}
	if peer.UID == 0 || peer.UID == os.Geteuid() || slices.Contains(a.AdminUIDs, peer.UID) || peer.inAny(a.AdminGroups) {
		return nil
	}
	if !isWrite && peer.inAny(a.Groups) {
		return nil
	}
	var who []string
	who = append(who, "root")
	if isWrite {
		who = append(who, names("uid", a.AdminUIDs)...)
		who = append(who, names("group", a.AdminGroups)...)
	} else {
		who = append(who, names("uid", a.AdminUIDs)...)
		who = append(who, names("group", slices.Concat(a.Groups, a.AdminGroups))...)
	}
	kind := "read"
	if isWrite {
		kind = "write"
	}
	return fmt.Errorf("%s: %w: a %s route, for %s; uid %d (pid %d, groups %s) is none of them",
		route, ErrPermission, kind, orList(who), peer.UID, peer.PID, joinIDs(peer.allGroups()))
}

// inAny reports whether the peer's gid or one of its supplementary groups
// is in gids.
func (p Peer) inAny(gids []int) bool {
	for _, g := range p.allGroups() {
		if slices.Contains(gids, g) {
			return true
		}
	}
	return false
}

// allGroups is the peer's effective gid then its supplementary groups.
func (p Peer) allGroups() []int {
	return append([]int{p.GID}, p.Groups...)
}

func names(kind string, ids []int) []string {
	var out []string
	for _, id := range ids {
		out = append(out, kind+" "+strconv.Itoa(id))
	}
	return out
}

func joinIDs(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(id)
	}
	return strings.Join(s, ",")
}

// orList joins "a", "b", "c" as "a, b or c".
func orList(s []string) string {
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}
