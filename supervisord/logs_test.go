package supervisord

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockd/sockd/api"
	"github.com/sockd/sockd/children"
)

// lineCost is what a line costs a logRing's budget.
func lineCost(l api.LogLine) int { return logHeader + len(l.Stream) + len(l.Line) }

func TestLogRingEviction(t *testing.T) {
	per := lineCost(api.LogLine{Stream: "stdout", Line: "00"})
	r := newLogRing(3 * per)
	if got := r.last(10); len(got) != 0 {
		t.Fatalf("empty ring: %v", got)
	}
	for i := range 7 {
		r.add(api.LogLine{Stream: "stdout", Line: fmt.Sprintf("%02d", i)})
		var want []string
		for j := max(0, i-2); j <= i; j++ {
			want = append(want, fmt.Sprintf("%02d", j))
		}
		var got []string
		for _, l := range r.last(10) {
			got = append(got, l.Line)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("after %d lines: %v, want %v", i+1, got, want)
		}
	}
	if got := r.last(2); len(got) != 2 || got[0].Line != "05" || got[1].Line != "06" {
		t.Fatalf("last(2) = %v", got)
	}
	// A longer line evicts as many old ones as it takes.
	r.add(api.LogLine{Stream: "stdout", Line: strings.Repeat("z", 2*per+2)}) // costs the whole budget
	if got := r.last(10); len(got) != 1 || len(got[0].Line) != 2*per+2 {
		t.Fatalf("after a long line: %v", got)
	}
}

func TestLogRingFields(t *testing.T) {
	r := newLogRing(4 << 10)
	now := time.Now()
	in := []api.LogLine{
		{Time: now, Pid: 4194304, Stream: "stderr", Line: "boom"},
		{Time: now.Add(time.Second), Pid: 1, Stream: "stdout", Line: ""},
		{Stream: "other", Line: "x"},
	}
	for _, l := range in {
		r.add(l)
	}
	got := r.last(-1)
	if len(got) != 0 {
		t.Fatalf("last(-1) = %v", got)
	}
	got = r.last(3)
	for i, l := range got {
		w := in[i]
		if !l.Time.Equal(w.Time) || l.Pid != w.Pid || l.Stream != w.Stream || l.Line != w.Line {
			t.Errorf("line %d: %+v, want %+v", i, l, w)
		}
	}
}

func TestLogRingTruncates(t *testing.T) {
	const budget = 4 << 10
	r := newLogRing(budget)
	r.add(api.LogLine{Stream: "stdout", Line: "before"})
	r.add(api.LogLine{Stream: "stdout", Line: strings.Repeat("a", 64<<10)})
	got := r.last(1000)
	if len(got) != 1 || lineCost(got[0]) != budget || strings.Trim(got[0].Line, "a") != "" {
		t.Fatalf("a line past the budget: %d lines, first costs %d", len(got), lineCost(got[0]))
	}
	if len(r.buf) > budget {
		t.Errorf("buffer of %d bytes for a budget of %d", len(r.buf), budget)
	}
}

// TestLogRingModel checks the ring against a plain slice of lines under
// random lines and budget changes: same lines, and never more bytes than
// the budget, held or returned.
func TestLogRingModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	budget := 8 << 10
	r := newLogRing(budget)
	var model []api.LogLine
	used := func() int {
		n := 0
		for _, l := range model {
			n += lineCost(l)
		}
		return n
	}
	for i := range 5000 {
		if rng.IntN(200) == 0 {
			budget = (4 + rng.IntN(16)) << 10
			r.setBudget(budget)
		} else {
			l := api.LogLine{Time: time.Unix(int64(i), 0), Pid: i, Stream: []string{"stdout", "stderr"}[rng.IntN(2)],
				Line: strings.Repeat(string(rune('a'+i%26)), rng.IntN(3000))}
			if rng.IntN(500) == 0 {
				l.Line = strings.Repeat("L", 20000)
			}
			r.add(l)
			if max := budget - logHeader - len(l.Stream); len(l.Line) > max {
				l.Line = l.Line[:max]
			}
			model = append(model, l)
		}
		for used() > budget {
			model = model[1:]
		}
		n := rng.IntN(len(model) + 2)
		got, want := r.last(n), model[max(0, len(model)-n):]
		if len(got) != len(want) {
			t.Fatalf("step %d: last(%d) has %d lines, want %d", i, n, len(got), len(want))
		}
		size := 0
		for j := range got {
			if got[j].Line != want[j].Line || got[j].Pid != want[j].Pid || got[j].Stream != want[j].Stream || !got[j].Time.Equal(want[j].Time) {
				t.Fatalf("step %d: line %d differs", i, j)
			}
			size += lineCost(got[j])
		}
		if size > budget || len(r.buf) > budget {
			t.Fatalf("step %d: returned %d bytes, holds %d, budget %d", i, size, len(r.buf), budget)
		}
	}
}

func TestLogRingConcurrent(t *testing.T) {
	r := newLogRing(16 << 10)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				r.add(api.LogLine{Pid: w, Stream: "stdout", Line: fmt.Sprintf("%d %d %s", w, i, strings.Repeat("x", i%300))})
			}
		}()
	}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				size := 0
				for _, l := range r.last(1000) {
					var w, i int
					if _, err := fmt.Sscanf(l.Line, "%d %d", &w, &i); err != nil || w != l.Pid {
						t.Errorf("torn line %q (pid %d)", l.Line, l.Pid)
						return
					}
					size += lineCost(l)
				}
				if size > 16<<10 {
					t.Errorf("last returned %d bytes", size)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestLogRingQuery(t *testing.T) {
	r := newLogRing(64 << 10)
	t0 := time.Now()
	for i := range 10 {
		stream := "stdout"
		if i%2 == 1 {
			stream = "stderr"
		}
		r.add(api.LogLine{Time: t0.Add(time.Duration(i) * time.Second), Pid: i, Stream: stream, Line: fmt.Sprint(i)})
	}
	lines := func(ls []api.LogLine) string {
		var s []string
		for _, l := range ls {
			s = append(s, l.Line)
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		q    api.LogQuery
		want string
	}{
		{api.LogQuery{N: 3}, "7,8,9"},
		{api.LogQuery{N: 3, Stream: "stderr"}, "5,7,9"},
		{api.LogQuery{N: 100, Stream: "stdout"}, "0,2,4,6,8"},
		{api.LogQuery{N: 100, Since: t0.Add(6 * time.Second)}, "6,7,8,9"},
		{api.LogQuery{N: 2, Since: t0.Add(6 * time.Second), Stream: "stdout"}, "6,8"},
		{api.LogQuery{N: 100, Since: t0.Add(time.Hour)}, ""},
		{api.LogQuery{N: 100, Stream: "std"}, ""},
	} {
		if got := lines(r.query(tc.q)); got != tc.want {
			t.Errorf("query(%+v) = %q, want %q", tc.q, got, tc.want)
		}
	}
}

// next calls f.Next with a bounded wait.
func next(t *testing.T, f *logFollower) ([]api.LogLine, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return f.Next(ctx)
}

func TestLogRingFollow(t *testing.T) {
	r := newLogRing(64 << 10)
	r.add(api.LogLine{Time: time.Now(), Stream: "stdout", Line: "old1"})
	r.add(api.LogLine{Time: time.Now(), Stream: "stderr", Line: "old2"})
	f := r.follow(api.LogQuery{N: 1, Stream: "stderr"})
	defer f.Close()
	if ls, err := next(t, f); err != nil || len(ls) != 1 || ls[0].Line != "old2" {
		t.Fatalf("backlog: %v, %v", ls, err)
	}
	// Lines added while the reader waits wake it, in order, filtered.
	go func() {
		for i := range 100 {
			r.add(api.LogLine{Time: time.Now(), Stream: "stdout", Line: "out"})
			r.add(api.LogLine{Time: time.Now(), Stream: "stderr", Line: fmt.Sprint(i)})
		}
	}()
	for i := 0; i < 100; {
		ls, err := next(t, f)
		if err != nil {
			t.Fatalf("after %d lines: %v", i, err)
		}
		for _, l := range ls {
			if l.Line != fmt.Sprint(i) || l.Stream != "stderr" {
				t.Fatalf("line %d: %+v", i, l)
			}
			i++
		}
	}
	// A waiting reader whose context ends returns its error.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := f.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next with nothing new = %v", err)
	}
	// The unit goes: what is left is read, then the end.
	r.add(api.LogLine{Time: time.Now(), Stream: "stderr", Line: "last"})
	r.close()
	if ls, err := next(t, f); err != nil || len(ls) != 1 || ls[0].Line != "last" {
		t.Fatalf("after close: %v, %v", ls, err)
	}
	var end *api.LogEndError
	if _, err := next(t, f); !errors.As(err, &end) || end.End != api.LogEndRemoved {
		t.Fatalf("after close and the last line: %v", err)
	}
}

// A follower that does not read never holds the writer back; once the
// ring has dropped the line it was at, it has lagged and ends.
func TestLogRingFollowerLags(t *testing.T) {
	per := lineCost(api.LogLine{Stream: "stdout", Line: "00000"})
	r := newLogRing(10 * per)
	f := r.follow(api.LogQuery{N: 10})
	defer f.Close()
	for i := range 5 {
		r.add(api.LogLine{Stream: "stdout", Line: fmt.Sprintf("%05d", i)})
	}
	if ls, err := next(t, f); err != nil || len(ls) != 5 {
		t.Fatalf("first read: %v, %v", ls, err)
	}
	for i := range 1000 {
		r.add(api.LogLine{Stream: "stdout", Line: fmt.Sprintf("%05d", i)})
	}
	if got := r.last(1); got[0].Line != "00999" {
		t.Fatalf("the ring stopped at %v", got)
	}
	var end *api.LogEndError
	if ls, err := next(t, f); !errors.As(err, &end) || end.End != api.LogEndLagged {
		t.Fatalf("after falling behind: %d lines, %v", len(ls), err)
	}
	r.mu.Lock()
	n := len(r.subs)
	r.mu.Unlock()
	if n != 0 {
		t.Errorf("%d followers left in the ring after the lagging one", n)
	}
}

// A line the child prints at once, before the spawn has stored its pid
// (the output readers run from the fork on), still carries the pid.
func TestOutputLineCarriesPid(t *testing.T) {
	e := newEnv(t, "")
	// The spawn returns late, as when the scheduler runs the child and
	// its output reader first (a seam over the real start, not a wait).
	e.d.start = func(s children.Spec) (process, error) {
		p, err := startChild(s)
		time.Sleep(20 * time.Millisecond)
		return p, err
	}
	e.write("echo.service", "[Service]\nExecStart=/bin/echo first\n") // no socket: starts when added
	e.mustReload()
	for i := 1; i < 20; i++ {
		e.await(func(st api.ServiceStatus) bool { return st.Generation == i && len(st.Pids) == 0 })
		if err := e.d.Start(e.ctx(), "echo"); err != nil {
			t.Fatal(err)
		}
	}
	var lines []api.LogLine
	deadline := time.Now().Add(20 * time.Second)
	for {
		var err error
		if lines, err = e.d.Logs(e.ctx(), "echo", api.LogQuery{N: 100}); err != nil {
			t.Fatal(err)
		}
		if len(lines) >= 20 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // the last lines are read asynchronously
	}
	n := 0
	for _, l := range lines {
		if l.Line == "first" {
			n++
			if l.Pid == 0 {
				t.Fatalf("a line without its pid: %+v", l)
			}
		}
	}
	if n != 20 {
		t.Fatalf("%d first lines, want 20: %+v", n, lines)
	}
}
