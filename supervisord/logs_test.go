package supervisord

import (
	"fmt"
	"testing"

	"github.com/sockd/sockd/api"
)

func TestLogRing(t *testing.T) {
	r := newLogRing(3)
	if got := r.last(10); len(got) != 0 {
		t.Fatalf("empty ring: %v", got)
	}
	for i := range 7 {
		r.add(api.LogLine{Line: fmt.Sprint(i)})
		var want []string
		for j := max(0, i-2); j <= i; j++ {
			want = append(want, fmt.Sprint(j))
		}
		var got []string
		for _, l := range r.last(10) {
			got = append(got, l.Line)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("after %d lines: %v, want %v", i+1, got, want)
		}
	}
	if got := r.last(2); got[0].Line != "5" || got[1].Line != "6" {
		t.Fatalf("last(2) = %v", got)
	}
}
