package ids

import (
	"errors"
	"os/user"
	"testing"
)

// The tests rely on what every Debian system has: root (uid 0, gid 0)
// and no entry for uid or gid 4242.

func TestLookupUser(t *testing.T) {
	for _, name := range []string{"root", "0"} {
		u, err := LookupUser(name)
		if err != nil || u.Uid != "0" || u.Username != "root" {
			t.Errorf("LookupUser(%q) = %+v, %v; want root", name, u, err)
		}
	}
	var unknownID user.UnknownUserIdError
	if _, err := LookupUser("4242"); !errors.As(err, &unknownID) {
		t.Errorf("LookupUser(4242): %v, want UnknownUserIdError", err)
	}
	var unknown user.UnknownUserError
	if _, err := LookupUser("sockd-no-such-user"); !errors.As(err, &unknown) {
		t.Errorf("LookupUser(sockd-no-such-user): %v, want UnknownUserError", err)
	}
}

func TestLookupIDs(t *testing.T) {
	for _, tc := range []struct {
		fn      func(string) (uint32, error)
		fnName  string
		name    string
		want    uint32
		wantErr bool
	}{
		{LookupUID, "LookupUID", "root", 0, false},
		{LookupUID, "LookupUID", "0", 0, false},
		{LookupUID, "LookupUID", "4242", 4242, false}, // no entry needed
		{LookupUID, "LookupUID", "sockd-no-such-user", 0, true},
		{LookupUID, "LookupUID", "", 0, true},
		{LookupUID, "LookupUID", "-1", 0, true},
		{LookupUID, "LookupUID", "4294967295", 0, true},
		{LookupUID, "LookupUID", "4294967296", 0, true},
		{LookupGroup, "LookupGroup", "root", 0, false},
		{LookupGroup, "LookupGroup", "0", 0, false},
		{LookupGroup, "LookupGroup", "4242", 4242, false},
		{LookupGroup, "LookupGroup", "sockd-no-such-group", 0, true},
		{LookupGroup, "LookupGroup", "", 0, true},
		{LookupGroup, "LookupGroup", "4294967295", 0, true},
	} {
		got, err := tc.fn(tc.name)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("%s(%q) = %d, %v; want %d, error %v", tc.fnName, tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}
