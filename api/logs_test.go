package api

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// chanFollower is a LogFollower the test feeds.
type chanFollower struct {
	lines  chan []LogLine
	end    chan error
	closed chan struct{}
}

func newChanFollower() *chanFollower {
	return &chanFollower{lines: make(chan []LogLine), end: make(chan error, 1), closed: make(chan struct{})}
}

func (f *chanFollower) Next(ctx context.Context) ([]LogLine, error) {
	select {
	case l := <-f.lines:
		return l, nil
	case err := <-f.end:
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (f *chanFollower) Close() { close(f.closed) }

func TestFollowLogs(t *testing.T) {
	ctx := testCtx(t)
	f := newChanFollower()
	queries := make(chan LogQuery, 1)
	ts := startServer(t, &fakeBackend{follow: func(_ context.Context, unit string, q LogQuery) (LogFollower, error) {
		if unit != "app" {
			return nil, notFound(unit)
		}
		queries <- q
		return f, nil
	}})
	since := time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)
	got := make(chan LogLine, 16)
	done := make(chan error, 1)
	go func() {
		done <- ts.client.FollowLogs(ctx, "app", LogQuery{N: 5, Since: since, Stream: StreamStderr}, func(l LogLine) { got <- l })
	}()
	q := <-queries
	if q.N != 5 || !q.Since.Equal(since) || q.Stream != StreamStderr {
		t.Fatalf("backend got %+v", q)
	}
	// Lines come as the follower gives them, batch after batch, in order.
	for i, batch := range [][]string{{"a", "b"}, {"c"}} {
		var ls []LogLine
		for _, s := range batch {
			ls = append(ls, LogLine{Time: since, Pid: 7, Stream: StreamStderr, Line: s})
		}
		f.lines <- ls
		for _, s := range batch {
			select {
			case l := <-got:
				if l.Line != s || l.Pid != 7 || l.Stream != StreamStderr || !l.Time.Equal(since) {
					t.Fatalf("batch %d: got %+v, want line %q", i, l, s)
				}
			case <-ctx.Done():
				t.Fatalf("batch %d: line %q never came", i, s)
			}
		}
	}
	f.end <- &LogEndError{End: LogEndLagged, Message: "too slow"}
	var end *LogEndError
	if err := <-done; !errors.As(err, &end) || end.End != LogEndLagged || end.Message != "too slow" {
		t.Fatalf("FollowLogs = %v, want the lagged end", err)
	}
	select {
	case <-f.closed:
	case <-ctx.Done():
		t.Fatal("the follower was never closed")
	}
}

func TestFollowLogsClientGoes(t *testing.T) {
	f := newChanFollower()
	ts := startServer(t, &fakeBackend{follow: func(context.Context, string, LogQuery) (LogFollower, error) { return f, nil }})
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	go func() { done <- ts.client.FollowLogs(ctx, "app", LogQuery{}, func(LogLine) {}) }()
	f.lines <- []LogLine{{Line: "x"}} // the stream is up
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("FollowLogs = %v, want context.Canceled", err)
	}
	select {
	case <-f.closed:
	case <-testCtx(t).Done():
		t.Fatal("the server never closed the follower of a client that went")
	}
}

func TestFollowLogsShutdown(t *testing.T) {
	f := newChanFollower()
	ts := startServer(t, &fakeBackend{follow: func(context.Context, string, LogQuery) (LogFollower, error) { return f, nil }})
	ctx := testCtx(t)
	done := make(chan error, 1)
	go func() { done <- ts.client.FollowLogs(ctx, "app", LogQuery{}, func(LogLine) {}) }()
	f.lines <- []LogLine{{Line: "x"}}
	start := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown with a follower: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown waited %v for the follower", d)
	}
	var end *LogEndError
	if err := <-done; !errors.As(err, &end) || end.End != LogEndShutdown {
		t.Fatalf("FollowLogs = %v, want the shutdown end", err)
	}
}

func TestLogsParams(t *testing.T) {
	queries := make(chan LogQuery, 1)
	ts := startServer(t, &fakeBackend{logs: func(_ context.Context, _ string, q LogQuery) ([]LogLine, error) {
		queries <- q
		return nil, nil
	}})
	for _, tc := range []struct{ query, field string }{
		{"since=yesterday", "since"},
		{"since=10m", "since"},
		{"stream=both", "stream"},
		{"stream=", "stream"},
		{"follow=maybe", "follow"},
	} {
		code, _, body := ts.raw(t, "GET", "/v1/units/app/logs?"+tc.query, "")
		if code != 400 || !strings.Contains(string(body), `"field":"`+tc.field+`"`) {
			t.Errorf("%s: %d %s", tc.query, code, body)
		}
	}
	code, _, body := ts.raw(t, "GET", "/v1/units/app/logs?since=2025-06-01T12:00:00%2B02:00&stream=stdout&follow=0", "")
	if code != 200 || strings.TrimSpace(string(body)) != "[]" {
		t.Fatalf("%d %s", code, body)
	}
	q := <-queries
	if want := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC); !q.Since.Equal(want) || q.Stream != StreamStdout || q.N != DefaultLogLines {
		t.Errorf("query %+v", q)
	}
}

func TestLogQueryMatch(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	l := LogLine{Time: t0, Stream: StreamStdout}
	for _, tc := range []struct {
		q    LogQuery
		want bool
	}{
		{LogQuery{}, true},
		{LogQuery{Since: t0}, true},
		{LogQuery{Since: t0.Add(time.Nanosecond)}, false},
		{LogQuery{Stream: StreamStdout}, true},
		{LogQuery{Stream: StreamStderr}, false},
	} {
		if got := tc.q.Match(l); got != tc.want {
			t.Errorf("%+v.Match = %v", tc.q, got)
		}
	}
}
