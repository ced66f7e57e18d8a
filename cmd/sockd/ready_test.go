package main

import (
	"testing"

	"github.com/sockd/sockd/api"
)

// STATUS= with READY=1 counts the units that serve and those that
// failed, by result.
func TestReadiness(t *testing.T) {
	failed := func(name, result string) api.UnitStatus {
		return api.UnitStatus{Name: name, Service: api.ServiceStatus{State: api.StateFailed, Result: result}}
	}
	for _, tc := range []struct {
		serving int
		failed  []api.UnitStatus
		want    string
	}{
		{3, nil, "3 units serving"},
		{0, nil, "0 units serving"},
		{5, []api.UnitStatus{failed("a.service", "resources"), failed("b.service", "address-in-use"), failed("c.service", "resources")},
			"5 units serving, 3 failed (address-in-use: 1, resources: 2); sockctl list shows them"},
	} {
		r := readiness(tc.serving, tc.failed)
		if got := r.String(); got != tc.want {
			t.Errorf("readiness(%d, %d failed) = %q, want %q", tc.serving, len(tc.failed), got, tc.want)
		}
		if r.failed != len(tc.failed) || len(r.names) != len(tc.failed) {
			t.Errorf("readiness: %+v", r)
		}
	}
}
