package supervisord

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sockd/sockd/api"
)

// TestListNameFilterAsksOnlyMatches freezes one unit's actor, so that
// asking it for its status blocks: a list whose pattern leaves it out
// answers at once, a list of every unit waits for it.
func TestListNameFilterAsksOnlyMatches(t *testing.T) {
	d := manyUnits(t, 5) // u00000 … u00004
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	frozen := d.units["u00003.service"]
	thaw := make(chan struct{})
	if _, err := frozen.call(ctx, &request{kind: reqFreeze, thaw: thaw}); err != nil {
		t.Fatal(err)
	}
	defer close(thaw)

	for _, tc := range []struct {
		names []string
		want  []string
	}{
		{[]string{"u00001"}, []string{"u00001.service"}},
		{[]string{"u0000[02]*"}, []string{"u00000.service", "u00002.service"}},
		{[]string{"u00004.socket"}, []string{"u00004.service"}},
		{[]string{"nothing*"}, nil},
	} {
		opts, err := api.ListOptions{Names: tc.names}.Normalize()
		if err != nil {
			t.Fatal(err)
		}
		l, err := d.ListUnits(ctx, opts)
		if err != nil {
			t.Fatalf("%v: %v", tc.names, err)
		}
		var got []string
		for _, u := range l {
			got = append(got, u.Name)
		}
		if len(got) != len(tc.want) || len(got) > 0 && (got[0] != tc.want[0] || got[len(got)-1] != tc.want[len(tc.want)-1]) {
			t.Errorf("%v: got %v, want %v", tc.names, got, tc.want)
		}
	}

	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if _, err := d.List(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("list of every unit with one frozen: %v, want a deadline exceeded", err)
	}
}

// TestListStateFilter keeps the units in a state or sub-state.
func TestListStateFilter(t *testing.T) {
	d := manyUnits(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		opts api.ListOptions
		n    int
	}{
		{api.ListOptions{States: []string{api.StateInactive}}, 3},
		{api.ListOptions{States: []string{api.StateFailed, api.StateActive}}, 0},
		{api.ListOptions{SubStates: []string{"listening"}}, 3},
		{api.ListOptions{SubStates: []string{"running"}}, 0},
		{api.ListOptions{States: []string{api.StateInactive}, Names: []string{"u00001"}}, 1},
	} {
		opts, err := tc.opts.Normalize()
		if err != nil {
			t.Fatal(err)
		}
		l, err := d.ListUnits(ctx, opts)
		if err != nil || len(l) != tc.n {
			t.Errorf("%+v: %d units (%v), want %d", tc.opts, len(l), err, tc.n)
		}
	}
}
